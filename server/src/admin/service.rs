//! The administrators' operations. Each one first admits the caller (an admin whose session
//! passed a TOTP check; a denied attempt is audited), then acts, writing its audit entry in
//! the same transaction as the change. A refused or failed action is audited on its own,
//! after the fact (nothing changed, so there is nothing to commit it with).
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use namaskah_proto::v1 as pb;
use prost::Message as _;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use super::domain::{self, Outcome};
use super::repo::{self, AuditFilter, AuditRow, UserFilter};
use crate::catalog::service::{Catalog, PriceChange};
use crate::error::{ApiError, StoreError, Violations};
use crate::identity::domain::{AccountStatus, Principal};
use crate::identity::entities::users;
use crate::identity::service::{Identity, UserProfile};
use crate::payments::service::check_request_id;
use crate::verification::repo::Row;
use crate::verification::service::{AlsoInTransaction, Input, Verifications, View};
use crate::wallet::domain::{CURRENCY, EntryKind};
use crate::wallet::ledger::{self, Posted, WalletMovement};

pub const LIST_USERS: &str = "namaskah.v1.AdminService/ListUsers";
pub const GET_USER: &str = "namaskah.v1.AdminService/GetUser";
pub const ADJUST_BALANCE: &str = "namaskah.v1.AdminService/AdjustBalance";
pub const SUSPEND_USER: &str = "namaskah.v1.AdminService/SuspendUser";
pub const REACTIVATE_USER: &str = "namaskah.v1.AdminService/ReactivateUser";
pub const SET_SERVICE_PRICE: &str = "namaskah.v1.AdminService/SetServicePrice";
pub const REFUND_VERIFICATION: &str = "namaskah.v1.AdminService/RefundVerification";
pub const LIST_AUDIT_LOG_ENTRIES: &str = "namaskah.v1.AdminService/ListAuditLogEntries";

/// Who is calling, as the handler saw it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// The client's address (behind our own proxies, the one they name).
    pub client_address: Option<String>,
}

/// An admitted administrator, and what its audit entries say of the call.
#[derive(Clone, Debug)]
pub struct Actor {
    pub id: Uuid,
    pub email: String,
    client_address: Option<String>,
}

/// What one audit entry will say, apart from its outcome and states.
#[derive(Clone, Debug)]
struct Draft {
    /// Who acted (or tried to: for a denial, the account that was refused).
    actor: Actor,
    method: &'static str,
    target: String,
    request_id: Option<String>,
}

impl Draft {
    fn for_actor(actor: &Actor, method: &'static str, target: impl Into<String>) -> Self {
        Self {
            actor: actor.clone(),
            method,
            target: target.into(),
            request_id: None,
        }
    }

    fn with_request(mut self, request_id: &str) -> Self {
        self.request_id = (!request_id.is_empty()).then(|| request_id.to_owned());
        self
    }

    fn entry(
        &self,
        outcome: Outcome,
        reason: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> AuditRow {
        AuditRow {
            id: Uuid::now_v7(),
            actor_id: Some(self.actor.id),
            actor_email: self.actor.email.chars().take(320).collect(),
            method: self.method.to_owned(),
            target: self.target.chars().take(200).collect(),
            outcome: outcome.as_str().to_owned(),
            reason: reason.chars().take(domain::MAX_REASON).collect(),
            before,
            after,
            request_id: self.request_id.clone(),
            client_address: self.actor.client_address.clone(),
            created_at: Utc::now().trunc_subsecs(6),
        }
    }
}

/// An account as administrators see it.
pub struct Account {
    pub profile: UserProfile,
    /// `tenants/{id}` of the account's tenant (`tenants/default`: the platform's).
    pub tenant: String,
    pub balance: i64,
    pub held: i64,
    pub verification_count: u64,
    pub last_active: Option<DateTime<Utc>>,
    pub suspension: Option<repo::Suspension>,
}

/// `GetUser`'s answer.
pub struct AccountDetail {
    pub account: Account,
    pub verifications: Vec<View>,
    pub transactions: Vec<WalletMovement>,
    pub audit: Vec<AuditRow>,
}

/// `ListUsers`' filters.
pub struct UserQuery<'a> {
    pub email_query: &'a str,
    pub plan: Option<&'static str>,
    pub status: Option<AccountStatus>,
    /// `tenants/{id}`; empty for any.
    pub tenant: &'a str,
}

/// What `RefundVerification` remembers and answers.
#[derive(Debug)]
struct RefundRecords {
    draft: Draft,
    fingerprint: String,
    reason: String,
}

#[async_trait::async_trait]
impl AlsoInTransaction for RefundRecords {
    async fn write(
        &self,
        txn: &DatabaseTransaction,
        before: &Row,
        after: &View,
    ) -> Result<(), ApiError> {
        let actor = &self.draft.actor;
        if let Some(request_id) = &self.draft.request_id {
            let response = pb::RefundVerificationResponse {
                verification: Some(after.to_proto()),
            };
            let fresh = repo::remember(
                txn,
                repo::Remembered {
                    actor_id: actor.id,
                    request_id: request_id.clone(),
                    method: REFUND_VERIFICATION.to_owned(),
                    fingerprint: self.fingerprint.clone(),
                    response: response.encode_to_vec(),
                    created_at: Utc::now().trunc_subsecs(6),
                },
            )
            .await?;
            if !fresh {
                return Err(replay_race());
            }
        }
        repo::append(
            txn,
            self.draft.entry(
                Outcome::Succeeded,
                &self.reason,
                Some(verification_state(before)),
                Some(verification_state(&after.row)),
            ),
        )
        .await?;
        Ok(())
    }
}

fn verification_state(row: &Row) -> Value {
    json!({
        "status": row.status,
        "charge_state": row.charge_state,
        "price": row.price,
        "refund_reason": row.refund_reason,
        "refund_transaction_id": row.refund_transaction_id.map(|id| format!("transactions/{id}")),
    })
}

fn account_state(user: &users::Model, suspension: Option<&repo::Suspension>) -> Value {
    json!({
        "status": user.status,
        "plan": user.plan,
        "suspend_reason": suspension.map(|s| s.reason.clone()),
    })
}

/// Another call with the same `request_id` committed first: the caller replays its answer.
fn replay_race() -> ApiError {
    ApiError::Aborted {
        reason: "REQUEST_IN_PROGRESS",
        message: "another call with this request_id finished first; retry to get its answer"
            .to_owned(),
        retry_after: std::time::Duration::from_millis(200),
    }
}

fn idempotency_conflict() -> ApiError {
    ApiError::already_exists(
        "IDEMPOTENCY_CONFLICT",
        "this request_id was used for a different request",
    )
}

fn user_not_found() -> ApiError {
    ApiError::not_found("USER_NOT_FOUND", "no such account")
}

/// An amount: `USD`, not zero (and positive unless `allow_negative`).
fn check_money(
    fields: [&'static str; 3],
    money: Option<&pb::Money>,
    allow_negative: bool,
) -> Result<i64, ApiError> {
    let [field, currency_field, units_field] = fields;
    let Some(money) = money else {
        return Err(ApiError::invalid(field, "is required"));
    };
    let invalid = |field: &'static str, description: &str| ApiError::InvalidField {
        reason: "INVALID_AMOUNT",
        field,
        description: description.to_owned(),
    };
    if !money.currency_code.is_empty() && money.currency_code != CURRENCY {
        return Err(invalid(currency_field, "must be USD"));
    }
    if money.minor_units == 0 {
        return Err(invalid(units_field, "must not be zero"));
    }
    if !allow_negative && money.minor_units < 0 {
        return Err(invalid(units_field, "must be positive"));
    }
    Ok(money.minor_units)
}

pub struct Admin {
    db: DatabaseConnection,
    identity: Arc<Identity>,
    catalog: Arc<Catalog>,
    verifications: Arc<Verifications>,
}

impl Admin {
    pub fn new(
        db: DatabaseConnection,
        identity: Arc<Identity>,
        catalog: Arc<Catalog>,
        verifications: Arc<Verifications>,
    ) -> Self {
        Self {
            db,
            identity,
            catalog,
            verifications,
        }
    }

    /// Lets an administrator with a TOTP-verified session through; audits anyone else's
    /// attempt (with what they tried and on what) and refuses it.
    pub async fn admit(
        &self,
        caller: &Caller,
        method: &'static str,
        target: &str,
    ) -> Result<Actor, ApiError> {
        let profile = self.identity.me(&caller.principal).await?;
        let actor = Actor {
            id: profile.id,
            email: profile.email,
            client_address: caller.client_address.clone(),
        };
        match domain::admit(&profile.role, &caller.principal.credential) {
            Ok(()) => Ok(actor),
            Err(denial) => {
                let draft = Draft::for_actor(&actor, method, target);
                self.audit_refusal(&draft, Outcome::Denied, denial.reason())
                    .await;
                tracing::warn!(user_id = %caller.principal.user_id, method, reason = denial.reason(), "admin RPC denied");
                Err(denial.into_error())
            }
        }
    }

    /// Appends the audit entry of `actor`'s successful `method` on `target` in the caller's
    /// transaction (for other rooms' administrators' RPCs, such as the tenants').
    #[allow(clippy::too_many_arguments)]
    pub async fn audit_in(
        &self,
        txn: &DatabaseTransaction,
        actor: &Actor,
        method: &'static str,
        target: &str,
        request_id: &str,
        reason: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<(), ApiError> {
        let draft = Draft::for_actor(actor, method, target).with_request(request_id);
        repo::append(txn, draft.entry(Outcome::Succeeded, reason, before, after)).await?;
        Ok(())
    }

    /// Audits `actor`'s failed `method` on `target` (not internal errors), and hands the
    /// result back.
    pub async fn audit_failure<T>(
        &self,
        actor: &Actor,
        method: &'static str,
        target: &str,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.failed(&Draft::for_actor(actor, method, target), result)
            .await
    }

    /// Records a denied or failed attempt. Best effort: the caller's answer is the error
    /// itself, and an audit store that cannot take it is logged loudly.
    async fn audit_refusal(&self, draft: &Draft, outcome: Outcome, reason: &str) {
        if let Err(error) = repo::append(&self.db, draft.entry(outcome, reason, None, None)).await {
            tracing::error!(%error, method = draft.method, "could not write an audit entry");
        }
    }

    /// Audits a failed action (not internal errors: those are logged and reported as such).
    async fn failed<T>(&self, draft: &Draft, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(error) = &result
            && !matches!(error, ApiError::Internal(_))
        {
            self.audit_refusal(draft, Outcome::Failed, error.reason())
                .await;
        }
        result
    }

    async fn account(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        user: users::Model,
    ) -> Result<Account, ApiError> {
        let (balance, held) = ledger::balances(conn, user.id).await?;
        let verification_count = repo::verification_count(conn, user.id).await?;
        let last_active = repo::last_active(conn, user.id).await?;
        let suspension = repo::suspension(conn, user.id).await?;
        let tenant = match user.tenant_id {
            None => crate::tenant::domain::DEFAULT_TENANT.to_owned(),
            Some(id) => match self.catalog.current().await?.tenant(id) {
                Some((_, entry)) => entry.slug.clone(),
                None => id.to_string(),
            },
        };
        Ok(Account {
            profile: UserProfile::from(&user),
            tenant: format!("tenants/{tenant}"),
            balance,
            held,
            verification_count,
            last_active,
            suspension,
        })
    }

    /// `ListUsers`. (Every operation takes the admitted [`Actor`]: it cannot be called
    /// without passing [`Self::admit`] first.)
    pub async fn list_users(
        &self,
        _actor: &Actor,
        query: UserQuery<'_>,
        page_token: &str,
        page_size: i32,
    ) -> Result<(Vec<Account>, String), ApiError> {
        let limit = crate::paging::page_size(page_size)?;
        let email = query.email_query.trim();
        if email.chars().count() > 320 {
            return Err(ApiError::invalid(
                "email_query",
                "must be at most 320 characters",
            ));
        }
        // `Some(None)`: the platform's own customers; `Some(Some(id))`: a tenant's; `None`:
        // everyone. A tenant that does not exist has no customers.
        let tenant: Option<Option<Uuid>> = match query.tenant {
            "" => None,
            name => {
                let slug = crate::tenant::domain::parse_name("tenant", name)?;
                if slug == crate::tenant::domain::DEFAULT_TENANT {
                    Some(None)
                } else {
                    match self.catalog.current().await?.tenant_by_slug(&slug) {
                        Some((_, entry)) => Some(Some(entry.id)),
                        None => return Ok((Vec::new(), String::new())),
                    }
                }
            }
        };
        let scope = format!(
            "users-{}-{}-{}-{}",
            domain::fingerprint("", &[email])
                .get(..16)
                .unwrap_or_default(),
            query.plan.unwrap_or("any"),
            query.status.map_or("any", AccountStatus::as_str),
            query.tenant,
        );
        let before = crate::paging::decode(page_token, &scope)?;
        let filter = UserFilter {
            email_pattern: (!email.is_empty()).then(|| domain::contains_pattern(email)),
            plan: query.plan,
            status: query.status.map(AccountStatus::as_str),
            tenant,
        };
        let mut rows = repo::users(&self.db, &filter, before, limit).await?;
        let next = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|u| crate::paging::encode(u.id, &scope))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut accounts = Vec::with_capacity(rows.len());
        for user in rows {
            accounts.push(self.account(&self.db, user).await?);
        }
        Ok((accounts, next))
    }

    /// `GetUser`: the account, its latest verifications, transactions and audit entries.
    /// Viewing a customer's data is itself audited.
    pub async fn get_user(&self, actor: &Actor, name: &str) -> Result<AccountDetail, ApiError> {
        let id = crate::paging::parse_name(name, "name", "users")?;
        let draft = Draft::for_actor(actor, GET_USER, name);
        let user = self
            .failed(
                &draft,
                repo::user(&self.db, id).await?.ok_or_else(user_not_found),
            )
            .await?;
        let account = self.account(&self.db, user).await?;
        let verifications = self.verifications.recent_of(id, 10).await?;
        let transactions = ledger::wallet_movements(&self.db, id, None, None, 10).await?;
        let filter = AuditFilter {
            target: Some(format!("users/{id}")),
            ..Default::default()
        };
        let mut audit = repo::audit_entries(&self.db, &filter, None, 10).await?;
        audit.truncate(10);
        repo::append(&self.db, draft.entry(Outcome::Succeeded, "", None, None)).await?;
        Ok(AccountDetail {
            account,
            verifications,
            transactions,
            audit,
        })
    }

    /// `AdjustBalance`: one ledger entry against the adjustments account, its audit entry
    /// and the remembered answer, in one transaction.
    pub async fn adjust_balance(
        &self,
        actor: &Actor,
        request: &pb::AdjustBalanceRequest,
    ) -> Result<pb::AdjustBalanceResponse, ApiError> {
        let id = crate::paging::parse_name(&request.name, "name", "users")?;
        let amount = check_money(
            ["amount", "amount.currency_code", "amount.minor_units"],
            request.amount.as_ref(),
            true,
        )?;
        let mut v = Violations::default();
        let reason = domain::check_reason("reason", &request.reason, 3, &mut v);
        check_request_id(&request.request_id, &mut v);
        v.into_result()?;
        let fingerprint = domain::fingerprint(
            ADJUST_BALANCE,
            &[&request.name, &amount.to_string(), &reason],
        );
        if let Some(answer) = self
            .replay::<pb::AdjustBalanceResponse>(actor, &request.request_id, &fingerprint)
            .await?
        {
            return Ok(answer);
        }
        let draft = Draft::for_actor(actor, ADJUST_BALANCE, &request.name)
            .with_request(&request.request_id);
        let result = self
            .adjust_in_transaction(
                actor,
                &draft,
                id,
                amount,
                &reason,
                &request.request_id,
                &fingerprint,
            )
            .await;
        match result {
            Err(error) if error.reason() == "REQUEST_IN_PROGRESS" => self
                .replay::<pb::AdjustBalanceResponse>(actor, &request.request_id, &fingerprint)
                .await?
                .ok_or(error),
            other => self.failed(&draft, other).await,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn adjust_in_transaction(
        &self,
        actor: &Actor,
        draft: &Draft,
        user: Uuid,
        amount: i64,
        reason: &str,
        request_id: &str,
        fingerprint: &str,
    ) -> Result<pb::AdjustBalanceResponse, ApiError> {
        let txn = self.db.begin().await.map_err(StoreError::from)?;
        repo::user(&txn, user).await?.ok_or_else(user_not_found)?;
        let (before, _) = ledger::balances(&txn, user).await?;
        let key = format!("adjust:{}:{request_id}", actor.id);
        let posted = ledger::adjust(&txn, user, amount, &key, reason).await?;
        if matches!(posted, Posted::Already(_)) {
            return Err(replay_race());
        }
        // The wallet's row stays locked until the commit: its newest line is this one.
        let movement = ledger::wallet_movements(&txn, user, Some(EntryKind::Adjustment), None, 1)
            .await?
            .into_iter()
            .next()
            .filter(|m| m.entry.id == posted.entry_id())
            .ok_or_else(|| StoreError::Corrupt(format!("adjustment {key} has no wallet line")))?;
        let (after, _) = ledger::balances(&txn, user).await?;
        let response = pb::AdjustBalanceResponse {
            transaction: Some(crate::wallet::grpc::transaction(movement)),
            balance: crate::wallet::grpc::money(after),
        };
        if !repo::remember(
            &txn,
            repo::Remembered {
                actor_id: actor.id,
                request_id: request_id.to_owned(),
                method: ADJUST_BALANCE.to_owned(),
                fingerprint: fingerprint.to_owned(),
                response: response.encode_to_vec(),
                created_at: Utc::now().trunc_subsecs(6),
            },
        )
        .await?
        {
            return Err(replay_race());
        }
        repo::append(
            &txn,
            draft.entry(
                Outcome::Succeeded,
                reason,
                Some(json!({ "balance": before })),
                Some(json!({ "balance": after, "amount": amount })),
            ),
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)?;
        crate::telemetry::metrics::ledger_entry(EntryKind::Adjustment.as_str(), amount.abs());
        tracing::info!(admin = %actor.id, user_id = %user, amount, "balance adjusted");
        Ok(response)
    }

    /// The remembered answer for this administrator's `request_id`, if it is the same
    /// request; `IDEMPOTENCY_CONFLICT` if it is not.
    async fn replay<M: prost::Message + Default>(
        &self,
        actor: &Actor,
        request_id: &str,
        fingerprint: &str,
    ) -> Result<Option<M>, ApiError> {
        let Some(row) = repo::remembered(&self.db, actor.id, request_id).await? else {
            return Ok(None);
        };
        if row.fingerprint != fingerprint {
            return Err(idempotency_conflict());
        }
        M::decode(row.response.as_slice())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("remembered answer: {e}")).into())
    }

    /// `SuspendUser` (`suspend`) and `ReactivateUser`.
    pub async fn set_suspended(
        &self,
        actor: &Actor,
        name: &str,
        reason: &str,
        suspend: bool,
    ) -> Result<Account, ApiError> {
        let method = if suspend {
            SUSPEND_USER
        } else {
            REACTIVATE_USER
        };
        let id = crate::paging::parse_name(name, "name", "users")?;
        let mut v = Violations::default();
        let reason = domain::check_reason("reason", reason, if suspend { 3 } else { 0 }, &mut v);
        v.into_result()?;
        let draft = Draft::for_actor(actor, method, name);
        if suspend && id == actor.id {
            return self
                .failed(
                    &draft,
                    Err(ApiError::failed_precondition(
                        "CANNOT_SUSPEND_SELF",
                        "administrators cannot suspend their own account",
                    )),
                )
                .await;
        }
        let result = async {
            let now = Utc::now().trunc_subsecs(6);
            let txn = self.db.begin().await.map_err(StoreError::from)?;
            let user = repo::user(&txn, id).await?.ok_or_else(user_not_found)?;
            let wanted = if suspend {
                AccountStatus::Suspended
            } else {
                AccountStatus::Active
            };
            if AccountStatus::parse(&user.status) == Some(wanted) {
                // Already so: unchanged, and nothing to audit as a change.
                txn.rollback().await.map_err(StoreError::from)?;
                return Ok((self.account(&self.db, user).await?, Vec::new()));
            }
            let before_suspension = repo::suspension(&txn, id).await?;
            let before = account_state(&user, before_suspension.as_ref());
            let ended = self
                .identity
                .set_suspended(&txn, &user, suspend, now)
                .await?;
            let suspension = if suspend {
                let row = repo::Suspension {
                    user_id: id,
                    suspended_by: actor.id,
                    reason: reason.clone(),
                    suspended_at: now,
                };
                repo::put_suspension(&txn, row.clone()).await?;
                Some(row)
            } else {
                repo::lift_suspension(&txn, id).await?;
                None
            };
            let updated = repo::user(&txn, id).await?.ok_or_else(user_not_found)?;
            let after = account_state(&updated, suspension.as_ref());
            repo::append(
                &txn,
                draft.entry(Outcome::Succeeded, &reason, Some(before), Some(after)),
            )
            .await?;
            let account = self.account(&txn, updated).await?;
            txn.commit().await.map_err(StoreError::from)?;
            Ok((account, ended))
        }
        .await;
        let (account, ended) = self.failed(&draft, result).await?;
        // Every instance drops its cached copies (also when nothing changed: a retry after a
        // failed invalidation repairs it).
        self.identity.status_changed(id, &ended).await?;
        tracing::info!(admin = %actor.id, user_id = %id, suspend, "account status set");
        Ok(account)
    }

    /// `SetServicePrice`: the change and its audit entry in one transaction, then every
    /// instance's catalog cache is invalidated.
    pub async fn set_service_price(
        &self,
        actor: &Actor,
        request: &pb::SetServicePriceRequest,
    ) -> Result<(PriceChange, DateTime<Utc>), ApiError> {
        let (service, country) = domain::parse_price_name(&request.name)?;
        let mut v = Violations::default();
        let reason = domain::check_reason("reason", &request.reason, 0, &mut v);
        v.into_result()?;
        let price = if request.withdrawn {
            None
        } else {
            Some(check_money(
                [
                    "base_price",
                    "base_price.currency_code",
                    "base_price.minor_units",
                ],
                request.base_price.as_ref(),
                false,
            )?)
        };
        let draft = Draft::for_actor(actor, SET_SERVICE_PRICE, &request.name);
        let result = async {
            let txn = self.db.begin().await.map_err(StoreError::from)?;
            let change = match price {
                Some(price) => {
                    self.catalog
                        .set_price_in(&txn, &service, &country, price)
                        .await?
                }
                None => {
                    self.catalog
                        .withdraw_price_in(&txn, &service, &country)
                        .await?
                }
            };
            let before = json!({ "base_price": change.previous_base_price });
            let after = json!({
                "base_price": price,
                "withdrawn": price.is_none(),
            });
            repo::append(
                &txn,
                draft.entry(Outcome::Succeeded, &reason, Some(before), Some(after)),
            )
            .await?;
            txn.commit().await.map_err(StoreError::from)?;
            Ok(change)
        }
        .await;
        let change = self.failed(&draft, result).await?;
        self.catalog.invalidate().await?;
        Ok((change, Utc::now()))
    }

    /// `RefundVerification`: through the lifecycle's one change function, so it races
    /// safely with everything else that may happen to the verification; the audit entry and
    /// the remembered answer commit with it.
    pub async fn refund_verification(
        &self,
        actor: &Actor,
        request: &pb::RefundVerificationRequest,
    ) -> Result<pb::RefundVerificationResponse, ApiError> {
        let id = crate::verification::domain::parse_name("name", &request.name)?;
        let mut v = Violations::default();
        let reason = domain::check_reason("reason", &request.reason, 3, &mut v);
        check_request_id(&request.request_id, &mut v);
        v.into_result()?;
        let fingerprint = domain::fingerprint(REFUND_VERIFICATION, &[&request.name, &reason]);
        if let Some(answer) = self
            .replay::<pb::RefundVerificationResponse>(actor, &request.request_id, &fingerprint)
            .await?
        {
            return Ok(answer);
        }
        let draft = Draft::for_actor(actor, REFUND_VERIFICATION, &request.name)
            .with_request(&request.request_id);
        let records = Arc::new(RefundRecords {
            draft: draft.clone(),
            fingerprint: fingerprint.clone(),
            reason: reason.clone(),
        });
        let result = self
            .verifications
            .apply(
                id,
                Input::ManualRefund {
                    note: reason,
                    also: records,
                },
            )
            .await;
        match result {
            Ok(applied) => Ok(pb::RefundVerificationResponse {
                verification: Some(applied.view.to_proto()),
            }),
            Err(error) if error.reason() == "REQUEST_IN_PROGRESS" => self
                .replay::<pb::RefundVerificationResponse>(actor, &request.request_id, &fingerprint)
                .await?
                .ok_or(error),
            Err(error) => self.failed(&draft, Err(error)).await,
        }
    }

    /// `ListAuditLogEntries`.
    pub async fn audit_log(
        &self,
        _actor: &Actor,
        request: &pb::ListAuditLogEntriesRequest,
    ) -> Result<(Vec<AuditRow>, String), ApiError> {
        let limit = crate::paging::page_size(request.page_size)?;
        let mut v = Violations::default();
        let actor_filter = if request.actor.is_empty() {
            None
        } else {
            match crate::paging::parse_name(&request.actor, "actor", "users") {
                Ok(id) => Some(id),
                Err(_) => {
                    v.add("actor", "must be a resource name like users/{user_id}");
                    None
                }
            }
        };
        if request.target.chars().count() > 200 {
            v.add("target", "must be at most 200 characters");
        }
        if request.method.chars().count() > 128 {
            v.add("method", "must be at most 128 characters");
        }
        let outcome = match pb::AuditOutcome::try_from(request.outcome) {
            Ok(pb::AuditOutcome::Unspecified) => None,
            Ok(pb::AuditOutcome::Succeeded) => Some(Outcome::Succeeded),
            Ok(pb::AuditOutcome::Denied) => Some(Outcome::Denied),
            Ok(pb::AuditOutcome::Failed) => Some(Outcome::Failed),
            Err(_) => {
                v.add("outcome", "is not an AuditOutcome");
                None
            }
        };
        let from = time_field(&mut v, "start_time", request.start_time.as_ref());
        let until = time_field(&mut v, "end_time", request.end_time.as_ref());
        if let (Some(from), Some(until)) = (from, until)
            && until < from
        {
            v.add("end_time", "must not be before start_time");
        }
        v.into_result()?;
        let scope = format!(
            "audit-{}",
            domain::fingerprint(
                "",
                &[
                    &request.actor,
                    &request.target,
                    &request.method,
                    outcome.map_or("any", Outcome::as_str),
                    &from.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    &until.map(|t| t.to_rfc3339()).unwrap_or_default(),
                ],
            )
            .get(..16)
            .unwrap_or_default()
        );
        let before = crate::paging::decode(&request.page_token, &scope)?;
        let filter = AuditFilter {
            actor: actor_filter,
            target: (!request.target.is_empty()).then(|| request.target.clone()),
            method: (!request.method.is_empty()).then(|| request.method.clone()),
            outcome: outcome.map(Outcome::as_str),
            from,
            until,
        };
        let mut rows = repo::audit_entries(&self.db, &filter, before, limit).await?;
        let next = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| crate::paging::encode(r.id, &scope))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((rows, next))
    }
}

fn time_field(
    v: &mut Violations,
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    let t = t?;
    match u32::try_from(t.nanos)
        .ok()
        .and_then(|n| DateTime::<Utc>::from_timestamp(t.seconds, n))
    {
        Some(at) => Some(at),
        None => {
            v.add(field, "is not a valid timestamp");
            None
        }
    }
}
