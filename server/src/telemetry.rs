//! Request telemetry: `x-process-time` on every response, a warning for slow calls, and
//! the logging set-up.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower::{Layer, Service};

/// Calls slower than this are logged at warn level.
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

/// Adds `x-process-time` (seconds, as a decimal) to every response.
#[derive(Clone, Copy, Default)]
pub struct ProcessTimeLayer;

impl<S> Layer<S> for ProcessTimeLayer {
    type Service = ProcessTime<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProcessTime { inner }
    }
}

#[derive(Clone)]
pub struct ProcessTime<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for ProcessTime<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = request.uri().path().to_owned();
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let elapsed = started.elapsed();
            if let Ok(value) = format!("{:.6}", elapsed.as_secs_f64()).parse() {
                response.headers_mut().insert("x-process-time", value);
            }
            if elapsed >= SLOW_CALL {
                tracing::warn!(%method, duration_ms = elapsed.as_millis() as u64, "slow call");
            }
            Ok(response)
        })
    }
}
