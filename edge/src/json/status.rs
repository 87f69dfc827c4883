//! gRPC statuses as HTTP answers: the status code, a `{code, message, details}` body and
//! the headers partners read (`Retry-After`, `RateLimit-*`, `X-Process-Time`).

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic_types::{ErrorDetail, StatusExt as _};

/// `google.rpc.Code` → HTTP, as `google/rpc/code.proto` documents it.
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // 499 Client Closed Request: not in `http`'s list of names, but valid.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The metadata the edge turns into HTTP headers, and the header each becomes.
const PASSED_BACK: [(&str, HeaderName); 6] = [
    ("x-process-time", HeaderName::from_static("x-process-time")),
    ("x-request-id", HeaderName::from_static("x-request-id")),
    ("retry-after", RETRY_AFTER),
    (
        "x-ratelimit-limit",
        HeaderName::from_static("ratelimit-limit"),
    ),
    (
        "x-ratelimit-remaining",
        HeaderName::from_static("ratelimit-remaining"),
    ),
    (
        "x-ratelimit-reset",
        HeaderName::from_static("ratelimit-reset"),
    ),
];

/// Copies the metadata partners see as headers (`x-process-time` → `X-Process-Time`,
/// `x-request-id` → `X-Request-Id`, `retry-after` → `Retry-After`, `x-ratelimit-*` →
/// `RateLimit-*`).
pub(crate) fn pass_back(metadata: &MetadataMap, headers: &mut HeaderMap) {
    let upstream = metadata.as_ref();
    for (from, to) in PASSED_BACK {
        if let Some(value) = upstream.get(from) {
            headers.insert(to, value.clone());
        }
    }
}

/// The JSON error body: `{"code": <google.rpc.Code>, "message": "…", "details": [...]}`,
/// each detail with its `@type` as in `google.protobuf.Any`'s JSON form.
pub(crate) fn error_body(status: &tonic::Status) -> Value {
    let details: Vec<Value> = status
        .get_error_details_vec()
        .into_iter()
        .filter_map(detail_json)
        .collect();
    json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details,
    })
}

/// An upstream (or edge) status as the HTTP answer.
pub(crate) fn error_response(status: &tonic::Status) -> Response {
    let mut headers = HeaderMap::new();
    pass_back(status.metadata(), &mut headers);
    if !headers.contains_key(RETRY_AFTER)
        && let Some(delay) = status.get_details_retry_info().and_then(|r| r.retry_delay)
    {
        // Whole seconds, rounded up: `Retry-After` has no fractions.
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::to_vec(&error_body(status)).unwrap_or_else(|_| b"{}".to_vec());
    (http_status(status.code()), headers, body).into_response()
}

fn detail_json(detail: ErrorDetail) -> Option<Value> {
    let value = match detail {
        ErrorDetail::ErrorInfo(info) => json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": info.reason,
            "domain": info.domain,
            "metadata": info.metadata,
        }),
        ErrorDetail::BadRequest(bad) => json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": bad.field_violations.iter().map(|v| {
                let mut violation = Map::new();
                violation.insert("field".into(), v.field.clone().into());
                violation.insert("description".into(), v.description.clone().into());
                if !v.reason.is_empty() {
                    violation.insert("reason".into(), v.reason.clone().into());
                }
                Value::Object(violation)
            }).collect::<Vec<_>>(),
        }),
        ErrorDetail::RetryInfo(retry) => json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": retry.retry_delay.map(duration_json).unwrap_or_else(|| "0s".into()),
        }),
        ErrorDetail::PreconditionFailure(failure) => json!({
            "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
            "violations": failure.violations.iter().map(|v| json!({
                "type": v.r#type,
                "subject": v.subject,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::QuotaFailure(failure) => json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": failure.violations.iter().map(|v| json!({
                "subject": v.subject,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::ResourceInfo(info) => json!({
            "@type": "type.googleapis.com/google.rpc.ResourceInfo",
            "resourceType": info.resource_type,
            "resourceName": info.resource_name,
            "owner": info.owner,
            "description": info.description,
        }),
        ErrorDetail::RequestInfo(info) => json!({
            "@type": "type.googleapis.com/google.rpc.RequestInfo",
            "requestId": info.request_id,
            "servingData": info.serving_data,
        }),
        ErrorDetail::Help(help) => json!({
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": help.links.iter().map(|l| json!({
                "description": l.description,
                "url": l.url,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::LocalizedMessage(message) => json!({
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": message.locale,
            "message": message.message,
        }),
        // Stack traces and internal detail are for the server's logs, not for partners.
        ErrorDetail::DebugInfo(_) => return None,
        _ => return None,
    };
    Some(value)
}

/// `google.protobuf.Duration`'s JSON form: seconds with up to 9 decimals and an `s`.
fn duration_json(delay: std::time::Duration) -> String {
    let nanos = delay.subsec_nanos();
    if nanos == 0 {
        format!("{}s", delay.as_secs())
    } else {
        let fraction = format!("{nanos:09}");
        format!("{}.{}s", delay.as_secs(), fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic_types::{ErrorDetails, StatusExt as _};

    use super::*;

    #[test]
    fn codes_map_to_http_as_google_rpc_documents() {
        let expected = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in expected {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn durations_in_json_form() {
        assert_eq!(duration_json(Duration::from_secs(3)), "3s");
        assert_eq!(duration_json(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration_json(Duration::from_nanos(1)), "0.000000001s");
    }

    #[test]
    fn details_keep_their_types_and_debug_info_is_dropped() {
        let mut details = ErrorDetails::with_error_info(
            "NO_NUMBERS",
            "namaskah.sms",
            [("verification".to_owned(), "verifications/1".to_owned())],
        );
        details.set_retry_info(Some(Duration::from_millis(2500)));
        details.add_bad_request_violation("service", "unknown service");
        details.set_debug_info(vec!["frame".into()], "secret");
        let status = tonic::Status::with_error_details(Code::Unavailable, "no numbers", details);
        let body = error_body(&status);
        assert_eq!(body["code"], 14);
        assert_eq!(body["message"], "no numbers");
        let details = body["details"].as_array().unwrap();
        assert_eq!(details.len(), 3, "{details:?}");
        let types: Vec<&str> = details
            .iter()
            .map(|d| d["@type"].as_str().unwrap())
            .collect();
        assert!(types.contains(&"type.googleapis.com/google.rpc.ErrorInfo"));
        assert!(types.contains(&"type.googleapis.com/google.rpc.RetryInfo"));
        assert!(types.contains(&"type.googleapis.com/google.rpc.BadRequest"));
        assert!(!body.to_string().contains("secret"));
        let response = error_response(&status);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
    }
}
