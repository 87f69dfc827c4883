//! Forwarding gRPC and grpc-web calls to the upstream, without per-RPC code.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::header::{CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use tonic::transport::Channel;
use tonic_web::GrpcWebLayer;
use tower::{Layer, ServiceExt, service_fn};

use crate::Edge;
use crate::limit::BodyLimit;
use crate::reply::{Protocol, refuse};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whatever no explicit route took: gRPC and grpc-web calls go upstream; the rest is 404.
pub(crate) async fn fallback(State(edge): State<Edge>, request: Request) -> Response {
    match Protocol::of(request.headers()) {
        Protocol::GrpcWeb => forward_grpc_web(edge.upstream, request).await,
        Protocol::Grpc => {
            forward(
                edge.upstream,
                request.map(tonic::body::Body::new),
                Protocol::Grpc,
            )
            .await
        }
        // The `google.api.http` routes; they answer 404 and 405 themselves.
        Protocol::Http => {
            crate::json::handle(
                &edge.json,
                edge.upstream,
                edge.options.sse_keep_alive,
                request,
            )
            .await
        }
    }
}

/// grpc-web: `tonic_web` turns the call into gRPC (decoding base64 for `-text`), we forward
/// it, and it turns the answer back (trailers into the body, base64 if asked).
///
/// `tonic_web` (0.14.9) passes the wrapped body's size hint through although it changes the
/// length (base64, the trailer frame), and hyper turns an exact hint into `content-length`:
/// the upstream then resets the stream, or the browser gets a truncated answer. So both
/// bodies go through `tonic_web` with their length hidden.
async fn forward_grpc_web(upstream: Channel, request: Request) -> Response {
    let to_upstream = service_fn(move |request: http::Request<tonic::body::Body>| {
        let upstream = upstream.clone();
        async move {
            let response = forward(upstream, request, Protocol::GrpcWeb).await;
            Ok::<_, Infallible>(response.map(|body| Body::new(LengthHidden(body))))
        }
    });
    let request = request.map(|body| Body::new(LengthHidden(body)));
    match GrpcWebLayer::new()
        .layer(to_upstream)
        .oneshot(request)
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// Sends one gRPC call upstream as it is, and its answer back as it is.
async fn forward(
    upstream: Channel,
    request: http::Request<tonic::body::Body>,
    protocol: Protocol,
) -> Response {
    let path = request.uri().path().to_owned();
    if !is_rpc_path(&path) {
        return refuse(
            protocol,
            StatusCode::NOT_FOUND,
            tonic::Status::unimplemented(format!(
                "{path} is not a gRPC method path (/package.Service/Method)"
            )),
        );
    }
    let limit = request.extensions().get::<BodyLimit>().cloned();

    let result = upstream.oneshot(for_upstream(request)).await;

    // A body cut off by the size limit makes the upstream call fail (or answer early);
    // either way the caller's mistake is the size, not an upstream failure.
    if let Some(limit) = limit.filter(BodyLimit::exceeded) {
        return limit.refusal(protocol);
    }
    match result {
        Ok(response) => response.map(Body::new),
        Err(error) => {
            let status = tonic::Status::from_error(Box::new(error));
            tracing::warn!(rpc = %path, code = ?status.code(), error = %status.message(), "upstream call failed");
            let (http, status) = match status.code() {
                // The channel enforces the caller's `grpc-timeout`.
                tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => (
                    StatusCode::GATEWAY_TIMEOUT,
                    tonic::Status::deadline_exceeded(
                        "the deadline passed before the server answered",
                    ),
                ),
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    tonic::Status::unavailable("the gRPC server is unavailable; try again shortly"),
                ),
            };
            refuse(protocol, http, status)
        }
    }
}

/// A body that does not tell its length in advance.
struct LengthHidden<B>(B);

impl<B: http_body::Body + Unpin> http_body::Body for LengthHidden<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
    // `size_hint` stays the default: unknown.
}

/// `/service/method`, both non-empty.
fn is_rpc_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(service, method)| {
            !service.is_empty() && !method.is_empty() && !method.contains('/')
        })
}

/// The request as the upstream should see it: HTTP/2, no hop-by-hop headers, `te:
/// trailers`, and the caller's address appended to `x-forwarded-for` (the upstream limits
/// unauthenticated calls per client address, and would otherwise see only the edge's), and
/// the host the caller asked for in `x-forwarded-host` (it picks the white-label storefront of
/// callers without credentials). Scheme and authority are set by the channel.
fn for_upstream(mut request: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
    *request.version_mut() = Version::HTTP_2;
    let asked_host = request.headers().get(HOST).cloned().or_else(|| {
        request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    let headers = request.headers_mut();
    strip_hop_by_hop(headers);
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if let Some(host) = asked_host
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(peer) = peer
        && let Ok(value) = HeaderValue::from_str(&forwarded_for(headers, peer))
    {
        headers.insert(X_FORWARDED_FOR, value);
    }
    request
}

/// The `x-forwarded-for` chain the upstream should see: whatever the caller sent, then the
/// caller's own address. The edge trusts no proxy in front of it, so it only ever appends:
/// the address it vouches for is the last one.
pub(crate) fn forwarded_for(headers: &HeaderMap, peer: IpAddr) -> String {
    let mut chain: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let peer = peer.to_string();
    chain.push(&peer);
    chain.join(", ")
}

/// Connection-specific headers belong to one hop; HTTP/2 forbids them outright.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        TRANSFER_ENCODING,
        UPGRADE,
        HOST,
        TE,
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_rpc_paths() {
        assert!(is_rpc_path("/namaskah.v1.AuthService/GetMe"));
        assert!(is_rpc_path("/grpc.health.v1.Health/Check"));
        assert!(!is_rpc_path("/"));
        assert!(!is_rpc_path("/healthz"));
        assert!(!is_rpc_path("/namaskah.v1.AuthService/"));
        assert!(!is_rpc_path("//GetMe"));
        assert!(!is_rpc_path("/a/b/c"));
    }

    #[test]
    fn strips_hop_by_hop_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-hop"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        headers.insert(HOST, HeaderValue::from_static("edge.example"));
        headers.insert("x-api-key", HeaderValue::from_static("nsk_test"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-api-key"], "nsk_test");
    }

    #[test]
    fn passes_the_asked_host_on() {
        let request = http::Request::builder()
            .uri("/namaskah.v1.TenantService/GetBranding")
            .header(HOST, "sms.acme.test")
            .body(tonic::body::Body::empty())
            .unwrap();
        let forwarded = for_upstream(request);
        assert_eq!(forwarded.headers()[&X_FORWARDED_HOST], "sms.acme.test");
        assert!(forwarded.headers().get(HOST).is_none());
        // One already set by a proxy in front is kept.
        let request = http::Request::builder()
            .uri("/namaskah.v1.TenantService/GetBranding")
            .header(HOST, "edge.internal")
            .header("x-forwarded-host", "sms.acme.test")
            .body(tonic::body::Body::empty())
            .unwrap();
        assert_eq!(
            for_upstream(request).headers()[&X_FORWARDED_HOST],
            "sms.acme.test"
        );
    }
}
