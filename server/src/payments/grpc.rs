//! Handlers of the payment side: `WebhookService` (raw, signed webhooks from the edge),
//! `SandboxService.CompletePayment`, and the `TopUp` message `WalletService` returns.
use std::sync::Arc;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::sandbox_service_server::SandboxService;
use namaskah_proto::v1::webhook_service_server::WebhookService;
use tonic::{Request, Response, Status};

use super::domain::{GatewayKind, TopUpStatus};
use super::service::{Payments, TopUpView, WebhookSource, sandbox_disabled};
use crate::authn::caller;
use crate::convert::timestamp;
use crate::error::ApiError;

fn money(minor_units: i64, currency: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: currency.to_owned(),
        minor_units,
    })
}

/// A top-up as the API shows it.
pub fn top_up(view: TopUpView) -> pb::TopUp {
    let TopUpView {
        payment,
        transaction,
    } = view;
    let status = match TopUpStatus::parse(&payment.status) {
        Some(TopUpStatus::Pending) => pb::TopUpStatus::Pending,
        Some(TopUpStatus::Processing) => pb::TopUpStatus::Processing,
        Some(TopUpStatus::Completed) => pb::TopUpStatus::Completed,
        Some(TopUpStatus::Failed) => pb::TopUpStatus::Failed,
        None => pb::TopUpStatus::Unspecified,
    };
    let gateway = match GatewayKind::parse(&payment.gateway) {
        Some(GatewayKind::Paystack) => pb::PaymentGateway::Paystack,
        Some(GatewayKind::Sandbox) => pb::PaymentGateway::Sandbox,
        None => pb::PaymentGateway::Unspecified,
    };
    pb::TopUp {
        name: format!("topUps/{}", payment.reference),
        amount: money(payment.amount, &payment.currency),
        status: status as i32,
        checkout_url: payment.checkout_url,
        gateway: gateway as i32,
        charged_amount: money(payment.charge_amount, &payment.charge_currency),
        credited_amount: payment
            .credited_amount
            .and_then(|amount| money(amount, &payment.currency)),
        failure_reason: payment.failure_reason.unwrap_or_default(),
        create_time: Some(timestamp(payment.created_at)),
        end_time: payment.completed_at.map(timestamp),
        transaction: transaction
            .map(|line| format!("transactions/{line}"))
            .unwrap_or_default(),
        reference: payment.reference,
    }
}

pub struct WebhookApi {
    payments: Arc<Payments>,
    verifications: Arc<crate::verification::service::Verifications>,
}

impl WebhookApi {
    pub fn new(
        payments: Arc<Payments>,
        verifications: Arc<crate::verification::service::Verifications>,
    ) -> Self {
        Self {
            payments,
            verifications,
        }
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn receive_webhook(
        &self,
        request: Request<pb::ReceiveWebhookRequest>,
    ) -> Result<Response<pb::ReceiveWebhookResponse>, Status> {
        let r = request.into_inner();
        let source = match pb::WebhookSource::try_from(r.source) {
            Ok(pb::WebhookSource::Paystack) => WebhookSource::Paystack,
            Ok(pb::WebhookSource::Sandbox) => WebhookSource::Sandbox,
            Ok(pb::WebhookSource::Textverified) => WebhookSource::TextVerified,
            _ => {
                return Err(ApiError::InvalidField {
                    reason: "UNKNOWN_WEBHOOK_SOURCE",
                    field: "source",
                    description: "must be a known WebhookSource".to_owned(),
                }
                .into());
            }
        };
        let headers: Vec<(String, Vec<u8>)> = r
            .headers
            .into_iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value))
            .collect();
        // Payment gateways to the payments room; number providers to the verifications room.
        let outcome = match source {
            WebhookSource::TextVerified => {
                self.verifications
                    .receive_textverified_webhook(&headers, &r.body)
                    .await?
            }
            _ => {
                self.payments
                    .receive_webhook(source, &headers, &r.body)
                    .await?
            }
        };
        Ok(Response::new(pb::ReceiveWebhookResponse {
            accepted: outcome.accepted,
            related_resource: outcome.related_resource,
        }))
    }
}

pub struct SandboxApi {
    payments: Arc<Payments>,
    verifications: Arc<crate::verification::service::Verifications>,
    enabled: bool,
}

impl SandboxApi {
    pub fn new(
        payments: Arc<Payments>,
        verifications: Arc<crate::verification::service::Verifications>,
        enabled: bool,
    ) -> Self {
        Self {
            payments,
            verifications,
            enabled,
        }
    }
}

#[tonic::async_trait]
impl SandboxService for SandboxApi {
    async fn inject_sms(
        &self,
        request: Request<pb::InjectSmsRequest>,
    ) -> Result<Response<pb::InjectSmsResponse>, Status> {
        if !self.enabled {
            return Err(sandbox_disabled().into());
        }
        let principal = caller(&request)?.clone();
        let r = request.into_inner();
        let received_at = match r.receive_time {
            None => None,
            Some(t) => Some(
                chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                    .filter(|_| (0..1_000_000_000).contains(&t.nanos))
                    .ok_or_else(|| ApiError::invalid("receive_time", "is not a valid timestamp"))?,
            ),
        };
        let (view, ignored) = self
            .verifications
            .inject_sms(&principal, &r.phone_number, &r.text, &r.sender, received_at)
            .await?;
        Ok(Response::new(pb::InjectSmsResponse {
            verification: Some(view.to_proto()),
            ignored,
        }))
    }

    async fn complete_payment(
        &self,
        request: Request<pb::CompletePaymentRequest>,
    ) -> Result<Response<pb::CompletePaymentResponse>, Status> {
        if !self.enabled {
            return Err(sandbox_disabled().into());
        }
        let principal = caller(&request)?.clone();
        let r = request.into_inner();
        let succeeded = match pb::SandboxPaymentOutcome::try_from(r.outcome) {
            Ok(pb::SandboxPaymentOutcome::Unspecified | pb::SandboxPaymentOutcome::Succeeded) => {
                true
            }
            Ok(pb::SandboxPaymentOutcome::Failed) => false,
            Err(_) => {
                return Err(ApiError::invalid("outcome", "is not a SandboxPaymentOutcome").into());
            }
        };
        let paid = match r.paid_amount {
            None => None,
            Some(money) => {
                let mut violations = crate::error::Violations::default();
                let currency = money.currency_code.to_ascii_uppercase();
                if !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())) {
                    violations.add(
                        "paid_amount.currency_code",
                        "must be a three-letter currency code",
                    );
                }
                if money.minor_units <= 0 {
                    violations.add("paid_amount.minor_units", "must be more than zero");
                }
                violations.into_result()?;
                Some((money.minor_units, currency))
            }
        };
        let view = self
            .payments
            .complete_sandbox_payment(&principal, &r.reference, succeeded, paid)
            .await?;
        Ok(Response::new(pb::CompletePaymentResponse {
            top_up: Some(top_up(view)),
        }))
    }
}
