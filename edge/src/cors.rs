//! CORS for browsers on other origins: grpc-web and JSON alike.
//!
//! Only the configured origins are allowed, always with credentials (so never a wildcard).
//! The headers a browser must be allowed to send (credentials, grpc-web's own) and to read
//! (gRPC status, rate limits, timing) are listed explicitly.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers pages may send.
const ALLOWED: [&str; 10] = [
    "authorization",
    "x-api-key",
    "content-type",
    "accept",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
    "last-event-id",
    "cache-control",
];

/// Response headers pages may read.
const EXPOSED: [&str; 13] = [
    "grpc-status",
    "x-request-id",
    "grpc-message",
    "grpc-status-details-bin",
    "x-process-time",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "allow",
];

/// The CORS layer for `origins`; `None` when there are none (no CORS headers at all).
pub(crate) fn layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(ALLOWED.map(HeaderName::from_static))
            .expose_headers(EXPOSED.map(HeaderName::from_static))
            .max_age(Duration::from_secs(600)),
    )
}
