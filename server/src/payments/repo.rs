//! Storage of top-ups: the payment log, its events, and the guarded state changes that make
//! crediting happen once.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, sea_query::SimpleExpr,
};
use uuid::Uuid;

use super::domain::{FailureReason, State, TopUpStatus};
use super::entities::{payment_events, payment_logs};
use crate::error::StoreError;

pub type Payment = payment_logs::Model;

impl Payment {
    /// The row's state; an unreadable status is a corrupt row.
    pub fn state(&self) -> Result<State, StoreError> {
        let status = TopUpStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Corrupt(format!("payment {} status", self.reference)))?;
        Ok(State {
            status,
            failure: self
                .failure_reason
                .as_deref()
                .and_then(FailureReason::parse),
        })
    }
}

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Create,
    Webhook,
    Verify,
    Sandbox,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Create => "create",
            Source::Webhook => "webhook",
            Source::Verify => "verify",
            Source::Sandbox => "sandbox",
        }
    }
}

pub async fn by_reference(
    conn: &impl ConnectionTrait,
    reference: &str,
) -> Result<Option<Payment>, StoreError> {
    Ok(payment_logs::Entity::find()
        .filter(payment_logs::Column::Reference.eq(reference))
        .one(conn)
        .await?)
}

pub async fn by_request(
    conn: &impl ConnectionTrait,
    user: Uuid,
    request_id: &str,
) -> Result<Option<Payment>, StoreError> {
    Ok(payment_logs::Entity::find()
        .filter(payment_logs::Column::UserId.eq(user))
        .filter(payment_logs::Column::RequestId.eq(request_id))
        .one(conn)
        .await?)
}

/// Inserts a new top-up unless the account already used its request id; returns whether
/// it was written.
pub async fn insert(txn: &DatabaseTransaction, payment: Payment) -> Result<bool, StoreError> {
    let written = payment_logs::Entity::insert(payment.into_active_model())
        .on_conflict(
            OnConflict::columns([
                payment_logs::Column::UserId,
                payment_logs::Column::RequestId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(written == 1)
}

/// Records a transition (or, with `from == to`, a refusal that changed nothing).
pub async fn record(
    conn: &impl ConnectionTrait,
    payment: Uuid,
    from: Option<TopUpStatus>,
    to: TopUpStatus,
    source: Source,
    detail: &str,
) -> Result<(), StoreError> {
    payment_events::Entity::insert(
        payment_events::Model {
            id: Uuid::now_v7(),
            payment_id: payment,
            from_status: from.map(|s| s.as_str().to_owned()),
            to_status: to.as_str().to_owned(),
            source: source.as_str().to_owned(),
            detail: detail.chars().take(500).collect(),
            created_at: Utc::now(),
        }
        .into_active_model(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Moves a top-up from exactly `from` to `to`, setting `columns` too; returns false when
/// the row was no longer in `from` (someone else moved it first). On PostgreSQL the update
/// waits for a concurrent mover's transaction and re-checks the condition after it.
pub async fn transition(
    txn: &DatabaseTransaction,
    payment: Uuid,
    from: State,
    to: TopUpStatus,
    columns: Vec<(payment_logs::Column, SimpleExpr)>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut update = payment_logs::Entity::update_many()
        .col_expr(payment_logs::Column::Status, Expr::value(to.as_str()))
        .col_expr(payment_logs::Column::UpdatedAt, Expr::value(now));
    for (column, value) in columns {
        update = update.col_expr(column, value);
    }
    let failure = payment_logs::Column::FailureReason;
    let update = update
        .filter(payment_logs::Column::Id.eq(payment))
        .filter(payment_logs::Column::Status.eq(from.status.as_str()))
        .filter(match from.failure {
            Some(reason) => failure.eq(reason.as_str()),
            None => failure.is_null(),
        });
    Ok(update.exec(txn).await?.rows_affected == 1)
}

/// A top-up's events, oldest first.
pub async fn events(
    conn: &impl ConnectionTrait,
    payment: Uuid,
) -> Result<Vec<payment_events::Model>, StoreError> {
    Ok(payment_events::Entity::find()
        .filter(payment_events::Column::PaymentId.eq(payment))
        .order_by_asc(payment_events::Column::Id)
        .all(conn)
        .await?)
}
