//! Catalog storage. Every function takes any connection (pool or transaction), so the
//! service decides what happens atomically.
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set,
};

use super::domain::{CountryEntry, PriceEntry, ServiceEntry, Snapshot};
use super::entities::{catalog_countries, catalog_prices, catalog_services, catalog_settings};
use crate::error::StoreError;

/// The id of the one settings row.
const SETTINGS_ID: i32 = 1;
/// Rows per multi-row insert (well under SQLite's and PostgreSQL's bind limits).
const INSERT_CHUNK: usize = 200;

/// The whole catalog on offer, as one snapshot.
pub async fn snapshot(conn: &impl ConnectionTrait) -> Result<Snapshot, StoreError> {
    let markup = catalog_settings::Entity::find_by_id(SETTINGS_ID)
        .one(conn)
        .await?
        .map_or(0, |s| u32::try_from(s.markup_basis_points).unwrap_or(0));
    let services = catalog_services::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|s| ServiceEntry {
            code: s.code,
            display_name: s.display_name,
        })
        .collect();
    let countries = catalog_countries::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|c| CountryEntry {
            code: c.code,
            display_name: c.display_name,
            calling_code: c.calling_code,
        })
        .collect();
    let prices = catalog_prices::Entity::find()
        .filter(catalog_prices::Column::WithdrawnAt.is_null())
        .all(conn)
        .await?
        .into_iter()
        .map(|p| PriceEntry {
            service: p.service_code,
            country: p.country_code,
            base_price: p.base_price,
            // What the cache keeps (JSON, microseconds): a fresh snapshot says the same.
            updated_at: p.updated_at.trunc_subsecs(6),
        })
        .collect();
    Ok(Snapshot {
        markup_basis_points: markup,
        services,
        countries,
        prices,
        tenants: crate::tenant::repo::storefronts(conn).await?,
    })
}

pub async fn service_exists(conn: &impl ConnectionTrait, code: &str) -> Result<bool, StoreError> {
    Ok(catalog_services::Entity::find_by_id(code.to_owned())
        .one(conn)
        .await?
        .is_some())
}

pub async fn country_exists(conn: &impl ConnectionTrait, code: &str) -> Result<bool, StoreError> {
    Ok(catalog_countries::Entity::find_by_id(code.to_owned())
        .one(conn)
        .await?
        .is_some())
}

/// The price row of a service in a country (offered or withdrawn), locked for update on
/// PostgreSQL so that concurrent changes of one price queue.
pub async fn price_for_update(
    conn: &impl ConnectionTrait,
    service: &str,
    country: &str,
) -> Result<Option<catalog_prices::Model>, StoreError> {
    Ok(
        catalog_prices::Entity::find_by_id((service.to_owned(), country.to_owned()))
            .lock_exclusive()
            .one(conn)
            .await?,
    )
}

/// Offers a service in a country at `base_price`: inserts the row, or updates it (and
/// offers it again if it was withdrawn). `updated_at` moves only when something changed.
pub async fn save_price(
    conn: &impl ConnectionTrait,
    existing: Option<catalog_prices::Model>,
    service: &str,
    country: &str,
    base_price: i64,
    currency: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match existing {
        None => {
            // An upsert: two first prices of one pair may race; the later one wins.
            catalog_prices::Entity::insert(
                catalog_prices::Model {
                    service_code: service.to_owned(),
                    country_code: country.to_owned(),
                    base_price,
                    currency: currency.to_owned(),
                    withdrawn_at: None,
                    created_at: now,
                    updated_at: now,
                }
                .into_active_model(),
            )
            .on_conflict(
                OnConflict::columns([
                    catalog_prices::Column::ServiceCode,
                    catalog_prices::Column::CountryCode,
                ])
                .update_columns([
                    catalog_prices::Column::BasePrice,
                    catalog_prices::Column::Currency,
                    catalog_prices::Column::WithdrawnAt,
                    catalog_prices::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        }
        Some(row)
            if row.base_price == base_price
                && row.withdrawn_at.is_none()
                && row.currency == currency => {}
        Some(row) => {
            let mut model = row.into_active_model();
            model.base_price = Set(base_price);
            model.currency = Set(currency.to_owned());
            model.withdrawn_at = Set(None);
            model.updated_at = Set(now);
            model.update(conn).await?;
        }
    }
    Ok(())
}

/// Stops offering a price (the row stays). Returns whether it was on offer.
pub async fn withdraw_price(
    conn: &impl ConnectionTrait,
    existing: Option<catalog_prices::Model>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    match existing {
        Some(row) if row.withdrawn_at.is_none() => {
            let mut model = row.into_active_model();
            model.withdrawn_at = Set(Some(now));
            model.updated_at = Set(now);
            model.update(conn).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Creates the settings row with `markup` unless it exists.
pub async fn ensure_settings(
    conn: &impl ConnectionTrait,
    markup: u32,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    catalog_settings::Entity::insert(
        catalog_settings::Model {
            id: SETTINGS_ID,
            markup_basis_points: i32::try_from(markup).unwrap_or(i32::MAX),
            seed_digest: None,
            updated_at: now,
        }
        .into_active_model(),
    )
    .on_conflict(
        OnConflict::column(catalog_settings::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// The settings row, locked until the transaction ends (PostgreSQL; SQLite has one writer
/// anyway): instances seeding at once take turns.
pub async fn lock_settings(
    conn: &impl ConnectionTrait,
) -> Result<catalog_settings::Model, StoreError> {
    catalog_settings::Entity::find_by_id(SETTINGS_ID)
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the catalog settings row is missing".to_owned()))
}

pub async fn save_settings(
    conn: &impl ConnectionTrait,
    row: catalog_settings::Model,
    markup: u32,
    seed_digest: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut model = row.into_active_model();
    model.markup_basis_points = Set(i32::try_from(markup).unwrap_or(i32::MAX));
    model.seed_digest = Set(Some(seed_digest.to_owned()));
    model.updated_at = Set(now);
    model.update(conn).await?;
    Ok(())
}

pub async fn all_services(
    conn: &impl ConnectionTrait,
) -> Result<Vec<catalog_services::Model>, StoreError> {
    Ok(catalog_services::Entity::find().all(conn).await?)
}

pub async fn all_countries(
    conn: &impl ConnectionTrait,
) -> Result<Vec<catalog_countries::Model>, StoreError> {
    Ok(catalog_countries::Entity::find().all(conn).await?)
}

pub async fn all_prices(
    conn: &impl ConnectionTrait,
) -> Result<Vec<catalog_prices::Model>, StoreError> {
    Ok(catalog_prices::Entity::find().all(conn).await?)
}

pub async fn insert_services(
    conn: &impl ConnectionTrait,
    rows: Vec<catalog_services::Model>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        catalog_services::Entity::insert_many(chunk.iter().cloned().map(|r| r.into_active_model()))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

pub async fn insert_countries(
    conn: &impl ConnectionTrait,
    rows: Vec<catalog_countries::Model>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        catalog_countries::Entity::insert_many(
            chunk.iter().cloned().map(|r| r.into_active_model()),
        )
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

pub async fn insert_prices(
    conn: &impl ConnectionTrait,
    rows: Vec<catalog_prices::Model>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        catalog_prices::Entity::insert_many(chunk.iter().cloned().map(|r| r.into_active_model()))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

pub async fn rename_service(
    conn: &impl ConnectionTrait,
    row: catalog_services::Model,
    display_name: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut model = row.into_active_model();
    model.display_name = Set(display_name.to_owned());
    model.updated_at = Set(now);
    model.update(conn).await?;
    Ok(())
}

pub async fn update_country(
    conn: &impl ConnectionTrait,
    row: catalog_countries::Model,
    display_name: &str,
    calling_code: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut model = row.into_active_model();
    model.display_name = Set(display_name.to_owned());
    model.calling_code = Set(calling_code.to_owned());
    model.updated_at = Set(now);
    model.update(conn).await?;
    Ok(())
}
