//! Tenants' rules in plain Rust: names, host names, branding, markups and the split of a
//! sale between the platform and the tenant.
use serde::{Deserialize, Serialize};

use crate::catalog::domain::{list_price, plan_price};
use crate::error::{ApiError, Violations};
use crate::identity::domain::Plan;

/// The platform's own tenant's id (`tenants/default`). It has no row.
pub const DEFAULT_TENANT: &str = "default";
/// At most this many host names per tenant.
pub const MAX_HOSTS: usize = 10;
const MAX_NAME: usize = 64;
const MAX_URI: usize = 2048;
const MAX_EMAIL: usize = 254;

/// How a tenant presents itself. Every field a caller sets is checked by
/// [`check_branding`] before it is stored, so what is shown is plain text, `https` URLs and
/// `#RRGGBB` colours; a tenant created without branding starts with the platform's own
/// look, whose links follow the server's public URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    pub display_name: String,
    pub logo_uri: String,
    pub favicon_uri: String,
    pub primary_color: String,
    pub accent_color: String,
    pub support_email: String,
    pub mail_sender_name: String,
    pub website_uri: String,
}

impl Branding {
    /// The platform's own branding.
    pub fn platform(website: &str) -> Self {
        Self {
            display_name: "Namaskah".to_owned(),
            logo_uri: format!("{}/logo.svg", website.trim_end_matches('/')),
            favicon_uri: format!("{}/favicon.ico", website.trim_end_matches('/')),
            primary_color: "#1F6FEB".to_owned(),
            accent_color: "#F59E0B".to_owned(),
            support_email: "support@namaskah.app".to_owned(),
            mail_sender_name: "Namaskah".to_owned(),
            website_uri: website.trim_end_matches('/').to_owned(),
        }
    }
}

/// Whether a tenant serves its customers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantState {
    Active,
    Suspended,
}

impl TenantState {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(TenantState::Active),
            "suspended" => Some(TenantState::Suspended),
            _ => None,
        }
    }
}

/// A tenant id (`acme` in `tenants/acme`): 3 to 40 lowercase letters, digits and `-`,
/// starting with a letter, not ending with `-`; `default` is the platform's.
pub fn is_slug(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    (3..=40).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The id in `tenants/{id}` (the default tenant's too), or a field violation.
pub fn parse_name(field: &str, raw: &str) -> Result<String, ApiError> {
    match raw.strip_prefix("tenants/") {
        Some(slug) if slug == DEFAULT_TENANT || is_slug(slug) => Ok(slug.to_owned()),
        _ => Err(ApiError::invalid(
            field,
            "must be a tenant resource name like tenants/acme",
        )),
    }
}

/// Whether an owner on `plan` (as stored) may manage its tenants and read their reports:
/// only while its account is on the enterprise plan. A lapsed owner's tenants keep
/// serving their customers.
pub fn owner_plan_allows(plan: &str) -> bool {
    Plan::parse(plan) == Some(Plan::Enterprise)
}

/// The refusal of an owner whose account is no longer on the enterprise plan.
pub fn owner_plan_lapsed() -> ApiError {
    ApiError::permission_denied(
        "ENTERPRISE_PLAN_REQUIRED",
        "a tenant's owner manages it only while on the enterprise plan: choose the enterprise plan again",
    )
}

/// `tenants/{t}/services/{s}/prices/{c}` → `(t, s, c)`.
pub fn parse_price_name(field: &str, raw: &str) -> Result<(String, String, String), ApiError> {
    let invalid = || {
        ApiError::invalid(
            field,
            "must be a name like tenants/acme/services/whatsapp/prices/GB",
        )
    };
    let parts: Vec<&str> = raw.split('/').collect();
    match parts.as_slice() {
        ["tenants", tenant, "services", service, "prices", country]
            if is_slug(tenant)
                && crate::catalog::domain::is_service_code(service)
                && crate::catalog::domain::is_country_code(country) =>
        {
            Ok((
                (*tenant).to_owned(),
                (*service).to_owned(),
                (*country).to_owned(),
            ))
        }
        _ => Err(invalid()),
    }
}

/// A host name as tenants are found by: lowercase, without a port or a trailing dot.
/// `None` if it is not a DNS name of at least two labels.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    // `[::1]:443`, `127.0.0.1:50051`: addresses are never a tenant's host.
    if raw.starts_with('[') {
        return None;
    }
    let host = match raw.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => raw,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return None;
    }
    // An IPv4 address is not a host name.
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(host)
}

/// Checks the host names a tenant is given: valid, distinct, at most [`MAX_HOSTS`].
/// Returns them normalised.
pub fn check_hosts(field: &str, hosts: &[String], v: &mut Violations) -> Vec<String> {
    if hosts.len() > MAX_HOSTS {
        v.add(field, format!("at most {MAX_HOSTS} host names"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(hosts.len());
    for (i, raw) in hosts.iter().enumerate() {
        match normalize_host(raw) {
            Some(_) if raw.contains(':') => {
                v.add(&format!("{field}[{i}]"), "must not carry a port");
            }
            Some(host) if out.contains(&host) => {
                v.add(&format!("{field}[{i}]"), format!("{host} is listed twice"));
            }
            Some(host) => out.push(host),
            None => v.add(
                &format!("{field}[{i}]"),
                "must be a host name like sms.example.com",
            ),
        }
    }
    out
}

/// Plain text for display: no control characters and no markup (`<`, `>`), so that no
/// page or mail that shows it can be made to run anything.
fn check_plain(field: &str, value: &str, min: usize, max: usize, v: &mut Violations) {
    let len = value.chars().count();
    if len < min {
        v.add(field, "is required");
    } else if len > max {
        v.add(field, format!("is longer than {max} characters"));
    } else if value.trim() != value {
        v.add(field, "must not start or end with spaces");
    } else if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '<' | '>' | '"' | '`'))
    {
        v.add(
            field,
            "must be plain text (no control characters, <, >, \" or `)",
        );
    }
}

/// An `https://` URL of at most [`MAX_URI`] characters with a host, or (when `optional`)
/// empty.
fn check_uri(field: &str, value: &str, optional: bool, v: &mut Violations) {
    if value.is_empty() {
        if !optional {
            v.add(field, "is required");
        }
        return;
    }
    if value.len() > MAX_URI {
        v.add(field, format!("is longer than {MAX_URI} characters"));
        return;
    }
    let ok = value.starts_with("https://")
        && !value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\'' | '`')
        })
        && url::Url::parse(value).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some());
    if !ok {
        v.add(field, "must be an https:// URL");
    }
}

fn check_color(field: &str, value: &str, v: &mut Violations) {
    let ok = value.len() == 7
        && value.starts_with('#')
        && value[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        v.add(field, "must be a colour as #RRGGBB");
    }
}

fn check_email(field: &str, value: &str, v: &mut Violations) {
    let ok = value.len() <= MAX_EMAIL
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && normalize_host(domain).is_some()
                && !domain.contains(':')
                && local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&*+-/=?^_{|}~.".contains(&b))
        });
    if !ok {
        v.add(field, "must be an email address like support@example.com");
    }
}

/// Checks every branding field; `prefix` is the field path (`tenant.branding`).
pub fn check_branding(prefix: &str, b: &Branding, v: &mut Violations) {
    check_branding_fields(prefix, b, BRANDING_FIELDS, v);
}

/// The fields of [`Branding`], by their proto names, in their order.
pub const BRANDING_FIELDS: &[&str] = &[
    "display_name",
    "logo_uri",
    "favicon_uri",
    "primary_color",
    "accent_color",
    "support_email",
    "mail_sender_name",
    "website_uri",
];

/// Checks the branding fields named in `fields` only (an update checks what it writes: a
/// tenant's branding may hold values the checks refuse, such as the platform's own look
/// on a server whose public URL is `http://`).
pub fn check_branding_fields(prefix: &str, b: &Branding, fields: &[&str], v: &mut Violations) {
    for field in BRANDING_FIELDS.iter().filter(|f| fields.contains(f)) {
        let name = format!("{prefix}.{field}");
        match *field {
            "display_name" => check_plain(&name, &b.display_name, 1, MAX_NAME, v),
            "logo_uri" => check_uri(&name, &b.logo_uri, false, v),
            "favicon_uri" => check_uri(&name, &b.favicon_uri, true, v),
            "primary_color" => check_color(&name, &b.primary_color, v),
            "accent_color" => check_color(&name, &b.accent_color, v),
            "support_email" => check_email(&name, &b.support_email, v),
            "mail_sender_name" => check_plain(&name, &b.mail_sender_name, 1, MAX_NAME, v),
            "website_uri" => check_uri(&name, &b.website_uri, true, v),
            _ => {}
        }
    }
}

/// A tenant's display name in the platform's lists.
pub fn check_display_name(field: &str, value: &str, v: &mut Violations) {
    check_plain(field, value, 1, MAX_NAME, v);
}

/// A markup within `0..=max_bp`, or `INVALID_ARGUMENT`/`MARKUP_OUT_OF_RANGE`.
pub fn check_markup(field: &'static str, markup: i32, max_bp: u32) -> Result<u32, ApiError> {
    match u32::try_from(markup) {
        Ok(m) if m <= max_bp => Ok(m),
        _ => Err(ApiError::InvalidField {
            reason: "MARKUP_OUT_OF_RANGE",
            field,
            description: format!("must be from 0 to {max_bp} basis points"),
        }),
    }
}

/// A tenant's list price of something the platform lists at `platform_list` (its cost):
/// the fixed price if one is set, else the platform's price raised by the markup; never
/// below the cost, even when the platform's price has risen above a fixed price since.
pub fn tenant_list_price(platform_list: i64, markup_bp: u32, fixed: Option<i64>) -> i64 {
    fixed
        .unwrap_or_else(|| list_price(platform_list, markup_bp))
        .max(platform_list)
}

/// The highest fixed price a tenant may set: its cost raised by the maximum markup.
pub fn price_limit(platform_list: i64, max_markup_bp: u32) -> i64 {
    list_price(platform_list, max_markup_bp)
}

/// What one sale books: the customer pays `price`; `margin` of it is the tenant's and the
/// rest the platform's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub price: i64,
    pub margin: i64,
}

/// Splits a sale to a customer on a plan with `discount_bp`: the discount applies to both
/// shares alike, so the platform's share is its own price less the same discount and the
/// margin never goes below zero.
pub fn split(platform_list: i64, tenant_list: i64, discount_bp: u32) -> Split {
    let price = plan_price(tenant_list, discount_bp);
    let platform = plan_price(platform_list, discount_bp).min(price);
    Split {
        price,
        margin: price - platform,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["acme", "acme-sms", "a1b", "x2-y3"] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in ["ac", "Acme", "1acme", "acme-", "ac_me", "", &"a".repeat(41)] {
            assert!(!is_slug(bad), "{bad}");
        }
        assert_eq!(parse_name("name", "tenants/default").unwrap(), "default");
        assert!(parse_name("name", "tenant/acme").is_err());
        assert!(parse_name("name", "tenants/acme/x").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            normalize_host("SMS.Acme.com:443").as_deref(),
            Some("sms.acme.com")
        );
        assert_eq!(
            normalize_host("acme.namaskah.app.").as_deref(),
            Some("acme.namaskah.app")
        );
        for bad in [
            "localhost",
            "127.0.0.1:50051",
            "[::1]:80",
            "a..b",
            "-a.com",
            "a b.com",
            "x.com:80x",
            "",
        ] {
            assert_eq!(normalize_host(bad), None, "{bad}");
        }
        let mut v = Violations::default();
        let hosts = check_hosts(
            "tenant.hosts",
            &[
                "A.example.com".into(),
                "a.example.com".into(),
                "b.example.com:8080".into(),
            ],
            &mut v,
        );
        assert_eq!(hosts, vec!["a.example.com"]);
        assert!(v.into_result().is_err());
    }

    fn good() -> Branding {
        Branding {
            display_name: "Acme SMS".into(),
            logo_uri: "https://acme.example/logo.png".into(),
            favicon_uri: String::new(),
            primary_color: "#112233".into(),
            accent_color: "#abcdef".into(),
            support_email: "help@acme.example".into(),
            mail_sender_name: "Acme SMS".into(),
            website_uri: "https://acme.example".into(),
        }
    }

    #[test]
    fn only_the_named_branding_fields_are_checked() {
        // The platform's look on a server reached over http://: its links are refused as a
        // tenant's own, yet an update of its colour alone passes.
        let inherited = Branding::platform("http://localhost:8080");
        let mut v = Violations::default();
        check_branding("b", &inherited, &mut v);
        assert!(v.into_result().is_err());
        let mut v = Violations::default();
        check_branding_fields("b", &inherited, &["primary_color", "display_name"], &mut v);
        assert!(v.into_result().is_ok());
        let mut v = Violations::default();
        check_branding_fields("b", &inherited, &["logo_uri"], &mut v);
        assert!(v.into_result().is_err());
    }

    #[test]
    fn branding() {
        let mut v = Violations::default();
        check_branding("b", &good(), &mut v);
        assert!(v.into_result().is_ok());
        let platform = Branding::platform("https://namaskah.app/");
        let mut v = Violations::default();
        check_branding("b", &platform, &mut v);
        assert!(v.into_result().is_ok());

        let cases: Vec<(&str, Branding)> = vec![
            (
                "b.display_name",
                Branding {
                    display_name: "<script>alert(1)</script>".into(),
                    ..good()
                },
            ),
            (
                "b.display_name",
                Branding {
                    display_name: "x".repeat(65),
                    ..good()
                },
            ),
            (
                "b.logo_uri",
                Branding {
                    logo_uri: "javascript:alert(1)".into(),
                    ..good()
                },
            ),
            (
                "b.logo_uri",
                Branding {
                    logo_uri: "http://acme.example/logo.png".into(),
                    ..good()
                },
            ),
            (
                "b.logo_uri",
                Branding {
                    logo_uri: format!("https://a.example/{}", "x".repeat(2048)),
                    ..good()
                },
            ),
            (
                "b.logo_uri",
                Branding {
                    logo_uri: "https://a.example/\"onload=x".into(),
                    ..good()
                },
            ),
            (
                "b.primary_color",
                Branding {
                    primary_color: "red".into(),
                    ..good()
                },
            ),
            (
                "b.accent_color",
                Branding {
                    accent_color: "#12345g".into(),
                    ..good()
                },
            ),
            (
                "b.support_email",
                Branding {
                    support_email: "nobody".into(),
                    ..good()
                },
            ),
            (
                "b.mail_sender_name",
                Branding {
                    mail_sender_name: "Acme\r\nBcc: x@y.z".into(),
                    ..good()
                },
            ),
            (
                "b.website_uri",
                Branding {
                    website_uri: "ftp://acme.example".into(),
                    ..good()
                },
            ),
        ];
        for (field, branding) in cases {
            let mut v = Violations::default();
            check_branding("b", &branding, &mut v);
            match v.into_result() {
                Err(ApiError::InvalidArgument(violations)) => assert!(
                    violations.iter().any(|f| f.field == field),
                    "{field}: {violations:?}"
                ),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn prices_and_split() {
        // 1.00 at a 25 % markup, a fixed price, and a fixed price under the cost.
        assert_eq!(tenant_list_price(100, 2_500, None), 125);
        assert_eq!(tenant_list_price(100, 2_500, Some(140)), 140);
        assert_eq!(tenant_list_price(100, 2_500, Some(90)), 100);
        assert_eq!(price_limit(100, 30_000), 400);
        assert_eq!(
            split(100, 125, 0),
            Split {
                price: 125,
                margin: 25
            }
        );
        // A pro customer (20 % off) pays 100 of 125: 80 for the platform, 20 for the tenant.
        assert_eq!(
            split(100, 125, 2_000),
            Split {
                price: 100,
                margin: 20
            }
        );
        // No markup: no margin, whatever the discount.
        assert_eq!(
            split(333, 333, 3_500),
            Split {
                price: 216,
                margin: 0
            }
        );
        assert!(check_markup("m", -1, 30_000).is_err());
        assert!(check_markup("m", 30_001, 30_000).is_err());
        assert_eq!(check_markup("m", 30_000, 30_000).unwrap(), 30_000);
    }
}
