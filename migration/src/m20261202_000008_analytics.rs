//! Analytics: conversion events (client events and the server's funnel steps), each
//! account's first time at every funnel step, and the daily rollups the reports read so that
//! a quarter's figures never need a scan of a quarter's ledger.
//!
//! Rollups are additive per UTC day (`day` as `YYYY-MM-DD` text, the same on PostgreSQL and
//! SQLite) and cover everything dated before the rollup's `upto`; a report adds what is dated
//! after it from the raw tables.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000008_analytics"
    }
}

#[derive(DeriveIden)]
enum ConversionEvents {
    Table,
    Id,
    Name,
    Source,
    UserId,
    AnonymousId,
    Properties,
    EventTime,
    ReceivedAt,
    DedupKey,
}

#[derive(DeriveIden)]
enum FunnelProgress {
    Table,
    UserId,
    Step,
    ReachedAt,
}

#[derive(DeriveIden)]
enum AnalyticsRollups {
    Table,
    Name,
    Upto,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AnalyticsRevenueDaily {
    Table,
    Day,
    Metric,
    Amount,
    Entries,
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
}

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    Kind,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Verifications {
    Table,
    CreatedAt,
    EndedAt,
    UserId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    CreatedAt,
}

fn timestamp<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn day<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).string_len(10).not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConversionEvents::Table)
                    .col(
                        ColumnDef::new(ConversionEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ConversionEvents::Name)
                            .string_len(40)
                            .not_null(),
                    )
                    // `client` (TrackEvent) or `server` (a funnel step).
                    .col(
                        ColumnDef::new(ConversionEvents::Source)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ConversionEvents::UserId).uuid().null())
                    .col(
                        ColumnDef::new(ConversionEvents::AnonymousId)
                            .string_len(64)
                            .null(),
                    )
                    // A JSON object of strings, bounded by the API (20 × (40 + 200)).
                    .col(
                        ColumnDef::new(ConversionEvents::Properties)
                            .text()
                            .not_null(),
                    )
                    .col(timestamp(ConversionEvents::EventTime))
                    .col(timestamp(ConversionEvents::ReceivedAt))
                    // Makes a retried event (or a server step recorded twice) one row.
                    .col(
                        ColumnDef::new(ConversionEvents::DedupKey)
                            .string_len(200)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_conversion_events_dedup")
                    .table(ConversionEvents::Table)
                    .col(ConversionEvents::DedupKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversion_events_name_time")
                    .table(ConversionEvents::Table)
                    .col(ConversionEvents::Name)
                    .col(ConversionEvents::EventTime)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversion_events_user")
                    .table(ConversionEvents::Table)
                    .col(ConversionEvents::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FunnelProgress::Table)
                    .col(ColumnDef::new(FunnelProgress::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(FunnelProgress::Step)
                            .string_len(40)
                            .not_null(),
                    )
                    .col(timestamp(FunnelProgress::ReachedAt))
                    .primary_key(
                        Index::create()
                            .col(FunnelProgress::UserId)
                            .col(FunnelProgress::Step),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_funnel_progress_step_reached")
                    .table(FunnelProgress::Table)
                    .col(FunnelProgress::Step)
                    .col(FunnelProgress::ReachedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AnalyticsRollups::Table)
                    .col(
                        ColumnDef::new(AnalyticsRollups::Name)
                            .string_len(40)
                            .not_null()
                            .primary_key(),
                    )
                    .col(timestamp(AnalyticsRollups::Upto))
                    .col(timestamp(AnalyticsRollups::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AnalyticsRevenueDaily::Table)
                    .col(day(AnalyticsRevenueDaily::Day))
                    .col(
                        ColumnDef::new(AnalyticsRevenueDaily::Metric)
                            .string_len(40)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsRevenueDaily::Amount)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsRevenueDaily::Entries)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AnalyticsRevenueDaily::Day)
                            .col(AnalyticsRevenueDaily::Metric),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AnalyticsActiveDays::Table)
                    .col(day(AnalyticsActiveDays::Day))
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
        manager
            .create_table(
                Table::create()
                    .table(AnalyticsOutcomesDaily::Table)
                    .col(day(AnalyticsOutcomesDaily::Day))
                    .col(
                        ColumnDef::new(AnalyticsOutcomesDaily::Service)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsOutcomesDaily::Country)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsOutcomesDaily::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AnalyticsOutcomesDaily::Verifications)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(AnalyticsOutcomesDaily::Day)
                            .col(AnalyticsOutcomesDaily::Service)
                            .col(AnalyticsOutcomesDaily::Country)
                            .col(AnalyticsOutcomesDaily::Status),
                    )
                    .to_owned(),
            )
            .await?;

        // What the rollups and the raw tails read by time.
        manager
            .create_index(
                Index::create()
                    .name("ix_journal_entries_kind_created")
                    .table(JournalEntries::Table)
                    .col(JournalEntries::Kind)
                    .col(JournalEntries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_created_user")
                    .table(Verifications::Table)
                    .col(Verifications::CreatedAt)
                    .col(Verifications::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_ended")
                    .table(Verifications::Table)
                    .col(Verifications::EndedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_users_created")
                    .table(Users::Table)
                    .col(Users::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("ix_users_created", Users::Table.into_iden()),
            ("ix_verifications_ended", Verifications::Table.into_iden()),
            (
                "ix_verifications_created_user",
                Verifications::Table.into_iden(),
            ),
            (
                "ix_journal_entries_kind_created",
                JournalEntries::Table.into_iden(),
            ),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for table in [
            AnalyticsOutcomesDaily::Table.into_iden(),
            AnalyticsActiveDays::Table.into_iden(),
            AnalyticsRevenueDaily::Table.into_iden(),
            AnalyticsRollups::Table.into_iden(),
            FunnelProgress::Table.into_iden(),
            ConversionEvents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
