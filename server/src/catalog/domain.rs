//! Catalog rules in plain Rust: service and country codes and resource names, how a
//! caller's price is made from a base price, availability, and the order and pages of the
//! lists. No tonic, no sea-orm.
//!
//! # Prices
//!
//! Every amount is an integer count of US cents. From the platform's base price of a
//! service in a country:
//!
//! - the **list price** is the base price raised by the storefront's markup:
//!   `base × (10 000 + markup_bp) / 10 000`;
//! - the **caller's price** is the list price less the plan's discount (starter 0 %,
//!   pro 20 %, enterprise 35 %): `list × (10 000 − discount_bp) / 10 000`.
//!
//! Each step rounds to the nearest cent, halves up (`(x + 5 000) / 10 000` on the exact
//! integer product, so no floating point is involved), and never goes below 1 cent: a
//! verification is never free. The caller's price is computed from the rounded list price,
//! so `price` and `list_price` shown together always agree with the rule.
use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::domain::Plan;
use crate::tenant::domain::{Branding, tenant_list_price};

pub use crate::wallet::domain::CURRENCY;

/// 100 % in basis points.
pub const BASIS_POINTS: u32 = 10_000;
/// The largest storefront markup accepted: +1 000 %.
pub const MAX_MARKUP_BASIS_POINTS: u32 = 100_000;
/// The largest base price accepted (10 000.00 USD): anything above is a typo.
pub const MAX_BASE_PRICE: i64 = 1_000_000;
/// Fewer numbers than this in stock is reported as `LOW`.
pub const LOW_STOCK: u32 = 20;
/// Page size when a request leaves `page_size` at 0 (the catalog's own, per the contract).
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger requests are served this many items (AIP-158: capped, not refused).
pub const MAX_PAGE_SIZE: usize = 500;
pub const MAX_SERVICE_CODE_LEN: usize = 32;
pub const MAX_DISPLAY_NAME_LEN: usize = 64;

/// `amount × factor_bp / 10 000`, rounded to the nearest cent (halves up), at least 1.
fn scale(amount: i64, factor_bp: u32) -> i64 {
    let product = i128::from(amount.max(0)) * i128::from(factor_bp);
    let rounded = (product + i128::from(BASIS_POINTS / 2)) / i128::from(BASIS_POINTS);
    i64::try_from(rounded).unwrap_or(i64::MAX).max(1)
}

/// The price before plan discounts: the base price raised by the storefront's markup.
pub fn list_price(base_price: i64, markup_bp: u32) -> i64 {
    scale(base_price, BASIS_POINTS.saturating_add(markup_bp))
}

/// What a caller on a plan with `discount_bp` pays for something listed at `list_price`.
pub fn plan_price(list_price: i64, discount_bp: u32) -> i64 {
    scale(list_price, BASIS_POINTS.saturating_sub(discount_bp))
}

/// What the upstream providers report about numbers for one service in one country.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stock {
    /// Numbers can be had; how many, when the providers say.
    InStock(Option<u32>),
    /// No provider has numbers now.
    OutOfStock,
}

/// Whether numbers can be had, as the API shows it. Ordered from worst to best, so that
/// "the best availability in any country" is a `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Availability {
    Unavailable,
    Low,
    Available,
}

impl Stock {
    pub fn availability(self) -> Availability {
        match self {
            Stock::OutOfStock | Stock::InStock(Some(0)) => Availability::Unavailable,
            Stock::InStock(Some(n)) if n < LOW_STOCK => Availability::Low,
            Stock::InStock(_) => Availability::Available,
        }
    }

    /// How many numbers the providers report, when they say.
    pub fn numbers(self) -> Option<u32> {
        match self {
            Stock::InStock(n) => n,
            Stock::OutOfStock => Some(0),
        }
    }
}

/// Whether `code` is a service code: 1–32 lowercase ASCII letters, digits and `-`, starting
/// with a letter or digit.
pub fn is_service_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_SERVICE_CODE_LEN
        && !code.starts_with('-')
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `code` is an ISO 3166-1 alpha-2 code in capitals.
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Reads a service reference from the request field `field`: `services/{code}` or a bare
/// code (case-insensitive). `Ok(None)` when empty.
pub fn service_ref(field: &str, raw: &str) -> Result<Option<String>, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let code = raw
        .strip_prefix("services/")
        .unwrap_or(raw)
        .to_ascii_lowercase();
    if is_service_code(&code) {
        Ok(Some(code))
    } else {
        Err(ApiError::invalid(
            field,
            "must be `services/{service_code}` or a service code such as `whatsapp`",
        ))
    }
}

/// Reads a country reference from the request field `field`: `countries/{code}` or a bare
/// ISO 3166-1 alpha-2 code (case-insensitive). `Ok(None)` when empty.
pub fn country_ref(field: &str, raw: &str) -> Result<Option<String>, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let code = raw
        .strip_prefix("countries/")
        .unwrap_or(raw)
        .to_ascii_uppercase();
    if is_country_code(&code) {
        Ok(Some(code))
    } else {
        Err(ApiError::invalid(
            field,
            "must be `countries/{country_code}` or an ISO 3166-1 alpha-2 code such as `GB`",
        ))
    }
}

/// Reads a price's resource name `services/{service_code}/prices/{country_code}` from the
/// request field `field`.
pub fn price_name(field: &str, raw: &str) -> Result<(String, String), ApiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    let malformed = || {
        ApiError::invalid(
            field,
            "must be a resource name like `services/whatsapp/prices/GB`",
        )
    };
    let rest = raw.strip_prefix("services/").ok_or_else(malformed)?;
    let (service, country) = rest.split_once("/prices/").ok_or_else(malformed)?;
    let service = service.to_ascii_lowercase();
    let country = country.to_ascii_uppercase();
    if is_service_code(&service) && is_country_code(&country) {
        Ok((service, country))
    } else {
        Err(malformed())
    }
}

/// The number of items to return for a request's `page_size`.
pub fn page_size(requested: i32) -> Result<usize, ApiError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        n => Ok(usize::try_from(n)
            .unwrap_or(MAX_PAGE_SIZE)
            .min(MAX_PAGE_SIZE)),
    }
}

/// Where a list is ordered: display names compared without case, then codes (unique).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SortKey {
    name: String,
    code: String,
}

impl SortKey {
    pub fn new(display_name: &str, code: &str) -> Self {
        Self {
            name: display_name.to_lowercase(),
            code: code.to_owned(),
        }
    }
}

/// An opaque page token: the sort key of the page's last item, tagged with the list and
/// filters it belongs to (a token from another list or filter is refused). Keys rather
/// than offsets, so a catalog change between pages neither repeats nor skips an item that
/// stayed.
pub fn encode_token(scope: &str, last: &SortKey) -> String {
    let text = serde_json::json!([scope, last.name, last.code]).to_string();
    URL_SAFE_NO_PAD.encode(text)
}

/// Reads a page token of the list `scope`; empty means the first page.
pub fn decode_token(scope: &str, token: &str) -> Result<Option<SortKey>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ApiError::invalid(
            "page_token",
            "is not a page token of this list (with these filters)",
        )
    };
    if token.len() > 512 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let (tag, name, code): (String, String, String) =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if tag != scope {
        return Err(invalid());
    }
    Ok(Some(SortKey { name, code }))
}

/// One page of `items` (already in sort order) after `after`, and the token's key for the
/// next page when there is one.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> SortKey,
    after: Option<&SortKey>,
    size: usize,
) -> (Vec<T>, Option<SortKey>) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|item| after.is_none_or(|after| key(item) > *after))
        .take(size.saturating_add(1))
        .collect();
    if rest.len() > size {
        rest.truncate(size);
        let next = rest.last().map(&key);
        (rest, next)
    } else {
        (rest, None)
    }
}

/// An online service, as the catalog stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub code: String,
    pub display_name: String,
}

/// A country, as the catalog stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryEntry {
    pub code: String,
    pub display_name: String,
    pub calling_code: String,
}

/// A base price of a service in a country that is on offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntry {
    #[serde(rename = "s")]
    pub service: String,
    #[serde(rename = "c")]
    pub country: String,
    #[serde(rename = "b")]
    pub base_price: i64,
    #[serde(rename = "u", with = "chrono::serde::ts_microseconds")]
    pub updated_at: DateTime<Utc>,
}

/// A white-label tenant as storefronts need it: its state, host names, branding, markup
/// and fixed prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantEntry {
    pub id: Uuid,
    pub slug: String,
    pub owner: Uuid,
    pub suspended: bool,
    pub markup_basis_points: u32,
    pub hosts: Vec<String>,
    pub branding: Branding,
    /// `(service, country, price)`, each at least the platform's list price when set.
    pub fixed: Vec<(String, String, i64)>,
}

/// The whole catalog as read from the database at one moment: what the cache holds (as
/// JSON). Small: a few dozen services and countries, a thousand or so prices, and the
/// tenants that sell them under their own brands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub markup_basis_points: u32,
    pub services: Vec<ServiceEntry>,
    pub countries: Vec<CountryEntry>,
    pub prices: Vec<PriceEntry>,
    #[serde(default)]
    pub tenants: Vec<TenantEntry>,
}

/// A snapshot indexed for answering requests, with services and countries in list order.
#[derive(Debug)]
pub struct PriceBook {
    snapshot: Snapshot,
    service_index: HashMap<String, usize>,
    country_index: HashMap<String, usize>,
    price_index: HashMap<(usize, usize), usize>,
    /// Price indexes per service, and per country.
    by_service: Vec<Vec<usize>>,
    by_country: Vec<Vec<usize>>,
    tenant_index: HashMap<Uuid, usize>,
    host_index: HashMap<String, usize>,
    /// Per tenant: price index → fixed price.
    fixed: Vec<HashMap<usize, i64>>,
}

/// A service in a list, priced for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceListing {
    pub code: String,
    pub display_name: String,
    /// The caller's price and the country it is for; `None` when available nowhere.
    pub price: Option<(i64, String)>,
    pub availability: Availability,
    pub country_count: usize,
}

/// A country in a list, priced for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountryListing {
    pub code: String,
    pub display_name: String,
    pub calling_code: String,
    /// The caller's price (of the requested service, or the cheapest available service).
    pub price: Option<i64>,
    pub availability: Availability,
    pub service_count: usize,
}

/// One service in one country, priced for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceQuote {
    pub service: String,
    pub country: String,
    pub list_price: i64,
    pub price: i64,
    /// The tenant whose price this is (`None`: the platform's), and its share of `price`.
    pub tenant: Option<Uuid>,
    pub margin: i64,
    pub plan: Plan,
    pub discount_basis_points: u32,
    pub availability: Availability,
    pub available_numbers: Option<u32>,
    pub updated_at: DateTime<Utc>,
}

/// Why a price could not be quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    Service,
    Country,
    Price,
}

impl Missing {
    pub fn into_error(self, service: &str, country: &str) -> ApiError {
        match self {
            Missing::Service => ApiError::not_found(
                "SERVICE_NOT_FOUND",
                format!("there is no service `{service}` in the catalog"),
            ),
            Missing::Country => ApiError::not_found(
                "COUNTRY_NOT_FOUND",
                format!("there is no country `{country}` in the catalog"),
            ),
            Missing::Price => ApiError::not_found(
                "PRICE_NOT_FOUND",
                format!("`{service}` is not offered in `{country}`"),
            ),
        }
    }
}

impl PriceBook {
    pub fn new(mut snapshot: Snapshot) -> Self {
        snapshot
            .services
            .sort_by_cached_key(|s| SortKey::new(&s.display_name, &s.code));
        snapshot
            .countries
            .sort_by_cached_key(|c| SortKey::new(&c.display_name, &c.code));
        let service_index: HashMap<String, usize> = snapshot
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.code.clone(), i))
            .collect();
        let country_index: HashMap<String, usize> = snapshot
            .countries
            .iter()
            .enumerate()
            .map(|(i, c)| (c.code.clone(), i))
            .collect();
        let mut price_index = HashMap::with_capacity(snapshot.prices.len());
        let mut by_service = vec![Vec::new(); snapshot.services.len()];
        let mut by_country = vec![Vec::new(); snapshot.countries.len()];
        for (i, price) in snapshot.prices.iter().enumerate() {
            // The database's foreign keys make a dangling price impossible; skip one anyway.
            if let (Some(&s), Some(&c)) = (
                service_index.get(&price.service),
                country_index.get(&price.country),
            ) {
                price_index.insert((s, c), i);
                by_service[s].push(i);
                by_country[c].push(i);
            }
        }
        let tenant_index = snapshot
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        let host_index = snapshot
            .tenants
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.hosts.iter().map(move |h| (h.clone(), i)))
            .collect();
        let fixed = snapshot
            .tenants
            .iter()
            .map(|t| {
                t.fixed
                    .iter()
                    .filter_map(|(service, country, price)| {
                        let s = service_index.get(service)?;
                        let c = country_index.get(country)?;
                        Some((*price_index.get(&(*s, *c))?, *price))
                    })
                    .collect()
            })
            .collect();
        Self {
            snapshot,
            service_index,
            country_index,
            price_index,
            by_service,
            by_country,
            tenant_index,
            host_index,
            fixed,
        }
    }

    /// The tenant with this id, and its index (for pricing).
    pub fn tenant(&self, id: Uuid) -> Option<(usize, &TenantEntry)> {
        let i = *self.tenant_index.get(&id)?;
        Some((i, &self.snapshot.tenants[i]))
    }

    /// The tenant with this id (`acme` of `tenants/acme`).
    pub fn tenant_by_slug(&self, slug: &str) -> Option<(usize, &TenantEntry)> {
        self.snapshot
            .tenants
            .iter()
            .enumerate()
            .find(|(_, t)| t.slug == slug)
    }

    /// The tenant a host name belongs to (normalised: lowercase, no port).
    pub fn tenant_at_host(&self, host: &str) -> Option<(usize, &TenantEntry)> {
        let i = *self.host_index.get(host)?;
        Some((i, &self.snapshot.tenants[i]))
    }

    /// The platform's list price at `price` (a tenant's cost).
    pub fn platform_list_price(&self, price: usize) -> i64 {
        self.list_price_of(price)
    }

    /// The list price at `price` in `store` (a tenant's index; `None`: the platform's),
    /// and where it comes from (`true`: a fixed price).
    pub fn store_list_price(&self, price: usize, store: Option<usize>) -> (i64, bool) {
        let platform = self.list_price_of(price);
        match store.and_then(|t| self.snapshot.tenants.get(t).map(|e| (t, e))) {
            Some((t, entry)) => {
                let fixed = self.fixed[t].get(&price).copied();
                (
                    tenant_list_price(platform, entry.markup_basis_points, fixed),
                    fixed.is_some(),
                )
            }
            None => (platform, false),
        }
    }

    fn sell_price(&self, price: usize, store: Option<usize>) -> i64 {
        self.store_list_price(price, store).0
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn prices(&self) -> &[PriceEntry] {
        &self.snapshot.prices
    }

    pub fn has_service(&self, code: &str) -> bool {
        self.service_index.contains_key(code)
    }

    pub fn has_country(&self, code: &str) -> bool {
        self.country_index.contains_key(code)
    }

    fn list_price_of(&self, price: usize) -> i64 {
        list_price(
            self.snapshot.prices[price].base_price,
            self.snapshot.markup_basis_points,
        )
    }

    /// The indexes (into [`PriceBook::prices`]) of the prices a service list or a country
    /// list needs availability for, given its filter.
    pub fn prices_in_country(&self, country: &str) -> Vec<usize> {
        self.country_index
            .get(country)
            .map(|&c| self.by_country[c].clone())
            .unwrap_or_default()
    }

    pub fn prices_of_service(&self, service: &str) -> Vec<usize> {
        self.service_index
            .get(service)
            .map(|&s| self.by_service[s].clone())
            .unwrap_or_default()
    }

    /// Of `candidates`, the cheapest price whose numbers can be had (ties: the lower country
    /// or service code, so that the answer is stable), and the best availability.
    fn best(
        &self,
        candidates: &[usize],
        store: Option<usize>,
        availability: &dyn Fn(usize) -> Availability,
    ) -> (Option<usize>, Availability) {
        let mut best_availability = Availability::Unavailable;
        let mut cheapest: Option<(i64, &str, &str, usize)> = None;
        for &p in candidates {
            let a = availability(p);
            best_availability = best_availability.max(a);
            if a == Availability::Unavailable {
                continue;
            }
            let entry = &self.snapshot.prices[p];
            let key = (
                self.sell_price(p, store),
                entry.country.as_str(),
                entry.service.as_str(),
                p,
            );
            if cheapest.is_none_or(|c| (key.0, key.1, key.2) < (c.0, c.1, c.2)) {
                cheapest = Some(key);
            }
        }
        (cheapest.map(|c| c.3), best_availability)
    }

    /// Every service in list order: offered in `country` when one is given (priced there),
    /// otherwise all of them (priced in their cheapest available country). `availability`
    /// answers for a price index.
    pub fn services(
        &self,
        country: Option<&str>,
        discount_bp: u32,
        store: Option<usize>,
        availability: &dyn Fn(usize) -> Availability,
    ) -> Vec<ServiceListing> {
        let country = country.and_then(|c| self.country_index.get(c).copied());
        self.snapshot
            .services
            .iter()
            .enumerate()
            .filter_map(|(s, service)| {
                let (price, availability) = match country {
                    Some(c) => {
                        let p = *self.price_index.get(&(s, c))?;
                        (Some(p), availability(p))
                    }
                    None => self.best(&self.by_service[s], store, availability),
                };
                Some(ServiceListing {
                    code: service.code.clone(),
                    display_name: service.display_name.clone(),
                    price: price.map(|p| {
                        (
                            plan_price(self.sell_price(p, store), discount_bp),
                            self.snapshot.prices[p].country.clone(),
                        )
                    }),
                    availability,
                    country_count: self.by_service[s].len(),
                })
            })
            .collect()
    }

    /// Every country in list order: offering `service` when one is given (priced for it),
    /// otherwise all of them (priced at their cheapest available service).
    pub fn countries(
        &self,
        service: Option<&str>,
        discount_bp: u32,
        store: Option<usize>,
        availability: &dyn Fn(usize) -> Availability,
    ) -> Vec<CountryListing> {
        let service = service.and_then(|s| self.service_index.get(s).copied());
        self.snapshot
            .countries
            .iter()
            .enumerate()
            .filter_map(|(c, country)| {
                let (price, availability) = match service {
                    Some(s) => {
                        let p = *self.price_index.get(&(s, c))?;
                        (Some(p), availability(p))
                    }
                    None => self.best(&self.by_country[c], store, availability),
                };
                Some(CountryListing {
                    code: country.code.clone(),
                    display_name: country.display_name.clone(),
                    calling_code: country.calling_code.clone(),
                    price: price.map(|p| plan_price(self.sell_price(p, store), discount_bp)),
                    availability,
                    service_count: self.by_country[c].len(),
                })
            })
            .collect()
    }

    /// The index of the price of `service` in `country`, or what is missing.
    pub fn find(&self, service: &str, country: &str) -> Result<usize, Missing> {
        let s = *self.service_index.get(service).ok_or(Missing::Service)?;
        let c = *self.country_index.get(country).ok_or(Missing::Country)?;
        self.price_index.get(&(s, c)).copied().ok_or(Missing::Price)
    }

    /// The caller's quote for the price at `index`.
    pub fn quote(
        &self,
        index: usize,
        plan: Plan,
        discount: u32,
        store: Option<usize>,
        stock: Stock,
    ) -> PriceQuote {
        let entry = &self.snapshot.prices[index];
        let list = self.sell_price(index, store);
        let split = crate::tenant::domain::split(self.list_price_of(index), list, discount);
        PriceQuote {
            service: entry.service.clone(),
            country: entry.country.clone(),
            list_price: list,
            price: split.price,
            tenant: store.map(|t| self.snapshot.tenants[t].id),
            margin: split.margin,
            plan,
            discount_basis_points: discount,
            availability: stock.availability(),
            available_numbers: stock.numbers(),
            updated_at: entry.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up_and_never_below_a_cent() {
        // 0.25 USD + 25 % = 31.25 cents → 31; 0.10 + 25 % = 12.5 → 13.
        assert_eq!(list_price(25, 2_500), 31);
        assert_eq!(list_price(10, 2_500), 13);
        assert_eq!(list_price(200, 0), 200);
        // 13 cents − 20 % = 10.4 → 10; − 35 % = 8.45 → 8; 5 − 35 % = 3.25 → 3.
        assert_eq!(plan_price(13, 2_000), 10);
        assert_eq!(plan_price(13, 3_500), 8);
        assert_eq!(plan_price(5, 3_500), 3);
        // 0.3 of a cent is still a cent.
        assert_eq!(plan_price(1, 3_500), 1);
        assert_eq!(plan_price(1, 10_000), 1);
        // Halves go up: 250 × 0.65 = 162.5 → 163.
        assert_eq!(plan_price(250, 3_500), 163);
        assert_eq!(list_price(i64::MAX, 100_000), i64::MAX);
    }

    #[test]
    fn stock_becomes_availability() {
        assert_eq!(Stock::InStock(None).availability(), Availability::Available);
        assert_eq!(
            Stock::InStock(Some(20)).availability(),
            Availability::Available
        );
        assert_eq!(Stock::InStock(Some(19)).availability(), Availability::Low);
        assert_eq!(
            Stock::InStock(Some(0)).availability(),
            Availability::Unavailable
        );
        assert_eq!(Stock::OutOfStock.availability(), Availability::Unavailable);
        assert!(Availability::Available > Availability::Low);
        assert!(Availability::Low > Availability::Unavailable);
    }

    #[test]
    fn references_and_names() {
        assert_eq!(
            service_ref("service", "services/WhatsApp").unwrap(),
            Some("whatsapp".into())
        );
        assert_eq!(
            service_ref("service", "cash-app").unwrap(),
            Some("cash-app".into())
        );
        assert_eq!(service_ref("service", "").unwrap(), None);
        for bad in [
            "services/",
            "what sapp",
            "services/a/b",
            "-x",
            &"a".repeat(33),
        ] {
            assert!(service_ref("service", bad).is_err(), "{bad}");
        }
        assert_eq!(
            country_ref("country", "countries/gb").unwrap(),
            Some("GB".into())
        );
        assert_eq!(country_ref("country", "US").unwrap(), Some("US".into()));
        for bad in ["countries/", "GBR", "G1", "countries/GB/x", "Ü1"] {
            assert!(country_ref("country", bad).is_err(), "{bad}");
        }
        assert_eq!(
            price_name("name", "services/telegram/prices/us").unwrap(),
            ("telegram".into(), "US".into())
        );
        for bad in [
            "",
            "services/telegram",
            "services/telegram/prices/",
            "services//prices/US",
            "prices/US",
            "services/telegram/prices/USA",
            "services/tele gram/prices/US",
        ] {
            assert!(price_name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).unwrap(), 7);
        assert_eq!(page_size(i32::MAX).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn tokens_round_trip_and_are_scoped() {
        let key = SortKey::new("WhatsApp", "whatsapp");
        let token = encode_token("services:GB", &key);
        assert_eq!(decode_token("services:GB", &token).unwrap(), Some(key));
        assert!(decode_token("services:US", &token).is_err());
        assert!(decode_token("services:GB", "garbage!").is_err());
        assert!(decode_token("services:GB", &"A".repeat(600)).is_err());
        assert_eq!(decode_token("services:GB", "").unwrap(), None);
    }

    #[test]
    fn pages_follow_keys() {
        let items: Vec<u32> = (0..5).collect();
        let key = |i: &u32| SortKey::new(&format!("n{i}"), &i.to_string());
        let (first, next) = page(items.clone(), key, None, 2);
        assert_eq!(first, vec![0, 1]);
        let (second, next) = page(items.clone(), key, next.as_ref(), 2);
        assert_eq!(second, vec![2, 3]);
        let (last, next) = page(items.clone(), key, next.as_ref(), 2);
        assert_eq!(last, vec![4]);
        assert!(next.is_none());
        let (exact, next) = page(items, key, None, 5);
        assert_eq!(exact.len(), 5);
        assert!(next.is_none());
    }

    fn book() -> PriceBook {
        let at = Utc::now();
        let price = |s: &str, c: &str, b: i64| PriceEntry {
            service: s.into(),
            country: c.into(),
            base_price: b,
            updated_at: at,
        };
        PriceBook::new(Snapshot {
            markup_basis_points: 2_500,
            services: vec![
                ServiceEntry {
                    code: "whatsapp".into(),
                    display_name: "WhatsApp".into(),
                },
                ServiceEntry {
                    code: "gojek".into(),
                    display_name: "Gojek".into(),
                },
                ServiceEntry {
                    code: "amazon".into(),
                    display_name: "amazon".into(),
                },
            ],
            countries: vec![
                CountryEntry {
                    code: "US".into(),
                    display_name: "United States".into(),
                    calling_code: "+1".into(),
                },
                CountryEntry {
                    code: "ID".into(),
                    display_name: "Indonesia".into(),
                    calling_code: "+62".into(),
                },
            ],
            prices: vec![
                price("whatsapp", "US", 200),
                price("whatsapp", "ID", 40),
                price("gojek", "ID", 15),
            ],
            tenants: Vec::new(),
        })
    }

    #[test]
    fn lists_price_and_order() {
        let book = book();
        let all = |_: usize| Availability::Available;
        let services = book.services(None, 0, None, &all);
        let names: Vec<_> = services.iter().map(|s| s.code.as_str()).collect();
        // Case-insensitive display-name order.
        assert_eq!(names, ["amazon", "gojek", "whatsapp"]);
        // Offered nowhere: no price, unavailable.
        assert_eq!(services[0].price, None);
        assert_eq!(services[0].availability, Availability::Unavailable);
        // Cheapest country: 40 + 25 % = 50.
        assert_eq!(services[2].price, Some((50, "ID".into())));
        assert_eq!(services[2].country_count, 2);

        let in_us = book.services(Some("US"), 2_000, None, &all);
        assert_eq!(in_us.len(), 1);
        // 200 + 25 % = 250, − 20 % = 200.
        assert_eq!(in_us[0].price, Some((200, "US".into())));

        // Indonesia's WhatsApp is out of stock: the cheapest available is the US.
        let id_whatsapp = book.find("whatsapp", "ID").unwrap();
        let none_in_id = move |p: usize| {
            if p == id_whatsapp {
                Availability::Unavailable
            } else {
                Availability::Available
            }
        };
        let services = book.services(None, 0, None, &none_in_id);
        assert_eq!(services[2].price, Some((250, "US".into())));

        let countries = book.countries(None, 0, None, &all);
        let codes: Vec<_> = countries.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["ID", "US"]);
        // Indonesia's cheapest: Gojek at 15 + 25 % = 18.75 → 19.
        assert_eq!(countries[0].price, Some(19));
        assert_eq!(countries[0].service_count, 2);
        let whatsapp = book.countries(Some("whatsapp"), 3_500, None, &all);
        assert_eq!(whatsapp.len(), 2);
        // 50 − 35 % = 32.5 → 33.
        assert_eq!(whatsapp[0].price, Some(33));
    }

    #[test]
    fn quotes_and_what_is_missing() {
        let book = book();
        assert_eq!(book.find("nope", "US"), Err(Missing::Service));
        assert_eq!(book.find("whatsapp", "ZZ"), Err(Missing::Country));
        assert_eq!(book.find("gojek", "US"), Err(Missing::Price));
        let index = book.find("whatsapp", "US").unwrap();
        let quote = book.quote(index, Plan::Pro, 2_000, None, Stock::InStock(Some(5)));
        assert_eq!(quote.list_price, 250);
        assert_eq!(quote.price, 200);
        assert_eq!(quote.discount_basis_points, 2_000);
        assert_eq!(quote.availability, Availability::Low);
        assert_eq!(quote.available_numbers, Some(5));
    }

    #[test]
    fn snapshots_survive_the_cache() {
        let book = book();
        let json = serde_json::to_string(book.snapshot()).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        // Microsecond precision is what the cache keeps.
        assert_eq!(back.prices.len(), book.snapshot().prices.len());
        assert_eq!(back.services, book.snapshot().services);
    }
}
