//! Plans, subscriptions, rate limits and usage-based billing.
//!
//! - `plans`: the plans' terms (the SPEC's table, overridable by configuration);
//! - `domain`: periods, proration, plan changes, renewals, overage and alerts in plain Rust;
//! - `service`: the operations and jobs; `repo`: storage; `usage`: the in-memory meter;
//! - `limits`: the rate-limit layer in front of every service.
pub mod domain;
pub mod entities;
pub mod grpc;
pub mod jobs;
pub mod limits;
pub mod plans;
pub mod repo;
pub mod service;
pub mod usage;
pub mod view;

use async_trait::async_trait;
use uuid::Uuid;

/// What the rate-limit layer needs to know about an account, and tells back.
#[async_trait]
pub trait AccountPlans: Send + Sync + 'static {
    /// The API requests per minute of the plan in force for `user` now. Cheap: served from
    /// a cache that a plan change updates at once.
    async fn requests_per_minute(&self, user: Uuid) -> u32;
    /// The name of the plan in force for `user` (`starter`, `pro`, `enterprise`), for the
    /// refusal metric. As cheap as [`Self::requests_per_minute`].
    async fn plan_name(&self, user: Uuid) -> &'static str;
    /// Called once for each authenticated call the limiter let through (usage metering).
    /// Must not block.
    fn admitted(&self, user: Uuid);
}
