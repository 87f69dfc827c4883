//! The `/metrics` listener (`NAMASKAH_METRICS_ADDR`): Prometheus's text format from the
//! process's registry. Values that are cheaper to read than to keep up to date (active
//! users, the database pool) are refreshed at each scrape.
use std::future::Future;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

/// How often histogram samples are folded in when nobody scrapes (bounds their memory).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    db: DatabaseConnection,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let upkeep = handle.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                let db = db.clone();
                async move { scrape(&handle, &db) }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await;
    upkeep_task.abort();
    served.map_err(Into::into)
}

fn scrape(handle: &PrometheusHandle, db: &DatabaseConnection) -> Response {
    super::metrics::set_active_users(super::active_users());
    crate::store::record_pool(db);
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
