//! What a payment gateway does for us, whichever it is: start a payment, tell us where a
//! payment stands, and sign its webhooks. Paystack's wire format (shared by the sandbox
//! gateway, which imitates it) is read here too.
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha512;

use super::domain::{Confirmation, GatewayKind, GatewayStatus};

/// A payment to start.
#[derive(Clone, Debug)]
pub struct Initialize<'a> {
    pub reference: &'a str,
    pub email: &'a str,
    /// In the gateway currency's minor units.
    pub amount: i64,
    pub currency: &'a str,
    pub callback_url: &'a str,
    /// Shown on the gateway's dashboard.
    pub metadata: serde_json::Value,
}

/// Why a gateway call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// It timed out, could not be reached, answered 5xx or something unreadable: try later.
    #[error("the payment gateway is unavailable: {0}")]
    Unavailable(String),
    /// It refused the request (4xx other than not-found): our mistake or our configuration.
    #[error("the payment gateway refused the request: {0}")]
    Refused(String),
    /// It does not know the reference.
    #[error("the payment gateway does not know this reference")]
    NotFound,
}

#[async_trait::async_trait]
pub trait Gateway: Send + Sync {
    fn kind(&self) -> GatewayKind;

    /// Registers a payment; returns the checkout page to send the customer to.
    async fn initialize(&self, payment: Initialize<'_>) -> Result<String, GatewayError>;

    /// Asks where a payment stands.
    async fn verify(&self, reference: &str) -> Result<Confirmation, GatewayError>;

    /// The key its webhooks are signed with.
    fn webhook_key(&self) -> &[u8];
}

/// Lowercase hex HMAC-SHA512 of `body` under `key`: the `x-paystack-signature` scheme.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a signature header value against `body` in constant time. The value must be hex
/// (either case); anything else is simply wrong.
pub fn signature_matches(key: &[u8], body: &[u8], header: &[u8]) -> bool {
    let Ok(claimed) = hex::decode(header.trim_ascii()) else {
        return false;
    };
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// The part of Paystack's transaction object we read (verify `data`). Every field may be
/// missing or null; a missing status or amount simply confirms nothing.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PaystackTransaction {
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub gateway_response: Option<String>,
}

impl PaystackTransaction {
    pub fn confirmation(&self) -> Confirmation {
        let status = match (self.status.as_deref(), self.amount) {
            // A success without an amount confirms nothing.
            (Some("success"), None) => GatewayStatus::Open,
            (status, _) => GatewayStatus::from_paystack(status.unwrap_or_default()),
        };
        Confirmation {
            status,
            amount: self.amount.unwrap_or(0),
            currency: self
                .currency
                .as_deref()
                .unwrap_or_default()
                .to_ascii_uppercase(),
            gateway_response: self.gateway_response.clone().unwrap_or_default(),
        }
    }
}

/// A Paystack webhook body: `{"event": "...", "data": {...}}`. Only the event's name and,
/// for `charge.*`, the transaction's reference are read from it: what is credited comes
/// from asking the gateway.
#[derive(Clone, Debug, Deserialize)]
pub struct PaystackEvent {
    pub event: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl PaystackEvent {
    /// The transaction reference a `charge.*` event is about.
    pub fn reference(&self) -> Option<&str> {
        self.data.get("reference").and_then(|r| r.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_exactly() {
        let body = br#"{"event":"charge.success"}"#;
        let good = sign(b"sk_test_1", body);
        assert_eq!(good.len(), 128);
        assert!(signature_matches(b"sk_test_1", body, good.as_bytes()));
        assert!(signature_matches(
            b"sk_test_1",
            body,
            good.to_ascii_uppercase().as_bytes()
        ));
        assert!(!signature_matches(b"sk_test_2", body, good.as_bytes()));
        assert!(!signature_matches(b"sk_test_1", b"{}", good.as_bytes()));
        assert!(!signature_matches(b"sk_test_1", body, b""));
        assert!(!signature_matches(b"sk_test_1", body, b"zz"));
        assert!(!signature_matches(
            b"sk_test_1",
            body,
            &good.as_bytes()[..64]
        ));
    }
}
