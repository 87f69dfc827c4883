#!/usr/bin/env bash
# The foundation's benchmark (issue 2): health vs GetMe (API key) on PostgreSQL, with the
# in-process cache and with Redis, plus Login, and the server's resident memory at idle and
# after load. Loopback only; every run is bounded in time.
#
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
#     benches/scripts/foundation.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
DURATION=${DURATION:-15s}
ADDR=127.0.0.1:50151
L=./target/release/namaskah-load
OUT=benches/out
mkdir -p "$OUT"

[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-server -p namaskah-bench

db_url() { echo "${PG_ADMIN_URL%/*}/namaskah_bench"; }
summary() { # name, json
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
lat = {d["percentage"]: d["latency"] / 1e6 for d in r["latencyDistribution"]}
codes = ", ".join(f"{k} {v}" for k, v in sorted(r["statusCodeDistribution"].items()))
print(f"| {name} | {r['count']} | {r['rps']:.0f} | {lat[50]:.2f} | {lat[95]:.2f} | {lat[99]:.2f} | {r['slowest']/1e6:.1f} | {codes} |")
PY
}

run_server() { # label, extra env...
  psql "$PG_ADMIN_URL" -qc "drop database if exists namaskah_bench" -c "create database namaskah_bench" >/dev/null
  env DATABASE_URL="$(db_url)" NAMASKAH_GRPC_ADDR=$ADDR NAMASKAH_EDGE_ADDR=off \
      NAMASKAH_JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn "$@" \
      ./target/release/namaskah-server >"$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 50); do
    ./target/release/namaskah-server healthcheck >/dev/null 2>&1 && break
    sleep 0.2
  done
}
rss() { echo "$(( $(ps -o rss= -p "$SERVER") / 1024 )) MiB"; }

echo "| run | count | rps | p50 ms | p95 ms | p99 ms | max ms | codes |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
run_server
sleep 3; IDLE=$(rss)
for round in 1 2; do
  for scenario in health get_me; do
    $L --addr "http://$ADDR" --scenario $scenario --connections 4 --concurrency 50 \
       --duration "$DURATION" --warmup 2s --json "$OUT/pg-inproc-$scenario-$round.json" >/dev/null 2>&1
    summary "PostgreSQL + in-process cache: $scenario (round $round)" "$OUT/pg-inproc-$scenario-$round.json"
  done
done
$L --addr "http://$ADDR" --scenario login --connections 1 --concurrency 8 \
   --duration 10s --warmup 1s --json "$OUT/pg-login.json" >/dev/null 2>&1
summary "PostgreSQL: login (Argon2id), 1 x 8" "$OUT/pg-login.json"
AFTER=$(rss)
kill -TERM $SERVER; wait $SERVER || true

run_server REDIS_URL="$REDIS_URL" NAMASKAH_REDIS_PREFIX="bench:$$:"
for round in 1 2; do
  for scenario in health get_me; do
    $L --addr "http://$ADDR" --scenario $scenario --connections 4 --concurrency 50 \
       --duration "$DURATION" --warmup 2s --json "$OUT/pg-redis-$scenario-$round.json" >/dev/null 2>&1
    summary "PostgreSQL + Redis: $scenario (round $round)" "$OUT/pg-redis-$scenario-$round.json"
  done
done
kill -TERM $SERVER; wait $SERVER || true
echo
echo "server RSS: idle after start ${IDLE}; after the in-process runs and the login burst ${AFTER}"
