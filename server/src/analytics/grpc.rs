//! `AnalyticsService` handlers: admit the caller, decode, call the room, encode.
use std::net::IpAddr;
use std::sync::Arc;

use chrono::NaiveDate;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::analytics_service_server::AnalyticsService;
use tonic::{Request, Response, Status};

use super::domain::{FunnelStep, Granularity, RevenueFigures};
use super::service::{self, Analytics, Audience, TrackInput};
use crate::admin::service::Admin;
use crate::authn::optional_caller;
use crate::catalog::service::Catalog;
use crate::convert::usd;
use crate::error::ApiError;
use crate::identity::domain::Role;
use crate::identity::service::Identity;

pub struct AnalyticsApi {
    analytics: Arc<Analytics>,
    admin: Arc<Admin>,
    identity: Arc<Identity>,
    catalog: Arc<Catalog>,
    trusted_proxies: Vec<IpAddr>,
}

impl AnalyticsApi {
    pub fn new(
        analytics: Arc<Analytics>,
        admin: Arc<Admin>,
        identity: Arc<Identity>,
        catalog: Arc<Catalog>,
        trusted_proxies: Vec<IpAddr>,
    ) -> Self {
        Self {
            analytics,
            admin,
            identity,
            catalog,
            trusted_proxies,
        }
    }

    /// Whose figures the caller gets. Administrators (with a TOTP-verified session; anyone
    /// else's attempt is audited) choose: the whole platform (`tenant` unset), the platform's
    /// own customers (`tenants/default`) or one tenant's. A tenant's owner always gets its
    /// own tenant (naming another reads as not found), while its account is on the
    /// enterprise plan.
    async fn audience<T>(
        &self,
        request: &Request<T>,
        method: &'static str,
        tenant: &str,
    ) -> Result<Audience, Status> {
        let principal = crate::authn::caller(request)?;
        let profile = self.identity.me(principal).await?;
        let tenant = tenant.trim();
        // Parsed now, refused only once the caller is known to be allowed to ask: a
        // customer learns nothing from a malformed name but that it is not an administrator.
        let slug = match tenant {
            "" => Ok(None),
            name => crate::tenant::domain::parse_name("tenant", name).map(Some),
        };
        let book = self.catalog.current().await?;
        if profile.role != Role::Admin.as_str() {
            let owned: Vec<_> = book
                .snapshot()
                .tenants
                .iter()
                .filter(|t| t.owner == principal.user_id)
                .collect();
            if !owned.is_empty() {
                // The same rule as the tenant room's: reports only while on the enterprise plan.
                if !crate::tenant::domain::owner_plan_allows(&profile.plan) {
                    return Err(crate::tenant::domain::owner_plan_lapsed().into());
                }
                let chosen = match &slug? {
                    Some(slug) => owned.iter().find(|t| &t.slug == slug),
                    None if owned.len() == 1 => owned.first(),
                    None => {
                        return Err(ApiError::invalid(
                            "tenant",
                            "you own several tenants: name the one to report on",
                        )
                        .into());
                    }
                };
                return match chosen {
                    Some(t) => Ok(Audience::Tenant(Some(t.id))),
                    None => Err(tenant_not_found(tenant).into()),
                };
            }
        }
        crate::admin::grpc::admit(
            &self.admin,
            &self.trusted_proxies,
            request,
            method,
            "analytics",
        )
        .await?;
        match slug?.as_deref() {
            None => Ok(Audience::Platform),
            Some(crate::tenant::domain::DEFAULT_TENANT) => Ok(Audience::Tenant(None)),
            Some(slug) => match book.tenant_by_slug(slug) {
                Some((_, t)) => Ok(Audience::Tenant(Some(t.id))),
                None => Err(tenant_not_found(tenant).into()),
            },
        }
    }
}

fn tenant_not_found(tenant: &str) -> ApiError {
    ApiError::NotFound {
        reason: "TENANT_NOT_FOUND",
        message: format!("no tenant is named {tenant}"),
    }
}

/// A proto `Date` as a day; none when unset, an error when impossible.
fn date(field: &'static str, value: Option<&pb::Date>) -> Result<Option<NaiveDate>, ApiError> {
    let Some(d) = value else {
        return Ok(None);
    };
    let day = (1970..=9999)
        .contains(&d.year)
        .then(|| {
            NaiveDate::from_ymd_opt(
                d.year,
                u32::try_from(d.month).ok()?,
                u32::try_from(d.day).ok()?,
            )
        })
        .flatten();
    day.map(Some).ok_or_else(|| ApiError::InvalidField {
        reason: "INVALID_DATE_RANGE",
        field,
        description: format!("{}-{}-{} is not a date", d.year, d.month, d.day),
    })
}

fn proto_date(day: NaiveDate) -> pb::Date {
    use chrono::Datelike;
    pb::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    }
}

fn granularity(value: i32) -> Result<Granularity, ApiError> {
    match pb::TimeGranularity::try_from(value) {
        Ok(pb::TimeGranularity::Unspecified | pb::TimeGranularity::Day) => Ok(Granularity::Day),
        Ok(pb::TimeGranularity::Week) => Ok(Granularity::Week),
        Ok(pb::TimeGranularity::Month) => Ok(Granularity::Month),
        Err(_) => Err(ApiError::InvalidField {
            reason: "INVALID_GRANULARITY",
            field: "granularity",
            description: format!("{value} is not a granularity (DAY, WEEK or MONTH)"),
        }),
    }
}

fn figures(f: &RevenueFigures) -> pb::RevenueFigures {
    pb::RevenueFigures {
        top_ups: Some(usd(f.top_ups)),
        verification_revenue: Some(usd(f.verification_revenue)),
        refunds: Some(usd(f.refunds)),
        subscription_revenue: Some(usd(f.subscription_revenue)),
        overage_revenue: Some(usd(f.overage_revenue)),
        net_revenue: Some(usd(f.net_revenue)),
        reseller_margin: Some(usd(f.reseller_margin)),
        completed_verifications: f.completed_verifications,
    }
}

fn step(step: FunnelStep) -> pb::FunnelStep {
    match step {
        FunnelStep::Registered => pb::FunnelStep::Registered,
        FunnelStep::EmailVerified => pb::FunnelStep::EmailVerified,
        FunnelStep::FirstTopUp => pb::FunnelStep::FirstTopUp,
        FunnelStep::FirstVerification => pb::FunnelStep::FirstVerification,
        FunnelStep::FirstCompletedVerification => pb::FunnelStep::FirstCompletedVerification,
        FunnelStep::PlanUpgraded => pb::FunnelStep::PlanUpgraded,
    }
}

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    async fn track_event(
        &self,
        request: Request<pb::TrackEventRequest>,
    ) -> Result<Response<pb::TrackEventResponse>, Status> {
        let user = optional_caller(&request).map(|p| p.user_id);
        let r = request.into_inner();
        let at = match r.event_time {
            Some(t) => Some(
                chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
                    .ok_or_else(|| ApiError::invalid("event_time", "is not a valid time"))?,
            ),
            None => None,
        };
        self.analytics.track(
            user,
            TrackInput {
                name: r.event_name,
                properties: r.properties.into_iter().collect(),
                at,
                anonymous_id: r.anonymous_id,
                request_id: r.request_id,
            },
        )?;
        Ok(Response::new(pb::TrackEventResponse {}))
    }

    async fn get_revenue_analytics(
        &self,
        request: Request<pb::GetRevenueAnalyticsRequest>,
    ) -> Result<Response<pb::GetRevenueAnalyticsResponse>, Status> {
        let audience = self
            .audience(
                &request,
                service::GET_REVENUE_ANALYTICS,
                &request.get_ref().tenant,
            )
            .await?;
        let r = request.get_ref();
        let granularity = granularity(r.granularity)?;
        let range = self.analytics.range(
            date("start_date", r.start_date.as_ref())?,
            date("end_date", r.end_date.as_ref())?,
            granularity,
        )?;
        let report = self
            .analytics
            .revenue(&range, granularity, audience)
            .await?;
        Ok(Response::new(pb::GetRevenueAnalyticsResponse {
            buckets: report
                .buckets
                .iter()
                .map(|b| pb::RevenueBucket {
                    start_date: Some(proto_date(b.range.start)),
                    end_date: Some(proto_date(b.range.end)),
                    figures: Some(figures(&b.figures)),
                    net_revenue_growth: b.net_revenue_growth,
                })
                .collect(),
            total: Some(figures(&report.total)),
            previous_period_total: Some(figures(&report.previous)),
            net_revenue_growth: report.net_revenue_growth,
        }))
    }

    async fn get_conversion_funnel(
        &self,
        request: Request<pb::GetConversionFunnelRequest>,
    ) -> Result<Response<pb::GetConversionFunnelResponse>, Status> {
        let audience = self
            .audience(
                &request,
                service::GET_CONVERSION_FUNNEL,
                &request.get_ref().tenant,
            )
            .await?;
        let r = request.get_ref();
        let range = self.analytics.range(
            date("start_date", r.start_date.as_ref())?,
            date("end_date", r.end_date.as_ref())?,
            Granularity::Day,
        )?;
        let funnel = self.analytics.funnel(&range, audience).await?;
        Ok(Response::new(pb::GetConversionFunnelResponse {
            cohort_size: funnel.cohort,
            stages: funnel
                .stages
                .iter()
                .map(|s| pb::FunnelStage {
                    step: step(s.step) as i32,
                    customers: s.customers,
                    conversion_from_previous: s.from_previous,
                    conversion_from_start: s.from_start,
                    median_time_from_previous: s.median_from_previous.map(|d| {
                        prost_types::Duration {
                            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                            nanos: d.subsec_nanos() as i32,
                        }
                    }),
                })
                .collect(),
        }))
    }

    async fn get_customer_metrics(
        &self,
        request: Request<pb::GetCustomerMetricsRequest>,
    ) -> Result<Response<pb::GetCustomerMetricsResponse>, Status> {
        let audience = self
            .audience(
                &request,
                service::GET_CUSTOMER_METRICS,
                &request.get_ref().tenant,
            )
            .await?;
        let r = request.get_ref();
        let range = self.analytics.range(
            date("start_date", r.start_date.as_ref())?,
            date("end_date", r.end_date.as_ref())?,
            Granularity::Day,
        )?;
        let report = self.analytics.customers(&range, audience).await?;
        let a = &report.activity;
        Ok(Response::new(pb::GetCustomerMetricsResponse {
            total_customers: a.total_customers,
            new_customers: a.new_customers,
            new_customer_growth: super::domain::growth(a.new_customers, a.previous_new_customers),
            active_customers: a.active,
            active_customer_growth: super::domain::growth(a.active, a.previous_active),
            daily_active_customers: a.daily_active,
            weekly_active_customers: a.weekly_active,
            monthly_active_customers: a.monthly_active,
            paying_customers: a.paying,
            average_revenue_per_user: Some(usd(report.value.average_revenue_per_user)),
            churn_rate: report.value.churn_rate,
            customer_lifetime_value: report.value.lifetime_value.map(usd),
            success_rates: report
                .success_rates
                .into_iter()
                .map(|s| pb::VerificationSuccessRate {
                    service: format!("services/{}", s.service),
                    country: format!("countries/{}", s.country),
                    completed: s.completed,
                    expired: s.expired,
                    failed: s.failed,
                    cancelled: s.cancelled,
                    success_rate: s.rate,
                })
                .collect(),
        }))
    }
}
