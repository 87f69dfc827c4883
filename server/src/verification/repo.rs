//! Storage of verifications, their messages and events.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::domain::Status;
use super::entities::{verification_events, verification_messages, verifications};
use crate::error::StoreError;
use crate::store::Params;

pub type Row = verifications::Model;
pub type Message = verification_messages::Model;
pub type Event = verification_events::Model;

/// Inserts a new verification unless the account already used its request id; returns
/// whether it was inserted.
pub async fn insert(conn: &impl ConnectionTrait, row: Row) -> Result<bool, StoreError> {
    let inserted = verifications::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::columns([
                verifications::Column::UserId,
                verifications::Column::RequestId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

pub async fn by_id(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<Row>, StoreError> {
    Ok(verifications::Entity::find_by_id(id).one(conn).await?)
}

/// The caller's verification, or none (another account's is none too).
pub async fn owned(
    conn: &impl ConnectionTrait,
    user: Uuid,
    id: Uuid,
) -> Result<Option<Row>, StoreError> {
    Ok(verifications::Entity::find_by_id(id)
        .filter(verifications::Column::UserId.eq(user))
        .one(conn)
        .await?)
}

pub async fn by_request(
    conn: &impl ConnectionTrait,
    user: Uuid,
    request_id: &str,
) -> Result<Option<Row>, StoreError> {
    Ok(verifications::Entity::find()
        .filter(verifications::Column::UserId.eq(user))
        .filter(verifications::Column::RequestId.eq(request_id))
        .one(conn)
        .await?)
}

/// The rental a provider names (its webhook).
pub async fn by_provider_ref(
    conn: &impl ConnectionTrait,
    provider: &str,
    provider_ref: &str,
) -> Result<Option<Row>, StoreError> {
    Ok(verifications::Entity::find()
        .filter(verifications::Column::Provider.eq(provider))
        .filter(verifications::Column::ProviderRef.eq(provider_ref))
        .order_by_desc(verifications::Column::CreatedAt)
        .one(conn)
        .await?)
}

/// The caller's most recent sandbox verification holding `phone_number`.
pub async fn latest_sandbox_with_number(
    conn: &impl ConnectionTrait,
    user: Uuid,
    phone_number: &str,
) -> Result<Option<Row>, StoreError> {
    Ok(verifications::Entity::find()
        .filter(verifications::Column::UserId.eq(user))
        .filter(verifications::Column::PhoneNumber.eq(phone_number))
        .filter(verifications::Column::Provider.eq("sandbox"))
        .order_by_desc(verifications::Column::CreatedAt)
        .order_by_desc(verifications::Column::Id)
        .one(conn)
        .await?)
}

/// Applies a decided change if nobody changed the row since it was read at `sequence`;
/// returns whether it was applied.
pub async fn advance(
    conn: &impl ConnectionTrait,
    row: Row,
    read_at_sequence: i64,
) -> Result<bool, StoreError> {
    let id = row.id;
    let mut model = row.into_active_model();
    // Every column as decided; the id stays.
    for column in ADVANCED {
        use sea_orm::ActiveModelTrait;
        let value = model.get(column);
        if let sea_orm::ActiveValue::Unchanged(v) = value {
            model.set(column, v);
        }
    }
    let updated = verifications::Entity::update_many()
        .set(model)
        .filter(verifications::Column::Id.eq(id))
        .filter(verifications::Column::LastSequence.eq(read_at_sequence))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// The columns a change may write (never the id, the owner, the request, the price).
const ADVANCED: [verifications::Column; 18] = [
    verifications::Column::Status,
    verifications::Column::ChargeState,
    verifications::Column::Provider,
    verifications::Column::ProviderRef,
    verifications::Column::PhoneNumber,
    verifications::Column::Code,
    verifications::Column::FailureReason,
    verifications::Column::RefundReason,
    verifications::Column::RefundTransactionId,
    verifications::Column::RefundedAt,
    verifications::Column::RefundNote,
    verifications::Column::LastSequence,
    verifications::Column::UpdatedAt,
    verifications::Column::ExpiresAt,
    verifications::Column::EndedAt,
    verifications::Column::NextPollAt,
    verifications::Column::Cleanup,
    verifications::Column::CleanupAt,
];

/// What [`purchase`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purchase {
    /// The verification, its hold and its first event are written.
    Placed,
    /// The wallet could not afford the hold: nothing was written.
    Unaffordable,
    /// The account already used this request id: nothing was written.
    Duplicate,
}

/// The condition "the account has used this request id already", for [`purchase`]: pass it
/// to `ledger::hold_ctes` as its `unless`, then give it to [`purchase`].
pub fn request_used(params: &mut Params, user: Uuid, request_id: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM verifications WHERE user_id = {} AND request_id = {})",
        params.bind(user),
        params.bind(request_id)
    )
}

/// PostgreSQL: writes a new verification with its hold (`hold_ctes`, from the ledger) and
/// its events in one statement, so in one round trip and one commit; the verification and
/// events are written only if the hold was placed.
///
/// The hold is placed only unless the request id was used before ([`request_used`]): a
/// replay then writes nothing and fails no statement (no ERROR in PostgreSQL's log, no
/// failed query counted). Only a replay racing the first call, both in flight, gets past
/// that check; it fails the whole statement on the unique index, so nothing of it is
/// written either.
pub async fn purchase(
    conn: &impl ConnectionTrait,
    mut params: Params,
    hold_ctes: String,
    request_used: &str,
    row: Row,
    events: Vec<Event>,
) -> Result<Purchase, StoreError> {
    let verification =
        crate::store::insert_select(&mut params, vec![row.into_active_model()], "hold_entry");
    let events = crate::store::insert_select(
        &mut params,
        events.into_iter().map(|e| e.into_active_model()).collect(),
        "hold_entry",
    );
    // The statement's one snapshot: `used` sees what the hold's `unless` saw. It is asked
    // only when no hold was placed (a placed one was not used before).
    let sql = format!(
        "WITH {hold_ctes}, new_verification AS ({verification}), new_events AS ({events}) \
         SELECT p.placed, CASE WHEN p.placed = 0 THEN {request_used} ELSE false END AS used \
         FROM (SELECT count(*) AS placed FROM hold_entry) AS p"
    );
    match conn.query_one_raw(params.statement(sql)).await {
        Ok(Some(result)) => {
            let placed: i64 = result.try_get("", "placed")?;
            let used: bool = result.try_get("", "used")?;
            Ok(match (placed, used) {
                (1, _) => Purchase::Placed,
                (_, true) => Purchase::Duplicate,
                _ => Purchase::Unaffordable,
            })
        }
        Ok(None) => Err(StoreError::Corrupt("a count returned no row".to_owned())),
        Err(error) => match error.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(message))
                if message.contains("ux_verifications_user_request") =>
            {
                Ok(Purchase::Duplicate)
            }
            _ => Err(error.into()),
        },
    }
}

/// [`advance`] and the events of the change as common table expressions (PostgreSQL):
/// `advanced` has the row if the conditional update won, and the events are written only
/// then.
fn advance_ctes(
    params: &mut Params,
    row: Row,
    read_at_sequence: i64,
    events: Vec<Event>,
) -> String {
    use sea_orm::{ActiveModelTrait, ActiveValue, IdenStatic};
    let id = params.bind(row.id);
    let read_at = params.bind(read_at_sequence);
    let model = row.into_active_model();
    let mut sets = Vec::new();
    for column in ADVANCED {
        if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = model.get(column) {
            sets.push(format!("\"{}\" = {}", column.as_str(), params.bind(value)));
        }
    }
    let events = if events.is_empty() {
        String::new()
    } else {
        let insert = crate::store::insert_select(
            params,
            events.into_iter().map(|e| e.into_active_model()).collect(),
            "advanced",
        );
        format!(", new_events AS ({insert})")
    };
    format!(
        "advanced AS (UPDATE verifications SET {} \
           WHERE id = {id} AND last_sequence = {read_at} RETURNING id){events}",
        sets.join(", ")
    )
}

/// [`advance`] and the events of the change in one statement (PostgreSQL), for a change
/// that moves no money. Returns whether the update won.
pub async fn advance_with_events(
    conn: &impl ConnectionTrait,
    row: Row,
    read_at_sequence: i64,
    events: Vec<Event>,
) -> Result<bool, StoreError> {
    let mut params = Params::default();
    let ctes = advance_ctes(&mut params, row, read_at_sequence, events);
    let sql = format!("WITH {ctes} SELECT count(*) AS advanced FROM advanced");
    let result = conn
        .query_one_raw(params.statement(sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("a count returned no row".to_owned()))?;
    Ok(result.try_get::<i64>("", "advanced")? == 1)
}

/// What [`advance_and_release`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// The change and the release are written (not yet committed).
    Now,
    /// Another change won the row: nothing was written.
    Lost,
    /// The row changed but nothing was released (settled before?): roll back.
    NotReleased,
}

/// [`advance`], the events, and the release of the verification's hold (the ledger's
/// `release_ctes`, given `release(params, "advanced")`) in one statement (PostgreSQL),
/// inside the caller's transaction: on [`Released::NotReleased`] the caller rolls back.
pub async fn advance_and_release(
    txn: &DatabaseTransaction,
    row: Row,
    read_at_sequence: i64,
    events: Vec<Event>,
    release: impl FnOnce(&mut Params, &str) -> Result<String, StoreError>,
) -> Result<Released, StoreError> {
    let mut params = Params::default();
    let ctes = advance_ctes(&mut params, row, read_at_sequence, events);
    let settle = release(&mut params, "advanced")?;
    let sql = format!(
        "WITH {ctes}, {settle} SELECT (SELECT count(*) FROM advanced) AS advanced, \
           (SELECT count(*) FROM settle_holds) AS released"
    );
    let result = txn
        .query_one_raw(params.statement(sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("a count returned no row".to_owned()))?;
    let advanced: i64 = result.try_get("", "advanced")?;
    let released: i64 = result.try_get("", "released")?;
    Ok(match (advanced, released) {
        (0, _) => Released::Lost,
        (_, 1) => Released::Now,
        _ => Released::NotReleased,
    })
}

/// Stores a message unless the same one is already stored; returns whether it was new.
pub async fn insert_message(conn: &impl ConnectionTrait, m: Message) -> Result<bool, StoreError> {
    let inserted = verification_messages::Entity::insert(m.into_active_model())
        .on_conflict(
            OnConflict::columns([
                verification_messages::Column::VerificationId,
                verification_messages::Column::DedupKey,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

pub async fn messages(conn: &impl ConnectionTrait, id: Uuid) -> Result<Vec<Message>, StoreError> {
    Ok(verification_messages::Entity::find()
        .filter(verification_messages::Column::VerificationId.eq(id))
        .order_by_asc(verification_messages::Column::ReceivedAt)
        .order_by_asc(verification_messages::Column::Id)
        .all(conn)
        .await?)
}

/// Messages of several verifications, grouped by verification (oldest first each).
pub async fn messages_of(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<Message>>, StoreError> {
    let mut grouped: std::collections::HashMap<Uuid, Vec<Message>> = Default::default();
    if ids.is_empty() {
        return Ok(grouped);
    }
    let all = verification_messages::Entity::find()
        .filter(verification_messages::Column::VerificationId.is_in(ids.iter().copied()))
        .order_by_asc(verification_messages::Column::ReceivedAt)
        .order_by_asc(verification_messages::Column::Id)
        .all(conn)
        .await?;
    for m in all {
        grouped.entry(m.verification_id).or_default().push(m);
    }
    Ok(grouped)
}

pub async fn insert_events(
    conn: &impl ConnectionTrait,
    events: Vec<Event>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    verification_events::Entity::insert_many(events.into_iter().map(|e| e.into_active_model()))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Stored events after `after`, in order (at most `limit`).
pub async fn events_after(
    conn: &impl ConnectionTrait,
    id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<Event>, StoreError> {
    Ok(verification_events::Entity::find()
        .filter(verification_events::Column::VerificationId.eq(id))
        .filter(verification_events::Column::Sequence.gt(after))
        .order_by_asc(verification_events::Column::Sequence)
        .limit(limit)
        .all(conn)
        .await?)
}

/// One page of a customer's list, newest first, after the cursor `(created_at, id)`.
pub async fn list(
    conn: &impl ConnectionTrait,
    user: Uuid,
    statuses: &[Status],
    service: Option<&str>,
    country: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<Row>, StoreError> {
    let mut query = verifications::Entity::find().filter(verifications::Column::UserId.eq(user));
    if !statuses.is_empty() {
        query =
            query.filter(verifications::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(service) = service {
        query = query.filter(verifications::Column::Service.eq(service));
    }
    if let Some(country) = country {
        query = query.filter(verifications::Column::Country.eq(country));
    }
    if let Some((created_at, id)) = after {
        query = query.filter(
            Condition::any()
                .add(verifications::Column::CreatedAt.lt(created_at))
                .add(
                    Condition::all()
                        .add(verifications::Column::CreatedAt.eq(created_at))
                        .add(verifications::Column::Id.lt(id)),
                ),
        );
    }
    Ok(query
        .order_by_desc(verifications::Column::CreatedAt)
        .order_by_desc(verifications::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// The caller's verifications that have not ended, oldest first.
pub async fn open_of(
    conn: &impl ConnectionTrait,
    user: Uuid,
    limit: u64,
) -> Result<Vec<Row>, StoreError> {
    Ok(verifications::Entity::find()
        .filter(verifications::Column::UserId.eq(user))
        .filter(
            verifications::Column::Status
                .is_in([Status::Pending.as_str(), Status::Active.as_str()]),
        )
        .order_by_asc(verifications::Column::CreatedAt)
        .order_by_asc(verifications::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

// ---- jobs ---------------------------------------------------------------------------

/// The two kinds of work the jobs take turns at, each leased through its own "when next"
/// column: polling the provider, and telling the provider what it still has to hear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    Poll,
    Cleanup,
}

impl Lease {
    /// When the work is due next (NULL: nothing to do).
    fn due_column(self) -> verifications::Column {
        match self {
            Lease::Poll => verifications::Column::NextPollAt,
            Lease::Cleanup => verifications::Column::CleanupAt,
        }
    }

    /// How many times the work was taken.
    fn count_column(self) -> verifications::Column {
        match self {
            Lease::Poll => verifications::Column::PollCount,
            Lease::Cleanup => verifications::Column::CleanupAttempts,
        }
    }
}

/// Verifications whose `lease` work is due: `(id, due at)`, the earliest first.
pub async fn due(
    conn: &impl ConnectionTrait,
    lease: Lease,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
    let column = lease.due_column();
    Ok(verifications::Entity::find()
        .select_only()
        .column(verifications::Column::Id)
        .column(column)
        .filter(column.lte(now))
        .order_by_asc(column)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Takes due work: moves its due time from the value read to `until`, so that no other
/// instance does the same work meanwhile. Returns whether this caller won it.
pub async fn claim(
    conn: &impl ConnectionTrait,
    lease: Lease,
    id: Uuid,
    read: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (due, count) = (lease.due_column(), lease.count_column());
    let updated = verifications::Entity::update_many()
        .col_expr(due, Expr::value(until))
        .col_expr(count, Expr::col(count).add(1))
        .filter(verifications::Column::Id.eq(id))
        .filter(due.eq(read))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Sets the next poll (or none) if the lease is still ours.
pub async fn schedule_poll(
    conn: &impl ConnectionTrait,
    id: Uuid,
    lease: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    verifications::Entity::update_many()
        .col_expr(verifications::Column::NextPollAt, Expr::value(next))
        .filter(verifications::Column::Id.eq(id))
        .filter(verifications::Column::NextPollAt.eq(lease))
        .exec(conn)
        .await?;
    Ok(())
}

/// Verifications in `status` whose deadline (`expires_at`, or `created_at` for pending ones)
/// passed.
pub async fn overdue(
    conn: &impl ConnectionTrait,
    status: Status,
    before: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>, StoreError> {
    let column = match status {
        Status::Pending => verifications::Column::CreatedAt,
        _ => verifications::Column::ExpiresAt,
    };
    Ok(verifications::Entity::find()
        .select_only()
        .column(verifications::Column::Id)
        .filter(verifications::Column::Status.eq(status.as_str()))
        .filter(column.lte(before))
        .order_by_asc(column)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Records the outcome of a cleanup attempt, if the lease is still ours: done (`None`), or
/// try again at `retry`.
pub async fn finish_cleanup(
    conn: &impl ConnectionTrait,
    id: Uuid,
    lease: DateTime<Utc>,
    retry: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let mut update = verifications::Entity::update_many()
        .col_expr(verifications::Column::CleanupAt, Expr::value(retry));
    if retry.is_none() {
        update = update.col_expr(
            verifications::Column::Cleanup,
            Expr::value(Option::<String>::None),
        );
    }
    update
        .filter(verifications::Column::Id.eq(id))
        .filter(verifications::Column::CleanupAt.eq(lease))
        .exec(conn)
        .await?;
    Ok(())
}

/// Verification outcomes since `since`, for success rates: `(service, country, status,
/// count)` for `COMPLETED`, `EXPIRED` and `FAILED` verifications created since then.
pub async fn outcomes_since(
    conn: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> Result<Vec<(String, String, String, i64)>, StoreError> {
    Ok(verifications::Entity::find()
        .select_only()
        .column(verifications::Column::Service)
        .column(verifications::Column::Country)
        .column(verifications::Column::Status)
        .column_as(verifications::Column::Id.count(), "n")
        .filter(verifications::Column::Status.is_in([
            Status::Completed.as_str(),
            Status::Expired.as_str(),
            Status::Failed.as_str(),
        ]))
        .filter(verifications::Column::CreatedAt.gte(since))
        .group_by(verifications::Column::Service)
        .group_by(verifications::Column::Country)
        .group_by(verifications::Column::Status)
        .into_tuple()
        .all(conn)
        .await?)
}
