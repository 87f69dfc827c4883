//! Availability "as the upstream reports it": the one question the catalog asks the
//! providers. The providers' router answers it (`providers::router`) from what its
//! providers last said.
use async_trait::async_trait;

use super::domain::Stock;

/// How many numbers the upstream providers have for a service in a country.
///
/// Called for every price a list shows (a thousand or so for an unfiltered list), so an
/// implementation answers from memory — its own cache of what providers last reported —
/// and never makes a network call per question.
#[async_trait]
pub trait Inventory: Send + Sync + 'static {
    async fn stock(&self, service: &str, country: &str) -> Stock;
}
