//! Outgoing mail: a JSON-lines sink by default (one `{"to","subject","text"}` object a
//! line), real SMTP when `SMTP_URL` is set.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::config::MailConfig;

/// One mail.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The display name it comes from (a tenant's mail sender name); `None`: the
    /// configured `NAMASKAH_MAIL_FROM` as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
}

/// Mail delivery failed.
#[derive(Debug, thiserror::Error)]
#[error("mail delivery failed: {0}")]
pub struct MailError(String);

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Appends each mail as one JSON line to a file.
pub struct JsonLinesSink {
    path: PathBuf,
    // Serialises appends so that two mails never interleave within a line.
    lock: tokio::sync::Mutex<()>,
}

impl JsonLinesSink {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl Mailer for JsonLinesSink {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let mut line = serde_json::to_string(mail).map_err(|e| MailError(e.to_string()))?;
        line.push('\n');
        let _guard = self.lock.lock().await;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| MailError(format!("{}: {e}", self.path.display())))?;
        file.write_all(line.as_bytes())
            .await
            .map_err(|e| MailError(e.to_string()))?;
        file.flush().await.map_err(|e| MailError(e.to_string()))
    }
}

/// Sends through an SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(url: &url::Url, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
            .map_err(|e| MailError(format!("SMTP_URL: {e}")))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from = from
            .parse()
            .map_err(|e| MailError(format!("NAMASKAH_MAIL_FROM: {e}")))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError(format!("recipient: {e}")))?;
        let from = match &mail.from_name {
            Some(name) => Mailbox::new(Some(name.clone()), self.from.email.clone()),
            None => self.from.clone(),
        };
        let message = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .message_id(None)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(|e| MailError(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError(e.to_string()))
    }
}

/// Builds the configured mailer.
pub fn from_config(config: &MailConfig, from: &str) -> Result<Arc<dyn Mailer>, MailError> {
    Ok(match config {
        MailConfig::Sink(path) => Arc::new(JsonLinesSink::new(path.clone())),
        MailConfig::Smtp(url) => Arc::new(SmtpMailer::new(url, from)?),
    })
}

/// Sends mail in the background, so that a slow mail server never slows a request down (and
/// response times do not reveal whether an address has an account). Failures are retried
/// three times, then logged; the user can ask for the mail again. On shutdown the server
/// waits (within its deadline) for the mail still being sent.
#[derive(Clone)]
pub struct Outbox {
    mailer: Arc<dyn Mailer>,
    sending: tokio_util::task::TaskTracker,
}

impl Outbox {
    pub fn new(mailer: Arc<dyn Mailer>) -> Self {
        Self {
            mailer,
            sending: tokio_util::task::TaskTracker::new(),
        }
    }

    pub fn send(&self, mail: Mail) {
        let mailer = Arc::clone(&self.mailer);
        self.sending.spawn(async move {
            for attempt in 1..=3u32 {
                match mailer.send(&mail).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%error, attempt, subject = %mail.subject, "mail not sent");
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    }
                }
            }
            tracing::error!(subject = %mail.subject, "mail dropped after 3 attempts");
        });
    }

    /// Waits until the mail being sent has gone (or failed for good).
    pub async fn drain(&self) {
        self.sending.close();
        self.sending.wait().await;
    }
}
