//! The tenant room's use cases: creating, editing, suspending and listing white-label
//! tenants, their prices, and the public branding by host.
//!
//! Tenants are read by every request (storefronts, prices, suspension) from the catalog's
//! cached snapshot, which holds them; every change here commits, then starts a new catalog
//! generation, so every instance sees it from its next call.
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use namaskah_proto::v1 as pb;
use prost::Message as _;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use super::domain::{self, BRANDING_FIELDS, Branding, DEFAULT_TENANT, TenantState};
use super::repo::{self, FixedPrice, Taken, TenantRow, Written};
use crate::admin::repo as admin_repo;
use crate::admin::service::{Actor, Admin};
use crate::catalog::domain::{CURRENCY, SortKey, decode_token, encode_token};
use crate::catalog::service::Catalog;
use crate::error::{ApiError, StoreError, Violations};
use crate::identity::domain::Plan;
use crate::identity::service::Identity;
use crate::payments::service::check_request_id;
use crate::wallet::domain::AccountRef;
use crate::wallet::ledger;

pub const CREATE_TENANT: &str = "namaskah.v1.TenantService/CreateTenant";
pub const GET_TENANT: &str = "namaskah.v1.TenantService/GetTenant";
pub const LIST_TENANTS: &str = "namaskah.v1.TenantService/ListTenants";
pub const UPDATE_TENANT: &str = "namaskah.v1.TenantService/UpdateTenant";
pub const SUSPEND_TENANT: &str = "namaskah.v1.TenantService/SuspendTenant";
pub const REACTIVATE_TENANT: &str = "namaskah.v1.TenantService/ReactivateTenant";
pub const LIST_TENANT_PRICES: &str = "namaskah.v1.TenantService/ListTenantPrices";
pub const SET_TENANT_PRICE: &str = "namaskah.v1.TenantService/SetTenantPrice";

/// Settings of the tenant room.
#[derive(Clone, Debug)]
pub struct TenantSettings {
    /// The highest markup a tenant may set (and the ceiling of fixed prices).
    pub max_markup_bp: u32,
    /// The platform's own host names: no tenant may claim them.
    pub platform_hosts: Vec<String>,
    /// The platform's web site (its branding's links).
    pub platform_website: String,
}

/// Who is acting on a tenant.
#[derive(Clone, Debug)]
pub enum Access {
    /// An administrator with a TOTP-verified session.
    Admin(Actor),
    /// The tenant's owner.
    Owner(Uuid),
}

/// A tenant as the API shows it.
#[derive(Clone, Debug)]
pub struct TenantView {
    pub row: TenantRow,
    pub hosts: Vec<String>,
    pub customer_count: u64,
    pub margin_earned: i64,
}

/// A tenant's price of one service in one country.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceView {
    pub tenant: String,
    pub service: String,
    pub country: String,
    pub price: i64,
    /// The platform's list price: the tenant's cost.
    pub base_price: i64,
    pub fixed: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

/// `ListTenantPrices`' filters.
pub struct PriceQuery<'a> {
    pub service: &'a str,
    pub country: &'a str,
    pub fixed_only: bool,
    pub page_size: i32,
    pub page_token: &'a str,
}

pub struct Tenants {
    db: DatabaseConnection,
    identity: Arc<Identity>,
    catalog: Arc<Catalog>,
    admin: Arc<Admin>,
    settings: TenantSettings,
}

fn tenant_not_found() -> ApiError {
    ApiError::not_found("TENANT_NOT_FOUND", "no such tenant")
}

fn default_tenant() -> ApiError {
    ApiError::failed_precondition(
        "DEFAULT_TENANT",
        "the platform's own tenant cannot be changed this way",
    )
}

fn host_taken(host: &str) -> ApiError {
    ApiError::already_exists(
        "HOST_TAKEN",
        format!("the host name {host} belongs to another tenant or to the platform"),
    )
}

fn state_json(view: &TenantRow, hosts: &[String]) -> Value {
    json!({
        "display_name": view.display_name,
        "owner": format!("users/{}", view.owner_id),
        "state": view.state,
        "hosts": hosts,
        "markup_basis_points": view.markup_basis_points,
        "branding": repo::branding(view),
        "suspend_reason": view.suspend_reason,
    })
}

fn branding_from(proto: &pb::Branding) -> Branding {
    Branding {
        display_name: proto.display_name.clone(),
        logo_uri: proto.logo_uri.clone(),
        favicon_uri: proto.favicon_uri.clone(),
        primary_color: proto.primary_color.clone(),
        accent_color: proto.accent_color.clone(),
        support_email: proto.support_email.clone(),
        mail_sender_name: proto.mail_sender_name.clone(),
        website_uri: proto.website_uri.clone(),
    }
}

fn set_branding_field(target: &mut Branding, source: &Branding, field: &str) {
    match field {
        "display_name" => target.display_name = source.display_name.clone(),
        "logo_uri" => target.logo_uri = source.logo_uri.clone(),
        "favicon_uri" => target.favicon_uri = source.favicon_uri.clone(),
        "primary_color" => target.primary_color = source.primary_color.clone(),
        "accent_color" => target.accent_color = source.accent_color.clone(),
        "support_email" => target.support_email = source.support_email.clone(),
        "mail_sender_name" => target.mail_sender_name = source.mail_sender_name.clone(),
        "website_uri" => target.website_uri = source.website_uri.clone(),
        _ => {}
    }
}

/// Converts a JSON-style mask path (`branding.logoUri`) to the proto field name.
fn snake(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Tenants {
    pub fn new(
        db: DatabaseConnection,
        identity: Arc<Identity>,
        catalog: Arc<Catalog>,
        admin: Arc<Admin>,
        settings: TenantSettings,
    ) -> Self {
        Self {
            db,
            identity,
            catalog,
            admin,
            settings,
        }
    }

    pub fn admin(&self) -> &Arc<Admin> {
        &self.admin
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The platform's own branding.
    pub fn platform_branding(&self) -> Branding {
        Branding::platform(&self.settings.platform_website)
    }

    async fn view(&self, row: TenantRow) -> Result<TenantView, ApiError> {
        Ok(self
            .views(vec![row])
            .await?
            .pop()
            .expect("one view per row"))
    }

    /// The views of `rows`, in their order, in three queries whatever their number.
    async fn views(&self, rows: Vec<TenantRow>) -> Result<Vec<TenantView>, ApiError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut hosts = repo::hosts_of(&self.db, &ids).await?;
        let customers = repo::customer_counts(&self.db, &ids).await?;
        let accounts: Vec<AccountRef> = ids
            .iter()
            .map(|id| AccountRef::tenant_margin(*id))
            .collect();
        let margins = ledger::account_totals(&self.db, &accounts).await?;
        Ok(rows
            .into_iter()
            .zip(accounts)
            .map(|(row, account)| TenantView {
                hosts: hosts.remove(&row.id).unwrap_or_default(),
                customer_count: customers.get(&row.id).copied().unwrap_or(0),
                margin_earned: margins.get(&account.code()).copied().unwrap_or(0),
                row,
            })
            .collect())
    }

    /// The tenant `tenants/{slug}` if `access` may see it (owners see only their own:
    /// anyone else's reads as not found).
    pub async fn visible(&self, access: &Access, slug: &str) -> Result<TenantRow, ApiError> {
        let row = repo::by_slug(&self.db, slug)
            .await?
            .ok_or_else(tenant_not_found)?;
        match access {
            Access::Admin(_) => Ok(row),
            Access::Owner(user) if row.owner_id == *user => Ok(row),
            Access::Owner(_) => Err(tenant_not_found()),
        }
    }

    /// Refuses a caller on `plan` who owns a tenant but is no longer on the enterprise plan
    /// (`PERMISSION_DENIED`/`ENTERPRISE_PLAN_REQUIRED`). Anyone else passes: an owner on the
    /// enterprise plan, and a caller who owns no tenant (who then finds none).
    pub async fn check_owner_plan(&self, user: Uuid, plan: &str) -> Result<(), ApiError> {
        if domain::owner_plan_allows(plan) {
            return Ok(());
        }
        let book = self.catalog.current().await?;
        if book.snapshot().tenants.iter().any(|t| t.owner == user) {
            return Err(domain::owner_plan_lapsed());
        }
        Ok(())
    }

    /// Checks a would-be owner: an existing account on the enterprise plan.
    async fn check_owner(&self, field: &str, owner: &str) -> Result<Uuid, ApiError> {
        let id = crate::paging::parse_name(owner, field, "users")?;
        let user = crate::identity::repo::user_by_id(&self.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found("USER_NOT_FOUND", "no such account"))?;
        if Plan::parse(&user.plan) != Some(Plan::Enterprise) {
            return Err(ApiError::failed_precondition(
                "ENTERPRISE_PLAN_REQUIRED",
                "a tenant's owner must be on the enterprise plan",
            ));
        }
        if user.tenant_id.is_some() {
            return Err(ApiError::failed_precondition(
                "ENTERPRISE_PLAN_REQUIRED",
                "a tenant's owner must be a customer of the platform itself",
            ));
        }
        Ok(id)
    }

    fn check_platform_hosts(&self, hosts: &[String]) -> Result<(), ApiError> {
        match hosts
            .iter()
            .find(|h| self.settings.platform_hosts.contains(h))
        {
            Some(host) => Err(host_taken(host)),
            None => Ok(()),
        }
    }

    /// `CreateTenant`. Administrators only.
    pub async fn create(
        &self,
        actor: &Actor,
        request: &pb::CreateTenantRequest,
    ) -> Result<TenantView, ApiError> {
        let result = self.create_inner(actor, request).await;
        self.admin
            .audit_failure(
                actor,
                CREATE_TENANT,
                &format!("tenants/{}", request.tenant_id),
                result,
            )
            .await
    }

    async fn create_inner(
        &self,
        actor: &Actor,
        request: &pb::CreateTenantRequest,
    ) -> Result<TenantView, ApiError> {
        let mut v = Violations::default();
        check_request_id(&request.request_id, &mut v);
        if request.tenant_id == DEFAULT_TENANT || !domain::is_slug(&request.tenant_id) {
            v.add(
                "tenant_id",
                "must be 3 to 40 lowercase letters, digits and -, starting with a letter (not `default`)",
            );
        }
        let Some(tenant) = request.tenant.as_ref() else {
            v.add("tenant", "is required");
            v.into_result()?;
            return Err(ApiError::invalid("tenant", "is required"));
        };
        domain::check_display_name("tenant.display_name", &tenant.display_name, &mut v);
        if tenant.owner.is_empty() {
            v.add("tenant.owner", "is required");
        }
        let hosts = domain::check_hosts("tenant.hosts", &tenant.hosts, &mut v);
        let branding = match &tenant.branding {
            Some(b) => {
                let b = branding_from(b);
                domain::check_branding("tenant.branding", &b, &mut v);
                b
            }
            // Until the owner sets its own: the platform's look under the tenant's name.
            None => Branding {
                display_name: tenant.display_name.clone(),
                mail_sender_name: tenant.display_name.clone(),
                ..self.platform_branding()
            },
        };
        v.into_result()?;
        let markup = domain::check_markup(
            "tenant.markup_basis_points",
            tenant.markup_basis_points,
            self.settings.max_markup_bp,
        )?;
        let fingerprint = crate::admin::domain::fingerprint(
            CREATE_TENANT,
            &[&hex::encode(request.encode_to_vec())],
        );
        if let Some(done) = admin_repo::remembered(&self.db, actor.id, &request.request_id).await? {
            if done.method != CREATE_TENANT || done.fingerprint != fingerprint {
                return Err(ApiError::already_exists(
                    "IDEMPOTENCY_CONFLICT",
                    "this request_id was used for a different request",
                ));
            }
            let slug = String::from_utf8(done.response).unwrap_or_default();
            let row = repo::by_slug(&self.db, &slug)
                .await?
                .ok_or_else(tenant_not_found)?;
            return self.view(row).await;
        }
        let owner = self.check_owner("tenant.owner", &tenant.owner).await?;
        self.check_platform_hosts(&hosts)?;

        let now = Utc::now().trunc_subsecs(6);
        let mut row = TenantRow {
            id: Uuid::now_v7(),
            slug: request.tenant_id.clone(),
            display_name: tenant.display_name.clone(),
            owner_id: owner,
            state: TenantState::Active.as_str().to_owned(),
            markup_basis_points: i32::try_from(markup).unwrap_or(0),
            brand_name: String::new(),
            logo_uri: String::new(),
            favicon_uri: String::new(),
            primary_color: String::new(),
            accent_color: String::new(),
            support_email: String::new(),
            mail_sender_name: String::new(),
            website_uri: String::new(),
            created_at: now,
            updated_at: now,
            suspended_at: None,
            suspend_reason: None,
        };
        repo::set_branding(&mut row, branding);
        let txn = self.db.begin().await.map_err(StoreError::from)?;
        let written = async {
            if let Written::Taken(taken) = repo::insert(&txn, row.clone()).await? {
                return Ok(Written::Taken(taken));
            }
            repo::replace_hosts(&txn, row.id, &hosts, now).await
        }
        .await;
        match written {
            Ok(Written::Done) => {}
            Ok(Written::Taken(taken)) => {
                txn.rollback().await.map_err(StoreError::from)?;
                return Err(match taken {
                    Taken::Slug => ApiError::already_exists(
                        "TENANT_ID_TAKEN",
                        format!("tenants/{} exists already", row.slug),
                    ),
                    Taken::Host(host) => host_taken(&host),
                });
            }
            Err(error) => {
                // A concurrent claim of the same id or host, caught by the database.
                let _ = txn.rollback().await;
                if repo::by_slug(&self.db, &row.slug).await?.is_some() {
                    return Err(ApiError::already_exists(
                        "TENANT_ID_TAKEN",
                        format!("tenants/{} exists already", row.slug),
                    ));
                }
                if let Some(host) = repo::host_holder(&self.db, &hosts, None).await? {
                    return Err(host_taken(&host));
                }
                return Err(error.into());
            }
        }
        let fresh = admin_repo::remember(
            &txn,
            admin_repo::Remembered {
                actor_id: actor.id,
                request_id: request.request_id.clone(),
                method: CREATE_TENANT.to_owned(),
                fingerprint,
                response: row.slug.clone().into_bytes(),
                created_at: now,
            },
        )
        .await?;
        if !fresh {
            txn.rollback().await.map_err(StoreError::from)?;
            return Err(ApiError::Aborted {
                reason: "REQUEST_IN_PROGRESS",
                message:
                    "another call with this request_id finished first; retry to get its answer"
                        .to_owned(),
                retry_after: std::time::Duration::from_millis(200),
            });
        }
        self.admin
            .audit_in(
                &txn,
                actor,
                CREATE_TENANT,
                &format!("tenants/{}", row.slug),
                &request.request_id,
                "",
                None,
                Some(state_json(&row, &hosts)),
            )
            .await?;
        txn.commit().await.map_err(StoreError::from)?;
        self.catalog.invalidate().await?;
        tracing::info!(admin = %actor.id, tenant = %row.slug, "tenant created");
        self.view(row).await
    }

    /// `GetTenant`.
    pub async fn get(&self, access: &Access, slug: &str) -> Result<TenantView, ApiError> {
        let row = self.visible(access, slug).await?;
        self.view(row).await
    }

    /// `ListTenants`: every tenant for administrators, their own for owners.
    pub async fn list(
        &self,
        access: &Access,
        state: Option<TenantState>,
        owner: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<TenantView>, String), ApiError> {
        let limit = crate::paging::page_size(page_size)?;
        let owner = match owner {
            "" => None,
            name => Some(crate::paging::parse_name(name, "owner", "users")?),
        };
        let owner = match access {
            Access::Admin(_) => owner,
            // Owners see their own tenants only, whatever the filter asks.
            Access::Owner(user) if owner.is_none_or(|o| o == *user) => Some(*user),
            Access::Owner(_) => return Ok((Vec::new(), String::new())),
        };
        let scope = format!(
            "tenants-{}-{}",
            state.map_or("any", TenantState::as_str),
            owner.map(|o| o.to_string()).unwrap_or_default()
        );
        let before = crate::paging::decode(page_token, &scope)?;
        let mut rows = repo::list(
            &self.db,
            state.map(TenantState::as_str),
            owner,
            before,
            limit,
        )
        .await?;
        let next = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|r| crate::paging::encode(r.id, &scope))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((self.views(rows).await?, next))
    }

    /// `UpdateTenant`: the fields named in `mask` (proto or JSON names).
    pub async fn update(
        &self,
        access: &Access,
        slug: &str,
        tenant: &pb::Tenant,
        mask: &[String],
    ) -> Result<TenantView, ApiError> {
        let result = self.update_inner(access, slug, tenant, mask).await;
        match access {
            Access::Admin(actor) => {
                self.admin
                    .audit_failure(actor, UPDATE_TENANT, &format!("tenants/{slug}"), result)
                    .await
            }
            Access::Owner(_) => result,
        }
    }

    async fn update_inner(
        &self,
        access: &Access,
        slug: &str,
        tenant: &pb::Tenant,
        mask: &[String],
    ) -> Result<TenantView, ApiError> {
        if slug == DEFAULT_TENANT {
            return Err(default_tenant());
        }
        let bad_mask = |description: String| ApiError::InvalidField {
            reason: "INVALID_UPDATE_MASK",
            field: "update_mask",
            description,
        };
        if mask.is_empty() {
            return Err(bad_mask("name at least one field to change".to_owned()));
        }
        let paths: Vec<String> = mask.iter().map(|p| snake(p.trim())).collect();
        for path in &paths {
            let known = matches!(
                path.as_str(),
                "display_name" | "branding" | "markup_basis_points" | "hosts" | "owner"
            ) || path
                .strip_prefix("branding.")
                .is_some_and(|f| BRANDING_FIELDS.contains(&f));
            if !known {
                return Err(bad_mask(format!(
                    "`{path}` is not a field that can be changed (name, state, margin_earned, customer_count and the times are set by the platform)"
                )));
            }
            if matches!(access, Access::Owner(_)) && matches!(path.as_str(), "hosts" | "owner") {
                return Err(ApiError::permission_denied(
                    "FIELD_NOT_EDITABLE",
                    format!("only administrators may change `{path}`"),
                ));
            }
        }
        let current = self.visible(access, slug).await?;
        let current_hosts = repo::hosts_of(&self.db, &[current.id])
            .await?
            .remove(&current.id)
            .unwrap_or_default();
        let mut row = current.clone();
        let mut hosts = current_hosts.clone();
        let mut branding = repo::branding(&current);
        let given = tenant
            .branding
            .as_ref()
            .map(branding_from)
            .unwrap_or_default();
        let mut v = Violations::default();
        for path in &paths {
            match path.as_str() {
                "display_name" => {
                    domain::check_display_name("tenant.display_name", &tenant.display_name, &mut v);
                    row.display_name = tenant.display_name.clone();
                }
                "branding" => branding = given.clone(),
                "markup_basis_points" => {
                    row.markup_basis_points = i32::try_from(domain::check_markup(
                        "tenant.markup_basis_points",
                        tenant.markup_basis_points,
                        self.settings.max_markup_bp,
                    )?)
                    .unwrap_or(0);
                }
                "hosts" => hosts = domain::check_hosts("tenant.hosts", &tenant.hosts, &mut v),
                "owner" => {}
                field => {
                    if let Some(f) = field.strip_prefix("branding.") {
                        set_branding_field(&mut branding, &given, f);
                    }
                }
            }
        }
        // Only the branding fields the mask writes are checked.
        let written: Vec<&str> = if paths.iter().any(|p| p == "branding") {
            BRANDING_FIELDS.to_vec()
        } else {
            paths
                .iter()
                .filter_map(|p| p.strip_prefix("branding."))
                .collect()
        };
        domain::check_branding_fields("tenant.branding", &branding, &written, &mut v);
        v.into_result()?;
        if paths.iter().any(|p| p == "owner") {
            row.owner_id = self.check_owner("tenant.owner", &tenant.owner).await?;
        }
        self.check_platform_hosts(&hosts)?;
        repo::set_branding(&mut row, branding);
        let now = Utc::now().trunc_subsecs(6);
        row.updated_at = now;

        let txn = self.db.begin().await.map_err(StoreError::from)?;
        let row = repo::save(&txn, row).await?;
        if hosts != current_hosts {
            match repo::replace_hosts(&txn, row.id, &hosts, now).await {
                Ok(Written::Done) => {}
                Ok(Written::Taken(Taken::Host(host))) => {
                    txn.rollback().await.map_err(StoreError::from)?;
                    return Err(host_taken(&host));
                }
                Ok(Written::Taken(Taken::Slug)) => unreachable_taken()?,
                Err(error) => {
                    let _ = txn.rollback().await;
                    if let Some(host) = repo::host_holder(&self.db, &hosts, Some(row.id)).await? {
                        return Err(host_taken(&host));
                    }
                    return Err(error.into());
                }
            }
        }
        if let Access::Admin(actor) = access {
            self.admin
                .audit_in(
                    &txn,
                    actor,
                    UPDATE_TENANT,
                    &format!("tenants/{slug}"),
                    "",
                    &paths.join(","),
                    Some(state_json(&current, &current_hosts)),
                    Some(state_json(&row, &hosts)),
                )
                .await?;
        }
        txn.commit().await.map_err(StoreError::from)?;
        self.catalog.invalidate().await?;
        self.view(row).await
    }

    /// `SuspendTenant` (`suspend`) and `ReactivateTenant`. Administrators only.
    pub async fn set_suspended(
        &self,
        actor: &Actor,
        slug: &str,
        reason: &str,
        suspend: bool,
    ) -> Result<TenantView, ApiError> {
        let method = if suspend {
            SUSPEND_TENANT
        } else {
            REACTIVATE_TENANT
        };
        let result = async {
            let mut v = Violations::default();
            let reason = crate::admin::domain::check_reason(
                "reason",
                reason,
                if suspend { 3 } else { 0 },
                &mut v,
            );
            v.into_result()?;
            if slug == DEFAULT_TENANT {
                return Err(default_tenant());
            }
            let current = repo::by_slug(&self.db, slug)
                .await?
                .ok_or_else(tenant_not_found)?;
            let wanted = if suspend {
                TenantState::Suspended
            } else {
                TenantState::Active
            };
            if TenantState::parse(&current.state) == Some(wanted) {
                return self.view(current).await;
            }
            let now = Utc::now().trunc_subsecs(6);
            let mut row = current.clone();
            row.state = wanted.as_str().to_owned();
            row.updated_at = now;
            row.suspended_at = suspend.then_some(now);
            row.suspend_reason = suspend.then(|| reason.clone());
            let hosts = repo::hosts_of(&self.db, &[row.id])
                .await?
                .remove(&row.id)
                .unwrap_or_default();
            let txn = self.db.begin().await.map_err(StoreError::from)?;
            let row = repo::save(&txn, row).await?;
            self.admin
                .audit_in(
                    &txn,
                    actor,
                    method,
                    &format!("tenants/{slug}"),
                    "",
                    &reason,
                    Some(state_json(&current, &hosts)),
                    Some(state_json(&row, &hosts)),
                )
                .await?;
            txn.commit().await.map_err(StoreError::from)?;
            self.catalog.invalidate().await?;
            tracing::info!(admin = %actor.id, tenant = slug, suspend, "tenant state set");
            self.view(row).await
        }
        .await;
        self.admin
            .audit_failure(actor, method, &format!("tenants/{slug}"), result)
            .await
    }

    /// `GetBranding`: the branding of the tenant that holds `host`; without one, of the
    /// request's storefront (the signed-in caller's tenant, else the tenant of the host the
    /// request was sent to). The platform's for any other host or a suspended tenant.
    pub async fn branding(
        &self,
        host: &str,
        storefront: Option<Uuid>,
    ) -> Result<(Branding, String), ApiError> {
        let host = if host.is_empty() {
            None
        } else {
            match domain::normalize_host(host) {
                Some(host) => Some(host),
                None => {
                    return Err(ApiError::invalid(
                        "host",
                        "must be a host name like sms.example.com",
                    ));
                }
            }
        };
        let book = self.catalog.current().await?;
        let found = match host {
            Some(host) => book.tenant_at_host(&host),
            None => storefront.and_then(|tenant| book.tenant(tenant)),
        };
        match found {
            Some((_, entry)) if !entry.suspended => {
                Ok((entry.branding.clone(), format!("tenants/{}", entry.slug)))
            }
            _ => Ok((
                self.platform_branding(),
                format!("tenants/{DEFAULT_TENANT}"),
            )),
        }
    }

    /// `ListTenantPrices`: every service and country the platform offers, at the tenant's
    /// price, ordered by service and then country code.
    pub async fn prices(
        &self,
        access: &Access,
        slug: &str,
        query: PriceQuery<'_>,
    ) -> Result<(Vec<PriceView>, String), ApiError> {
        let service = crate::catalog::domain::service_ref("service", query.service)?;
        let country = crate::catalog::domain::country_ref("country", query.country)?;
        let size = match query.page_size {
            0 => 100,
            n if n < 0 => return Err(ApiError::invalid("page_size", "must not be negative")),
            n => usize::try_from(n).unwrap_or(1000).min(1000),
        };
        let scope = format!(
            "tenant-prices:{slug}:{}:{}:{}",
            service.as_deref().unwrap_or("*"),
            country.as_deref().unwrap_or("*"),
            query.fixed_only
        );
        let after = decode_token(&scope, query.page_token)?;
        let (tenant_id, markup) = if slug == DEFAULT_TENANT {
            match access {
                Access::Admin(_) => (None, 0),
                Access::Owner(_) => return Err(tenant_not_found()),
            }
        } else {
            let row = self.visible(access, slug).await?;
            (
                Some(row.id),
                u32::try_from(row.markup_basis_points).unwrap_or(0),
            )
        };
        // Fixed prices from the database (the freshest, with their times); the platform's
        // from the catalog.
        let fixed: HashMap<(String, String), FixedPrice> = match tenant_id {
            Some(id) => repo::fixed_prices_of(&self.db, id)
                .await?
                .into_iter()
                .map(|p| ((p.service_code.clone(), p.country_code.clone()), p))
                .collect(),
            None => HashMap::new(),
        };
        let book = self.catalog.current().await?;
        let mut views: Vec<PriceView> = book
            .prices()
            .iter()
            .enumerate()
            .filter(|(_, p)| service.as_deref().is_none_or(|s| p.service == s))
            .filter(|(_, p)| country.as_deref().is_none_or(|c| p.country == c))
            .filter_map(|(i, p)| {
                let base = book.platform_list_price(i);
                let set = fixed.get(&(p.service.clone(), p.country.clone()));
                if query.fixed_only && set.is_none() {
                    return None;
                }
                Some(PriceView {
                    tenant: slug.to_owned(),
                    service: p.service.clone(),
                    country: p.country.clone(),
                    price: domain::tenant_list_price(base, markup, set.map(|f| f.price)),
                    base_price: base,
                    fixed: set.is_some(),
                    updated_at: set.map(|f| f.updated_at),
                })
            })
            .collect();
        views.sort_by(|a, b| (&a.service, &a.country).cmp(&(&b.service, &b.country)));
        let key = |p: &PriceView| SortKey::new(&p.service, &p.country);
        let (items, next) = crate::catalog::domain::page(views, key, after.as_ref(), size);
        Ok((
            items,
            next.map(|k| encode_token(&scope, &k)).unwrap_or_default(),
        ))
    }

    /// `SetTenantPrice`: a fixed price, or (`None`) back to the markup.
    pub async fn set_price(
        &self,
        access: &Access,
        name: &str,
        fixed: Option<&pb::Money>,
    ) -> Result<PriceView, ApiError> {
        let result = self.set_price_inner(access, name, fixed).await;
        match access {
            Access::Admin(actor) => {
                self.admin
                    .audit_failure(actor, SET_TENANT_PRICE, name, result)
                    .await
            }
            Access::Owner(_) => result,
        }
    }

    async fn set_price_inner(
        &self,
        access: &Access,
        name: &str,
        fixed: Option<&pb::Money>,
    ) -> Result<PriceView, ApiError> {
        if name.starts_with("tenants/default/") {
            return Err(default_tenant());
        }
        let (slug, service, country) = domain::parse_price_name("name", name)?;
        let amount = match fixed {
            None => None,
            Some(money) => {
                if !money.currency_code.is_empty() && money.currency_code != CURRENCY {
                    return Err(ApiError::invalid(
                        "fixed_price.currency_code",
                        "must be USD",
                    ));
                }
                if money.minor_units <= 0 {
                    return Err(ApiError::invalid(
                        "fixed_price.minor_units",
                        "must be positive",
                    ));
                }
                Some(money.minor_units)
            }
        };
        let row = self.visible(access, &slug).await?;
        let book = self.catalog.current().await?;
        let index = book.find(&service, &country).map_err(|_| {
            ApiError::not_found(
                "PRICE_NOT_FOUND",
                format!("the platform does not offer `{service}` in `{country}`"),
            )
        })?;
        let base = book.platform_list_price(index);
        if let Some(amount) = amount {
            if amount < base {
                return Err(ApiError::InvalidField {
                    reason: "PRICE_BELOW_COST",
                    field: "fixed_price.minor_units",
                    description: format!(
                        "must be at least the platform's price, {base} minor units of {CURRENCY}"
                    ),
                }
                .with_metadata("base_price_minor_units", base.to_string()));
            }
            let limit = domain::price_limit(base, self.settings.max_markup_bp);
            if amount > limit {
                return Err(ApiError::InvalidField {
                    reason: "PRICE_ABOVE_LIMIT",
                    field: "fixed_price.minor_units",
                    description: format!(
                        "must be at most {limit} minor units of {CURRENCY} (the platform's price raised by the maximum markup)"
                    ),
                }
                .with_metadata("limit_minor_units", limit.to_string()));
            }
        }
        let now = Utc::now().trunc_subsecs(6);
        let before = repo::fixed_price(&self.db, row.id, &service, &country).await?;
        let txn = self.db.begin().await.map_err(StoreError::from)?;
        match amount {
            Some(price) => {
                repo::put_fixed_price(
                    &txn,
                    FixedPrice {
                        tenant_id: row.id,
                        service_code: service.clone(),
                        country_code: country.clone(),
                        price,
                        updated_at: now,
                    },
                )
                .await?
            }
            None => {
                repo::remove_fixed_price(&txn, row.id, &service, &country).await?;
            }
        }
        if let Access::Admin(actor) = access {
            self.admin
                .audit_in(
                    &txn,
                    actor,
                    SET_TENANT_PRICE,
                    name,
                    "",
                    "",
                    Some(json!({ "fixed_price": before.map(|b| b.price) })),
                    Some(json!({ "fixed_price": amount })),
                )
                .await?;
        }
        txn.commit().await.map_err(StoreError::from)?;
        self.catalog.invalidate().await?;
        let markup = u32::try_from(row.markup_basis_points).unwrap_or(0);
        Ok(PriceView {
            tenant: slug,
            service,
            country,
            price: domain::tenant_list_price(base, markup, amount),
            base_price: base,
            fixed: amount.is_some(),
            updated_at: amount.map(|_| now),
        })
    }

    /// The platform's own tenant, as administrators see it.
    pub fn default_view(&self) -> (Branding, Vec<String>) {
        (
            self.platform_branding(),
            self.settings.platform_hosts.clone(),
        )
    }
}

fn unreachable_taken() -> Result<(), ApiError> {
    Err(ApiError::Internal(anyhow::anyhow!(
        "a host replacement reported a taken tenant id"
    )))
}
