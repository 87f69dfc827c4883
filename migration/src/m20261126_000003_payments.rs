//! Top-ups: the payment log (one row per gateway reference, with its state machine), every
//! transition or refusal it went through, and the sandbox gateway's own book of payments.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000003_payments"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PaymentLogs {
    Table,
    Id,
    Reference,
    UserId,
    RequestId,
    RequestFingerprint,
    Gateway,
    Status,
    Amount,
    Currency,
    ChargeAmount,
    ChargeCurrency,
    CreditedAmount,
    FailureReason,
    CheckoutUrl,
    CallbackUrl,
    EntryId,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum PaymentEvents {
    Table,
    Id,
    PaymentId,
    FromStatus,
    ToStatus,
    Source,
    Detail,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SandboxPayments {
    Table,
    Reference,
    Email,
    Amount,
    Currency,
    Status,
    PaidAmount,
    PaidCurrency,
    CreatedAt,
    UpdatedAt,
}

fn timestamp<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn text<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PaymentLogs::Table)
                    .col(
                        ColumnDef::new(PaymentLogs::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(PaymentLogs::Reference, 100))
                    .col(ColumnDef::new(PaymentLogs::UserId).uuid().not_null())
                    .col(text(PaymentLogs::RequestId, 64))
                    .col(text(PaymentLogs::RequestFingerprint, 64))
                    .col(text(PaymentLogs::Gateway, 16))
                    .col(text(PaymentLogs::Status, 16))
                    // What the wallet gets, in its currency's minor units.
                    .col(ColumnDef::new(PaymentLogs::Amount).big_integer().not_null())
                    .col(text(PaymentLogs::Currency, 3))
                    // What the gateway was asked to charge, at the rate of the day.
                    .col(
                        ColumnDef::new(PaymentLogs::ChargeAmount)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(PaymentLogs::ChargeCurrency, 3))
                    .col(
                        ColumnDef::new(PaymentLogs::CreditedAmount)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PaymentLogs::FailureReason)
                            .string_len(32)
                            .null(),
                    )
                    .col(text(PaymentLogs::CheckoutUrl, 500))
                    .col(text(PaymentLogs::CallbackUrl, 500))
                    .col(ColumnDef::new(PaymentLogs::EntryId).uuid().null())
                    .col(timestamp(PaymentLogs::CreatedAt))
                    .col(timestamp(PaymentLogs::UpdatedAt))
                    .col(
                        ColumnDef::new(PaymentLogs::CompletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .check(Expr::col(PaymentLogs::Amount).gt(0))
                    .check(Expr::col(PaymentLogs::ChargeAmount).gt(0))
                    .check(Expr::col(PaymentLogs::Status).is_in([
                        "pending",
                        "processing",
                        "completed",
                        "failed",
                    ]))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PaymentLogs::Table, PaymentLogs::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PaymentLogs::Table, PaymentLogs::EntryId)
                            .to(JournalEntries::Table, JournalEntries::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The seed's `payment_logs(reference)`: one row per gateway reference.
        manager
            .create_index(
                Index::create()
                    .name("ux_payment_logs_reference")
                    .table(PaymentLogs::Table)
                    .col(PaymentLogs::Reference)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Idempotency of CreateTopUp: one top-up per account and request id.
        manager
            .create_index(
                Index::create()
                    .name("ux_payment_logs_user_request")
                    .table(PaymentLogs::Table)
                    .col(PaymentLogs::UserId)
                    .col(PaymentLogs::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_payment_logs_user_created")
                    .table(PaymentLogs::Table)
                    .col(PaymentLogs::UserId)
                    .col((PaymentLogs::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PaymentEvents::Table)
                    .col(
                        ColumnDef::new(PaymentEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PaymentEvents::PaymentId).uuid().not_null())
                    // Null for the row's creation.
                    .col(
                        ColumnDef::new(PaymentEvents::FromStatus)
                            .string_len(16)
                            .null(),
                    )
                    // Equal to `from_status` for a refusal that changed nothing.
                    .col(text(PaymentEvents::ToStatus, 16))
                    // `create`, `webhook`, `verify`, `sandbox`.
                    .col(text(PaymentEvents::Source, 16))
                    .col(text(PaymentEvents::Detail, 500))
                    .col(timestamp(PaymentEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PaymentEvents::Table, PaymentEvents::PaymentId)
                            .to(PaymentLogs::Table, PaymentLogs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_payment_events_payment")
                    .table(PaymentEvents::Table)
                    .col(PaymentEvents::PaymentId)
                    .col(PaymentEvents::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SandboxPayments::Table)
                    .col(
                        ColumnDef::new(SandboxPayments::Reference)
                            .string_len(100)
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(SandboxPayments::Email, 320))
                    .col(
                        ColumnDef::new(SandboxPayments::Amount)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(SandboxPayments::Currency, 3))
                    .col(text(SandboxPayments::Status, 16))
                    .col(
                        ColumnDef::new(SandboxPayments::PaidAmount)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SandboxPayments::PaidCurrency)
                            .string_len(3)
                            .null(),
                    )
                    .col(timestamp(SandboxPayments::CreatedAt))
                    .col(timestamp(SandboxPayments::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SandboxPayments::Table.into_iden(),
            PaymentEvents::Table.into_iden(),
            PaymentLogs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
