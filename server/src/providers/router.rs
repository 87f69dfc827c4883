//! Chooses a provider for each rental: the configured providers that serve the country, in
//! order, skipping any whose circuit breaker is open, and failing over to the next on
//! no-numbers or an upstream error. It also answers the catalog's availability question
//! from what the providers last said (a provider that just said "no numbers" for a service
//! and country is out of stock there for a while).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{NumberRequest, Provider, ProviderError, Rental};
use crate::catalog::domain::Stock;
use crate::catalog::inventory::Inventory;

/// Consecutive failures that open a provider's breaker.
const TRIP_AFTER: u32 = 5;
/// How long an open breaker keeps calls away before letting one trial through.
const OPEN_FOR: Duration = Duration::from_secs(30);
/// How long a provider's "no numbers" answer marks a service and country out of stock.
const NO_STOCK_FOR: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    /// A half-open trial is in flight: others still skip the provider.
    trial: bool,
}

/// Why a rental could not be had from any provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exhausted {
    /// Each provider tried, with its answer; empty when none serves the country or every
    /// breaker is open.
    pub attempts: Vec<(&'static str, ProviderError)>,
}

impl Exhausted {
    /// The verification's `failure_reason`: `NO_NUMBERS` when every provider said so (or
    /// none serves it), `PROVIDER_TIMEOUT` when all that answered at all timed out,
    /// `PROVIDER_ERROR` otherwise.
    pub fn reason(&self) -> crate::verification::domain::FailureReason {
        use crate::verification::domain::FailureReason;
        if self
            .attempts
            .iter()
            .all(|(_, e)| matches!(e, ProviderError::NoNumbers | ProviderError::Unsupported))
        {
            FailureReason::NoNumbers
        } else if self
            .attempts
            .iter()
            .all(|(_, e)| matches!(e, ProviderError::Timeout))
        {
            FailureReason::ProviderTimeout
        } else {
            FailureReason::ProviderError
        }
    }
}

pub struct Router {
    providers: Vec<Arc<dyn Provider>>,
    breakers: Vec<Mutex<Breaker>>,
    /// (provider index, service, country) → when its "no numbers" stops counting.
    no_stock: Mutex<HashMap<(usize, String, String), Instant>>,
}

impl Router {
    /// Providers in order of preference.
    pub fn new(providers: Vec<Arc<dyn Provider>>) -> Self {
        let breakers = providers.iter().map(|_| Mutex::default()).collect();
        Self {
            providers,
            breakers,
            no_stock: Mutex::default(),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.name()).collect()
    }

    /// The first provider whose rent timed out and that can be asked again safely (an
    /// idempotent create): the rental it may have made must be found and given back.
    pub fn to_recover(&self, exhausted: &Exhausted) -> Option<&'static str> {
        exhausted
            .attempts
            .iter()
            .find(|(name, error)| {
                error.outcome_unknown() && self.by_name(name).is_some_and(|p| p.idempotent_rent())
            })
            .map(|(name, _)| *name)
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.providers.iter().find(|p| p.name() == name).cloned()
    }

    /// Whether a call to provider `i` may go ahead now (a closed breaker, or the one trial
    /// of a half-open one).
    fn admit(&self, i: usize) -> bool {
        let mut b = self.breakers[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match b.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) if b.trial => false,
            Some(_) => {
                b.trial = true;
                true
            }
        }
    }

    fn record(&self, i: usize, outcome: Result<(), &ProviderError>) {
        let mut b = self.breakers[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Err(e) if e.counts_against_breaker() => {
                b.failures += 1;
                b.trial = false;
                if b.failures >= TRIP_AFTER || b.open_until.is_some() {
                    if b.open_until.is_none() {
                        tracing::warn!(
                            provider = self.providers[i].name(),
                            failures = b.failures,
                            "provider circuit breaker opened"
                        );
                    }
                    b.open_until = Some(Instant::now() + OPEN_FOR);
                }
            }
            // Success, or an answer that says the provider works (no numbers, refused).
            _ => {
                if b.open_until.is_some() {
                    tracing::info!(
                        provider = self.providers[i].name(),
                        "provider circuit breaker closed"
                    );
                }
                *b = Breaker::default();
            }
        }
    }

    /// Whether provider `i`'s breaker is open now (for tests and metrics).
    pub fn is_open(&self, name: &str) -> bool {
        self.providers
            .iter()
            .position(|p| p.name() == name)
            .is_some_and(|i| {
                let b = self.breakers[i]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                b.open_until.is_some_and(|until| Instant::now() < until)
            })
    }

    fn out_of_stock(&self, i: usize, service: &str, country: &str) -> bool {
        let map = self.no_stock.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(i, service.to_owned(), country.to_owned()))
            .is_some_and(|until| Instant::now() < *until)
    }

    fn note_stock(&self, i: usize, service: &str, country: &str, none: bool) {
        let mut map = self.no_stock.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (i, service.to_owned(), country.to_owned());
        if none {
            if map.len() > 10_000 {
                let now = Instant::now();
                map.retain(|_, until| *until > now);
            }
            map.insert(key, Instant::now() + NO_STOCK_FOR);
        } else {
            map.remove(&key);
        }
    }

    /// Rents a number from the first provider that has one.
    pub async fn rent(
        &self,
        request: &NumberRequest<'_>,
    ) -> Result<(&'static str, Rental), Exhausted> {
        let mut attempts = Vec::new();
        for (i, provider) in self.providers.iter().enumerate() {
            if !provider.serves(request.service, request.country) || !self.admit(i) {
                continue;
            }
            match provider.rent(request).await {
                Ok(rental) => {
                    self.record(i, Ok(()));
                    self.note_stock(i, request.service, request.country, false);
                    return Ok((provider.name(), rental));
                }
                Err(error) => {
                    tracing::warn!(
                        provider = provider.name(),
                        service = request.service,
                        country = request.country,
                        %error,
                        "provider could not rent a number"
                    );
                    self.record(i, Err(&error));
                    if error == ProviderError::NoNumbers {
                        self.note_stock(i, request.service, request.country, true);
                    }
                    attempts.push((provider.name(), error));
                }
            }
        }
        Err(Exhausted { attempts })
    }
}

#[async_trait]
impl Inventory for Router {
    async fn stock(&self, service: &str, country: &str) -> Stock {
        let available = self.providers.iter().enumerate().any(|(i, p)| {
            p.serves(service, country)
                && !self.is_open(p.name())
                && !self.out_of_stock(i, service, country)
        });
        if available {
            Stock::InStock(None)
        } else {
            Stock::OutOfStock
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::providers::{Poll, RemoteState};
    use crate::verification::domain::FailureReason;

    struct Scripted {
        name: &'static str,
        answer: Mutex<Vec<Result<(), ProviderError>>>,
        calls: AtomicU32,
    }

    impl Scripted {
        fn new(name: &'static str, answers: Vec<Result<(), ProviderError>>) -> Arc<Self> {
            Arc::new(Self {
                name,
                answer: Mutex::new(answers),
                calls: AtomicU32::new(0),
            })
        }
    }

    #[async_trait]
    impl Provider for Scripted {
        fn name(&self) -> &'static str {
            self.name
        }
        fn serves(&self, _: &str, country: &str) -> bool {
            country != "ZZ"
        }
        async fn rent(&self, _: &NumberRequest<'_>) -> Result<Rental, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = {
                let mut a = self.answer.lock().unwrap();
                if a.len() > 1 {
                    a.remove(0)
                } else {
                    a[0].clone()
                }
            };
            next.map(|()| Rental {
                provider_ref: format!("{}-1", self.name),
                phone_number: "+447700900001".into(),
                expires_at: None,
                cost: None,
                quiet_until: None,
            })
        }
        async fn poll(&self, _: &str) -> Result<Poll, ProviderError> {
            Ok(Poll {
                messages: vec![],
                state: RemoteState::Waiting,
                quiet_until: None,
            })
        }
        async fn cancel(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn finish(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn report(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    fn request() -> NumberRequest<'static> {
        NumberRequest {
            service: "whatsapp",
            country: "GB",
            idempotency_key: "k",
        }
    }

    #[tokio::test]
    async fn fails_over_in_order_and_names_the_reason() {
        let a = Scripted::new("a", vec![Err(ProviderError::NoNumbers)]);
        let b = Scripted::new("b", vec![Ok(())]);
        let router = Router::new(vec![a.clone(), b.clone()]);
        let (name, _) = router.rent(&request()).await.unwrap();
        assert_eq!(name, "b");
        assert_eq!(router.stock("whatsapp", "GB").await, Stock::InStock(None));

        let none = Router::new(vec![Scripted::new(
            "a",
            vec![Err(ProviderError::NoNumbers)],
        )]);
        let err = none.rent(&request()).await.unwrap_err();
        assert_eq!(err.reason(), FailureReason::NoNumbers);
        assert_eq!(none.stock("whatsapp", "GB").await, Stock::OutOfStock);

        let slow = Router::new(vec![Scripted::new("a", vec![Err(ProviderError::Timeout)])]);
        assert_eq!(
            slow.rent(&request()).await.unwrap_err().reason(),
            FailureReason::ProviderTimeout
        );
        let mixed = Router::new(vec![
            Scripted::new("a", vec![Err(ProviderError::Timeout)]),
            Scripted::new("b", vec![Err(ProviderError::Upstream("500".into()))]),
        ]);
        assert_eq!(
            mixed.rent(&request()).await.unwrap_err().reason(),
            FailureReason::ProviderError
        );
        let nobody = Router::new(vec![a.clone()]);
        let far = NumberRequest {
            country: "ZZ",
            ..request()
        };
        let err = nobody.rent(&far).await.unwrap_err();
        assert!(err.attempts.is_empty());
        assert_eq!(err.reason(), FailureReason::NoNumbers);
    }

    #[tokio::test]
    async fn a_failing_provider_is_skipped_while_its_breaker_is_open() {
        let bad = Scripted::new("bad", vec![Err(ProviderError::Upstream("503".into()))]);
        let good = Scripted::new("good", vec![Ok(())]);
        let router = Router::new(vec![bad.clone(), good.clone()]);
        for _ in 0..TRIP_AFTER {
            assert_eq!(router.rent(&request()).await.unwrap().0, "good");
        }
        assert!(router.is_open("bad"));
        for _ in 0..10 {
            assert_eq!(router.rent(&request()).await.unwrap().0, "good");
        }
        assert_eq!(bad.calls.load(Ordering::SeqCst), TRIP_AFTER);
        // No numbers is an answer, not a failure: it does not trip the breaker.
        let empty = Scripted::new("empty", vec![Err(ProviderError::NoNumbers)]);
        let router = Router::new(vec![empty.clone(), good.clone()]);
        for _ in 0..(TRIP_AFTER * 2) {
            router.rent(&request()).await.unwrap();
        }
        assert!(!router.is_open("empty"));
    }
}
