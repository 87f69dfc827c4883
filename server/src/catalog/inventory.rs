//! Availability "as the upstream reports it": the one question the catalog asks the
//! providers. The providers room (TextVerified, 5sim, the router) lands later and will
//! answer it from the stock its providers report; until then the sandbox provider, the
//! only one that can sell a number, answers it.
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

/// The sandbox provider hands out numbers from a reserved test range: it always has them,
/// and does not count them.
#[derive(Clone, Copy, Debug, Default)]
pub struct SandboxInventory;

#[async_trait]
impl Inventory for SandboxInventory {
    async fn stock(&self, _service: &str, _country: &str) -> Stock {
        Stock::InStock(None)
    }
}

/// No provider can sell a number (the sandbox is off and no real provider is wired yet):
/// everything is shown as unavailable rather than promised.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProviders;

#[async_trait]
impl Inventory for NoProviders {
    async fn stock(&self, _service: &str, _country: &str) -> Stock {
        Stock::OutOfStock
    }
}
