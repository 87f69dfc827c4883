//! The double-entry ledger: accounts, journal entries (one per business event, unique by
//! business key) and their lines (which sum to zero per entry).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000002_ledger"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum LedgerAccounts {
    Table,
    Id,
    Code,
    Kind,
    OwnerId,
    Currency,
    Balance,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    Id,
    BusinessKey,
    Kind,
    UserId,
    Reference,
    Memo,
    CreatedAt,
}

#[derive(DeriveIden)]
enum JournalLines {
    Table,
    Id,
    EntryId,
    AccountId,
    Amount,
    BalanceAfter,
    CreatedAt,
}

fn timestamp<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LedgerAccounts::Table)
                    .col(
                        ColumnDef::new(LedgerAccounts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    // `wallet:{user}:{currency}`, `holds:{user}:{currency}`,
                    // `platform:revenue:{currency}`, …: one account per code.
                    .col(
                        ColumnDef::new(LedgerAccounts::Code)
                            .string_len(96)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LedgerAccounts::Kind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(LedgerAccounts::OwnerId).uuid().null())
                    .col(
                        ColumnDef::new(LedgerAccounts::Currency)
                            .string_len(3)
                            .not_null(),
                    )
                    // Kept for customer accounts only (platform accounts are summed from
                    // their lines, so they are never a hot row); never below zero.
                    .col(
                        ColumnDef::new(LedgerAccounts::Balance)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(LedgerAccounts::CreatedAt))
                    .col(timestamp(LedgerAccounts::UpdatedAt))
                    .check(Expr::col(LedgerAccounts::Balance).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(LedgerAccounts::Table, LedgerAccounts::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_ledger_accounts_code")
                    .table(LedgerAccounts::Table)
                    .col(LedgerAccounts::Code)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JournalEntries::Table)
                    .col(
                        ColumnDef::new(JournalEntries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    // `topup:{reference}`, `hold:{verification}`, `settle:{verification}`, …:
                    // the database itself refuses a second copy of a business event.
                    .col(
                        ColumnDef::new(JournalEntries::BusinessKey)
                            .string_len(160)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(JournalEntries::Kind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(JournalEntries::UserId).uuid().null())
                    .col(
                        ColumnDef::new(JournalEntries::Reference)
                            .string_len(160)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(JournalEntries::Memo)
                            .string_len(500)
                            .not_null(),
                    )
                    .col(timestamp(JournalEntries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(JournalEntries::Table, JournalEntries::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_journal_entries_business_key")
                    .table(JournalEntries::Table)
                    .col(JournalEntries::BusinessKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The seed's `transactions(user_id, type, created_at DESC)`.
        manager
            .create_index(
                Index::create()
                    .name("ix_journal_entries_user_kind_created")
                    .table(JournalEntries::Table)
                    .col(JournalEntries::UserId)
                    .col(JournalEntries::Kind)
                    .col((JournalEntries::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JournalLines::Table)
                    .col(
                        ColumnDef::new(JournalLines::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(JournalLines::EntryId).uuid().not_null())
                    .col(ColumnDef::new(JournalLines::AccountId).uuid().not_null())
                    .col(
                        ColumnDef::new(JournalLines::Amount)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(JournalLines::BalanceAfter)
                            .big_integer()
                            .null(),
                    )
                    .col(timestamp(JournalLines::CreatedAt))
                    .check(Expr::col(JournalLines::Amount).ne(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(JournalLines::Table, JournalLines::EntryId)
                            .to(JournalEntries::Table, JournalEntries::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(JournalLines::Table, JournalLines::AccountId)
                            .to(LedgerAccounts::Table, LedgerAccounts::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_journal_lines_account_created")
                    .table(JournalLines::Table)
                    .col(JournalLines::AccountId)
                    .col((JournalLines::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_journal_lines_entry")
                    .table(JournalLines::Table)
                    .col(JournalLines::EntryId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JournalLines::Table.into_iden(),
            JournalEntries::Table.into_iden(),
            LedgerAccounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
