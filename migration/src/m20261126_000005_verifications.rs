//! Verifications: one row per rented number with its lifecycle, the messages it received,
//! and its events (a gap-free sequence per verification, stored so that watchers can resume).
//! The columns the background jobs need (when to poll next, what to tell the provider) sit
//! on the row, each with the index its job scans.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000005_verifications"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Verifications {
    Table,
    Id,
    UserId,
    RequestId,
    RequestFingerprint,
    Service,
    Country,
    Price,
    Currency,
    Status,
    ChargeState,
    Provider,
    ProviderRef,
    PhoneNumber,
    Code,
    FailureReason,
    RefundReason,
    RefundTransactionId,
    RefundedAt,
    LastSequence,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
    EndedAt,
    NextPollAt,
    PollCount,
    Cleanup,
    CleanupAt,
    CleanupAttempts,
}

#[derive(DeriveIden)]
enum VerificationMessages {
    Table,
    Id,
    VerificationId,
    DedupKey,
    Sender,
    Text,
    Code,
    ReceivedAt,
    AfterRefund,
    CreatedAt,
}

#[derive(DeriveIden)]
enum VerificationEvents {
    Table,
    VerificationId,
    Sequence,
    UserId,
    Kind,
    Payload,
    CreatedAt,
}

fn timestamp<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn timestamp_null<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn text<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().to_owned()
}

fn text_null<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Verifications::Table)
                    .col(
                        ColumnDef::new(Verifications::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Verifications::UserId).uuid().not_null())
                    .col(text(Verifications::RequestId, 64))
                    .col(text(Verifications::RequestFingerprint, 64))
                    .col(text(Verifications::Service, 32))
                    .col(text(Verifications::Country, 2))
                    .col(
                        ColumnDef::new(Verifications::Price)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(Verifications::Currency, 3))
                    .col(text(Verifications::Status, 16))
                    .col(text(Verifications::ChargeState, 16))
                    .col(text_null(Verifications::Provider, 32))
                    .col(text_null(Verifications::ProviderRef, 128))
                    .col(text_null(Verifications::PhoneNumber, 20))
                    .col(text_null(Verifications::Code, 16))
                    .col(text_null(Verifications::FailureReason, 32))
                    .col(text_null(Verifications::RefundReason, 16))
                    .col(
                        ColumnDef::new(Verifications::RefundTransactionId)
                            .uuid()
                            .null(),
                    )
                    .col(timestamp_null(Verifications::RefundedAt))
                    .col(
                        ColumnDef::new(Verifications::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(timestamp(Verifications::CreatedAt))
                    .col(timestamp(Verifications::UpdatedAt))
                    .col(timestamp_null(Verifications::ExpiresAt))
                    .col(timestamp_null(Verifications::EndedAt))
                    // Polling job: when to ask the provider next (NULL: not polled).
                    .col(timestamp_null(Verifications::NextPollAt))
                    .col(
                        ColumnDef::new(Verifications::PollCount)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    // Cleanup job: what the provider still has to be told (`cancel`,
                    // `report`, `finish`) and when to try next (NULL: nothing to tell).
                    .col(text_null(Verifications::Cleanup, 16))
                    .col(timestamp_null(Verifications::CleanupAt))
                    .col(
                        ColumnDef::new(Verifications::CleanupAttempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .check(Expr::col(Verifications::Price).gt(0))
                    .check(Expr::col(Verifications::LastSequence).gte(1))
                    .check(Expr::col(Verifications::Status).is_in([
                        "pending",
                        "active",
                        "completed",
                        "cancelled",
                        "expired",
                        "failed",
                    ]))
                    .check(
                        Expr::col(Verifications::ChargeState)
                            .is_in(["held", "captured", "refunded"]),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Verifications::Table, Verifications::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // Idempotency of CreateVerification: one verification per account and request id.
        manager
            .create_index(
                Index::create()
                    .name("ux_verifications_user_request")
                    .table(Verifications::Table)
                    .col(Verifications::UserId)
                    .col(Verifications::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The seed's two: a customer's list, newest first; and by status for the jobs and
        // the admin views.
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_user_created")
                    .table(Verifications::Table)
                    .col(Verifications::UserId)
                    .col((Verifications::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_status_created")
                    .table(Verifications::Table)
                    .col(Verifications::Status)
                    .col((Verifications::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // The jobs: due polls, due expiries (status + expires_at), due provider cleanups.
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_next_poll")
                    .table(Verifications::Table)
                    .col(Verifications::NextPollAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_status_expires")
                    .table(Verifications::Table)
                    .col(Verifications::Status)
                    .col(Verifications::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_cleanup")
                    .table(Verifications::Table)
                    .col(Verifications::CleanupAt)
                    .to_owned(),
            )
            .await?;
        // A provider's webhook names its rental; InjectSms names a number.
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_provider_ref")
                    .table(Verifications::Table)
                    .col(Verifications::Provider)
                    .col(Verifications::ProviderRef)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_verifications_user_phone")
                    .table(Verifications::Table)
                    .col(Verifications::UserId)
                    .col(Verifications::PhoneNumber)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VerificationMessages::Table)
                    .col(
                        ColumnDef::new(VerificationMessages::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(VerificationMessages::VerificationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(text(VerificationMessages::DedupKey, 200))
                    .col(text(VerificationMessages::Sender, 64))
                    .col(ColumnDef::new(VerificationMessages::Text).text().not_null())
                    .col(text_null(VerificationMessages::Code, 16))
                    .col(timestamp(VerificationMessages::ReceivedAt))
                    .col(
                        ColumnDef::new(VerificationMessages::AfterRefund)
                            .boolean()
                            .not_null(),
                    )
                    .col(timestamp(VerificationMessages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                VerificationMessages::Table,
                                VerificationMessages::VerificationId,
                            )
                            .to(Verifications::Table, Verifications::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A poll returns every message each time: each is stored once.
        manager
            .create_index(
                Index::create()
                    .name("ux_verification_messages_dedup")
                    .table(VerificationMessages::Table)
                    .col(VerificationMessages::VerificationId)
                    .col(VerificationMessages::DedupKey)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VerificationEvents::Table)
                    .col(
                        ColumnDef::new(VerificationEvents::VerificationId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VerificationEvents::Sequence)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(VerificationEvents::UserId).uuid().not_null())
                    .col(text(VerificationEvents::Kind, 24))
                    // The event as watchers receive it (a protobuf `VerificationEvent`).
                    .col(
                        ColumnDef::new(VerificationEvents::Payload)
                            .blob()
                            .not_null(),
                    )
                    .col(timestamp(VerificationEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(VerificationEvents::VerificationId)
                            .col(VerificationEvents::Sequence),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                VerificationEvents::Table,
                                VerificationEvents::VerificationId,
                            )
                            .to(Verifications::Table, Verifications::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            VerificationEvents::Table.into_iden(),
            VerificationMessages::Table.into_iden(),
            Verifications::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
