//! Subscriptions and usage: the operations behind `SubscriptionService`, the billing jobs
//! (renewals, period close, metering flush, usage alerts) and what the rate limiter asks
//! about an account.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use namaskah_proto::v1 as pb;
use prost::Message as _;
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use super::domain::{self, Change, Subscription};
use super::plans::PlanBook;
use super::repo::{self, Closing, PeriodTerms};
use super::usage::Meter;
use super::{AccountPlans, view};
use crate::analytics::domain::FunnelStep;
use crate::analytics::events::Tracker;
use crate::cache::{Cache, DECODED_TTL};
use crate::clock::Clock;
use crate::error::{ApiError, StoreError, Violations};
use crate::identity::domain::{Plan, Principal};
use crate::identity::service::Identity;
use crate::mail::{Mail, Outbox};
use crate::telemetry::metrics;
use crate::wallet::domain::{EntryKind, LedgerError};
use crate::wallet::ledger;

/// How long an instance keeps an account's plan and period without asking again (a
/// change anywhere replaces the shared entry at once).
const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(600);
/// How long a renewal or a period close is one instance's to finish.
const LEASE: Duration = Duration::from_secs(60);
/// Rows taken per job pass.
const BATCH: u64 = 100;
/// An unpaid overage is tried again this often.
const UNPAID_RETRY: Duration = Duration::from_secs(3_600);
/// Attempts at a plan change that keeps meeting concurrent changes.
const CHANGE_ATTEMPTS: usize = 4;
/// Accounts remembered between the limiter's question and the meter's count.
const RECENT_CAPACITY: usize = 100_000;

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What billing needs to know about an account on every call: its plan and the period
/// its calls count towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    pub plan: Plan,
    pub period: PeriodTerms,
}

impl AccountInfo {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.plan.as_str(),
            self.period.start.timestamp_micros(),
            self.period.end.timestamp_micros(),
            self.period.included_api_calls,
            self.period.overage_per_thousand
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('|');
        let plan = Plan::parse(parts.next()?)?;
        let start = DateTime::<Utc>::from_timestamp_micros(parts.next()?.parse().ok()?)?;
        let end = DateTime::<Utc>::from_timestamp_micros(parts.next()?.parse().ok()?)?;
        let included_api_calls = parts.next()?.parse().ok()?;
        let overage_per_thousand = parts.next()?.parse().ok()?;
        Some(Self {
            plan,
            period: PeriodTerms {
                start,
                end,
                plan,
                included_api_calls,
                overage_per_thousand,
            },
        })
    }
}

fn account_key(user: Uuid) -> String {
    format!("billing:account:{user}")
}

/// Billing settings from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub usage_flush: Duration,
}

impl Settings {
    /// How long after a period's end its calls are final: every instance has flushed.
    pub fn close_grace(&self) -> Duration {
        self.usage_flush * 3 + Duration::from_secs(5)
    }
}

pub struct Billing {
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
    identity: Arc<Identity>,
    outbox: Outbox,
    plans: PlanBook,
    clock: Arc<Clock>,
    meter: Meter,
    /// Funnel steps (the first paid plan).
    tracker: Tracker,
    settings: Settings,
    /// The account info the limiter just looked up, for the meter to count the call with,
    /// and for the limiter's next calls while the cache has not changed (see [`Recent`]).
    recent: Vec<Mutex<HashMap<Uuid, Recent>>>,
}

/// An account's info as decoded from the cache, with the cache's generation read before
/// the look-up and the moment of the look-up: good while the generation stands still,
/// for at most [`DECODED_TTL`], and within its period.
#[derive(Clone, Copy, Debug)]
struct Recent {
    info: AccountInfo,
    generation: u64,
    read_at: Instant,
}

/// What a renewal did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewed {
    /// Nothing was due (or another instance did it).
    Nothing,
    /// The next period started on `plan`, for `charged`.
    Renewed { plan: Plan, charged: i64 },
    /// The wallet could not pay: the account is on starter now.
    Downgraded,
}

impl Billing {
    pub fn new(
        db: DatabaseConnection,
        cache: Arc<dyn Cache>,
        identity: Arc<Identity>,
        outbox: Outbox,
        plans: PlanBook,
        clock: Arc<Clock>,
        settings: Settings,
    ) -> Self {
        Self {
            db,
            cache,
            identity,
            outbox,
            plans,
            clock,
            meter: Meter::default(),
            tracker: Tracker::disabled(),
            settings,
            recent: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Records funnel steps (the first paid plan) with `tracker`.
    pub fn with_tracker(mut self, tracker: Tracker) -> Self {
        self.tracker = tracker;
        self
    }

    pub fn plans(&self) -> &PlanBook {
        &self.plans
    }

    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn recent(&self, user: Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, Recent>> {
        let index = (user.as_u128() % self.recent.len() as u128) as usize;
        self.recent[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn terms_of(&self, plan: Plan, start: DateTime<Utc>, end: DateTime<Utc>) -> PeriodTerms {
        let (included_api_calls, overage_per_thousand) =
            domain::usage_terms(self.plans.terms(plan));
        PeriodTerms {
            start,
            end,
            plan,
            included_api_calls,
            overage_per_thousand,
        }
    }

    /// The account's subscription row, created (on the account's plan, in this calendar
    /// month) if it has none; with the rules' view of it.
    async fn load(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(repo::SubscriptionRow, Subscription), ApiError> {
        if let Some(row) = repo::subscription(&self.db, user).await? {
            let sub = repo::subscription_of(&row)?;
            return Ok((row, sub));
        }
        let account = repo::user(&self.db, user).await?.ok_or_else(|| {
            ApiError::unauthenticated("UNAUTHENTICATED", "the account no longer exists")
        })?;
        let mut sub = Subscription::starter(now);
        sub.plan = Plan::parse(&account.plan).unwrap_or(Plan::Starter);
        sub.plan_started_at = account.created_at.min(now);
        repo::ensure_subscription(&self.db, user, &sub, now).await?;
        let row = repo::subscription(&self.db, user)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("subscription of {user}")))?;
        let sub = repo::subscription_of(&row)?;
        Ok((row, sub))
    }

    /// The plan and counting period of an account now, from the database.
    async fn read_account(&self, user: Uuid, now: DateTime<Utc>) -> Result<AccountInfo, ApiError> {
        let sub = match repo::subscription(&self.db, user).await? {
            Some(row) => repo::subscription_of(&row)?.as_of(now),
            None => {
                let account = repo::user(&self.db, user).await?;
                let mut sub = Subscription::starter(now);
                sub.plan = account
                    .and_then(|a| Plan::parse(&a.plan))
                    .unwrap_or(Plan::Starter);
                sub
            }
        };
        let (start, end) = if now < sub.period_end {
            (sub.period_start, sub.period_end)
        } else if sub.plan == Plan::Starter {
            domain::calendar_month(now)
        } else {
            // The renewal is due and not done yet: its calls already count towards the
            // next period.
            domain::paid_period(sub.anchor, now)
        };
        Ok(AccountInfo {
            plan: sub.plan,
            period: self.terms_of(sub.plan, start, end),
        })
    }

    /// The plan and counting period of an account now: from the cache unless the cached
    /// period is over.
    pub async fn account(&self, user: Uuid) -> Result<AccountInfo, ApiError> {
        let now = self.clock.now();
        let key = account_key(user);
        let stale = match self.cache.get(&key).await {
            Ok(Some(text)) => match AccountInfo::decode(&text) {
                Some(info) if now < info.period.end => return Ok(info),
                _ => true,
            },
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, "billing cache unavailable");
                false
            }
        };
        let info = self.read_account(user, now).await?;
        // An entry whose period is over is replaced; a missing one is only filled, so that
        // a change written meanwhile is never undone by this read.
        let stored = if stale {
            self.cache
                .set(&key, &info.encode(), ACCOUNT_CACHE_TTL)
                .await
        } else {
            self.cache
                .fill(&key, &info.encode(), ACCOUNT_CACHE_TTL)
                .await
        };
        if let Err(error) = stored {
            tracing::warn!(%error, "billing cache unavailable");
        }
        Ok(info)
    }

    /// Keeps `info` for the meter and the limiter's next calls (see [`Recent`]).
    fn remember(&self, user: Uuid, info: AccountInfo, generation: u64, read_at: Instant) {
        let mut recent = self.recent(user);
        if recent.len() >= RECENT_CAPACITY / self.recent.len() && !recent.contains_key(&user) {
            recent.clear();
        }
        recent.insert(
            user,
            Recent {
                info,
                generation,
                read_at,
            },
        );
    }

    /// The account's info as the limiter last read it, if nothing can have changed since.
    fn still_recent(&self, user: Uuid) -> Option<AccountInfo> {
        let recent = self.recent(user).get(&user).copied()?;
        (recent.generation == self.cache.generation()
            && recent.read_at.elapsed() < DECODED_TTL
            && self.clock.now() < recent.info.period.end)
            .then_some(recent.info)
    }

    /// After a change: every instance sees the account's new plan from its next call.
    async fn changed(&self, user: Uuid) {
        // Read before the change is published, so the copy kept here is never taken for
        // one read after it: the limiter reads the shared entry again.
        let generation = self.cache.generation();
        let read_at = Instant::now();
        let now = self.clock.now();
        match self.read_account(user, now).await {
            Ok(info) => {
                if let Err(error) = self
                    .cache
                    .set(&account_key(user), &info.encode(), ACCOUNT_CACHE_TTL)
                    .await
                {
                    tracing::error!(%error, %user, "could not publish a plan change");
                }
                self.remember(user, info, generation, read_at);
            }
            Err(error) => tracing::error!(%error, %user, "could not read a changed plan"),
        }
        self.identity.forget_user(user).await;
    }

    /// `GetSubscription`.
    pub async fn subscription(&self, principal: &Principal) -> Result<pb::Subscription, ApiError> {
        let now = self.clock.now();
        let (row, sub) = self.load(principal.user_id, now).await?;
        Ok(view::subscription(
            principal.user_id,
            &sub.as_of(now),
            &self.plans,
            row.updated_at,
        ))
    }

    /// `ChangePlan`.
    pub async fn change_plan(
        &self,
        principal: &Principal,
        target: Option<Plan>,
        request_id: &str,
    ) -> Result<pb::ChangePlanResponse, ApiError> {
        let mut violations = Violations::default();
        if target.is_none() {
            violations.add(
                "plan",
                "is required: PLAN_TIER_STARTER, PLAN_TIER_PRO or PLAN_TIER_ENTERPRISE",
            );
        }
        crate::payments::service::check_request_id(request_id, &mut violations);
        violations.into_result()?;
        let target = target.unwrap_or(Plan::Starter);
        let user = principal.user_id;
        let fingerprint = target.as_str();
        if let Some(existing) = repo::change_by_request(&self.db, user, request_id).await? {
            return replay(&existing, fingerprint);
        }

        for _ in 0..CHANGE_ATTEMPTS {
            let now = self.clock.now();
            let (row, sub) = self.load(user, now).await?;
            // A concurrent call with this request id may have committed since the check
            // above: what it changed is visible together with its change row.
            if let Some(existing) = repo::change_by_request(&self.db, user, request_id).await? {
                return replay(&existing, fingerprint);
            }
            if sub.plan != Plan::Starter && now >= sub.period_end {
                // The period ended and its renewal is due: settle it first.
                self.renew(user).await?;
                continue;
            }
            let change = domain::change_plan(&sub, target, now, &self.plans)?;
            if matches!(change, Change::Upgrade { .. }) {
                let account = repo::user(&self.db, user).await?;
                if !account.is_some_and(|a| a.email_verified) {
                    return Err(ApiError::failed_precondition(
                        "EMAIL_NOT_VERIFIED",
                        "verify your email address before upgrading",
                    ));
                }
            }
            let next = change.next();
            let charged = change.charge();
            let response = pb::ChangePlanResponse {
                subscription: Some(view::subscription(user, &next.as_of(now), &self.plans, now)),
                charged: Some(crate::convert::usd(charged)),
                effective_time: Some(crate::convert::timestamp(change.effective_at(now))),
            };
            let record = repo::ChangeRow {
                id: Uuid::now_v7(),
                user_id: user,
                actor: format!("user:{user}"),
                kind: change.kind().to_owned(),
                from_plan: sub.plan.as_str().to_owned(),
                to_plan: target.as_str().to_owned(),
                charged,
                effective_at: change.effective_at(now),
                request_id: Some(request_id.to_owned()),
                request_fingerprint: Some(fingerprint.to_owned()),
                response: Some(response.encode_to_vec()),
                created_at: now,
            };

            let txn = self.db.begin().await?;
            if !repo::insert_change(&txn, record).await? {
                txn.rollback().await?;
                let existing = repo::change_by_request(&self.db, user, request_id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("change {request_id} of {user}")))?;
                return replay(&existing, fingerprint);
            }
            if charged > 0 {
                let memo = format!(
                    "{} plan from {} (prorated)",
                    self.plans.terms(target).display_name,
                    now.format("%Y-%m-%d")
                );
                let header = ledger::Header {
                    business_key: &format!("plan-change:{user}:{request_id}"),
                    kind: EntryKind::SubscriptionFee,
                    user: Some(user),
                    reference: &view::subscription_name(user),
                    memo: &memo,
                    at: now,
                };
                let posted = ledger::debit_dated(&txn, user, charged, &header).await;
                if let Err(error) = posted {
                    txn.rollback().await?;
                    return Err(match error {
                        LedgerError::InsufficientFunds => ApiError::failed_precondition(
                            "INSUFFICIENT_FUNDS",
                            format!(
                                "the upgrade costs {} cents now and the wallet cannot pay it; top up first",
                                charged
                            ),
                        )
                        .with_metadata("charge_minor_units", charged.to_string()),
                        other => other.into(),
                    });
                }
            }
            if !repo::update_subscription(&txn, user, row.version, next, now).await? {
                // Another change (or a renewal) came first: decide again on what it left.
                txn.rollback().await?;
                continue;
            }
            if let Change::Upgrade { .. } = change {
                repo::set_user_plan(&txn, user, target, now).await?;
                if sub.plan == Plan::Starter {
                    // The free period ends here; the paid one starts.
                    let closing = sub.as_of(now);
                    repo::set_period_terms(
                        &txn,
                        user,
                        &self.terms_of(Plan::Starter, closing.period_start, now),
                        now,
                    )
                    .await?;
                }
                repo::set_period_terms(
                    &txn,
                    user,
                    &self.terms_of(target, next.period_start, next.period_end),
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            if charged > 0 {
                metrics::ledger_entry(EntryKind::SubscriptionFee.as_str(), charged);
            }
            self.changed(user).await;
            if let Change::Upgrade { .. } = change
                && sub.plan == Plan::Starter
            {
                self.tracker.step(user, FunnelStep::PlanUpgraded, now);
            }
            tracing::info!(%user, from = sub.plan.as_str(), to = target.as_str(), kind = change.kind(), charged, "plan changed");
            return Ok(response);
        }
        Err(ApiError::Aborted {
            reason: "CONCURRENT_CHANGE",
            message: "the subscription kept changing while this call ran; retry".to_owned(),
            retry_after: Duration::from_secs(1),
        })
    }

    /// `CancelSubscription`.
    pub async fn cancel(&self, principal: &Principal) -> Result<pb::Subscription, ApiError> {
        let user = principal.user_id;
        for _ in 0..CHANGE_ATTEMPTS {
            let now = self.clock.now();
            let (row, sub) = self.load(user, now).await?;
            if sub.plan != Plan::Starter && now >= sub.period_end {
                self.renew(user).await?;
                continue;
            }
            let next = domain::cancel(&sub, now)?;
            if sub.cancel_at_period_end {
                return Ok(view::subscription(user, &sub, &self.plans, row.updated_at));
            }
            let txn = self.db.begin().await?;
            if !repo::update_subscription(&txn, user, row.version, &next, now).await? {
                txn.rollback().await?;
                continue;
            }
            repo::insert_change(
                &txn,
                repo::ChangeRow {
                    id: Uuid::now_v7(),
                    user_id: user,
                    actor: format!("user:{user}"),
                    kind: "cancel_scheduled".to_owned(),
                    from_plan: sub.plan.as_str().to_owned(),
                    to_plan: Plan::Starter.as_str().to_owned(),
                    charged: 0,
                    effective_at: next.period_end,
                    request_id: None,
                    request_fingerprint: None,
                    response: None,
                    created_at: now,
                },
            )
            .await?;
            txn.commit().await?;
            self.changed(user).await;
            return Ok(view::subscription(user, &next, &self.plans, now));
        }
        Err(ApiError::Aborted {
            reason: "CONCURRENT_CHANGE",
            message: "the subscription kept changing while this call ran; retry".to_owned(),
            retry_after: Duration::from_secs(1),
        })
    }

    /// Renews one subscription whose period has ended (and any periods after it that have
    /// ended too): charges the next period's fee once (the ledger key names the period),
    /// or moves the account to starter with a mail when the wallet cannot pay.
    pub async fn renew(&self, user: Uuid) -> Result<Renewed, ApiError> {
        let mut outcome = Renewed::Nothing;
        // A long outage may have let several periods end; each is renewed in turn.
        for _ in 0..24 {
            let now = self.clock.now();
            let Some(row) = repo::subscription(&self.db, user).await? else {
                return Ok(outcome);
            };
            let sub = repo::subscription_of(&row)?;
            if sub.plan == Plan::Starter || now < sub.period_end {
                return Ok(outcome);
            }
            let next_plan = sub.next_plan();
            let fee = self.plans.terms(next_plan).monthly_fee;
            let mut next = domain::renewal(&sub, next_plan);
            let mut charged = 0;
            let mut downgraded = false;

            let txn = self.db.begin().await?;
            if fee > 0 {
                let key = format!("renewal:{user}:{}", next.period_start.timestamp_millis());
                let memo = format!(
                    "{} plan, {} to {}",
                    self.plans.terms(next_plan).display_name,
                    next.period_start.format("%Y-%m-%d"),
                    next.period_end.format("%Y-%m-%d")
                );
                // Dated at the start of the period it pays for, even when a late job run
                // renews several periods at once.
                let header = ledger::Header {
                    business_key: &key,
                    kind: EntryKind::SubscriptionFee,
                    user: Some(user),
                    reference: &view::subscription_name(user),
                    memo: &memo,
                    at: next.period_start,
                };
                match ledger::debit_dated(&txn, user, fee, &header).await {
                    Ok(_) => charged = fee,
                    Err(LedgerError::InsufficientFunds) => downgraded = true,
                    Err(other) => return Err(other.into()),
                }
            }
            let txn = if downgraded {
                txn.rollback().await?;
                next = domain::renewal(&sub, Plan::Starter);
                self.db.begin().await?
            } else {
                txn
            };
            if !repo::update_subscription(&txn, user, row.version, &next, now).await? {
                // Another instance renewed it first (its lease expired mid-way).
                txn.rollback().await?;
                return Ok(outcome);
            }
            if next.plan != sub.plan {
                repo::set_user_plan(&txn, user, next.plan, now).await?;
            }
            let kind = if downgraded {
                "renewal_failed"
            } else if next.plan == sub.plan {
                "renewal"
            } else if sub.cancel_at_period_end {
                "cancelled"
            } else {
                "downgrade"
            };
            repo::insert_change(
                &txn,
                repo::ChangeRow {
                    id: Uuid::now_v7(),
                    user_id: user,
                    actor: "system".to_owned(),
                    kind: kind.to_owned(),
                    from_plan: sub.plan.as_str().to_owned(),
                    to_plan: next.plan.as_str().to_owned(),
                    charged,
                    effective_at: next.period_start,
                    request_id: None,
                    request_fingerprint: None,
                    response: None,
                    created_at: now,
                },
            )
            .await?;
            repo::set_period_terms(
                &txn,
                user,
                &self.terms_of(next.plan, next.period_start, next.period_end),
                now,
            )
            .await?;
            txn.commit().await?;
            if charged > 0 {
                metrics::ledger_entry(EntryKind::SubscriptionFee.as_str(), charged);
            }
            self.changed(user).await;
            tracing::info!(%user, kind, from = sub.plan.as_str(), to = next.plan.as_str(), charged, "subscription renewed");
            if downgraded {
                self.mail_downgrade(user, sub.plan, fee).await;
                outcome = Renewed::Downgraded;
            } else {
                outcome = Renewed::Renewed {
                    plan: next.plan,
                    charged,
                };
            }
        }
        Ok(outcome)
    }

    async fn mail_downgrade(&self, user: Uuid, from: Plan, fee: i64) {
        let Ok(Some(account)) = repo::user(&self.db, user).await else {
            return;
        };
        let brand = self.identity.mail_brand(account.tenant_id).await;
        self.outbox.send(Mail {
            to: account.email,
            subject: format!("Your {} plan is now Starter", brand.name),
            text: format!(
                "We could not renew your {} plan: it costs {} and your wallet could not pay it.\n\
                 Your account is on the free Starter plan from now on (100 API requests a minute, list prices).\n\
                 Top up your wallet and choose the plan again whenever you like.",
                self.plans.terms(from).display_name,
                view::dollars(fee)
            ),
            from_name: brand.sender,
        });
    }

    /// One pass of the renewal job; returns how many subscriptions it renewed.
    pub async fn renew_due(&self) -> Result<usize, ApiError> {
        let now = self.clock.now();
        let mut renewed = 0;
        for user in repo::due_renewals(&self.db, now, BATCH).await? {
            if !repo::claim_renewal(&self.db, user, now, after(now, LEASE)).await? {
                continue;
            }
            match self.renew(user).await {
                Ok(Renewed::Nothing) => {}
                Ok(_) => renewed += 1,
                Err(error) => {
                    tracing::warn!(%user, %error, "renewal failed; retried after the lease")
                }
            }
        }
        Ok(renewed)
    }

    /// Closes one ended period: charges its overage once (the ledger key names the
    /// period). An overage the wallet cannot pay is kept `unpaid`, mailed once, and tried
    /// again hourly.
    pub async fn close(&self, user: Uuid, start: DateTime<Utc>) -> Result<(), ApiError> {
        let now = self.clock.now();
        let Some(period) = repo::period(&self.db, user, start).await? else {
            return Ok(());
        };
        let (over, charge) = domain::overage(
            period.api_calls,
            (period.included_api_calls, period.overage_per_thousand),
        );
        if charge == 0 {
            let closing = Closing {
                status: "nothing",
                overage_calls: over,
                overage_charge: 0,
                entry_id: None,
                retry_at: None,
            };
            repo::finish_close(&self.db, user, start, &closing, now).await?;
            return Ok(());
        }
        let txn = self.db.begin().await?;
        let memo = format!(
            "{over} API calls over the allowance, {} to {}",
            period.period_start.format("%Y-%m-%d"),
            period.period_end.format("%Y-%m-%d")
        );
        let header = ledger::Header {
            business_key: &format!("overage:{user}:{}", start.timestamp_millis()),
            kind: EntryKind::OverageCharge,
            user: Some(user),
            reference: &view::subscription_name(user),
            memo: &memo,
            at: now,
        };
        let posted = ledger::debit_dated(&txn, user, charge, &header).await;
        match posted {
            Ok(posted) => {
                let closing = Closing {
                    status: "charged",
                    overage_calls: over,
                    overage_charge: charge,
                    entry_id: Some(posted.entry_id()),
                    retry_at: None,
                };
                if repo::finish_close(&txn, user, start, &closing, now).await? {
                    txn.commit().await?;
                    metrics::ledger_entry(EntryKind::OverageCharge.as_str(), charge);
                    tracing::info!(%user, over, charge, "overage charged");
                } else {
                    txn.rollback().await?;
                }
            }
            Err(LedgerError::InsufficientFunds) => {
                txn.rollback().await?;
                let closing = Closing {
                    status: "unpaid",
                    overage_calls: over,
                    overage_charge: charge,
                    entry_id: None,
                    retry_at: Some(after(now, UNPAID_RETRY)),
                };
                let first = period.close_status == "open";
                if repo::finish_close(&self.db, user, start, &closing, now).await? && first {
                    tracing::warn!(%user, over, charge, "overage unpaid: the wallet is short");
                    if let Ok(Some(account)) = repo::user(&self.db, user).await {
                        let brand = self.identity.mail_brand(account.tenant_id).await;
                        self.outbox.send(Mail {
                            to: account.email,
                            subject: format!("Your {} usage charge is due", brand.name),
                            text: format!(
                                "Your billing period from {} to {} used {over} API calls beyond its allowance: {} is due.\n\
                                 Your wallet could not pay it. Top up your wallet: we will take it automatically.",
                                period.period_start.format("%Y-%m-%d"),
                                period.period_end.format("%Y-%m-%d"),
                                view::dollars(charge)
                            ),
                            from_name: brand.sender,
                        });
                    }
                }
            }
            Err(other) => {
                txn.rollback().await?;
                return Err(other.into());
            }
        }
        Ok(())
    }

    /// One pass of the close job; returns how many periods it looked at.
    pub async fn close_due(&self) -> Result<usize, ApiError> {
        let now = self.clock.now();
        let grace = chrono::Duration::from_std(self.settings.close_grace())
            .unwrap_or(chrono::Duration::zero());
        let mut closed = 0;
        for (user, start) in repo::due_closes(&self.db, now - grace, now, BATCH).await? {
            if !repo::claim_close(&self.db, user, start, now, after(now, LEASE)).await? {
                continue;
            }
            match self.close(user, start).await {
                Ok(()) => closed += 1,
                Err(error) => tracing::warn!(%user, %error, "closing a billing period failed"),
            }
        }
        Ok(closed)
    }

    /// Writes the counted calls to the database (one statement) and sends the usage alerts
    /// they cross. A failed write keeps the counts for the next flush.
    pub async fn flush_usage(&self) -> Result<(), ApiError> {
        let batch = self.meter.take();
        if batch.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        if let Err(error) = repo::add_calls(&self.db, &batch, now).await {
            self.meter.restore(batch);
            return Err(error.into());
        }
        for (user, terms, _) in batch {
            // Pro may have become enterprise (with an allowance) since the meter saw it.
            if terms.plan != Plan::Starter
                && let Err(error) = self.alert(user, terms.start, now).await
            {
                tracing::warn!(%user, %error, "usage alert check failed");
            }
        }
        Ok(())
    }

    /// Sends the alerts for thresholds the period's calls have reached, once each.
    async fn alert(
        &self,
        user: Uuid,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let Some(period) = repo::period(&self.db, user, start).await? else {
            return Ok(());
        };
        if period.included_api_calls <= 0 {
            return Ok(());
        }
        let thresholds = self.thresholds(user).await?.0;
        for threshold in domain::reached(period.api_calls, period.included_api_calls, &thresholds) {
            let recorded = repo::record_alert(
                &self.db,
                super::entities::usage_alerts::Model {
                    user_id: user,
                    period_start: start,
                    threshold: i32::try_from(threshold).unwrap_or(i32::MAX),
                    api_calls: period.api_calls,
                    included_api_calls: period.included_api_calls,
                    crossed_at: now,
                },
            )
            .await?;
            if !recorded {
                continue;
            }
            tracing::info!(%user, threshold, calls = period.api_calls, "usage alert");
            if let Some(account) = repo::user(&self.db, user).await? {
                let brand = self.identity.mail_brand(account.tenant_id).await;
                let used = domain::percent_used(period.api_calls, period.included_api_calls);
                self.outbox.send(Mail {
                    to: account.email,
                    subject: format!("You have used {threshold} % of your API allowance"),
                    text: format!(
                        "Your account has made {} API calls in the billing period that ends {}: {used} % of the {} included.\n\
                         Calls beyond the allowance cost {} per 1,000, charged when the period closes.",
                        period.api_calls,
                        period.period_end.format("%Y-%m-%d %H:%M UTC"),
                        period.included_api_calls,
                        view::dollars(period.overage_per_thousand)
                    ),
                    from_name: brand.sender,
                });
            }
        }
        Ok(())
    }

    /// The account's thresholds and when they were set (`None`: the defaults).
    async fn thresholds(&self, user: Uuid) -> Result<(Vec<u32>, Option<DateTime<Utc>>), ApiError> {
        Ok(match repo::alert_settings(&self.db, user).await? {
            Some((thresholds, at)) => (thresholds, Some(at)),
            None => (domain::DEFAULT_THRESHOLDS.to_vec(), None),
        })
    }

    /// `SetUsageAlert`.
    pub async fn set_usage_alert(
        &self,
        principal: &Principal,
        thresholds: &[i32],
    ) -> Result<pb::UsageAlert, ApiError> {
        let thresholds = domain::check_thresholds(thresholds)?;
        let now = self.clock.now();
        repo::set_alert_settings(&self.db, principal.user_id, &thresholds, now).await?;
        Ok(view::usage_alert(principal.user_id, &thresholds, Some(now)))
    }

    /// `GetUsage`: the period containing `at` (now by default).
    pub async fn usage(
        &self,
        principal: &Principal,
        at: Option<DateTime<Utc>>,
    ) -> Result<pb::Usage, ApiError> {
        let user = principal.user_id;
        let now = self.clock.now();
        let at = at.unwrap_or(now);
        if at > now {
            return Err(ApiError::invalid("period_time", "is in the future"));
        }
        let current = self.account(user).await?;
        let stored = repo::period_containing(&self.db, user, at).await?;
        let terms = match &stored {
            Some(row) => PeriodTerms {
                start: row.period_start,
                end: row.period_end,
                plan: repo::parse_plan(&row.plan)?,
                included_api_calls: row.included_api_calls,
                overage_per_thousand: row.overage_per_thousand,
            },
            None if current.period.start <= at && at < current.period.end => current.period,
            // A period nobody called in: starter's calendar month.
            None => {
                let (start, end) = domain::calendar_month(at);
                self.terms_of(Plan::Starter, start, end)
            }
        };
        let is_current = terms.start <= now && now < terms.end;
        let pending = if is_current {
            self.meter.pending(user, terms.start)
        } else {
            0
        };
        let api_calls = stored.as_ref().map_or(0, |row| row.api_calls) + pending;
        let verifications = repo::verifications_in(&self.db, user, terms.start, terms.end).await?;
        let spend = repo::spend_in(&self.db, user, terms.start, terms.end).await?;
        let (thresholds, _) = self.thresholds(user).await?;
        let crossed = repo::crossed(&self.db, user, terms.start).await?;
        let update_time = if is_current {
            // Counts from other instances reach the database within one flush interval.
            now - chrono::Duration::from_std(self.settings.usage_flush).unwrap_or_default()
        } else {
            stored
                .as_ref()
                .and_then(|row| row.calls_updated_at)
                .unwrap_or(terms.end)
        };
        Ok(view::usage(
            &terms,
            api_calls,
            verifications,
            spend,
            &thresholds,
            &crossed,
            update_time,
        ))
    }

    /// `ListPlans`.
    pub fn list_plans(&self) -> Vec<pb::Plan> {
        self.plans.all().iter().map(view::plan).collect()
    }
}

fn replay(
    existing: &repo::ChangeRow,
    fingerprint: &str,
) -> Result<pb::ChangePlanResponse, ApiError> {
    if existing.request_fingerprint.as_deref() != Some(fingerprint) {
        return Err(ApiError::AlreadyExists {
            reason: "IDEMPOTENCY_CONFLICT",
            message: "this request_id was used for a different plan change".to_owned(),
        });
    }
    let bytes = existing.response.as_deref().unwrap_or_default();
    pb::ChangePlanResponse::decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored plan change {}: {e}", existing.id)).into())
}

#[async_trait]
impl AccountPlans for Billing {
    async fn requests_per_minute(&self, user: Uuid) -> u32 {
        if let Some(info) = self.still_recent(user) {
            return self.plans.terms(info.plan).requests_per_minute;
        }
        // Both read before the look-up: a change that lands during it moves the generation.
        let generation = self.cache.generation();
        let read_at = Instant::now();
        let info = match self.account(user).await {
            Ok(info) => info,
            Err(error) => {
                // The limiter must answer: without the plan, starter's limit applies.
                tracing::warn!(%user, %error, "cannot read the account's plan; applying starter's limit");
                return self.plans.terms(Plan::Starter).requests_per_minute;
            }
        };
        self.remember(user, info, generation, read_at);
        self.plans.terms(info.plan).requests_per_minute
    }

    async fn plan_name(&self, user: Uuid) -> &'static str {
        match self.account(user).await {
            Ok(info) => info.plan.as_str(),
            Err(_) => Plan::Starter.as_str(),
        }
    }

    fn admitted(&self, user: Uuid) {
        let info = self.recent(user).get(&user).map(|recent| recent.info);
        match info {
            Some(info) => self.meter.record(user, &info.period, 1),
            None => tracing::debug!(%user, "call admitted without a plan look-up; not metered"),
        }
    }
}
