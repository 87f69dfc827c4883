//! JSON transcoding: the `google.api.http` routes of the contract, served over plain HTTP
//! and called upstream as gRPC, with no code per RPC.
//!
//! At start-up every binding (and `additional_bindings`) of every method in
//! [`namaskah_proto::FILE_DESCRIPTOR_SET`] becomes a [`Route`]. A request is matched
//! against their templates ([`template`]); its message is built from the path, the body
//! and the query string ([`request`]); the call goes over the edge's shared channel with a
//! codec for messages known only from the descriptor set ([`codec`]); the answer is proto3
//! JSON, or for server streams newline-delimited JSON (`{"result": …}` per message, a last
//! `{"error": …}` if the stream fails) or server-sent events (`Accept: text/event-stream`:
//! one `data:` event per message, then `event: end`, or `event: error`). Errors are
//! `{code, message, details}` with the HTTP status of [`status::http_status`].

mod codec;
mod openapi;
mod request;
mod routes;
mod status;
mod template;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use http::header::{ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic::client::Grpc;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;
use tonic_types::{ErrorDetails, StatusExt as _};

pub use routes::JsonRoute;
use routes::Route;

use crate::limit::BodyLimit;
use crate::proxy::forwarded_for;

use self::codec::DynamicCodec;
use self::request::BadInput;

/// Request headers passed upstream as metadata of the same name.
const PASSED_ON: [&str; 3] = ["authorization", "x-api-key", "x-request-id"];

/// Every JSON route of the contract, built once.
pub(crate) struct JsonApi {
    routes: Vec<Route>,
    /// `/openapi.json`, written the first time it is asked for.
    openapi: OnceLock<Bytes>,
}

impl JsonApi {
    /// The routes of the compiled-in contract (parsed once per process).
    pub(crate) fn contract() -> Arc<JsonApi> {
        static API: OnceLock<Arc<JsonApi>> = OnceLock::new();
        API.get_or_init(|| {
            let (api, problems) = JsonApi::from_descriptor_set(namaskah_proto::FILE_DESCRIPTOR_SET);
            for problem in &problems {
                tracing::error!(%problem, "a google.api.http binding cannot be served");
            }
            Arc::new(api)
        })
        .clone()
    }

    /// The routes of an encoded `FileDescriptorSet`, and what could not be loaded.
    pub(crate) fn from_descriptor_set(bytes: &[u8]) -> (JsonApi, Vec<String>) {
        match DescriptorPool::decode(bytes) {
            Ok(pool) => {
                let (routes, problems) = routes::load(&pool);
                (
                    JsonApi {
                        routes,
                        openapi: OnceLock::new(),
                    },
                    problems,
                )
            }
            Err(error) => (
                JsonApi {
                    routes: Vec::new(),
                    openapi: OnceLock::new(),
                },
                vec![format!("the descriptor set does not decode: {error}")],
            ),
        }
    }

    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path` (the most specific when several match), and the
    /// methods other routes on that path take (for a 405's `Allow`).
    fn find(
        &self,
        method: &http::Method,
        path: &str,
    ) -> (Option<(&Route, template::Bindings)>, Vec<http::Method>) {
        let mut best: Option<(&Route, template::Bindings)> = None;
        let mut allowed: Vec<http::Method> = Vec::new();
        for route in &self.routes {
            let Some(bindings) = route.template.matches(path) else {
                continue;
            };
            if route.method != *method {
                if !allowed.contains(&route.method) {
                    allowed.push(route.method.clone());
                }
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(b, _)| route.template.specificity() > b.template.specificity())
            {
                best = Some((route, bindings));
            }
        }
        (best, allowed)
    }

    /// The OpenAPI document of the routes, as JSON.
    pub(crate) fn openapi(&self) -> Bytes {
        self.openapi
            .get_or_init(|| {
                let document = openapi::document(self);
                Bytes::from(serde_json::to_vec(&document).unwrap_or_else(|_| b"{}".to_vec()))
            })
            .clone()
    }
}

/// Every JSON route the edge serves, from the contract's `google.api.http` annotations, and
/// the bindings it could not load (empty for a sound contract).
pub fn json_routes() -> (Vec<JsonRoute>, Vec<String>) {
    let (api, problems) = JsonApi::from_descriptor_set(namaskah_proto::FILE_DESCRIPTOR_SET);
    (api.routes.iter().map(Route::describe).collect(), problems)
}

/// `GET /openapi.json`.
pub(crate) async fn openapi_json(
    axum::extract::State(edge): axum::extract::State<crate::Edge>,
) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        edge.json.openapi(),
    )
        .into_response()
}

/// The JSON route the edge takes for `method` and `path` (a request path, without the
/// query), if any: for tests that must reach every route.
pub fn json_route_for(method: &str, path: &str) -> Option<JsonRoute> {
    let method = http::Method::from_bytes(method.as_bytes()).ok()?;
    let api = JsonApi::contract();
    let (found, _) = api.find(&method, path);
    found.map(|(route, _)| route.describe())
}

/// A plain HTTP request that no explicit route took: a JSON call, or a 404/405.
pub(crate) async fn handle(
    api: &JsonApi,
    upstream: Channel,
    keep_alive: std::time::Duration,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();

    let (best, allowed) = api.find(&method, &path);
    let Some((route, bindings)) = best else {
        if allowed.is_empty() {
            return edge_error(
                StatusCode::NOT_FOUND,
                tonic::Code::NotFound,
                &format!("no route for {method} {path}"),
            );
        }
        let allow = allowed
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut response = edge_error(
            StatusCode::METHOD_NOT_ALLOWED,
            tonic::Code::Unimplemented,
            &format!("{method} is not allowed on {path}; use {allow}"),
        );
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(ALLOW, value);
        }
        return response;
    };

    let (parts, body) = request.into_parts();
    if !matches!(route.body, routes::BodyMapping::None)
        && let Some(content_type) = parts.headers.get(CONTENT_TYPE)
        && !is_json(content_type)
    {
        return edge_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            &format!(
                "the body must be JSON (content-type: application/json), not {:?}",
                String::from_utf8_lossy(content_type.as_bytes())
            ),
        );
    }
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            if let Some(limit) = parts.extensions.get::<BodyLimit>()
                && limit.exceeded()
            {
                return limit.refusal(crate::reply::Protocol::Http);
            }
            tracing::debug!(%error, "JSON request body could not be read");
            return edge_error(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                "the request body could not be read",
            );
        }
    };

    let message = match request::build(route, &bindings, &body, parts.uri.query()) {
        Ok(message) => message,
        Err(bad) => return bad_input(&bad),
    };

    let mut call = tonic::Request::new(message);
    for name in PASSED_ON {
        for value in parts.headers.get_all(name) {
            if let (Ok(key), Ok(value)) = (
                MetadataKey::from_bytes(name.as_bytes()),
                MetadataValue::try_from(value.as_bytes()),
            ) {
                call.metadata_mut().append(key, value);
            }
        }
    }
    // The host the caller asked for (GetBranding's default): the upstream sees the edge's
    // own authority otherwise.
    if let Some(host) = parts
        .headers
        .get(HOST)
        .map(HeaderValue::as_bytes)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
        && let Ok(host) = MetadataValue::try_from(host)
    {
        call.metadata_mut().insert("x-forwarded-host", host);
    }
    let peer: Option<IpAddr> = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    if let Some(peer) = peer
        && let Ok(chain) = forwarded_for(&parts.headers, peer).parse::<MetadataValue<_>>()
    {
        call.metadata_mut().insert("x-forwarded-for", chain);
    }

    let mut grpc = Grpc::new(upstream);
    if let Err(error) = grpc.ready().await {
        tracing::warn!(rpc = %route.grpc_path, %error, "upstream not ready");
        return status::error_response(&tonic::Status::unavailable(
            "the gRPC server is unavailable; try again shortly",
        ));
    }
    let codec = DynamicCodec::new(route.rpc.output());
    if route.rpc.is_server_streaming() {
        let sse = wants_sse(&parts.headers);
        match grpc
            .server_streaming(call, route.grpc_path.clone(), codec)
            .await
        {
            Ok(response) => stream_response(route, response, sse.then_some(keep_alive)),
            Err(status) => upstream_error(route, &status),
        }
    } else {
        match grpc.unary(call, route.grpc_path.clone(), codec).await {
            Ok(response) => {
                let mut headers = HeaderMap::new();
                status::pass_back(response.metadata(), &mut headers);
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                match to_json(route, response.get_ref()) {
                    Ok(json) => (StatusCode::OK, headers, json).into_response(),
                    Err(error) => {
                        tracing::error!(rpc = %route.grpc_path, %error, "response does not serialise");
                        edge_error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            tonic::Code::Internal,
                            "the response could not be written as JSON",
                        )
                    }
                }
            }
            Err(status) => upstream_error(route, &status),
        }
    }
}

fn upstream_error(route: &Route, status: &tonic::Status) -> Response {
    if matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
    ) {
        tracing::warn!(rpc = %route.grpc_path, code = ?status.code(), message = %status.message(), "upstream call failed");
    }
    if status.message().is_empty() {
        // A server without the service answers a bare code: say which RPC it was.
        let message = format!("{}: {}", route.rpc.full_name(), status.code().description());
        let status = tonic::Status::with_details_and_metadata(
            status.code(),
            message,
            Bytes::copy_from_slice(status.details()),
            status.metadata().clone(),
        );
        return status::error_response(&status);
    }
    status::error_response(status)
}

fn is_json(content_type: &HeaderValue) -> bool {
    let Ok(text) = content_type.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The edge's own errors, in the same JSON shape as upstream errors.
fn edge_error(http: StatusCode, code: tonic::Code, message: &str) -> Response {
    let mut response = status::error_response(&tonic::Status::new(code, message));
    *response.status_mut() = http;
    response
}

fn bad_input(bad: &BadInput) -> Response {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(bad.field.clone(), bad.description.clone());
    let status = tonic::Status::with_error_details(
        tonic::Code::InvalidArgument,
        bad.description.clone(),
        details,
    );
    status::error_response(&status)
}

fn serialize(
    message: &DynamicMessage,
    options: &SerializeOptions,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    message.serialize_with_options(&mut serializer, options)?;
    Ok(out)
}

/// The response as proto3 JSON: the whole message, or only its `response_body` field.
fn to_json(route: &Route, message: &DynamicMessage) -> Result<Vec<u8>, serde_json::Error> {
    match &route.response_body {
        None => serialize(message, &SerializeOptions::new()),
        Some(field) => {
            let whole = serialize(message, &SerializeOptions::new().skip_default_fields(false))?;
            let mut whole: serde_json::Value = serde_json::from_slice(&whole)?;
            let part = whole
                .get_mut(field.json_name())
                .map(serde_json::Value::take)
                .unwrap_or(serde_json::Value::Null);
            serde_json::to_vec(&part)
        }
    }
}

/// A server stream as NDJSON or server-sent events.
/// `sse` is the keep-alive interval of server-sent events; `None` for NDJSON.
fn stream_response(
    route: &Route,
    response: tonic::Response<tonic::codec::Streaming<DynamicMessage>>,
    sse: Option<std::time::Duration>,
) -> Response {
    let keep_alive = sse;
    let sse = keep_alive.is_some();
    let mut headers = HeaderMap::new();
    status::pass_back(response.metadata(), &mut headers);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if sse {
            "text/event-stream"
        } else {
            "application/x-ndjson"
        }),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let route = route.clone();
    let messages = response.into_inner();
    // `None` in the state: the stream has ended and its last line was sent.
    let body = futures::stream::unfold(Some(messages), move |state| {
        let route = route.clone();
        async move {
            let mut messages = state?;
            let next = if let Some(keep_alive) = keep_alive {
                // A comment line now and then, so proxies between a browser and the edge do
                // not close a quiet stream (EventSource ignores comments).
                tokio::select! {
                    next = messages.message() => next,
                    () = tokio::time::sleep(keep_alive) => {
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(messages)));
                    }
                }
            } else {
                messages.message().await
            };
            let chunk = match next {
                Ok(Some(message)) => match to_json(&route, &message) {
                    Ok(json) => {
                        return Some((
                            Ok::<_, std::io::Error>(frame(sse, None, &json, true)),
                            Some(messages),
                        ));
                    }
                    Err(error) => {
                        tracing::error!(rpc = %route.grpc_path, %error, "stream message does not serialise");
                        let status =
                            tonic::Status::internal("a message could not be written as JSON");
                        error_frame(sse, &status)
                    }
                },
                Ok(None) => {
                    if sse {
                        Bytes::from_static(b"event: end\ndata: {}\n\n")
                    } else {
                        return None;
                    }
                }
                Err(status) => {
                    tracing::debug!(rpc = %route.grpc_path, code = ?status.code(), "stream ended with an error");
                    error_frame(sse, &status)
                }
            };
            Some((Ok(chunk), None))
        }
    });
    (StatusCode::OK, headers, Body::from_stream(body.boxed())).into_response()
}

fn error_frame(sse: bool, status: &tonic::Status) -> Bytes {
    let json = serde_json::to_vec(&status::error_body(status)).unwrap_or_else(|_| b"{}".to_vec());
    frame(sse, Some("error"), &json, false)
}

/// One message of a stream: `{"result": …}` / `{"error": …}` lines, or SSE events.
fn frame(sse: bool, event: Option<&str>, json: &[u8], result: bool) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    if sse {
        if let Some(event) = event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(event.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(json);
        out.extend_from_slice(b"\n\n");
    } else {
        out.extend_from_slice(if result {
            b"{\"result\":"
        } else {
            b"{\"error\":"
        });
        out.extend_from_slice(json);
        out.extend_from_slice(b"}\n");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_of_the_contract_loads() {
        let (api, problems) = JsonApi::from_descriptor_set(namaskah_proto::FILE_DESCRIPTOR_SET);
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(api.routes.len() >= 50, "{} routes", api.routes.len());
        let get_me = api
            .routes
            .iter()
            .find(|r| r.rpc.full_name() == "namaskah.v1.AuthService.GetMe")
            .expect("GetMe is annotated");
        assert_eq!(get_me.method, http::Method::GET);
        assert_eq!(get_me.grpc_path.as_str(), "/namaskah.v1.AuthService/GetMe");
    }

    #[test]
    fn no_two_bindings_share_a_method_and_template() {
        let (api, _) = JsonApi::from_descriptor_set(namaskah_proto::FILE_DESCRIPTOR_SET);
        let mut seen = std::collections::HashSet::new();
        for route in &api.routes {
            assert!(
                seen.insert((route.method.clone(), route.template.as_str().to_owned())),
                "{} {} is bound twice",
                route.method,
                route.template.as_str()
            );
        }
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "multipart/form-data",
        ] {
            assert!(!is_json(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn server_sent_events_are_asked_for_by_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wants_sse(&headers));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream;q=0.9"),
        );
        assert!(wants_sse(&headers));
    }
}
