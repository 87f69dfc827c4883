//! The tower layer that applies the limits to every RPC. It runs after the authentication
//! layer, so the request's [`Principal`] (if any) says who is calling.
//!
//! Buckets:
//! - the RPCs that guess or spend secrets or mail ([`SENSITIVE_METHODS`]): always per client
//!   address, at `sensitive_per_minute`, whether or not credentials came along;
//! - any other call with a principal: per account, at its plan's rate (and the call is
//!   reported to [`AccountPlans::admitted`] when it passes);
//! - any other call without one: per client address, at `anonymous_per_minute`;
//! - health checks, reflection and webhooks: not limited.
//!
//! Every limited response (a success, a handler's error or a refusal; unary or streaming)
//! carries `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` (whole
//! seconds, rounded up); a refusal is `RESOURCE_EXHAUSTED`/`RATE_LIMITED` with `RetryInfo`
//! and `retry-after`, and the handler never runs. (With fallback `Closed` while Redis is
//! unreachable the answer is `UNAVAILABLE`/`RATE_LIMITER_UNAVAILABLE`, without them: there
//! is nothing to count with.)
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};
use uuid::Uuid;

use super::{Decision, Limiter, whole_seconds_up};
use crate::billing::AccountPlans;
use crate::config::RateLimitConfig;
use crate::error::ApiError;
use crate::identity::domain::Principal;
use crate::telemetry::unindexed;

/// Limited per client address at `sensitive_per_minute`, with or without credentials.
pub const SENSITIVE_METHODS: &[&str] = &[
    "/namaskah.v1.AuthService/Register",
    "/namaskah.v1.AuthService/Login",
    "/namaskah.v1.AuthService/RequestPasswordReset",
    "/namaskah.v1.AuthService/ResetPassword",
    "/namaskah.v1.AuthService/ResendVerificationEmail",
    "/namaskah.v1.AuthService/VerifyEmail",
    "/namaskah.v1.AuthService/RefreshToken",
];

/// Never limited: load balancers' health checks, reflection, and webhooks (signed by
/// gateways and providers, which must never be turned away).
const UNLIMITED_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/namaskah.v1.WebhookService/",
];

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Which bucket a call is counted in.
#[derive(Debug, PartialEq, Eq)]
enum Bucket {
    Unlimited,
    Sensitive(String),
    Anonymous(String),
    Account(Uuid),
}

struct Settings {
    limiter: Arc<Limiter>,
    accounts: Arc<dyn AccountPlans>,
    sensitive_per_minute: u32,
    anonymous_per_minute: u32,
    trusted_proxies: Vec<IpAddr>,
}

impl Settings {
    fn bucket<B>(&self, request: &http::Request<B>) -> Bucket {
        let path = request.uri().path();
        if UNLIMITED_SERVICES.iter().any(|s| path.starts_with(s)) {
            return Bucket::Unlimited;
        }
        let address = || {
            let peer = request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
                .map(|a| a.ip());
            client_address(peer, request.headers(), &self.trusted_proxies)
                .map_or_else(|| "unknown".to_owned(), address_bucket)
        };
        if SENSITIVE_METHODS.contains(&path) {
            return Bucket::Sensitive(format!("sens:{}", address()));
        }
        match request.extensions().get::<Principal>() {
            Some(principal) => Bucket::Account(principal.user_id),
            None => Bucket::Anonymous(format!("anon:{}", address())),
        }
    }
}

/// Applies the rate limits (see the module documentation). Place it after `AuthLayer`.
#[derive(Clone)]
pub struct RateLimitLayer {
    /// `None` when limits are off (`NAMASKAH_RATE_LIMITS=off`, for measurements).
    settings: Option<Arc<Settings>>,
}

impl RateLimitLayer {
    pub fn new(
        limiter: Arc<Limiter>,
        accounts: Arc<dyn AccountPlans>,
        config: &RateLimitConfig,
    ) -> Self {
        let settings = config.enabled.then(|| {
            Arc::new(Settings {
                limiter,
                accounts,
                sensitive_per_minute: config.sensitive_per_minute,
                anonymous_per_minute: config.anonymous_per_minute,
                trusted_proxies: config
                    .trusted_proxies
                    .iter()
                    .map(IpAddr::to_canonical)
                    .collect(),
            })
        });
        Self { settings }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            settings: self.settings.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    settings: Option<Arc<Settings>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, RB> Service<http::Request<B>> for RateLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone is the one that was polled ready; keep a fresh clone for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(settings) = self.settings.clone() else {
            return Box::pin(inner.call(request));
        };
        Box::pin(async move {
            // Per account (most calls): the name is written on the stack, not allocated.
            let mut account_name = AccountBucket::EMPTY;
            let owned;
            let (bucket, per_minute, account) = match settings.bucket(&request) {
                Bucket::Unlimited => return inner.call(request).await,
                Bucket::Sensitive(name) => {
                    owned = name;
                    (owned.as_str(), settings.sensitive_per_minute, None)
                }
                Bucket::Anonymous(name) => {
                    owned = name;
                    (owned.as_str(), settings.anonymous_per_minute, None)
                }
                Bucket::Account(user) => (
                    account_name.write(user),
                    settings.accounts.requests_per_minute(user).await,
                    Some(user),
                ),
            };
            let decision = match settings.limiter.check(bucket, per_minute).await {
                Ok(decision) => decision,
                // Only with fallback `Closed` while Redis is unreachable.
                Err(error) => return Ok(error.into_status().into_http()),
            };
            if !decision.allowed {
                tracing::debug!(bucket, path = request.uri().path(), "rate limited");
                crate::telemetry::metrics::rate_limited(match account {
                    Some(user) => settings.accounts.plan_name(user).await,
                    None if bucket.starts_with("sens:") => "sensitive",
                    None => "anonymous",
                });
                let seconds = whole_seconds_up(decision.retry_after).max(1);
                let mut response = ApiError::ResourceExhausted {
                    reason: "RATE_LIMITED",
                    message: format!(
                        "too many requests: {} a minute allowed; retry in {seconds} s",
                        decision.limit
                    ),
                    retry_after: decision.retry_after,
                }
                .into_status()
                .into_http::<RB>();
                let headers = response.headers_mut();
                add_limit_headers(headers, &decision);
                // Rounded up: a client waiting this long is let in.
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
                return Ok(response);
            }
            if let Some(user) = account {
                settings.accounts.admitted(user);
            }
            let mut response = inner.call(request).await?;
            add_limit_headers(response.headers_mut(), &decision);
            Ok(response)
        })
    }
}

/// `acct:{user}` (the user id hyphenated), in a buffer of its own.
struct AccountBucket([u8; 5 + uuid::fmt::Hyphenated::LENGTH]);

impl AccountBucket {
    const EMPTY: Self = Self([0; 5 + uuid::fmt::Hyphenated::LENGTH]);

    fn write(&mut self, user: Uuid) -> &str {
        let (prefix, id) = self.0.split_at_mut(5);
        prefix.copy_from_slice(b"acct:");
        user.hyphenated().encode_lower(id);
        // ASCII throughout.
        std::str::from_utf8(&self.0).unwrap_or("acct:")
    }
}

/// HPACK: the limit and the reset (whole seconds up to a minute: at most 61 values) are
/// few, so they go into the connection's header table and cost a byte or two after their
/// first use; the remaining count changes on every call and would only push useful entries
/// out, so it is sent as a literal that is never indexed.
fn add_limit_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert(LIMIT, HeaderValue::from(decision.limit));
    headers.insert(REMAINING, unindexed(decision.remaining));
    headers.insert(RESET, HeaderValue::from(whole_seconds_up(decision.reset)));
}

/// The address a call comes from: the TCP peer, unless the peer is one of our proxies;
/// then the address that proxy saw, from `x-forwarded-for`.
///
/// The chain is read from the RIGHT: each proxy appends the address it received the call
/// from to whatever the caller sent, so only entries appended by proxies we trust can be
/// believed, and those are the right-most ones. Our edge appends (it keeps what the caller
/// sent and adds the caller's address at the end), so the left-most entry is whatever the
/// caller chose to write: trusting it would let anyone pick a fresh address per request
/// and never meet a per-address limit. So: walk from the right past our own proxies; the
/// first address that is not one of them is the client. An entry that is not an address
/// stops the walk (nothing left of it can be trusted), and the call counts against the
/// last address that was believed.
pub(crate) fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.contains(ip);
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    'chain: for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(value) = value.to_str() else {
            break;
        };
        for entry in value.split(',').rev() {
            let Some(ip) = forwarded_address(entry) else {
                break 'chain;
            };
            client = ip;
            if !is_trusted(&ip) {
                break 'chain;
            }
        }
    }
    Some(client)
}

/// One `x-forwarded-for` entry: an address, possibly with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:443`) or in brackets.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The bucket name of an address. IPv6 callers are limited per /64, the smallest block a
/// site is normally given: anyone with one can use 2^64 addresses.
fn address_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use tonic::Code;
    use tonic_types::StatusExt;

    use super::super::testing::ManualClock;
    use super::super::{Clock, LimitFallback};
    use super::*;
    use crate::identity::domain::Credential;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let proxies = [ip("127.0.0.1"), ip("10.0.0.2")];
        let none = HeaderMap::new();
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            client_address(Some(ip("198.51.100.1")), &xff(&["203.0.113.9"]), &proxies),
            Some(ip("198.51.100.1"))
        );
        // A trusted peer without the header: the peer.
        assert_eq!(
            client_address(Some(ip("127.0.0.1")), &none, &proxies),
            Some(ip("127.0.0.1"))
        );
        // The edge appended the caller's address after what the caller sent.
        assert_eq!(
            client_address(
                Some(ip("127.0.0.1")),
                &xff(&["1.1.1.1, 2.2.2.2, 203.0.113.9"]),
                &proxies
            ),
            Some(ip("203.0.113.9"))
        );
        // Two of our proxies in a row, and the header split over several lines.
        assert_eq!(
            client_address(
                Some(ip("127.0.0.1")),
                &xff(&["6.6.6.6", "203.0.113.9, 10.0.0.2"]),
                &proxies
            ),
            Some(ip("203.0.113.9"))
        );
        // Ports, brackets, spaces and mapped IPv4 are understood.
        assert_eq!(
            client_address(
                Some(ip("::ffff:127.0.0.1")),
                &xff(&[" 203.0.113.9:4711 "]),
                &proxies
            ),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(
                Some(ip("127.0.0.1")),
                &xff(&["[2001:db8::1]:443"]),
                &proxies
            ),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            client_address(Some(ip("127.0.0.1")), &xff(&["[2001:db8::1]"]), &proxies),
            Some(ip("2001:db8::1"))
        );
        // Garbage stops the walk at the last believed address (here our proxy).
        assert_eq!(
            client_address(
                Some(ip("127.0.0.1")),
                &xff(&["203.0.113.9, unknown"]),
                &proxies
            ),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            client_address(Some(ip("127.0.0.1")), &xff(&["203.0.113.9,"]), &proxies),
            Some(ip("127.0.0.1"))
        );
        // Only trusted entries: the left-most of them.
        assert_eq!(
            client_address(
                Some(ip("127.0.0.1")),
                &xff(&["10.0.0.2, 127.0.0.1"]),
                &proxies
            ),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(client_address(None, &none, &proxies), None);
    }

    #[test]
    fn an_account_bucket_is_named_as_before() {
        let user = Uuid::new_v4();
        let mut name = AccountBucket::EMPTY;
        assert_eq!(name.write(user), format!("acct:{user}"));
    }

    #[test]
    fn ipv6_callers_share_their_64() {
        assert_eq!(address_bucket(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(
            address_bucket(ip("2001:db8:1:2:3:4:5:6")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_bucket(ip("2001:db8:1:2:ffff::1")),
            address_bucket(ip("2001:db8:1:2::9"))
        );
    }

    /// Plans for the tests: the pro account gets 500 a minute, everyone else 100.
    struct Plans {
        pro: Uuid,
        admitted: AtomicUsize,
    }

    #[async_trait]
    impl AccountPlans for Plans {
        async fn requests_per_minute(&self, user: Uuid) -> u32 {
            if user == self.pro { 500 } else { 100 }
        }

        async fn plan_name(&self, user: Uuid) -> &'static str {
            if user == self.pro { "pro" } else { "starter" }
        }

        fn admitted(&self, _user: Uuid) {
            self.admitted.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Harness {
        clock: Arc<ManualClock>,
        plans: Arc<Plans>,
        handled: Arc<AtomicUsize>,
        service: RateLimit<
            tower::util::BoxCloneService<http::Request<()>, http::Response<()>, Infallible>,
        >,
    }

    fn harness(enabled: bool) -> Harness {
        let clock = Arc::new(ManualClock::default());
        let limiter = Arc::new(Limiter::with_clock(
            None,
            LimitFallback::Local,
            Arc::clone(&clock) as Arc<dyn Clock>,
        ));
        let plans = Arc::new(Plans {
            pro: Uuid::now_v7(),
            admitted: AtomicUsize::new(0),
        });
        let handled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&handled);
        let inner = tower::util::BoxCloneService::new(tower::service_fn(
            move |_request: http::Request<()>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(http::Response::new(())) }
            },
        ));
        let config = RateLimitConfig {
            enabled,
            fallback: LimitFallback::Local,
            sensitive_per_minute: 20,
            anonymous_per_minute: 300,
            trusted_proxies: vec![ip("127.0.0.1")],
        };
        let layer = RateLimitLayer::new(
            limiter,
            Arc::clone(&plans) as Arc<dyn AccountPlans>,
            &config,
        );
        Harness {
            clock,
            plans,
            handled,
            service: layer.layer(inner),
        }
    }

    fn request(path: &str, peer: &str, principal: Option<Uuid>) -> http::Request<()> {
        let mut request = http::Request::builder().uri(path).body(()).unwrap();
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(ip(peer), 40_000)),
        });
        if let Some(user_id) = principal {
            request.extensions_mut().insert(Principal {
                user_id,
                credential: Credential::ApiKey {
                    key_id: Uuid::now_v7(),
                },
                tenant: None,
            });
        }
        request
    }

    impl Harness {
        async fn call(&mut self, request: http::Request<()>) -> http::Response<()> {
            use tower::ServiceExt;
            self.service
                .ready()
                .await
                .unwrap()
                .call(request)
                .await
                .unwrap()
        }
    }

    fn header(response: &http::Response<()>, name: &str) -> Option<u64> {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().parse().unwrap())
    }

    fn refusal(response: http::Response<()>) -> Option<tonic::Status> {
        tonic::Status::from_header_map(response.headers())
    }

    const GET_ME: &str = "/namaskah.v1.AuthService/GetMe";
    const LOGIN: &str = "/namaskah.v1.AuthService/Login";

    #[tokio::test]
    async fn accounts_get_their_plans_rate_and_are_metered_once_per_admitted_call() {
        let mut h = harness(true);
        let pro = h.plans.pro;
        for i in 1..=500u64 {
            // From different addresses: the account is what counts.
            let response = h
                .call(request(GET_ME, &format!("192.0.2.{}", i % 200), Some(pro)))
                .await;
            assert_eq!(header(&response, "x-ratelimit-limit"), Some(500));
            assert_eq!(header(&response, "x-ratelimit-remaining"), Some(500 - i));
            assert!(refusal(response).is_none());
        }
        let refused = h.call(request(GET_ME, "192.0.2.1", Some(pro))).await;
        assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
        assert_eq!(header(&refused, "x-ratelimit-reset"), Some(60));
        assert_eq!(header(&refused, "retry-after"), Some(1)); // 120 ms, rounded up
        let status = refusal(refused).expect("a refusal");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "RATE_LIMITED"
        );
        assert_eq!(
            status.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(120))
        );
        assert_eq!(h.handled.load(Ordering::SeqCst), 500);
        assert_eq!(h.plans.admitted.load(Ordering::SeqCst), 500);

        // A starter account has its own bucket of 100.
        let starter = Uuid::now_v7();
        let response = h.call(request(GET_ME, "192.0.2.1", Some(starter))).await;
        assert_eq!(header(&response, "x-ratelimit-limit"), Some(100));
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(99));

        // 120 ms later the pro account may call once more.
        h.clock.advance(Duration::from_millis(120));
        let response = h.call(request(GET_ME, "192.0.2.1", Some(pro))).await;
        assert!(refusal(response).is_none());
        assert_eq!(h.plans.admitted.load(Ordering::SeqCst), 502);
    }

    #[tokio::test]
    async fn sensitive_rpcs_count_per_address_even_with_credentials() {
        let mut h = harness(true);
        let user = Uuid::now_v7();
        for i in 0..20 {
            let principal = (i % 2 == 0).then_some(user);
            let response = h.call(request(LOGIN, "198.51.100.7", principal)).await;
            assert_eq!(header(&response, "x-ratelimit-limit"), Some(20));
            assert!(refusal(response).is_none(), "call {}", i + 1);
        }
        let refused = h.call(request(LOGIN, "198.51.100.7", Some(user))).await;
        assert_eq!(header(&refused, "retry-after"), Some(3));
        let status = refusal(refused).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        // The account's own bucket was not touched, nor metered.
        assert_eq!(h.plans.admitted.load(Ordering::SeqCst), 0);
        let response = h.call(request(GET_ME, "198.51.100.7", Some(user))).await;
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(99));
        // Another address has its own budget; so does another client behind our proxy, but
        // not one that only writes another address in front of the same one.
        let response = h.call(request(LOGIN, "198.51.100.8", None)).await;
        assert!(refusal(response).is_none());
        let mut behind = request(LOGIN, "127.0.0.1", None);
        behind
            .headers_mut()
            .insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.1"));
        assert!(refusal(h.call(behind).await).is_none());
        for i in 0..20 {
            let mut spoofed = request(LOGIN, "127.0.0.1", None);
            spoofed.headers_mut().insert(
                X_FORWARDED_FOR,
                HeaderValue::from_str(&format!("10.9.9.{i}, 203.0.113.1")).unwrap(),
            );
            let response = h.call(spoofed).await;
            assert_eq!(refusal(response).is_some(), i >= 19, "call {}", i + 2);
        }
        assert_eq!(h.handled.load(Ordering::SeqCst), 20 + 1 + 1 + 1 + 19);
    }

    #[tokio::test]
    async fn anonymous_calls_count_per_address() {
        let mut h = harness(true);
        let path = "/namaskah.v1.CatalogService/ListServices";
        for _ in 0..300 {
            assert!(refusal(h.call(request(path, "192.0.2.1", None)).await).is_none());
        }
        assert!(refusal(h.call(request(path, "192.0.2.1", None)).await).is_some());
        assert!(refusal(h.call(request(path, "192.0.2.2", None)).await).is_none());
        // IPv6 neighbours in one /64 share a budget.
        for i in 0..300 {
            let peer = format!("2001:db8::{:x}", i + 1);
            assert!(refusal(h.call(request(path, &peer, None)).await).is_none());
        }
        assert!(refusal(h.call(request(path, "2001:db8::ffff", None)).await).is_some());
    }

    #[tokio::test]
    async fn health_reflection_and_webhooks_are_not_limited() {
        let mut h = harness(true);
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/namaskah.v1.WebhookService/ReceiveWebhook",
        ] {
            for _ in 0..400 {
                let response = h.call(request(path, "192.0.2.1", None)).await;
                assert_eq!(header(&response, "x-ratelimit-limit"), None);
                assert!(refusal(response).is_none());
            }
        }
    }

    #[tokio::test]
    async fn switched_off_everything_passes_untouched() {
        let mut h = harness(false);
        for _ in 0..50 {
            let response = h.call(request(LOGIN, "192.0.2.1", None)).await;
            assert_eq!(header(&response, "x-ratelimit-limit"), None);
            assert!(refusal(response).is_none());
        }
        assert_eq!(h.handled.load(Ordering::SeqCst), 50);
    }
}
