//! The schema, as an ordered list of migrations. A landed migration is never edited: a
//! change is a new migration.
pub use sea_orm_migration::prelude::*;

mod m20261126_000001_identity;
mod m20261126_000002_ledger;
mod m20261126_000003_payments;
mod m20261126_000004_catalog;
mod m20261126_000005_verifications;
mod m20261126_000006_billing;
mod m20261201_000007_admin;
mod m20261202_000008_analytics;
mod m20261202_000009_users_role;
mod m20261202_000010_tenants;
mod m20261204_000011_analytics_bitmaps;
mod m20261206_000012_partial_indexes;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_identity::Migration),
            Box::new(m20261126_000002_ledger::Migration),
            Box::new(m20261126_000003_payments::Migration),
            Box::new(m20261126_000004_catalog::Migration),
            Box::new(m20261126_000005_verifications::Migration),
            Box::new(m20261126_000006_billing::Migration),
            Box::new(m20261201_000007_admin::Migration),
            Box::new(m20261202_000008_analytics::Migration),
            Box::new(m20261202_000009_users_role::Migration),
            Box::new(m20261202_000010_tenants::Migration),
            Box::new(m20261204_000011_analytics_bitmaps::Migration),
            Box::new(m20261206_000012_partial_indexes::Migration),
        ]
    }
}
