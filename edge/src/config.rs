//! The `namaskah-edge` binary's configuration, read once from the environment.

use std::net::SocketAddr;

use http::Uri;

use crate::{DEFAULT_MAX_BODY_BYTES, EdgeOptions};

/// Where the edge listens.
pub const ENV_EDGE_ADDR: &str = "NAMASKAH_EDGE_ADDR";
/// The gRPC server the edge forwards to.
pub const ENV_UPSTREAM: &str = "NAMASKAH_UPSTREAM";
/// The request body limit, in bytes.
pub const ENV_MAX_BODY: &str = "NAMASKAH_EDGE_MAX_BODY";
/// The browser origins allowed across origins (CORS), comma-separated.
pub const ENV_CORS_ORIGINS: &str = "NAMASKAH_CORS_ORIGINS";

/// Default for [`ENV_EDGE_ADDR`].
pub const DEFAULT_EDGE_ADDR: &str = "0.0.0.0:8080";
/// Default for [`ENV_UPSTREAM`].
pub const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:50051";

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Everything `namaskah-edge` needs to start, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// [`ENV_EDGE_ADDR`].
    pub addr: SocketAddr,
    /// [`ENV_UPSTREAM`]: an `http://host:port` URL.
    pub upstream: Uri,
    /// The edge's own options ([`ENV_MAX_BODY`] and the fixed defaults).
    pub options: EdgeOptions,
    /// TLS from [`crate::tls::ENV_TLS_CERT`] and [`crate::tls::ENV_TLS_KEY`]; `None`: plain
    /// HTTP.
    pub tls: Option<crate::tls::TlsIdentity>,
}

impl Settings {
    /// Reads the process environment. A variable that is unset or empty takes its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        // Lossy: a value that is not UTF-8 then fails to parse, with the variable named,
        // rather than being mistaken for "unset".
        Self::from_lookup(|name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// Reads the variables through `lookup`, so tests can hand in a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let addr = match get(ENV_EDGE_ADDR) {
            None => parse_addr(DEFAULT_EDGE_ADDR)?,
            Some(value) => parse_addr(&value)?,
        };
        let upstream =
            parse_upstream(&get(ENV_UPSTREAM).unwrap_or_else(|| DEFAULT_UPSTREAM.into()))?;
        let max_body_bytes = match get(ENV_MAX_BODY) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(value) => parse_max_body(&value)?,
        };

        let cors_origins = match get(ENV_CORS_ORIGINS) {
            None => Vec::new(),
            Some(value) => parse_cors_origins(&value)?,
        };

        let tls = crate::tls::tls_from_lookup(&lookup)?;

        Ok(Self {
            addr,
            upstream,
            tls,
            options: EdgeOptions {
                max_body_bytes,
                cors_origins,
                ..EdgeOptions::default()
            },
        })
    }
}

fn parse_addr(value: &str) -> Result<SocketAddr, ConfigError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Err(ConfigError::new(
            ENV_EDGE_ADDR,
            value,
            "`off` only disables the edge inside namaskah-server; namaskah-edge needs an address",
        ));
    }
    value.parse().map_err(|_| {
        ConfigError::new(
            ENV_EDGE_ADDR,
            value,
            "expected a socket address such as 0.0.0.0:8080 or [::]:8080",
        )
    })
}

fn parse_upstream(value: &str) -> Result<Uri, ConfigError> {
    let value = value.trim();
    let uri: Uri = value.parse().map_err(|_| {
        ConfigError::new(
            ENV_UPSTREAM,
            value,
            "expected a URL such as http://127.0.0.1:50051",
        )
    })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(ConfigError::new(
                ENV_UPSTREAM,
                value,
                "https is not supported: this build has no TLS client; use http:// on a private network",
            ));
        }
        _ => {
            return Err(ConfigError::new(
                ENV_UPSTREAM,
                value,
                "expected an http:// URL such as http://127.0.0.1:50051",
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(ConfigError::new(
            ENV_UPSTREAM,
            value,
            "the URL has no host (expected e.g. http://127.0.0.1:50051)",
        ));
    }
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        return Err(ConfigError::new(
            ENV_UPSTREAM,
            value,
            "the URL must not have a path: gRPC paths are /package.Service/Method at the root",
        ));
    }
    Ok(uri)
}

/// Reads a comma-separated list of browser origins (`https://app.example.com,
/// http://localhost:5173`) for [`EdgeOptions::cors_origins`]; `none` or an empty value is
/// the empty list. Each must be `scheme://host[:port]` with nothing after it. `*` is
/// refused: the edge allows credentials (`Authorization`), and a wildcard origin with
/// credentials would let any site call the API as its visitors.
pub fn parse_cors_origins(value: &str) -> Result<Vec<http::HeaderValue>, ConfigError> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut origins = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let fail = |reason: &str| {
            ConfigError::new(ENV_CORS_ORIGINS, value, format!("{origin:?}: {reason}"))
        };
        if origin.contains('*') {
            return Err(fail(
                "wildcards are not allowed (credentials are): list each origin, such as https://app.example.com",
            ));
        }
        let trimmed = origin.strip_suffix('/').unwrap_or(origin);
        let uri: Uri = trimmed
            .parse()
            .map_err(|_| fail("expected an origin such as https://app.example.com"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(fail("expected an origin such as https://app.example.com"));
        }
        if uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str() != "/" && !pq.as_str().is_empty())
        {
            return Err(fail("an origin has no path or query"));
        }
        let origin = http::HeaderValue::from_str(&trimmed.to_ascii_lowercase())
            .map_err(|_| fail("not a valid header value"))?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

fn parse_max_body(value: &str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(0) => Err(ConfigError::new(
            ENV_MAX_BODY,
            value,
            "must be at least 1 byte",
        )),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(ConfigError::new(
            ENV_MAX_BODY,
            value,
            "expected a whole number of bytes, such as 1048576",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.upstream, Uri::from_static("http://127.0.0.1:50051"));
        assert_eq!(s.options.max_body_bytes, 1_048_576);
    }

    #[test]
    fn empty_values_take_the_default() {
        let s = settings(&[(ENV_EDGE_ADDR, ""), (ENV_MAX_BODY, " ")]).unwrap();
        assert_eq!(s.addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.options.max_body_bytes, 1_048_576);
    }

    #[test]
    fn explicit_values_are_used() {
        let s = settings(&[
            (ENV_EDGE_ADDR, "[::1]:9000"),
            (ENV_UPSTREAM, "http://grpc.internal:50051"),
            (ENV_MAX_BODY, "2048"),
        ])
        .unwrap();
        assert_eq!(s.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(s.upstream, Uri::from_static("http://grpc.internal:50051"));
        assert_eq!(s.options.max_body_bytes, 2048);
    }

    #[test]
    fn cors_origins_are_a_list() {
        assert!(settings(&[]).unwrap().options.cors_origins.is_empty());
        assert!(
            settings(&[(ENV_CORS_ORIGINS, "none")])
                .unwrap()
                .options
                .cors_origins
                .is_empty()
        );
        let s = settings(&[(
            ENV_CORS_ORIGINS,
            "https://App.example.com/, http://localhost:5173,https://app.example.com",
        )])
        .unwrap();
        assert_eq!(
            s.options.cors_origins,
            vec!["https://app.example.com", "http://localhost:5173"]
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            (ENV_EDGE_ADDR, "localhost"),
            (ENV_EDGE_ADDR, "off"),
            (ENV_UPSTREAM, "not a url"),
            (ENV_UPSTREAM, "127.0.0.1:50051"),
            (ENV_UPSTREAM, "https://grpc.example.com"),
            (ENV_UPSTREAM, "http://grpc.internal:50051/api"),
            (ENV_MAX_BODY, "1MiB"),
            (ENV_MAX_BODY, "-1"),
            (ENV_MAX_BODY, "0"),
            (ENV_CORS_ORIGINS, "*"),
            (ENV_CORS_ORIGINS, "https://*.example.com"),
            (ENV_CORS_ORIGINS, "app.example.com"),
            (ENV_CORS_ORIGINS, "https://app.example.com/path"),
            (ENV_CORS_ORIGINS, "ftp://app.example.com"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{value}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }
}
