//! `GET /healthz`: the edge is healthy when its upstream says it is serving.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::Edge;

pub(crate) async fn healthz(State(edge): State<Edge>) -> Response {
    let mut client = HealthClient::new(edge.upstream);
    // The empty service name is the server as a whole (grpc.health.v1).
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    let verdict = match tokio::time::timeout(edge.options.health_check_timeout, check).await {
        Ok(Ok(answer)) if answer.get_ref().status() == ServingStatus::Serving => Ok(()),
        Ok(Ok(answer)) => Err(format!(
            "upstream is {}",
            answer.get_ref().status().as_str_name()
        )),
        Ok(Err(status)) => Err(format!(
            "upstream health check failed: {:?}: {}",
            status.code(),
            status.message()
        )),
        Err(_) => Err(format!(
            "upstream health check timed out after {:?}",
            edge.options.health_check_timeout
        )),
    };
    let (status, body) = match verdict {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(reason) => {
            tracing::warn!(%reason, "healthz: unhealthy");
            (StatusCode::SERVICE_UNAVAILABLE, reason)
        }
    };
    (
        status,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
