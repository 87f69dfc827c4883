//! Identity rules in plain Rust: what a valid email and password are, how secrets are made
//! and hashed, access tokens (JWT, HS256), TOTP and backup codes.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Violations;

pub const MAX_EMAIL_LEN: usize = 254;
pub const MIN_PASSWORD_LEN: usize = 10;
pub const MAX_PASSWORD_LEN: usize = 128;
pub const MAX_TOKEN_LEN: usize = 512;
pub const MAX_DISPLAY_NAME_LEN: usize = 64;
pub const API_KEY_PREFIX: &str = "nsk_";
pub const BACKUP_CODE_COUNT: usize = 10;

/// Who is calling, as established by the authentication layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: Uuid,
    pub credential: Credential,
    /// The tenant the account belongs to (`None`: the platform's own customer). Set from
    /// the account, never from anything the caller sends.
    #[serde(default)]
    pub tenant: Option<Uuid>,
}

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credential {
    /// An access token of a login session; `totp_verified` says whether that login passed
    /// a TOTP or backup-code check.
    Session {
        session_id: Uuid,
        totp_verified: bool,
    },
    /// An API key.
    ApiKey { key_id: Uuid },
}

/// Whether an account may use the platform, as stored in `users.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// Suspended by an administrator: its credentials are refused.
    Suspended,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(AccountStatus::Active),
            "suspended" => Some(AccountStatus::Suspended),
            _ => None,
        }
    }
}

/// The role of an account, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The subscription plan of an account, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Starter,
    Pro,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Starter => "starter",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "starter" => Some(Plan::Starter),
            "pro" => Some(Plan::Pro),
            "enterprise" => Some(Plan::Enterprise),
            _ => None,
        }
    }
}

/// Checks an email address the way a mail server would accept it, within reason, and
/// returns it trimmed. `field` names the request field for the violation.
pub fn check_email(field: &str, raw: &str, violations: &mut Violations) -> Option<String> {
    let email = raw.trim();
    let problem = if email.is_empty() {
        Some("is required")
    } else if email.len() > MAX_EMAIL_LEN {
        Some("is longer than 254 characters")
    } else if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains spaces or control characters")
    } else {
        match email.rsplit_once('@') {
            None => Some("is not an email address (no @)"),
            Some((local, domain)) => {
                if local.is_empty()
                    || local.len() > 64
                    || !local
                        .chars()
                        .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
                {
                    Some("has an invalid part before the @")
                } else if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
                    Some("has misplaced dots before the @")
                } else if !valid_domain(domain) {
                    Some("has an invalid domain")
                } else {
                    None
                }
            }
        }
    };
    match problem {
        Some(problem) => {
            violations.add(field, problem);
            None
        }
        None => Some(email.to_owned()),
    }
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(char::is_alphabetic) && tld.len() >= 2)
}

/// The form of an address that uniqueness and look-ups use.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks a new password against the policy.
pub fn check_password(field: &str, password: &str, email: &str, violations: &mut Violations) {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        violations.add(field, "must be at least 10 characters");
    } else if length > MAX_PASSWORD_LEN {
        violations.add(field, "must be at most 128 characters");
    } else if !password.chars().any(char::is_alphabetic)
        || !password.chars().any(|c| c.is_numeric())
    {
        violations.add(field, "must contain at least one letter and one digit");
    } else if !email.is_empty() && password.trim().eq_ignore_ascii_case(email.trim()) {
        violations.add(field, "must not be the email address");
    } else if password
        .chars()
        .all(|c| c == password.chars().next().unwrap_or(' '))
    {
        violations.add(field, "must not repeat a single character");
    }
}

/// A random secret of 32 bytes, URL-safe base64.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a high-entropy secret, hex. Secrets with 128+ bits of entropy need no slow
/// hash: nobody can guess them, and a fast hash keeps every request cheap.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new API key: `nsk_` and 43 URL-safe characters (256 bits).
pub fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", random_token())
}

/// The part of an API key shown in listings.
pub fn api_key_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX.len() + 8).collect()
}

/// Whether text has the shape of an API key (checked before any look-up).
pub fn looks_like_api_key(key: &str) -> bool {
    key.len() == API_KEY_PREFIX.len() + 43
        && key.starts_with(API_KEY_PREFIX)
        && key[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";

fn random_code(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// A referral code: 8 characters that are easy to read aloud.
pub fn new_referral_code() -> String {
    random_code(8)
}

/// Ten backup codes shaped `XXXXX-XXXXX` (about 49 bits each).
pub fn new_backup_codes() -> Vec<String> {
    (0..BACKUP_CODE_COUNT)
        .map(|_| format!("{}-{}", random_code(5), random_code(5)))
        .collect()
}

/// Backup codes are compared without dashes, spaces or letter case.
pub fn normalize_backup_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The stored hash of a backup code, salted with the account id.
pub fn hash_backup_code(user_id: Uuid, code: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(user_id.as_bytes());
    hasher.update(normalize_backup_code(code).as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether a submitted second factor looks like a TOTP code (six digits) rather than a
/// backup code.
pub fn is_totp_shape(code: &str) -> bool {
    let code = code.trim();
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The account id.
    pub sub: Uuid,
    /// The session id.
    pub sid: Uuid,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Whether the login passed a TOTP check.
    pub tfa: bool,
}

/// Why an access token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs access tokens as compact JWTs (HS256).
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

impl TokenSigner {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(JWT_HEADER);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: AccessClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Builds the TOTP generator of an account (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step).
pub fn totp(secret_base32: &str, account: &str) -> Option<totp_rs::Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).ok()?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some("Namaskah"))
        .with_account_name(account.to_owned())
        .build()
        .ok()
}

/// A new TOTP secret, base32.
pub fn new_totp_secret() -> String {
    totp_rs::Secret::generate().to_base32()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email_ok(raw: &str) -> bool {
        let mut v = Violations::default();
        check_email("email", raw, &mut v).is_some() && v.into_result().is_ok()
    }

    #[test]
    fn emails() {
        for good in ["a@b.co", "First.Last+tag@Example.COM", "x@mail.example.org"] {
            assert!(email_ok(good), "{good}");
        }
        for bad in [
            "",
            "   ",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a b@c.co",
            "a@b..co",
            ".a@b.co",
            "a@-b.co",
            "a@b.c0",
            "a@b.c",
            "a:b@example.com",
            "a\"b@example.com",
            "a(b)@example.com",
        ] {
            assert!(!email_ok(bad), "{bad}");
        }
        assert!(!email_ok(&format!("{}@example.com", "a".repeat(250))));
        assert_eq!(normalize_email(" A@B.Co "), "a@b.co");
    }

    #[test]
    fn passwords() {
        let check = |p: &str| {
            let mut v = Violations::default();
            check_password("password", p, "me@example.com", &mut v);
            v.into_result().is_ok()
        };
        assert!(check("correct horse 42"));
        assert!(!check("short1"));
        assert!(!check("onlyletterslong"));
        assert!(!check("1234567890123"));
        assert!(!check(&"a1".repeat(100)));
        assert!(!check("me@example.com"));
    }

    #[test]
    fn api_keys_have_a_checkable_shape() {
        let key = new_api_key();
        assert!(looks_like_api_key(&key), "{key}");
        assert_eq!(api_key_prefix(&key).len(), 12);
        assert!(!looks_like_api_key("nsk_short"));
        assert!(!looks_like_api_key(&key.replace("nsk_", "xyz_")));
        assert_ne!(new_api_key(), new_api_key());
    }

    #[test]
    fn tokens_sign_and_verify() {
        let signer = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let now = Utc::now();
        let claims = AccessClaims {
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            iat: now.timestamp(),
            exp: now.timestamp() + 60,
            tfa: false,
        };
        let token = signer.sign(&claims);
        assert_eq!(signer.verify(&token, now), Ok(claims.clone()));
        assert_eq!(
            signer.verify(&token, now + chrono::Duration::seconds(61)),
            Err(TokenError::Expired)
        );
        let other = TokenSigner::new(b"another key entirely, 32 bytes!!");
        assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(signer.verify(&tampered, now).is_err());
        assert_eq!(signer.verify("a.b", now), Err(TokenError::Malformed));
    }

    #[test]
    fn backup_codes() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), 10);
        let user = Uuid::now_v7();
        assert_eq!(
            hash_backup_code(user, &codes[0]),
            hash_backup_code(user, &codes[0].to_lowercase().replace('-', " "))
        );
        assert_ne!(
            hash_backup_code(user, &codes[0]),
            hash_backup_code(Uuid::now_v7(), &codes[0])
        );
    }

    #[test]
    fn totp_round_trip() {
        let secret = new_totp_secret();
        let t = totp(&secret, "me@example.com").expect("valid secret");
        let code = t.generate_current().to_string();
        assert!(is_totp_shape(&code));
        assert!(t.check_current(&code).is_some());
    }
}
