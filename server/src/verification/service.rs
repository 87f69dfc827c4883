//! The verification lifecycle: create (hold the price and record the verification in one
//! transaction, then ask the providers), read, list, cancel, and every later change — a
//! number assigned, an SMS received, an expiry, a failure — applied through one function
//! that decides with the domain rules and writes with a conditional update, so that racing
//! changes serialise and exactly one of them moves the money.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use namaskah_proto::v1 as pb;
use prost::Message as _;
use sea_orm::{DatabaseConnection, DbBackend, TransactionTrait};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::codes::extract_code;
use super::domain::{
    self, Change, Charge, Cleanup, Decision, EventKind, Facts, FailureReason, Money, Status,
    Transition,
};
use super::feed::{Feed, FeedEvent};
use super::repo::{self, Message, Row};
use super::view;
use crate::analytics::domain::FunnelStep;
use crate::analytics::events::Tracker;
use crate::catalog::domain::{country_ref, service_ref};
use crate::catalog::service::Catalog;
use crate::convert::timestamp;
use crate::error::{ApiError, StoreError, Violations};
use crate::identity::domain::Principal;
use crate::identity::service::Identity;
use crate::payments::service::check_request_id;
use crate::providers::router::Router;
use crate::providers::{NumberRequest, ProviderSms, Rental};
use crate::store::Params;
use crate::telemetry::metrics;
use crate::wallet::domain::{CURRENCY, EntryKind, LedgerError};
use crate::wallet::ledger;

/// Attempts of one change against concurrent writers before giving up (each retry means
/// another change won the row in between; a handful always suffices).
const MAX_ATTEMPTS: usize = 16;
/// How long a caller is asked to wait before retrying a `request_id` still in progress.
const IN_PROGRESS_RETRY: Duration = Duration::from_secs(1);
/// How long a failed attempt's caller should wait before trying again.
const NO_NUMBERS_RETRY: Duration = Duration::from_secs(30);

/// Tunables of the lifecycle.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a number waits for its SMS (`NAMASKAH_VERIFICATION_TTL`).
    pub ttl: Duration,
    /// How long `CreateVerification` waits for the providers before answering `PENDING`.
    pub create_wait: Duration,
    /// A verification still `PENDING` this long after creation failed at the provider
    /// (the instance asking died, or the provider never answered): it is failed and
    /// refunded.
    pub pending_deadline: Duration,
    /// TextVerified's webhook signing secret; unset: its webhooks are refused.
    pub textverified_webhook_secret: Option<String>,
}

/// A verification with its messages.
#[derive(Clone, Debug)]
pub struct View {
    pub row: Row,
    pub messages: Vec<Message>,
}

impl View {
    pub fn to_proto(&self) -> pb::Verification {
        view::verification(&self.row, &self.messages)
    }
}

/// An SMS on its way in, from a provider poll, a provider webhook or `InjectSms`.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// Identifies the message, so that each is stored once however often it is reported.
    pub dedup_key: String,
    pub sender: String,
    pub text: String,
    pub code: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl Incoming {
    pub fn from_provider(sms: &ProviderSms) -> Self {
        // By content, not by the provider's id: a message reported by a poll (with an id)
        // and by a webhook (without) is one message.
        let mut hash = Sha256::new();
        hash.update(sms.sender.as_bytes());
        hash.update([0]);
        hash.update(sms.text.as_bytes());
        hash.update([0]);
        hash.update(sms.received_at.timestamp_micros().to_be_bytes());
        let dedup_key = format!("h:{}", hex::encode(hash.finalize()));
        let text: String = sms.text.chars().take(domain::MAX_TEXT).collect();
        // Our extraction first (it reads the text as the customer will); the provider's
        // parsed code when the text has none we recognise.
        let code = extract_code(&text).or_else(|| {
            sms.code
                .as_deref()
                .map(|c| c.chars().filter(char::is_ascii_digit).collect::<String>())
                .filter(|c| (4..=8).contains(&c.len()))
        });
        Self {
            dedup_key,
            sender: sms.sender.chars().take(64).collect(),
            text,
            code,
            received_at: sms.received_at,
        }
    }
}

/// A change to apply.
#[derive(Clone, Debug)]
pub enum Input {
    Assign {
        provider: &'static str,
        rental: Rental,
    },
    /// No provider could serve it; `recover` names a provider whose rent timed out and
    /// must be asked again (with the same key) so a number it may have rented is returned.
    Fail {
        reason: FailureReason,
        recover: Option<&'static str>,
    },
    Cancel,
    Expire,
    Sms(Incoming),
    /// An administrator gives a completed verification's price back, with a stated
    /// reason; `also` writes the administrator's records in the same transaction.
    ManualRefund {
        note: String,
        also: Arc<dyn AlsoInTransaction>,
    },
}

/// More writes that must commit with a change or not at all (an administrator's audit
/// entry and remembered answer). Runs after the change is written, inside its transaction;
/// an error rolls the change back and is the caller's answer.
#[async_trait::async_trait]
pub trait AlsoInTransaction: Send + Sync + std::fmt::Debug {
    async fn write(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        before: &Row,
        after: &View,
    ) -> Result<(), ApiError>;
}

/// What applying a change did.
#[derive(Clone, Debug)]
pub struct Applied {
    pub view: View,
    /// The change was applied (false: nothing to do, e.g. an SMS dated before creation or
    /// one already stored).
    pub changed: bool,
}

/// What `CreateVerification` asks for.
pub struct NewVerification<'a> {
    pub service: &'a str,
    pub country: &'a str,
    pub max_price: Option<&'a pb::Money>,
    pub request_id: &'a str,
}

/// The filters of a list.
pub struct ListFilter<'a> {
    pub page_size: i32,
    pub page_token: &'a str,
    pub statuses: Vec<Status>,
    pub service: &'a str,
    pub country: &'a str,
}

pub struct Verifications {
    db: DatabaseConnection,
    catalog: Arc<Catalog>,
    identity: Arc<Identity>,
    router: Arc<Router>,
    feed: Arc<Feed>,
    /// Funnel steps (the first verification, the first completed one).
    tracker: Tracker,
    settings: Settings,
}

fn not_found() -> ApiError {
    ApiError::not_found("VERIFICATION_NOT_FOUND", "no such verification")
}

fn conflict() -> ApiError {
    ApiError::already_exists(
        "IDEMPOTENCY_CONFLICT",
        "this request_id was used for a different verification",
    )
}

/// The error a failed attempt answers with (and its replays).
fn failed_error(row: &Row) -> ApiError {
    let reason = match row.failure_reason.as_deref().and_then(FailureReason::parse) {
        Some(FailureReason::NoNumbers) => "NO_NUMBERS",
        _ => "PROVIDER_ERROR",
    };
    let message = match reason {
        "NO_NUMBERS" => format!(
            "no provider has a number for {} in {} now; the price was refunded, try again later with a new request_id",
            row.service, row.country
        ),
        _ => "the providers could not supply a number; the price was refunded, try again with a new request_id".to_owned(),
    };
    ApiError::Unavailable {
        reason,
        message,
        retry_after: Some(NO_NUMBERS_RETRY),
    }
    .with_metadata("verification", domain::name(row.id))
}

/// Where the polling job looks next, by how many polls a rental has had: often at first
/// (most codes arrive within a minute), then less.
pub fn poll_interval(provider: Option<&str>, polls: i32) -> Duration {
    if provider == Some("sandbox") {
        // Free to ask: no network behind it.
        return Duration::from_secs(1);
    }
    match polls {
        0..=14 => Duration::from_secs(2),
        15..=40 => Duration::from_secs(5),
        _ => Duration::from_secs(10),
    }
}

/// When to poll next: at `due`, or later if the provider says nothing can arrive before
/// `quiet_until`; never when it says so up to the verification's expiry (the expiry job
/// ends it). Without that word, a poll due after the expiry still runs, to show a message
/// that came just before the end.
pub fn next_poll(
    due: DateTime<Utc>,
    quiet_until: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match quiet_until {
        Some(quiet) if quiet >= expires_at => None,
        Some(quiet) => Some(due.max(quiet)),
        None => Some(due),
    }
}

/// After a code, the number may receive more messages until it expires: polled rarely.
pub const AFTER_CODE_POLL: Duration = Duration::from_secs(15);

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn event_type(kind: EventKind) -> pb::VerificationEventType {
    match kind {
        EventKind::Created => pb::VerificationEventType::Created,
        EventKind::NumberAssigned => pb::VerificationEventType::NumberAssigned,
        EventKind::SmsReceived => pb::VerificationEventType::SmsReceived,
        EventKind::Completed => pb::VerificationEventType::Completed,
        EventKind::Cancelled => pb::VerificationEventType::Cancelled,
        EventKind::Expired => pb::VerificationEventType::Expired,
        EventKind::Failed => pb::VerificationEventType::Failed,
        EventKind::Refunded => pb::VerificationEventType::Refunded,
    }
}

/// What [`Verifications::write_one`] did.
enum OneStatement {
    Done(Box<Applied>),
    /// Another change won the row: nothing was written.
    Lost,
    /// Not a change for one statement (or its hold was settled already): nothing was
    /// written; take the transaction.
    Slow,
}

/// Decides a change against a stored row.
fn decide(row: &Row, input: &Input, now: DateTime<Utc>) -> Result<Decision, ApiError> {
    let status = Status::parse(&row.status)
        .ok_or_else(|| StoreError::Corrupt(format!("verification status {}", row.status)))?;
    let charge = Charge::parse(&row.charge_state).ok_or_else(|| {
        StoreError::Corrupt(format!("verification charge state {}", row.charge_state))
    })?;
    let facts = Facts {
        status,
        charge,
        created_at: row.created_at,
        expires_at: row.expires_at,
    };
    let change = match input {
        Input::Assign { .. } => Change::Assign,
        Input::Fail { reason, .. } => Change::Fail(*reason),
        Input::Cancel => Change::Cancel,
        Input::Expire => Change::Expire,
        Input::Sms(sms) => Change::Sms {
            received_at: sms.received_at,
        },
        Input::ManualRefund { .. } => Change::ManualRefund,
    };
    Ok(domain::decide(facts, &change, now))
}

/// The events of a transition from `before` to `row`, each with the verification as it
/// stood right after it: the final row for the last event; before it, the row as it was
/// with the new message (SMS, then COMPLETED) or without it (EXPIRED, then the late SMS).
/// `messages` are the verification's messages now, the new one among them.
fn events_of(
    before: &Row,
    row: &Row,
    t: &Transition,
    new_message: Option<&Message>,
    messages: &[Message],
    now: DateTime<Utc>,
) -> (Vec<repo::Event>, Vec<FeedEvent>) {
    let without_new: Vec<Message> = messages
        .iter()
        .filter(|m| Some(m.id) != new_message.map(|n| n.id))
        .cloned()
        .collect();
    let mut stored = Vec::new();
    let mut published = Vec::new();
    let mut sequence = before.last_sequence;
    for (i, kind) in t.events.iter().enumerate() {
        sequence += 1;
        let last = i + 1 == t.events.len();
        let (at_row, at_messages) = if last {
            (row.clone(), messages)
        } else if *kind == EventKind::SmsReceived {
            let mut mid = before.clone();
            mid.code = row.code.clone();
            mid.updated_at = now;
            (mid, messages)
        } else {
            let mut mid = row.clone();
            mid.code = before.code.clone();
            (mid, without_new.as_slice())
        };
        let message = (*kind == EventKind::SmsReceived)
            .then_some(new_message)
            .flatten();
        let (s, p) = event(&at_row, at_messages, sequence, *kind, message, now);
        stored.push(s);
        published.push(p);
    }
    (stored, published)
}

/// One event ready to store and publish.
fn event(
    row: &Row,
    messages: &[Message],
    sequence: i64,
    kind: EventKind,
    message: Option<&Message>,
    now: DateTime<Utc>,
) -> (repo::Event, FeedEvent) {
    let mut verification = view::verification(row, messages);
    verification.last_sequence = sequence;
    let payload = pb::VerificationEvent {
        sequence,
        r#type: event_type(kind) as i32,
        create_time: Some(timestamp(now)),
        verification: Some(verification),
        message: message.map(|m| view::message(row.id, m)),
    }
    .encode_to_vec();
    (
        repo::Event {
            verification_id: row.id,
            sequence,
            user_id: row.user_id,
            kind: kind.as_str().to_owned(),
            payload: payload.clone(),
            created_at: now,
        },
        FeedEvent {
            user: row.user_id,
            verification: row.id,
            sequence,
            terminal: kind.is_terminal(),
            payload: Arc::from(payload),
        },
    )
}

impl Verifications {
    pub fn new(
        db: DatabaseConnection,
        catalog: Arc<Catalog>,
        identity: Arc<Identity>,
        router: Arc<Router>,
        feed: Arc<Feed>,
        tracker: Tracker,
        settings: Settings,
    ) -> Self {
        Self {
            db,
            catalog,
            identity,
            router,
            feed,
            tracker,
            settings,
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn view(&self, row: Row) -> Result<View, ApiError> {
        let messages = repo::messages(&self.db, row.id).await?;
        Ok(View { row, messages })
    }

    /// What a repeated `request_id` answers.
    async fn replay(&self, existing: Row, fingerprint: &str) -> Result<View, ApiError> {
        if existing.request_fingerprint != fingerprint {
            return Err(conflict());
        }
        match Status::parse(&existing.status) {
            Some(Status::Pending) => Err(ApiError::Aborted {
                reason: "REQUEST_IN_PROGRESS",
                message: "the first call with this request_id is still running; retry shortly"
                    .to_owned(),
                retry_after: IN_PROGRESS_RETRY,
            }
            .with_metadata("verification", domain::name(existing.id))),
            Some(Status::Failed) if existing.phone_number.is_none() => Err(failed_error(&existing)),
            _ => self.view(existing).await,
        }
    }

    /// `CreateVerification`.
    pub async fn create(
        self: &Arc<Self>,
        principal: &Principal,
        request: NewVerification<'_>,
    ) -> Result<View, ApiError> {
        let mut v = Violations::default();
        let service = match service_ref("service", request.service) {
            Ok(Some(code)) => Some(code),
            Ok(None) => {
                v.add("service", "is required");
                None
            }
            Err(_) => {
                v.add(
                    "service",
                    "must be `services/{service_code}` or a service code such as `whatsapp`",
                );
                None
            }
        };
        let country = match country_ref("country", request.country) {
            Ok(Some(code)) => Some(code),
            Ok(None) => {
                v.add("country", "is required");
                None
            }
            Err(_) => {
                v.add(
                    "country",
                    "must be `countries/{country_code}` or an ISO 3166-1 alpha-2 code such as `GB`",
                );
                None
            }
        };
        let max_price = match request.max_price {
            None => None,
            Some(m) => {
                if !m.currency_code.is_empty() && m.currency_code != CURRENCY {
                    v.add("max_price.currency_code", format!("must be {CURRENCY}"));
                }
                if m.minor_units <= 0 {
                    v.add("max_price.minor_units", "must be positive");
                }
                Some(m.minor_units)
            }
        };
        check_request_id(request.request_id, &mut v);
        v.into_result()?;
        let (service, country) = (service.unwrap_or_default(), country.unwrap_or_default());
        let user = principal.user_id;
        let fingerprint = domain::fingerprint(&service, &country, max_price);

        // No look-up of the request id first: a repeated one is found by the insert (the
        // unique index), and before any refusal below, so that a replay is answered with the
        // verification it made even when, say, the price has since risen above `max_price`.
        let refused = |error: ApiError| async {
            match repo::by_request(&self.db, user, request.request_id).await {
                Ok(Some(existing)) => self.replay(existing, &fingerprint).await,
                _ => Err(error),
            }
        };
        let profile = self.identity.me(principal).await?;
        if !profile.email_verified {
            return refused(ApiError::failed_precondition(
                "EMAIL_NOT_VERIFIED",
                "verify your email address before buying a number",
            ))
            .await;
        }
        let quote = match self
            .catalog
            .quote(Some(principal), principal.tenant, &service, &country)
            .await
        {
            Ok(quote) => quote,
            Err(error) => return refused(error).await,
        };
        if let Some(max) = max_price
            && quote.price > max
        {
            return refused(
                ApiError::failed_precondition(
                    "MAX_PRICE_EXCEEDED",
                    format!(
                        "the price is {} minor units of {CURRENCY}, above max_price {max}",
                        quote.price
                    ),
                )
                .with_metadata("price_minor_units", quote.price.to_string()),
            )
            .await;
        }

        // Microseconds: what every database stores, so answers equal later reads.
        let now = Utc::now().trunc_subsecs(6);
        let id = Uuid::now_v7();
        let row = Row {
            id,
            user_id: user,
            request_id: request.request_id.to_owned(),
            request_fingerprint: fingerprint.clone(),
            service: service.clone(),
            country: country.clone(),
            price: quote.price,
            currency: CURRENCY.to_owned(),
            status: Status::Pending.as_str().to_owned(),
            charge_state: Charge::Held.as_str().to_owned(),
            provider: None,
            provider_ref: None,
            phone_number: None,
            code: None,
            failure_reason: None,
            refund_reason: None,
            refund_transaction_id: None,
            refunded_at: None,
            refund_note: None,
            last_sequence: 1,
            created_at: now,
            updated_at: now,
            expires_at: None,
            ended_at: None,
            next_poll_at: None,
            poll_count: 0,
            cleanup: None,
            cleanup_at: None,
            cleanup_attempts: 0,
            tenant_id: quote.tenant,
            tenant_margin: quote.margin,
        };
        let (stored, published) = event(&row, &[], 1, EventKind::Created, None, now);
        let memo = format!("{service} number in {country}");
        match self.place(row.clone(), stored, &memo, now).await? {
            repo::Purchase::Placed => {}
            repo::Purchase::Unaffordable => {
                return refused(LedgerError::InsufficientFunds.into()).await;
            }
            // A concurrent call with the same request_id got there first.
            repo::Purchase::Duplicate => {
                let existing = repo::by_request(&self.db, user, request.request_id)
                    .await?
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("request row vanished")))?;
                return self.replay(existing, &fingerprint).await;
            }
        }
        metrics::verification(&service, Status::Pending.as_str());
        metrics::ledger_entry(EntryKind::VerificationHold.as_str(), quote.price);
        self.tracker.step(user, FunnelStep::FirstVerification, now);
        self.feed.publish(vec![published]).await;

        // Ask the providers in a task of its own, so that a caller who hangs up does not
        // leave the verification half-bought; wait for it up to `create_wait`.
        let this = Arc::clone(self);
        let attempt = tokio::spawn(async move { this.rent(row, &service, &country).await });
        match tokio::time::timeout(self.settings.create_wait, attempt).await {
            Ok(Ok(Ok(applied))) => {
                if Status::parse(&applied.view.row.status) == Some(Status::Failed)
                    && applied.view.row.phone_number.is_none()
                {
                    return Err(failed_error(&applied.view.row));
                }
                Ok(applied.view)
            }
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(join)) => Err(ApiError::Internal(anyhow::anyhow!(
                "renting a number panicked: {join}"
            ))),
            // Still asking: the caller gets PENDING and watches for NUMBER_ASSIGNED.
            Err(_) => {
                let row = repo::by_id(&self.db, id).await?.ok_or_else(not_found)?;
                self.view(row).await
            }
        }
    }

    /// Writes a new verification, its hold and its first event, all or nothing: one
    /// statement on PostgreSQL, a transaction of several on SQLite.
    async fn place(
        &self,
        row: Row,
        event: repo::Event,
        memo: &str,
        now: DateTime<Utc>,
    ) -> Result<repo::Purchase, ApiError> {
        let reference = row.id.to_string();
        if self.db.get_database_backend() == DbBackend::Postgres {
            let mut params = Params::default();
            let used = repo::request_used(&mut params, row.user_id, &row.request_id);
            let hold = ledger::hold_ctes(
                &mut params,
                row.user_id,
                row.price,
                &reference,
                memo,
                now,
                Some(&used),
            )?;
            return Ok(repo::purchase(&self.db, params, hold, &used, row, vec![event]).await?);
        }
        let (user, price) = (row.user_id, row.price);
        let txn = self.db.begin().await.map_err(StoreError::from)?;
        if !repo::insert(&txn, row).await? {
            txn.rollback().await.map_err(StoreError::from)?;
            return Ok(repo::Purchase::Duplicate);
        }
        match ledger::hold(&txn, user, price, &reference, memo).await {
            Ok(_) => {}
            Err(LedgerError::InsufficientFunds) => {
                txn.rollback().await.map_err(StoreError::from)?;
                return Ok(repo::Purchase::Unaffordable);
            }
            Err(error) => {
                txn.rollback().await.map_err(StoreError::from)?;
                return Err(error.into());
            }
        }
        repo::insert_events(&txn, vec![event]).await?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(repo::Purchase::Placed)
    }

    /// Asks the providers for a number and records the answer.
    async fn rent(&self, created: Row, service: &str, country: &str) -> Result<Applied, ApiError> {
        let id = created.id;
        let key = id.to_string();
        let request = NumberRequest {
            service,
            country,
            idempotency_key: &key,
        };
        let input = match self.router.rent(&request).await {
            Ok((provider, rental)) => Input::Assign { provider, rental },
            Err(exhausted) => Input::Fail {
                reason: exhausted.reason(),
                recover: self.router.to_recover(&exhausted),
            },
        };
        // The row as created is usually still current: no need to read it back.
        self.apply_to(id, input, Some(created)).await
    }

    /// Applies one change to a verification: decides against the stored state, writes with
    /// a conditional update on its sequence number (retrying if another change won), moves
    /// the money and stores the events in the same transaction, then publishes them.
    pub async fn apply(&self, id: Uuid, input: Input) -> Result<Applied, ApiError> {
        self.apply_to(id, input, None).await
    }

    /// [`Self::apply`], starting from a row the caller already holds (saving a read when
    /// it is still current; if it is not, the conditional update fails and the row is read
    /// again).
    async fn apply_to(
        &self,
        id: Uuid,
        input: Input,
        mut known: Option<Row>,
    ) -> Result<Applied, ApiError> {
        let mut slow = false;
        for _ in 0..MAX_ATTEMPTS {
            let now = Utc::now().trunc_subsecs(6);
            // On PostgreSQL, the usual changes are written in one statement each: a number
            // assigned (no money moves) without a transaction, and a release (cancelled,
            // expired, failed) with its hold's release in one transaction of one statement.
            // Anything else, and a release that finds its hold settled already, takes the
            // transaction below.
            if !slow
                && self.db.get_database_backend() == DbBackend::Postgres
                && matches!(
                    input,
                    Input::Assign { .. } | Input::Cancel | Input::Expire | Input::Fail { .. }
                )
            {
                let row = match known.take() {
                    Some(row) => row,
                    None => repo::by_id(&self.db, id).await?.ok_or_else(not_found)?,
                };
                match decide(&row, &input, now)? {
                    Decision::Refuse(refusal) => return Err(refusal.into_error()),
                    Decision::Nothing => {
                        return Ok(Applied {
                            view: self.view(row).await?,
                            changed: false,
                        });
                    }
                    Decision::Apply(t) => match self.write_one(&row, &input, &t, now).await? {
                        OneStatement::Done(applied) => return Ok(*applied),
                        // Another change won the row: read it again.
                        OneStatement::Lost => continue,
                        OneStatement::Slow => {
                            slow = true;
                            known = Some(row);
                        }
                    },
                }
            }
            let txn = self.db.begin().await.map_err(StoreError::from)?;
            let row = match known.take() {
                Some(row) => row,
                None => repo::by_id(&txn, id).await?.ok_or_else(not_found)?,
            };
            let transition = match decide(&row, &input, now) {
                Ok(Decision::Apply(t)) => t,
                Ok(Decision::Refuse(refusal)) => {
                    txn.rollback().await.map_err(StoreError::from)?;
                    return Err(refusal.into_error());
                }
                Ok(Decision::Nothing) => {
                    txn.rollback().await.map_err(StoreError::from)?;
                    let view = self.view(row).await?;
                    return Ok(Applied {
                        view,
                        changed: false,
                    });
                }
                Err(error) => {
                    txn.rollback().await.map_err(StoreError::from)?;
                    return Err(error);
                }
            };
            match self.write(&txn, row, &input, &transition, now).await? {
                Some((view, events)) => {
                    txn.commit().await.map_err(StoreError::from)?;
                    return Ok(self.written(view, &transition, events, now).await);
                }
                None => {
                    // Nothing to write after all (a message already stored), or another
                    // change won the row: look again.
                    txn.rollback().await.map_err(StoreError::from)?;
                    if let Input::Sms(sms) = &input
                        && self.already_stored(id, &sms.dedup_key).await?
                    {
                        let row = repo::by_id(&self.db, id).await?.ok_or_else(not_found)?;
                        return Ok(Applied {
                            view: self.view(row).await?,
                            changed: false,
                        });
                    }
                }
            }
        }
        Err(ApiError::Aborted {
            reason: "CONCURRENT_MODIFICATION",
            message: "the verification kept changing; try again".to_owned(),
            retry_after: IN_PROGRESS_RETRY,
        })
    }

    /// After a change is committed: its metrics and funnel step, then its events to the
    /// watchers.
    async fn written(
        &self,
        view: View,
        t: &Transition,
        events: Vec<FeedEvent>,
        now: DateTime<Utc>,
    ) -> Applied {
        if let Some(to) = t.to {
            metrics::verification(&view.row.service, to.as_str());
        }
        if let Some(money) = t.money {
            if money == Money::Capture {
                self.tracker.step(
                    view.row.user_id,
                    FunnelStep::FirstCompletedVerification,
                    now,
                );
            }
            let kind = match money {
                Money::Capture => EntryKind::VerificationCapture,
                Money::Release(_) | Money::Refund => EntryKind::VerificationRefund,
            };
            metrics::ledger_entry(kind.as_str(), view.row.price);
        }
        self.feed.publish(events).await;
        Applied {
            view,
            changed: true,
        }
    }

    /// Writes a decided change in one statement (PostgreSQL): see [`Self::apply_to`].
    async fn write_one(
        &self,
        before: &Row,
        input: &Input,
        t: &Transition,
        now: DateTime<Utc>,
    ) -> Result<OneStatement, ApiError> {
        let read_at = before.last_sequence;
        let (mut row, _) = self.decided_row(before, input, t, now);
        if t.events.is_empty() {
            return Ok(OneStatement::Slow);
        }
        // The events carry the messages. A number is assigned before any can arrive;
        // otherwise they are read here, and one arriving after this read moves the row's
        // sequence, so that the conditional update below loses and the change is decided
        // again.
        let messages = match input {
            Input::Assign { .. } => Vec::new(),
            _ => repo::messages(&self.db, row.id).await?,
        };
        match t.money {
            None => {
                let (stored, published) = events_of(before, &row, t, None, &messages, now);
                if !repo::advance_with_events(&self.db, row.clone(), read_at, stored).await? {
                    return Ok(OneStatement::Lost);
                }
                let view = View { row, messages };
                Ok(OneStatement::Done(Box::new(
                    self.written(view, t, published, now).await,
                )))
            }
            Some(Money::Release(reason)) => {
                let txn = self.db.begin().await.map_err(StoreError::from)?;
                // The wallet's line of the release is the refund customers see. Minted as
                // late as it can be (the row and its events name it): it lists in the order
                // the wallet moved unless another movement of the same wallet takes its
                // lock meanwhile.
                let line = Uuid::now_v7();
                row.refund_transaction_id = Some(line);
                let (stored, published) = events_of(before, &row, t, None, &messages, now);
                let memo = format!("{} refund ({})", row.service, reason.as_str());
                let (user, price, reference) = (row.user_id, row.price, row.id.to_string());
                let released = repo::advance_and_release(
                    &txn,
                    row.clone(),
                    read_at,
                    stored,
                    |params, gate| {
                        let release = ledger::Release {
                            user,
                            amount: price,
                            reference: &reference,
                            memo: &memo,
                            wallet_line: line,
                            now,
                        };
                        ledger::release_ctes(params, gate, &release).map_err(|error| match error {
                            LedgerError::Store(error) => error,
                            other => {
                                StoreError::Corrupt(format!("verification {reference}: {other}"))
                            }
                        })
                    },
                )
                .await?;
                if released != repo::Released::Now {
                    txn.rollback().await.map_err(StoreError::from)?;
                    return Ok(match released {
                        repo::Released::Lost => OneStatement::Lost,
                        _ => OneStatement::Slow,
                    });
                }
                txn.commit().await.map_err(StoreError::from)?;
                let view = View { row, messages };
                Ok(OneStatement::Done(Box::new(
                    self.written(view, t, published, now).await,
                )))
            }
            Some(_) => Ok(OneStatement::Slow),
        }
    }

    async fn already_stored(&self, id: Uuid, dedup_key: &str) -> Result<bool, ApiError> {
        Ok(repo::messages(&self.db, id)
            .await?
            .iter()
            .any(|m| m.dedup_key == dedup_key))
    }

    /// The row as a decided transition leaves it (before any refund line is known), and the
    /// new message, if the change brings one.
    fn decided_row(
        &self,
        before: &Row,
        input: &Input,
        t: &Transition,
        now: DateTime<Utc>,
    ) -> (Row, Option<Message>) {
        let mut row = before.clone();
        row.updated_at = now;
        row.last_sequence = before.last_sequence + t.events.len() as i64;

        let mut new_message = None;
        if let Input::Sms(sms) = input {
            if let Some(code) = &sms.code {
                row.code = Some(code.clone());
            }
            new_message = Some(Message {
                id: Uuid::now_v7(),
                verification_id: row.id,
                dedup_key: sms.dedup_key.clone(),
                sender: sms.sender.clone(),
                text: sms.text.clone(),
                code: sms.code.clone(),
                received_at: sms.received_at.trunc_subsecs(6),
                after_refund: t.after_refund,
                created_at: now,
            });
        }

        if let Input::Assign { provider, rental } = input {
            if t.to == Some(Status::Active) {
                let expires = after(now, self.settings.ttl);
                // Never past the provider's own hold of the number.
                let expires = match rental.expires_at {
                    Some(theirs) if theirs < expires && theirs > now => theirs.trunc_subsecs(6),
                    _ => expires,
                };
                row.provider = Some((*provider).to_owned());
                row.provider_ref = Some(rental.provider_ref.clone());
                row.phone_number = Some(rental.phone_number.clone());
                row.expires_at = Some(expires);
                row.next_poll_at = next_poll(
                    after(now, poll_interval(Some(provider), 0)),
                    rental.quiet_until,
                    expires,
                );
            } else {
                // Not ours to keep (cancelled meanwhile): remember it to give it back.
                row.provider = Some((*provider).to_owned());
                row.provider_ref = Some(rental.provider_ref.clone());
                row.phone_number
                    .get_or_insert_with(|| rental.phone_number.clone());
            }
        }
        if let Input::Fail { reason, recover } = input {
            row.failure_reason = Some(reason.as_str().to_owned());
            if let Some(provider) = recover {
                row.provider = Some((*provider).to_owned());
                row.cleanup = Some(Cleanup::Recover.as_str().to_owned());
                row.cleanup_at = Some(now);
            }
        }
        if let Some(to) = t.to {
            row.status = to.as_str().to_owned();
            if to.is_terminal() {
                row.ended_at = Some(now);
                row.next_poll_at = match to {
                    Status::Completed => row
                        .expires_at
                        .filter(|at| *at > now)
                        .map(|_| after(now, AFTER_CODE_POLL)),
                    _ => None,
                };
            }
        }
        if let Some(cleanup) = t.cleanup
            && row.provider_ref.is_some()
        {
            row.cleanup = Some(cleanup.as_str().to_owned());
            row.cleanup_at = Some(now);
        }
        match t.money {
            Some(Money::Release(reason)) => {
                row.charge_state = Charge::Refunded.as_str().to_owned();
                row.refund_reason = Some(reason.as_str().to_owned());
                row.refunded_at = Some(now);
            }
            Some(Money::Capture) => {
                row.charge_state = Charge::Captured.as_str().to_owned();
            }
            Some(Money::Refund) => {
                row.charge_state = Charge::Refunded.as_str().to_owned();
                row.refund_reason = Some(domain::RefundReason::Manual.as_str().to_owned());
                row.refunded_at = Some(now);
                if let Input::ManualRefund { note, .. } = input {
                    row.refund_note = Some(note.clone());
                }
            }
            None => {}
        }
        (row, new_message)
    }

    /// Writes a decided transition inside `txn`. `None` when the row changed since it was
    /// read (the caller retries) or the message was already stored.
    async fn write(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        before: Row,
        input: &Input,
        t: &Transition,
        now: DateTime<Utc>,
    ) -> Result<Option<(View, Vec<FeedEvent>)>, ApiError> {
        let read_at = before.last_sequence;
        let (mut row, new_message) = self.decided_row(&before, input, t, now);

        // The new message, if any: stored first, so a duplicate stops here.
        if let Some(message) = &new_message
            && !repo::insert_message(txn, message.clone()).await?
        {
            return Ok(None);
        }

        // The conditional update: only one change per sequence number wins.
        if !repo::advance(txn, row.clone(), read_at).await? {
            return Ok(None);
        }
        let reference = row.id.to_string();
        let share = row.tenant_id.map(|tenant| ledger::TenantShare {
            tenant,
            margin: row.tenant_margin,
        });
        match t.money {
            Some(Money::Capture) => {
                let memo = format!("{} code received", row.service);
                ensure_settled(ledger::capture(txn, &reference, &memo, share).await?)?;
            }
            Some(Money::Release(reason)) => {
                let memo = format!("{} refund ({})", row.service, reason.as_str());
                ensure_settled(ledger::release(txn, &reference, &memo).await?)?;
                row.refund_transaction_id =
                    ledger::release_line(txn, &reference, row.user_id).await?;
                if row.refund_transaction_id.is_some() {
                    repo::advance(txn, row.clone(), row.last_sequence).await?;
                }
            }
            Some(Money::Refund) => {
                let memo = match input {
                    Input::ManualRefund { note, .. } => format!("{} refund: {note}", row.service),
                    _ => format!("{} refund", row.service),
                };
                let (posted, line) =
                    ledger::refund_capture(txn, row.user_id, row.price, &reference, &memo, share)
                        .await?;
                if matches!(posted, ledger::Posted::Already(_)) {
                    // The key is unique per verification: refunded before, whatever the
                    // row said. Nothing more may move.
                    return Err(domain::Refusal::AlreadyRefunded.into_error());
                }
                row.refund_transaction_id = line;
                repo::advance(txn, row.clone(), row.last_sequence).await?;
            }
            None => {}
        }

        // Events, each with the verification as it stood right after it.
        // A completed verification's events carry its messages.
        let mut messages = if new_message.is_some() || matches!(input, Input::ManualRefund { .. }) {
            repo::messages(txn, row.id).await?
        } else {
            Vec::new()
        };
        let (stored, published) = events_of(&before, &row, t, new_message.as_ref(), &messages, now);
        repo::insert_events(txn, stored).await?;
        if messages.is_empty()
            && let Some(m) = new_message
        {
            messages.push(m);
        }
        let view = View { row, messages };
        if let Input::ManualRefund { also, .. } = input {
            also.write(txn, &before, &view).await?;
        }
        Ok(Some((view, published)))
    }

    /// `GetVerification`.
    pub async fn get(&self, principal: &Principal, name: &str) -> Result<View, ApiError> {
        let id = domain::parse_name("name", name)?;
        let row = repo::owned(&self.db, principal.user_id, id)
            .await?
            .ok_or_else(not_found)?;
        self.view(row).await
    }

    /// `CancelVerification`.
    pub async fn cancel(&self, principal: &Principal, name: &str) -> Result<View, ApiError> {
        let id = domain::parse_name("name", name)?;
        let row = repo::owned(&self.db, principal.user_id, id)
            .await?
            .ok_or_else(not_found)?;
        Ok(self.apply_to(id, Input::Cancel, Some(row)).await?.view)
    }

    /// `ListVerifications`: newest first.
    /// An account's latest `n` verifications, newest first (for administrators).
    pub async fn recent_of(&self, user: Uuid, n: u64) -> Result<Vec<View>, ApiError> {
        let rows = repo::list(&self.db, user, &[], None, None, None, n).await?;
        self.views(rows).await
    }

    /// The rows with their messages (one query for all of them).
    async fn views(&self, rows: Vec<Row>) -> Result<Vec<View>, ApiError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut messages = repo::messages_of(&self.db, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let messages = messages.remove(&row.id).unwrap_or_default();
                View { row, messages }
            })
            .collect())
    }

    pub async fn list(
        &self,
        principal: &Principal,
        filter: ListFilter<'_>,
    ) -> Result<(Vec<View>, String), ApiError> {
        let size = crate::paging::page_size(filter.page_size)?;
        let service = service_ref("service", filter.service)?;
        let country = country_ref("country", filter.country)?;
        let scope = format!(
            "verifications?{}&{}&{}",
            filter
                .statuses
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            service.as_deref().unwrap_or(""),
            country.as_deref().unwrap_or("")
        );
        let scope_tag = hex::encode(&Sha256::digest(scope.as_bytes())[..6]);
        let collection = format!("verifications-{scope_tag}");
        let cursor = match crate::paging::decode(filter.page_token, &collection)? {
            None => None,
            Some(last) => {
                let row = repo::owned(&self.db, principal.user_id, last)
                    .await?
                    .ok_or_else(|| {
                        ApiError::invalid("page_token", "is not a page token of this list")
                    })?;
                Some((row.created_at, row.id))
            }
        };
        let mut rows = repo::list(
            &self.db,
            principal.user_id,
            &filter.statuses,
            service.as_deref(),
            country.as_deref(),
            cursor,
            size + 1,
        )
        .await?;
        let next = if rows.len() as u64 > size {
            rows.truncate(size as usize);
            rows.last()
                .map(|r| crate::paging::encode(r.id, &collection))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((self.views(rows).await?, next))
    }

    /// `SandboxService.InjectSms`: delivers a message to the caller's latest sandbox
    /// verification holding the number. Returns the verification and whether the message
    /// was ignored (dated before the verification).
    pub async fn inject_sms(
        &self,
        principal: &Principal,
        phone_number: &str,
        text: &str,
        sender: &str,
        received_at: Option<DateTime<Utc>>,
    ) -> Result<(View, bool), ApiError> {
        domain::check_injected(phone_number, text, sender)?;
        let row = repo::latest_sandbox_with_number(&self.db, principal.user_id, phone_number)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    "SANDBOX_NUMBER_NOT_FOUND",
                    "the number is not assigned to one of your sandbox verifications",
                )
            })?;
        let sender = if sender.is_empty() {
            self.catalog
                .service_name(&row.service)
                .await
                .unwrap_or_else(|| row.service.clone())
        } else {
            sender.to_owned()
        };
        let received_at = received_at.unwrap_or_else(Utc::now);
        let sms = ProviderSms {
            id: None,
            sender,
            text: text.to_owned(),
            code: None,
            received_at,
        };
        let applied = self
            .apply(row.id, Input::Sms(Incoming::from_provider(&sms)))
            .await?;
        Ok((applied.view, !applied.changed))
    }

    /// A provider's webhook named a rental and an SMS: delivered like a polled one.
    /// Unknown rentals are ignored (they may belong to another deployment sharing the
    /// provider account).
    pub async fn receive_provider_sms(
        &self,
        provider: &str,
        provider_ref: &str,
        sms: &ProviderSms,
    ) -> Result<Option<Applied>, ApiError> {
        let Some(row) = repo::by_provider_ref(&self.db, provider, provider_ref).await? else {
            return Ok(None);
        };
        Ok(Some(
            self.apply(row.id, Input::Sms(Incoming::from_provider(sms)))
                .await?,
        ))
    }

    /// `WebhookService.ReceiveWebhook` from TextVerified: the signature is checked over the
    /// raw body before anything is read; an SMS for one of our rentals is delivered like a
    /// polled one (each message is stored once, however often it is delivered).
    pub async fn receive_textverified_webhook(
        &self,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
    ) -> Result<crate::payments::service::WebhookOutcome, ApiError> {
        use crate::providers::textverified::{Webhook, parse_webhook, verify_webhook};
        let secret = self
            .settings
            .textverified_webhook_secret
            .as_deref()
            .ok_or_else(|| {
                ApiError::not_found(
                    "WEBHOOK_SOURCE_DISABLED",
                    "TextVerified webhooks are not taken here (TEXTVERIFIED_WEBHOOK_SECRET is unset)",
                )
            })?;
        let mut signatures = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-webhook-signature"));
        let signed = match (signatures.next(), signatures.next()) {
            (Some((_, value)), None) => {
                std::str::from_utf8(value).is_ok_and(|value| verify_webhook(secret, body, value))
            }
            _ => false,
        };
        if !signed {
            tracing::warn!(
                bytes = body.len(),
                "TextVerified webhook refused: missing or wrong signature"
            );
            return Err(ApiError::unauthenticated(
                "INVALID_SIGNATURE",
                "the x-webhook-signature header is missing or wrong",
            ));
        }
        let webhook = parse_webhook(body).map_err(|e| ApiError::InvalidField {
            reason: "MALFORMED_WEBHOOK",
            field: "body",
            description: format!("is not a TextVerified event: {e}"),
        })?;
        match webhook {
            Webhook::Sms {
                reservation_id,
                sms,
                ..
            } => match self
                .receive_provider_sms("textverified", &reservation_id, &sms)
                .await?
            {
                Some(applied) => Ok(crate::payments::service::WebhookOutcome {
                    accepted: true,
                    related_resource: domain::name(applied.view.row.id),
                }),
                None => {
                    tracing::info!(%reservation_id, "TextVerified SMS for an unknown rental ignored");
                    Ok(crate::payments::service::WebhookOutcome {
                        accepted: false,
                        related_resource: String::new(),
                    })
                }
            },
            Webhook::Other { event, .. } => {
                tracing::debug!(%event, "TextVerified event Namaskah does not use");
                Ok(crate::payments::service::WebhookOutcome {
                    accepted: false,
                    related_resource: String::new(),
                })
            }
        }
    }

    /// The stored events of a caller's verification after `after`.
    pub async fn events_after(
        &self,
        id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Vec<repo::Event>, ApiError> {
        Ok(repo::events_after(&self.db, id, after, limit).await?)
    }

    /// The caller's verification row (no messages), or NOT_FOUND.
    pub async fn owned_row(&self, principal: &Principal, id: Uuid) -> Result<Row, ApiError> {
        repo::owned(&self.db, principal.user_id, id)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn view_of(&self, row: Row) -> Result<View, ApiError> {
        self.view(row).await
    }

    /// The caller's open verifications, oldest first (snapshots for `WatchVerifications`).
    pub async fn open_views(&self, principal: &Principal) -> Result<Vec<View>, ApiError> {
        let rows = repo::open_of(&self.db, principal.user_id, 1_000).await?;
        self.views(rows).await
    }

    /// The cleanup a row still owes its provider.
    pub fn cleanup_of(row: &Row) -> Option<Cleanup> {
        row.cleanup.as_deref().and_then(Cleanup::parse)
    }
}

fn ensure_settled(settled: ledger::Settled) -> Result<(), ApiError> {
    match settled {
        ledger::Settled::Now | ledger::Settled::Already => Ok(()),
        // The row's conditional update allows one settlement only: reaching this means the
        // two guards disagree, which must never be papered over.
        ledger::Settled::OtherWay(kind) => Err(ApiError::Internal(anyhow::anyhow!(
            "hold already settled as {kind:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_wait_for_what_the_provider_knows() {
        let now = Utc::now();
        let s = |n: i64| now + chrono::Duration::seconds(n);
        let expires = s(600);
        assert_eq!(next_poll(s(1), None, expires), Some(s(1)));
        // A poll due after the expiry still runs when the provider said nothing.
        assert_eq!(next_poll(s(700), None, expires), Some(s(700)));
        assert_eq!(next_poll(s(1), Some(s(5)), expires), Some(s(5)));
        assert_eq!(next_poll(s(9), Some(s(5)), expires), Some(s(9)));
        assert_eq!(next_poll(s(1), Some(expires), expires), None);
        assert_eq!(next_poll(s(1), Some(s(1200)), expires), None);
    }
}
