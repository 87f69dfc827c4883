//! Configuration: read once from the environment (or any map, for tests) into a typed,
//! validated struct. A bad value stops start-up with a message naming the variable.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::RngCore;

/// A configuration value that could not be used, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration variable {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn bad(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// Where configuration values come from. The process environment in production; a map in
/// tests, so that tests never depend on (or change) the environment of the test runner.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Environment;

impl Source for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// TextVerified API v2 credentials.
#[derive(Clone, Debug)]
pub struct TextVerifiedConfig {
    pub api_key: String,
    pub username: String,
    pub base_url: url::Url,
    /// The webhook signing secret (`whsec_…`); unset: TextVerified webhooks are refused
    /// and codes arrive by polling only.
    pub webhook_secret: Option<String>,
}

/// 5sim credentials.
#[derive(Clone, Debug)]
pub struct FiveSimConfig {
    pub api_key: String,
    pub base_url: url::Url,
}

/// Paystack credentials.
#[derive(Clone, Debug)]
pub struct PaystackConfig {
    pub secret_key: String,
    pub base_url: url::Url,
}

/// Sentry settings.
#[derive(Clone, Debug)]
pub struct SentryConfig {
    pub dsn: Option<String>,
    pub environment: String,
    pub traces_sample_rate: f32,
    /// `SENTRY_TRACES_PER_SECOND`: at most this many traces a second from one instance
    /// (a sampled call beyond it is not traced); at least 1.
    pub traces_per_second: u32,
}

/// Where mail goes.
#[derive(Clone, Debug)]
pub enum MailConfig {
    /// Append one JSON object a line to this file.
    Sink(std::path::PathBuf),
    /// Send through this SMTP server (`smtp://`, `smtps://`, with optional credentials).
    Smtp(url::Url),
}

/// What the rate limiter does when Redis cannot be reached
/// (`NAMASKAH_RATE_LIMIT_FALLBACK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitFallback {
    /// Count in this instance's memory instead (each instance then allows the full limit).
    Local,
    /// Let every call through.
    Open,
    /// Refuse calls with `UNAVAILABLE` until Redis is back.
    Closed,
}

/// Rate limits.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// `NAMASKAH_RATE_LIMITS` (default on); off only for measurements.
    pub enabled: bool,
    pub fallback: LimitFallback,
    /// Calls per minute per client address to the RPCs that guess or spend secrets or mail
    /// (Register, Login, password reset, mail resend, VerifyEmail, RefreshToken)
    /// (`NAMASKAH_SENSITIVE_RPM`, default 20).
    pub sensitive_per_minute: u32,
    /// Calls per minute per client address to the other RPCs made without credentials
    /// (`NAMASKAH_ANONYMOUS_RPM`, default 300).
    pub anonymous_per_minute: u32,
    /// Peers whose `x-forwarded-for` names the client (`NAMASKAH_TRUSTED_PROXIES`, default
    /// loopback: the in-process edge).
    pub trusted_proxies: Vec<IpAddr>,
}

/// The whole configuration of `namaskah-server`.
#[derive(Clone, Debug)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    /// `None` when the in-process edge is off.
    pub edge_addr: Option<SocketAddr>,
    /// Browser origins the in-process edge allows across origins (`NAMASKAH_CORS_ORIGINS`;
    /// empty: no CORS).
    pub cors_origins: Vec<http::HeaderValue>,
    /// `None` when the metrics listener is off.
    pub metrics_addr: Option<SocketAddr>,
    pub database_url: String,
    pub database_max_connections: u32,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (lets several deployments or tests share one Redis).
    pub redis_prefix: String,
    pub jwt_secret: Vec<u8>,
    /// True when the JWT secret was generated at start-up (sandbox mode only).
    pub jwt_secret_generated: bool,
    pub sandbox: bool,
    /// `None` means the sandbox provider only delivers codes sent with `InjectSms`.
    pub sandbox_sms_delay: Option<Duration>,
    pub verification_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub shutdown_timeout: Duration,
    /// Base URL of the web app; mailed links point here.
    pub public_url: url::Url,
    /// The highest markup a white-label tenant may set, in basis points
    /// (`NAMASKAH_TENANT_MAX_MARKUP_BP`, default 30000: +300 %).
    pub tenant_max_markup_bp: u32,
    /// The platform's own host names, which no tenant may claim: the public URL's host and
    /// `NAMASKAH_PLATFORM_HOSTS` (comma-separated).
    pub platform_hosts: Vec<String>,
    pub mail: MailConfig,
    pub mail_from: String,
    pub textverified: Option<TextVerifiedConfig>,
    pub fivesim: Option<FiveSimConfig>,
    pub paystack: Option<PaystackConfig>,
    /// The gateway's currency and its rate against the wallet's (`NAMASKAH_GATEWAY_CURRENCY`,
    /// `NAMASKAH_GATEWAY_RATE`).
    pub gateway_rate: crate::payments::domain::Rate,
    /// How long a call to the payment gateway may take.
    pub gateway_timeout: Duration,
    /// Timeout of one call to a number provider (`NAMASKAH_PROVIDER_TIMEOUT`, default 10s).
    pub provider_timeout: Duration,
    /// How often the verification jobs (polling, expiry, provider cleanup) run
    /// (`NAMASKAH_JOB_INTERVAL`, default 1s).
    pub job_interval: Duration,
    /// How often the feed tells each open watch stream to read storage for its unfinished
    /// verifications, so an event whose live publication was lost (an instance died between
    /// its commit and its publish) still reaches the watcher (`NAMASKAH_WATCH_RECHECK`,
    /// default 15 s).
    pub watch_recheck: Duration,
    pub sentry: SentryConfig,
    /// The plans' terms (`NAMASKAH_PLANS` overrides the defaults).
    pub plans: crate::billing::plans::PlanBook,
    pub rate_limits: RateLimitConfig,
    /// How often API-call counters are written to the database (`NAMASKAH_USAGE_FLUSH`,
    /// default 5s); a crash loses at most this much metering.
    pub usage_flush: Duration,
    /// Calls slower than this are logged at warn and counted in `slow_requests_total`
    /// (`NAMASKAH_SLOW_CALL_THRESHOLD`, default 1s).
    pub slow_call_threshold: Duration,
    /// TLS for the gRPC listener and the in-process edge (`NAMASKAH_TLS_CERT` and
    /// `NAMASKAH_TLS_KEY`, PEM files read and checked at start-up); `None`: plain TCP.
    pub tls: Option<namaskah_edge::tls::TlsIdentity>,
}

/// Parses durations written like `500ms`, `5s`, `15m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (write it like 500ms, 5s, 15m, 2h)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit `{other}` (use ms, s, m, h or d)")),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too large"))
}

struct Reader<'a> {
    source: &'a dyn Source,
}

impl Reader<'_> {
    /// The value, or `None` when unset or blank.
    fn get(&self, name: &str) -> Option<String> {
        self.source
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|_| {
            bad(
                name,
                format!("`{value}` is not an address like 0.0.0.0:50051"),
            )
        })
    }

    fn optional_addr(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        match self.get(name) {
            Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
            _ => self.addr(name, default).map(Some),
        }
    }

    fn duration(&self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        let duration = parse_duration(&value).map_err(|problem| bad(name, problem))?;
        if duration.is_zero() {
            return Err(bad(name, "must be longer than zero"));
        }
        Ok(duration)
    }

    fn bool(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                "1" | "true" | "on" | "yes" => Ok(Some(true)),
                "0" | "false" | "off" | "no" => Ok(Some(false)),
                _ => Err(bad(name, format!("`{v}` is not on/off (or true/false)"))),
            },
        }
    }

    fn url(&self, name: &'static str, default: &str) -> Result<url::Url, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        let url = url::Url::parse(&value)
            .map_err(|e| bad(name, format!("`{value}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(name, "must be an http:// or https:// URL"));
        }
        Ok(url)
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Environment)
    }

    /// Reads any source of variables.
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader { source };

        let database_url = r
            .get("DATABASE_URL")
            .unwrap_or_else(|| "sqlite://namaskah.db?mode=rwc".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(bad(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let public_url = r.url("NAMASKAH_PUBLIC_URL", "http://localhost:8080")?;
        let tenant_max_markup_bp = match r.get("NAMASKAH_TENANT_MAX_MARKUP_BP") {
            None => 30_000,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|bp| *bp <= 100_000)
                .ok_or_else(|| {
                    bad(
                        "NAMASKAH_TENANT_MAX_MARKUP_BP",
                        format!("`{v}` is not a number of basis points from 0 to 100000"),
                    )
                })?,
        };
        let mut platform_hosts: Vec<String> = public_url
            .host_str()
            .and_then(crate::tenant::domain::normalize_host)
            .into_iter()
            .collect();
        for raw in r
            .get("NAMASKAH_PLATFORM_HOSTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            let host = crate::tenant::domain::normalize_host(raw).ok_or_else(|| {
                bad(
                    "NAMASKAH_PLATFORM_HOSTS",
                    format!("`{raw}` is not a host name like namaskah.app"),
                )
            })?;
            if !platform_hosts.contains(&host) {
                platform_hosts.push(host);
            }
        }
        let database_max_connections = match r.get("NAMASKAH_DATABASE_MAX_CONNECTIONS") {
            None => 20,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    bad(
                        "NAMASKAH_DATABASE_MAX_CONNECTIONS",
                        "must be a whole number from 1 to 1000",
                    )
                })?,
        };

        let redis_url = r.get("REDIS_URL");
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(bad("REDIS_URL", "must start with redis:// or rediss://"));
        }
        let redis_prefix = r
            .get("NAMASKAH_REDIS_PREFIX")
            .unwrap_or_else(|| "namaskah:".to_owned());

        let textverified = match (
            r.get("TEXTVERIFIED_API_KEY"),
            r.get("TEXTVERIFIED_USERNAME"),
        ) {
            (None, None) => None,
            (Some(api_key), Some(username)) => Some(TextVerifiedConfig {
                api_key,
                username,
                base_url: r.url("TEXTVERIFIED_BASE_URL", "https://www.textverified.com")?,
                webhook_secret: r.get("TEXTVERIFIED_WEBHOOK_SECRET"),
            }),
            (Some(_), None) => {
                return Err(bad(
                    "TEXTVERIFIED_USERNAME",
                    "must be set together with TEXTVERIFIED_API_KEY",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "TEXTVERIFIED_API_KEY",
                    "must be set together with TEXTVERIFIED_USERNAME",
                ));
            }
        };
        let fivesim = match r.get("FIVESIM_API_KEY") {
            None => None,
            Some(api_key) => Some(FiveSimConfig {
                api_key,
                base_url: r.url("FIVESIM_BASE_URL", "https://5sim.net")?,
            }),
        };
        let paystack = match r.get("PAYSTACK_SECRET_KEY") {
            None => None,
            Some(secret_key) => Some(PaystackConfig {
                secret_key,
                base_url: r.url("PAYSTACK_BASE_URL", "https://api.paystack.co")?,
            }),
        };

        let gateway_currency = r
            .get("NAMASKAH_GATEWAY_CURRENCY")
            .unwrap_or_else(|| "NGN".to_owned());
        let gateway_rate = crate::payments::domain::Rate::parse(
            &gateway_currency,
            &r.get("NAMASKAH_GATEWAY_RATE")
                .unwrap_or_else(|| "1500".to_owned()),
        )
        .map_err(|problem| {
            let variable = if problem.contains("currency code") {
                "NAMASKAH_GATEWAY_CURRENCY"
            } else {
                "NAMASKAH_GATEWAY_RATE"
            };
            bad(variable, problem)
        })?;

        let real_provider = textverified.is_some() || fivesim.is_some();
        let sandbox = r.bool("NAMASKAH_SANDBOX")?.unwrap_or(!real_provider);

        let (jwt_secret, jwt_secret_generated) = match r.get("NAMASKAH_JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                return Err(bad("NAMASKAH_JWT_SECRET", "must be at least 32 characters"));
            }
            Some(secret) => (secret.into_bytes(), false),
            None if sandbox => {
                let mut secret = vec![0u8; 32];
                rand::rng().fill_bytes(&mut secret);
                (secret, true)
            }
            None => {
                return Err(bad(
                    "NAMASKAH_JWT_SECRET",
                    "is required when the sandbox is off (NAMASKAH_SANDBOX=off or a real provider configured)",
                ));
            }
        };

        let sandbox_sms_delay = match r.get("NAMASKAH_SANDBOX_SMS_DELAY") {
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            _ => Some(r.duration("NAMASKAH_SANDBOX_SMS_DELAY", "5s")?),
        };

        let mail = match r.get("SMTP_URL") {
            Some(value) => {
                let url = url::Url::parse(&value)
                    .map_err(|e| bad("SMTP_URL", format!("`{value}` is not a URL: {e}")))?;
                if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none() {
                    return Err(bad(
                        "SMTP_URL",
                        "must look like smtp://user:pass@host:587 or smtps://host:465",
                    ));
                }
                MailConfig::Smtp(url)
            }
            None => MailConfig::Sink(
                r.get("NAMASKAH_MAIL_SINK")
                    .unwrap_or_else(|| "mail.jsonl".to_owned())
                    .into(),
            ),
        };

        let traces_sample_rate = match r.get("SENTRY_TRACES_SAMPLE_RATE") {
            None => 0.1,
            Some(v) => v
                .parse::<f32>()
                .ok()
                .filter(|rate| (0.0..=1.0).contains(rate))
                .ok_or_else(|| bad("SENTRY_TRACES_SAMPLE_RATE", "must be a number from 0 to 1"))?,
        };

        let traces_per_second = match r.get("SENTRY_TRACES_PER_SECOND") {
            None => 10,
            Some(v) => v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                bad(
                    "SENTRY_TRACES_PER_SECOND",
                    "must be a whole number of at least 1",
                )
            })?,
        };

        let sentry_dsn = r.get("SENTRY_DSN");
        if let Some(dsn) = &sentry_dsn
            && let Err(error) = dsn.parse::<sentry::types::Dsn>()
        {
            return Err(bad(
                "SENTRY_DSN",
                format!("not a Sentry DSN like https://<key>@<host>/<project>: {error}"),
            ));
        }

        let access_token_ttl = r.duration("NAMASKAH_ACCESS_TOKEN_TTL", "15m")?;
        let refresh_token_ttl = r.duration("NAMASKAH_REFRESH_TOKEN_TTL", "30d")?;
        if refresh_token_ttl <= access_token_ttl {
            return Err(bad(
                "NAMASKAH_REFRESH_TOKEN_TTL",
                "must be longer than NAMASKAH_ACCESS_TOKEN_TTL",
            ));
        }

        let plans = match r.get("NAMASKAH_PLANS") {
            None => crate::billing::plans::PlanBook::default(),
            Some(value) => {
                let json = if value.starts_with('[') || value.starts_with('{') {
                    value
                } else {
                    std::fs::read_to_string(&value).map_err(|e| {
                        bad(
                            "NAMASKAH_PLANS",
                            format!("cannot read the file `{value}`: {e}"),
                        )
                    })?
                };
                crate::billing::plans::PlanBook::with_overrides(&json)
                    .map_err(|problem| bad("NAMASKAH_PLANS", problem))?
            }
        };
        let per_minute = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match r.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=100_000_000).contains(n))
                    .ok_or_else(|| bad(name, "must be a whole number from 1 to 100000000")),
            }
        };
        let fallback = match r
            .get("NAMASKAH_RATE_LIMIT_FALLBACK")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("local") => LimitFallback::Local,
            Some("open") => LimitFallback::Open,
            Some("closed") => LimitFallback::Closed,
            Some(other) => {
                return Err(bad(
                    "NAMASKAH_RATE_LIMIT_FALLBACK",
                    format!("`{other}` is not local, open or closed"),
                ));
            }
        };
        let trusted_proxies = match r.get("NAMASKAH_TRUSTED_PROXIES") {
            None => vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            Some(v) if v.eq_ignore_ascii_case("none") => Vec::new(),
            Some(v) => v
                .split(',')
                .map(|ip| ip.trim().parse::<IpAddr>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    bad(
                        "NAMASKAH_TRUSTED_PROXIES",
                        "must be IP addresses separated by commas (or none)",
                    )
                })?,
        };
        let tls = namaskah_edge::tls::tls_from_lookup(|name| source.get(name)).map_err(|e| {
            if e.value.is_empty() {
                bad(e.variable, e.reason)
            } else {
                bad(e.variable, format!("`{}` {}", e.value, e.reason))
            }
        })?;
        let rate_limits = RateLimitConfig {
            enabled: r.bool("NAMASKAH_RATE_LIMITS")?.unwrap_or(true),
            fallback,
            sensitive_per_minute: per_minute("NAMASKAH_SENSITIVE_RPM", 20)?,
            anonymous_per_minute: per_minute("NAMASKAH_ANONYMOUS_RPM", 300)?,
            trusted_proxies,
        };

        Ok(Config {
            grpc_addr: r.addr("NAMASKAH_GRPC_ADDR", "0.0.0.0:50051")?,
            edge_addr: r.optional_addr("NAMASKAH_EDGE_ADDR", "0.0.0.0:8080")?,
            cors_origins: namaskah_edge::parse_cors_origins(
                &r.get(namaskah_edge::ENV_CORS_ORIGINS).unwrap_or_default(),
            )
            .map_err(|e| bad(e.variable, e.reason))?,
            metrics_addr: r.optional_addr("NAMASKAH_METRICS_ADDR", "0.0.0.0:9090")?,
            database_url,
            database_max_connections,
            redis_url,
            redis_prefix,
            jwt_secret,
            jwt_secret_generated,
            sandbox,
            sandbox_sms_delay,
            verification_ttl: r.duration("NAMASKAH_VERIFICATION_TTL", "15m")?,
            access_token_ttl,
            refresh_token_ttl,
            shutdown_timeout: r.duration("NAMASKAH_SHUTDOWN_TIMEOUT", "8s")?,
            tenant_max_markup_bp,
            platform_hosts,
            public_url,
            mail,
            mail_from: r
                .get("NAMASKAH_MAIL_FROM")
                .unwrap_or_else(|| "Namaskah <no-reply@namaskah.local>".to_owned()),
            textverified,
            fivesim,
            paystack,
            gateway_rate,
            gateway_timeout: r.duration("NAMASKAH_GATEWAY_TIMEOUT", "10s")?,
            provider_timeout: r.duration("NAMASKAH_PROVIDER_TIMEOUT", "10s")?,
            job_interval: r.duration("NAMASKAH_JOB_INTERVAL", "1s")?,
            watch_recheck: r.duration("NAMASKAH_WATCH_RECHECK", "15s")?,
            sentry: SentryConfig {
                dsn: sentry_dsn,
                environment: r
                    .get("SENTRY_ENVIRONMENT")
                    .unwrap_or_else(|| "development".to_owned()),
                traces_sample_rate,
                traces_per_second,
            },
            plans,
            rate_limits,
            usage_flush: r.duration("NAMASKAH_USAGE_FLUSH", "5s")?,
            slow_call_threshold: r.duration("NAMASKAH_SLOW_CALL_THRESHOLD", "1s")?,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_source(&map)
    }

    #[test]
    fn defaults_need_nothing() {
        let c = config(&[]).expect("embedded defaults");
        assert!(c.sandbox);
        assert!(c.jwt_secret_generated);
        assert_eq!(c.grpc_addr.port(), 50051);
        assert_eq!(c.edge_addr.map(|a| a.port()), Some(8080));
        assert_eq!(c.verification_ttl, Duration::from_secs(900));
        assert_eq!(c.sandbox_sms_delay, Some(Duration::from_secs(5)));
        assert!(matches!(c.mail, MailConfig::Sink(_)));
        assert!((c.sentry.traces_sample_rate - 0.1).abs() < f32::EPSILON);
        assert_eq!(c.sentry.traces_per_second, 10);
        assert_eq!(c.slow_call_threshold, Duration::from_secs(1));
        assert_eq!(c.metrics_addr.map(|a| a.port()), Some(9090));
    }

    #[test]
    fn observability_settings() {
        let c = config(&[
            ("NAMASKAH_SLOW_CALL_THRESHOLD", "250ms"),
            ("NAMASKAH_METRICS_ADDR", "off"),
            ("SENTRY_DSN", "https://public@sentry.example.com/42"),
            (
                "NAMASKAH_CORS_ORIGINS",
                "https://app.example.com, http://localhost:5173",
            ),
        ])
        .expect("valid");
        assert_eq!(c.cors_origins.len(), 2);
        assert_eq!(c.slow_call_threshold, Duration::from_millis(250));
        assert!(c.metrics_addr.is_none());
        assert!(c.sentry.dsn.is_some());
        for (name, value) in [
            ("NAMASKAH_SLOW_CALL_THRESHOLD", "0s"),
            ("NAMASKAH_SLOW_CALL_THRESHOLD", "fast"),
            ("SENTRY_DSN", "not a dsn"),
            ("NAMASKAH_METRICS_ADDR", "9090"),
            // Credentials are allowed, so a wildcard would let any site in.
            ("NAMASKAH_CORS_ORIGINS", "*"),
            ("NAMASKAH_CORS_ORIGINS", "https://app.example.com/path"),
        ] {
            let error = config(&[(name, value)]).expect_err(value);
            assert_eq!(error.variable, name);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "5", "s", "5x", "-5s", "1.5s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (pairs, variable) in [
            (vec![("NAMASKAH_GRPC_ADDR", "nope")], "NAMASKAH_GRPC_ADDR"),
            (
                vec![("NAMASKAH_VERIFICATION_TTL", "15 minutes")],
                "NAMASKAH_VERIFICATION_TTL",
            ),
            (
                vec![("NAMASKAH_SANDBOX_SMS_DELAY", "0s")],
                "NAMASKAH_SANDBOX_SMS_DELAY",
            ),
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (vec![("REDIS_URL", "http://x")], "REDIS_URL"),
            (vec![("NAMASKAH_SANDBOX", "maybe")], "NAMASKAH_SANDBOX"),
            (vec![("NAMASKAH_SANDBOX", "off")], "NAMASKAH_JWT_SECRET"),
            (
                vec![("NAMASKAH_JWT_SECRET", "short")],
                "NAMASKAH_JWT_SECRET",
            ),
            (vec![("SMTP_URL", "mail.example.com")], "SMTP_URL"),
            (
                vec![("SENTRY_TRACES_SAMPLE_RATE", "2")],
                "SENTRY_TRACES_SAMPLE_RATE",
            ),
            (
                vec![("SENTRY_TRACES_PER_SECOND", "0")],
                "SENTRY_TRACES_PER_SECOND",
            ),
            (vec![("TEXTVERIFIED_API_KEY", "k")], "TEXTVERIFIED_USERNAME"),
            (
                vec![("NAMASKAH_PLANS", "[{\"plan\": \"gold\"}]")],
                "NAMASKAH_PLANS",
            ),
            (vec![("NAMASKAH_PLANS", "/no/such/file")], "NAMASKAH_PLANS"),
            (
                vec![("NAMASKAH_RATE_LIMIT_FALLBACK", "maybe")],
                "NAMASKAH_RATE_LIMIT_FALLBACK",
            ),
            (
                vec![("NAMASKAH_SENSITIVE_RPM", "0")],
                "NAMASKAH_SENSITIVE_RPM",
            ),
            (
                vec![("NAMASKAH_TRUSTED_PROXIES", "10.0.0.1, nope")],
                "NAMASKAH_TRUSTED_PROXIES",
            ),
            (vec![("NAMASKAH_USAGE_FLUSH", "0s")], "NAMASKAH_USAGE_FLUSH"),
            (
                vec![("FIVESIM_API_KEY", "k"), ("FIVESIM_BASE_URL", "ftp://x")],
                "FIVESIM_BASE_URL",
            ),
        ] {
            let err = config(&pairs).expect_err("must be refused");
            assert_eq!(err.variable, variable, "{pairs:?}: {err}");
            assert!(err.to_string().contains(variable));
        }
    }

    #[test]
    fn real_provider_turns_sandbox_off_and_needs_a_secret() {
        let err = config(&[("FIVESIM_API_KEY", "k")]).unwrap_err();
        assert_eq!(err.variable, "NAMASKAH_JWT_SECRET");
        let c = config(&[
            ("FIVESIM_API_KEY", "k"),
            ("NAMASKAH_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        assert!(!c.sandbox);
        assert!(!c.jwt_secret_generated);
        let c = config(&[
            ("NAMASKAH_EDGE_ADDR", "off"),
            ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ])
        .unwrap();
        assert_eq!(c.edge_addr, None);
        assert_eq!(c.sandbox_sms_delay, None);
    }
}
