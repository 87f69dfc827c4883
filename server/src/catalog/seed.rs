//! The catalog's seed: `server/data/catalog.json`, embedded in the binary, applied at
//! start-up in one transaction.
//!
//! The file lists countries (ISO code, English name, calling code), services (code, display
//! name) with their base price in each country where they are offered (US cents), and the
//! storefront's markup over base prices. Applying it is an upsert: rows it lists are created
//! or brought to its values (a price it lists is offered again if it had been withdrawn);
//! rows it does not list are left alone. The SHA-256 of the file is recorded, so a restart
//! with the same file changes nothing — prices set since (by an administrator) stay — and a
//! new version of the file is applied once, by whichever instance starts first (the others
//! wait on the settings row's lock and then find it applied).
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Utc;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::domain::{
    CURRENCY, MAX_BASE_PRICE, MAX_DISPLAY_NAME_LEN, MAX_MARKUP_BASIS_POINTS, is_country_code,
    is_service_code,
};
use super::entities::{catalog_countries, catalog_prices, catalog_services};
use super::repo;
use crate::error::StoreError;

/// The seed file, as shipped.
pub const CATALOG_JSON: &str = include_str!("../../data/catalog.json");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Must be the wallet's currency (`USD`).
    pub currency: String,
    /// The storefront's markup over base prices, in basis points.
    pub markup_basis_points: u32,
    pub countries: Vec<SeedCountry>,
    pub services: Vec<SeedService>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCountry {
    pub code: String,
    pub name: String,
    pub calling_code: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedService {
    pub code: String,
    pub name: String,
    /// Base price in cents by country code.
    pub prices: BTreeMap<String, i64>,
}

/// What applying the seed changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// False when this version of the file had been applied already.
    pub applied: bool,
    pub countries_added: usize,
    pub countries_updated: usize,
    pub services_added: usize,
    pub services_updated: usize,
    pub prices_added: usize,
    pub prices_updated: usize,
    pub markup_changed: bool,
}

impl SeedReport {
    /// Whether anything a customer sees changed.
    pub fn changed(&self) -> bool {
        self.countries_added
            + self.countries_updated
            + self.services_added
            + self.services_updated
            + self.prices_added
            + self.prices_updated
            > 0
            || self.markup_changed
    }
}

/// Parses and checks a seed file: every code well formed and unique, names present, prices
/// positive and for listed countries.
pub fn parse(text: &str) -> Result<SeedFile, String> {
    let seed: SeedFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    if seed.currency != CURRENCY {
        problems.push(format!("currency must be {CURRENCY}"));
    }
    if seed.markup_basis_points > MAX_MARKUP_BASIS_POINTS {
        problems.push(format!(
            "markup_basis_points must be at most {MAX_MARKUP_BASIS_POINTS}"
        ));
    }
    let name_ok =
        |name: &str| !name.trim().is_empty() && name.chars().count() <= MAX_DISPLAY_NAME_LEN;
    let mut countries = HashSet::new();
    for country in &seed.countries {
        if !is_country_code(&country.code) {
            problems.push(format!(
                "country code {:?} is not ISO 3166-1 alpha-2",
                country.code
            ));
        }
        if !countries.insert(country.code.as_str()) {
            problems.push(format!("country {} is listed twice", country.code));
        }
        if !name_ok(&country.name) {
            problems.push(format!(
                "country {} needs a name of at most 64 characters",
                country.code
            ));
        }
        let digits = country.calling_code.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(format!(
                "country {} has calling code {:?} (expected + and 1 to 4 digits)",
                country.code, country.calling_code
            ));
        }
    }
    let mut services = HashSet::new();
    for service in &seed.services {
        if !is_service_code(&service.code) {
            problems.push(format!("service code {:?} is not valid", service.code));
        }
        if !services.insert(service.code.as_str()) {
            problems.push(format!("service {} is listed twice", service.code));
        }
        if !name_ok(&service.name) {
            problems.push(format!(
                "service {} needs a name of at most 64 characters",
                service.code
            ));
        }
        for (country, price) in &service.prices {
            if !countries.contains(country.as_str()) {
                problems.push(format!(
                    "service {} has a price in {country}, which is not a listed country",
                    service.code
                ));
            }
            if !(1..=MAX_BASE_PRICE).contains(price) {
                problems.push(format!(
                    "service {} in {country}: price {price} is not between 1 and {MAX_BASE_PRICE} cents",
                    service.code
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(seed)
    } else {
        Err(problems.join("; "))
    }
}

/// The hex SHA-256 of a seed file's text.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Applies `seed` (whose text hashes to `digest`) in one transaction, unless that version was
/// applied already.
pub async fn apply(
    db: &DatabaseConnection,
    seed: &SeedFile,
    digest: &str,
) -> Result<SeedReport, StoreError> {
    let txn = db.begin().await?;
    let now = Utc::now();
    repo::ensure_settings(&txn, seed.markup_basis_points, now).await?;
    let settings = repo::lock_settings(&txn).await?;
    if settings.seed_digest.as_deref() == Some(digest) {
        txn.commit().await?;
        return Ok(SeedReport::default());
    }
    let mut report = SeedReport {
        applied: true,
        markup_changed: i64::from(settings.markup_basis_points)
            != i64::from(seed.markup_basis_points),
        ..SeedReport::default()
    };

    let mut existing: HashMap<String, catalog_countries::Model> = repo::all_countries(&txn)
        .await?
        .into_iter()
        .map(|c| (c.code.clone(), c))
        .collect();
    let mut new_countries = Vec::new();
    for country in &seed.countries {
        match existing.remove(&country.code) {
            None => new_countries.push(catalog_countries::Model {
                code: country.code.clone(),
                display_name: country.name.clone(),
                calling_code: country.calling_code.clone(),
                created_at: now,
                updated_at: now,
            }),
            Some(row)
                if row.display_name == country.name && row.calling_code == country.calling_code => {
            }
            Some(row) => {
                repo::update_country(&txn, row, &country.name, &country.calling_code, now).await?;
                report.countries_updated += 1;
            }
        }
    }
    report.countries_added = new_countries.len();
    repo::insert_countries(&txn, new_countries).await?;

    let mut existing: HashMap<String, catalog_services::Model> = repo::all_services(&txn)
        .await?
        .into_iter()
        .map(|s| (s.code.clone(), s))
        .collect();
    let mut new_services = Vec::new();
    for service in &seed.services {
        match existing.remove(&service.code) {
            None => new_services.push(catalog_services::Model {
                code: service.code.clone(),
                display_name: service.name.clone(),
                created_at: now,
                updated_at: now,
            }),
            Some(row) if row.display_name == service.name => {}
            Some(row) => {
                repo::rename_service(&txn, row, &service.name, now).await?;
                report.services_updated += 1;
            }
        }
    }
    report.services_added = new_services.len();
    repo::insert_services(&txn, new_services).await?;

    let mut existing: HashMap<(String, String), catalog_prices::Model> = repo::all_prices(&txn)
        .await?
        .into_iter()
        .map(|p| ((p.service_code.clone(), p.country_code.clone()), p))
        .collect();
    let mut new_prices = Vec::new();
    for service in &seed.services {
        for (country, &base_price) in &service.prices {
            match existing.remove(&(service.code.clone(), country.clone())) {
                None => new_prices.push(catalog_prices::Model {
                    service_code: service.code.clone(),
                    country_code: country.clone(),
                    base_price,
                    currency: CURRENCY.to_owned(),
                    withdrawn_at: None,
                    created_at: now,
                    updated_at: now,
                }),
                Some(row)
                    if row.base_price == base_price
                        && row.withdrawn_at.is_none()
                        && row.currency == CURRENCY => {}
                Some(row) => {
                    repo::save_price(
                        &txn,
                        Some(row),
                        &service.code,
                        country,
                        base_price,
                        CURRENCY,
                        now,
                    )
                    .await?;
                    report.prices_updated += 1;
                }
            }
        }
    }
    report.prices_added = new_prices.len();
    repo::insert_prices(&txn, new_prices).await?;

    repo::save_settings(&txn, settings, seed.markup_basis_points, digest, now).await?;
    txn.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_valid_and_large_enough() {
        let seed = parse(CATALOG_JSON).expect("server/data/catalog.json is valid");
        assert!(
            seed.services.len() >= 40,
            "{} services",
            seed.services.len()
        );
        assert!(
            seed.countries.len() >= 20,
            "{} countries",
            seed.countries.len()
        );
        let price = |service: &str, country: &str| {
            seed.services
                .iter()
                .find(|s| s.code == service)
                .and_then(|s| s.prices.get(country).copied())
                .unwrap_or_else(|| panic!("{service} in {country}"))
        };
        // Realistic: a US WhatsApp number costs more than an Indonesian one.
        assert!(price("whatsapp", "US") > price("whatsapp", "ID"));
        for code in [
            "whatsapp",
            "telegram",
            "google",
            "facebook",
            "instagram",
            "tiktok",
            "twitter",
            "discord",
            "uber",
            "amazon",
            "microsoft",
            "apple",
            "paypal",
            "tinder",
            "bumble",
            "netflix",
            "steam",
            "airbnb",
            "linkedin",
            "snapchat",
            "signal",
            "wechat",
            "viber",
            "openai",
            "coinbase",
            "binance",
            "yahoo",
            "ebay",
            "shopee",
            "grab",
            "gojek",
            "lyft",
            "doordash",
            "venmo",
            "cashapp",
            "line",
            "kakaotalk",
            "naver",
            "alibaba",
            "mercadolibre",
        ] {
            assert!(seed.services.iter().any(|s| s.code == code), "{code}");
        }
    }

    #[test]
    fn bad_seeds_are_refused_with_every_problem() {
        let bad = r#"{"currency":"EUR","markup_basis_points":2500,
            "countries":[{"code":"GBR","name":"","calling_code":"44"},
                         {"code":"US","name":"United States","calling_code":"+1"},
                         {"code":"US","name":"United States","calling_code":"+1"}],
            "services":[{"code":"Whats App","name":"WhatsApp","prices":{"US":0,"FR":10}}]}"#;
        let problems = parse(bad).unwrap_err();
        for expected in [
            "currency",
            "GBR",
            "listed twice",
            "calling code",
            "Whats App",
            "FR",
            "price 0",
        ] {
            assert!(problems.contains(expected), "{expected} in {problems}");
        }
        assert!(parse(r#"{"currency":"USD"}"#).is_err());
        assert!(
            parse(
                r#"{"currency":"USD","markup_basis_points":0,"countries":[],"services":[],"extra":1}"#
            )
            .is_err()
        );
    }
}
