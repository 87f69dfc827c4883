//! Error reports and performance traces to Sentry (`SENTRY_DSN`).
//!
//! Each call gets a hub of its own (tags `rpc` and `request_id`, and the account once
//! authentication knows it), bound to the call's future, so that a panic, an `INTERNAL` or
//! `UNKNOWN` answer, and the database and provider spans of the call all carry them. Nothing
//! a caller sends is attached (no headers, no bodies), and every text that leaves the
//! process passes through [`scrub`], which removes passwords, tokens, API keys, secrets and
//! verification codes.
use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use sentry::protocol::{Breadcrumb, Event, Value};
use sentry::{ClientOptions, TransportFactory};

use crate::config::SentryConfig;

/// The release reported with every event: `namaskah-server@<version>`.
pub const RELEASE: &str = concat!("namaskah-server@", env!("CARGO_PKG_VERSION"));

/// Options for a client reporting to `config.dsn`; `None` when Sentry is off. `transport`
/// replaces the HTTP transport (tests pass Sentry's `TestTransport`).
pub fn options(
    config: &SentryConfig,
    transport: Option<Arc<dyn TransportFactory>>,
) -> Option<ClientOptions> {
    let dsn: sentry::types::Dsn = config.dsn.as_deref()?.parse().ok()?;
    let mut options = ClientOptions::new()
        .release(RELEASE)
        .environment(config.environment.clone())
        .traces_sampler(sampler(
            config.traces_sample_rate,
            TraceBudget::new(config.traces_per_second),
        ))
        // No IP addresses, no request data, no user names: only what we set ourselves.
        .send_default_pii(false)
        .before_send(|event| Some(scrub_event(event)))
        .before_breadcrumb(|breadcrumb| Some(scrub_breadcrumb(breadcrumb)));
    options.dsn = Some(dsn);
    options.transport = transport;
    Some(options)
}

/// Decides which calls are traced: each at `rate`, but no more than the budget allows. The
/// SDK sends a few dozen envelopes a second at most and drops the rest after they are
/// built, and a sampled call's transaction costs far more to build than the call itself
/// (measured in `benches/RESULTS.md`), so calls past the budget are not traced at all. A
/// decision is 1 or 0: the rate the SDK records on a trace is that decision, not `rate`.
fn sampler(
    rate: f32,
    budget: TraceBudget,
) -> impl Fn(&sentry::TransactionContext) -> f32 + Send + Sync + 'static {
    move |_| {
        let chosen = rate > 0.0 && rand::random::<f32>() < rate && budget.take(Instant::now());
        if chosen { 1.0 } else { 0.0 }
    }
}

/// A token bucket of traces: `per_second` a second, as many at once.
pub struct TraceBudget {
    per_second: f64,
    state: Mutex<(f64, Option<Instant>)>,
}

impl TraceBudget {
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            state: Mutex::new((per_second, None)),
        }
    }

    /// Takes one trace at `now` if the budget has one.
    pub fn take(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        if let Some(last) = *last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_second;
            *tokens = (*tokens + refill).min(self.per_second);
        }
        *last = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A client for `config`, or `None` when Sentry is off. Installs ring as rustls's crypto
/// provider first (Sentry's HTTP transport is built with rustls but without a provider of
/// its own, so that aws-lc is never compiled).
pub fn client(
    config: &SentryConfig,
    transport: Option<Arc<dyn TransportFactory>>,
) -> Option<Arc<sentry::Client>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The default integrations (panic hook, stack traces, contexts) as `sentry::init` adds.
    options(config, transport)
        .map(|options| Arc::new(sentry::Client::from(sentry::apply_defaults(options))))
}

/// Starts Sentry for the whole process (main's hub, the panic hook); keep the guard until
/// exit so queued events are sent. Inert without `SENTRY_DSN`.
pub fn init(config: &SentryConfig) -> Option<sentry::ClientInitGuard> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    options(config, None).map(sentry::init)
}

/// Marks a text that was removed.
const SCRUBBED: &str = "[scrubbed]";

/// Words after which the next word is a secret (`password=…`, `Bearer …`, `code: …`).
fn names_a_secret(word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "authorization",
        "bearer",
        "code",
        "otp",
        "signature",
        "cookie",
    ]
    .iter()
    .any(|name| word.ends_with(name))
}

fn is_uuid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a word is a secret by its shape: an API key, a JWT, a provider or gateway key, a
/// long random string, or a verification code (4–8 digits, also `123-456`).
fn looks_secret(word: &str) -> bool {
    if is_uuid(word) {
        return false;
    }
    let lower = word.to_ascii_lowercase();
    if ["nsk_", "sk_", "pk_", "whsec_", "eyj"]
        .iter()
        .any(|prefix| lower.starts_with(prefix))
        && word.len() > 8
    {
        return true;
    }
    let digits = word.bytes().filter(u8::is_ascii_digit).count();
    let code_like = word.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && !word.starts_with('-')
        && !word.ends_with('-');
    if code_like && (4..=8).contains(&digits) {
        return true;
    }
    // Long strings of letters and digits mixed (tokens, hashes, keys; not dotted names
    // such as `namaskah.v1.AuthService/Login`).
    word.len() >= 24
        && !word.contains('.')
        && digits > 0
        && word.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Removes secrets from a text: values after words like `password`, `token`, `key`,
/// `code` or `Bearer`, and anything shaped like a key, a token or a verification code.
/// Ids (UUIDs), words and ordinary numbers stay.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let is_word =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=');
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut after_name = false;
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(is_word).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        // A sentence break ends what the last name was about.
        if rest[..start].contains([',', ';', '\n', '(', ')']) {
            after_name = false;
        }
        rest = &rest[start..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
        let token = &rest[..end];
        rest = &rest[end..];
        // `password=hunter2` is one token: split at the first `=`.
        let (name, value) = match token.split_once('=') {
            Some((n, v)) if !n.is_empty() => (n, Some(v)),
            _ => (token, None),
        };
        match value {
            Some(value) => {
                out.push_str(name);
                out.push('=');
                if !value.is_empty() && (names_a_secret(name) || looks_secret(value)) {
                    out.push_str(SCRUBBED);
                    changed = true;
                } else {
                    out.push_str(value);
                }
                after_name = false;
            }
            // `authorization: Bearer …`, `code is …`: the secret is still to come.
            None if token.eq_ignore_ascii_case("bearer")
                || (after_name && ["is", "was", "of"].contains(&token)) =>
            {
                out.push_str(token);
                after_name = true;
            }
            None if after_name || looks_secret(token) => {
                out.push_str(SCRUBBED);
                changed = true;
                after_name = false;
            }
            None => {
                out.push_str(token);
                after_name = names_a_secret(token);
            }
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

fn scrub_string(text: &mut String) {
    if let Cow::Owned(clean) = scrub(text) {
        *text = clean;
    }
}

fn scrub_value(value: &mut Value) {
    match value {
        Value::String(s) => scrub_string(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if names_a_secret(key) {
                    *item = Value::String(SCRUBBED.to_owned());
                } else {
                    scrub_value(item);
                }
            }
        }
        _ => {}
    }
}

fn scrub_breadcrumb(mut breadcrumb: Breadcrumb) -> Breadcrumb {
    if let Some(message) = breadcrumb.message.as_mut() {
        scrub_string(message);
    }
    for (key, value) in breadcrumb.data.iter_mut() {
        if names_a_secret(key) {
            *value = Value::String(SCRUBBED.to_owned());
        } else {
            scrub_value(value);
        }
    }
    breadcrumb
}

/// The last look at an event before it leaves: no request data at all, and every text
/// scrubbed.
pub fn scrub_event(mut event: Event<'static>) -> Event<'static> {
    event.request = None;
    if let Some(message) = event.message.as_mut() {
        scrub_string(message);
    }
    if let Some(entry) = event.logentry.as_mut() {
        scrub_string(&mut entry.message);
        entry.params.iter_mut().for_each(scrub_value);
    }
    for exception in event.exception.values.iter_mut() {
        if let Some(value) = exception.value.as_mut() {
            scrub_string(value);
        }
    }
    for breadcrumb in event.breadcrumbs.values.iter_mut() {
        *breadcrumb = scrub_breadcrumb(std::mem::take(breadcrumb));
    }
    for (key, value) in event.extra.iter_mut() {
        if names_a_secret(key) {
            *value = Value::String(SCRUBBED.to_owned());
        } else {
            scrub_value(value);
        }
    }
    for (key, value) in event.tags.iter_mut() {
        if names_a_secret(key) {
            *value = SCRUBBED.to_owned();
        } else {
            scrub_string(value);
        }
    }
    if let Some(user) = event.user.as_mut() {
        // Only the account id is ever set; anything else is dropped.
        user.email = None;
        user.username = None;
        user.ip_address = None;
        user.other.clear();
    }
    event
}

/// Notes the cause of an internal error on the current call's report (a breadcrumb,
/// scrubbed), so the event captured when the call answers `INTERNAL` explains itself.
pub fn note_internal_cause(cause: &str) {
    sentry::add_breadcrumb(Breadcrumb {
        category: Some("internal-error".into()),
        level: sentry::Level::Error,
        message: Some(scrub(cause).into_owned()),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_trace_budget_allows_its_rate_and_no_more() {
        let budget = TraceBudget::new(3);
        let t0 = Instant::now();
        // A burst of up to one second's worth, then nothing until time passes.
        assert_eq!((0..10).filter(|_| budget.take(t0)).count(), 3);
        assert!(!budget.take(t0 + Duration::from_millis(100)));
        // A third of a second brings one back; a long pause never more than a second's worth.
        assert!(budget.take(t0 + Duration::from_millis(340)));
        assert!(!budget.take(t0 + Duration::from_millis(340)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| budget.take(later)).count(), 3);
    }

    #[test]
    fn the_sampler_traces_at_its_rate_within_the_budget() {
        let ctx = sentry::TransactionContext::new("rpc", "grpc.server");
        let all = sampler(1.0, TraceBudget::new(5));
        let decisions: Vec<f32> = (0..20).map(|_| all(&ctx)).collect();
        // Twenty calls well inside a second: the first five are traced.
        assert_eq!(
            decisions.iter().filter(|d| **d == 1.0).count(),
            5,
            "{decisions:?}"
        );
        assert!(decisions.iter().all(|d| *d == 0.0 || *d == 1.0));
        let none = sampler(0.0, TraceBudget::new(5));
        assert!((0..20).all(|_| none(&ctx) == 0.0));
    }

    #[test]
    fn secrets_are_scrubbed_and_ids_stay() {
        let cases = [
            ("password=hunter2", "password=[scrubbed]"),
            (
                "login failed for password hunter2 today",
                "login failed for password [scrubbed] today",
            ),
            (
                "authorization: Bearer eyJhbGciOi.eyJzdWIi.sig",
                "authorization: Bearer [scrubbed]",
            ),
            ("key nsk_0123456789abcdefghijklmnop", "key [scrubbed]"),
            ("x-api-key=nsk_abcdefghijkl", "x-api-key=[scrubbed]"),
            ("your code is 123456", "your code is [scrubbed]"),
            ("code 123-456 arrived", "code [scrubbed] arrived"),
            ("totp_code: 000111", "totp_code: [scrubbed]"),
            ("sk_live_abcdefghijklmnop failed", "[scrubbed] failed"),
            (
                "refresh 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "refresh [scrubbed]",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(scrub(text), expected, "{text}");
        }
        let kept = "account 0190f0c2-7a1b-7cde-8f00-123456789abc on namaskah.v1.WalletService/GetBalance: Query Error: no such table: ledger_accounts (13 rows)";
        assert_eq!(scrub(kept), kept);
    }

    #[test]
    fn events_lose_request_data_and_secrets() {
        let mut event = Event {
            message: Some("failed with password=hunter2".into()),
            request: Some(Default::default()),
            ..Default::default()
        };
        event
            .extra
            .insert("api_key".into(), Value::String("nsk_x".into()));
        event
            .extra
            .insert("detail".into(), Value::String("code 654321".into()));
        event.tags.insert(
            "request_id".into(),
            "0190f0c2-7a1b-7cde-8f00-123456789abc".into(),
        );
        let event = scrub_event(event);
        let text = serde_json::to_string(&event).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("nsk_x") && !text.contains("654321"),
            "{text}"
        );
        assert!(text.contains("0190f0c2-7a1b-7cde-8f00-123456789abc"));
        assert!(event.request.is_none());
    }
}
