//! `POST /webhooks/{source}`: webhooks from the payment gateway and the SMS providers,
//! handed over untouched to `namaskah.v1.WebhookService/ReceiveWebhook`.
//!
//! The server checks the sender's signature over exactly the bytes that were signed, so the
//! edge changes nothing on the way: the body byte for byte, every header (names lowercase,
//! values as raw bytes, one entry per value), the raw query string. The route takes no
//! credentials: the signature is the credential. The sender is answered by the outcome, as
//! `proto/namaskah/v1/webhook.proto` lays out, so that it retries exactly when retrying can
//! help: 4xx for a webhook that will never be taken as it is, 5xx for a server that cannot
//! take it now.

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use namaskah_proto::v1::webhook_service_client::WebhookServiceClient;
use namaskah_proto::v1::{ReceiveWebhookRequest, WebhookHeader, WebhookSource};
use serde::Serialize;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_types::StatusExt as _;

use crate::Edge;
use crate::proxy::forwarded_for;

/// The largest webhook body the edge hands over: 1 MiB. Real webhooks are a few KiB; the
/// edge's own `max_body_bytes` applies too when it is smaller.
pub const WEBHOOK_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The sender named by the last path segment, spelled as in the proto (`WebhookSource`
/// without its prefix, lowercase). Exact: `/webhooks/Paystack` is not a webhook route.
fn source_named(segment: &str) -> Option<WebhookSource> {
    match segment {
        "paystack" => Some(WebhookSource::Paystack),
        "textverified" => Some(WebhookSource::Textverified),
        "sandbox" => Some(WebhookSource::Sandbox),
        _ => None,
    }
}

/// `POST /webhooks/{source}`.
pub(crate) async fn receive(
    State(edge): State<Edge>,
    source: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let receive_time = SystemTime::now();
    let Some(source) = source.ok().and_then(|Path(segment)| source_named(&segment)) else {
        return failure(StatusCode::NOT_FOUND, "unknown webhook source", None);
    };

    let (parts, body) = request.into_parts();
    let max_bytes = edge.options.max_body_bytes.min(WEBHOOK_MAX_BODY_BYTES);
    if declared_length(&parts.headers).is_some_and(|length| length > max_bytes as u64) {
        return too_large(max_bytes);
    }
    let body = match Limited::new(body, max_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return too_large(max_bytes),
        Err(error) => {
            tracing::debug!(%error, ?source, "webhook body could not be read");
            return failure(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
                None,
            );
        }
    };

    let peer: Option<IpAddr> = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    let webhook = ReceiveWebhookRequest {
        source: source as i32,
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| WebhookHeader {
                name: name.as_str().to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
        body: body.to_vec(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        client_address: peer.map(|ip| ip.to_string()).unwrap_or_default(),
        receive_time: Some(receive_time.into()),
    };

    let mut call = tonic::Request::new(webhook);
    call.set_timeout(edge.options.webhook_timeout);
    // As for every call the edge forwards: the server limits unauthenticated calls per
    // client address, and would otherwise see only the edge's.
    if let Some(peer) = peer
        && let Ok(chain) = forwarded_for(&parts.headers, peer).parse::<MetadataValue<_>>()
    {
        call.metadata_mut().insert("x-forwarded-for", chain);
    }

    match WebhookServiceClient::new(edge.upstream)
        .receive_webhook(call)
        .await
    {
        Ok(answer) => {
            let answer = answer.into_inner();
            tracing::debug!(
                ?source,
                accepted = answer.accepted,
                related = %answer.related_resource,
                "webhook handed over"
            );
            json(
                StatusCode::OK,
                &Accepted {
                    accepted: answer.accepted,
                },
            )
        }
        Err(status) => refusal(source, &status),
    }
}

/// Any method but POST on a webhook route (axum adds `Allow: POST`).
pub(crate) async fn method_not_allowed(method: Method) -> Response {
    failure(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{method} is not allowed: webhooks are delivered with POST"),
        None,
    )
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn too_large(max_bytes: usize) -> Response {
    failure(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than {max_bytes} bytes"),
        None,
    )
}

/// The sender's answer when the server did not take the webhook.
fn refusal(source: WebhookSource, status: &tonic::Status) -> Response {
    // A status the edge made itself (the upstream unreachable, the call timed out, the
    // connection dropped) carries the error that caused it; one the server sent does not.
    if std::error::Error::source(status).is_some() {
        tracing::warn!(?source, code = ?status.code(), error = %status, "webhook: upstream call failed");
        return if status.code() == Code::Cancelled || status.code() == Code::DeadlineExceeded {
            failure(
                StatusCode::GATEWAY_TIMEOUT,
                "the server did not answer in time; try again later",
                None,
            )
        } else {
            failure(
                StatusCode::BAD_GATEWAY,
                "the server is unreachable; try again later",
                None,
            )
        };
    }

    let details = status.get_error_details();
    let reason = details
        .error_info()
        .map(|info| info.reason.as_str())
        .filter(|reason| !reason.is_empty());
    let http = match status.code() {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // Anything else may pass: the sender should try again later.
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    if http.is_server_error() {
        tracing::warn!(?source, code = ?status.code(), reason, message = status.message(), "webhook not taken; the sender will retry");
    } else {
        tracing::info!(?source, code = ?status.code(), reason, message = status.message(), "webhook refused");
    }

    let mut response = failure(http, status.message(), reason);
    if matches!(
        http,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) && let Some(delay) = retry_after(status, &details)
    {
        response.headers_mut().insert(RETRY_AFTER, delay);
    }
    response
}

/// When to try again: the server's `retry-after` metadata as it is, or else its `RetryInfo`
/// in whole seconds (rounded up, at least 1).
fn retry_after(status: &tonic::Status, details: &tonic_types::ErrorDetails) -> Option<HeaderValue> {
    if let Some(value) = status.metadata().get("retry-after")
        && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
    {
        return Some(value);
    }
    let delay = details.retry_info()?.retry_delay?;
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    Some(HeaderValue::from(seconds.max(1)))
}

#[derive(Serialize)]
struct Accepted {
    accepted: bool,
}

#[derive(Serialize)]
struct Failure<'a> {
    error: &'a str,
    /// The `ErrorInfo` reason, when the server gave one (`INVALID_SIGNATURE`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

fn failure(http: StatusCode, error: &str, reason: Option<&str>) -> Response {
    json(http, &Failure { error, reason })
}

fn json(http: StatusCode, body: &impl Serialize) -> Response {
    // Serialising a bool or two strings cannot fail; an empty object regardless.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        http,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn sources_are_the_proto_names_in_lowercase() {
        for source in [
            WebhookSource::Paystack,
            WebhookSource::Textverified,
            WebhookSource::Sandbox,
        ] {
            let segment = source
                .as_str_name()
                .strip_prefix("WEBHOOK_SOURCE_")
                .unwrap()
                .to_ascii_lowercase();
            assert_eq!(source_named(&segment), Some(source));
        }
        for other in [
            "",
            "unspecified",
            "Paystack",
            "PAYSTACK",
            "5sim",
            "paystack ",
        ] {
            assert_eq!(source_named(other), None, "{other:?}");
        }
    }

    #[test]
    fn retry_after_prefers_the_metadata_then_rounds_retry_info_up() {
        let mut details = ErrorDetails::new();
        details.set_retry_info(Some(Duration::from_millis(2500)));
        let status = tonic::Status::with_error_details(Code::Unavailable, "busy", details);
        let details = status.get_error_details();
        assert_eq!(retry_after(&status, &details).unwrap(), "3");

        let mut status = status;
        status
            .metadata_mut()
            .insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&status, &details).unwrap(), "7");

        let bare = tonic::Status::unavailable("busy");
        assert!(retry_after(&bare, &bare.get_error_details()).is_none());
    }
}
