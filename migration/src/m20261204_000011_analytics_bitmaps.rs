//! Analytics, second form: a customer's active days and paying days as bitmaps, and the
//! rollup keyed by insertion order.
//!
//! `analytics_customer_days` holds one row per customer and *chunk* of 768 days: `a0`…`a11`
//! are its days with a verification bought, `p0`…`p11` its days with a charge (a captured
//! verification, a fee, an overage), bit `o mod 64` of word `o / 64` for the day at offset
//! `o` in the chunk. Every day is in two chunks, one of each of two systems (even keys:
//! chunks from day 0 since the epoch; odd keys: from day 384), so that any window of up to
//! 384 days lies whole in one chunk: a report's distinct active customers over it are a
//! scan of one short row per customer, never a group-by over every (customer, day). The
//! words are OR-ed in as the rollup goes; the table only grows with customers and years.
//! (`analytics::domain` computes the chunks and masks.)
//!
//! It replaces `analytics_active_days`, and `analytics_outcomes_daily` gets one column per
//! final status instead of one row (a quarter's outcomes were 65k rows). The revenue rollup
//! now reads the ledger by entry id (UUIDv7, minted at insertion) rather than by the date an
//! entry carries, so that fees dated at their period's boundary are rolled up too; the
//! rollups written the old way are emptied and their mark reset, and the job rebuilds them
//! (a year in about a minute).
//!
//! Two indexes for the reports: administrators among the accounts (a report leaves them
//! out: a handful of rows), and ledger accounts by kind (the resellers' margin accounts
//! among every wallet).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000011_analytics_bitmaps"
    }
}

#[derive(DeriveIden)]
enum AnalyticsCustomerDays {
    Table,
    UserId,
    Chunk,
}

#[derive(DeriveIden)]
enum AnalyticsActiveDays {
    Table,
    Day,
    UserId,
}

#[derive(DeriveIden)]
enum AnalyticsOutcomesDaily {
    Table,
    Day,
    Service,
    Country,
    Status,
    Verifications,
    Completed,
    Expired,
    Failed,
    Cancelled,
}

#[derive(DeriveIden)]
enum LedgerAccounts {
    Table,
    Kind,
}

/// Words per kind of day in a chunk.
const WORDS: usize = 12;

fn words() -> impl Iterator<Item = String> {
    ['a', 'p']
        .into_iter()
        .flat_map(|kind| (0..WORDS).map(move |k| format!("{kind}{k}")))
}

fn count<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

fn text<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().to_owned()
}

/// The outcomes table, by status in columns (`pivoted`) or in rows (as before).
fn outcomes(pivoted: bool) -> TableCreateStatement {
    let mut table = Table::create();
    table
        .table(AnalyticsOutcomesDaily::Table)
        .col(text(AnalyticsOutcomesDaily::Day, 10))
        .col(text(AnalyticsOutcomesDaily::Service, 64))
        .col(text(AnalyticsOutcomesDaily::Country, 8));
    let mut key = Index::create();
    key.col(AnalyticsOutcomesDaily::Day)
        .col(AnalyticsOutcomesDaily::Service)
        .col(AnalyticsOutcomesDaily::Country);
    if pivoted {
        table
            .col(count(AnalyticsOutcomesDaily::Completed))
            .col(count(AnalyticsOutcomesDaily::Expired))
            .col(count(AnalyticsOutcomesDaily::Failed))
            .col(count(AnalyticsOutcomesDaily::Cancelled));
    } else {
        table
            .col(text(AnalyticsOutcomesDaily::Status, 16))
            .col(count(AnalyticsOutcomesDaily::Verifications));
        key.col(AnalyticsOutcomesDaily::Status);
    }
    table.primary_key(&mut key).to_owned()
}

/// Empties what the rollup job writes: it starts again from the first account.
async fn reset_rollups(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in [
        "DELETE FROM analytics_revenue_daily",
        "DELETE FROM analytics_rollups",
    ] {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut table = Table::create();
        table
            .table(AnalyticsCustomerDays::Table)
            .col(
                ColumnDef::new(AnalyticsCustomerDays::UserId)
                    .uuid()
                    .not_null(),
            )
            .col(
                ColumnDef::new(AnalyticsCustomerDays::Chunk)
                    .big_integer()
                    .not_null(),
            );
        for word in words() {
            table.col(count(Alias::new(word)));
        }
        // By chunk first: a report reads the one to three chunks its window touches.
        table.primary_key(
            Index::create()
                .col(AnalyticsCustomerDays::Chunk)
                .col(AnalyticsCustomerDays::UserId),
        );
        manager.create_table(table.to_owned()).await?;
        manager
            .drop_table(Table::drop().table(AnalyticsActiveDays::Table).to_owned())
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(AnalyticsOutcomesDaily::Table)
                    .to_owned(),
            )
            .await?;
        manager.create_table(outcomes(true)).await?;
        reset_rollups(manager).await?;
        // A partial index (both backends have them): `role <> 'customer'` is a handful of
        // rows that no ordinary index could find without reading every account.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_users_staff ON users (id) WHERE role <> 'customer'",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_ledger_accounts_kind")
                    .table(LedgerAccounts::Table)
                    .col(LedgerAccounts::Kind)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_ledger_accounts_kind")
                    .table(LedgerAccounts::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX ix_users_staff")
            .await?;
        manager
            .drop_table(Table::drop().table(AnalyticsCustomerDays::Table).to_owned())
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(AnalyticsOutcomesDaily::Table)
                    .to_owned(),
            )
            .await?;
        manager.create_table(outcomes(false)).await?;
        manager
            .create_table(
                Table::create()
                    .table(AnalyticsActiveDays::Table)
                    .col(text(AnalyticsActiveDays::Day, 10))
                    .col(
                        ColumnDef::new(AnalyticsActiveDays::UserId)
                            .uuid()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AnalyticsActiveDays::Day)
                            .col(AnalyticsActiveDays::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        reset_rollups(manager).await
    }
}
