//! The identity room's use cases: registration, mail tokens, sessions, API keys, two-factor
//! authentication, and the authentication every RPC goes through.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, Set, TransactionTrait};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::domain::{
    self, AccessClaims, AccountStatus, Credential, Plan, Principal, Role, TokenError,
};
use super::entities::{api_keys, mail_tokens, refresh_tokens, sessions, users};
use super::repo::{self, MailTokenUse, UserInsert};
use crate::analytics::domain::FunnelStep;
use crate::analytics::events::Tracker;
use crate::billing::limits::LoginGuard;
use crate::cache::Cache;
use crate::error::{ApiError, StoreError, Violations};
use crate::mail::{Mail, Outbox};

const VERIFY_EMAIL: &str = "verify_email";
const RESET_PASSWORD: &str = "reset_password";
const VERIFY_EMAIL_TTL: Duration = Duration::from_secs(24 * 3600);
const RESET_PASSWORD_TTL: Duration = Duration::from_secs(3600);
/// How long an authentication decision (key → account, session → live) is cached. Every
/// change (revocation, logout) overwrites the entry at once, so this only bounds memory.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(300);
/// How long profiles are cached; every change also marks them stale at once.
const PROFILE_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a stale-profile tombstone stands (readers go to the database meanwhile).
const PROFILE_TOMBSTONE_TTL: Duration = Duration::from_secs(10);
/// Tombstones are `stale:{unique}`: a reader that saw one, then read the row, may put the
/// row in its place only if it is still the same one (no later change marked it again).
const STALE: &str = "stale:";

/// An account as the API shows it (never secrets). Cached as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub two_factor_enabled: bool,
    pub role: String,
    pub plan: String,
    /// `active` or `suspended` (profiles cached before this field existed are active).
    #[serde(default = "active_status")]
    pub status: String,
    pub referral_code: String,
    pub created_at: DateTime<Utc>,
    /// The account's tenant; `None` (and profiles cached before this field existed): the
    /// platform's own customer.
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
}

fn active_status() -> String {
    AccountStatus::Active.as_str().to_owned()
}

impl From<&users::Model> for UserProfile {
    fn from(user: &users::Model) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            email_verified: user.email_verified,
            two_factor_enabled: user.totp_enabled,
            role: user.role.clone(),
            plan: user.plan.clone(),
            status: user.status.clone(),
            referral_code: user.referral_code.clone(),
            created_at: user.created_at,
            tenant_id: user.tenant_id,
        }
    }
}

/// The tokens of a session.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// What `SetupTwoFactor` hands out, once.
pub struct TwoFactorSetup {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_code_png: Vec<u8>,
    pub backup_codes: Vec<String>,
}

/// Credentials as they arrived in request metadata.
#[derive(Debug, Clone)]
pub enum Presented {
    ApiKey(String),
    Bearer(String),
}

/// How mails to a tenant's customers present themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailBrand {
    /// The brand's name in the text (`Namaskah`, `Acme SMS`).
    pub name: String,
    /// The sender's display name; `None`: the configured sender as it is.
    pub sender: Option<String>,
    /// Where links in mails point (no trailing slash).
    pub base_url: String,
}

/// Finds the brand of a tenant (the catalog, which holds the tenants, implements it). An
/// empty `base_url`: the tenant has no address of its own, so links go to the platform's.
#[async_trait::async_trait]
pub trait Brands: Send + Sync + 'static {
    async fn mail_brand(&self, tenant: Option<Uuid>) -> Option<MailBrand>;
}

/// Whether a tenant's customers may come in now: the check every authenticated call goes
/// through (`authn` implements it), asked again by Login and RefreshToken before they hand
/// out tokens.
#[async_trait::async_trait]
pub trait TenantGate: Send + Sync + 'static {
    /// `PERMISSION_DENIED`/`TENANT_SUSPENDED` while `tenant` is suspended (`None`: the
    /// platform's own customers, always admitted).
    async fn admit(&self, tenant: Option<Uuid>) -> Result<(), ApiError>;
}

/// Settings the identity room needs from the configuration.
#[derive(Clone)]
pub struct IdentitySettings {
    pub jwt_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub public_url: url::Url,
}

/// Remembers which API keys were used, to the minute, and writes it in batches, so that
/// authenticating with a key never costs a database write.
#[derive(Default)]
pub struct KeyUsage {
    seen: Mutex<HashMap<Uuid, i64>>,
    pending: Mutex<HashMap<Uuid, i64>>,
}

impl KeyUsage {
    fn record(&self, key_id: Uuid, now: DateTime<Utc>) {
        let minute = now.timestamp() / 60;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.insert(key_id, minute) != Some(minute) {
            drop(seen);
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key_id, minute);
        }
    }

    fn take(&self) -> HashMap<Uuid, i64> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct Identity {
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
    outbox: Outbox,
    signer: domain::TokenSigner,
    settings: IdentitySettings,
    key_usage: KeyUsage,
    /// Bounds concurrent Argon2 work (each hash takes ~19 MiB and a core for a while).
    hashing: Semaphore,
    /// A real hash of a random password: unknown emails are checked against it, so that a
    /// login takes as long whether or not the account exists.
    decoy_hash: String,
    /// Slows password guessing per account; set once at start-up (none: no guard).
    login_guard: OnceLock<Arc<LoginGuard>>,
    /// Funnel steps (registered, email verified).
    tracker: Tracker,
    /// Tenants' brands for mails; set once at start-up (none: the platform's for all).
    /// Weak: the catalog that answers holds this room, and a cycle would keep both (and
    /// their database pools) alive after the application stops.
    brands: OnceLock<std::sync::Weak<dyn Brands>>,
    /// Refuses sign-ins of suspended tenants' customers; set once at start-up (none: all
    /// admitted). Weak for the same reason as `brands`.
    tenant_gate: OnceLock<std::sync::Weak<dyn TenantGate>>,
}

fn hashing_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("password hashing: {e}"))
}

fn join_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("hashing task: {e}"))
}

fn hash_password_blocking(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(hashing_error)
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthenticated("INVALID_CREDENTIALS", "the email or password is wrong")
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn ceil_to_second(time: DateTime<Utc>) -> DateTime<Utc> {
    let whole = time.timestamp() + i64::from(time.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(whole, 0).unwrap_or(time)
}

fn session_key(id: Uuid) -> String {
    format!("session:{id}")
}

fn api_key_key(hash: &str) -> String {
    format!("apikey:{hash}")
}

fn user_key(id: Uuid) -> String {
    format!("user:{id}")
}

/// Checks that a required text field is present and at most `max` characters long
/// (characters, not bytes: the limits the API documents and registration applies).
fn require_text(violations: &mut Violations, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        violations.add(field, "is required");
    } else if value.chars().count() > max {
        violations.add(field, format!("is longer than {max} characters"));
    }
}

impl Identity {
    pub fn new(
        db: DatabaseConnection,
        cache: Arc<dyn Cache>,
        outbox: Outbox,
        tracker: Tracker,
        settings: IdentitySettings,
    ) -> Result<Self, ApiError> {
        let decoy_hash = hash_password_blocking(&domain::random_token())?;
        let permits = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        Ok(Self {
            db,
            cache,
            outbox,
            signer: domain::TokenSigner::new(&settings.jwt_secret),
            settings,
            key_usage: KeyUsage::default(),
            hashing: Semaphore::new(permits),
            decoy_hash,
            login_guard: OnceLock::new(),
            tracker,
            brands: OnceLock::new(),
            tenant_gate: OnceLock::new(),
        })
    }

    /// Lets mails to tenants' customers carry their tenant's brand (once, at start-up).
    pub fn set_brands(&self, brands: &Arc<dyn Brands>) {
        if self.brands.set(Arc::downgrade(brands)).is_err() {
            tracing::warn!("the brands were set twice; keeping the first");
        }
    }

    /// Lets Login and RefreshToken refuse a suspended tenant's customers (once, at start-up).
    pub fn set_tenant_gate(&self, gate: &Arc<dyn TenantGate>) {
        if self.tenant_gate.set(Arc::downgrade(gate)).is_err() {
            tracing::warn!("the tenant gate was set twice; keeping the first");
        }
    }

    /// Refuses a customer of a suspended tenant (see [`TenantGate`]).
    async fn admit_tenant(&self, tenant: Option<Uuid>) -> Result<(), ApiError> {
        let Some(gate) = self.tenant_gate.get() else {
            return Ok(());
        };
        match gate.upgrade() {
            Some(gate) => gate.admit(tenant).await,
            // Only while the application stops: hand out no tokens unchecked, and tell the
            // caller to try again (another instance will answer).
            None => Err(ApiError::Unavailable {
                reason: "SHUTTING_DOWN",
                message: "this server is stopping; try again".to_owned(),
                retry_after: None,
            }),
        }
    }

    /// The brand mails to a customer of `tenant` carry (`None`, an unknown tenant or no
    /// brands set: the platform's).
    pub async fn mail_brand(&self, tenant: Option<Uuid>) -> MailBrand {
        let platform = || MailBrand {
            name: "Namaskah".to_owned(),
            sender: None,
            base_url: self
                .settings
                .public_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
        };
        match (tenant, self.brands.get().and_then(std::sync::Weak::upgrade)) {
            (Some(_), Some(brands)) => match brands.mail_brand(tenant).await {
                Some(brand) if brand.base_url.is_empty() => MailBrand {
                    base_url: platform().base_url,
                    ..brand
                },
                Some(brand) => brand,
                None => platform(),
            },
            _ => platform(),
        }
    }

    /// Turns on the login guard (once, at start-up): logins of an account that keeps
    /// failing wait longer and longer, then are locked for a while.
    pub fn set_login_guard(&self, guard: Arc<LoginGuard>) {
        if self.login_guard.set(guard).is_err() {
            tracing::warn!("the login guard was set twice; keeping the first");
        }
    }

    /// Records a failed login (wrong password or second factor) with the guard.
    async fn login_failed(&self, email_lower: &str) {
        if let Some(guard) = self.login_guard.get() {
            guard.failed(email_lower).await;
        }
    }

    async fn hash_password(&self, password: &str) -> Result<String, ApiError> {
        let _permit = self.hashing.acquire().await.map_err(hashing_error)?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_password_blocking(&password))
            .await
            .map_err(join_error)?
    }

    async fn password_matches(&self, password: &str, hash: &str) -> Result<bool, ApiError> {
        let _permit = self.hashing.acquire().await.map_err(hashing_error)?;
        let password = password.to_owned();
        let hash = hash.to_owned();
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(hashing_error)?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .map_err(join_error)?
    }

    /// Marks a cached profile out of date (a tombstone, so that a reader that fetched the old
    /// row just before the change cannot put it back).
    pub async fn forget_user(&self, id: Uuid) {
        if let Err(error) = self
            .cache
            .set(
                &user_key(id),
                &format!("{STALE}{}", Uuid::now_v7()),
                PROFILE_TOMBSTONE_TTL,
            )
            .await
        {
            tracing::error!(%error, user_id = %id, "could not mark a cached profile stale");
        }
    }

    /// Records revoked sessions in the shared cache, so every instance refuses their access
    /// tokens from the next call.
    async fn mark_sessions_revoked(&self, ids: &[Uuid]) -> Result<(), ApiError> {
        for id in ids {
            self.cache
                .set(&session_key(*id), "revoked", AUTH_CACHE_TTL)
                .await?;
        }
        Ok(())
    }

    async fn load_user(&self, id: Uuid) -> Result<users::Model, ApiError> {
        repo::user_by_id(&self.db, id).await?.ok_or_else(|| {
            ApiError::unauthenticated("ACCOUNT_NOT_FOUND", "the account no longer exists")
        })
    }

    /// Issues a mailed single-use token and sends the mail.
    async fn mail_token(
        &self,
        user: &users::Model,
        purpose: &'static str,
        ttl: Duration,
    ) -> Result<(), ApiError> {
        let txn = self.db.begin().await?;
        let token = issue_mail_token(&txn, user.id, purpose, ttl).await?;
        txn.commit().await?;
        self.send_token_mail(user, purpose, &token).await;
        Ok(())
    }

    /// Mails a token link, in the brand of the account's tenant.
    async fn send_token_mail(&self, user: &users::Model, purpose: &'static str, token: &str) {
        let brand = self.mail_brand(user.tenant_id).await;
        let (base, name) = (&brand.base_url, &brand.name);
        let (subject, text) = match purpose {
            VERIFY_EMAIL => (
                "Confirm your email address",
                format!(
                    "Welcome to {name}.\n\nConfirm your email address to start buying verifications:\n{base}/verify-email?token={token}\n\nThe link is valid for 24 hours."
                ),
            ),
            _ => (
                "Reset your password",
                format!(
                    "Someone asked to reset the password of your {name} account.\n\nChoose a new password here:\n{base}/reset-password?token={token}\n\nThe link is valid for one hour. If it was not you, ignore this mail: your password stays as it is."
                ),
            ),
        };
        self.outbox.send(Mail {
            to: user.email.clone(),
            subject: subject.to_owned(),
            text,
            from_name: brand.sender,
        });
    }

    /// Opens an account in `tenant`'s storefront (`None`: the platform's).
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        referral_code: &str,
        tenant: Option<Uuid>,
    ) -> Result<UserProfile, ApiError> {
        let mut violations = Violations::default();
        let email = check_new_credentials(email, password, &mut violations);
        let referral_code = referral_code.trim().to_ascii_uppercase();
        if referral_code.len() > 16 {
            violations.add("referral_code", "is longer than 16 characters");
        } else if !referral_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            // Checked before the look-up: PostgreSQL refuses some text (a NUL byte) outright.
            violations.add("referral_code", "may contain only letters and digits");
        }
        violations.into_result()?;
        let email = email.unwrap_or_default();

        let referred_by = if referral_code.is_empty() {
            None
        } else {
            // A referral works within one storefront: another tenant's code is unknown here.
            match repo::user_by_referral_code(&self.db, &referral_code).await? {
                Some(referrer) if referrer.tenant_id == tenant => Some(referrer.id),
                _ => {
                    return Err(ApiError::invalid(
                        "referral_code",
                        "no account has this referral code",
                    ));
                }
            }
        };

        let email_lower = domain::normalize_email(&email);
        if repo::user_by_email(&self.db, &email_lower).await?.is_some() {
            return Err(email_taken());
        }
        let password_hash = self.hash_password(password).await?;
        let now = Utc::now();
        // A referral code may collide with an existing one; draw again a few times.
        for _ in 0..5 {
            let mut user = new_user(&email, &password_hash, Role::Customer, now);
            user.referred_by = referred_by;
            user.tenant_id = tenant;
            // The account and its verification token are written together, or not at all.
            let txn = self.db.begin().await?;
            match repo::insert_user(&txn, user.clone()).await? {
                UserInsert::Inserted => {
                    let token =
                        issue_mail_token(&txn, user.id, VERIFY_EMAIL, VERIFY_EMAIL_TTL).await?;
                    txn.commit().await?;
                    self.send_token_mail(&user, VERIFY_EMAIL, &token).await;
                    self.tracker
                        .step(user.id, FunnelStep::Registered, user.created_at);
                    tracing::info!(user_id = %user.id, "account registered");
                    return Ok(UserProfile::from(&user));
                }
                UserInsert::EmailTaken => {
                    txn.rollback().await?;
                    return Err(email_taken());
                }
                UserInsert::ReferralCodeTaken => txn.rollback().await?,
            }
        }
        Err(ApiError::Internal(anyhow::anyhow!(
            "no free referral code after 5 draws"
        )))
    }

    /// Suspends (`true`) or reactivates an account inside the caller's transaction; a
    /// suspension also ends every session. Returns whether the status changed and the
    /// sessions it ended; after the commit, hand both to [`Self::status_changed`].
    pub async fn set_suspended(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        user: &users::Model,
        suspended: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, ApiError> {
        let to = if suspended {
            AccountStatus::Suspended
        } else {
            AccountStatus::Active
        };
        let mut model = repo::editable(user.clone());
        model.status = sea_orm::ActiveValue::Set(to.as_str().to_owned());
        model.updated_at = sea_orm::ActiveValue::Set(now);
        repo::save_user(txn, model).await?;
        if suspended {
            Ok(repo::revoke_all_sessions(txn, user.id, "suspended", now).await?)
        } else {
            Ok(Vec::new())
        }
    }

    /// After a committed status change: every instance stops trusting its cached copies.
    pub async fn status_changed(
        &self,
        user: Uuid,
        ended_sessions: &[Uuid],
    ) -> Result<(), ApiError> {
        self.forget_user(user).await;
        self.mark_sessions_revoked(ended_sessions).await
    }

    fn check_mail_token(&self, token: &str) -> Result<String, ApiError> {
        let mut violations = Violations::default();
        require_text(&mut violations, "token", token, domain::MAX_TOKEN_LEN);
        violations.into_result()?;
        Ok(domain::hash_secret(token.trim()))
    }

    pub async fn verify_email(&self, token: &str) -> Result<UserProfile, ApiError> {
        let token_hash = self.check_mail_token(token)?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let user_id = match repo::consume_mail_token(&txn, &token_hash, VERIFY_EMAIL, now).await? {
            MailTokenUse::Consumed { user_id } => user_id,
            other => return Err(mail_token_error(other)),
        };
        let user = repo::user_by_id(&txn, user_id)
            .await?
            .ok_or_else(|| mail_token_error(MailTokenUse::Unknown))?;
        let mut model = repo::editable(user);
        model.email_verified = Set(true);
        let user = repo::save_user(&txn, model).await?;
        txn.commit().await?;
        self.forget_user(user.id).await;
        self.tracker.step(user.id, FunnelStep::EmailVerified, now);
        Ok(UserProfile::from(&user))
    }

    pub async fn resend_verification_email(&self, email: &str) -> Result<(), ApiError> {
        let mut violations = Violations::default();
        let email = domain::check_email("email", email, &mut violations);
        violations.into_result()?;
        let email_lower = domain::normalize_email(&email.unwrap_or_default());
        if let Some(user) = repo::user_by_email(&self.db, &email_lower).await?
            && !user.email_verified
        {
            self.mail_token(&user, VERIFY_EMAIL, VERIFY_EMAIL_TTL)
                .await?;
        }
        Ok(())
    }

    pub async fn request_password_reset(&self, email: &str) -> Result<(), ApiError> {
        let mut violations = Violations::default();
        let email = domain::check_email("email", email, &mut violations);
        violations.into_result()?;
        let email_lower = domain::normalize_email(&email.unwrap_or_default());
        if let Some(user) = repo::user_by_email(&self.db, &email_lower).await? {
            self.mail_token(&user, RESET_PASSWORD, RESET_PASSWORD_TTL)
                .await?;
        }
        Ok(())
    }

    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), ApiError> {
        let token_hash = self.check_mail_token(token)?;
        // The password is checked before the token is spent, so a weak choice can be retried.
        let mut violations = Violations::default();
        domain::check_password("new_password", new_password, "", &mut violations);
        violations.into_result()?;
        let password_hash = self.hash_password(new_password).await?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let user_id = match repo::consume_mail_token(&txn, &token_hash, RESET_PASSWORD, now).await?
        {
            MailTokenUse::Consumed { user_id } => user_id,
            other => return Err(mail_token_error(other)),
        };
        let user = repo::user_by_id(&txn, user_id)
            .await?
            .ok_or_else(|| mail_token_error(MailTokenUse::Unknown))?;
        if user.email_lower == domain::normalize_email(new_password) {
            return Err(ApiError::invalid(
                "new_password",
                "must not be the email address",
            ));
        }
        let mut model = repo::editable(user);
        model.password_hash = Set(password_hash);
        let user = repo::save_user(&txn, model).await?;
        let revoked = repo::revoke_all_sessions(&txn, user.id, "password_reset", now).await?;
        txn.commit().await?;
        // The password is changed: a cache failure must not make the caller retry a spent
        // token, so it is logged (the cached session states expire within minutes).
        if let Err(error) = self.mark_sessions_revoked(&revoked).await {
            tracing::error!(%error, user_id = %user.id, "sessions ended by a password reset are still cached as live");
        }
        tracing::info!(user_id = %user.id, sessions = revoked.len(), "password reset");
        Ok(())
    }

    /// Checks a TOTP code or a backup code against an account with 2FA on, spending it.
    async fn second_factor_matches(
        &self,
        user: &users::Model,
        secret: &str,
        code: &str,
    ) -> Result<bool, ApiError> {
        let now = Utc::now();
        if domain::is_totp_shape(code) {
            let Some(totp) = domain::totp(secret, &user.email) else {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "stored TOTP secret of {} is unusable",
                    user.id
                )));
            };
            let Some(step) = totp.check(code.trim(), now.timestamp().max(0) as u64) else {
                return Ok(false);
            };
            Ok(repo::accept_totp_step(&self.db, user.id, step as i64).await?)
        } else {
            let hash = domain::hash_backup_code(user.id, code);
            Ok(repo::spend_backup_code(&self.db, user.id, &hash, now).await?)
        }
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        totp_code: &str,
    ) -> Result<(Tokens, UserProfile), ApiError> {
        let mut violations = Violations::default();
        let email = domain::check_email("email", email, &mut violations);
        require_text(
            &mut violations,
            "password",
            password,
            domain::MAX_PASSWORD_LEN,
        );
        if totp_code.len() > 32 {
            violations.add("totp_code", "is longer than 32 characters");
        }
        violations.into_result()?;
        let email_lower = domain::normalize_email(&email.unwrap_or_default());
        // Before anything is looked up or checked, so that a refusal says nothing about the
        // account (unknown emails are counted alike) and costs no hashing.
        if let Some(guard) = self.login_guard.get() {
            guard.admit(&email_lower).await?;
        }

        let user = repo::user_by_email(&self.db, &email_lower).await?;
        let Some(user) = user else {
            // Same work as for a real account, then the same answer.
            let _ = self.password_matches(password, &self.decoy_hash).await?;
            self.login_failed(&email_lower).await;
            return Err(invalid_credentials());
        };
        if !self.password_matches(password, &user.password_hash).await? {
            self.login_failed(&email_lower).await;
            return Err(invalid_credentials());
        }
        if user.status != AccountStatus::Active.as_str() {
            return Err(suspended());
        }
        let mut totp_verified = false;
        if user.totp_enabled {
            let code = totp_code.trim();
            if code.is_empty() {
                return Err(ApiError::failed_precondition(
                    "TOTP_REQUIRED",
                    "two-factor authentication is on: send the current code from your authenticator app (or a backup code) in totp_code",
                ));
            }
            let secret = user.totp_secret.clone().unwrap_or_default();
            if !self.second_factor_matches(&user, &secret, code).await? {
                self.login_failed(&email_lower).await;
                return Err(ApiError::unauthenticated(
                    "INVALID_TOTP_CODE",
                    "the two-factor code is wrong, expired or already used",
                ));
            }
            totp_verified = true;
        }
        if let Some(guard) = self.login_guard.get() {
            guard.succeeded(&email_lower).await;
        }
        // A suspended tenant's customer is refused here, with the answer every call of
        // theirs gets. Only once the password (and second factor) are right, so the refusal
        // tells no more than a login and one call with its tokens would have; anyone else
        // gets what they get from an active tenant. The guard counts it as a success: the
        // credentials were right, and a customer who keeps trying until the tenant is back
        // must not find the account locked then.
        self.admit_tenant(user.tenant_id).await?;

        let now = Utc::now();
        let session = sessions::Model {
            id: Uuid::now_v7(),
            user_id: user.id,
            totp_verified,
            created_at: now,
            expires_at: now + to_chrono(self.settings.refresh_token_ttl),
            revoked_at: None,
            revoke_reason: None,
        };
        let txn = self.db.begin().await?;
        repo::insert_session(&txn, session.clone()).await?;
        let tokens = self.issue_tokens(&txn, &session, now).await?;
        txn.commit().await?;
        Ok((tokens, UserProfile::from(&user)))
    }

    async fn issue_tokens(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        session: &sessions::Model,
        now: DateTime<Utc>,
    ) -> Result<Tokens, ApiError> {
        let refresh_token = domain::random_token();
        let refresh_expires_at = session.expires_at;
        repo::insert_refresh_token(
            conn,
            refresh_tokens::Model {
                id: Uuid::now_v7(),
                session_id: session.id,
                token_hash: domain::hash_secret(&refresh_token),
                created_at: now,
                expires_at: refresh_expires_at,
                used_at: None,
            },
        )
        .await?;
        // JWT `exp` is in whole seconds: round up, so that a token lives at least its TTL
        // (truncating could leave a 1-second token valid for a few milliseconds), and
        // advertise exactly the instant the server will stop accepting it.
        let access_expires_at = ceil_to_second(
            (now + to_chrono(self.settings.access_token_ttl)).min(session.expires_at),
        );
        let access_token = self.signer.sign(&AccessClaims {
            sub: session.user_id,
            sid: session.id,
            iat: now.timestamp(),
            exp: access_expires_at.timestamp(),
            tfa: session.totp_verified,
        });
        Ok(Tokens {
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
        })
    }

    fn check_refresh_token(&self, field: &str, token: &str) -> Result<String, ApiError> {
        let mut violations = Violations::default();
        require_text(&mut violations, field, token, domain::MAX_TOKEN_LEN);
        violations.into_result()?;
        Ok(domain::hash_secret(token.trim()))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ApiError> {
        let token_hash = self.check_refresh_token("refresh_token", refresh_token)?;
        let now = Utc::now();
        let Some(token) = repo::refresh_token_by_hash(&self.db, &token_hash).await? else {
            return Err(ApiError::unauthenticated(
                "TOKEN_INVALID",
                "the refresh token is not valid",
            ));
        };
        let session = repo::session_by_id(&self.db, token.session_id)
            .await?
            .ok_or_else(|| {
                ApiError::unauthenticated("TOKEN_INVALID", "the refresh token is not valid")
            })?;
        if session.revoked_at.is_some() {
            return Err(ApiError::unauthenticated(
                "SESSION_REVOKED",
                "this session has ended; log in again",
            ));
        }
        if token.expires_at <= now {
            return Err(ApiError::unauthenticated(
                "TOKEN_EXPIRED",
                "the refresh token has expired; log in again",
            ));
        }
        // A suspended tenant's customer gets no new tokens, and the refresh token stays
        // unspent for when the tenant is back (a reused one is caught then). Checked before
        // the transaction: on SQLite that holds the only connection, which the catalog may
        // need to answer.
        let owner = Principal {
            user_id: session.user_id,
            credential: Credential::Session {
                session_id: session.id,
                totp_verified: session.totp_verified,
            },
            tenant: None,
        };
        self.admit_tenant(self.me(&owner).await?.tenant_id).await?;
        let txn = self.db.begin().await?;
        if !repo::spend_refresh_token(&txn, token.id, now).await? {
            txn.rollback().await?;
            // A spent token came back: someone else may hold the family. End it all.
            repo::revoke_session(&self.db, session.id, "refresh_token_reused", now).await?;
            self.mark_sessions_revoked(&[session.id]).await?;
            tracing::warn!(user_id = %session.user_id, session_id = %session.id, "refresh token reused; session revoked");
            return Err(ApiError::unauthenticated(
                "TOKEN_REUSED",
                "this refresh token was already used; the session has been ended for safety",
            ));
        }
        let user = repo::user_by_id(&txn, session.user_id).await?;
        if user.is_none_or(|u| u.status != "active") {
            return Err(ApiError::permission_denied(
                "ACCOUNT_SUSPENDED",
                "this account is suspended",
            ));
        }
        let tokens = self.issue_tokens(&txn, &session, now).await?;
        txn.commit().await?;
        Ok(tokens)
    }

    pub async fn logout(
        &self,
        principal: Option<&Principal>,
        refresh_token: &str,
        all_sessions: bool,
    ) -> Result<(), ApiError> {
        let now = Utc::now();
        // Whose session: the refresh token's, else the calling access token's.
        let (user_id, session_id) = if !refresh_token.trim().is_empty() {
            let token_hash = self.check_refresh_token("refresh_token", refresh_token)?;
            let token = repo::refresh_token_by_hash(&self.db, &token_hash)
                .await?
                .ok_or_else(|| {
                    ApiError::unauthenticated("TOKEN_INVALID", "the refresh token is not valid")
                })?;
            let session = repo::session_by_id(&self.db, token.session_id)
                .await?
                .ok_or_else(|| {
                    ApiError::unauthenticated("TOKEN_INVALID", "the refresh token is not valid")
                })?;
            if principal.is_some_and(|p| p.user_id != session.user_id) {
                return Err(ApiError::unauthenticated(
                    "TOKEN_INVALID",
                    "the refresh token is not valid",
                ));
            }
            (session.user_id, Some(session.id))
        } else {
            match principal {
                Some(Principal {
                    user_id,
                    credential: Credential::Session { session_id, .. },
                    ..
                }) => (*user_id, Some(*session_id)),
                Some(Principal { user_id, .. }) if all_sessions => (*user_id, None),
                Some(_) => {
                    return Err(ApiError::invalid(
                        "refresh_token",
                        "is required when calling with an API key (or set all_sessions)",
                    ));
                }
                None => {
                    return Err(ApiError::unauthenticated(
                        "UNAUTHENTICATED",
                        "send the refresh token, or call with the session's access token",
                    ));
                }
            }
        };
        let revoked = if all_sessions {
            repo::revoke_all_sessions(&self.db, user_id, "logout_all", now).await?
        } else if let Some(session_id) = session_id {
            repo::revoke_session(&self.db, session_id, "logout", now).await?;
            vec![session_id]
        } else {
            Vec::new()
        };
        self.mark_sessions_revoked(&revoked).await
    }

    pub async fn me(&self, principal: &Principal) -> Result<UserProfile, ApiError> {
        let key = user_key(principal.user_id);
        let mut tombstone = None;
        match self.cache.get(&key).await {
            Ok(Some(json)) if json.starts_with(STALE) => tombstone = Some(json),
            Ok(Some(json)) => {
                if let Ok(profile) = serde_json::from_str::<UserProfile>(&json) {
                    return Ok(profile);
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "profile cache unavailable"),
        }
        let user = self.load_user(principal.user_id).await?;
        let profile = UserProfile::from(&user);
        if let Ok(json) = serde_json::to_string(&profile) {
            // After a change, its tombstone was set once the change had committed: this
            // read, made after seeing it, is at least as new, and takes its place unless
            // another change has marked the profile since.
            let stored = match &tombstone {
                Some(tombstone) => self
                    .cache
                    .replace(&key, tombstone, &json, PROFILE_CACHE_TTL)
                    .await
                    .map(|_| ()),
                None => self.cache.fill(&key, &json, PROFILE_CACHE_TTL).await,
            };
            if let Err(error) = stored {
                tracing::warn!(%error, "profile cache unavailable");
            }
        }
        Ok(profile)
    }

    pub async fn create_api_key(
        &self,
        principal: &Principal,
        display_name: &str,
    ) -> Result<(api_keys::Model, String), ApiError> {
        require_session(principal)?;
        let mut violations = Violations::default();
        let display_name = display_name.trim();
        require_text(
            &mut violations,
            "display_name",
            display_name,
            domain::MAX_DISPLAY_NAME_LEN,
        );
        if display_name.chars().any(char::is_control) {
            violations.add("display_name", "contains control characters");
        }
        violations.into_result()?;
        let secret = domain::new_api_key();
        let key = api_keys::Model {
            id: Uuid::now_v7(),
            user_id: principal.user_id,
            display_name: display_name.to_owned(),
            prefix: domain::api_key_prefix(&secret),
            key_hash: domain::hash_secret(&secret),
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        };
        repo::insert_api_key(&self.db, key.clone()).await?;
        tracing::info!(user_id = %principal.user_id, key_id = %key.id, "API key created");
        Ok((key, secret))
    }

    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        page_size: i32,
        page_token: &str,
        show_revoked: bool,
    ) -> Result<(Vec<api_keys::Model>, String), ApiError> {
        let limit = crate::paging::page_size(page_size)?;
        let before = crate::paging::decode(page_token, "apikeys")?;
        let mut keys =
            repo::list_api_keys(&self.db, principal.user_id, before, show_revoked, limit).await?;
        let next = if keys.len() as u64 > limit {
            keys.truncate(limit as usize);
            keys.last()
                .map(|k| crate::paging::encode(k.id, "apikeys"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((keys, next))
    }

    pub async fn revoke_api_key(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<api_keys::Model, ApiError> {
        let id = crate::paging::parse_name(name, "name", "apiKeys")?;
        let not_found =
            || ApiError::not_found("API_KEY_NOT_FOUND", format!("{name} does not exist"));
        let key = repo::api_key_of_user(&self.db, principal.user_id, id)
            .await?
            .ok_or_else(not_found)?;
        if key.revoked_at.is_none() {
            repo::revoke_api_key(&self.db, key.id, Utc::now()).await?;
            tracing::info!(user_id = %principal.user_id, key_id = %key.id, "API key revoked");
        }
        // Written on every call, so that a retry after a cache failure completes the job.
        self.cache
            .set(&api_key_key(&key.key_hash), "revoked", AUTH_CACHE_TTL)
            .await?;
        repo::api_key_of_user(&self.db, principal.user_id, id)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn setup_two_factor(
        &self,
        principal: &Principal,
    ) -> Result<TwoFactorSetup, ApiError> {
        require_session(principal)?;
        let user = self.load_user(principal.user_id).await?;
        if user.totp_enabled {
            return Err(ApiError::failed_precondition(
                "TWO_FACTOR_ALREADY_ENABLED",
                "two-factor authentication is already on; disable it first to change the app",
            ));
        }
        let secret = domain::new_totp_secret();
        let totp = domain::totp(&secret, &user.email)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("fresh TOTP secret refused")))?;
        let otpauth_uri = totp
            .to_url()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("otpauth URI: {e:?}")))?;
        let qr_code_png = totp
            .to_qr_png()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("QR code: {e:?}")))?;
        let backup_codes = domain::new_backup_codes();
        let hashes: Vec<String> = backup_codes
            .iter()
            .map(|code| domain::hash_backup_code(user.id, code))
            .collect();
        let now = Utc::now();
        let txn = self.db.begin().await?;
        repo::replace_pending_backup_codes(&txn, user.id, &hashes, now).await?;
        let mut model = repo::editable(user);
        model.totp_pending_secret = Set(Some(secret.clone()));
        repo::save_user(&txn, model).await?;
        txn.commit().await?;
        Ok(TwoFactorSetup {
            secret,
            otpauth_uri,
            qr_code_png,
            backup_codes,
        })
    }

    pub async fn confirm_two_factor(
        &self,
        principal: &Principal,
        code: &str,
    ) -> Result<UserProfile, ApiError> {
        require_session(principal)?;
        let code = code.trim();
        if !domain::is_totp_shape(code) {
            return Err(ApiError::invalid(
                "code",
                "must be the 6-digit code from the authenticator app",
            ));
        }
        let user = self.load_user(principal.user_id).await?;
        if user.totp_enabled {
            return Err(ApiError::failed_precondition(
                "TWO_FACTOR_ALREADY_ENABLED",
                "two-factor authentication is already on",
            ));
        }
        let Some(pending) = user.totp_pending_secret.clone() else {
            return Err(ApiError::failed_precondition(
                "TWO_FACTOR_NOT_SET_UP",
                "call SetupTwoFactor first",
            ));
        };
        if !self.second_factor_matches(&user, &pending, code).await? {
            return Err(ApiError::permission_denied(
                "INVALID_TOTP_CODE",
                "the code does not match; check the app's clock and try the current code",
            ));
        }
        let txn = self.db.begin().await?;
        repo::activate_pending_backup_codes(&txn, user.id).await?;
        // Re-read: the accepted TOTP step was just written.
        let user = repo::user_by_id(&txn, user.id)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("account vanished")))?;
        let mut model = repo::editable(user);
        model.totp_secret = Set(Some(pending));
        model.totp_pending_secret = Set(None);
        model.totp_enabled = Set(true);
        let user = repo::save_user(&txn, model).await?;
        txn.commit().await?;
        self.forget_user(user.id).await;
        tracing::info!(user_id = %user.id, "two-factor authentication enabled");
        Ok(UserProfile::from(&user))
    }

    pub async fn disable_two_factor(
        &self,
        principal: &Principal,
        password: &str,
        code: &str,
    ) -> Result<UserProfile, ApiError> {
        require_session(principal)?;
        let mut violations = Violations::default();
        require_text(
            &mut violations,
            "password",
            password,
            domain::MAX_PASSWORD_LEN,
        );
        require_text(&mut violations, "code", code, 32);
        violations.into_result()?;
        let user = self.load_user(principal.user_id).await?;
        if !user.totp_enabled {
            return Err(ApiError::failed_precondition(
                "TWO_FACTOR_NOT_ENABLED",
                "two-factor authentication is not on",
            ));
        }
        if !self.password_matches(password, &user.password_hash).await? {
            return Err(ApiError::permission_denied(
                "INVALID_CREDENTIALS",
                "the password is wrong",
            ));
        }
        let secret = user.totp_secret.clone().unwrap_or_default();
        if !self.second_factor_matches(&user, &secret, code).await? {
            return Err(ApiError::permission_denied(
                "INVALID_TOTP_CODE",
                "the two-factor code is wrong, expired or already used",
            ));
        }
        let txn = self.db.begin().await?;
        repo::delete_backup_codes(&txn, user.id).await?;
        let user = repo::user_by_id(&txn, user.id)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("account vanished")))?;
        let mut model = repo::editable(user);
        model.totp_secret = Set(None);
        model.totp_pending_secret = Set(None);
        model.totp_enabled = Set(false);
        let user = repo::save_user(&txn, model).await?;
        txn.commit().await?;
        self.forget_user(user.id).await;
        tracing::info!(user_id = %user.id, "two-factor authentication disabled");
        Ok(UserProfile::from(&user))
    }

    /// Establishes who is calling. Cached: a steady stream of calls with one key or token
    /// costs no database round trip; revocations overwrite the cache entry at once.
    pub async fn authenticate(&self, presented: Presented) -> Result<Principal, ApiError> {
        let mut principal = match presented {
            Presented::ApiKey(key) => self.authenticate_key(&key).await?,
            Presented::Bearer(token) => self.authenticate_token(&token).await?,
        };
        // A suspension stops every credential at once (the profile is cached, and every
        // change to it is seen by every instance at once).
        let profile = self.me(&principal).await?;
        if profile.status == AccountStatus::Suspended.as_str() {
            return Err(suspended());
        }
        principal.tenant = profile.tenant_id;
        Ok(principal)
    }

    async fn cached(&self, key: &str) -> Option<String> {
        match self.cache.get(key).await {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(%error, "authentication cache unavailable; using the database");
                None
            }
        }
    }

    async fn remember(&self, key: &str, value: &str) {
        if let Err(error) = self.cache.fill(key, value, AUTH_CACHE_TTL).await {
            tracing::warn!(%error, "authentication cache unavailable");
        }
    }

    async fn authenticate_key(&self, key: &str) -> Result<Principal, ApiError> {
        let invalid = || ApiError::unauthenticated("API_KEY_INVALID", "the API key is not valid");
        if !domain::looks_like_api_key(key) {
            return Err(invalid());
        }
        let hash = domain::hash_secret(key);
        let cache_key = api_key_key(&hash);
        let entry = match self.cached(&cache_key).await {
            Some(entry) => entry,
            None => {
                let entry = match repo::api_key_by_hash(&self.db, &hash).await? {
                    // Unknown keys are not cached: guessing costs an indexed look-up, and
                    // must not fill the shared cache.
                    None => return Err(invalid()),
                    Some(k) if k.revoked_at.is_some() => "revoked".to_owned(),
                    Some(k) => format!("{}:{}", k.user_id, k.id),
                };
                self.remember(&cache_key, &entry).await;
                entry
            }
        };
        match entry.as_str() {
            "revoked" => Err(ApiError::unauthenticated(
                "API_KEY_REVOKED",
                "this API key has been revoked",
            )),
            ids => {
                let (user_id, key_id) = ids
                    .split_once(':')
                    .and_then(|(u, k)| Some((u.parse().ok()?, k.parse().ok()?)))
                    .ok_or_else(|| {
                        ApiError::from(StoreError::Corrupt(format!("cache entry {cache_key}")))
                    })?;
                self.key_usage.record(key_id, Utc::now());
                Ok(Principal {
                    user_id,
                    credential: Credential::ApiKey { key_id },
                    tenant: None,
                })
            }
        }
    }

    async fn authenticate_token(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self
            .signer
            .verify(token, Utc::now())
            .map_err(|error| match error {
                TokenError::Expired => ApiError::unauthenticated(
                    "TOKEN_EXPIRED",
                    "the access token has expired; refresh it",
                ),
                TokenError::Malformed | TokenError::BadSignature => {
                    ApiError::unauthenticated("TOKEN_INVALID", "the access token is not valid")
                }
            })?;
        let cache_key = session_key(claims.sid);
        let state = match self.cached(&cache_key).await {
            Some(state) => state,
            None => {
                let state = match repo::session_by_id(&self.db, claims.sid).await? {
                    Some(s) if s.revoked_at.is_none() && s.user_id == claims.sub => "live",
                    _ => "revoked",
                };
                self.remember(&cache_key, state).await;
                state.to_owned()
            }
        };
        if state != "live" {
            // A suspension ends the sessions: say why.
            let owner = Principal {
                user_id: claims.sub,
                credential: Credential::Session {
                    session_id: claims.sid,
                    totp_verified: claims.tfa,
                },
                tenant: None,
            };
            if self
                .me(&owner)
                .await
                .is_ok_and(|p| p.status == AccountStatus::Suspended.as_str())
            {
                return Err(suspended());
            }
            return Err(ApiError::unauthenticated(
                "SESSION_REVOKED",
                "this session has ended; log in again",
            ));
        }
        Ok(Principal {
            user_id: claims.sub,
            credential: Credential::Session {
                session_id: claims.sid,
                totp_verified: claims.tfa,
            },
            tenant: None,
        })
    }

    /// Writes the API keys' last-use times gathered since the previous flush.
    pub async fn flush_key_usage(&self) {
        for (key_id, minute) in self.key_usage.take() {
            let Some(used_at) = DateTime::<Utc>::from_timestamp(minute * 60, 0) else {
                continue;
            };
            if let Err(error) = repo::touch_api_key(&self.db, key_id, used_at).await {
                tracing::warn!(%error, %key_id, "could not record API key use");
            }
        }
    }
}

/// Writes a new single-use token (superseding older ones of the same purpose); returns it.
async fn issue_mail_token(
    conn: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    purpose: &'static str,
    ttl: Duration,
) -> Result<String, ApiError> {
    let now = Utc::now();
    let token = domain::random_token();
    repo::retire_mail_tokens(conn, user_id, purpose, now).await?;
    repo::insert_mail_token(
        conn,
        mail_tokens::Model {
            id: Uuid::now_v7(),
            user_id,
            purpose: purpose.to_owned(),
            token_hash: domain::hash_secret(&token),
            expires_at: now + to_chrono(ttl),
            used_at: None,
            created_at: now,
        },
    )
    .await?;
    Ok(token)
}

/// Changing how an account is protected (API keys, 2FA) needs a password login: a leaked
/// API key must not be able to mint more keys or lock the owner out.
fn require_session(principal: &Principal) -> Result<(), ApiError> {
    match principal.credential {
        Credential::Session { .. } => Ok(()),
        Credential::ApiKey { .. } => Err(ApiError::permission_denied(
            "SESSION_REQUIRED",
            "this needs a signed-in session (an access token from Login); API keys cannot do it",
        )),
    }
}

fn email_taken() -> ApiError {
    ApiError::already_exists(
        "EMAIL_TAKEN",
        "an account with this email address already exists",
    )
}

fn mail_token_error(outcome: MailTokenUse) -> ApiError {
    let (reason, description) = match outcome {
        MailTokenUse::Expired => ("TOKEN_EXPIRED", "has expired; ask for a new mail"),
        MailTokenUse::AlreadyUsed => ("TOKEN_ALREADY_USED", "was already used"),
        MailTokenUse::Unknown | MailTokenUse::Consumed { .. } => {
            ("TOKEN_INVALID", "is not a valid token")
        }
    };
    ApiError::InvalidField {
        reason,
        field: "token",
        description: description.to_owned(),
    }
}

/// Creates an administrator (`namaskah-server admin create`): an account with the admin
/// role and a verified email. It must still turn on two-factor authentication, and log in
/// with a code, before any admin RPC answers it. An address already in use is refused: an
/// existing account is never promoted this way. Needs only the database (no running
/// server).
pub async fn create_admin(
    db: &sea_orm::DatabaseConnection,
    email: &str,
    password: &str,
) -> Result<UserProfile, ApiError> {
    let mut violations = Violations::default();
    let email = check_new_credentials(email, password, &mut violations);
    violations.into_result()?;
    let email = email.unwrap_or_default();
    if repo::user_by_email(db, &domain::normalize_email(&email))
        .await?
        .is_some()
    {
        return Err(email_taken());
    }
    let password = password.to_owned();
    let password_hash = tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(join_error)??;
    for _ in 0..5 {
        let mut user = new_user(&email, &password_hash, Role::Admin, Utc::now());
        user.email_verified = true;
        match repo::insert_user(db, user.clone()).await? {
            UserInsert::Inserted => {
                tracing::info!(user_id = %user.id, "administrator created");
                return Ok(UserProfile::from(&user));
            }
            UserInsert::EmailTaken => return Err(email_taken()),
            UserInsert::ReferralCodeTaken => {}
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "no free referral code after 5 draws"
    )))
}

/// A new account's email and password, checked; the email in canonical form.
fn check_new_credentials(email: &str, password: &str, v: &mut Violations) -> Option<String> {
    let email = domain::check_email("email", email, v);
    domain::check_password("password", password, email.as_deref().unwrap_or(""), v);
    email
}

fn suspended() -> ApiError {
    ApiError::permission_denied(
        "ACCOUNT_SUSPENDED",
        "this account is suspended; contact support",
    )
}

/// A new account's row: active, on starter, email not yet verified, no second factor.
fn new_user(email: &str, password_hash: &str, role: Role, now: DateTime<Utc>) -> users::Model {
    users::Model {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        email_lower: domain::normalize_email(email),
        email_verified: false,
        password_hash: password_hash.to_owned(),
        role: role.as_str().to_owned(),
        plan: Plan::Starter.as_str().to_owned(),
        status: AccountStatus::Active.as_str().to_owned(),
        referral_code: domain::new_referral_code(),
        referred_by: None,
        totp_secret: None,
        totp_pending_secret: None,
        totp_enabled: false,
        totp_last_step: None,
        tenant_id: None,
        created_at: now,
        updated_at: now,
    }
}
