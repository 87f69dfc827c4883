//! The one connection to the gRPC server that every request of the edge shares.

use std::time::Duration;

use http::Uri;
use tonic::transport::{Channel, Endpoint};

/// How long the edge waits for a TCP connection to the upstream before answering 503.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The [`Endpoint`] the edge uses for `uri`: a short connect timeout (so a dead upstream
/// means a quick 503, not a hung request), TCP and HTTP/2 keep-alive (so a silently dead
/// connection is noticed and replaced), and no per-request timeout (server streams may be
/// long; callers bound their calls with `grpc-timeout`, which the channel enforces).
///
/// Exposed so callers can adjust it before connecting; most want [`upstream_channel`].
pub fn upstream_endpoint(uri: Uri) -> Endpoint {
    Endpoint::from(uri)
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

/// A lazily connected [`Channel`] to the gRPC server at `uri` (`http://host:port`).
///
/// Nothing is dialled until the first request, so the edge starts (and `/healthz` says
/// 503) while the upstream is still coming up; the channel reconnects by itself.
pub fn upstream_channel(uri: Uri) -> Channel {
    upstream_endpoint(uri).connect_lazy()
}
