//! Five indexes of `verifications` become partial: they keep only the rows that have a
//! value in the column they are searched by. A new verification has none of these (no
//! number, no poll or cleanup due, not ended), so its insert no longer writes an entry in
//! each of them, and a change writes entries only in those it gives a value. Every query
//! that uses them compares the column to a value, which PostgreSQL and SQLite both know
//! implies `IS NOT NULL`, so each still uses its index:
//! - `ix_verifications_next_poll` (`next_poll_at <= now`, the poll job);
//! - `ix_verifications_cleanup` (`cleanup_at <= now`, the cleanup job);
//! - `ix_verifications_ended` (`ended_at` in a window, the analytics);
//! - `ix_verifications_provider_ref` (a provider's webhook names its rental);
//! - `ix_verifications_user_phone` (`InjectSms` names a number).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000012_partial_indexes"
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Verifications {
    Table,
    NextPollAt,
    CleanupAt,
    EndedAt,
    Provider,
    ProviderRef,
    UserId,
    PhoneNumber,
}

/// Each index: its name, its columns, and the column a row must have a value in.
const INDEXES: [(&str, &[Verifications], Verifications); 5] = [
    (
        "ix_verifications_next_poll",
        &[Verifications::NextPollAt],
        Verifications::NextPollAt,
    ),
    (
        "ix_verifications_cleanup",
        &[Verifications::CleanupAt],
        Verifications::CleanupAt,
    ),
    (
        "ix_verifications_ended",
        &[Verifications::EndedAt],
        Verifications::EndedAt,
    ),
    (
        "ix_verifications_provider_ref",
        &[Verifications::Provider, Verifications::ProviderRef],
        Verifications::ProviderRef,
    ),
    (
        "ix_verifications_user_phone",
        &[Verifications::UserId, Verifications::PhoneNumber],
        Verifications::PhoneNumber,
    ),
];

async fn recreate(manager: &SchemaManager<'_>, partial: bool) -> Result<(), DbErr> {
    for (name, columns, present) in INDEXES {
        manager
            .drop_index(
                Index::drop()
                    .name(name)
                    .table(Verifications::Table)
                    .to_owned(),
            )
            .await?;
        let mut index = Index::create();
        index.name(name).table(Verifications::Table);
        for column in columns {
            index.col(*column);
        }
        if partial {
            index.and_where(Expr::col(present).is_not_null());
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recreate(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recreate(manager, false).await
    }
}
