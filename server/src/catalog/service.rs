//! The catalog room: what `CatalogService` answers, the price changes administrators (and
//! the seed) make, and the cache between them.
//!
//! # Cache
//!
//! The whole catalog (services, countries, base prices, markup) is one small snapshot,
//! cached as JSON for an hour under `catalog:v2:{generation}:snapshot` (Redis in
//! production, in-process otherwise), where `catalog:generation` names the current
//! generation. Readers only *fill* (set-if-absent); a price change commits to the database
//! first and then *sets* a new generation, which overwrites the old one and (with Redis)
//! is broadcast to every instance. So:
//!
//! - after a change every reader, on every instance, looks under a key no one has filled
//!   yet and rebuilds from the database, which already holds the change;
//! - a slow reader that read the database before the change can only fill the old
//!   generation's key, which no one reads any more.
//!
//! Each instance also keeps the decoded snapshot of the generation it last saw, so a
//! steady stream of calls costs one cache read (the generation, itself held in the Redis
//! cache's near copy) and no JSON decoding. If the cache is unreachable, requests read the
//! database directly.
//!
//! Availability comes from the [`Inventory`] on every request; success rates from
//! [`super::rates`], a tally of the last day's verifications kept for a minute.
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use super::domain::{
    self, Availability, CURRENCY, CountryListing, MAX_BASE_PRICE, PriceBook, PriceQuote,
    ServiceListing, Snapshot, SortKey,
};
use super::inventory::Inventory;
use super::repo;
use super::seed::{self, SeedReport};
use crate::billing::plans::PlanBook;
use crate::cache::Cache;
use crate::error::{ApiError, StoreError};
use crate::identity::domain::{Plan, Principal};
use crate::identity::service::Identity;

/// How long a catalog snapshot (and a generation) is cached.
pub const CATALOG_TTL: Duration = Duration::from_secs(3600);
/// The cache key naming the current generation of the catalog.
pub const GENERATION_KEY: &str = "catalog:generation";

/// The cache key of a generation's snapshot. `v2` (tenants added) is the snapshot's JSON format: a release
/// that changes it uses another key instead of misreading the old one.
fn snapshot_key(generation: &str) -> String {
    format!("catalog:v2:{generation}:snapshot")
}

/// One page of a list, and the token of the next (empty on the last page).
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// A list request's fields, as they came.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListQuery<'a> {
    /// `ListServices.country` or `ListCountries.service`.
    pub filter: &'a str,
    pub page_size: i32,
    pub page_token: &'a str,
    pub available_only: bool,
}

/// What a price change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceChange {
    pub service: String,
    pub country: String,
    /// The base price now in force.
    pub base_price: i64,
    /// The base price before; `None` when the service was not offered there.
    pub previous_base_price: Option<i64>,
}

struct Loaded {
    generation: String,
    at: Instant,
    book: Arc<PriceBook>,
}

pub struct Catalog {
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
    identity: Arc<Identity>,
    inventory: Arc<dyn Inventory>,
    /// The plans' discounts.
    plans: PlanBook,
    loaded: RwLock<Option<Loaded>>,
    /// One rebuild at a time per instance: a burst of calls after a change waits for the
    /// first one's snapshot instead of each reading the database.
    rebuilding: tokio::sync::Mutex<()>,
}

/// Both results, or every field violation of both.
fn both<A, B>(a: Result<A, ApiError>, b: Result<B, ApiError>) -> Result<(A, B), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(ApiError::InvalidArgument(mut first)), Err(ApiError::InvalidArgument(second))) => {
            first.extend(second);
            Err(ApiError::InvalidArgument(first))
        }
        (Err(error), _) | (_, Err(error)) => Err(error),
    }
}

impl Catalog {
    pub fn new(
        db: DatabaseConnection,
        cache: Arc<dyn Cache>,
        identity: Arc<Identity>,
        inventory: Arc<dyn Inventory>,
        plans: PlanBook,
    ) -> Self {
        Self {
            plans,
            db,
            cache,
            identity,
            inventory,
            loaded: RwLock::new(None),
            rebuilding: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies the embedded seed file (see [`seed`]) and starts a new cache generation.
    ///
    /// The generation moves at every start-up, whether or not the file changed anything, so
    /// that a catalog changed while no instance was running is never served from an old
    /// cache; it costs each running instance one rebuild.
    pub async fn seed(&self) -> anyhow::Result<SeedReport> {
        let file = seed::parse(seed::CATALOG_JSON)
            .map_err(|problems| anyhow::anyhow!("server/data/catalog.json: {problems}"))?;
        let report = seed::apply(&self.db, &file, &seed::digest(seed::CATALOG_JSON)).await?;
        self.invalidate()
            .await
            .map_err(|error| anyhow::anyhow!("cannot refresh the catalog cache: {error}"))?;
        Ok(report)
    }

    /// Sets the platform's base price of `service` in `country` (offering it there if it
    /// was not), then invalidates every instance's catalog cache. (`AdminService` uses
    /// [`Self::set_price_in`], so that its audit entry commits with the change.)
    ///
    /// `INVALID_ARGUMENT` for a malformed code or a price outside 1 to 1,000,000 cents;
    /// `NOT_FOUND`/`SERVICE_NOT_FOUND` or `COUNTRY_NOT_FOUND` for unknown codes.
    pub async fn set_price(
        &self,
        service: &str,
        country: &str,
        base_price: i64,
    ) -> Result<PriceChange, ApiError> {
        let txn = self.db.begin().await?;
        let change = self
            .set_price_in(&txn, service, country, base_price)
            .await?;
        txn.commit().await?;
        // Also when nothing changed: a retry after a failed invalidation repairs it.
        self.invalidate().await?;
        Ok(change)
    }

    /// [`Self::set_price`] inside the caller's transaction (so that an administrator's audit
    /// entry commits with it); the caller invalidates the caches after the commit.
    pub async fn set_price_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        service: &str,
        country: &str,
        base_price: i64,
    ) -> Result<PriceChange, ApiError> {
        let (service, country) = self.existing_pair(service, country, Some(base_price))?;
        self.check_exists(txn, &service, &country).await?;
        let existing = repo::price_for_update(txn, &service, &country).await?;
        let previous_base_price = existing
            .as_ref()
            .filter(|p| p.withdrawn_at.is_none())
            .map(|p| p.base_price);
        repo::save_price(
            txn,
            existing,
            &service,
            &country,
            base_price,
            CURRENCY,
            Utc::now(),
        )
        .await?;
        tracing::info!(%service, %country, base_price, ?previous_base_price, "catalog price set");
        Ok(PriceChange {
            service,
            country,
            base_price,
            previous_base_price,
        })
    }

    /// Stops offering `service` in `country` (the price is kept for the record), then
    /// invalidates the caches. Returns the base price that was on offer, if any.
    pub async fn withdraw_price(
        &self,
        service: &str,
        country: &str,
    ) -> Result<Option<i64>, ApiError> {
        let txn = self.db.begin().await?;
        let withdrawn = self.withdraw_price_in(&txn, service, country).await?;
        txn.commit().await?;
        self.invalidate().await?;
        Ok(withdrawn.previous_base_price)
    }

    /// [`Self::withdraw_price`] inside the caller's transaction; the caller invalidates the
    /// caches after the commit. The answer's `base_price` is the last price on record (kept
    /// for the record; 0 if it never had one).
    pub async fn withdraw_price_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        service: &str,
        country: &str,
    ) -> Result<PriceChange, ApiError> {
        let (service, country) = self.existing_pair(service, country, None)?;
        self.check_exists(txn, &service, &country).await?;
        let existing = repo::price_for_update(txn, &service, &country).await?;
        let previous = existing
            .as_ref()
            .filter(|p| p.withdrawn_at.is_none())
            .map(|p| p.base_price);
        let kept = existing.as_ref().map_or(0, |p| p.base_price);
        repo::withdraw_price(txn, existing, Utc::now()).await?;
        tracing::info!(%service, %country, ?previous, "catalog price withdrawn");
        Ok(PriceChange {
            service,
            country,
            base_price: kept,
            previous_base_price: previous,
        })
    }

    /// Checks the codes (and price) of a change; returns the codes in canonical form.
    fn existing_pair(
        &self,
        service: &str,
        country: &str,
        base_price: Option<i64>,
    ) -> Result<(String, String), ApiError> {
        let required = |field: &str, value: Result<Option<String>, ApiError>| {
            value.and_then(|v| v.ok_or_else(|| ApiError::invalid(field, "is required")))
        };
        let codes = both(
            required("service", domain::service_ref("service", service)),
            required("country", domain::country_ref("country", country)),
        );
        let price = match base_price {
            Some(price) if !(1..=MAX_BASE_PRICE).contains(&price) => Err(ApiError::invalid(
                "base_price",
                format!("must be between 1 and {MAX_BASE_PRICE} cents"),
            )),
            _ => Ok(()),
        };
        both(codes, price).map(|(codes, ())| codes)
    }

    async fn check_exists(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        service: &str,
        country: &str,
    ) -> Result<(), ApiError> {
        if !repo::service_exists(conn, service).await? {
            return Err(domain::Missing::Service.into_error(service, country));
        }
        if !repo::country_exists(conn, country).await? {
            return Err(domain::Missing::Country.into_error(service, country));
        }
        Ok(())
    }

    /// Starts a new cache generation: every instance rebuilds its catalog from the
    /// database on its next call. Retried briefly; a failure is logged and returned.
    pub async fn invalidate(&self) -> Result<(), ApiError> {
        let generation = Uuid::new_v4().simple().to_string();
        let mut attempt = 0;
        loop {
            match self
                .cache
                .set(GENERATION_KEY, &generation, CATALOG_TTL)
                .await
            {
                Ok(()) => {
                    *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = None;
                    return Ok(());
                }
                Err(error) if attempt < 2 => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "could not invalidate the catalog cache; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(error) => {
                    tracing::error!(%error, "could not invalidate the catalog cache: prices may be stale for up to an hour");
                    return Err(error.into());
                }
            }
        }
    }

    /// The current generation, creating one if the cache holds none (it expired, or the
    /// cache was emptied): creating is set-if-absent, so instances agree on one.
    async fn generation(&self) -> Result<String, StoreError> {
        if let Some(generation) = self.cache.get(GENERATION_KEY).await? {
            return Ok(generation);
        }
        let fresh = Uuid::new_v4().simple().to_string();
        self.cache.fill(GENERATION_KEY, &fresh, CATALOG_TTL).await?;
        Ok(self.cache.get(GENERATION_KEY).await?.unwrap_or(fresh))
    }

    fn loaded_for(&self, generation: &str) -> Option<Arc<PriceBook>> {
        let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
        loaded
            .as_ref()
            .filter(|l| l.generation == generation && l.at.elapsed() < CATALOG_TTL)
            .map(|l| Arc::clone(&l.book))
    }

    /// The catalog as of the current generation.
    async fn book(&self) -> Result<Arc<PriceBook>, ApiError> {
        let generation = match self.generation().await {
            Ok(generation) => generation,
            Err(error) => {
                tracing::warn!(%error, "catalog cache unavailable; reading the database");
                return Ok(Arc::new(PriceBook::new(repo::snapshot(&self.db).await?)));
            }
        };
        if let Some(book) = self.loaded_for(&generation) {
            return Ok(book);
        }
        let _turn = self.rebuilding.lock().await;
        if let Some(book) = self.loaded_for(&generation) {
            return Ok(book);
        }
        let key = snapshot_key(&generation);
        let cached = match self.cache.get(&key).await {
            Ok(Some(json)) => serde_json::from_str::<Snapshot>(&json)
                .inspect_err(|error| {
                    tracing::warn!(%error, key, "unreadable catalog snapshot in the cache; rebuilding")
                })
                .ok(),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "catalog cache unavailable; reading the database");
                None
            }
        };
        let snapshot = match cached {
            Some(snapshot) => snapshot,
            None => {
                let snapshot = repo::snapshot(&self.db).await?;
                match serde_json::to_string(&snapshot) {
                    Ok(json) => {
                        if let Err(error) = self.cache.fill(&key, &json, CATALOG_TTL).await {
                            tracing::warn!(%error, "could not cache the catalog");
                        }
                    }
                    Err(error) => tracing::error!(%error, "could not encode the catalog"),
                }
                snapshot
            }
        };
        let book = Arc::new(PriceBook::new(snapshot));
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Some(Loaded {
            generation,
            at: Instant::now(),
            book: Arc::clone(&book),
        });
        Ok(book)
    }

    /// The plan whose discount the caller gets: starter without credentials.
    pub async fn plan_of(&self, principal: Option<&Principal>) -> Result<Plan, ApiError> {
        let Some(principal) = principal else {
            return Ok(Plan::Starter);
        };
        let profile = self.identity.me(principal).await?;
        Ok(Plan::parse(&profile.plan).unwrap_or(Plan::Starter))
    }

    /// Availability of the prices at `indexes` (the others read as unavailable, and are
    /// not asked for).
    async fn availability(
        &self,
        book: &PriceBook,
        indexes: impl IntoIterator<Item = usize>,
    ) -> Vec<Availability> {
        let prices = book.prices();
        let mut availability = vec![Availability::Unavailable; prices.len()];
        for index in indexes {
            let price = &prices[index];
            availability[index] = self
                .inventory
                .stock(&price.service, &price.country)
                .await
                .availability();
        }
        availability
    }

    /// `ListServices`: services in display-name order, priced for the caller.
    pub async fn list_services(
        &self,
        principal: Option<&Principal>,
        store: Option<Uuid>,
        query: ListQuery<'_>,
    ) -> Result<Page<ServiceListing>, ApiError> {
        let (country, size) = both(
            domain::country_ref("country", query.filter),
            domain::page_size(query.page_size),
        )?;
        let scope = format!(
            "services:{}:{}",
            country.as_deref().unwrap_or("*"),
            query.available_only
        );
        let after = domain::decode_token(&scope, query.page_token)?;
        let book = self.book().await?;
        let indexes = match &country {
            Some(code) if !book.has_country(code) => {
                return Err(domain::Missing::Country.into_error("", code));
            }
            Some(code) => book.prices_in_country(code),
            None => (0..book.prices().len()).collect(),
        };
        let plan = self.plan_of(principal).await?;
        let availability = self.availability(&book, indexes).await;
        let mut services = book.services(
            country.as_deref(),
            self.plans.terms(plan).discount_basis_points,
            store_index(&book, store),
            &|p| availability[p],
        );
        if query.available_only {
            services.retain(|s| s.availability != Availability::Unavailable);
        }
        let key = |s: &ServiceListing| SortKey::new(&s.display_name, &s.code);
        let (items, next) = domain::page(services, key, after.as_ref(), size);
        Ok(Page {
            items,
            next_page_token: next
                .map(|k| domain::encode_token(&scope, &k))
                .unwrap_or_default(),
        })
    }

    /// `ListCountries`: countries in display-name order, priced for the caller.
    pub async fn list_countries(
        &self,
        principal: Option<&Principal>,
        store: Option<Uuid>,
        query: ListQuery<'_>,
    ) -> Result<Page<CountryListing>, ApiError> {
        let (service, size) = both(
            domain::service_ref("service", query.filter),
            domain::page_size(query.page_size),
        )?;
        let scope = format!(
            "countries:{}:{}",
            service.as_deref().unwrap_or("*"),
            query.available_only
        );
        let after = domain::decode_token(&scope, query.page_token)?;
        let book = self.book().await?;
        let indexes = match &service {
            Some(code) if !book.has_service(code) => {
                return Err(domain::Missing::Service.into_error(code, ""));
            }
            Some(code) => book.prices_of_service(code),
            None => (0..book.prices().len()).collect(),
        };
        let plan = self.plan_of(principal).await?;
        let availability = self.availability(&book, indexes).await;
        let mut countries = book.countries(
            service.as_deref(),
            self.plans.terms(plan).discount_basis_points,
            store_index(&book, store),
            &|p| availability[p],
        );
        if query.available_only {
            countries.retain(|c| c.availability != Availability::Unavailable);
        }
        let key = |c: &CountryListing| SortKey::new(&c.display_name, &c.code);
        let (items, next) = domain::page(countries, key, after.as_ref(), size);
        Ok(Page {
            items,
            next_page_token: next
                .map(|k| domain::encode_token(&scope, &k))
                .unwrap_or_default(),
        })
    }

    /// `GetPrice`: the caller's price of one service in one country (`name` is
    /// `services/{service_code}/prices/{country_code}`). The price
    /// `CreateVerification` holds is this one.
    pub async fn price(
        &self,
        principal: Option<&Principal>,
        store: Option<Uuid>,
        name: &str,
    ) -> Result<PriceQuote, ApiError> {
        let (service, country) = domain::price_name("name", name)?;
        self.quote(principal, store, &service, &country).await
    }

    /// A service's display name (`WhatsApp` for `whatsapp`).
    pub async fn service_name(&self, code: &str) -> Option<String> {
        let book = self.book().await.ok()?;
        book.snapshot()
            .services
            .iter()
            .find(|s| s.code == code)
            .map(|s| s.display_name.clone())
    }

    /// Every country's calling code (`GB` → `+44`), for the sandbox provider's numbers.
    pub async fn calling_codes(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, ApiError> {
        let book = self.book().await?;
        Ok(book
            .snapshot()
            .countries
            .iter()
            .map(|c| (c.code.clone(), c.calling_code.clone()))
            .collect())
    }

    /// The caller's price of `service` (a code) in `country` (a code), in `store` (a
    /// tenant's id; `None`: the platform's).
    pub async fn quote(
        &self,
        principal: Option<&Principal>,
        store: Option<Uuid>,
        service: &str,
        country: &str,
    ) -> Result<PriceQuote, ApiError> {
        let book = self.book().await?;
        let index = book
            .find(service, country)
            .map_err(|missing| missing.into_error(service, country))?;
        let plan = self.plan_of(principal).await?;
        let stock = self.inventory.stock(service, country).await;
        Ok(book.quote(
            index,
            plan,
            self.plans.terms(plan).discount_basis_points,
            store_index(&book, store),
            stock,
        ))
    }

    /// The catalog as it stands (the cached snapshot), for the tenant room.
    pub async fn current(&self) -> Result<Arc<PriceBook>, ApiError> {
        self.book().await
    }

    /// The storefront of a request: the caller's tenant when it has an account, else the
    /// tenant that holds `host`; `None`: the platform's own. Refused with
    /// `PERMISSION_DENIED`/`TENANT_SUSPENDED` while that tenant is suspended: its customers,
    /// and anonymous callers at its host (whose sign-ups would join it, and whose price
    /// lists would be its), are turned away alike.
    pub async fn storefront(
        &self,
        account_tenant: Option<Option<Uuid>>,
        host: Option<&str>,
    ) -> Result<Option<Uuid>, ApiError> {
        match account_tenant {
            Some(None) => Ok(None),
            Some(Some(tenant)) => {
                let book = self.book().await?;
                match book.tenant(tenant) {
                    Some((_, entry)) if entry.suspended => Err(ApiError::permission_denied(
                        "TENANT_SUSPENDED",
                        "the service you signed up with is suspended; your balance and verifications are kept, contact its support",
                    )),
                    _ => Ok(Some(tenant)),
                }
            }
            None => {
                let Some(host) = host else {
                    return Ok(None);
                };
                let book = self.book().await?;
                match book.tenant_at_host(host) {
                    Some((_, entry)) if entry.suspended => Err(ApiError::permission_denied(
                        "TENANT_SUSPENDED",
                        "the service at this address is suspended; its customers' balances and verifications are kept, contact its support",
                    )),
                    found => Ok(found.map(|(_, entry)| entry.id)),
                }
            }
        }
    }
}

/// The index of `store` among the book's tenants (an unknown tenant sells at the
/// platform's prices).
fn store_index(book: &PriceBook, store: Option<Uuid>) -> Option<usize> {
    store.and_then(|id| book.tenant(id)).map(|(i, _)| i)
}

#[async_trait::async_trait]
impl crate::identity::service::Brands for Catalog {
    async fn mail_brand(
        &self,
        tenant: Option<Uuid>,
    ) -> Option<crate::identity::service::MailBrand> {
        let book = self.book().await.ok()?;
        let (_, entry) = book.tenant(tenant?)?;
        let branding = &entry.branding;
        // A tenant with neither a web site nor a host name of its own keeps its name and
        // sender; only its links are the platform's (left empty for the identity room).
        let base_url = if !branding.website_uri.is_empty() {
            branding.website_uri.trim_end_matches('/').to_owned()
        } else if let Some(host) = entry.hosts.first() {
            format!("https://{host}")
        } else {
            String::new()
        };
        Some(crate::identity::service::MailBrand {
            name: branding.display_name.clone(),
            sender: Some(branding.mail_sender_name.clone()).filter(|s| !s.is_empty()),
            base_url,
        })
    }
}
