//! Request telemetry, in one tower layer in front of every service: `x-process-time` and
//! `x-request-id` on every response, the `request_duration_seconds` histogram by service,
//! method and code, open streams, slow calls (warned and counted), and a Sentry hub per
//! call that reports panics and `INTERNAL`/`UNKNOWN` answers; plus the logging set-up, the
//! Prometheus registry ([`metrics`]), the active-user sketch ([`active`]) and the
//! `/metrics` listener ([`endpoint`]).
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt as _;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use prost::Message as _;
use sentry::protocol::{Event, Level, SpanStatus, User};
use sentry::{Hub, SentryFutureExt as _, TransactionContext};
use tower::{Layer, Service};
use tracing::Instrument as _;

pub mod active;
pub mod endpoint;
pub mod metrics;
pub mod reports;

/// The default of `NAMASKAH_SLOW_CALL_THRESHOLD`.
pub const SLOW_CALL: Duration = Duration::from_secs(1);

/// Starts logging: `RUST_LOG` filters (default `info`), `NAMASKAH_LOG_FORMAT=json` for
/// one JSON object a line.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("NAMASKAH_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation (tests start several servers) keeps the first subscriber.
    drop(result);
}

/// Accounts seen by this process (one sketch per process, like the metrics registry).
static ACTIVE_USERS: LazyLock<active::ActiveUsers> = LazyLock::new(Default::default);

/// Whether any application in this process reports to Sentry (skips the per-query work
/// otherwise).
static REPORTING: AtomicBool = AtomicBool::new(false);

/// What the telemetry of one application needs: its slow-call threshold, its Sentry hub
/// (if any) and where its `/metrics` listens.
pub struct Telemetry {
    slow_call: Duration,
    /// The hub each call's hub starts from (with the client bound).
    base_hub: OnceLock<Arc<Hub>>,
    metrics_addr: OnceLock<SocketAddr>,
}

impl Telemetry {
    /// Reports to Sentry when `SENTRY_DSN` is set: through the process's client when `main`
    /// started one (`reports::init`), else through a client of this application's own.
    pub fn new(config: &crate::Config) -> Self {
        let telemetry = Self {
            slow_call: config.slow_call_threshold,
            base_hub: OnceLock::new(),
            metrics_addr: OnceLock::new(),
        };
        if config.sentry.dsn.is_some() {
            let main = Hub::main();
            if main.client().is_some_and(|c| c.is_enabled()) {
                telemetry.use_hub(main);
            } else if let Some(client) = reports::client(&config.sentry, None) {
                telemetry.report_to(client);
            }
        }
        telemetry
    }

    /// Reports through `client` (for embedders and tests that bring their own transport).
    /// Returns false when this application already reports somewhere.
    pub fn report_to(&self, client: Arc<sentry::Client>) -> bool {
        self.use_hub(Arc::new(Hub::new(Some(client), Default::default())))
    }

    fn use_hub(&self, hub: Arc<Hub>) -> bool {
        let set = self.base_hub.set(hub).is_ok();
        if set {
            REPORTING.store(true, Ordering::Relaxed);
        }
        set
    }

    /// Sends what Sentry has queued (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Some(client) = self.base_hub.get().and_then(|hub| hub.client()) {
            client.flush(Some(timeout));
        }
    }

    /// Where `/metrics` listens (`None` when `NAMASKAH_METRICS_ADDR` is off).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr.get().copied()
    }

    pub(crate) fn set_metrics_addr(&self, addr: SocketAddr) {
        let _ = self.metrics_addr.set(addr);
    }

    pub fn slow_call_threshold(&self) -> Duration {
        self.slow_call
    }
}

/// A header value that changes from one response to the next: marked so that HTTP/2 sends
/// it as a literal instead of adding each value to both sides' header tables, where it
/// would push out the entries that do repeat (content type, status, the rate limit).
pub fn unindexed(value: impl Into<HeaderValue>) -> HeaderValue {
    let mut value = value.into();
    value.set_sensitive(true);
    value
}

/// The number of distinct accounts seen in the last five minutes by this process.
pub fn active_users() -> u64 {
    ACTIVE_USERS.count()
}

/// Tells telemetry which account a call is for (the authentication layer calls this): it
/// counts towards `active_users_total`, and the call's Sentry reports carry its id.
pub fn authenticated(extensions: &http::Extensions, account: uuid::Uuid) {
    ACTIVE_USERS.saw(&account);
    if let Some(call) = extensions.get::<Arc<CallContext>>() {
        let _ = call.account.set(account);
        if let Some(hub) = &call.hub {
            hub.configure_scope(|scope| {
                scope.set_user(Some(User {
                    id: Some(account.to_string()),
                    ..Default::default()
                }));
            });
        }
    }
}

/// A finished piece of work inside the current call (a database statement, a provider
/// call) becomes a span of the call's Sentry transaction, when it is sampled.
pub fn span_finished(op: &str, description: &str, elapsed: Duration, failed: bool) {
    if !REPORTING.load(Ordering::Relaxed) {
        return;
    }
    let Some(parent) = sentry::configure_scope(|scope| scope.get_span()) else {
        return;
    };
    #[allow(deprecated)] // The only way to skip the work for unsampled traces.
    if !parent.is_sampled() {
        return;
    }
    let end = SystemTime::now();
    let start = end.checked_sub(elapsed).unwrap_or(end);
    let description: String = reports::scrub(description).chars().take(500).collect();
    let span = parent.start_child_with_details(op, &description, Default::default(), start);
    span.set_status(if failed {
        SpanStatus::InternalError
    } else {
        SpanStatus::Ok
    });
    span.finish_with_timestamp(end);
}

// ---- routes: bounded labels ----

/// A known RPC: its labels, and whether it answers with a stream.
#[derive(Debug)]
pub struct Route {
    pub service: &'static str,
    pub method: &'static str,
    pub streaming: bool,
}

/// The label of anything that is not a known RPC.
pub const UNKNOWN: &str = "unknown";
static UNKNOWN_ROUTE: Route = Route {
    service: UNKNOWN,
    method: UNKNOWN,
    streaming: false,
};

/// Every RPC this server offers, from the descriptor sets it serves (namaskah.v1, health,
/// reflection), by path (`/namaskah.v1.AuthService/Login`).
static ROUTES: LazyLock<HashMap<String, Route>> = LazyLock::new(|| {
    let mut routes = HashMap::new();
    for set in [
        namaskah_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(files) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in files.file {
            let package = file.package();
            for service in &file.service {
                let full: &'static str = Box::leak(
                    if package.is_empty() {
                        service.name().to_owned()
                    } else {
                        format!("{package}.{}", service.name())
                    }
                    .into_boxed_str(),
                );
                for method in &service.method {
                    let name: &'static str = Box::leak(method.name().to_owned().into_boxed_str());
                    routes.insert(
                        format!("/{full}/{name}"),
                        Route {
                            service: full,
                            method: name,
                            streaming: method.server_streaming(),
                        },
                    );
                }
            }
        }
    }
    routes
});

/// The route of a request path; unknown paths all share one label value.
pub fn route(path: &str) -> &'static Route {
    ROUTES.get(path).unwrap_or(&UNKNOWN_ROUTE)
}

/// The canonical name of a gRPC status code (`OK`, `INVALID_ARGUMENT`, …).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

fn code_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.trim().parse::<i32>().ok().map(tonic::Code::from_i32)
}

fn message_in(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("grpc-message")?.to_str().ok()?;
    Some(percent_decode(value).chars().take(500).collect::<String>())
}

/// `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---- the call's context ----

/// What telemetry knows about one call, in the request's extensions (as
/// `Arc<CallContext>`), for the layers and handlers inside.
pub struct CallContext {
    /// The call's id: the caller's `x-request-id` when it is a sensible one, else a new
    /// UUID. Answered as `x-request-id`, logged, and tagged on Sentry reports.
    pub request_id: String,
    /// The authenticated account, once known.
    pub account: OnceLock<uuid::Uuid>,
    hub: Option<Arc<Hub>>,
}

impl CallContext {
    pub fn account(&self) -> Option<uuid::Uuid> {
        self.account.get().copied()
    }
}

/// The caller's `x-request-id` if it is short and plain, else a fresh id.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

// ---- the layer ----

/// The telemetry layer; the outermost layer of the gRPC server.
#[derive(Clone)]
pub struct TelemetryLayer {
    telemetry: Arc<Telemetry>,
}

impl TelemetryLayer {
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        Self { telemetry }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed {
            inner,
            telemetry: Arc::clone(&self.telemetry),
        }
    }
}

#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, RB> Service<http::Request<B>> for Observed<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<ObservedBody<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let path = request.uri().path();
        let route = route(path);
        // Logs name the path as sent (bounded); labels only ever the route.
        let rpc: String = path.chars().take(120).collect();
        let request_id = request_id(request.headers());
        let hub = self.telemetry.base_hub.get().map(|base| {
            let hub = Arc::new(Hub::new_from_top(base));
            hub.configure_scope(|scope| {
                scope.set_tag("rpc", &rpc);
                scope.set_tag("request_id", &request_id);
                scope.set_transaction(Some(&rpc));
            });
            hub
        });
        let transaction = hub.as_ref().map(|hub| {
            let transaction = hub.start_transaction(TransactionContext::new(&rpc, "grpc.server"));
            transaction.set_tag("rpc", &rpc);
            transaction.set_tag("request_id", &request_id);
            hub.configure_scope(|scope| scope.set_span(Some(transaction.clone().into())));
            transaction
        });
        let call = Arc::new(CallContext {
            request_id,
            account: OnceLock::new(),
            hub: hub.clone(),
        });
        request.extensions_mut().insert(Arc::clone(&call));
        let span = tracing::info_span!("call", rpc = %rpc, request_id = %call.request_id);

        let future = match &hub {
            Some(hub) => Hub::run(Arc::clone(hub), || self.inner.call(request)),
            None => self.inner.call(request),
        };
        let future = std::panic::AssertUnwindSafe(future).catch_unwind();
        let future: BoxFuture<_> = match &hub {
            Some(hub) => Box::pin(future.bind_hub(Arc::clone(hub))),
            None => Box::pin(future),
        };
        let slow_call = self.telemetry.slow_call;
        Box::pin(
            async move {
                let (response, panicked) = match future.await {
                    Ok(result) => (result?, false),
                    Err(_) => {
                        // The panic itself was reported by Sentry's panic hook (with this
                        // call's hub) and logged; the caller gets a clean INTERNAL.
                        tracing::error!("the call panicked");
                        let status = tonic::Status::internal(
                            "an internal error occurred; it has been logged",
                        );
                        (status.into_http::<RB>(), true)
                    }
                };
                let elapsed = started.elapsed();
                let (mut parts, body) = response.into_parts();
                // Both differ on every response: never indexed (see `unindexed`).
                if let Ok(value) = format!("{:.6}", elapsed.as_secs_f64()).parse::<HeaderValue>() {
                    parts.headers.insert("x-process-time", unindexed(value));
                }
                if let Ok(value) = call.request_id.parse::<HeaderValue>() {
                    parts.headers.insert("x-request-id", unindexed(value));
                }
                if elapsed >= slow_call {
                    tracing::warn!(
                        method = %rpc,
                        duration_ms = elapsed.as_millis() as u64,
                        request_id = %call.request_id,
                        "slow call"
                    );
                    metrics::slow_request(route.service, route.method);
                }
                let mut guard = CallGuard {
                    route,
                    rpc,
                    started,
                    call,
                    transaction,
                    code: None,
                    message: None,
                    panicked,
                    stream_open: false,
                };
                let guard = match code_in(&parts.headers) {
                    // Trailers-only (an error, or a unary answer carried in the headers):
                    // the call is over.
                    Some(code) => {
                        guard.code = Some(code);
                        guard.message = message_in(&parts.headers);
                        drop(guard);
                        None
                    }
                    None => {
                        if route.streaming {
                            guard.stream_open = true;
                            metrics::stream_opened(route.service, route.method);
                        }
                        Some(guard)
                    }
                };
                Ok(http::Response::from_parts(
                    parts,
                    ObservedBody { inner: body, guard },
                ))
            }
            .instrument(span),
        )
    }
}

/// Records a call when it ends: with its trailers, when its body ends, or when it is
/// dropped (the caller went away: `CANCELLED`).
struct CallGuard {
    route: &'static Route,
    rpc: String,
    started: Instant,
    call: Arc<CallContext>,
    transaction: Option<sentry::Transaction>,
    code: Option<tonic::Code>,
    message: Option<String>,
    panicked: bool,
    stream_open: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        let route = self.route;
        metrics::request_finished(
            route.service,
            route.method,
            code_name(code),
            self.started.elapsed(),
        );
        if self.stream_open {
            metrics::stream_closed(route.service, route.method);
        }
        let Some(hub) = self.call.hub.clone() else {
            return;
        };
        if matches!(code, tonic::Code::Internal | tonic::Code::Unknown) && !self.panicked {
            let mut event = Event {
                message: Some(format!("{} answered {}", self.rpc, code_name(code))),
                level: Level::Error,
                ..Default::default()
            };
            event.tags.insert("status".into(), code_name(code).into());
            event.tags.insert("rpc".into(), self.rpc.clone());
            event
                .tags
                .insert("request_id".into(), self.call.request_id.clone());
            if let Some(account) = self.call.account() {
                event.user = Some(User {
                    id: Some(account.to_string()),
                    ..Default::default()
                });
            }
            if let Some(message) = self.message.take() {
                event.extra.insert(
                    "grpc_message".into(),
                    sentry::protocol::Value::String(message),
                );
            }
            hub.capture_event(event);
        }
        if let Some(transaction) = self.transaction.take() {
            transaction.set_status(span_status(code));
            Hub::run(hub, || transaction.finish());
        }
    }
}

fn span_status(code: tonic::Code) -> SpanStatus {
    use tonic::Code::*;
    match code {
        Ok => SpanStatus::Ok,
        Cancelled => SpanStatus::Cancelled,
        InvalidArgument => SpanStatus::InvalidArgument,
        DeadlineExceeded => SpanStatus::DeadlineExceeded,
        NotFound => SpanStatus::NotFound,
        AlreadyExists => SpanStatus::AlreadyExists,
        PermissionDenied => SpanStatus::PermissionDenied,
        ResourceExhausted => SpanStatus::ResourceExhausted,
        FailedPrecondition => SpanStatus::FailedPrecondition,
        Aborted => SpanStatus::Aborted,
        OutOfRange => SpanStatus::OutOfRange,
        Unimplemented => SpanStatus::Unimplemented,
        Unavailable => SpanStatus::Unavailable,
        DataLoss => SpanStatus::DataLoss,
        Unauthenticated => SpanStatus::Unauthenticated,
        Internal => SpanStatus::InternalError,
        Unknown => SpanStatus::UnknownError,
    }
}

pin_project_lite::pin_project! {
    /// The response body, watched for its end (and its `grpc-status` trailer).
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        guard: Option<CallGuard>,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(mut guard) = this.guard.take()
                {
                    guard.code = Some(code_in(trailers).unwrap_or(tonic::Code::Unknown));
                    guard.message = message_in(trailers);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut guard) = this.guard.take() {
                    guard.code = Some(tonic::Code::Unknown);
                }
            }
            Poll::Ready(None) => {
                if let Some(mut guard) = this.guard.take() {
                    // A gRPC body always ends with trailers; without them the outcome is
                    // unknown.
                    guard.code.get_or_insert(tonic::Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Default> Default for ObservedBody<B> {
    fn default() -> Self {
        Self {
            inner: B::default(),
            guard: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry_reporting_to(transport: &Arc<sentry::test::TestTransport>) -> Arc<Telemetry> {
        let config = crate::Config::from_source(&HashMap::new()).expect("defaults");
        let telemetry = Arc::new(Telemetry::new(&config));
        let client = reports::client(
            &crate::config::SentryConfig {
                dsn: Some("https://public@sentry.invalid/1".into()),
                environment: "unit".into(),
                traces_sample_rate: 0.0,
                traces_per_second: 10,
            },
            Some(Arc::new(Arc::clone(transport)) as Arc<dyn sentry::TransportFactory>),
        )
        .expect("a client");
        assert!(telemetry.report_to(client));
        telemetry
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .header("x-request-id", "unit-request")
            .header("authorization", "Bearer secret-token-value")
            .body(())
            .unwrap()
    }

    #[tokio::test]
    async fn a_panicking_call_answers_internal_and_is_reported_once_with_its_rpc() {
        use tower::ServiceExt as _;
        let transport = sentry::test::TestTransport::new();
        let telemetry = telemetry_reporting_to(&transport);
        let service = TelemetryLayer::new(telemetry).layer(tower::service_fn(
            |request: http::Request<()>| async move {
                authenticated(request.extensions(), uuid::Uuid::nil());
                if request.uri().path().ends_with("GetBalance") {
                    panic!("the handler fell over");
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
            },
        ));
        let response = service
            .oneshot(request("/namaskah.v1.WalletService/GetBalance"))
            .await
            .expect("an answer");
        assert_eq!(code_in(response.headers()), Some(tonic::Code::Internal));
        assert_eq!(response.headers()["x-request-id"], "unit-request");
        drop(response);
        let events = transport.fetch_and_clear_events();
        assert_eq!(events.len(), 1, "the panic, once: {events:?}");
        let event = &events[0];
        assert_eq!(
            event.tags.get("rpc").map(String::as_str),
            Some("/namaskah.v1.WalletService/GetBalance")
        );
        assert_eq!(
            event.tags.get("request_id").map(String::as_str),
            Some("unit-request")
        );
        assert_eq!(
            event.user.as_ref().and_then(|u| u.id.clone()),
            Some(uuid::Uuid::nil().to_string())
        );
        assert!(
            event
                .exception
                .values
                .iter()
                .any(|e| e.value.as_deref() == Some("the handler fell over"))
        );
        let text = serde_json::to_string(event).unwrap();
        assert!(!text.contains("secret-token-value"));
    }

    #[test]
    fn routes_are_known_or_unknown() {
        let login = route("/namaskah.v1.AuthService/Login");
        assert_eq!(
            (login.service, login.method, login.streaming),
            ("namaskah.v1.AuthService", "Login", false)
        );
        let watch = route("/namaskah.v1.VerificationService/WatchVerification");
        assert!(watch.streaming);
        assert!(route("/grpc.health.v1.Health/Check").method == "Check");
        let unknown = route("/namaskah.v1.AuthService/Login/extra");
        assert_eq!((unknown.service, unknown.method), (UNKNOWN, UNKNOWN));
    }

    #[test]
    fn grpc_messages_are_decoded() {
        assert_eq!(percent_decode("no%20such%20table%3A x"), "no such table: x");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
