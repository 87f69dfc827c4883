//! Top-ups: start one at the gateway, learn how it ended (from a signed webhook, from
//! `VerifyTopUp`, or both, in any order, any number of times, concurrently), and credit the
//! wallet exactly once.
//!
//! Exactly once rests on two guards in one database transaction: the payment row moves out
//! of a creditable state with a conditional update (only one mover can win it), and the
//! ledger entry carries the unique business key `topup:{reference}`.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{DatabaseConnection, TransactionTrait};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::domain::{
    self, Decision, Expected, FailureReason, GatewayKind, Rate, State, TopUpStatus,
};
use super::entities::payment_logs;
use super::gateway::{Gateway, GatewayError, Initialize, PaystackEvent, signature_matches};
use super::repo::{self, Payment, Source};
use super::sandbox::{Outcome, SandboxGateway};
use crate::analytics::domain::FunnelStep;
use crate::analytics::events::Tracker;
use crate::error::{ApiError, StoreError, Violations};
use crate::identity::domain::Principal;
use crate::identity::service::Identity;
use crate::telemetry::metrics;
use crate::wallet::domain::CURRENCY;
use crate::wallet::ledger;

/// How long a caller should wait before retrying after the gateway failed.
const GATEWAY_RETRY: Duration = Duration::from_secs(5);

/// Who sent a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookSource {
    Paystack,
    Sandbox,
    TextVerified,
}

/// What a webhook did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookOutcome {
    pub accepted: bool,
    pub related_resource: String,
}

/// A top-up as callers see it: the row and, once credited, its wallet line.
pub struct TopUpView {
    pub payment: Payment,
    pub transaction: Option<Uuid>,
}

/// What `CreateTopUp` asks for.
pub struct NewTopUp<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub request_id: &'a str,
    pub callback_url: &'a str,
}

pub struct Payments {
    db: DatabaseConnection,
    identity: Arc<Identity>,
    paystack: Option<Arc<dyn Gateway>>,
    sandbox: Option<Arc<SandboxGateway>>,
    rate: Rate,
    public_url: url::Url,
    /// Funnel steps (the first top-up).
    tracker: Tracker,
}

fn unavailable(error: &GatewayError) -> ApiError {
    ApiError::Unavailable {
        reason: "PAYMENT_GATEWAY_UNAVAILABLE",
        message: format!("{error}; try again shortly"),
        retry_after: Some(GATEWAY_RETRY),
    }
}

fn top_up_not_found() -> ApiError {
    ApiError::not_found("TOP_UP_NOT_FOUND", "no such top-up")
}

/// Formats minor units for logs, for example `15000.00 NGN`.
fn display(amount: i64, currency: &str) -> String {
    format!(
        "{}{}.{:02} {currency}",
        if amount < 0 { "-" } else { "" },
        amount.unsigned_abs() / 100,
        amount.unsigned_abs() % 100
    )
}

/// A request id: 1 to 64 letters, digits, `-` or `_`.
pub fn check_request_id(request_id: &str, violations: &mut Violations) {
    if request_id.is_empty() {
        violations.add("request_id", "is required");
    } else if request_id.len() > 64
        || !request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        violations.add(
            "request_id",
            "must be 1 to 64 letters, digits, `-` or `_` (a UUID is ideal)",
        );
    }
}

impl Payments {
    pub fn new(
        db: DatabaseConnection,
        identity: Arc<Identity>,
        paystack: Option<Arc<dyn Gateway>>,
        sandbox: Option<Arc<SandboxGateway>>,
        rate: Rate,
        public_url: url::Url,
        tracker: Tracker,
    ) -> Self {
        Self {
            db,
            identity,
            paystack,
            sandbox,
            rate,
            public_url,
            tracker,
        }
    }

    /// The gateway new top-ups go through: Paystack when configured, else the sandbox.
    fn current_gateway(&self) -> Option<Arc<dyn Gateway>> {
        self.paystack.clone().or_else(|| {
            self.sandbox
                .clone()
                .map(|sandbox| sandbox as Arc<dyn Gateway>)
        })
    }

    fn gateway(&self, kind: GatewayKind) -> Option<Arc<dyn Gateway>> {
        match kind {
            GatewayKind::Paystack => self.paystack.clone(),
            GatewayKind::Sandbox => self
                .sandbox
                .clone()
                .map(|sandbox| sandbox as Arc<dyn Gateway>),
        }
    }

    fn gateway_of(&self, payment: &Payment) -> Result<Arc<dyn Gateway>, ApiError> {
        GatewayKind::parse(&payment.gateway)
            .and_then(|kind| self.gateway(kind))
            .ok_or_else(|| {
                ApiError::failed_precondition(
                    "PAYMENT_GATEWAY_DISABLED",
                    format!(
                        "the {} gateway this top-up went through is not configured",
                        payment.gateway
                    ),
                )
            })
    }

    /// The default page the gateway sends the customer back to, or the caller's own, which
    /// must be on the platform's host.
    fn callback_url(&self, requested: &str) -> Result<String, ApiError> {
        if requested.is_empty() {
            let mut url = self.public_url.clone();
            url.set_path("/wallet/top-ups");
            return Ok(url.to_string());
        }
        let invalid = |why: &str| ApiError::invalid("callback_url", why.to_owned());
        if requested.len() > 400 {
            return Err(invalid("must be at most 400 characters"));
        }
        let url = url::Url::parse(requested).map_err(|_| invalid("is not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must be an http:// or https:// URL"));
        }
        if url.host_str() != self.public_url.host_str() || url.port() != self.public_url.port() {
            return Err(invalid(&format!(
                "must be on {}",
                self.public_url.host_str().unwrap_or("the platform's host")
            )));
        }
        if url.scheme() != self.public_url.scheme() {
            return Err(invalid(&format!(
                "must be a {}:// URL",
                self.public_url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        // Stored as normalised (percent-encoded), which can be longer than what was sent.
        let url = url.to_string();
        if url.len() > 500 {
            return Err(invalid(
                "is too long once percent-encoded (at most 500 characters)",
            ));
        }
        Ok(url)
    }

    pub async fn create_top_up(
        &self,
        principal: &Principal,
        request: NewTopUp<'_>,
    ) -> Result<TopUpView, ApiError> {
        let mut violations = Violations::default();
        check_request_id(request.request_id, &mut violations);
        if request.currency.is_empty() {
            violations.add("amount.currency_code", "is required");
        }
        violations.into_result()?;
        if request.currency != CURRENCY {
            return Err(ApiError::InvalidField {
                reason: "UNSUPPORTED_CURRENCY",
                field: "amount.currency_code",
                description: format!("wallets are in {CURRENCY}"),
            });
        }
        domain::check_top_up_amount(request.amount, &self.rate)?;
        let callback_url = self.callback_url(request.callback_url)?;
        let fingerprint = hex::encode(Sha256::digest(format!(
            "{}|{}|{}",
            request.amount, request.currency, request.callback_url
        )));
        let user = principal.user_id;
        let replay = |existing: Payment| {
            if existing.request_fingerprint == fingerprint {
                Ok(existing)
            } else {
                Err(ApiError::already_exists(
                    "IDEMPOTENCY_CONFLICT",
                    "this request_id was used for a different top-up",
                ))
            }
        };
        if let Some(existing) = repo::by_request(&self.db, user, request.request_id).await? {
            return self.view(replay(existing)?).await;
        }

        let profile = self.identity.me(principal).await?;
        if !profile.email_verified {
            return Err(ApiError::failed_precondition(
                "EMAIL_NOT_VERIFIED",
                "verify your email address before topping up",
            ));
        }
        let gateway = self.current_gateway().ok_or_else(|| {
            ApiError::failed_precondition(
                "PAYMENT_GATEWAY_DISABLED",
                "no payment gateway is configured",
            )
        })?;

        // The gateway first: a top-up row only exists once it has a checkout page. Two
        // concurrent retries both reach the gateway; the database keeps the first row and
        // the other checkout page is never shown to anyone.
        let reference = domain::new_reference();
        let charge_amount = self.rate.charge_for(request.amount);
        let checkout_url = gateway
            .initialize(Initialize {
                reference: &reference,
                email: &profile.email,
                amount: charge_amount,
                currency: &self.rate.currency,
                callback_url: &callback_url,
                metadata: serde_json::json!({
                    "user_id": user,
                    "amount": request.amount,
                    "currency": CURRENCY,
                    "custom_fields": [{
                        "display_name": "Namaskah wallet top-up",
                        "variable_name": "top_up",
                        "value": display(request.amount, CURRENCY),
                    }],
                }),
            })
            .await
            .map_err(|error| match error {
                GatewayError::Unavailable(_) => {
                    metrics::topup("gateway_unavailable");
                    tracing::warn!(%error, gateway = gateway.kind().as_str(), "top-up not started");
                    unavailable(&error)
                }
                // Our request or our configuration (a bad key): retrying will not help.
                GatewayError::Refused(_) | GatewayError::NotFound => {
                    metrics::topup("gateway_refused");
                    tracing::error!(%error, gateway = gateway.kind().as_str(), "the gateway refused to start a top-up");
                    ApiError::failed_precondition(
                        "PAYMENT_GATEWAY_REFUSED",
                        "the payment gateway refused this top-up; it has been logged",
                    )
                }
            })?;

        let now = Utc::now();
        let payment = Payment {
            id: Uuid::now_v7(),
            reference: reference.clone(),
            user_id: user,
            request_id: request.request_id.to_owned(),
            request_fingerprint: fingerprint.clone(),
            gateway: gateway.kind().as_str().to_owned(),
            status: TopUpStatus::Pending.as_str().to_owned(),
            amount: request.amount,
            currency: CURRENCY.to_owned(),
            charge_amount,
            charge_currency: self.rate.currency.clone(),
            credited_amount: None,
            failure_reason: None,
            checkout_url,
            callback_url,
            entry_id: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
        };
        let id = payment.id;
        let txn = self.db.begin().await.map_err(StoreError::from)?;
        if repo::insert(&txn, payment).await? {
            repo::record(
                &txn,
                id,
                None,
                TopUpStatus::Pending,
                Source::Create,
                &format!(
                    "{} asked; {} to charge at {} via {}",
                    display(request.amount, CURRENCY),
                    display(charge_amount, &self.rate.currency),
                    self.rate,
                    gateway.kind().as_str()
                ),
            )
            .await?;
            txn.commit().await.map_err(StoreError::from)?;
            metrics::topup("started");
        } else {
            txn.rollback().await.map_err(StoreError::from)?;
            tracing::info!(%reference, "a concurrent retry created this top-up first");
        }
        let stored = repo::by_request(&self.db, user, request.request_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("top-up {reference}")))?;
        self.view(replay(stored)?).await
    }

    /// The caller's top-up by reference (another account's is not found).
    async fn own(&self, user: Uuid, reference: &str) -> Result<Payment, ApiError> {
        if reference.is_empty() {
            return Err(ApiError::invalid("reference", "is required"));
        }
        if !domain::is_reference(reference) {
            return Err(top_up_not_found());
        }
        match repo::by_reference(&self.db, reference).await? {
            Some(payment) if payment.user_id == user => Ok(payment),
            _ => Err(top_up_not_found()),
        }
    }

    /// Asks the gateway and settles the top-up; returns it with the wallet's balance.
    pub async fn verify_top_up(
        &self,
        principal: &Principal,
        reference: &str,
    ) -> Result<(TopUpView, i64), ApiError> {
        let payment = self.own(principal.user_id, reference).await?;
        let payment = self.refresh(payment, Source::Verify).await?;
        let balance = ledger::wallet_summary(&self.db, principal.user_id)
            .await?
            .available;
        Ok((self.view(payment).await?, balance))
    }

    /// Asks the gateway where a payment stands and acts on the answer. Final top-ups are
    /// returned as they are, without a call.
    async fn refresh(&self, payment: Payment, source: Source) -> Result<Payment, ApiError> {
        if payment.state()?.is_final() {
            return Ok(payment);
        }
        let gateway = self.gateway_of(&payment)?;
        let confirmation = match gateway.verify(&payment.reference).await {
            Ok(confirmation) => confirmation,
            Err(GatewayError::NotFound) => {
                tracing::warn!(reference = %payment.reference, "the gateway does not know this top-up");
                return Ok(payment);
            }
            Err(error) => {
                tracing::warn!(%error, reference = %payment.reference, "top-up left pending");
                return Err(unavailable(&error));
            }
        };
        let decision = domain::decide(expected(&payment), &confirmation);
        let detail = format!(
            "gateway says {:?} ({}): {}",
            confirmation.status,
            confirmation.gateway_response,
            display(confirmation.amount, &confirmation.currency)
        );
        self.apply(payment, decision, source, &detail).await
    }

    /// Acts on a decision. Every change is a guarded transition in one transaction with its
    /// event (and, for a credit, the ledger entry), retried on a fresh read when another
    /// caller moved the row first.
    async fn apply(
        &self,
        mut payment: Payment,
        decision: Decision,
        source: Source,
        detail: &str,
    ) -> Result<Payment, ApiError> {
        for _ in 0..4 {
            let state = payment.state()?;
            let moved = match decision {
                Decision::Wait => return Ok(payment),
                Decision::Credit(amount) => {
                    if !state.can_credit() {
                        return Ok(payment);
                    }
                    self.credit(&payment, state, amount, source, detail).await?
                }
                Decision::Fail(reason) => {
                    if !state.can_fail(reason) {
                        if reason != FailureReason::PaymentFailed {
                            // A refusal that changes nothing is still on the record.
                            tracing::warn!(reference = %payment.reference, reason = reason.as_str(), %detail, "gateway confirmation refused");
                            repo::record(
                                &self.db,
                                payment.id,
                                Some(state.status),
                                state.status,
                                source,
                                &format!("refused ({}): {detail}", reason.as_str()),
                            )
                            .await?;
                        }
                        return Ok(payment);
                    }
                    self.fail(&payment, state, reason, source, detail).await?
                }
            };
            let reread = repo::by_reference(&self.db, &payment.reference)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("top-up {}", payment.reference)))?;
            if moved {
                return Ok(reread);
            }
            payment = reread;
        }
        Err(ApiError::Unavailable {
            reason: "UNAVAILABLE",
            message: "the top-up is changing; try again".to_owned(),
            retry_after: Some(Duration::from_secs(1)),
        })
    }

    /// Credits the wallet and completes the top-up; false when another caller moved it
    /// first (nothing written).
    async fn credit(
        &self,
        payment: &Payment,
        state: State,
        amount: i64,
        source: Source,
        detail: &str,
    ) -> Result<bool, ApiError> {
        let now = Utc::now();
        let txn = self.db.begin().await.map_err(StoreError::from)?;
        if !repo::transition(
            &txn,
            payment.id,
            state,
            TopUpStatus::Processing,
            vec![],
            now,
        )
        .await?
        {
            txn.rollback().await.map_err(StoreError::from)?;
            return Ok(false);
        }
        repo::record(
            &txn,
            payment.id,
            Some(state.status),
            TopUpStatus::Processing,
            source,
            detail,
        )
        .await?;
        let entry = ledger::credit(
            &txn,
            payment.user_id,
            amount,
            &format!("topup:{}", payment.reference),
            &payment.reference,
            &format!(
                "Top-up of {} ({} via {})",
                display(amount, CURRENCY),
                display(payment.charge_amount, &payment.charge_currency),
                payment.gateway
            ),
        )
        .await?
        .entry_id();
        let processing = State {
            status: TopUpStatus::Processing,
            failure: state.failure,
        };
        let completed = repo::transition(
            &txn,
            payment.id,
            processing,
            TopUpStatus::Completed,
            vec![
                (payment_logs::Column::CreditedAmount, Expr::value(amount)),
                (payment_logs::Column::EntryId, Expr::value(entry)),
                (
                    payment_logs::Column::FailureReason,
                    Expr::value(Option::<String>::None),
                ),
                (payment_logs::Column::CheckoutUrl, Expr::value("")),
                (payment_logs::Column::CompletedAt, Expr::value(now)),
            ],
            now,
        )
        .await?;
        if !completed {
            txn.rollback().await.map_err(StoreError::from)?;
            return Err(
                StoreError::Corrupt(format!("top-up {} mid-credit", payment.reference)).into(),
            );
        }
        repo::record(
            &txn,
            payment.id,
            Some(TopUpStatus::Processing),
            TopUpStatus::Completed,
            source,
            &format!("credited {}", display(amount, CURRENCY)),
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)?;
        metrics::topup("credited");
        metrics::topup_credited(CURRENCY, amount);
        self.tracker
            .step(payment.user_id, FunnelStep::FirstTopUp, now);
        tracing::info!(reference = %payment.reference, amount, source = source.as_str(), "top-up credited");
        Ok(true)
    }

    /// Fails the top-up for `reason`; false when another caller moved it first.
    async fn fail(
        &self,
        payment: &Payment,
        state: State,
        reason: FailureReason,
        source: Source,
        detail: &str,
    ) -> Result<bool, ApiError> {
        let now = Utc::now();
        let mut columns = vec![
            (
                payment_logs::Column::FailureReason,
                Expr::value(reason.as_str()),
            ),
            (payment_logs::Column::CompletedAt, Expr::value(now)),
        ];
        if reason != FailureReason::PaymentFailed {
            // Refused for good: the checkout page is of no more use.
            columns.push((payment_logs::Column::CheckoutUrl, Expr::value("")));
            tracing::warn!(reference = %payment.reference, reason = reason.as_str(), %detail, "gateway confirmation refused");
        }
        let txn = self.db.begin().await.map_err(StoreError::from)?;
        if !repo::transition(&txn, payment.id, state, TopUpStatus::Failed, columns, now).await? {
            txn.rollback().await.map_err(StoreError::from)?;
            return Ok(false);
        }
        repo::record(
            &txn,
            payment.id,
            Some(state.status),
            TopUpStatus::Failed,
            source,
            &format!("{}: {detail}", reason.as_str()),
        )
        .await?;
        txn.commit().await.map_err(StoreError::from)?;
        // Declined by the payer's bank, or refused by us (wrong amount or currency).
        metrics::topup(if reason == FailureReason::PaymentFailed {
            "failed"
        } else {
            "refused"
        });
        Ok(true)
    }

    /// Checks a webhook's signature and acts on it. See `WebhookService.ReceiveWebhook`.
    pub async fn receive_webhook(
        &self,
        source: WebhookSource,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
    ) -> Result<WebhookOutcome, ApiError> {
        let disabled = |what: &str| {
            ApiError::not_found(
                "WEBHOOK_SOURCE_DISABLED",
                format!("{what} webhooks are not taken here"),
            )
        };
        let gateway = match source {
            WebhookSource::Paystack => self.paystack.clone().ok_or_else(|| disabled("Paystack"))?,
            WebhookSource::Sandbox => self
                .sandbox
                .clone()
                .map(|sandbox| sandbox as Arc<dyn Gateway>)
                .ok_or_else(|| disabled("sandbox gateway"))?,
            // Provider webhooks belong to the verifications room.
            WebhookSource::TextVerified => return Err(disabled("TextVerified (not a gateway)")),
        };
        let mut signatures = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-paystack-signature"));
        let signed = match (signatures.next(), signatures.next()) {
            (Some((_, value)), None) => signature_matches(gateway.webhook_key(), body, value),
            _ => false,
        };
        if !signed {
            tracing::warn!(
                gateway = gateway.kind().as_str(),
                bytes = body.len(),
                "webhook refused: missing or wrong signature"
            );
            return Err(ApiError::unauthenticated(
                "INVALID_SIGNATURE",
                "the x-paystack-signature header is missing or wrong",
            ));
        }
        let event: PaystackEvent =
            serde_json::from_slice(body).map_err(|e| ApiError::InvalidField {
                reason: "MALFORMED_WEBHOOK",
                field: "body",
                description: format!("is not a Paystack event: {e}"),
            })?;
        let reference = event.reference().unwrap_or_default().to_owned();
        let ignored = |why: &str, related: String| {
            tracing::info!(event = %event.event, %reference, why, "webhook ignored");
            Ok(WebhookOutcome {
                accepted: false,
                related_resource: related,
            })
        };
        if !matches!(event.event.as_str(), "charge.success" | "charge.failed") {
            return ignored("an event Namaskah does not use", String::new());
        }
        let payment = if domain::is_reference(&reference) {
            repo::by_reference(&self.db, &reference).await?
        } else {
            None
        };
        let Some(payment) = payment else {
            return ignored("unknown reference", String::new());
        };
        let related = format!("topUps/{}", payment.reference);
        if GatewayKind::parse(&payment.gateway) != Some(gateway.kind()) {
            return ignored("the top-up went through another gateway", related);
        }
        // The body only names the payment. What it claims about status and amount is not
        // trusted: the gateway is asked, and its answer is acted on (a final top-up is not
        // asked about again). Without an answer, the sender is told to retry later.
        let payment = self.refresh(payment, Source::Webhook).await?;
        let state = payment.state()?;
        let accepted = match (event.event.as_str(), state.status) {
            (_, TopUpStatus::Completed) => true,
            ("charge.success", _) if state.can_credit() => {
                return Err(ApiError::Unavailable {
                    reason: "UNAVAILABLE",
                    message: "the gateway does not confirm this payment yet".to_owned(),
                    retry_after: Some(GATEWAY_RETRY),
                });
            }
            // A decline, recorded; or the gateway still has the payment open.
            ("charge.failed", TopUpStatus::Failed) => {
                state.failure == Some(FailureReason::PaymentFailed)
            }
            ("charge.failed", TopUpStatus::Pending) => true,
            // Refused (another amount or currency): logged and recorded by `apply`.
            _ => false,
        };
        if !accepted {
            tracing::info!(%related, status = %payment.status, "webhook about a refused top-up");
        }
        Ok(WebhookOutcome {
            accepted,
            related_resource: related,
        })
    }

    /// Finishes a sandbox top-up through the sandbox gateway's signed webhook.
    pub async fn complete_sandbox_payment(
        &self,
        principal: &Principal,
        reference: &str,
        succeeded: bool,
        paid: Option<(i64, String)>,
    ) -> Result<TopUpView, ApiError> {
        let sandbox = self.sandbox.clone().ok_or_else(sandbox_disabled)?;
        let payment = self.own(principal.user_id, reference).await?;
        if payment.gateway != GatewayKind::Sandbox.as_str() {
            return Err(ApiError::not_found(
                "TOP_UP_NOT_FOUND",
                "no such sandbox top-up (this one went through a real gateway)",
            ));
        }
        let outcome = if succeeded {
            let (amount, currency) =
                paid.unwrap_or((payment.charge_amount, payment.charge_currency.clone()));
            Outcome::Paid { amount, currency }
        } else {
            Outcome::Declined
        };
        let (body, signature) = sandbox
            .complete(&payment.reference, outcome)
            .await
            .map_err(|error| unavailable(&error))?;
        let headers = [
            ("content-type".to_owned(), b"application/json".to_vec()),
            ("x-paystack-signature".to_owned(), signature.into_bytes()),
        ];
        self.receive_webhook(WebhookSource::Sandbox, &headers, &body)
            .await?;
        let payment = repo::by_reference(&self.db, &payment.reference)
            .await?
            .ok_or_else(top_up_not_found)?;
        self.view(payment).await
    }

    async fn view(&self, payment: Payment) -> Result<TopUpView, ApiError> {
        let transaction = match payment.entry_id {
            Some(entry) => ledger::wallet_line(&self.db, entry, payment.user_id).await?,
            None => None,
        };
        Ok(TopUpView {
            payment,
            transaction,
        })
    }

    /// A top-up's recorded events (for tests and support tools).
    pub async fn history(
        &self,
        reference: &str,
    ) -> Result<Vec<super::entities::payment_events::Model>, ApiError> {
        let payment = repo::by_reference(&self.db, reference)
            .await?
            .ok_or_else(top_up_not_found)?;
        Ok(repo::events(&self.db, payment.id).await?)
    }
}

fn expected(payment: &Payment) -> Expected<'_> {
    Expected {
        amount: payment.amount,
        charge_amount: payment.charge_amount,
        charge_currency: &payment.charge_currency,
    }
}

/// The answer of every sandbox RPC when the sandbox is off.
pub fn sandbox_disabled() -> ApiError {
    ApiError::Disabled {
        reason: "SANDBOX_DISABLED",
        message: "the sandbox is off on this server (NAMASKAH_SANDBOX; its payment gateway is also off when Paystack is configured)".to_owned(),
    }
}
