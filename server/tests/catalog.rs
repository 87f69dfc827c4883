//! CatalogService against the real server: the seeded catalog, its lists and pages, prices
//! for each plan, errors, and price changes reaching every cache at once.
mod common;

use std::time::Duration;

use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::catalog_service_client::CatalogServiceClient;
use sea_orm::ConnectionTrait;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn catalog(app: &TestApp) -> CatalogServiceClient<Channel> {
    CatalogServiceClient::new(app.channel.clone())
}

/// A request with the access token, or anonymous.
fn as_caller<T>(message: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(token) => bearer(message, token),
        None => Request::new(message),
    }
}

async fn get_price(
    app: &TestApp,
    name: &str,
    token: Option<&str>,
) -> Result<pb::Price, tonic::Status> {
    catalog(app)
        .get_price(as_caller(pb::GetPriceRequest { name: name.into() }, token))
        .await
        .map(|r| r.into_inner().price.expect("a price"))
}

async fn list_services(
    app: &TestApp,
    request: pb::ListServicesRequest,
    token: Option<&str>,
) -> Result<pb::ListServicesResponse, tonic::Status> {
    catalog(app)
        .list_services(as_caller(request, token))
        .await
        .map(|r| r.into_inner())
}

async fn list_countries(
    app: &TestApp,
    request: pb::ListCountriesRequest,
    token: Option<&str>,
) -> Result<pb::ListCountriesResponse, tonic::Status> {
    catalog(app)
        .list_countries(as_caller(request, token))
        .await
        .map(|r| r.into_inner())
}

fn services_in(country: &str) -> pb::ListServicesRequest {
    pb::ListServicesRequest {
        country: country.into(),
        page_size: 500,
        ..Default::default()
    }
}

fn countries_for(service: &str) -> pb::ListCountriesRequest {
    pb::ListCountriesRequest {
        service: service.into(),
        page_size: 500,
        ..Default::default()
    }
}

/// `amount × basis_points / 10 000`, halves up, at least one cent: the README's rule,
/// computed independently of the server's code.
fn scaled(amount: i64, basis_points: i64) -> i64 {
    ((amount * basis_points * 2 + 10_000) / 20_000).max(1)
}

async fn base_price(app: &TestApp, service: &str, country: &str) -> i64 {
    scalar(
        &app.state.db,
        &format!(
            "SELECT base_price FROM catalog_prices \
             WHERE service_code = '{service}' AND country_code = '{country}'"
        ),
    )
    .await
}

async fn markup(app: &TestApp) -> i64 {
    scalar(
        &app.state.db,
        "SELECT CAST(markup_basis_points AS BIGINT) FROM catalog_settings",
    )
    .await
}

/// An account on `plan`, set in the database before the account is ever read through the
/// API (so no cached profile predates it); returns an access token.
async fn account_on(app: &TestApp, plan: &str) -> String {
    let (email, token) = app.signed_in().await;
    app.state
        .db
        .execute_unprepared(&format!(
            "UPDATE users SET plan = '{plan}' WHERE email_lower = '{}'",
            email.to_lowercase()
        ))
        .await
        .expect("set the plan");
    token
}

fn cents(money: &Option<pb::Money>) -> i64 {
    let money = money.as_ref().expect("an amount");
    assert_eq!(money.currency_code, "USD");
    money.minor_units
}

#[tokio::test]
async fn the_seeded_catalog_is_listed_in_order() {
    let app = spawn_app().await;
    let services = list_services(&app, services_in(""), None).await.unwrap();
    assert!(services.next_page_token.is_empty());
    let services = services.services;
    assert!(services.len() >= 40, "{} services", services.len());
    let codes: Vec<&str> = services.iter().map(|s| s.code.as_str()).collect();
    for code in [
        "whatsapp",
        "telegram",
        "google",
        "tiktok",
        "openai",
        "gojek",
        "mercadolibre",
        "venmo",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let names: Vec<String> = services
        .iter()
        .map(|s| s.display_name.to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ordered by display name");
    for service in &services {
        assert_eq!(service.name, format!("services/{}", service.code));
        // The sandbox provider has numbers everywhere: every service has a cheapest price.
        assert!(cents(&service.price) >= 1, "{service:?}");
        assert!(
            service.price_country.starts_with("countries/"),
            "{service:?}"
        );
        assert_eq!(service.availability, pb::Availability::Available as i32);
        assert!(service.country_count >= 1);
        // No verifications yet: no success rate, and it says so.
        assert_eq!(service.success_rate, None);
        assert_eq!(service.recent_verification_count, 0);
    }
    let whatsapp = services.iter().find(|s| s.code == "whatsapp").unwrap();
    assert_eq!(whatsapp.display_name, "WhatsApp");
    assert!(whatsapp.country_count >= 20);

    let countries = list_countries(&app, countries_for(""), None)
        .await
        .unwrap()
        .countries;
    assert!(countries.len() >= 20, "{} countries", countries.len());
    let names: Vec<String> = countries
        .iter()
        .map(|c| c.display_name.to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let gb = countries.iter().find(|c| c.code == "GB").expect("GB");
    assert_eq!(gb.name, "countries/GB");
    assert_eq!(gb.display_name, "United Kingdom");
    assert_eq!(gb.calling_code, "+44");
    assert!(gb.service_count >= 30);
    assert_eq!(gb.availability, pb::Availability::Available as i32);
    for country in &countries {
        assert!(cents(&country.price) >= 1);
        assert!(country.calling_code.starts_with('+'));
    }
    // The cheapest service of a country is its listed price.
    let cheapest_in_gb = list_services(&app, services_in("GB"), None)
        .await
        .unwrap()
        .services
        .iter()
        .map(|s| cents(&s.price))
        .min()
        .unwrap();
    assert_eq!(cents(&gb.price), cheapest_in_gb);
}

#[tokio::test]
async fn filters_narrow_the_lists() {
    let app = spawn_app().await;
    let all = list_services(&app, services_in(""), None)
        .await
        .unwrap()
        .services;
    for filter in ["GB", "countries/GB", "gb", "countries/gb"] {
        let in_gb = list_services(&app, services_in(filter), None)
            .await
            .unwrap()
            .services;
        assert!(in_gb.len() >= 30 && in_gb.len() < all.len(), "{filter}");
        for service in &in_gb {
            assert_eq!(service.price_country, "countries/GB");
        }
        // Regional services are not offered there.
        assert!(!in_gb.iter().any(|s| s.code == "gojek" || s.code == "venmo"));
    }

    let gojek = list_countries(&app, countries_for("gojek"), None)
        .await
        .unwrap()
        .countries;
    let codes: Vec<&str> = gojek.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["ID"]);
    let whatsapp = list_countries(&app, countries_for("services/whatsapp"), None)
        .await
        .unwrap()
        .countries;
    assert!(whatsapp.len() >= 20);
    // Each country's price is WhatsApp's there, as GetPrice says.
    for country in whatsapp.iter().take(5) {
        let price = get_price(
            &app,
            &format!("services/whatsapp/prices/{}", country.code),
            None,
        )
        .await
        .unwrap();
        assert_eq!(cents(&country.price), cents(&price.price));
    }
    // A realistic catalog: a US WhatsApp number costs more than an Indonesian one.
    let price_in = |code: &str| {
        cents(
            &whatsapp
                .iter()
                .find(|c| c.code == code)
                .unwrap_or_else(|| panic!("{code}"))
                .price,
        )
    };
    assert!(price_in("US") > price_in("ID"));

    // In the sandbox everything is available: `available_only` leaves the lists whole.
    let available = list_services(
        &app,
        pb::ListServicesRequest {
            available_only: true,
            ..services_in("")
        },
        None,
    )
    .await
    .unwrap()
    .services;
    assert_eq!(available.len(), all.len());
}

#[tokio::test]
async fn lists_page_by_token() {
    let app = spawn_app().await;
    let all = list_services(&app, services_in(""), None)
        .await
        .unwrap()
        .services;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list_services(
            &app,
            pb::ListServicesRequest {
                page_size: 7,
                page_token: token.clone(),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
        assert!(page.services.len() <= 7);
        seen.extend(page.services.into_iter().map(|s| s.code));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 100, "pagination does not end");
    }
    let codes: Vec<String> = all.iter().map(|s| s.code.clone()).collect();
    assert_eq!(seen, codes, "the pages are the list, once each, in order");
    assert_eq!(pages, all.len().div_ceil(7));

    // Default page size (100) holds the whole catalog; huge sizes are capped, not refused.
    let default = list_services(&app, pb::ListServicesRequest::default(), None)
        .await
        .unwrap();
    assert_eq!(default.services.len(), all.len());
    let huge = list_countries(
        &app,
        pb::ListCountriesRequest {
            page_size: i32::MAX,
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert!(huge.next_page_token.is_empty());

    // Countries page the same way.
    let first = list_countries(
        &app,
        pb::ListCountriesRequest {
            page_size: 10,
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(first.countries.len(), 10);
    let second = list_countries(
        &app,
        pb::ListCountriesRequest {
            page_size: 10,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert!(second.countries[0].display_name > first.countries[9].display_name);

    // A token belongs to its list and its filters.
    let first_services = list_services(
        &app,
        pb::ListServicesRequest {
            page_size: 5,
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    for request in [
        pb::ListServicesRequest {
            country: "GB".into(),
            page_token: first_services.next_page_token.clone(),
            ..Default::default()
        },
        pb::ListServicesRequest {
            available_only: true,
            page_token: first_services.next_page_token.clone(),
            ..Default::default()
        },
        pb::ListServicesRequest {
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
        pb::ListServicesRequest {
            page_token: "not-a-token!".into(),
            ..Default::default()
        },
    ] {
        let status = list_services(&app, request, None).await.unwrap_err();
        assert_invalid_fields(&status, &["page_token"]);
    }
    let status = list_countries(
        &app,
        pb::ListCountriesRequest {
            page_token: first_services.next_page_token,
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap_err();
    assert_invalid_fields(&status, &["page_token"]);

    // Bad sizes and filters name every field at once.
    let status = list_services(
        &app,
        pb::ListServicesRequest {
            country: "GBR".into(),
            page_size: -1,
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap_err();
    assert_invalid_fields(&status, &["country", "page_size"]);
    let status = list_countries(
        &app,
        pb::ListCountriesRequest {
            service: "What's App".into(),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap_err();
    assert_invalid_fields(&status, &["service"]);
}

#[tokio::test]
async fn prices_follow_the_callers_plan() {
    let app = spawn_app().await;
    let base = base_price(&app, "whatsapp", "US").await;
    let markup = markup(&app).await;
    let list = scaled(base, 10_000 + markup);
    assert!(markup > 0, "the seed sets a storefront markup");

    let (_, starter) = app.signed_in().await;
    let pro = account_on(&app, "pro").await;
    let enterprise = account_on(&app, "enterprise").await;
    for (token, tier, discount) in [
        (None, pb::PlanTier::Starter, 0),
        (Some(starter.as_str()), pb::PlanTier::Starter, 0),
        (Some(pro.as_str()), pb::PlanTier::Pro, 2_000),
        (Some(enterprise.as_str()), pb::PlanTier::Enterprise, 3_500),
    ] {
        let price = get_price(&app, "services/whatsapp/prices/US", token)
            .await
            .unwrap();
        assert_eq!(price.name, "services/whatsapp/prices/US");
        assert_eq!(price.service, "services/whatsapp");
        assert_eq!(price.country, "countries/US");
        assert_eq!(price.plan, tier as i32);
        assert_eq!(price.discount_basis_points, discount);
        assert_eq!(cents(&price.list_price), list);
        let expected = scaled(list, 10_000 - i64::from(discount));
        assert_eq!(cents(&price.price), expected, "{tier:?}");
        assert_eq!(price.availability, pb::Availability::Available as i32);
        assert_eq!(price.available_numbers, None, "the sandbox does not count");
        assert_eq!(price.success_rate, None);
        assert_eq!(price.recent_verification_count, 0);
        assert!(price.update_time.is_some());

        // The lists show the caller the same figure.
        let in_us = list_services(&app, services_in("US"), token)
            .await
            .unwrap()
            .services;
        let whatsapp = in_us.iter().find(|s| s.code == "whatsapp").unwrap();
        assert_eq!(cents(&whatsapp.price), expected);
        let countries = list_countries(&app, countries_for("whatsapp"), token)
            .await
            .unwrap()
            .countries;
        let us = countries.iter().find(|c| c.code == "US").unwrap();
        assert_eq!(cents(&us.price), expected);
    }

    // Every price of the catalog follows the rule (anonymous and pro), including the
    // cheapest ones, where rounding matters most.
    let services = list_services(&app, services_in("ID"), Some(&pro))
        .await
        .unwrap()
        .services;
    for service in services {
        let base = base_price(&app, &service.code, "ID").await;
        let expected = scaled(scaled(base, 10_000 + markup), 8_000);
        assert_eq!(cents(&service.price), expected, "{} in ID", service.code);
    }

    // A bare, lowercase name is read the same way.
    let lower = get_price(&app, "services/WhatsApp/prices/us", None)
        .await
        .unwrap();
    assert_eq!(lower.name, "services/whatsapp/prices/US");
}

#[tokio::test]
async fn unknown_services_and_countries_are_not_found() {
    let app = spawn_app().await;
    for (name, reason) in [
        ("services/nope/prices/US", "SERVICE_NOT_FOUND"),
        ("services/nope/prices/ZZ", "SERVICE_NOT_FOUND"),
        ("services/whatsapp/prices/ZZ", "COUNTRY_NOT_FOUND"),
        ("services/gojek/prices/US", "PRICE_NOT_FOUND"),
    ] {
        let status = get_price(&app, name, None).await.unwrap_err();
        assert_error(&status, Code::NotFound, reason);
    }
    for name in [
        "",
        "whatsapp",
        "services/whatsapp",
        "services/whatsapp/prices/USA",
        "services/whats app/prices/US",
        "countries/US/prices/whatsapp",
    ] {
        let status = get_price(&app, name, None).await.unwrap_err();
        assert_invalid_fields(&status, &["name"]);
    }
    let status = list_services(&app, services_in("ZZ"), None)
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "COUNTRY_NOT_FOUND");
    let status = list_countries(&app, countries_for("nope"), None)
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "SERVICE_NOT_FOUND");
}

#[tokio::test]
async fn a_price_change_is_visible_at_once() {
    let app = spawn_app().await;
    let markup = markup(&app).await;
    let name = "services/telegram/prices/GB";
    // Warm every cache first.
    let before = get_price(&app, name, None).await.unwrap();
    list_services(&app, services_in("GB"), None).await.unwrap();
    list_countries(&app, countries_for("telegram"), None)
        .await
        .unwrap();

    let old_base = base_price(&app, "telegram", "GB").await;
    let new_base = old_base + 77;
    let change = app
        .state
        .catalog
        .set_price("telegram", "GB", new_base)
        .await
        .unwrap();
    assert_eq!(change.previous_base_price, Some(old_base));
    assert_eq!(change.base_price, new_base);
    let expected = scaled(new_base, 10_000 + markup);

    let after = get_price(&app, name, None).await.unwrap();
    assert_eq!(cents(&after.price), expected);
    assert_ne!(cents(&after.price), cents(&before.price));
    let services = list_services(&app, services_in("GB"), None)
        .await
        .unwrap()
        .services;
    let telegram = services.iter().find(|s| s.code == "telegram").unwrap();
    assert_eq!(cents(&telegram.price), expected);
    let countries = list_countries(&app, countries_for("telegram"), None)
        .await
        .unwrap()
        .countries;
    assert_eq!(
        cents(&countries.iter().find(|c| c.code == "GB").unwrap().price),
        expected
    );

    // Offering a service somewhere new, and withdrawing it again.
    let status = get_price(&app, "services/gojek/prices/GB", None)
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "PRICE_NOT_FOUND");
    let added = app
        .state
        .catalog
        .set_price("gojek", "GB", 40)
        .await
        .unwrap();
    assert_eq!(added.previous_base_price, None);
    let gojek = get_price(&app, "services/gojek/prices/GB", None)
        .await
        .unwrap();
    assert_eq!(cents(&gojek.price), scaled(40, 10_000 + markup));
    assert_eq!(
        list_countries(&app, countries_for("gojek"), None)
            .await
            .unwrap()
            .countries
            .len(),
        2
    );
    let withdrawn = app
        .state
        .catalog
        .withdraw_price("gojek", "GB")
        .await
        .unwrap();
    assert_eq!(withdrawn, Some(40));
    let status = get_price(&app, "services/gojek/prices/GB", None)
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "PRICE_NOT_FOUND");
    assert!(
        !list_services(&app, services_in("GB"), None)
            .await
            .unwrap()
            .services
            .iter()
            .any(|s| s.code == "gojek")
    );

    // Bad changes are refused and change nothing.
    let catalog = &app.state.catalog;
    let status = catalog
        .set_price("nope", "GB", 10)
        .await
        .unwrap_err()
        .into_status();
    assert_error(&status, Code::NotFound, "SERVICE_NOT_FOUND");
    let status = catalog
        .set_price("telegram", "ZZ", 10)
        .await
        .unwrap_err()
        .into_status();
    assert_error(&status, Code::NotFound, "COUNTRY_NOT_FOUND");
    let status = catalog
        .set_price("telegram", "GB", 0)
        .await
        .unwrap_err()
        .into_status();
    assert_invalid_fields(&status, &["base_price"]);
    let status = catalog
        .set_price("Tele gram", "GBR", -5)
        .await
        .unwrap_err()
        .into_status();
    assert_invalid_fields(&status, &["service", "country", "base_price"]);
    assert_eq!(base_price(&app, "telegram", "GB").await, new_base);
}

/// Polls `check` for up to two seconds: the other instance hears of a change over Redis
/// pub/sub a moment after it is made.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not reach the other instance");
}

#[tokio::test]
async fn a_price_change_reaches_the_other_instance() {
    let a = spawn_app().await;
    if !a.uses_redis() {
        eprintln!("skipped: set TEST_REDIS_URL to run several instances on one Redis");
        return;
    }
    let b = a.spawn_peer().await;
    let markup = markup(&a).await;
    let name = "services/whatsapp/prices/ID";
    // Both instances have the catalog cached (locally and in Redis).
    let on_a = get_price(&a, name, None).await.unwrap();
    let on_b = get_price(&b, name, None).await.unwrap();
    assert_eq!(on_a.price, on_b.price);
    list_services(&b, services_in("ID"), None).await.unwrap();

    let new_base = base_price(&a, "whatsapp", "ID").await + 13;
    a.state
        .catalog
        .set_price("whatsapp", "ID", new_base)
        .await
        .unwrap();
    let expected = scaled(new_base, 10_000 + markup);
    // At once on the instance that made the change.
    assert_eq!(
        cents(&get_price(&a, name, None).await.unwrap().price),
        expected
    );
    eventually("the new price", || async {
        cents(&get_price(&b, name, None).await.unwrap().price) == expected
    })
    .await;
    let services = list_services(&b, services_in("ID"), None)
        .await
        .unwrap()
        .services;
    let whatsapp = services.iter().find(|s| s.code == "whatsapp").unwrap();
    assert_eq!(cents(&whatsapp.price), expected);

    // And the other way round.
    b.state
        .catalog
        .set_price("whatsapp", "ID", new_base + 1)
        .await
        .unwrap();
    let expected = scaled(new_base + 1, 10_000 + markup);
    eventually("the second price", || async {
        cents(&get_price(&a, name, None).await.unwrap().price) == expected
    })
    .await;
}

/// Every catalog row, as text, in a stable order.
async fn catalog_rows(app: &TestApp) -> Vec<String> {
    let db = &app.state.db;
    let mut rows = Vec::new();
    for sql in [
        "SELECT code, display_name, '' AS extra FROM catalog_services ORDER BY code",
        "SELECT code, display_name, calling_code AS extra FROM catalog_countries ORDER BY code",
        "SELECT service_code AS code, country_code AS display_name, \
         CAST(base_price AS VARCHAR(20)) AS extra FROM catalog_prices \
         WHERE withdrawn_at IS NULL ORDER BY service_code, country_code",
    ] {
        for row in db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
        {
            let code: String = row.try_get("", "code").unwrap();
            let name: String = row.try_get("", "display_name").unwrap();
            let extra: String = row.try_get("", "extra").unwrap();
            rows.push(format!("{code}|{name}|{extra}"));
        }
    }
    rows
}

#[tokio::test]
async fn seeding_is_idempotent() {
    let app = spawn_app().await;
    let rows = catalog_rows(&app).await;
    assert!(rows.len() > 1_000, "{} rows", rows.len());
    let prices = count_rows(&app, "catalog_prices").await;
    let last_change = scalar(
        &app.state.db,
        "SELECT COUNT(DISTINCT updated_at) FROM catalog_prices",
    )
    .await;

    // Seeding again (as every start-up does) finds this version applied.
    let report = app.state.catalog.seed().await.unwrap();
    assert!(!report.applied && !report.changed(), "{report:?}");
    // A restart: another instance starting on the same database.
    let restarted = app.spawn_peer().await;
    assert_eq!(catalog_rows(&restarted).await, rows);
    assert_eq!(count_rows(&app, "catalog_prices").await, prices);
    assert_eq!(
        scalar(
            &app.state.db,
            "SELECT COUNT(DISTINCT updated_at) FROM catalog_prices",
        )
        .await,
        last_change,
        "no price was touched"
    );

    // A price set since survives restarts with the same file…
    let seeded_base = base_price(&app, "signal", "DE").await;
    app.state
        .catalog
        .set_price("signal", "DE", seeded_base + 5)
        .await
        .unwrap();
    let _again = app.spawn_peer().await;
    assert_eq!(base_price(&app, "signal", "DE").await, seeded_base + 5);

    // …and a new version of the file brings every row it lists to its values, once.
    app.state
        .db
        .execute_unprepared("UPDATE catalog_settings SET seed_digest = 'an older file'")
        .await
        .unwrap();
    let report = app.state.catalog.seed().await.unwrap();
    assert!(report.applied, "{report:?}");
    assert_eq!(report.prices_updated, 1, "{report:?}");
    assert_eq!(
        report.prices_added + report.services_added + report.countries_added,
        0
    );
    assert_eq!(base_price(&app, "signal", "DE").await, seeded_base);
    assert_eq!(catalog_rows(&app).await, rows);
    // The cache heard of it at once.
    let price = get_price(&app, "services/signal/prices/DE", None)
        .await
        .unwrap();
    assert_eq!(
        cents(&price.list_price),
        scaled(seeded_base, 10_000 + markup(&app).await)
    );
    assert!(!app.state.catalog.seed().await.unwrap().applied);
}
