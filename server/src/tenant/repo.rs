//! Storage of the tenant room: tenants, their host names and their fixed prices.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, SqlErr,
};
use uuid::Uuid;

use super::domain::{Branding, TenantState};
use super::entities::{tenant_hosts, tenant_prices, tenants};
use crate::catalog::domain::TenantEntry;
use crate::error::StoreError;
use crate::identity::entities::users;

pub type TenantRow = tenants::Model;
pub type FixedPrice = tenant_prices::Model;

/// Why a write was refused by a uniqueness rule.
#[derive(Debug)]
pub enum Taken {
    Slug,
    Host(String),
}

/// What a write that may collide did.
pub enum Written {
    Done,
    Taken(Taken),
}

fn taken(error: sea_orm::DbErr, host: Option<&str>) -> Result<Written, StoreError> {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => {
            if message.contains("slug") {
                Ok(Written::Taken(Taken::Slug))
            } else {
                Ok(Written::Taken(Taken::Host(
                    host.unwrap_or_default().to_owned(),
                )))
            }
        }
        _ => Err(error.into()),
    }
}

pub async fn by_slug(
    conn: &impl ConnectionTrait,
    slug: &str,
) -> Result<Option<TenantRow>, StoreError> {
    Ok(tenants::Entity::find()
        .filter(tenants::Column::Slug.eq(slug))
        .one(conn)
        .await?)
}

pub async fn by_id(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<TenantRow>, StoreError> {
    Ok(tenants::Entity::find_by_id(id).one(conn).await?)
}

/// Tenants newest first (ids are time-ordered), after `before`, at most `limit + 1`.
pub async fn list(
    conn: &impl ConnectionTrait,
    state: Option<&'static str>,
    owner: Option<Uuid>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<TenantRow>, StoreError> {
    let mut query = tenants::Entity::find();
    if let Some(state) = state {
        query = query.filter(tenants::Column::State.eq(state));
    }
    if let Some(owner) = owner {
        query = query.filter(tenants::Column::OwnerId.eq(owner));
    }
    if let Some(before) = before {
        query = query.filter(tenants::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(tenants::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?)
}

/// Inserts a new tenant; `Taken::Slug` if its id is in use.
pub async fn insert(conn: &impl ConnectionTrait, row: TenantRow) -> Result<Written, StoreError> {
    match tenants::Entity::insert(row.into_active_model())
        .exec_without_returning(conn)
        .await
    {
        Ok(_) => Ok(Written::Done),
        Err(error) => taken(error, None),
    }
}

/// Writes every column of an existing tenant.
pub async fn save(conn: &impl ConnectionTrait, row: TenantRow) -> Result<TenantRow, StoreError> {
    let mut model = row.into_active_model();
    for column in [
        tenants::Column::DisplayName,
        tenants::Column::OwnerId,
        tenants::Column::State,
        tenants::Column::MarkupBasisPoints,
        tenants::Column::BrandName,
        tenants::Column::LogoUri,
        tenants::Column::FaviconUri,
        tenants::Column::PrimaryColor,
        tenants::Column::AccentColor,
        tenants::Column::SupportEmail,
        tenants::Column::MailSenderName,
        tenants::Column::WebsiteUri,
        tenants::Column::UpdatedAt,
        tenants::Column::SuspendedAt,
        tenants::Column::SuspendReason,
    ] {
        model.reset(column);
    }
    Ok(model.update(conn).await?)
}

/// The host names of each of `tenants`, sorted.
pub async fn hosts_of(
    conn: &impl ConnectionTrait,
    tenants: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
    let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
    if tenants.is_empty() {
        return Ok(out);
    }
    let rows = tenant_hosts::Entity::find()
        .filter(tenant_hosts::Column::TenantId.is_in(tenants.iter().copied()))
        .order_by_asc(tenant_hosts::Column::Host)
        .all(conn)
        .await?;
    for row in rows {
        out.entry(row.tenant_id).or_default().push(row.host);
    }
    Ok(out)
}

/// The tenant other than `except` that holds one of `hosts`, if any.
pub async fn host_holder(
    conn: &impl ConnectionTrait,
    hosts: &[String],
    except: Option<Uuid>,
) -> Result<Option<String>, StoreError> {
    if hosts.is_empty() {
        return Ok(None);
    }
    let mut query = tenant_hosts::Entity::find()
        .filter(tenant_hosts::Column::Host.is_in(hosts.iter().cloned()));
    if let Some(except) = except {
        query = query.filter(tenant_hosts::Column::TenantId.ne(except));
    }
    Ok(query.one(conn).await?.map(|row| row.host))
}

/// Replaces a tenant's host names. `Taken::Host` if another tenant holds one (checked
/// first; the primary key catches a concurrent claim).
pub async fn replace_hosts(
    conn: &impl ConnectionTrait,
    tenant: Uuid,
    hosts: &[String],
    now: DateTime<Utc>,
) -> Result<Written, StoreError> {
    if let Some(host) = host_holder(conn, hosts, Some(tenant)).await? {
        return Ok(Written::Taken(Taken::Host(host)));
    }
    tenant_hosts::Entity::delete_many()
        .filter(tenant_hosts::Column::TenantId.eq(tenant))
        .exec(conn)
        .await?;
    for host in hosts {
        let row = tenant_hosts::Model {
            host: host.clone(),
            tenant_id: tenant,
            created_at: now,
        };
        if let Err(error) = tenant_hosts::Entity::insert(row.into_active_model())
            .exec_without_returning(conn)
            .await
        {
            return taken(error, Some(host));
        }
    }
    Ok(Written::Done)
}

/// How many customers each of `tenants` has (a tenant without any is missing).
pub async fn customer_counts(
    conn: &impl ConnectionTrait,
    tenants: &[Uuid],
) -> Result<HashMap<Uuid, u64>, StoreError> {
    if tenants.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Option<Uuid>, i64)> = users::Entity::find()
        .select_only()
        .column(users::Column::TenantId)
        .column_as(users::Column::Id.count(), "customers")
        .filter(users::Column::TenantId.is_in(tenants.iter().copied()))
        .group_by(users::Column::TenantId)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(tenant, n)| Some((tenant?, u64::try_from(n).unwrap_or(0))))
        .collect())
}

/// Every tenant's fixed prices.
pub async fn all_fixed_prices(conn: &impl ConnectionTrait) -> Result<Vec<FixedPrice>, StoreError> {
    Ok(tenant_prices::Entity::find().all(conn).await?)
}

/// One tenant's fixed prices.
pub async fn fixed_prices_of(
    conn: &impl ConnectionTrait,
    tenant: Uuid,
) -> Result<Vec<FixedPrice>, StoreError> {
    Ok(tenant_prices::Entity::find()
        .filter(tenant_prices::Column::TenantId.eq(tenant))
        .all(conn)
        .await?)
}

/// Every tenant, with its host names.
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<(TenantRow, Vec<String>)>, StoreError> {
    let rows = tenants::Entity::find()
        .order_by_asc(tenants::Column::Id)
        .all(conn)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
    let mut hosts = hosts_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|t| {
            let h = hosts.remove(&t.id).unwrap_or_default();
            (t, h)
        })
        .collect())
}

pub async fn fixed_price(
    conn: &impl ConnectionTrait,
    tenant: Uuid,
    service: &str,
    country: &str,
) -> Result<Option<FixedPrice>, StoreError> {
    Ok(
        tenant_prices::Entity::find_by_id((tenant, service.to_owned(), country.to_owned()))
            .one(conn)
            .await?,
    )
}

/// Sets (inserts or replaces) a fixed price.
pub async fn put_fixed_price(
    conn: &impl ConnectionTrait,
    row: FixedPrice,
) -> Result<(), StoreError> {
    tenant_prices::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::columns([
                tenant_prices::Column::TenantId,
                tenant_prices::Column::ServiceCode,
                tenant_prices::Column::CountryCode,
            ])
            .update_columns([
                tenant_prices::Column::Price,
                tenant_prices::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Removes a fixed price; whether there was one.
pub async fn remove_fixed_price(
    conn: &impl ConnectionTrait,
    tenant: Uuid,
    service: &str,
    country: &str,
) -> Result<bool, StoreError> {
    let result =
        tenant_prices::Entity::delete_by_id((tenant, service.to_owned(), country.to_owned()))
            .exec(conn)
            .await?;
    Ok(result.rows_affected > 0)
}

/// A tenant's branding as stored.
pub fn branding(row: &TenantRow) -> Branding {
    Branding {
        display_name: row.brand_name.clone(),
        logo_uri: row.logo_uri.clone(),
        favicon_uri: row.favicon_uri.clone(),
        primary_color: row.primary_color.clone(),
        accent_color: row.accent_color.clone(),
        support_email: row.support_email.clone(),
        mail_sender_name: row.mail_sender_name.clone(),
        website_uri: row.website_uri.clone(),
    }
}

/// Stores `branding` in the row.
pub fn set_branding(row: &mut TenantRow, branding: Branding) {
    row.brand_name = branding.display_name;
    row.logo_uri = branding.logo_uri;
    row.favicon_uri = branding.favicon_uri;
    row.primary_color = branding.primary_color;
    row.accent_color = branding.accent_color;
    row.support_email = branding.support_email;
    row.mail_sender_name = branding.mail_sender_name;
    row.website_uri = branding.website_uri;
}

/// Every tenant as the catalog's storefronts need it (part of the catalog snapshot).
pub async fn storefronts(conn: &impl ConnectionTrait) -> Result<Vec<TenantEntry>, StoreError> {
    let mut fixed: HashMap<Uuid, Vec<(String, String, i64)>> = HashMap::new();
    for row in all_fixed_prices(conn).await? {
        fixed.entry(row.tenant_id).or_default().push((
            row.service_code,
            row.country_code,
            row.price,
        ));
    }
    Ok(all(conn)
        .await?
        .into_iter()
        .map(|(row, hosts)| TenantEntry {
            id: row.id,
            slug: row.slug.clone(),
            owner: row.owner_id,
            suspended: TenantState::parse(&row.state) == Some(TenantState::Suspended),
            markup_basis_points: u32::try_from(row.markup_basis_points).unwrap_or(0),
            hosts,
            branding: branding(&row),
            fixed: fixed.remove(&row.id).unwrap_or_default(),
        })
        .collect())
}
