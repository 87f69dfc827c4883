//! The administration rules in plain Rust: who may act as an administrator, what an audit
//! entry records, and the shape of the administrators' input.
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Violations};
use crate::identity::domain::{Credential, Role};

/// Why a caller may not use the admin RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The account is not an administrator.
    AdminRequired,
    /// An administrator, but not through a login session that passed a TOTP check (an API
    /// key, or a password-only login).
    TotpRequired,
}

impl Denial {
    pub fn reason(self) -> &'static str {
        match self {
            Denial::AdminRequired => "ADMIN_REQUIRED",
            Denial::TotpRequired => "TOTP_REQUIRED",
        }
    }

    pub fn into_error(self) -> ApiError {
        match self {
            Denial::AdminRequired => {
                ApiError::permission_denied("ADMIN_REQUIRED", "this RPC is for administrators")
            }
            Denial::TotpRequired => ApiError::permission_denied(
                "TOTP_REQUIRED",
                "administrators must log in with a TOTP or backup code (API keys never \
                 qualify): turn on two-factor authentication and log in again",
            ),
        }
    }
}

/// May an account with `role`, calling with `credential`, act as an administrator?
pub fn admit(role: &str, credential: &Credential) -> Result<(), Denial> {
    if Role::parse(role) != Some(Role::Admin) {
        return Err(Denial::AdminRequired);
    }
    match credential {
        Credential::Session {
            totp_verified: true,
            ..
        } => Ok(()),
        _ => Err(Denial::TotpRequired),
    }
}

/// Whether an audited action went through (stored lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Denied,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Succeeded, Outcome::Denied, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// The longest reason an administrator may give.
pub const MAX_REASON: usize = 500;

/// A stated reason: trimmed, `min` to [`MAX_REASON`] characters (0 = optional).
pub fn check_reason(field: &str, reason: &str, min: usize, v: &mut Violations) -> String {
    let reason = reason.trim();
    let n = reason.chars().count();
    if n < min {
        if min > 0 && n == 0 {
            v.add(field, "is required");
        } else {
            v.add(field, format!("must be at least {min} characters"));
        }
    } else if n > MAX_REASON {
        v.add(field, format!("must be at most {MAX_REASON} characters"));
    } else if reason.chars().any(|c| c.is_control() && c != '\n') {
        v.add(field, "must not contain control characters");
    }
    reason.to_owned()
}

/// A price's resource name: `services/{service_code}/prices/{country_code}`.
pub fn parse_price_name(name: &str) -> Result<(String, String), ApiError> {
    let invalid = || {
        ApiError::invalid(
            "name",
            "must be `services/{service_code}/prices/{country_code}`",
        )
    };
    if name.is_empty() {
        return Err(ApiError::invalid("name", "is required"));
    }
    let mut parts = name.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("services"), Some(service), Some("prices"), Some(country), None)
            if !service.is_empty() && !country.is_empty() =>
        {
            Ok((service.to_owned(), country.to_owned()))
        }
        _ => Err(invalid()),
    }
}

/// What identifies a request for replay: the same `request_id` with other contents is a
/// conflict.
pub fn fingerprint(method: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    for part in parts {
        hash.update([0]);
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// `LIKE` pattern for "contains `text`, ignoring case" (the column compared is lower case),
/// with the wildcards in `text` taken literally (escaped with `\`).
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn only_admins_with_a_totp_session_pass() {
        let totp = Credential::Session {
            session_id: Uuid::nil(),
            totp_verified: true,
        };
        let password_only = Credential::Session {
            session_id: Uuid::nil(),
            totp_verified: false,
        };
        let key = Credential::ApiKey {
            key_id: Uuid::nil(),
        };
        assert_eq!(admit("admin", &totp), Ok(()));
        assert_eq!(admit("admin", &password_only), Err(Denial::TotpRequired));
        assert_eq!(admit("admin", &key), Err(Denial::TotpRequired));
        assert_eq!(admit("customer", &totp), Err(Denial::AdminRequired));
        assert_eq!(admit("", &totp), Err(Denial::AdminRequired));
    }

    #[test]
    fn reasons() {
        let mut v = Violations::default();
        assert_eq!(
            check_reason("reason", "  goodwill  ", 3, &mut v),
            "goodwill"
        );
        assert!(v.into_result().is_ok());
        for (text, min) in [("", 3), ("ab", 3), ("bad\u{0}x", 3)] {
            let mut v = Violations::default();
            check_reason("reason", text, min, &mut v);
            assert!(v.into_result().is_err(), "{text:?}");
        }
        let mut v = Violations::default();
        check_reason("reason", &"x".repeat(501), 0, &mut v);
        assert!(v.into_result().is_err());
        let mut v = Violations::default();
        check_reason("reason", "", 0, &mut v);
        assert!(v.into_result().is_ok());
    }

    #[test]
    fn price_names() {
        assert_eq!(
            parse_price_name("services/whatsapp/prices/GB").unwrap(),
            ("whatsapp".to_owned(), "GB".to_owned())
        );
        for bad in [
            "",
            "services/whatsapp",
            "services//prices/GB",
            "services/whatsapp/prices/GB/x",
            "countries/GB/prices/whatsapp",
        ] {
            assert!(parse_price_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("Ann"), "%ann%");
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = fingerprint("m", &["users/1", "100"]);
        assert_eq!(a, fingerprint("m", &["users/1", "100"]));
        assert_ne!(a, fingerprint("m", &["users/1", "1000"]));
        assert_ne!(a, fingerprint("m", &["users/11", "00"]));
    }
}
