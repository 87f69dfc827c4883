//! The catalog: the online services numbers are rented for, the countries numbers come
//! from, the platform's base price of each service in each country, and the storefront
//! settings the seed file keeps (the markup over base prices, the last seed applied).
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000004_catalog"
    }
}

#[derive(DeriveIden)]
enum CatalogServices {
    Table,
    Code,
    DisplayName,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CatalogCountries {
    Table,
    Code,
    DisplayName,
    CallingCode,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CatalogPrices {
    Table,
    ServiceCode,
    CountryCode,
    BasePrice,
    Currency,
    WithdrawnAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CatalogSettings {
    Table,
    Id,
    MarkupBasisPoints,
    SeedDigest,
    UpdatedAt,
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
                    .table(CatalogServices::Table)
                    // `whatsapp`, `telegram`, …: lowercase letters, digits and `-`.
                    .col(
                        ColumnDef::new(CatalogServices::Code)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CatalogServices::DisplayName)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(timestamp(CatalogServices::CreatedAt))
                    .col(timestamp(CatalogServices::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CatalogCountries::Table)
                    // ISO 3166-1 alpha-2, in capitals.
                    .col(
                        ColumnDef::new(CatalogCountries::Code)
                            .string_len(2)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CatalogCountries::DisplayName)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CatalogCountries::CallingCode)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(timestamp(CatalogCountries::CreatedAt))
                    .col(timestamp(CatalogCountries::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CatalogPrices::Table)
                    .col(
                        ColumnDef::new(CatalogPrices::ServiceCode)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CatalogPrices::CountryCode)
                            .string_len(2)
                            .not_null(),
                    )
                    // The platform's base price of one verification, in minor units of
                    // `currency`; what customers pay is derived from it.
                    .col(
                        ColumnDef::new(CatalogPrices::BasePrice)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CatalogPrices::Currency)
                            .string_len(3)
                            .not_null(),
                    )
                    // Set when the service is no longer offered there; the row stays for
                    // the record (and for verifications that name it).
                    .col(
                        ColumnDef::new(CatalogPrices::WithdrawnAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(timestamp(CatalogPrices::CreatedAt))
                    .col(timestamp(CatalogPrices::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(CatalogPrices::ServiceCode)
                            .col(CatalogPrices::CountryCode),
                    )
                    .check(Expr::col(CatalogPrices::BasePrice).gt(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CatalogPrices::Table, CatalogPrices::ServiceCode)
                            .to(CatalogServices::Table, CatalogServices::Code)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CatalogPrices::Table, CatalogPrices::CountryCode)
                            .to(CatalogCountries::Table, CatalogCountries::Code)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The primary key serves look-ups by service; this one serves "what is offered in
        // this country".
        manager
            .create_index(
                Index::create()
                    .name("ix_catalog_prices_country_service")
                    .table(CatalogPrices::Table)
                    .col(CatalogPrices::CountryCode)
                    .col(CatalogPrices::ServiceCode)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CatalogSettings::Table)
                    // One row (id 1): locking it serialises instances seeding at once.
                    .col(
                        ColumnDef::new(CatalogSettings::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    // The storefront's markup over base prices, in basis points (2500 sells
                    // a 1.00 base price at 1.25).
                    .col(
                        ColumnDef::new(CatalogSettings::MarkupBasisPoints)
                            .integer()
                            .not_null(),
                    )
                    // SHA-256 of the seed file last applied (hex).
                    .col(
                        ColumnDef::new(CatalogSettings::SeedDigest)
                            .string_len(64)
                            .null(),
                    )
                    .col(timestamp(CatalogSettings::UpdatedAt))
                    .check(Expr::col(CatalogSettings::Id).eq(1))
                    .check(Expr::col(CatalogSettings::MarkupBasisPoints).gte(0))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CatalogSettings::Table.into_iden(),
            CatalogPrices::Table.into_iden(),
            CatalogCountries::Table.into_iden(),
            CatalogServices::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
