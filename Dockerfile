# syntax=docker/dockerfile:1
# Multi-stage build: a release build of both binaries, then a small runtime image that runs
# as a non-root user. protoc comes from the protoc-bin-vendored crate, so the build needs
# nothing but cargo.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p namaskah-server -p namaskah-edge \
 && mkdir -p /out \
 && cp target/release/namaskah-server target/release/namaskah-edge /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 namaskah \
 && useradd --system --uid 10001 --gid namaskah --home-dir /var/lib/namaskah --create-home namaskah
COPY --from=build /out/namaskah-server /out/namaskah-edge /usr/local/bin/
USER namaskah:namaskah
WORKDIR /var/lib/namaskah
ENV NAMASKAH_GRPC_ADDR=0.0.0.0:50051 \
    NAMASKAH_EDGE_ADDR=0.0.0.0:8080 \
    NAMASKAH_METRICS_ADDR=0.0.0.0:9090 \
    DATABASE_URL=sqlite:///var/lib/namaskah/namaskah.db?mode=rwc \
    NAMASKAH_MAIL_SINK=/var/lib/namaskah/mail.jsonl \
    NAMASKAH_LOG_FORMAT=json
VOLUME ["/var/lib/namaskah"]
EXPOSE 50051 8080 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["namaskah-server", "healthcheck"]
ENTRYPOINT ["namaskah-server"]
CMD ["serve"]
