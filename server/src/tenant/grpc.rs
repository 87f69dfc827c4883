//! `TenantService` handlers: find out who is calling (administrator or owner), decode,
//! call the room, encode.
use std::net::IpAddr;
use std::sync::Arc;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::tenant_service_server::TenantService;
use tonic::{Request, Response, Status};

use super::domain::{self, Branding, DEFAULT_TENANT, TenantState};
use super::service::{self, Access, PriceQuery, PriceView, TenantView, Tenants};
use crate::admin::grpc::admit;
use crate::authn::{caller, storefront};
use crate::convert::timestamp;
use crate::error::ApiError;
use crate::identity::domain::Role;
use crate::wallet::grpc::money;

pub struct TenantApi {
    tenants: Arc<Tenants>,
    trusted_proxies: Vec<IpAddr>,
}

impl TenantApi {
    pub fn new(tenants: Arc<Tenants>, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            tenants,
            trusted_proxies,
        }
    }

    /// Administrators (admitted with their TOTP-verified session, as every administrators'
    /// RPC is) act as such; anyone else is a possible owner when `owners` may call (refused
    /// if it owns a tenant but is no longer on the enterprise plan), and is refused (and
    /// audited) otherwise.
    async fn access<T>(
        &self,
        request: &Request<T>,
        method: &'static str,
        target: &str,
        owners: bool,
    ) -> Result<Access, Status> {
        let principal = caller(request)?;
        let profile = self.tenants.identity().me(principal).await?;
        if profile.role == Role::Admin.as_str() || !owners {
            let actor = admit(
                self.tenants.admin(),
                &self.trusted_proxies,
                request,
                method,
                target,
            )
            .await?;
            return Ok(Access::Admin(actor));
        }
        // Ownership is checked on every call, not only when the tenant was created: an
        // owner who left the enterprise plan keeps its tenants but not their management.
        self.tenants
            .check_owner_plan(principal.user_id, &profile.plan)
            .await?;
        Ok(Access::Owner(principal.user_id))
    }

    /// `SuspendTenant` and `ReactivateTenant`: administrators only.
    async fn set_suspended<T>(
        &self,
        request: &Request<T>,
        method: &'static str,
        name: &str,
        reason: &str,
        suspended: bool,
    ) -> Result<pb::Tenant, Status> {
        let Access::Admin(actor) = self.access(request, method, name, false).await? else {
            return Err(
                ApiError::permission_denied("ADMIN_REQUIRED", "administrators only").into(),
            );
        };
        let slug = domain::parse_name("name", name)?;
        let view = self
            .tenants
            .set_suspended(&actor, &slug, reason, suspended)
            .await?;
        Ok(tenant(view))
    }
}

fn branding(b: Branding) -> pb::Branding {
    pb::Branding {
        display_name: b.display_name,
        logo_uri: b.logo_uri,
        favicon_uri: b.favicon_uri,
        primary_color: b.primary_color,
        accent_color: b.accent_color,
        support_email: b.support_email,
        mail_sender_name: b.mail_sender_name,
        website_uri: b.website_uri,
    }
}

fn tenant(view: TenantView) -> pb::Tenant {
    let row = view.row;
    let suspended = TenantState::parse(&row.state) == Some(TenantState::Suspended);
    pb::Tenant {
        name: format!("tenants/{}", row.slug),
        display_name: row.display_name.clone(),
        owner: format!("users/{}", row.owner_id),
        state: if suspended {
            pb::TenantState::Suspended
        } else {
            pb::TenantState::Active
        } as i32,
        hosts: view.hosts,
        branding: Some(branding(super::repo::branding(&row))),
        markup_basis_points: row.markup_basis_points,
        margin_earned: money(view.margin_earned),
        customer_count: i64::try_from(view.customer_count).unwrap_or(i64::MAX),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        suspend_time: row.suspended_at.filter(|_| suspended).map(timestamp),
        suspend_reason: if suspended {
            row.suspend_reason.unwrap_or_default()
        } else {
            String::new()
        },
    }
}

fn price(view: PriceView) -> pb::TenantPrice {
    pb::TenantPrice {
        name: format!(
            "tenants/{}/services/{}/prices/{}",
            view.tenant, view.service, view.country
        ),
        service: format!("services/{}", view.service),
        country: format!("countries/{}", view.country),
        price: money(view.price),
        base_price: money(view.base_price),
        margin: money(view.price - view.base_price),
        source: if view.fixed {
            pb::TenantPriceSource::Fixed
        } else {
            pb::TenantPriceSource::Markup
        } as i32,
        update_time: view.updated_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl TenantService for TenantApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let target = format!("tenants/{}", request.get_ref().tenant_id);
        let Access::Admin(actor) = self
            .access(&request, service::CREATE_TENANT, &target, false)
            .await?
        else {
            return Err(
                ApiError::permission_denied("ADMIN_REQUIRED", "administrators only").into(),
            );
        };
        let view = self.tenants.create(&actor, request.get_ref()).await?;
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant(view)),
        }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let name = request.get_ref().name.clone();
        let slug = domain::parse_name("name", &name)?;
        let access = self
            .access(&request, service::GET_TENANT, &name, true)
            .await?;
        if slug == DEFAULT_TENANT {
            let Access::Admin(_) = access else {
                return Err(ApiError::not_found("TENANT_NOT_FOUND", "no such tenant").into());
            };
            let (platform, hosts) = self.tenants.default_view();
            return Ok(Response::new(pb::GetTenantResponse {
                tenant: Some(pb::Tenant {
                    name: format!("tenants/{DEFAULT_TENANT}"),
                    display_name: platform.display_name.clone(),
                    state: pb::TenantState::Active as i32,
                    hosts,
                    branding: Some(branding(platform)),
                    ..Default::default()
                }),
            }));
        }
        let view = self.tenants.get(&access, &slug).await?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant(view)),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let access = self
            .access(&request, service::LIST_TENANTS, "tenants", true)
            .await?;
        let r = request.get_ref();
        let state = match pb::TenantState::try_from(r.state) {
            Ok(pb::TenantState::Unspecified) => None,
            Ok(pb::TenantState::Active) => Some(TenantState::Active),
            Ok(pb::TenantState::Suspended) => Some(TenantState::Suspended),
            Err(_) => return Err(ApiError::invalid("state", "is not a TenantState").into()),
        };
        let (views, next_page_token) = self
            .tenants
            .list(&access, state, &r.owner, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: views.into_iter().map(tenant).collect(),
            next_page_token,
        }))
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::UpdateTenantResponse>, Status> {
        let Some(given) = request.get_ref().tenant.clone() else {
            return Err(ApiError::invalid("tenant", "is required").into());
        };
        let slug = domain::parse_name("tenant.name", &given.name)?;
        let access = self
            .access(&request, service::UPDATE_TENANT, &given.name, true)
            .await?;
        let mask = request
            .get_ref()
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        let view = self.tenants.update(&access, &slug, &given, &mask).await?;
        Ok(Response::new(pb::UpdateTenantResponse {
            tenant: Some(tenant(view)),
        }))
    }

    async fn suspend_tenant(
        &self,
        request: Request<pb::SuspendTenantRequest>,
    ) -> Result<Response<pb::SuspendTenantResponse>, Status> {
        let r = request.get_ref();
        let (name, reason) = (r.name.clone(), r.reason.clone());
        let tenant = self
            .set_suspended(&request, service::SUSPEND_TENANT, &name, &reason, true)
            .await?;
        Ok(Response::new(pb::SuspendTenantResponse {
            tenant: Some(tenant),
        }))
    }

    async fn reactivate_tenant(
        &self,
        request: Request<pb::ReactivateTenantRequest>,
    ) -> Result<Response<pb::ReactivateTenantResponse>, Status> {
        let r = request.get_ref();
        let (name, reason) = (r.name.clone(), r.reason.clone());
        let tenant = self
            .set_suspended(&request, service::REACTIVATE_TENANT, &name, &reason, false)
            .await?;
        Ok(Response::new(pb::ReactivateTenantResponse {
            tenant: Some(tenant),
        }))
    }

    async fn get_branding(
        &self,
        request: Request<pb::GetBrandingRequest>,
    ) -> Result<Response<pb::GetBrandingResponse>, Status> {
        let (found, tenant) = self
            .tenants
            .branding(&request.get_ref().host, storefront(&request))
            .await?;
        Ok(Response::new(pb::GetBrandingResponse {
            branding: Some(branding(found)),
            tenant,
        }))
    }

    async fn list_tenant_prices(
        &self,
        request: Request<pb::ListTenantPricesRequest>,
    ) -> Result<Response<pb::ListTenantPricesResponse>, Status> {
        let parent = request.get_ref().parent.clone();
        let slug = domain::parse_name("parent", &parent)?;
        let access = self
            .access(&request, service::LIST_TENANT_PRICES, &parent, true)
            .await?;
        let r = request.get_ref();
        let (prices, next_page_token) = self
            .tenants
            .prices(
                &access,
                &slug,
                PriceQuery {
                    service: &r.service,
                    country: &r.country,
                    fixed_only: r.fixed_only,
                    page_size: r.page_size,
                    page_token: &r.page_token,
                },
            )
            .await?;
        Ok(Response::new(pb::ListTenantPricesResponse {
            prices: prices.into_iter().map(price).collect(),
            next_page_token,
        }))
    }

    async fn set_tenant_price(
        &self,
        request: Request<pb::SetTenantPriceRequest>,
    ) -> Result<Response<pb::SetTenantPriceResponse>, Status> {
        let name = request.get_ref().name.clone();
        let access = self
            .access(&request, service::SET_TENANT_PRICE, &name, true)
            .await?;
        let view = self
            .tenants
            .set_price(&access, &name, request.get_ref().fixed_price.as_ref())
            .await?;
        Ok(Response::new(pb::SetTenantPriceResponse {
            price: Some(price(view)),
        }))
    }
}
