//! Billing: each account's subscription (created on first use; an account without one is
//! on starter), every change to it, its billing periods with their metered API calls and
//! overage charge, and usage alerts (one row per threshold crossed per period, so that
//! several instances alert exactly once).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000006_billing"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    UserId,
    Plan,
    AnchorAt,
    PeriodStart,
    PeriodEnd,
    ScheduledPlan,
    CancelAtPeriodEnd,
    PlanStartedAt,
    Version,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SubscriptionChanges {
    Table,
    Id,
    UserId,
    Actor,
    Kind,
    FromPlan,
    ToPlan,
    Charged,
    EffectiveAt,
    RequestId,
    RequestFingerprint,
    Response,
    CreatedAt,
}

#[derive(DeriveIden)]
enum BillingPeriods {
    Table,
    UserId,
    PeriodStart,
    PeriodEnd,
    Plan,
    IncludedApiCalls,
    OveragePerThousand,
    ApiCalls,
    CallsUpdatedAt,
    CloseStatus,
    OverageCalls,
    OverageCharge,
    OverageEntryId,
    ClosedAt,
    LeaseUntil,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UsageAlertSettings {
    Table,
    UserId,
    Thresholds,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UsageAlerts {
    Table,
    UserId,
    PeriodStart,
    Threshold,
    ApiCalls,
    IncludedApiCalls,
    CrossedAt,
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

fn big<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

fn user_fk<T: IntoIden + 'static>(table: T, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

const PLANS: [&str; 3] = ["starter", "pro", "enterprise"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(
                        ColumnDef::new(Subscriptions::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(Subscriptions::Plan, 16))
                    .col(timestamp(Subscriptions::AnchorAt))
                    .col(timestamp(Subscriptions::PeriodStart))
                    .col(timestamp(Subscriptions::PeriodEnd))
                    .col(text_null(Subscriptions::ScheduledPlan, 16))
                    .col(
                        ColumnDef::new(Subscriptions::CancelAtPeriodEnd)
                            .boolean()
                            .not_null(),
                    )
                    .col(timestamp(Subscriptions::PlanStartedAt))
                    // Every change is a conditional update on the version it read.
                    .col(big(Subscriptions::Version))
                    // Renewal job: taken until this time by one instance.
                    .col(timestamp_null(Subscriptions::LeaseUntil))
                    .col(timestamp(Subscriptions::CreatedAt))
                    .col(timestamp(Subscriptions::UpdatedAt))
                    .check(Expr::col(Subscriptions::Plan).is_in(PLANS))
                    .check(
                        Expr::col(Subscriptions::PeriodEnd)
                            .gt(Expr::col(Subscriptions::PeriodStart)),
                    )
                    .foreign_key(&mut user_fk(Subscriptions::Table, Subscriptions::UserId))
                    .to_owned(),
            )
            .await?;
        // The renewal job's scan: paid subscriptions whose period has ended.
        manager
            .create_index(
                Index::create()
                    .name("ix_subscriptions_plan_period_end")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::Plan)
                    .col(Subscriptions::PeriodEnd)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SubscriptionChanges::Table)
                    .col(
                        ColumnDef::new(SubscriptionChanges::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SubscriptionChanges::UserId)
                            .uuid()
                            .not_null(),
                    )
                    // `user:{id}`, `system` (renewals), later `admin:{id}`.
                    .col(text(SubscriptionChanges::Actor, 64))
                    .col(text(SubscriptionChanges::Kind, 32))
                    .col(text(SubscriptionChanges::FromPlan, 16))
                    .col(text(SubscriptionChanges::ToPlan, 16))
                    .col(big(SubscriptionChanges::Charged))
                    .col(timestamp(SubscriptionChanges::EffectiveAt))
                    .col(text_null(SubscriptionChanges::RequestId, 64))
                    .col(text_null(SubscriptionChanges::RequestFingerprint, 64))
                    // The encoded ChangePlanResponse, replayed for a repeated request id.
                    .col(ColumnDef::new(SubscriptionChanges::Response).blob().null())
                    .col(timestamp(SubscriptionChanges::CreatedAt))
                    .check(Expr::col(SubscriptionChanges::Charged).gte(0))
                    .foreign_key(&mut user_fk(
                        SubscriptionChanges::Table,
                        SubscriptionChanges::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        // Idempotency of ChangePlan (NULL request ids, the job's changes, never collide).
        manager
            .create_index(
                Index::create()
                    .name("ux_subscription_changes_user_request")
                    .table(SubscriptionChanges::Table)
                    .col(SubscriptionChanges::UserId)
                    .col(SubscriptionChanges::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_subscription_changes_user_created")
                    .table(SubscriptionChanges::Table)
                    .col(SubscriptionChanges::UserId)
                    .col(SubscriptionChanges::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BillingPeriods::Table)
                    .col(ColumnDef::new(BillingPeriods::UserId).uuid().not_null())
                    .col(timestamp(BillingPeriods::PeriodStart))
                    .col(timestamp(BillingPeriods::PeriodEnd))
                    .col(text(BillingPeriods::Plan, 16))
                    .col(big(BillingPeriods::IncludedApiCalls))
                    .col(big(BillingPeriods::OveragePerThousand))
                    .col(
                        ColumnDef::new(BillingPeriods::ApiCalls)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp_null(BillingPeriods::CallsUpdatedAt))
                    // open → charged | nothing (no overage) | unpaid (retried).
                    .col(text(BillingPeriods::CloseStatus, 16))
                    .col(
                        ColumnDef::new(BillingPeriods::OverageCalls)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(BillingPeriods::OverageCharge)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(BillingPeriods::OverageEntryId).uuid().null())
                    .col(timestamp_null(BillingPeriods::ClosedAt))
                    .col(timestamp_null(BillingPeriods::LeaseUntil))
                    .col(timestamp(BillingPeriods::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(BillingPeriods::UserId)
                            .col(BillingPeriods::PeriodStart),
                    )
                    .check(Expr::col(BillingPeriods::Plan).is_in(PLANS))
                    .check(Expr::col(BillingPeriods::ApiCalls).gte(0))
                    .check(Expr::col(BillingPeriods::IncludedApiCalls).gte(0))
                    .check(
                        Expr::col(BillingPeriods::CloseStatus)
                            .is_in(["open", "charged", "nothing", "unpaid"]),
                    )
                    .foreign_key(&mut user_fk(BillingPeriods::Table, BillingPeriods::UserId))
                    .to_owned(),
            )
            .await?;
        // The close job's scan: open periods that have ended.
        manager
            .create_index(
                Index::create()
                    .name("ix_billing_periods_close")
                    .table(BillingPeriods::Table)
                    .col(BillingPeriods::CloseStatus)
                    .col(BillingPeriods::PeriodEnd)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UsageAlertSettings::Table)
                    .col(
                        ColumnDef::new(UsageAlertSettings::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    // Ascending percents separated by commas; empty: alerts off.
                    .col(text(UsageAlertSettings::Thresholds, 64))
                    .col(timestamp(UsageAlertSettings::UpdatedAt))
                    .foreign_key(&mut user_fk(
                        UsageAlertSettings::Table,
                        UsageAlertSettings::UserId,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UsageAlerts::Table)
                    .col(ColumnDef::new(UsageAlerts::UserId).uuid().not_null())
                    .col(timestamp(UsageAlerts::PeriodStart))
                    .col(ColumnDef::new(UsageAlerts::Threshold).integer().not_null())
                    .col(big(UsageAlerts::ApiCalls))
                    .col(big(UsageAlerts::IncludedApiCalls))
                    .col(timestamp(UsageAlerts::CrossedAt))
                    .primary_key(
                        Index::create()
                            .col(UsageAlerts::UserId)
                            .col(UsageAlerts::PeriodStart)
                            .col(UsageAlerts::Threshold),
                    )
                    .foreign_key(&mut user_fk(UsageAlerts::Table, UsageAlerts::UserId))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UsageAlerts::Table.into_iden(),
            UsageAlertSettings::Table.into_iden(),
            BillingPeriods::Table.into_iden(),
            SubscriptionChanges::Table.into_iden(),
            Subscriptions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
