//! Storage of subscriptions, their changes, billing periods (with the metered API calls)
//! and usage alerts.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use uuid::Uuid;

use super::domain::Subscription;
use super::entities::{
    billing_periods, subscription_changes, subscriptions, usage_alert_settings, usage_alerts,
};
use crate::error::StoreError;
use crate::identity::domain::Plan;
use crate::identity::entities::users;
use crate::verification::entities::verifications;

pub type SubscriptionRow = subscriptions::Model;
pub type ChangeRow = subscription_changes::Model;
pub type PeriodRow = billing_periods::Model;

pub fn parse_plan(text: &str) -> Result<Plan, StoreError> {
    Plan::parse(text).ok_or_else(|| StoreError::Corrupt(format!("plan `{text}`")))
}

/// The rules' view of a stored subscription.
pub fn subscription_of(row: &SubscriptionRow) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        plan: parse_plan(&row.plan)?,
        anchor: row.anchor_at,
        period_start: row.period_start,
        period_end: row.period_end,
        scheduled_plan: row.scheduled_plan.as_deref().map(parse_plan).transpose()?,
        cancel_at_period_end: row.cancel_at_period_end,
        plan_started_at: row.plan_started_at,
    })
}

pub async fn subscription(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Option<SubscriptionRow>, StoreError> {
    Ok(subscriptions::Entity::find_by_id(user).one(conn).await?)
}

/// Creates the subscription row of an account that has none yet (on `plan`, which is
/// starter unless the account's plan was set some other way).
pub async fn ensure_subscription(
    conn: &impl ConnectionTrait,
    user: Uuid,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = subscriptions::Model {
        user_id: user,
        plan: sub.plan.as_str().to_owned(),
        anchor_at: sub.anchor,
        period_start: sub.period_start,
        period_end: sub.period_end,
        scheduled_plan: sub.scheduled_plan.map(|p| p.as_str().to_owned()),
        cancel_at_period_end: sub.cancel_at_period_end,
        plan_started_at: sub.plan_started_at,
        version: 1,
        lease_until: None,
        created_at: now,
        updated_at: now,
    };
    subscriptions::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::column(subscriptions::Column::UserId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Writes `next` over the subscription if it is still at `version`; false if something
/// else changed it first.
pub async fn update_subscription(
    conn: &impl ConnectionTrait,
    user: Uuid,
    version: i64,
    next: &Subscription,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use subscriptions::Column as C;
    let updated = subscriptions::Entity::update_many()
        .col_expr(C::Plan, Expr::value(next.plan.as_str()))
        .col_expr(C::AnchorAt, Expr::value(next.anchor))
        .col_expr(C::PeriodStart, Expr::value(next.period_start))
        .col_expr(C::PeriodEnd, Expr::value(next.period_end))
        .col_expr(
            C::ScheduledPlan,
            Expr::value(next.scheduled_plan.map(|p| p.as_str().to_owned())),
        )
        .col_expr(C::CancelAtPeriodEnd, Expr::value(next.cancel_at_period_end))
        .col_expr(C::PlanStartedAt, Expr::value(next.plan_started_at))
        .col_expr(C::Version, Expr::col(C::Version).add(1))
        .col_expr(C::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(C::UpdatedAt, Expr::value(now))
        .filter(C::UserId.eq(user))
        .filter(C::Version.eq(version))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// The account's plan column, read by the rest of the system (catalog discounts, limits).
pub async fn set_user_plan(
    conn: &impl ConnectionTrait,
    user: Uuid,
    plan: Plan,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    users::Entity::update_many()
        .col_expr(users::Column::Plan, Expr::value(plan.as_str()))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user))
        .exec(conn)
        .await?;
    Ok(())
}

pub async fn user(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<users::Model>, StoreError> {
    Ok(users::Entity::find_by_id(id).one(conn).await?)
}

/// Records a change; false (nothing written) when its request id was used already.
pub async fn insert_change(
    conn: &impl ConnectionTrait,
    row: ChangeRow,
) -> Result<bool, StoreError> {
    let inserted = subscription_changes::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::columns([
                subscription_changes::Column::UserId,
                subscription_changes::Column::RequestId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

pub async fn change_by_request(
    conn: &impl ConnectionTrait,
    user: Uuid,
    request_id: &str,
) -> Result<Option<ChangeRow>, StoreError> {
    Ok(subscription_changes::Entity::find()
        .filter(subscription_changes::Column::UserId.eq(user))
        .filter(subscription_changes::Column::RequestId.eq(request_id))
        .one(conn)
        .await?)
}

pub async fn changes(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Vec<ChangeRow>, StoreError> {
    Ok(subscription_changes::Entity::find()
        .filter(subscription_changes::Column::UserId.eq(user))
        .order_by_asc(subscription_changes::Column::CreatedAt)
        .order_by_asc(subscription_changes::Column::Id)
        .all(conn)
        .await?)
}

/// The terms of one billing period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodTerms {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub plan: Plan,
    pub included_api_calls: i64,
    pub overage_per_thousand: i64,
}

fn period_row(user: Uuid, terms: &PeriodTerms, calls: i64, now: DateTime<Utc>) -> PeriodRow {
    billing_periods::Model {
        user_id: user,
        period_start: terms.start,
        period_end: terms.end,
        plan: terms.plan.as_str().to_owned(),
        included_api_calls: terms.included_api_calls,
        overage_per_thousand: terms.overage_per_thousand,
        api_calls: calls,
        calls_updated_at: (calls > 0).then_some(now),
        close_status: "open".to_owned(),
        overage_calls: None,
        overage_charge: None,
        overage_entry_id: None,
        closed_at: None,
        lease_until: None,
        created_at: now,
    }
}

/// Records a period's terms (a plan change or renewal), keeping any calls already counted
/// in it.
pub async fn set_period_terms(
    conn: &impl ConnectionTrait,
    user: Uuid,
    terms: &PeriodTerms,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use billing_periods::Column as C;
    billing_periods::Entity::insert(period_row(user, terms, 0, now).into_active_model())
        .on_conflict(
            OnConflict::columns([C::UserId, C::PeriodStart])
                .update_columns([
                    C::PeriodEnd,
                    C::Plan,
                    C::IncludedApiCalls,
                    C::OveragePerThousand,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Adds metered calls, one statement for the whole batch. A period not recorded yet is
/// created with the terms the meter saw; a renewal later corrects them.
pub async fn add_calls(
    conn: &impl ConnectionTrait,
    batch: &[(Uuid, PeriodTerms, i64)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use billing_periods::Column as C;
    if batch.is_empty() {
        return Ok(());
    }
    let rows = batch
        .iter()
        .map(|(user, terms, calls)| period_row(*user, terms, *calls, now).into_active_model());
    billing_periods::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([C::UserId, C::PeriodStart])
                .value(
                    C::ApiCalls,
                    Expr::col((billing_periods::Entity, C::ApiCalls))
                        .add(Expr::cust("excluded.api_calls")),
                )
                .value(C::CallsUpdatedAt, Expr::cust("excluded.calls_updated_at"))
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn period(
    conn: &impl ConnectionTrait,
    user: Uuid,
    start: DateTime<Utc>,
) -> Result<Option<PeriodRow>, StoreError> {
    Ok(billing_periods::Entity::find_by_id((user, start))
        .one(conn)
        .await?)
}

/// The recorded period that contains `t`, if any.
pub async fn period_containing(
    conn: &impl ConnectionTrait,
    user: Uuid,
    t: DateTime<Utc>,
) -> Result<Option<PeriodRow>, StoreError> {
    use billing_periods::Column as C;
    Ok(billing_periods::Entity::find()
        .filter(C::UserId.eq(user))
        .filter(C::PeriodStart.lte(t))
        .filter(C::PeriodEnd.gt(t))
        .order_by_desc(C::PeriodStart)
        .one(conn)
        .await?)
}

/// Rows no instance holds: never leased, or the lease ran out.
fn unleased(lease_until: impl ColumnTrait, now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(lease_until.is_null())
        .add(lease_until.lt(now))
}

/// Paid subscriptions whose period has ended and that no instance holds.
pub async fn due_renewals(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>, StoreError> {
    use subscriptions::Column as C;
    Ok(subscriptions::Entity::find()
        .select_only()
        .column(C::UserId)
        .filter(C::Plan.is_in([Plan::Pro.as_str(), Plan::Enterprise.as_str()]))
        .filter(C::PeriodEnd.lte(now))
        .filter(unleased(C::LeaseUntil, now))
        .order_by_asc(C::PeriodEnd)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Takes a due renewal for this instance until `until`; false if another took it.
pub async fn claim_renewal(
    conn: &impl ConnectionTrait,
    user: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use subscriptions::Column as C;
    let updated = subscriptions::Entity::update_many()
        .col_expr(C::LeaseUntil, Expr::value(Some(until)))
        .filter(C::UserId.eq(user))
        .filter(C::PeriodEnd.lte(now))
        .filter(unleased(C::LeaseUntil, now))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Periods to close: open ones that ended before `cutoff`, and unpaid ones due a retry.
pub async fn due_closes(
    conn: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
    use billing_periods::Column as C;
    Ok(billing_periods::Entity::find()
        .select_only()
        .column(C::UserId)
        .column(C::PeriodStart)
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(C::CloseStatus.eq("open"))
                        .add(C::PeriodEnd.lte(cutoff)),
                )
                .add(C::CloseStatus.eq("unpaid")),
        )
        .filter(unleased(C::LeaseUntil, now))
        .order_by_asc(C::PeriodEnd)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Takes a period to close until `until`; false if another instance took it or it closed.
pub async fn claim_close(
    conn: &impl ConnectionTrait,
    user: Uuid,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use billing_periods::Column as C;
    let updated = billing_periods::Entity::update_many()
        .col_expr(C::LeaseUntil, Expr::value(Some(until)))
        .filter(C::UserId.eq(user))
        .filter(C::PeriodStart.eq(start))
        .filter(C::CloseStatus.is_in(["open", "unpaid"]))
        .filter(unleased(C::LeaseUntil, now))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// How a period closed.
pub struct Closing {
    pub status: &'static str,
    pub overage_calls: i64,
    pub overage_charge: i64,
    pub entry_id: Option<Uuid>,
    /// For `unpaid`: when to try again.
    pub retry_at: Option<DateTime<Utc>>,
}

/// Records how a period closed, if it is still open or unpaid.
pub async fn finish_close(
    conn: &impl ConnectionTrait,
    user: Uuid,
    start: DateTime<Utc>,
    closing: &Closing,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use billing_periods::Column as C;
    let updated = billing_periods::Entity::update_many()
        .col_expr(C::CloseStatus, Expr::value(closing.status))
        .col_expr(C::OverageCalls, Expr::value(Some(closing.overage_calls)))
        .col_expr(C::OverageCharge, Expr::value(Some(closing.overage_charge)))
        .col_expr(C::OverageEntryId, Expr::value(closing.entry_id))
        .col_expr(
            C::ClosedAt,
            Expr::value((closing.status != "unpaid").then_some(now)),
        )
        .col_expr(C::LeaseUntil, Expr::value(closing.retry_at))
        .filter(C::UserId.eq(user))
        .filter(C::PeriodStart.eq(start))
        .filter(C::CloseStatus.is_in(["open", "unpaid"]))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// The account's alert thresholds: `None` while it never set any (the defaults apply).
pub async fn alert_settings(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Option<(Vec<u32>, DateTime<Utc>)>, StoreError> {
    let Some(row) = usage_alert_settings::Entity::find_by_id(user)
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let thresholds = row
        .thresholds
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| StoreError::Corrupt(format!("usage alert thresholds of {user}")))?;
    Ok(Some((thresholds, row.updated_at)))
}

pub async fn set_alert_settings(
    conn: &impl ConnectionTrait,
    user: Uuid,
    thresholds: &[u32],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let text = thresholds
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let row = usage_alert_settings::Model {
        user_id: user,
        thresholds: text,
        updated_at: now,
    };
    usage_alert_settings::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::column(usage_alert_settings::Column::UserId)
                .update_columns([
                    usage_alert_settings::Column::Thresholds,
                    usage_alert_settings::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Records that a threshold was crossed; false if it was recorded before (by this or
/// another instance), so the alert goes out once.
pub async fn record_alert(
    conn: &impl ConnectionTrait,
    row: usage_alerts::Model,
) -> Result<bool, StoreError> {
    use usage_alerts::Column as C;
    let inserted = usage_alerts::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::columns([C::UserId, C::PeriodStart, C::Threshold])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// The thresholds crossed in a period, ascending.
pub async fn crossed(
    conn: &impl ConnectionTrait,
    user: Uuid,
    start: DateTime<Utc>,
) -> Result<Vec<i32>, StoreError> {
    use usage_alerts::Column as C;
    Ok(usage_alerts::Entity::find()
        .select_only()
        .column(C::Threshold)
        .filter(C::UserId.eq(user))
        .filter(C::PeriodStart.eq(start))
        .order_by_asc(C::Threshold)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Verifications the account created in `[start, end)`.
pub async fn verifications_in(
    conn: &impl ConnectionTrait,
    user: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<i64, StoreError> {
    use verifications::Column as C;
    let count = verifications::Entity::find()
        .filter(C::UserId.eq(user))
        .filter(C::CreatedAt.gte(start))
        .filter(C::CreatedAt.lt(end))
        .count(conn)
        .await?;
    Ok(i64::try_from(count).unwrap_or(i64::MAX))
}

/// Money the account spent in `[start, end)`: what left its wallet and holds for final
/// verification charges, plan fees and overage (released holds never count).
pub async fn spend_in(
    conn: &impl ConnectionTrait,
    user: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let backend = conn.get_database_backend();
    let p = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(-l.amount), 0) AS BIGINT) \
         FROM journal_lines l \
         JOIN journal_entries e ON e.id = l.entry_id \
         JOIN ledger_accounts a ON a.id = l.account_id \
         WHERE e.user_id = {} AND a.owner_id = {} \
           AND e.kind IN ('verification_capture', 'subscription_fee', 'overage_charge') \
           AND e.created_at >= {} AND e.created_at < {}",
        p(1),
        p(2),
        p(3),
        p(4)
    );
    let values: Vec<Value> = vec![user.into(), user.into(), start.into(), end.into()];
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let spend: Option<i64> = match row {
        Some(row) => row.try_get_by_index(0).ok(),
        None => None,
    };
    Ok(spend.unwrap_or(0))
}
