//! White-label tenants: resellers with their own host names, branding and prices.
//!
//! The platform itself is the default tenant and has no row: an account or a verification
//! whose `tenant_id` is NULL belongs to the platform. So every existing row keeps its
//! meaning without a back-fill, and the default tenant cannot be suspended by mistake.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000010_tenants"
    }
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Slug,
    DisplayName,
    OwnerId,
    State,
    MarkupBasisPoints,
    BrandName,
    LogoUri,
    FaviconUri,
    PrimaryColor,
    AccentColor,
    SupportEmail,
    MailSenderName,
    WebsiteUri,
    CreatedAt,
    UpdatedAt,
    SuspendedAt,
    SuspendReason,
}

#[derive(DeriveIden)]
enum TenantHosts {
    Table,
    Host,
    TenantId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TenantPrices {
    Table,
    TenantId,
    ServiceCode,
    CountryCode,
    Price,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TenantId,
}

#[derive(DeriveIden)]
enum Verifications {
    Table,
    TenantId,
    TenantMargin,
}

fn timestamp<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn text<T: IntoIden>(col: T, len: u32) -> ColumnDef {
    ColumnDef::new(col)
        .string_len(len)
        .not_null()
        .default("")
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(ColumnDef::new(Tenants::Id).uuid().not_null().primary_key())
                    // The last segment of `tenants/{slug}`; never changes.
                    .col(ColumnDef::new(Tenants::Slug).string_len(40).not_null())
                    .col(
                        ColumnDef::new(Tenants::DisplayName)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Tenants::OwnerId).uuid().not_null())
                    // `active` or `suspended`.
                    .col(ColumnDef::new(Tenants::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Tenants::MarkupBasisPoints)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(text(Tenants::BrandName, 64))
                    .col(text(Tenants::LogoUri, 2048))
                    .col(text(Tenants::FaviconUri, 2048))
                    .col(text(Tenants::PrimaryColor, 7))
                    .col(text(Tenants::AccentColor, 7))
                    .col(text(Tenants::SupportEmail, 254))
                    .col(text(Tenants::MailSenderName, 64))
                    .col(text(Tenants::WebsiteUri, 2048))
                    .col(timestamp(Tenants::CreatedAt))
                    .col(timestamp(Tenants::UpdatedAt))
                    .col(
                        ColumnDef::new(Tenants::SuspendedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Tenants::SuspendReason)
                            .string_len(500)
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tenants::Table, Tenants::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_tenants_slug")
                    .table(Tenants::Table)
                    .col(Tenants::Slug)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tenants_owner")
                    .table(Tenants::Table)
                    .col(Tenants::OwnerId)
                    .to_owned(),
            )
            .await?;

        // One row per host name: the primary key is what refuses a host claimed twice.
        manager
            .create_table(
                Table::create()
                    .table(TenantHosts::Table)
                    .col(
                        ColumnDef::new(TenantHosts::Host)
                            .string_len(253)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TenantHosts::TenantId).uuid().not_null())
                    .col(timestamp(TenantHosts::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TenantHosts::Table, TenantHosts::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tenant_hosts_tenant")
                    .table(TenantHosts::Table)
                    .col(TenantHosts::TenantId)
                    .to_owned(),
            )
            .await?;

        // Fixed prices; services without one are sold at the base price raised by the
        // tenant's markup.
        manager
            .create_table(
                Table::create()
                    .table(TenantPrices::Table)
                    .col(ColumnDef::new(TenantPrices::TenantId).uuid().not_null())
                    .col(
                        ColumnDef::new(TenantPrices::ServiceCode)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TenantPrices::CountryCode)
                            .string_len(2)
                            .not_null(),
                    )
                    .col(ColumnDef::new(TenantPrices::Price).big_integer().not_null())
                    .col(timestamp(TenantPrices::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(TenantPrices::TenantId)
                            .col(TenantPrices::ServiceCode)
                            .col(TenantPrices::CountryCode),
                    )
                    .check(Expr::col(TenantPrices::Price).gt(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TenantPrices::Table, TenantPrices::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // NULL: the platform's own customer (and verification).
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::TenantId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_users_tenant")
                    .table(Users::Table)
                    .col(Users::TenantId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Verifications::Table)
                    .add_column(ColumnDef::new(Verifications::TenantId).uuid().null())
                    .to_owned(),
            )
            .await?;
        // The tenant's share of the price held, booked to its margin account on capture.
        manager
            .alter_table(
                Table::alter()
                    .table(Verifications::Table)
                    .add_column(
                        ColumnDef::new(Verifications::TenantMargin)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Verifications::TenantMargin, Verifications::TenantId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Verifications::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ix_users_tenant")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::TenantId)
                    .to_owned(),
            )
            .await?;
        for table in [
            TenantPrices::Table.into_iden(),
            TenantHosts::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
