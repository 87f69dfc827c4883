//! Storage of the administration room: the audit log (append only: the database refuses
//! updates and deletes), suspensions, remembered answers, and the account searches.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::entities::{admin_requests, audit_log_entries, user_suspensions};
use crate::error::StoreError;
use crate::identity::entities::{api_keys, sessions, users};
use crate::verification::entities::verifications;

pub type AuditRow = audit_log_entries::Model;
pub type Suspension = user_suspensions::Model;

/// Appends one entry.
pub async fn append(conn: &impl ConnectionTrait, entry: AuditRow) -> Result<(), StoreError> {
    audit_log_entries::Entity::insert(entry.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Which audit entries to list.
#[derive(Default)]
pub struct AuditFilter {
    pub actor: Option<Uuid>,
    pub target: Option<String>,
    pub method: Option<String>,
    pub outcome: Option<&'static str>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Entries newest first (ids are time-ordered), after the page token's `before`, at most
/// `limit + 1` (one more tells whether there is a next page).
pub async fn audit_entries(
    conn: &impl ConnectionTrait,
    filter: &AuditFilter,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut query = audit_log_entries::Entity::find();
    if let Some(actor) = filter.actor {
        query = query.filter(audit_log_entries::Column::ActorId.eq(actor));
    }
    if let Some(target) = &filter.target {
        query = query.filter(audit_log_entries::Column::Target.eq(target.as_str()));
    }
    if let Some(method) = &filter.method {
        query = query.filter(audit_log_entries::Column::Method.eq(method.as_str()));
    }
    if let Some(outcome) = filter.outcome {
        query = query.filter(audit_log_entries::Column::Outcome.eq(outcome));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log_entries::Column::CreatedAt.gte(from));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log_entries::Column::CreatedAt.lt(until));
    }
    if let Some(before) = before {
        query = query.filter(audit_log_entries::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(audit_log_entries::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?)
}

/// Which accounts to list.
#[derive(Default)]
pub struct UserFilter {
    /// A `LIKE` pattern over the lower-cased address.
    pub email_pattern: Option<String>,
    pub plan: Option<&'static str>,
    pub status: Option<&'static str>,
    /// `Some(None)`: the platform's own customers; `Some(Some(id))`: a tenant's.
    pub tenant: Option<Option<Uuid>>,
}

/// Accounts newest first (ids are time-ordered), at most `limit + 1`.
pub async fn users(
    conn: &impl ConnectionTrait,
    filter: &UserFilter,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<users::Model>, StoreError> {
    let mut query = users::Entity::find();
    if let Some(pattern) = &filter.email_pattern {
        query = query.filter(
            Expr::col(users::Column::EmailLower).like(LikeExpr::new(pattern.as_str()).escape('\\')),
        );
    }
    if let Some(plan) = filter.plan {
        query = query.filter(users::Column::Plan.eq(plan));
    }
    if let Some(status) = filter.status {
        query = query.filter(users::Column::Status.eq(status));
    }
    match filter.tenant {
        None => {}
        Some(None) => query = query.filter(users::Column::TenantId.is_null()),
        Some(Some(tenant)) => query = query.filter(users::Column::TenantId.eq(tenant)),
    }
    if let Some(before) = before {
        query = query.filter(users::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(users::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?)
}

pub async fn user(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<users::Model>, StoreError> {
    Ok(users::Entity::find_by_id(id).one(conn).await?)
}

/// How many verifications an account has created.
pub async fn verification_count(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<u64, StoreError> {
    Ok(verifications::Entity::find()
        .filter(verifications::Column::UserId.eq(user))
        .count(conn)
        .await?)
}

/// When the account last showed itself: its latest API-key use (kept to the minute) or
/// its latest login.
pub async fn last_active(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let key: Option<Option<DateTime<Utc>>> = api_keys::Entity::find()
        .select_only()
        .column_as(api_keys::Column::LastUsedAt.max(), "last")
        .filter(api_keys::Column::UserId.eq(user))
        .into_tuple()
        .one(conn)
        .await?;
    let login: Option<Option<DateTime<Utc>>> = sessions::Entity::find()
        .select_only()
        .column_as(sessions::Column::CreatedAt.max(), "last")
        .filter(sessions::Column::UserId.eq(user))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(Ord::max(key.flatten(), login.flatten()))
}

pub async fn suspension(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Option<Suspension>, StoreError> {
    Ok(user_suspensions::Entity::find_by_id(user).one(conn).await?)
}

pub async fn put_suspension(
    conn: &impl ConnectionTrait,
    row: Suspension,
) -> Result<(), StoreError> {
    user_suspensions::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::column(user_suspensions::Column::UserId)
                .update_columns([
                    user_suspensions::Column::SuspendedBy,
                    user_suspensions::Column::Reason,
                    user_suspensions::Column::SuspendedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn lift_suspension(conn: &impl ConnectionTrait, user: Uuid) -> Result<(), StoreError> {
    user_suspensions::Entity::delete_by_id(user)
        .exec(conn)
        .await?;
    Ok(())
}

pub type Remembered = admin_requests::Model;

/// The answer remembered for an administrator's `request_id`, if any.
pub async fn remembered(
    conn: &impl ConnectionTrait,
    actor: Uuid,
    request_id: &str,
) -> Result<Option<Remembered>, StoreError> {
    Ok(
        admin_requests::Entity::find_by_id((actor, request_id.to_owned()))
            .one(conn)
            .await?,
    )
}

/// Remembers an answer; `false` if the `request_id` was taken meanwhile (a concurrent call
/// with the same id: the caller rolls back and replays).
pub async fn remember(conn: &impl ConnectionTrait, row: Remembered) -> Result<bool, StoreError> {
    let inserted = admin_requests::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::columns([
                admin_requests::Column::ActorId,
                admin_requests::Column::RequestId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}
