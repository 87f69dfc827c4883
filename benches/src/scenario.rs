//! The named scenarios: what one call is, and what must exist before the first one (an
//! account, an API key).
//!
//! To add a gRPC scenario: a [`Scenario`] variant (its CLI name and RPC), a [`Workload`]
//! variant holding whatever its calls need, the set-up in [`Workload::prepare`] and the call
//! in [`Workload::call`], and a ghz config in `benches/ghz/`. The `ledger` scenario is not
//! gRPC: it drives the server's ledger against the database (see [`crate::ledger`]). The
//! verification scenarios set up funded accounts and run workers of their own (see
//! [`crate::verifications`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use namaskah_proto::v1::auth_service_client::AuthServiceClient;
use namaskah_proto::v1::{CreateApiKeyRequest, GetMeRequest, LoginRequest, RegisterRequest};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::stats::error_key;

/// A named load scenario, as chosen with `--scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `grpc.health.v1.Health/Check` for the whole server (service ""): the floor.
    Health,
    /// `namaskah.v1.AuthService/GetMe` authenticated with an `x-api-key`.
    #[value(name = "get_me", alias = "get-me")]
    GetMe,
    /// `namaskah.v1.AuthService/Login` with an email and password (Argon2id on every call).
    Login,
    /// Not gRPC: holds and releases small amounts on many wallets, straight through the
    /// server's ledger against the database (--database-url).
    Ledger,
    /// `namaskah.v1.VerificationService/CreateVerification` (sandbox provider), each worker
    /// buying from its own funded account with a fresh `request_id` per call.
    #[value(name = "create_verification", alias = "create-verification")]
    CreateVerification,
    /// `namaskah.v1.VerificationService/GetVerification` on verifications bought in the
    /// set-up, each worker reading its own account's in turn.
    #[value(name = "get_verification", alias = "get-verification")]
    GetVerification,
    /// `namaskah.v1.VerificationService/WatchVerification`: --streams streams held open at
    /// once, the server's memory read around them (--server-pid), then a live-event check.
    #[value(name = "watch_streams", alias = "watch-streams")]
    WatchStreams,
    /// A mix: --concurrency users, each a loop of log in (now and then), GetMe and
    /// GetBalance, ListServices, ListCountries, GetPrice, a sandbox top-up (sometimes),
    /// CreateVerification, then WatchVerification until the code (or CancelVerification),
    /// with think times between the steps.
    Users,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::GetMe => "get_me",
            Scenario::Login => "login",
            Scenario::Ledger => "ledger",
            Scenario::CreateVerification => "create_verification",
            Scenario::GetVerification => "get_verification",
            Scenario::WatchStreams => "watch_streams",
            Scenario::Users => "users",
        }
    }

    /// Whether the scenario talks to the database rather than the gRPC server.
    pub fn is_database(self) -> bool {
        matches!(self, Scenario::Ledger)
    }

    /// Whether the scenario is one of the verification scenarios (`crate::verifications`):
    /// funded, email-verified accounts set up through the API, one per worker.
    pub fn is_verification(self) -> bool {
        matches!(
            self,
            Scenario::CreateVerification | Scenario::GetVerification | Scenario::WatchStreams
        )
    }

    /// The fully qualified method, as ghz's `call` option spells it (for `ledger`, the
    /// ledger functions it calls).
    pub fn call(self) -> &'static str {
        match self {
            Scenario::Health => "grpc.health.v1.Health.Check",
            Scenario::GetMe => "namaskah.v1.AuthService.GetMe",
            Scenario::Login => "namaskah.v1.AuthService.Login",
            Scenario::Ledger => "namaskah_server::wallet::ledger::{hold,release}",
            Scenario::CreateVerification => "namaskah.v1.VerificationService.CreateVerification",
            Scenario::GetVerification => "namaskah.v1.VerificationService.GetVerification",
            Scenario::WatchStreams => "namaskah.v1.VerificationService.WatchVerification",
            Scenario::Users => {
                "(a mix of AuthService, CatalogService, WalletService, SandboxService and VerificationService calls)"
            }
        }
    }
}

/// An existing account's email and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub email: String,
    pub password: String,
}

/// What the user gave on the command line to identify as; the set-up fills in the rest.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub api_key: Option<String>,
    pub account: Option<Account>,
}

/// A scenario ready to run: everything its calls need, prepared once.
#[derive(Debug, Clone)]
pub enum Workload {
    Health {
        service: String,
    },
    GetMe {
        api_key: MetadataValue<Ascii>,
        /// For the report: the key with its secret part cut off.
        api_key_shown: String,
    },
    Login {
        request: LoginRequest,
    },
}

/// How many times the set-up retries a call the server asked to retry (rate limits,
/// a server still starting).
const SETUP_RETRIES: u32 = 5;
const SETUP_MAX_WAIT: Duration = Duration::from_secs(10);

impl Workload {
    /// Prepares `scenario` against the server behind `channel`: registers an account and
    /// creates an API key when the scenario needs them and none were given. Progress goes
    /// to standard error.
    pub async fn prepare(
        scenario: Scenario,
        channel: &Channel,
        credentials: &Credentials,
        timeout: Duration,
    ) -> anyhow::Result<Workload> {
        match scenario {
            Scenario::Health => {
                if credentials.api_key.is_some() || credentials.account.is_some() {
                    eprintln!(
                        "namaskah-load: the health scenario needs no credentials; ignoring them"
                    );
                }
                Ok(Workload::Health {
                    service: String::new(),
                })
            }
            Scenario::GetMe => {
                let secret = match (&credentials.api_key, &credentials.account) {
                    (Some(key), _) => key.clone(),
                    (None, account) => {
                        let account = match account {
                            Some(account) => account.clone(),
                            None => register_new_account(channel, timeout).await?,
                        };
                        let access_token = login(channel, &account, timeout).await?;
                        let secret = create_api_key(channel, &access_token, timeout).await?;
                        eprintln!(
                            "namaskah-load: created API key {} for {}",
                            redact_secret(&secret),
                            account.email
                        );
                        secret
                    }
                };
                let api_key = MetadataValue::try_from(secret.as_str())
                    .context("the API key is not valid ASCII metadata")?;
                Ok(Workload::GetMe {
                    api_key,
                    api_key_shown: redact_secret(&secret),
                })
            }
            Scenario::Login => {
                if credentials.api_key.is_some() {
                    eprintln!(
                        "namaskah-load: the login scenario uses --email/--password; ignoring --api-key"
                    );
                }
                let account = match &credentials.account {
                    Some(account) => account.clone(),
                    None => register_new_account(channel, timeout).await?,
                };
                // Fail early, with a clear message, if the credentials do not work.
                login(channel, &account, timeout).await?;
                Ok(Workload::Login {
                    request: LoginRequest {
                        email: account.email,
                        password: account.password,
                        totp_code: String::new(),
                    },
                })
            }
            Scenario::Ledger => {
                bail!("the ledger scenario talks to the database, not to a gRPC server")
            }
            Scenario::CreateVerification
            | Scenario::GetVerification
            | Scenario::WatchStreams
            | Scenario::Users => {
                bail!(
                    "the {} scenario sets up its own accounts (see namaskah_bench::verifications)",
                    scenario.name()
                )
            }
        }
    }

    /// The scenario this workload runs.
    pub fn scenario(&self) -> Scenario {
        match self {
            Workload::Health { .. } => Scenario::Health,
            Workload::GetMe { .. } => Scenario::GetMe,
            Workload::Login { .. } => Scenario::Login,
        }
    }

    /// The request message as JSON, secrets redacted (ghz's `data`).
    pub fn data_json(&self) -> serde_json::Value {
        match self {
            Workload::Health { service } => serde_json::json!({ "service": service }),
            Workload::GetMe { .. } => serde_json::json!({}),
            Workload::Login { request } => serde_json::json!({
                "email": request.email,
                "password": "(redacted)",
            }),
        }
    }

    /// The request metadata, secrets redacted (ghz's `metadata`).
    pub fn metadata_shown(&self) -> BTreeMap<String, String> {
        match self {
            Workload::GetMe { api_key_shown, .. } => {
                BTreeMap::from([("x-api-key".to_owned(), api_key_shown.clone())])
            }
            Workload::Health { .. } | Workload::Login { .. } => BTreeMap::new(),
        }
    }

    /// The environment variables that hand this workload's credentials to another run or
    /// to ghz (`NAMASKAH_API_KEY`, or `NAMASKAH_EMAIL` and `NAMASKAH_PASSWORD`).
    pub fn credential_exports(&self) -> Vec<(&'static str, String)> {
        match self {
            Workload::Health { .. } => Vec::new(),
            Workload::GetMe { api_key, .. } => api_key
                .to_str()
                .map(|key| vec![("NAMASKAH_API_KEY", key.to_owned())])
                .unwrap_or_default(),
            Workload::Login { request } => vec![
                ("NAMASKAH_EMAIL", request.email.clone()),
                ("NAMASKAH_PASSWORD", request.password.clone()),
            ],
        }
    }

    /// Makes one call. The caller bounds it with its own deadline: dropping the call
    /// resets the HTTP/2 stream, so the server stops working on it. (No `grpc-timeout` is
    /// sent: a tonic server answers its own expiry with `CANCELLED`, and racing it against
    /// the driver's deadline would make the reported code a coin toss.)
    pub async fn call(&self, channel: &Channel) -> Result<(), Status> {
        match self {
            Workload::Health { service } => HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: service.clone(),
                })
                .await
                .map(drop),
            Workload::GetMe { api_key, .. } => {
                let mut request = Request::new(GetMeRequest {});
                request.metadata_mut().insert("x-api-key", api_key.clone());
                AuthServiceClient::new(channel.clone())
                    .get_me(request)
                    .await
                    .map(drop)
            }
            Workload::Login { request } => AuthServiceClient::new(channel.clone())
                .login(request.clone())
                .await
                .map(drop),
        }
    }
}

/// A fresh account no other run uses: a unique address under `example.com` and a password
/// that meets the registration rules (10–128 characters, letters and digits).
pub fn unique_account() -> Account {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{nanos:x}-{:x}-{sequence}", std::process::id());
    Account {
        email: format!("load-{tag}@example.com"),
        password: format!("Nmk-load-{tag}-Pw9"),
    }
}

/// `name='value'` for a POSIX shell, quoting any character.
pub fn shell_export(name: &str, value: &str) -> String {
    format!("export {name}='{}'", value.replace('\'', r"'\''"))
}

/// Keeps the recognisable start of a secret (`nsk_` and eight more, what ListApiKeys shows
/// as the prefix) and drops the rest.
pub fn redact_secret(secret: &str) -> String {
    const SHOWN: usize = 12;
    if secret.chars().count() <= SHOWN + 4 {
        return "(redacted)".to_owned();
    }
    let shown: String = secret.chars().take(SHOWN).collect();
    format!("{shown}…")
}

async fn register_new_account(channel: &Channel, timeout: Duration) -> anyhow::Result<Account> {
    let account = unique_account();
    with_retries("Register", timeout, || {
        let request = Request::new(RegisterRequest {
            email: account.email.clone(),
            password: account.password.clone(),
            referral_code: String::new(),
        });
        let mut client = AuthServiceClient::new(channel.clone());
        async move { client.register(request).await }
    })
    .await?;
    eprintln!("namaskah-load: registered {}", account.email);
    Ok(account)
}

pub(crate) async fn login(
    channel: &Channel,
    account: &Account,
    timeout: Duration,
) -> anyhow::Result<String> {
    let response = with_retries("Login", timeout, || {
        let request = Request::new(LoginRequest {
            email: account.email.clone(),
            password: account.password.clone(),
            totp_code: String::new(),
        });
        let mut client = AuthServiceClient::new(channel.clone());
        async move { client.login(request).await }
    })
    .await?;
    match response.into_inner().tokens {
        Some(tokens) if !tokens.access_token.is_empty() => Ok(tokens.access_token),
        _ => bail!("Login answered without an access token"),
    }
}

pub(crate) async fn create_api_key(
    channel: &Channel,
    access_token: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let bearer: MetadataValue<Ascii> = format!("Bearer {access_token}")
        .parse()
        .context("the access token from Login is not valid metadata")?;
    let response = with_retries("CreateApiKey", timeout, || {
        let mut request = Request::new(CreateApiKeyRequest {
            display_name: "namaskah-load".to_owned(),
        });
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        let mut client = AuthServiceClient::new(channel.clone());
        async move { client.create_api_key(request).await }
    })
    .await?;
    let secret = response.into_inner().secret;
    if secret.is_empty() {
        bail!("CreateApiKey answered without a secret");
    }
    Ok(secret)
}

/// Runs a set-up call within `timeout`, retrying when the server says later may work (`UNAVAILABLE`,
/// `RESOURCE_EXHAUSTED`, honouring `retry-after`), and turns a final failure into an error
/// that names the RPC.
pub(crate) async fn with_retries<T, F, Fut>(
    rpc: &str,
    timeout: Duration,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut retries = 0;
    loop {
        let outcome = tokio::time::timeout(timeout, attempt())
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer within the timeout")));
        match outcome {
            Ok(value) => return Ok(value),
            Err(status)
                if retries < SETUP_RETRIES
                    && matches!(status.code(), Code::Unavailable | Code::ResourceExhausted) =>
            {
                retries += 1;
                let wait = retry_after(&status)
                    .unwrap_or(Duration::from_secs(1))
                    .min(SETUP_MAX_WAIT);
                eprintln!(
                    "namaskah-load: {rpc} during set-up: {}; retry {retries}/{SETUP_RETRIES} in {}s",
                    error_key(&status),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            Err(status) => bail!("{rpc} during set-up failed: {}", error_key(&status)),
        }
    }
}

/// The server's `retry-after` metadata (whole seconds), if any.
fn retry_after(status: &Status) -> Option<Duration> {
    let value = status.metadata().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_accounts_meet_the_password_rules() {
        let a = unique_account();
        let b = unique_account();
        assert_ne!(a.email, b.email);
        assert_ne!(a.password, b.password);
        for account in [&a, &b] {
            assert!(account.email.ends_with("@example.com"));
            assert!(account.email.len() <= 254);
            let len = account.password.chars().count();
            assert!((10..=128).contains(&len), "{}", account.password);
            assert!(account.password.chars().any(|c| c.is_ascii_alphabetic()));
            assert!(account.password.chars().any(|c| c.is_ascii_digit()));
            assert_ne!(account.password, account.email);
        }
    }

    #[test]
    fn exports_are_shell_quoted() {
        assert_eq!(shell_export("A", "nsk_x"), "export A='nsk_x'");
        assert_eq!(shell_export("A", "it's"), r"export A='it'\''s'");
        let workload = Workload::Login {
            request: LoginRequest {
                email: "a@example.com".to_owned(),
                password: "pw-123456789".to_owned(),
                totp_code: String::new(),
            },
        };
        assert_eq!(
            workload.credential_exports(),
            vec![
                ("NAMASKAH_EMAIL", "a@example.com".to_owned()),
                ("NAMASKAH_PASSWORD", "pw-123456789".to_owned())
            ]
        );
    }

    #[test]
    fn secrets_are_redacted_to_their_prefix() {
        assert_eq!(
            redact_secret("nsk_0123456789abcdefghijklmnop"),
            "nsk_01234567…"
        );
        assert_eq!(redact_secret("short"), "(redacted)");
    }

    #[test]
    fn scenario_names_and_calls() {
        assert_eq!(
            Scenario::from_str("get_me", false).unwrap(),
            Scenario::GetMe
        );
        assert_eq!(
            Scenario::from_str("get-me", false).unwrap(),
            Scenario::GetMe
        );
        for scenario in Scenario::value_variants() {
            let parsed = Scenario::from_str(scenario.name(), false).unwrap();
            assert_eq!(parsed, *scenario);
        }
        assert_eq!(Scenario::Health.call(), "grpc.health.v1.Health.Check");
    }

    #[test]
    fn retry_after_is_read_from_metadata() {
        let mut status = Status::resource_exhausted("slow down");
        assert_eq!(retry_after(&status), None);
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from_static("3"));
        assert_eq!(retry_after(&status), Some(Duration::from_secs(3)));
    }

    #[test]
    fn reports_never_show_secrets() {
        let workload = Workload::Login {
            request: LoginRequest {
                email: "a@example.com".to_owned(),
                password: "hunter2hunter2".to_owned(),
                totp_code: String::new(),
            },
        };
        assert!(!workload.data_json().to_string().contains("hunter2"));
        let key = "nsk_0123456789abcdefghijklmnop";
        let workload = Workload::GetMe {
            api_key: MetadataValue::try_from(key).unwrap(),
            api_key_shown: redact_secret(key),
        };
        let shown = workload.metadata_shown();
        assert!(!shown["x-api-key"].contains("abcdefghijklmnop"));
    }
}
