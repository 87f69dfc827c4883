//! `CatalogService` handlers: decode, call the catalog, encode.
//!
//! Success rates (`success_rate`, `recent_verification_count`) come from our own
//! verifications of the last 24 hours (see [`super::rates`]); unset when there were none.
use std::sync::Arc;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::catalog_service_server::CatalogService;
use tonic::{Request, Response, Status};

use super::domain::{Availability, CURRENCY, CountryListing, PriceQuote, ServiceListing};
use super::rates::{SuccessRates, Tally};
use super::service::{Catalog, ListQuery};
use crate::authn::{optional_caller, storefront};
use crate::convert::timestamp;
use crate::identity::domain::Plan;

pub struct CatalogApi {
    catalog: Arc<Catalog>,
    rates: Arc<SuccessRates>,
}

impl CatalogApi {
    pub fn new(catalog: Arc<Catalog>, rates: Arc<SuccessRates>) -> Self {
        Self { catalog, rates }
    }
}

fn money(minor_units: i64) -> pb::Money {
    pb::Money {
        currency_code: CURRENCY.to_owned(),
        minor_units,
    }
}

fn availability(availability: Availability) -> i32 {
    let availability = match availability {
        Availability::Available => pb::Availability::Available,
        Availability::Low => pb::Availability::Low,
        Availability::Unavailable => pb::Availability::Unavailable,
    };
    availability as i32
}

fn plan_tier(plan: Plan) -> i32 {
    let tier = match plan {
        Plan::Starter => pb::PlanTier::Starter,
        Plan::Pro => pb::PlanTier::Pro,
        Plan::Enterprise => pb::PlanTier::Enterprise,
    };
    tier as i32
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn service(listing: ServiceListing, tally: Tally) -> pb::Service {
    let (price, price_country) = match listing.price {
        Some((price, country)) => (Some(money(price)), format!("countries/{country}")),
        None => (None, String::new()),
    };
    pb::Service {
        name: format!("services/{}", listing.code),
        code: listing.code,
        display_name: listing.display_name,
        price,
        price_country,
        availability: availability(listing.availability),
        country_count: count(listing.country_count),
        success_rate: tally.rate(),
        recent_verification_count: tally.counted,
    }
}

fn country(listing: CountryListing) -> pb::Country {
    pb::Country {
        name: format!("countries/{}", listing.code),
        code: listing.code,
        display_name: listing.display_name,
        calling_code: listing.calling_code,
        price: listing.price.map(money),
        availability: availability(listing.availability),
        service_count: count(listing.service_count),
    }
}

fn price(quote: PriceQuote, tally: Tally) -> pb::Price {
    pb::Price {
        name: format!("services/{}/prices/{}", quote.service, quote.country),
        service: format!("services/{}", quote.service),
        country: format!("countries/{}", quote.country),
        price: Some(money(quote.price)),
        list_price: Some(money(quote.list_price)),
        plan: plan_tier(quote.plan),
        discount_basis_points: i32::try_from(quote.discount_basis_points).unwrap_or(0),
        availability: availability(quote.availability),
        available_numbers: quote.available_numbers.map(i64::from),
        success_rate: tally.rate(),
        recent_verification_count: tally.counted,
        update_time: Some(timestamp(quote.updated_at)),
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let r = request.get_ref();
        let page = self
            .catalog
            .list_services(
                optional_caller(&request),
                storefront(&request),
                ListQuery {
                    filter: &r.country,
                    page_size: r.page_size,
                    page_token: &r.page_token,
                    available_only: r.available_only,
                },
            )
            .await?;
        let rates = self
            .rates
            .get()
            .await
            .map_err(crate::error::ApiError::from)?;
        let country = super::domain::country_ref("country", &r.country)?;
        Ok(Response::new(pb::ListServicesResponse {
            services: page
                .items
                .into_iter()
                .map(|listing| {
                    let tally = rates.service(&listing.code, country.as_deref());
                    service(listing, tally)
                })
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn list_countries(
        &self,
        request: Request<pb::ListCountriesRequest>,
    ) -> Result<Response<pb::ListCountriesResponse>, Status> {
        let r = request.get_ref();
        let page = self
            .catalog
            .list_countries(
                optional_caller(&request),
                storefront(&request),
                ListQuery {
                    filter: &r.service,
                    page_size: r.page_size,
                    page_token: &r.page_token,
                    available_only: r.available_only,
                },
            )
            .await?;
        Ok(Response::new(pb::ListCountriesResponse {
            countries: page.items.into_iter().map(country).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_price(
        &self,
        request: Request<pb::GetPriceRequest>,
    ) -> Result<Response<pb::GetPriceResponse>, Status> {
        let quote = self
            .catalog
            .price(
                optional_caller(&request),
                storefront(&request),
                &request.get_ref().name,
            )
            .await?;
        let rates = self
            .rates
            .get()
            .await
            .map_err(crate::error::ApiError::from)?;
        let tally = rates.price(&quote.service, &quote.country);
        Ok(Response::new(pb::GetPriceResponse {
            price: Some(price(quote, tally)),
        }))
    }
}
