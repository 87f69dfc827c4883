//! The answers the edge gives itself, shaped for the protocol of whoever asked.
//!
//! Plain HTTP callers get the HTTP status and a JSON body `{"code": <google.rpc.Code>,
//! "message": "…", "details": []}` (the shape JSON transcoding uses for upstream errors too).
//! grpc-web callers get the HTTP status plus `grpc-status`/`grpc-message` headers (a
//! trailers-only response), so both browsers' HTTP handling and grpc-web clients see the
//! reason. Native gRPC callers get HTTP 200 with `grpc-status`, as the gRPC protocol
//! requires: gRPC clients other than tonic ignore `grpc-status` on non-200 responses.

use std::any::Any;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

/// The wire protocol of a request, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// One of the four content types `tonic_web` translates.
    GrpcWeb,
    /// `application/grpc` and its `+codec` / `;params` variants.
    Grpc,
    /// Everything else.
    Http,
}

impl Protocol {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return Self::Http;
        };
        match content_type {
            "application/grpc-web"
            | "application/grpc-web+proto"
            | "application/grpc-web-text"
            | "application/grpc-web-text+proto" => Self::GrpcWeb,
            "application/grpc" => Self::Grpc,
            ct if ct.starts_with("application/grpc+") || ct.starts_with("application/grpc;") => {
                Self::Grpc
            }
            _ => Self::Http,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
    /// Always empty here; the same shape as upstream errors, which may have details.
    details: [(); 0],
}

/// A JSON error for plain HTTP callers.
pub(crate) fn json_error(http: StatusCode, code: tonic::Code, message: &str) -> Response {
    let body = ErrorBody {
        code: code as i32,
        message,
        details: [],
    };
    // Serialising two plain fields cannot fail; fall back to an empty object regardless.
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    (
        http,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response()
}

/// An error answer from the edge itself, in the caller's protocol.
pub(crate) fn refuse(protocol: Protocol, http: StatusCode, status: tonic::Status) -> Response {
    match protocol {
        Protocol::Http => json_error(http, status.code(), status.message()),
        Protocol::Grpc => status.into_http::<Body>(),
        Protocol::GrpcWeb => {
            let mut response = status.into_http::<Body>();
            *response.status_mut() = http;
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/grpc-web+proto"),
            );
            response
        }
    }
}

/// A known path asked with a method it does not answer.
pub(crate) async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        tonic::Code::Unimplemented,
        &format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The answer when a handler panics: the connection and the process survive.
pub(crate) fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = what, "request handler panicked");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
        "internal error",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol_of(content_type: &str) -> Protocol {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        Protocol::of(&headers)
    }

    #[test]
    fn classifies_content_types() {
        assert_eq!(protocol_of("application/grpc-web"), Protocol::GrpcWeb);
        assert_eq!(protocol_of("application/grpc-web+proto"), Protocol::GrpcWeb);
        assert_eq!(protocol_of("application/grpc-web-text"), Protocol::GrpcWeb);
        assert_eq!(
            protocol_of("application/grpc-web-text+proto"),
            Protocol::GrpcWeb
        );
        assert_eq!(protocol_of("application/grpc"), Protocol::Grpc);
        assert_eq!(protocol_of("application/grpc+proto"), Protocol::Grpc);
        assert_eq!(protocol_of("application/grpcx"), Protocol::Http);
        assert_eq!(protocol_of("application/json"), Protocol::Http);
        assert_eq!(Protocol::of(&HeaderMap::new()), Protocol::Http);
    }
}
