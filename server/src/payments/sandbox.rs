//! The sandbox gateway: takes top-ups without real money. It keeps its own book of payments
//! in the database (so every instance sees the same), answers `verify` from it the way
//! Paystack would, and, when a payment is completed, produces the Paystack-format webhook
//! signed with its own key, which then takes the same path as a real Paystack event.
use chrono::Utc;
use hmac::{Hmac, Mac};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, IntoActiveModel};
use sha2::Sha256;

use super::domain::{Confirmation, GatewayKind};
use super::entities::sandbox_payments;
use super::gateway::{Gateway, GatewayError, Initialize, PaystackTransaction, sign};

pub struct SandboxGateway {
    db: DatabaseConnection,
    key: Vec<u8>,
    checkout_base: url::Url,
}

/// How a sandbox payment ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Paid: this amount in this currency (the gateway's minor units).
    Paid { amount: i64, currency: String },
    /// Declined.
    Declined,
}

impl SandboxGateway {
    /// `secret` seeds the webhook key, so every instance sharing it signs and checks alike.
    pub fn new(db: DatabaseConnection, secret: &[u8], public_url: &url::Url) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
        mac.update(b"namaskah sandbox payment gateway");
        let key = format!("sk_sandbox_{}", hex::encode(mac.finalize().into_bytes()));
        Self {
            db,
            key: key.into_bytes(),
            checkout_base: public_url.clone(),
        }
    }

    async fn find(&self, reference: &str) -> Result<sandbox_payments::Model, GatewayError> {
        sandbox_payments::Entity::find_by_id(reference.to_owned())
            .one(&self.db)
            .await
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?
            .ok_or(GatewayError::NotFound)
    }

    /// Records how the payment ended and returns the webhook the gateway sends for it: the
    /// body and its `x-paystack-signature`.
    pub async fn complete(
        &self,
        reference: &str,
        outcome: Outcome,
    ) -> Result<(Vec<u8>, String), GatewayError> {
        let payment = self.find(reference).await?;
        // A paid payment stays paid: completing it again repeats its confirmation.
        let outcome = match (
            payment.status.as_str(),
            payment.paid_amount,
            &payment.paid_currency,
        ) {
            ("success", Some(amount), Some(currency)) => Outcome::Paid {
                amount,
                currency: currency.clone(),
            },
            _ => outcome,
        };
        let (status, amount, currency, response, event) = match &outcome {
            Outcome::Paid { amount, currency } => (
                "success",
                *amount,
                currency.clone(),
                "Successful",
                "charge.success",
            ),
            Outcome::Declined => (
                "failed",
                payment.amount,
                payment.currency.clone(),
                "Declined",
                "charge.failed",
            ),
        };
        let mut row = payment.clone().into_active_model();
        row.status = Set(status.to_owned());
        row.paid_amount = Set(Some(amount));
        row.paid_currency = Set(Some(currency.clone()));
        row.updated_at = Set(Utc::now());
        sandbox_payments::Entity::update(row)
            .exec(&self.db)
            .await
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        let body = serde_json::to_vec(&serde_json::json!({
            "event": event,
            "data": {
                "domain": "test",
                "status": status,
                "reference": reference,
                "amount": amount,
                "currency": currency,
                "gateway_response": response,
                "channel": "sandbox",
                "paid_at": (status == "success").then(|| Utc::now().to_rfc3339()),
                "created_at": payment.created_at.to_rfc3339(),
                "customer": {"email": payment.email},
            }
        }))
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        let signature = sign(&self.key, &body);
        Ok((body, signature))
    }
}

#[async_trait::async_trait]
impl Gateway for SandboxGateway {
    fn kind(&self) -> GatewayKind {
        GatewayKind::Sandbox
    }

    async fn initialize(&self, payment: Initialize<'_>) -> Result<String, GatewayError> {
        let now = Utc::now();
        sandbox_payments::Entity::insert(
            sandbox_payments::Model {
                reference: payment.reference.to_owned(),
                email: payment.email.to_owned(),
                amount: payment.amount,
                currency: payment.currency.to_owned(),
                status: "abandoned".to_owned(),
                paid_amount: None,
                paid_currency: None,
                created_at: now,
                updated_at: now,
            }
            .into_active_model(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        let mut url = self.checkout_base.clone();
        url.set_path(&format!("/sandbox/checkout/{}", payment.reference));
        url.set_query(None);
        Ok(url.to_string())
    }

    async fn verify(&self, reference: &str) -> Result<Confirmation, GatewayError> {
        let payment = self.find(reference).await?;
        Ok(PaystackTransaction {
            reference: Some(payment.reference),
            gateway_response: Some(
                match payment.status.as_str() {
                    "success" => "Successful",
                    "failed" => "Declined",
                    _ => "The customer has not paid yet",
                }
                .to_owned(),
            ),
            status: Some(payment.status),
            amount: Some(payment.paid_amount.unwrap_or(payment.amount)),
            currency: Some(payment.paid_currency.unwrap_or(payment.currency)),
        }
        .confirmation())
    }

    fn webhook_key(&self) -> &[u8] {
        &self.key
    }
}
