//! The HTTP edge in front of the Namaskah gRPC server.
//!
//! One HTTP listener (HTTP/1.1 and HTTP/2 without TLS) answers three kinds of request:
//!
//! - grpc-web (`application/grpc-web`, `+proto`, `-text`, `-text+proto`) from browsers,
//!   translated by `tonic_web` into gRPC and forwarded to the upstream;
//! - native gRPC (`application/grpc…`) forwarded untouched: any `/package.Service/Method`,
//!   its metadata (`authorization`, `x-api-key`, `grpc-timeout`, …) and the upstream's
//!   headers and trailers (`x-process-time`, `grpc-status`, …) pass through;
//! - plain HTTP: `GET /healthz`, `POST /webhooks/{source}` (handed to the server's
//!   `WebhookService` untouched, see [below](#webhooks)), `GET /openapi.json`, and the
//!   JSON routes of the `google.api.http` annotations (see the `json` module: proto3 JSON
//!   in and out, NDJSON or server-sent events for server streams). Anything else is a 404
//!   (or a 405 for a known path) with a `{"code":5,"message":…,"details":[]}` body.
//!
//! With [`EdgeOptions::cors_origins`] set, browsers on those origins may call both grpc-web
//! and JSON routes with credentials.
//!
//! # Webhooks
//!
//! `POST /webhooks/paystack`, `/webhooks/textverified` and `/webhooks/sandbox` take no
//! credentials (the sender's signature is checked by the server). The raw body (at most
//! [`WEBHOOK_MAX_BODY_BYTES`]), every header, the query string and the caller's address go
//! to `namaskah.v1.WebhookService/ReceiveWebhook`; the sender gets 200 `{"accepted":…}`,
//! or 400/401/404/429 for the statuses that should not be retried as they are, and a 5xx
//! (with `Retry-After` when the server gave one) for everything it should retry.
//!
//! Every call shares one [`Channel`], so all requests are multiplexed over a kept-alive
//! HTTP/2 connection to the upstream.
//!
//! Hosting the edge in another process (as `namaskah-server` does):
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let upstream = namaskah_edge::upstream_channel("http://127.0.0.1:50051".parse().unwrap());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! namaskah_edge::serve(listener, upstream, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod config;
mod cors;
mod health;
mod json;
mod limit;
mod proxy;
mod reply;
pub mod tls;
mod upstream;
mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

pub use config::{
    ConfigError, DEFAULT_EDGE_ADDR, DEFAULT_UPSTREAM, ENV_CORS_ORIGINS, ENV_EDGE_ADDR,
    ENV_MAX_BODY, ENV_UPSTREAM, Settings, parse_cors_origins,
};
pub use json::{JsonRoute, json_route_for, json_routes};
pub use upstream::{DEFAULT_CONNECT_TIMEOUT, upstream_channel, upstream_endpoint};
pub use webhook::WEBHOOK_MAX_BODY_BYTES;

/// The largest request body the edge accepts unless told otherwise: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long `/healthz` waits for the upstream's health check before answering 503.
pub const DEFAULT_HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a webhook waits for `WebhookService/ReceiveWebhook` before its sender gets a 504
/// (and retries later). Gateways give up on a webhook after some tens of seconds; answering
/// before they do keeps their retry schedule ours.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a quiet server-sent-event stream gets a comment line, so that proxies between
/// a browser and the edge do not close it.
pub const DEFAULT_SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The knobs of the edge itself (where it listens and what it forwards to are given
/// separately, to [`serve_with`] or [`router`]).
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Request bodies larger than this are refused: HTTP 413 for grpc-web and plain HTTP,
    /// `RESOURCE_EXHAUSTED` for native gRPC. The count covers the bytes on the wire (so
    /// base64 for `grpc-web-text`) and, for a client stream, the whole stream.
    pub max_body_bytes: usize,
    /// How long `GET /healthz` waits for `grpc.health.v1.Health/Check` before giving up.
    pub health_check_timeout: Duration,
    /// How long `POST /webhooks/{source}` waits for the server before answering 504.
    pub webhook_timeout: Duration,
    /// The browser origins (`https://app.example.com`) allowed to call the edge across
    /// origins, with credentials; none by default (same-origin pages only). See
    /// [`parse_cors_origins`].
    pub cors_origins: Vec<http::HeaderValue>,
    /// How often a quiet server-sent-event stream (a JSON server stream asked for with
    /// `Accept: text/event-stream`) gets a `: keep-alive` comment line.
    pub sse_keep_alive: Duration,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            health_check_timeout: DEFAULT_HEALTH_CHECK_TIMEOUT,
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            cors_origins: Vec::new(),
            sse_keep_alive: DEFAULT_SSE_KEEP_ALIVE,
        }
    }
}

/// State shared by every route of the edge.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) upstream: Channel,
    pub(crate) options: EdgeOptions,
    pub(crate) json: Arc<json::JsonApi>,
}

/// The edge as an axum [`Router`], ready to be served (with
/// `into_make_service_with_connect_info::<SocketAddr>()` so `x-forwarded-for` can be set)
/// or nested into a bigger router.
///
/// Routing order: the explicit routes (`/healthz`, `/openapi.json`, `/webhooks/{source}`)
/// first, then the fallback, which forwards gRPC and grpc-web calls and matches plain HTTP
/// against the JSON routes (404 or 405 when none fits).
pub fn router(upstream: Channel, options: EdgeOptions) -> Router {
    let max_body_bytes = options.max_body_bytes;
    let cors = cors::layer(&options.cors_origins);
    let edge = Edge {
        upstream,
        options,
        json: json::JsonApi::contract(),
    };
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/openapi.json", get(json::openapi_json))
        .method_not_allowed_fallback(reply::method_not_allowed)
        .fallback(proxy::fallback)
        .layer(axum::middleware::from_fn_with_state(
            max_body_bytes,
            limit::enforce_body_limit,
        ))
        // Added after the body limit layer on purpose, so that layer does not wrap it: the
        // webhook route reads (and limits) its body itself, and answers in its own
        // `{"error":…}` shape, the same for a 413 as for everything else it says.
        .route(
            "/webhooks/{source}",
            post(webhook::receive).fallback(webhook::method_not_allowed),
        )
        .with_state(edge)
        // 5xx answers (a 503 from /healthz while the upstream restarts) are warnings, not
        // errors; per-request spans and events are at debug level.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::WARN)));
    // Outside everything else, so preflights are answered before any route and every
    // answer (404s and 413s too) carries the headers a browser needs to read it.
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(CatchPanicLayer::custom(reply::panicked))
}

/// Serves the edge with the default [`EdgeOptions`] on `listener` until `shutdown`
/// completes, then stops accepting connections and waits for the open ones to finish.
pub async fn serve<F>(listener: TcpListener, upstream: Channel, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with(listener, upstream, EdgeOptions::default(), shutdown).await
}

/// [`serve`] with explicit options.
pub async fn serve_with<F>(
    listener: TcpListener,
    upstream: Channel,
    options: EdgeOptions,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    use axum::serve::ListenerExt as _;
    // Nagle off: a response written in more than one piece would otherwise wait for the
    // client's delayed ACK (some 40 ms) before its last piece left.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot turn Nagle off on a connection");
        }
    });
    let app = router(upstream, options).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the stop request of both binaries.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT (Ctrl-C)");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
