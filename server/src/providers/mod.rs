//! The upstream providers that rent numbers: one trait, several implementations (the
//! sandbox, TextVerified API v2, 5sim), and a router that picks among them by country and
//! fails over on no-numbers or upstream errors, behind a circuit breaker per provider.
//!
//! The verification room speaks only to [`Provider`]: it never sees a provider's URLs,
//! ids or money. Provider calls carry their own timeouts; an answer that cannot be read is
//! an error, never a guess.
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub mod fivesim;
pub mod instrumented;
pub mod router;
pub mod sandbox;
pub mod textverified;

/// What the verification room asks a provider for.
#[derive(Clone, Debug)]
pub struct NumberRequest<'a> {
    /// Our service code (`whatsapp`, `google`, …): the catalog's code, lower case.
    pub service: &'a str,
    /// Our country code, ISO 3166-1 alpha-2 upper case (`GB`, `US`, …).
    pub country: &'a str,
    /// A key unique to this attempt (the verification id). Providers that support
    /// idempotent creation send it, so that a retry after an unclear timeout returns the
    /// same number instead of buying a second one.
    pub idempotency_key: &'a str,
}

/// A number a provider rented to us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rental {
    /// The provider's own id for the rental (TextVerified's verification id, 5sim's order
    /// id as a decimal string, the sandbox's reference). Kept to poll, cancel and report.
    pub provider_ref: String,
    /// The number in E.164 form with its `+`.
    pub phone_number: String,
    /// When the provider stops holding the number for us, if it says.
    pub expires_at: Option<DateTime<Utc>>,
    /// What the provider charged us, as it states it (for the record; not our money).
    pub cost: Option<String>,
    /// No message can arrive before this, where the provider knows (the sandbox does):
    /// the first poll waits until then instead of asking every few seconds.
    pub quiet_until: Option<DateTime<Utc>>,
}

/// An SMS as a provider reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSms {
    /// The provider's id for the message, when it gives one; used to store each message
    /// once however many times a poll returns it.
    pub id: Option<String>,
    /// The sender (number, short code or name); may be empty.
    pub sender: String,
    /// The full text; may be empty when the provider only parsed a code.
    pub text: String,
    /// The code the provider parsed, if any (ours is extracted from `text` as well).
    pub code: Option<String>,
    /// When the number received it, as the provider dates it.
    pub received_at: DateTime<Utc>,
}

/// What a provider says about a rental when polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteState {
    /// Still holding the number, waiting for messages.
    Waiting,
    /// Finished, cancelled, timed out, banned or refunded at the provider: no more
    /// messages will come.
    Ended,
}

/// The answer to a poll: every message the rental has received so far (providers return
/// the whole list each time) and whether it is still open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poll {
    pub messages: Vec<ProviderSms>,
    pub state: RemoteState,
    /// Nothing new can arrive before this, where the provider knows: the next poll waits
    /// until then (and none is made when it is past the verification's expiry).
    pub quiet_until: Option<DateTime<Utc>>,
}

/// Why a provider call did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderError {
    /// The provider has no number for this service and country now.
    NoNumbers,
    /// The provider does not offer this service or country at all.
    Unsupported,
    /// Our account at the provider cannot pay.
    InsufficientBalance,
    /// The provider refused our credentials (bad key, expired account).
    Unauthorized,
    /// The provider asked us to slow down (HTTP 429 or its own words).
    RateLimited,
    /// The provider failed (5xx, "server offline", a connection error before a request
    /// was sent).
    Upstream(String),
    /// No answer in time. The outcome is unknown: the call may have taken effect.
    Timeout,
    /// An answer we cannot read (not the documented shape).
    Garbage(String),
    /// The provider does not know the rental (or it is too late for this action, e.g.
    /// cancelling an order that already has an SMS).
    Refused(String),
}

impl ProviderError {
    /// Whether another provider (or a later retry) might succeed where this failed.
    pub fn counts_against_breaker(&self) -> bool {
        matches!(
            self,
            ProviderError::Upstream(_)
                | ProviderError::Timeout
                | ProviderError::Garbage(_)
                | ProviderError::Unauthorized
                | ProviderError::RateLimited
        )
    }

    /// Whether the call's effect is unknown, so it must be retried rather than assumed
    /// to have failed or succeeded.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ProviderError::Timeout)
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderError::NoNumbers => write!(f, "no numbers available"),
            ProviderError::Unsupported => write!(f, "service or country not offered"),
            ProviderError::InsufficientBalance => write!(f, "provider account balance too low"),
            ProviderError::Unauthorized => write!(f, "provider refused our credentials"),
            ProviderError::RateLimited => write!(f, "provider rate limit"),
            ProviderError::Upstream(m) => write!(f, "provider error: {m}"),
            ProviderError::Timeout => write!(f, "provider did not answer in time"),
            ProviderError::Garbage(m) => write!(f, "unreadable provider answer: {m}"),
            ProviderError::Refused(m) => write!(f, "provider refused: {m}"),
        }
    }
}

impl std::error::Error for ProviderError {}

/// One upstream provider of numbers.
///
/// Implementations translate our service and country codes to theirs, keep their own
/// credentials (and tokens), put a timeout on every call, and map every documented error
/// answer to a [`ProviderError`].
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// A short stable name (`sandbox`, `textverified`, `fivesim`), stored with each
    /// verification and used in logs and metrics.
    fn name(&self) -> &'static str;

    /// Whether this provider can, in principle, serve the service in the country (a
    /// static mapping: no network call).
    fn serves(&self, service: &str, country: &str) -> bool;

    /// Whether renting again with the same [`NumberRequest::idempotency_key`] returns the
    /// rental a timed-out call may have made (so it can be found and given back).
    fn idempotent_rent(&self) -> bool {
        false
    }

    /// Rents a number.
    async fn rent(&self, request: &NumberRequest<'_>) -> Result<Rental, ProviderError>;

    /// Everything the rental has received so far, and whether it is still open.
    async fn poll(&self, rental: &str) -> Result<Poll, ProviderError>;

    /// Gives the number back before any SMS (cancelled or expired), so the provider
    /// refunds us. Cancelling a rental the provider already ended is success.
    async fn cancel(&self, rental: &str) -> Result<(), ProviderError>;

    /// Tells the provider the rental is done (a code arrived). A no-op where the provider
    /// finishes by itself.
    async fn finish(&self, rental: &str) -> Result<(), ProviderError>;

    /// Reports a bad number (no code arrived, or the number was already used at the
    /// service), so the provider refunds us and stops handing it out.
    async fn report(&self, rental: &str) -> Result<(), ProviderError>;
}
