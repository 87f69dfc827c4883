//! Paystack's HTTP API: `POST /transaction/initialize` and `GET /transaction/verify/:ref`,
//! authenticated with the secret key, which also signs Paystack's webhooks.
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::domain::{Confirmation, GatewayKind};
use super::gateway::{Gateway, GatewayError, Initialize, PaystackTransaction};

pub struct Paystack {
    http: reqwest::Client,
    base_url: url::Url,
    secret_key: String,
}

/// Paystack's response envelope.
#[derive(Deserialize)]
struct Envelope<T> {
    status: bool,
    #[serde(default)]
    message: String,
    data: Option<T>,
}

#[derive(Deserialize)]
struct Authorization {
    authorization_url: String,
}

impl Paystack {
    pub fn new(base_url: url::Url, secret_key: String, timeout: Duration) -> anyhow::Result<Self> {
        // reqwest is built without a TLS provider of its own: use ring, as sea-orm does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("namaskah/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url,
            secret_key,
        })
    }

    fn endpoint(&self, path: &str) -> Result<url::Url, GatewayError> {
        let mut url = self.base_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        Ok(url)
    }

    /// Sends a request and reads Paystack's envelope. 5xx, timeouts and unreadable bodies
    /// are `Unavailable` (try later); 404 and "not found" messages are `NotFound`; other
    /// refusals are `Refused`.
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GatewayError> {
        let response = request
            .bearer_auth(&self.secret_key)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| GatewayError::Unavailable(describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| GatewayError::Unavailable(describe(&e)))?;
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(GatewayError::Unavailable(format!("HTTP {status}")));
        }
        let envelope: Envelope<T> = serde_json::from_slice(&body).map_err(|e| {
            GatewayError::Unavailable(format!("HTTP {status} with an unreadable body: {e}"))
        })?;
        if status.is_success() && envelope.status {
            return envelope
                .data
                .ok_or_else(|| GatewayError::Unavailable(format!("HTTP {status} without data")));
        }
        if status == reqwest::StatusCode::NOT_FOUND
            || envelope.message.to_ascii_lowercase().contains("not found")
        {
            return Err(GatewayError::NotFound);
        }
        Err(GatewayError::Refused(format!(
            "HTTP {status}: {}",
            envelope.message
        )))
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        error.to_string()
    }
}

#[async_trait::async_trait]
impl Gateway for Paystack {
    fn kind(&self) -> GatewayKind {
        GatewayKind::Paystack
    }

    async fn initialize(&self, payment: Initialize<'_>) -> Result<String, GatewayError> {
        let body = serde_json::json!({
            "email": payment.email,
            "amount": payment.amount,
            "currency": payment.currency,
            "reference": payment.reference,
            "callback_url": payment.callback_url,
            "metadata": payment.metadata,
        });
        let authorization: Authorization = self
            .call(
                self.http
                    .post(self.endpoint("/transaction/initialize")?)
                    .json(&body),
            )
            .await?;
        let url = authorization.authorization_url;
        if url.len() > 500 || !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(GatewayError::Unavailable(format!(
                "an unusable checkout URL: {url:.80}"
            )));
        }
        Ok(url)
    }

    async fn verify(&self, reference: &str) -> Result<Confirmation, GatewayError> {
        // References are letters, digits, `-`, `.` and `=`: safe in a path segment.
        let transaction: PaystackTransaction = self
            .call(
                self.http
                    .get(self.endpoint(&format!("/transaction/verify/{reference}"))?),
            )
            .await?;
        if transaction.reference.as_deref() != Some(reference) {
            return Err(GatewayError::Unavailable(format!(
                "asked about {reference}, answered about {:?}",
                transaction.reference
            )));
        }
        Ok(transaction.confirmation())
    }

    fn webhook_key(&self) -> &[u8] {
        self.secret_key.as_bytes()
    }
}
