//! A provider wrapped for telemetry: every call is counted by provider, operation and
//! outcome (`provider_calls_total`), timed (`provider_call_duration_seconds`), and becomes
//! a span of the current call's Sentry trace. The app wraps each configured provider
//! before handing it to the router, so every caller (router, jobs, webhooks) is covered.
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{NumberRequest, Poll, Provider, ProviderError, Rental};
use crate::telemetry::{metrics, span_finished};

pub struct Instrumented {
    inner: Arc<dyn Provider>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Self { inner }
    }
}

/// The `outcome` label of a provider answer.
pub fn outcome<T>(result: &Result<T, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ProviderError::NoNumbers) => "no_numbers",
        Err(ProviderError::Unsupported) => "unsupported",
        Err(ProviderError::InsufficientBalance) => "insufficient_balance",
        Err(ProviderError::Unauthorized) => "unauthorized",
        Err(ProviderError::RateLimited) => "rate_limited",
        Err(ProviderError::Upstream(_)) => "upstream_error",
        Err(ProviderError::Timeout) => "timeout",
        Err(ProviderError::Garbage(_)) => "garbage",
        Err(ProviderError::Refused(_)) => "refused",
    }
}

impl Instrumented {
    async fn observe<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        let provider = self.inner.name();
        let outcome = outcome(&result);
        metrics::provider_call(provider, operation, outcome, elapsed);
        span_finished(
            "provider.call",
            &format!("{provider} {operation} ({outcome})"),
            elapsed,
            // No numbers, unsupported, refused: answers, not failures.
            result
                .as_ref()
                .err()
                .is_some_and(ProviderError::counts_against_breaker),
        );
        result
    }
}

#[async_trait]
impl Provider for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn serves(&self, service: &str, country: &str) -> bool {
        self.inner.serves(service, country)
    }

    fn idempotent_rent(&self) -> bool {
        self.inner.idempotent_rent()
    }

    async fn rent(&self, request: &NumberRequest<'_>) -> Result<Rental, ProviderError> {
        self.observe("rent", self.inner.rent(request)).await
    }

    async fn poll(&self, rental: &str) -> Result<Poll, ProviderError> {
        self.observe("poll", self.inner.poll(rental)).await
    }

    async fn cancel(&self, rental: &str) -> Result<(), ProviderError> {
        self.observe("cancel", self.inner.cancel(rental)).await
    }

    async fn finish(&self, rental: &str) -> Result<(), ProviderError> {
        self.observe("finish", self.inner.finish(rental)).await
    }

    async fn report(&self, rental: &str) -> Result<(), ProviderError> {
        self.observe("report", self.inner.report(rental)).await
    }
}
