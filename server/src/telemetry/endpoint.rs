//! The `/metrics` listener (`NAMASKAH_METRICS_ADDR`): Prometheus's text format from the
//! process's registry. Values that are cheaper to read than to keep up to date (active
//! users, the database pool, the refund backlog) are refreshed at each scrape.
use std::future::Future;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

/// How long past its expiry an open verification may wait for the expiry job (which runs
/// every `NAMASKAH_JOB_INTERVAL`) before it counts as backlog.
const BACKLOG_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Verifications still `ACTIVE` more than [`BACKLOG_GRACE`] after their expiry: refunds
/// that are due and not made (the same for every instance: one database).
async fn refund_backlog(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    use crate::verification::entities::verifications;
    verifications::Entity::find()
        .filter(verifications::Column::Status.eq("active"))
        .filter(verifications::Column::ExpiresAt.lt(chrono::Utc::now() - BACKLOG_GRACE))
        .count(db)
        .await
}

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
                async move { scrape(&handle, &db).await }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await;
    upkeep_task.abort();
    served.map_err(Into::into)
}

async fn scrape(handle: &PrometheusHandle, db: &DatabaseConnection) -> Response {
    super::metrics::set_active_users(super::active_users());
    crate::store::record_pool(db);
    match refund_backlog(db).await {
        Ok(count) => super::metrics::set_refund_backlog(count),
        Err(error) => tracing::warn!(%error, "cannot count the refund backlog"),
    }
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
