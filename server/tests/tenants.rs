//! White-label tenants end to end: administrators create and suspend them, owners set
//! their branding and prices, customers sign up on a tenant's host and buy at its prices,
//! and the ledger books the platform's price and the tenant's margin apart.
mod common;

use std::collections::BTreeMap;

use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::admin_service_client::AdminServiceClient;
use namaskah_proto::v1::analytics_service_client::AnalyticsServiceClient;
use namaskah_proto::v1::catalog_service_client::CatalogServiceClient;
use namaskah_proto::v1::subscription_service_client::SubscriptionServiceClient;
use namaskah_proto::v1::tenant_service_client::TenantServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

const ACME_HOST: &str = "sms.acme.test";
const BOLT_HOST: &str = "bolt.example.net";

fn tenants(app: &TestApp) -> TenantServiceClient<Channel> {
    TenantServiceClient::new(app.channel.clone())
}

/// `name` as `token` sees it (the call must succeed).
async fn tenant_as(app: &TestApp, name: &str, token: &str) -> pb::Tenant {
    tenants(app)
        .get_tenant(bearer(pb::GetTenantRequest { name: name.into() }, token))
        .await
        .unwrap_or_else(|status| panic!("GetTenant {name}: {status:?}"))
        .into_inner()
        .tenant
        .expect("a tenant")
}

fn catalog(app: &TestApp) -> CatalogServiceClient<Channel> {
    CatalogServiceClient::new(app.channel.clone())
}

/// A request sent to `host` (as the edge and nginx pass the browser's `Host` on).
fn at_host<T>(message: T, host: &str, token: Option<&str>) -> Request<T> {
    let mut request = match token {
        Some(token) => bearer(message, token),
        None => Request::new(message),
    };
    request
        .metadata_mut()
        .insert("x-forwarded-host", host.parse().unwrap());
    request
}

fn branding(name: &str, color: &str) -> pb::Branding {
    pb::Branding {
        display_name: name.into(),
        logo_uri: format!(
            "https://cdn.{}.test/logo.png",
            name.to_lowercase().replace(' ', "")
        ),
        favicon_uri: String::new(),
        primary_color: color.into(),
        accent_color: "#FFAA00".into(),
        support_email: "help@acme.test".into(),
        mail_sender_name: name.into(),
        website_uri: format!("https://www.{}.test", name.to_lowercase().replace(' ', "")),
    }
}

/// An account on the enterprise plan, signed in; returns its name (`users/…`) and token.
async fn enterprise_owner(app: &TestApp) -> (String, String) {
    let email = app.register().await;
    let db = &app.state.db;
    sea_orm::ConnectionTrait::execute_unprepared(
        db,
        &format!("UPDATE users SET plan = 'enterprise' WHERE email = '{email}'"),
    )
    .await
    .unwrap();
    let token = app.login(&email).await.access_token;
    let me = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    (me.name, token)
}

async fn create(
    app: &TestApp,
    admin: &str,
    id: &str,
    owner: &str,
    hosts: &[&str],
    markup: i32,
    brand: Option<pb::Branding>,
) -> Result<pb::Tenant, tonic::Status> {
    tenants(app)
        .create_tenant(bearer(
            pb::CreateTenantRequest {
                tenant_id: id.into(),
                tenant: Some(pb::Tenant {
                    display_name: format!("{id} reseller"),
                    owner: owner.into(),
                    hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                    branding: brand,
                    markup_basis_points: markup,
                    ..Default::default()
                }),
                request_id: uuid::Uuid::new_v4().to_string(),
            },
            admin,
        ))
        .await
        .map(|r| r.into_inner().tenant.unwrap())
}

/// A request sent to `host` when given (else to the server's address), signed in with
/// `token` when given.
fn request_as<T>(message: T, host: Option<&str>, token: Option<&str>) -> Request<T> {
    match (host, token) {
        (Some(host), token) => at_host(message, host, token),
        (None, Some(token)) => bearer(message, token),
        (None, None) => Request::new(message),
    }
}

async fn price_at(app: &TestApp, host: Option<&str>, token: Option<&str>) -> i64 {
    let message = pb::GetPriceRequest {
        name: "services/whatsapp/prices/GB".into(),
    };
    catalog(app)
        .get_price(request_as(message, host, token))
        .await
        .expect("a price")
        .into_inner()
        .price
        .unwrap()
        .price
        .unwrap()
        .minor_units
}

/// Every service's price in `country` as `ListServices` shows it to the caller, by service
/// code.
async fn listed_prices(
    app: &TestApp,
    host: Option<&str>,
    token: Option<&str>,
    country: &str,
) -> BTreeMap<String, i64> {
    let listed = catalog(app)
        .list_services(request_as(
            pb::ListServicesRequest {
                country: format!("countries/{country}"),
                page_size: 500,
                ..Default::default()
            },
            host,
            token,
        ))
        .await
        .expect("list services")
        .into_inner();
    assert!(listed.next_page_token.is_empty(), "one page holds them all");
    listed
        .services
        .into_iter()
        .map(|s| (s.code, s.price.expect("a price in the country").minor_units))
        .collect()
}

/// A tenant's price list in `country` (`ListTenantPrices`, every page), by service code.
async fn tenant_price_list(
    app: &TestApp,
    token: &str,
    tenant: &str,
    country: &str,
) -> BTreeMap<String, i64> {
    let mut prices = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = tenants(app)
            .list_tenant_prices(bearer(
                pb::ListTenantPricesRequest {
                    parent: tenant.into(),
                    country: format!("countries/{country}"),
                    page_size: 20,
                    page_token,
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("the tenant's prices")
            .into_inner();
        for p in page.prices {
            assert_eq!(p.country, format!("countries/{country}"));
            let code = p.service.trim_start_matches("services/").to_owned();
            prices.insert(code, p.price.unwrap().minor_units);
        }
        if page.next_page_token.is_empty() {
            return prices;
        }
        page_token = page.next_page_token;
    }
}

/// `base × (10 000 + markup) / 10 000`, halves up (the catalog's rule).
fn marked_up(base: i64, markup: i64) -> i64 {
    (base * (10_000 + markup) + 5_000) / 10_000
}

/// Registers at `host`, verifies the email from the mail sink, logs in and funds the
/// wallet; returns the email and the token.
async fn customer_at(app: &TestApp, host: &str, funds: i64) -> (String, String) {
    let email = unique_email();
    app.auth()
        .register(at_host(
            pb::RegisterRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                referral_code: String::new(),
            },
            host,
            None,
        ))
        .await
        .expect("register at the tenant's host");
    let token = app.nth_token_to(&email, 1).await;
    app.auth()
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .expect("verify email");
    let token = app.login(&email).await.access_token;
    let top_up = app.top_up(&token, funds).await;
    app.sandbox()
        .complete_payment(bearer(
            pb::CompletePaymentRequest {
                reference: top_up.reference,
                outcome: 0,
                paid_amount: None,
            },
            &token,
        ))
        .await
        .expect("complete the sandbox payment");
    (email, token)
}

async fn margin_lines(app: &TestApp, tenant_name: &str) -> i64 {
    let slug = tenant_name.trim_start_matches("tenants/");
    scalar(
        &app.state.db,
        &format!(
            "SELECT COALESCE(CAST(SUM(l.amount) AS BIGINT), 0) FROM journal_lines l \
             JOIN ledger_accounts a ON a.id = l.account_id AND a.kind = 'tenant_margin' \
             JOIN journal_entries e ON e.id = l.entry_id \
             JOIN users u ON u.id = e.user_id \
             JOIN tenants t ON t.id = u.tenant_id \
             WHERE t.slug = '{slug}'"
        ),
    )
    .await
}

#[tokio::test]
async fn customers_buy_at_their_tenants_prices_and_the_ledger_splits_the_sale() {
    let app = spawn_app_with(&[("NAMASKAH_SANDBOX_SMS_DELAY", "off")]).await;
    let admin = admin_session(&app).await;
    let (acme_owner, acme_token) = enterprise_owner(&app).await;
    let (bolt_owner, bolt_token) = enterprise_owner(&app).await;
    let acme = create(
        &app,
        &admin.token,
        "acme",
        &acme_owner,
        &["ACME.example.com", ACME_HOST],
        5_000,
        Some(branding("Acme SMS", "#112233")),
    )
    .await
    .expect("create acme");
    assert_eq!(acme.name, "tenants/acme");
    assert_eq!(acme.hosts, vec!["acme.example.com", ACME_HOST]);
    assert_eq!(acme.state, pb::TenantState::Active as i32);
    let bolt = create(
        &app,
        &admin.token,
        "bolt",
        &bolt_owner,
        &[BOLT_HOST],
        1_000,
        None,
    )
    .await
    .expect("create bolt");
    // Without branding of its own: the platform's look under the tenant's name.
    assert_eq!(
        bolt.branding.as_ref().unwrap().display_name,
        "bolt reseller"
    );

    // Anonymous visitors see the storefront of the host they came to.
    let platform = price_at(&app, None, None).await;
    assert_eq!(
        price_at(&app, Some("nobody.example.org"), None).await,
        platform
    );
    assert_eq!(
        price_at(&app, Some(ACME_HOST), None).await,
        marked_up(platform, 5_000)
    );
    assert_eq!(
        price_at(&app, Some("Acme.Example.com:443"), None).await,
        marked_up(platform, 5_000)
    );
    assert_eq!(
        price_at(&app, Some(BOLT_HOST), None).await,
        marked_up(platform, 1_000)
    );

    // The owner fixes a price: never below its cost, never above the ceiling.
    let set = |fixed: Option<i64>, token: &str| {
        let token = token.to_owned();
        let app_channel = app.channel.clone();
        async move {
            TenantServiceClient::new(app_channel)
                .set_tenant_price(bearer(
                    pb::SetTenantPriceRequest {
                        name: "tenants/acme/services/whatsapp/prices/GB".into(),
                        fixed_price: fixed.map(usd),
                    },
                    &token,
                ))
                .await
        }
    };
    let below = set(Some(platform - 1), &acme_token).await.unwrap_err();
    assert_error(&below, Code::InvalidArgument, "PRICE_BELOW_COST");
    let above = set(Some(platform * 4 + 1), &acme_token).await.unwrap_err();
    assert_error(&above, Code::InvalidArgument, "PRICE_ABOVE_LIMIT");
    let fixed = set(Some(platform * 2), &acme_token)
        .await
        .expect("a fixed price")
        .into_inner()
        .price
        .unwrap();
    assert_eq!(fixed.source, pb::TenantPriceSource::Fixed as i32);
    assert_eq!(fixed.base_price.unwrap().minor_units, platform);
    assert_eq!(fixed.margin.unwrap().minor_units, platform);
    // Another tenant's owner cannot touch it (or even see that it exists).
    let foreign = set(Some(platform * 3), &bolt_token).await.unwrap_err();
    assert_error(&foreign, Code::NotFound, "TENANT_NOT_FOUND");
    assert_eq!(price_at(&app, Some(ACME_HOST), None).await, platform * 2);

    let listed = tenants(&app)
        .list_tenant_prices(bearer(
            pb::ListTenantPricesRequest {
                parent: "tenants/acme".into(),
                fixed_only: true,
                ..Default::default()
            },
            &acme_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.prices.len(), 1);
    assert_eq!(
        listed.prices[0].name,
        "tenants/acme/services/whatsapp/prices/GB"
    );
    let all = tenants(&app)
        .list_tenant_prices(bearer(
            pb::ListTenantPricesRequest {
                parent: "tenants/acme".into(),
                page_size: 5,
                ..Default::default()
            },
            &acme_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.prices.len(), 5);
    assert!(!all.next_page_token.is_empty());
    for p in &all.prices {
        assert_eq!(p.source, pb::TenantPriceSource::Markup as i32);
        let base = p.base_price.as_ref().unwrap().minor_units;
        assert_eq!(
            p.price.as_ref().unwrap().minor_units,
            marked_up(base, 5_000)
        );
    }

    // A customer signs up on acme's host: the mail is acme's, and so are the prices,
    // wherever it calls from.
    let (acme_email, acme_customer) = customer_at(&app, ACME_HOST, 10_000).await;
    let mail = app.nth_mail_to(&acme_email, 1).await;
    assert_eq!(mail["from_name"], "Acme SMS", "{mail}");
    let text = mail["text"].as_str().unwrap();
    assert!(text.starts_with("Welcome to Acme SMS."), "{text}");
    assert!(
        text.contains("https://www.acmesms.test/verify-email?token="),
        "{text}"
    );
    assert_eq!(
        price_at(&app, None, Some(&acme_customer)).await,
        platform * 2
    );
    assert_eq!(
        price_at(&app, Some(BOLT_HOST), Some(&acme_customer)).await,
        platform * 2
    );
    let (_, bolt_customer) = customer_at(&app, BOLT_HOST, 10_000).await;
    assert_eq!(
        price_at(&app, None, Some(&bolt_customer)).await,
        marked_up(platform, 1_000)
    );
    let (_, own_customer) = customer_at(&app, "localhost", 10_000).await;
    assert_eq!(
        price_at(&app, Some(ACME_HOST), Some(&own_customer)).await,
        platform
    );

    // Both tenants sell the same services; each customer's catalog is its own tenant's
    // price list, service by service, wherever the customer calls from.
    let acme_list = tenant_price_list(&app, &acme_token, "tenants/acme", "GB").await;
    let bolt_list = tenant_price_list(&app, &bolt_token, "tenants/bolt", "GB").await;
    assert!(acme_list.len() > 20, "{acme_list:?}");
    assert_eq!(
        acme_list.keys().collect::<Vec<_>>(),
        bolt_list.keys().collect::<Vec<_>>(),
        "overlapping service lists"
    );
    assert_eq!(acme_list["whatsapp"], platform * 2, "acme's fixed price");
    for (service, acme_price) in &acme_list {
        assert_ne!(acme_price, &bolt_list[service], "{service}");
    }
    assert_eq!(
        listed_prices(&app, None, Some(&acme_customer), "GB").await,
        acme_list
    );
    assert_eq!(
        listed_prices(&app, Some(BOLT_HOST), Some(&acme_customer), "GB").await,
        acme_list
    );
    assert_eq!(
        listed_prices(&app, None, Some(&bolt_customer), "GB").await,
        bolt_list
    );
    assert_eq!(
        listed_prices(&app, Some(ACME_HOST), Some(&bolt_customer), "GB").await,
        bolt_list
    );
    let platform_list = listed_prices(&app, None, Some(&own_customer), "GB").await;
    for (service, base) in &platform_list {
        let expected = if service == "whatsapp" {
            platform * 2
        } else {
            marked_up(*base, 5_000)
        };
        assert_eq!(acme_list[service], expected, "{service}");
        assert_eq!(bolt_list[service], marked_up(*base, 1_000), "{service}");
    }
    assert_eq!(
        platform_list.keys().collect::<Vec<_>>(),
        acme_list.keys().collect::<Vec<_>>()
    );

    // Buying holds the tenant's price; the code captures it: the platform's price to
    // revenue, the rest to acme's margin.
    let v = app
        .buy(&acme_customer, "whatsapp", "GB")
        .await
        .expect("buy");
    assert_eq!(v.price.as_ref().unwrap().minor_units, platform * 2);
    assert_eq!(app.held(&acme_customer).await, platform * 2);
    let done = app
        .inject(
            &acme_customer,
            &v.phone_number,
            "Your WhatsApp code 123456",
            None,
        )
        .await
        .unwrap()
        .verification
        .unwrap();
    assert_eq!(status_of(&done), pb::VerificationStatus::Completed);
    assert_eq!(app.balance(&acme_customer).await, 10_000 - platform * 2);
    assert_eq!(margin_lines(&app, "tenants/acme").await, platform);
    let revenue_line = scalar(
        &app.state.db,
        &format!(
            "SELECT CAST(SUM(l.amount) AS BIGINT) FROM journal_lines l \
             JOIN journal_entries e ON e.id = l.entry_id \
             JOIN ledger_accounts a ON a.id = l.account_id \
             WHERE e.business_key = 'settle:{}' AND a.code = 'platform:revenue:USD'",
            v.name.trim_start_matches("verifications/")
        ),
    )
    .await;
    assert_eq!(revenue_line, platform);
    // A bolt customer's sale at bolt's markup.
    let w = app
        .buy(&bolt_customer, "whatsapp", "GB")
        .await
        .expect("buy");
    app.inject(&bolt_customer, &w.phone_number, "code 654321", None)
        .await
        .unwrap();
    assert_eq!(
        margin_lines(&app, "tenants/bolt").await,
        marked_up(platform, 1_000) - platform
    );
    // The platform's own customer: no margin anywhere.
    let x = app.buy(&own_customer, "whatsapp", "GB").await.expect("buy");
    assert_eq!(x.price.as_ref().unwrap().minor_units, platform);
    app.inject(&own_customer, &x.phone_number, "code 777777", None)
        .await
        .unwrap();
    assert_eq!(margin_lines(&app, "tenants/acme").await, platform);
    assert_books_balance(&app.state.db).await;

    // The reports: the owner's cover its tenant's customers only; the platform's every
    // customer, with both tenants' margins.
    let revenue = |tenant: &str, token: &str| {
        let channel = app.channel.clone();
        let tenant = tenant.to_owned();
        let token = token.to_owned();
        async move {
            use chrono::Datelike;
            let today = chrono::Utc::now().date_naive();
            let date = Some(pb::Date {
                year: today.year(),
                month: today.month() as i32,
                day: today.day() as i32,
            });
            namaskah_proto::v1::analytics_service_client::AnalyticsServiceClient::new(channel)
                .get_revenue_analytics(bearer(
                    pb::GetRevenueAnalyticsRequest {
                        start_date: date,
                        end_date: date,
                        granularity: pb::TimeGranularity::Day as i32,
                        tenant,
                    },
                    &token,
                ))
                .await
                .map(|r| r.into_inner().total.unwrap())
        }
    };
    let units = |m: Option<pb::Money>| m.map_or(0, |m| m.minor_units);
    let acme_report = revenue("", &acme_token).await.expect("the owner's report");
    assert_eq!(units(acme_report.verification_revenue), platform * 2);
    assert_eq!(units(acme_report.reseller_margin), platform);
    assert_eq!(units(acme_report.top_ups), 10_000);
    assert_eq!(acme_report.completed_verifications, 1);
    let err = revenue("tenants/bolt", &acme_token).await.unwrap_err();
    assert_error(&err, Code::NotFound, "TENANT_NOT_FOUND");
    let bolt_margin = marked_up(platform, 1_000) - platform;
    let whole = revenue("", &admin.token)
        .await
        .expect("the platform's report");
    assert_eq!(units(whole.reseller_margin), platform + bolt_margin);
    assert_eq!(whole.completed_verifications, 3);
    assert_eq!(
        units(whole.verification_revenue),
        platform * 2 + marked_up(platform, 1_000) + platform
    );
    let own = revenue("tenants/default", &admin.token).await.unwrap();
    assert_eq!(units(own.verification_revenue), platform);
    assert_eq!(units(own.reseller_margin), 0);
    let as_admin = revenue("tenants/bolt", &admin.token).await.unwrap();
    assert_eq!(units(as_admin.reseller_margin), bolt_margin);

    // The owner sees its tenant with its margin and customers; not the other one.
    let mine = tenant_as(&app, "tenants/acme", &acme_token).await;
    assert_eq!(mine.margin_earned.unwrap().minor_units, platform);
    assert_eq!(mine.customer_count, 1);
    for (name, token) in [("tenants/bolt", &acme_token), ("tenants/acme", &bolt_token)] {
        let err = tenants(&app)
            .get_tenant(bearer(pb::GetTenantRequest { name: name.into() }, token))
            .await
            .unwrap_err();
        assert_error(&err, Code::NotFound, "TENANT_NOT_FOUND");
        let err = tenants(&app)
            .list_tenant_prices(bearer(
                pb::ListTenantPricesRequest {
                    parent: name.into(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_error(&err, Code::NotFound, "TENANT_NOT_FOUND");
    }
    let own_list = tenants(&app)
        .list_tenants(bearer(pb::ListTenantsRequest::default(), &bolt_token))
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(
        own_list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["tenants/bolt"]
    );
    // A customer's verification stays its own across tenants.
    let err = app
        .verifications()
        .get_verification(bearer(
            pb::GetVerificationRequest {
                name: v.name.clone(),
            },
            &bolt_customer,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Branding by host, any case and port; unknown hosts get the platform's.
    let get_branding = |host: &str| {
        let channel = app.channel.clone();
        let host = host.to_owned();
        async move {
            TenantServiceClient::new(channel)
                .get_branding(pb::GetBrandingRequest { host })
                .await
                .map(|r| r.into_inner())
        }
    };
    let b = get_branding("SMS.Acme.TEST:8443").await.unwrap();
    assert_eq!(b.tenant, "tenants/acme");
    assert_eq!(b.branding.unwrap().primary_color, "#112233");
    assert_eq!(
        get_branding("other.example.org").await.unwrap().tenant,
        "tenants/default"
    );
    let err = get_branding("not a host").await.unwrap_err();
    assert_invalid(&err, "host");
    let by_request_host = tenants(&app)
        .get_branding(at_host(pb::GetBrandingRequest::default(), BOLT_HOST, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_request_host.tenant, "tenants/bolt");
    // Signed in, without naming a host: the account's tenant, whatever host the request
    // came to.
    let platform_look = get_branding("other.example.org")
        .await
        .unwrap()
        .branding
        .unwrap();
    for (token, host, tenant, display_name) in [
        (&acme_customer, None, "tenants/acme", "Acme SMS"),
        (&acme_customer, Some(BOLT_HOST), "tenants/acme", "Acme SMS"),
        (&bolt_customer, None, "tenants/bolt", "bolt reseller"),
        (
            &bolt_customer,
            Some(ACME_HOST),
            "tenants/bolt",
            "bolt reseller",
        ),
        (
            &own_customer,
            Some(ACME_HOST),
            "tenants/default",
            platform_look.display_name.as_str(),
        ),
    ] {
        let found = tenants(&app)
            .get_branding(request_as(
                pb::GetBrandingRequest::default(),
                host,
                Some(token),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.tenant, tenant, "at {host:?}");
        assert_eq!(found.branding.unwrap().display_name, display_name);
    }
    // A host named in the request is looked up as such, signed in or not.
    let named = tenants(&app)
        .get_branding(bearer(
            pb::GetBrandingRequest {
                host: BOLT_HOST.into(),
            },
            &acme_customer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(named.tenant, "tenants/bolt");

    // The owner edits its branding: refreshed at once; but hosts are the administrators'.
    let updated = tenants(&app)
        .update_tenant(bearer(
            pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "tenants/acme".into(),
                    branding: Some(pb::Branding {
                        logo_uri: "https://cdn.acme.test/new.png".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["branding.logoUri".into()],
                }),
            },
            &acme_token,
        ))
        .await
        .expect("owner updates the logo")
        .into_inner()
        .tenant
        .unwrap();
    let brand = updated.branding.unwrap();
    assert_eq!(brand.logo_uri, "https://cdn.acme.test/new.png");
    assert_eq!(brand.display_name, "Acme SMS", "other fields kept");
    assert_eq!(
        get_branding(ACME_HOST)
            .await
            .unwrap()
            .branding
            .unwrap()
            .logo_uri,
        "https://cdn.acme.test/new.png"
    );
    let err = tenants(&app)
        .update_tenant(bearer(
            pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "tenants/acme".into(),
                    hosts: vec!["steal.example.com".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["hosts".into()],
                }),
            },
            &acme_token,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "FIELD_NOT_EDITABLE");
}

#[tokio::test]
async fn billing_mails_to_a_tenants_customer_carry_the_tenants_brand() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let (owner, _) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &owner,
        &[ACME_HOST],
        0,
        Some(branding("Acme SMS", "#112233")),
    )
    .await
    .expect("create acme");
    let (email, token) = customer_at(&app, ACME_HOST, 2_900).await;
    let platform_token = app.funded(2_900).await;
    let platform_email = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &platform_token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .email;
    let subscriptions =
        namaskah_proto::v1::subscription_service_client::SubscriptionServiceClient::new(
            app.channel.clone(),
        );
    // Both take Pro with every cent they have: the renewal cannot be paid.
    for who in [&token, &platform_token] {
        subscriptions
            .clone()
            .change_plan(bearer(
                pb::ChangePlanRequest {
                    plan: pb::PlanTier::Pro as i32,
                    request_id: uuid::Uuid::new_v4().to_string(),
                },
                who,
            ))
            .await
            .expect("upgrade to pro");
    }
    let end = subscriptions
        .clone()
        .get_subscription(bearer(pb::GetSubscriptionRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .and_then(|s| s.current_period_end_time)
        .expect("a period end");
    let end = chrono::DateTime::from_timestamp(end.seconds, 0).unwrap();
    let after_end = end + chrono::Duration::seconds(1);
    app.state.clock.set(after_end);
    for _ in 0..100 {
        if app.state.clock.now() >= after_end {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(app.state.clock.now() >= after_end, "the clock moved on");
    // The server's own renewal job may have leased a renewal first; either way the mail
    // comes, from whichever instance of the job did the renewal.
    app.state.billing.renew_due().await.unwrap();
    app.state.outbox.drain().await;

    let about = |to: &str| -> Vec<serde_json::Value> {
        app.mails()
            .into_iter()
            .filter(|m| m["to"] == to && m["subject"].as_str().unwrap().contains("Starter"))
            .collect()
    };
    for _ in 0..200 {
        if !about(&email).is_empty() && !about(&platform_email).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let tenant_mails = about(&email);
    assert_eq!(tenant_mails.len(), 1, "{tenant_mails:?}");
    assert_eq!(
        tenant_mails[0]["subject"],
        "Your Acme SMS plan is now Starter"
    );
    assert_eq!(tenant_mails[0]["from_name"], "Acme SMS");
    let platform_mails = about(&platform_email);
    assert_eq!(platform_mails.len(), 1, "{platform_mails:?}");
    assert_eq!(
        platform_mails[0]["subject"],
        "Your Namaskah plan is now Starter"
    );
    assert!(
        platform_mails[0]["from_name"].is_null(),
        "{}",
        platform_mails[0]
    );
}

#[tokio::test]
async fn administrators_manage_tenants_and_bad_input_is_refused() {
    let app = spawn_app_with(&[("NAMASKAH_PLATFORM_HOSTS", "namaskah.test")]).await;
    let admin = admin_session(&app).await;
    let (owner, owner_token) = enterprise_owner(&app).await;
    let (_, customer) = app.signed_in().await;

    // Customers and administrators without a TOTP session are refused, and audited.
    let err = create(&app, &customer, "acme", &owner, &[], 0, None)
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "ADMIN_REQUIRED");
    let err = create(&app, &admin.password_only, "acme", &owner, &[], 0, None)
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TOTP_REQUIRED");
    let denied = scalar(
        &app.state.db,
        "SELECT COUNT(*) FROM audit_log_entries WHERE method = 'namaskah.v1.TenantService/CreateTenant' AND outcome = 'denied'",
    )
    .await;
    assert_eq!(denied, 2);

    // Bad owners, ids, hosts, branding and markups.
    let (starter, _) = app.signed_in().await;
    let starter_name = {
        let id = scalar(
            &app.state.db,
            &format!("SELECT COUNT(*) FROM users WHERE email = '{starter}'"),
        )
        .await;
        assert_eq!(id, 1);
        let tokens = app.login(&starter).await;
        app.auth()
            .get_me(bearer(pb::GetMeRequest {}, &tokens.access_token))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
            .name
    };
    let err = create(&app, &admin.token, "acme", &starter_name, &[], 0, None)
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "ENTERPRISE_PLAN_REQUIRED");
    let nobody = format!("users/{}", uuid::Uuid::now_v7());
    let err = create(&app, &admin.token, "acme", &nobody, &[], 0, None)
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "USER_NOT_FOUND");
    for bad_id in ["a", "Acme", "default", "-acme", "acme_sms"] {
        let err = create(&app, &admin.token, bad_id, &owner, &[], 0, None)
            .await
            .unwrap_err();
        assert_invalid(&err, "tenant_id");
    }
    let err = create(&app, &admin.token, "acme", &owner, &["not a host"], 0, None)
        .await
        .unwrap_err();
    assert_invalid(&err, "tenant.hosts[0]");
    let err = create(
        &app,
        &admin.token,
        "acme",
        &owner,
        &["namaskah.test"],
        0,
        None,
    )
    .await
    .unwrap_err();
    assert_error(&err, Code::AlreadyExists, "HOST_TAKEN");
    let err = create(&app, &admin.token, "acme", &owner, &[], 30_001, None)
        .await
        .unwrap_err();
    assert_error(&err, Code::InvalidArgument, "MARKUP_OUT_OF_RANGE");
    let mut evil = branding("Acme", "#112233");
    evil.display_name = "<script>alert(1)</script>".into();
    evil.logo_uri = format!("https://cdn.acme.test/{}", "x".repeat(2_100));
    evil.primary_color = "red".into();
    let err = create(&app, &admin.token, "acme", &owner, &[], 0, Some(evil))
        .await
        .unwrap_err();
    assert_invalid_fields(
        &err,
        &[
            "tenant.branding.display_name",
            "tenant.branding.logo_uri",
            "tenant.branding.primary_color",
        ],
    );
    assert_eq!(count_rows(&app, "tenants").await, 0, "nothing half-written");

    // Created once per request_id; the id and hosts are unique.
    let request = pb::CreateTenantRequest {
        tenant_id: "acme".into(),
        tenant: Some(pb::Tenant {
            display_name: "Acme".into(),
            owner: owner.clone(),
            hosts: vec![ACME_HOST.into()],
            ..Default::default()
        }),
        request_id: "create-acme-1".into(),
    };
    let first = tenants(&app)
        .create_tenant(bearer(request.clone(), &admin.token))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    let again = tenants(&app)
        .create_tenant(bearer(request.clone(), &admin.token))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(first.create_time, again.create_time);
    let mut changed = request.clone();
    changed.tenant.as_mut().unwrap().display_name = "Other".into();
    let err = tenants(&app)
        .create_tenant(bearer(changed, &admin.token))
        .await
        .unwrap_err();
    assert_error(&err, Code::AlreadyExists, "IDEMPOTENCY_CONFLICT");
    let err = create(&app, &admin.token, "acme", &owner, &[], 0, None)
        .await
        .unwrap_err();
    assert_error(&err, Code::AlreadyExists, "TENANT_ID_TAKEN");
    let err = create(
        &app,
        &admin.token,
        "acme-two",
        &owner,
        &[ACME_HOST],
        0,
        None,
    )
    .await
    .unwrap_err();
    assert_error(&err, Code::AlreadyExists, "HOST_TAKEN");
    assert_eq!(count_rows(&app, "tenants").await, 1);

    // Update masks: unknown and output-only fields are refused.
    for path in ["state", "margin_earned", "nonsense"] {
        let err = tenants(&app)
            .update_tenant(bearer(
                pb::UpdateTenantRequest {
                    tenant: Some(pb::Tenant {
                        name: "tenants/acme".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![path.into()],
                    }),
                },
                &admin.token,
            ))
            .await
            .unwrap_err();
        assert_error(&err, Code::InvalidArgument, "INVALID_UPDATE_MASK");
    }

    // A suspension stops the tenant's customers at once; their money is kept.
    let (_, acme_customer) = customer_at(&app, ACME_HOST, 5_000).await;
    let err = tenants(&app)
        .suspend_tenant(bearer(
            pb::SuspendTenantRequest {
                name: "tenants/acme".into(),
                reason: "x".into(),
            },
            &admin.token,
        ))
        .await
        .unwrap_err();
    assert_invalid(&err, "reason");
    let suspended = tenants(&app)
        .suspend_tenant(bearer(
            pb::SuspendTenantRequest {
                name: "tenants/acme".into(),
                reason: "unpaid invoices".into(),
            },
            &admin.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(suspended.state, pb::TenantState::Suspended as i32);
    assert_eq!(suspended.suspend_reason, "unpaid invoices");
    let err = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &acme_customer))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TENANT_SUSPENDED");
    let err = app
        .wallet()
        .get_balance(bearer(pb::GetBalanceRequest {}, &acme_customer))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TENANT_SUSPENDED");
    let kept = scalar(
        &app.state.db,
        "SELECT CAST(SUM(balance) AS BIGINT) FROM ledger_accounts a JOIN users u ON u.id = a.owner_id WHERE a.kind = 'wallet' AND u.tenant_id IS NOT NULL",
    )
    .await;
    assert_eq!(kept, 5_000);
    let branding = tenants(&app)
        .get_branding(pb::GetBrandingRequest {
            host: ACME_HOST.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        branding.tenant, "tenants/default",
        "a suspended tenant shows the platform"
    );
    // The owner (a platform customer) still works; the platform's tenant cannot be
    // suspended.
    assert!(
        app.auth()
            .get_me(bearer(pb::GetMeRequest {}, &owner_token))
            .await
            .is_ok()
    );
    let err = tenants(&app)
        .suspend_tenant(bearer(
            pb::SuspendTenantRequest {
                name: "tenants/default".into(),
                reason: "testing".into(),
            },
            &admin.token,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "DEFAULT_TENANT");
    tenants(&app)
        .reactivate_tenant(bearer(
            pb::ReactivateTenantRequest {
                name: "tenants/acme".into(),
                reason: String::new(),
            },
            &admin.token,
        ))
        .await
        .unwrap();
    assert_eq!(app.balance(&acme_customer).await, 5_000);

    // Every change is in the audit log, with its before and after.
    let changes = scalar(
        &app.state.db,
        "SELECT COUNT(*) FROM audit_log_entries WHERE method IN ('namaskah.v1.TenantService/CreateTenant', 'namaskah.v1.TenantService/SuspendTenant', 'namaskah.v1.TenantService/ReactivateTenant') AND outcome = 'succeeded' AND after IS NOT NULL",
    )
    .await;
    assert_eq!(changes, 3);
}

/// Today (UTC) as the reports take it.
fn today() -> Option<pb::Date> {
    use chrono::Datelike;
    let day = chrono::Utc::now().date_naive();
    Some(pb::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    })
}

fn analytics(app: &TestApp) -> AnalyticsServiceClient<Channel> {
    AnalyticsServiceClient::new(app.channel.clone())
}

fn admin_client(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(app.channel.clone())
}

/// Today's revenue figures as `token` gets them (its own tenant for an owner).
async fn revenue_today(app: &TestApp, tenant: &str, token: &str) -> pb::RevenueFigures {
    analytics(app)
        .get_revenue_analytics(bearer(
            pb::GetRevenueAnalyticsRequest {
                start_date: today(),
                end_date: today(),
                granularity: pb::TimeGranularity::Day as i32,
                tenant: tenant.into(),
            },
            token,
        ))
        .await
        .expect("a revenue report")
        .into_inner()
        .total
        .unwrap()
}

fn cents(m: &Option<pb::Money>) -> i64 {
    m.as_ref().map_or(0, |m| m.minor_units)
}

/// Registers at `host` without verifying the email; returns the email.
async fn registered_at(app: &TestApp, host: &str) -> String {
    let email = unique_email();
    app.auth()
        .register(at_host(
            pb::RegisterRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                referral_code: String::new(),
            },
            host,
            None,
        ))
        .await
        .expect("register");
    email
}

/// Buys whatsapp/GB and has its code arrive; returns the verification, completed.
async fn bought_code(app: &TestApp, token: &str) -> pb::Verification {
    let v = app.buy(token, "whatsapp", "GB").await.expect("buy");
    let done = app
        .inject(token, &v.phone_number, "Your WhatsApp code 246810", None)
        .await
        .expect("inject")
        .verification
        .unwrap();
    assert_eq!(status_of(&done), pb::VerificationStatus::Completed);
    done
}

/// The sum of the lines of the entry `business_key` on accounts of `kind`.
async fn entry_lines(app: &TestApp, business_key: &str, kind: &str) -> i64 {
    scalar(
        &app.state.db,
        &format!(
            "SELECT COALESCE(CAST(SUM(l.amount) AS BIGINT), 0) FROM journal_lines l \
             JOIN journal_entries e ON e.id = l.entry_id \
             JOIN ledger_accounts a ON a.id = l.account_id \
             WHERE e.business_key = '{business_key}' AND a.kind = '{kind}'"
        ),
    )
    .await
}

async fn entries_with_key(app: &TestApp, business_key: &str) -> i64 {
    scalar(
        &app.state.db,
        &format!("SELECT COUNT(*) FROM journal_entries WHERE business_key = '{business_key}'"),
    )
    .await
}

fn id_of(name: &str) -> &str {
    name.trim_start_matches("verifications/")
}

#[tokio::test]
async fn a_manual_refund_of_a_tenant_sale_reverses_the_margin_and_the_platform_revenue() {
    let app = spawn_app_with(&[("NAMASKAH_SANDBOX_SMS_DELAY", "off")]).await;
    let admin = admin_session(&app).await;
    let (owner, owner_token) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &owner,
        &[ACME_HOST],
        5_000,
        None,
    )
    .await
    .expect("create acme");
    let platform = price_at(&app, None, None).await;
    let price = marked_up(platform, 5_000);
    let margin = price - platform;
    assert!(margin > 0);
    let (_, customer) = customer_at(&app, ACME_HOST, 10_000).await;
    // Two sales: the second is refunded, the first stays.
    let kept = bought_code(&app, &customer).await;
    let sold = bought_code(&app, &customer).await;
    assert_eq!(margin_lines(&app, "tenants/acme").await, 2 * margin);
    assert_eq!(app.balance(&customer).await, 10_000 - 2 * price);
    let settle = format!("settle:{}", id_of(&sold.name));
    assert_eq!(entry_lines(&app, &settle, "revenue").await, platform);
    assert_eq!(entry_lines(&app, &settle, "tenant_margin").await, margin);

    let refund = |request_id: &str| {
        let request = pb::RefundVerificationRequest {
            name: sold.name.clone(),
            reason: "the code never worked".into(),
            request_id: request_id.into(),
        };
        let mut client = admin_client(&app);
        let token = admin.token.clone();
        async move {
            client
                .refund_verification(bearer(request, &token))
                .await
                .map(|r| r.into_inner().verification.unwrap())
        }
    };
    let refunded = refund("refund-1").await.expect("a manual refund");
    assert_eq!(status_of(&refunded), pb::VerificationStatus::Completed);
    assert_eq!(refunded.charge_state, pb::ChargeState::Refunded as i32);
    let note = refunded.refund.clone().unwrap();
    assert_eq!(cents(&note.amount), price, "the whole tenant price");
    assert_eq!(note.reason, pb::RefundReason::Manual as i32);
    assert_eq!(app.balance(&customer).await, 10_000 - price);

    // One entry takes back both of the capture's lines: the platform's price from its
    // revenue and the margin from the tenant's account.
    let key = format!("refund:{}", id_of(&sold.name));
    assert_eq!(entries_with_key(&app, &key).await, 1);
    assert_eq!(entry_lines(&app, &key, "wallet").await, price);
    assert_eq!(entry_lines(&app, &key, "revenue").await, -platform);
    assert_eq!(entry_lines(&app, &key, "tenant_margin").await, -margin);
    let lines = scalar(
        &app.state.db,
        &format!(
            "SELECT COUNT(*) FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
             WHERE e.business_key = '{key}'"
        ),
    )
    .await;
    assert_eq!(lines, 3, "the wallet, revenue and the tenant's margin");
    assert_eq!(
        margin_lines(&app, "tenants/acme").await,
        margin,
        "only the kept sale's margin is left"
    );
    let kept_settle = format!("settle:{}", id_of(&kept.name));
    assert_eq!(
        entry_lines(&app, &kept_settle, "tenant_margin").await,
        margin
    );
    assert_books_balance(&app.state.db).await;

    // Retried: the first answer, nothing moves twice; another refund is refused.
    let again = refund("refund-1").await.expect("the same answer");
    assert_eq!(again.refund, refunded.refund);
    let err = refund("refund-2").await.unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "ALREADY_REFUNDED");
    assert_eq!(entries_with_key(&app, &key).await, 1);
    assert_eq!(app.balance(&customer).await, 10_000 - price);
    assert_eq!(margin_lines(&app, "tenants/acme").await, margin);

    // The owner sees its margin and revenue net of the refund.
    let tenant = tenant_as(&app, "tenants/acme", &owner_token).await;
    assert_eq!(cents(&tenant.margin_earned), margin);
    let report = revenue_today(&app, "", &owner_token).await;
    assert_eq!(cents(&report.verification_revenue), price);
    assert_eq!(cents(&report.reseller_margin), margin);
    assert_eq!(cents(&report.refunds), price);
    assert_eq!(report.completed_verifications, 2);
    let whole = revenue_today(&app, "", &admin.token).await;
    assert_eq!(cents(&whole.reseller_margin), margin);
    assert_eq!(cents(&whole.verification_revenue), price);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn owners_get_their_own_tenants_customer_metrics_and_funnel() {
    let app = spawn_app_with(&[("NAMASKAH_SANDBOX_SMS_DELAY", "off")]).await;
    let admin = admin_session(&app).await;
    let (acme_owner, acme_token) = enterprise_owner(&app).await;
    let (bolt_owner, bolt_token) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &acme_owner,
        &[ACME_HOST],
        5_000,
        None,
    )
    .await
    .unwrap();
    create(
        &app,
        &admin.token,
        "bolt",
        &bolt_owner,
        &[BOLT_HOST],
        1_000,
        None,
    )
    .await
    .unwrap();
    let platform = price_at(&app, None, None).await;
    let acme_price = marked_up(platform, 5_000);
    let bolt_price = marked_up(platform, 1_000);

    // Acme: a customer who buys a code, one who buys and cancels, one who never verifies
    // its email.
    let (_, buyer) = customer_at(&app, ACME_HOST, 5_000).await;
    bought_code(&app, &buyer).await;
    let (_, canceller) = customer_at(&app, ACME_HOST, 3_000).await;
    let v = app.buy(&canceller, "whatsapp", "GB").await.unwrap();
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest { name: v.name },
            &canceller,
        ))
        .await
        .expect("cancel");
    registered_at(&app, ACME_HOST).await;
    // Bolt: a customer who buys a code. The platform: one of its own.
    let (_, bolt_buyer) = customer_at(&app, BOLT_HOST, 4_000).await;
    bought_code(&app, &bolt_buyer).await;
    let platform_buyer = app.funded(2_000).await;
    bought_code(&app, &platform_buyer).await;
    app.state.analytics.tracker().flush().await;

    let metrics = |tenant: &str, token: &str| {
        let request = bearer(
            pb::GetCustomerMetricsRequest {
                start_date: today(),
                end_date: today(),
                tenant: tenant.into(),
            },
            token,
        );
        let mut client = analytics(&app);
        async move {
            client
                .get_customer_metrics(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let acme = metrics("", &acme_token).await.expect("the owner's metrics");
    assert_eq!(acme.total_customers, 3, "acme's customers, not its owner");
    assert_eq!(acme.new_customers, 3);
    assert_eq!(acme.new_customer_growth, None, "none the period before");
    assert_eq!(acme.active_customers, 2, "the buyer and the canceller");
    assert_eq!(acme.active_customer_growth, None);
    assert_eq!(acme.daily_active_customers, 2);
    assert_eq!(acme.weekly_active_customers, 2);
    assert_eq!(acme.monthly_active_customers, 2);
    assert_eq!(acme.paying_customers, 1);
    assert_eq!(
        cents(&acme.average_revenue_per_user),
        (acme_price as f64 / 2.0).round() as i64,
        "acme's net revenue over its two active customers"
    );
    assert_eq!(acme.churn_rate, None);
    assert_eq!(acme.customer_lifetime_value, None);
    let rates: Vec<_> = acme
        .success_rates
        .iter()
        .map(|r| {
            (
                r.service.as_str(),
                r.country.as_str(),
                r.completed,
                r.expired,
                r.failed,
                r.cancelled,
                r.success_rate,
            )
        })
        .collect();
    assert_eq!(
        rates,
        vec![("services/whatsapp", "countries/GB", 1, 0, 0, 1, Some(1.0))]
    );
    // Naming its own tenant changes nothing; an administrator asking for acme gets the same.
    assert_eq!(metrics("tenants/acme", &acme_token).await.unwrap(), acme);
    assert_eq!(metrics("tenants/acme", &admin.token).await.unwrap(), acme);
    let bolt = metrics("", &bolt_token).await.expect("bolt's metrics");
    assert_eq!(bolt.total_customers, 1);
    assert_eq!(bolt.active_customers, 1);
    assert_eq!(bolt.paying_customers, 1);
    assert_eq!(cents(&bolt.average_revenue_per_user), bolt_price);
    assert_eq!(bolt.success_rates.len(), 1);
    assert_eq!(bolt.success_rates[0].completed, 1);
    assert_eq!(bolt.success_rates[0].cancelled, 0);
    // The platform as a whole: every customer (the two owners are the platform's own).
    let whole = metrics("", &admin.token).await.unwrap();
    assert_eq!(whole.total_customers, 3 + 1 + 1 + 2);
    assert_eq!(whole.active_customers, 4);
    assert_eq!(whole.paying_customers, 3);
    let err = metrics("tenants/bolt", &acme_token).await.unwrap_err();
    assert_error(&err, Code::NotFound, "TENANT_NOT_FOUND");

    let funnel = |tenant: &str, token: &str| {
        let request = bearer(
            pb::GetConversionFunnelRequest {
                start_date: today(),
                end_date: today(),
                tenant: tenant.into(),
            },
            token,
        );
        let mut client = analytics(&app);
        async move {
            client
                .get_conversion_funnel(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let counts = |f: &pb::GetConversionFunnelResponse| -> Vec<i64> {
        f.stages.iter().map(|s| s.customers).collect()
    };
    let acme_funnel = funnel("", &acme_token).await.expect("the owner's funnel");
    assert_eq!(acme_funnel.cohort_size, 3);
    assert_eq!(counts(&acme_funnel), vec![3, 2, 2, 2, 1, 0]);
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
    assert!(close(
        acme_funnel.stages[1].conversion_from_previous,
        2.0 / 3.0
    ));
    assert!(close(acme_funnel.stages[4].conversion_from_previous, 0.5));
    assert!(close(
        acme_funnel.stages[4].conversion_from_start,
        1.0 / 3.0
    ));
    assert_eq!(
        funnel("tenants/acme", &admin.token).await.unwrap(),
        acme_funnel
    );
    let bolt_funnel = funnel("", &bolt_token).await.expect("bolt's funnel");
    assert_eq!(bolt_funnel.cohort_size, 1);
    assert_eq!(counts(&bolt_funnel), vec![1, 1, 1, 1, 1, 0]);
    let whole_funnel = funnel("", &admin.token).await.unwrap();
    assert_eq!(whole_funnel.cohort_size, 7);
    let err = funnel("tenants/acme", &bolt_token).await.unwrap_err();
    assert_error(&err, Code::NotFound, "TENANT_NOT_FOUND");
}

/// Reads a watch stream to its end (bounded), returning every event.
async fn events_to_the_end(
    stream: &mut tonic::Streaming<pb::WatchVerificationResponse>,
) -> Vec<pb::VerificationEvent> {
    let mut events = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), stream.message())
            .await
            .unwrap_or_else(|_| panic!("the stream neither sent nor ended; had {events:?}"))
            .expect("the stream carries on");
        match next {
            Some(message) => events.push(message.event.unwrap()),
            None => return events,
        }
    }
}

fn event_types(events: &[pb::VerificationEvent]) -> Vec<pb::VerificationEventType> {
    events
        .iter()
        .map(|e| pb::VerificationEventType::try_from(e.r#type).unwrap())
        .collect()
}

#[tokio::test]
async fn a_tenant_suspended_mid_verification_refuses_its_customer_and_settles_the_hold_once() {
    use pb::VerificationEventType as Event;
    // The sandbox sends a number's code 4 s after assigning it: after the suspension below.
    let app = spawn_app_with(&[("NAMASKAH_SANDBOX_SMS_DELAY", "4s")]).await;
    let admin = admin_session(&app).await;
    let (owner, _) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &owner,
        &[ACME_HOST],
        5_000,
        None,
    )
    .await
    .unwrap();
    let platform = price_at(&app, None, None).await;
    let price = marked_up(platform, 5_000);
    let margin = price - platform;
    let (customer_email, customer) = customer_at(&app, ACME_HOST, 10_000).await;
    let key = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "shop".into(),
            },
            &customer,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    // One number will get its code; the other runs out first.
    let coded = app.buy(&customer, "whatsapp", "GB").await.unwrap();
    let expiring = app.buy(&customer, "whatsapp", "GB").await.unwrap();
    assert_eq!(app.held(&customer).await, 2 * price);
    let mut coded_stream = app.watch(&customer, &coded.name, 0).await.unwrap();
    let mut expiring_stream = app.watch(&customer, &expiring.name, 0).await.unwrap();
    let session = app.login(&customer_email).await;

    tenants(&app)
        .suspend_tenant(bearer(
            pb::SuspendTenantRequest {
                name: "tenants/acme".into(),
                reason: "unpaid invoices".into(),
            },
            &admin.token,
        ))
        .await
        .expect("suspend");

    // Every new call is refused, with a token or a key: none of them can move the money
    // (no cancel, no new purchase, no injected code).
    let suspended = |result: Result<(), tonic::Status>, what: &str| {
        let status = result.expect_err(what);
        assert_error(&status, Code::PermissionDenied, "TENANT_SUSPENDED");
    };
    suspended(
        app.wallet()
            .get_balance(bearer(pb::GetBalanceRequest {}, &customer))
            .await
            .map(drop),
        "balance by token",
    );
    suspended(
        app.wallet()
            .get_balance(with_key(pb::GetBalanceRequest {}, &key))
            .await
            .map(drop),
        "balance by key",
    );
    suspended(
        app.verifications()
            .get_verification(bearer(
                pb::GetVerificationRequest {
                    name: coded.name.clone(),
                },
                &customer,
            ))
            .await
            .map(drop),
        "get",
    );
    suspended(
        app.verifications()
            .cancel_verification(bearer(
                pb::CancelVerificationRequest {
                    name: expiring.name.clone(),
                },
                &customer,
            ))
            .await
            .map(drop),
        "cancel",
    );
    suspended(app.buy(&customer, "whatsapp", "GB").await.map(drop), "buy");
    suspended(
        app.verifications()
            .create_verification(with_key(
                pb::CreateVerificationRequest {
                    service: "telegram".into(),
                    country: "GB".into(),
                    max_price: None,
                    request_id: "by-key".into(),
                },
                &key,
            ))
            .await
            .map(drop),
        "buy by key",
    );
    suspended(
        app.inject(&customer, &coded.phone_number, "code 135791", None)
            .await
            .map(drop),
        "inject",
    );
    suspended(
        app.watch(&customer, &coded.name, 0).await.map(drop),
        "a new watch",
    );
    // Signing in again is refused the same way, and so is refreshing the session.
    suspended(
        app.auth()
            .login(pb::LoginRequest {
                email: customer_email.clone(),
                password: PASSWORD.into(),
                totp_code: String::new(),
            })
            .await
            .map(drop),
        "login",
    );
    // Only the right password learns of the suspension.
    let err = app
        .auth()
        .login(pb::LoginRequest {
            email: customer_email.clone(),
            password: "not the password 1".into(),
            totp_code: String::new(),
        })
        .await
        .unwrap_err();
    assert_error(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
    suspended(
        app.auth()
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: session.refresh_token.clone(),
            })
            .await
            .map(drop),
        "refresh",
    );

    // The provider's hold on `expiring` runs out (as its TTL would): the expiry job gives
    // its price back.
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.state.db,
        &format!(
            "UPDATE verifications SET expires_at = created_at WHERE request_id = '{}'",
            expiring.request_id
        ),
    )
    .await
    .unwrap();
    namaskah_server::verification::jobs::expire(&app.state.verifications)
        .await
        .unwrap();

    // The streams opened before the suspension keep the customer informed until their
    // verification ends, then close as usual: the suspension is checked when a call
    // starts, not while a stream runs, and these carry only the customer's own
    // verification.
    let events = events_to_the_end(&mut expiring_stream).await;
    let types = event_types(&events);
    assert_eq!(types.first(), Some(&Event::Snapshot), "{types:?}");
    assert_eq!(types.last(), Some(&Event::Expired), "{types:?}");
    let last = events.last().unwrap().verification.as_ref().unwrap();
    assert_eq!(last.charge_state, pb::ChargeState::Refunded as i32);
    let events = events_to_the_end(&mut coded_stream).await;
    let types = event_types(&events);
    assert_eq!(types.first(), Some(&Event::Snapshot), "{types:?}");
    assert!(types.contains(&Event::SmsReceived), "{types:?}");
    assert_eq!(types.last(), Some(&Event::Completed), "{types:?}");
    let last = events.last().unwrap().verification.as_ref().unwrap();
    assert_eq!(last.charge_state, pb::ChargeState::Captured as i32);
    assert_eq!(last.code.len(), 6);

    // Each hold was settled exactly once: the code's price captured (the platform's price
    // to revenue, the margin to the suspended tenant's account, which it is owed for a
    // sale made before the suspension), the other released to the wallet.
    let settled = |v: &pb::Verification| format!("settle:{}", id_of(&v.name));
    assert_eq!(entries_with_key(&app, &settled(&coded)).await, 1);
    assert_eq!(
        entry_lines(&app, &settled(&coded), "revenue").await,
        platform
    );
    assert_eq!(
        entry_lines(&app, &settled(&coded), "tenant_margin").await,
        margin
    );
    assert_eq!(entries_with_key(&app, &settled(&expiring)).await, 1);
    assert_eq!(
        entry_lines(&app, &settled(&expiring), "wallet").await,
        price
    );
    assert_eq!(entry_lines(&app, &settled(&expiring), "revenue").await, 0);
    // Running the jobs again moves nothing more (the expiring number's own code, due
    // after its end, costs nothing either).
    let entries = count_rows(&app, "journal_entries").await;
    namaskah_server::verification::jobs::expire(&app.state.verifications)
        .await
        .unwrap();
    assert_eq!(count_rows(&app, "journal_entries").await, entries);
    assert_eq!(margin_lines(&app, "tenants/acme").await, margin);
    assert_books_balance(&app.state.db).await;

    // Reactivated, the customer finds everything where the books say.
    tenants(&app)
        .reactivate_tenant(bearer(
            pb::ReactivateTenantRequest {
                name: "tenants/acme".into(),
                reason: String::new(),
            },
            &admin.token,
        ))
        .await
        .unwrap();
    assert_eq!(app.balance(&customer).await, 10_000 - price);
    assert_eq!(app.held(&customer).await, 0);
    let coded = app.get_verification(&customer, &coded.name).await;
    assert_eq!(status_of(&coded), pb::VerificationStatus::Completed);
    let expiring = app.get_verification(&customer, &expiring.name).await;
    assert_eq!(status_of(&expiring), pb::VerificationStatus::Expired);
    assert_eq!(cents(&expiring.refund.unwrap().amount), price);
}

#[tokio::test]
async fn updates_refuse_hosts_held_elsewhere_and_check_only_the_fields_they_write() {
    let app = spawn_app_with(&[("NAMASKAH_PLATFORM_HOSTS", "namaskah.test")]).await;
    let admin = admin_session(&app).await;
    let (acme_owner, _) = enterprise_owner(&app).await;
    let (bolt_owner, bolt_owner_token) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &acme_owner,
        &[ACME_HOST],
        0,
        None,
    )
    .await
    .unwrap();
    create(
        &app,
        &admin.token,
        "bolt",
        &bolt_owner,
        &[BOLT_HOST],
        0,
        None,
    )
    .await
    .unwrap();
    let set_hosts = |tenant: &str, hosts: &[&str]| {
        let request = bearer(
            pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: tenant.into(),
                    hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["hosts".into()],
                }),
            },
            &admin.token,
        );
        let mut client = tenants(&app);
        async move {
            client
                .update_tenant(request)
                .await
                .map(|r| r.into_inner().tenant.unwrap())
        }
    };
    let holder = |host: &str| {
        let mut client = tenants(&app);
        let host = host.to_owned();
        async move {
            client
                .get_branding(pb::GetBrandingRequest { host })
                .await
                .unwrap()
                .into_inner()
                .tenant
        }
    };

    for hosts in [
        vec![BOLT_HOST, ACME_HOST],
        vec!["SMS.ACME.TEST"],
        vec![BOLT_HOST, "namaskah.test"],
    ] {
        let err = set_hosts("tenants/bolt", &hosts).await.unwrap_err();
        assert_error(&err, Code::AlreadyExists, "HOST_TAKEN");
    }
    // Nothing moved.
    let bolt = tenant_as(&app, "tenants/bolt", &admin.token).await;
    assert_eq!(bolt.hosts, vec![BOLT_HOST]);
    assert_eq!(holder(ACME_HOST).await, "tenants/acme");
    assert_eq!(holder(BOLT_HOST).await, "tenants/bolt");
    let failed = scalar(
        &app.state.db,
        "SELECT COUNT(*) FROM audit_log_entries WHERE method = 'namaskah.v1.TenantService/UpdateTenant' AND outcome = 'failed'",
    )
    .await;
    assert_eq!(failed, 3, "each refusal is audited");

    // A tenant created without branding has the platform's look, whose links follow the
    // server's public URL (http:// here): updates check only the fields they write.
    let bolt_owner_token = bolt_owner_token.as_str();
    let owner_update = |paths: &[&str], tenant: pb::Tenant| {
        let request = bearer(
            pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "tenants/bolt".into(),
                    ..tenant
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                }),
            },
            bolt_owner_token,
        );
        let mut client = tenants(&app);
        async move {
            client
                .update_tenant(request)
                .await
                .map(|r| r.into_inner().tenant.unwrap())
        }
    };
    let renamed = owner_update(
        &["display_name", "branding.primary_color"],
        pb::Tenant {
            display_name: "Bolt Texts".into(),
            branding: Some(pb::Branding {
                primary_color: "#00AA55".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .expect("the owner renames its tenant and sets a colour");
    assert_eq!(renamed.display_name, "Bolt Texts");
    assert_eq!(renamed.branding.unwrap().primary_color, "#00AA55");
    let err = owner_update(
        &["branding.logo_uri"],
        pb::Tenant {
            branding: Some(pb::Branding {
                logo_uri: "http://cdn.bolt.test/logo.png".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_invalid_fields(&err, &["tenant.branding.logo_uri"]);
    let whole = owner_update(
        &["branding"],
        pb::Tenant {
            branding: Some(branding("Bolt", "#00AA55")),
            ..Default::default()
        },
    )
    .await
    .expect("a whole branding of its own");
    assert_eq!(whole.branding.unwrap().display_name, "Bolt");

    // Once acme has given the host up, it is free to take.
    set_hosts("tenants/acme", &["new.acme.test"])
        .await
        .expect("acme moves");
    let bolt = set_hosts("tenants/bolt", &[BOLT_HOST, ACME_HOST])
        .await
        .expect("bolt takes the freed host");
    assert_eq!(bolt.hosts, vec![BOLT_HOST, ACME_HOST]);
    assert_eq!(holder(ACME_HOST).await, "tenants/bolt");
    assert_eq!(holder("new.acme.test").await, "tenants/acme");
}

/// How each RPC keeps one tenant's customers from another's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    /// Holds no customer's data (sign-up, sign-in, the catalog in the caller's storefront,
    /// plans, branding, conversion events, webhooks with their signatures): called at
    /// another tenant's host, it answers in that tenant's storefront (or the platform's),
    /// and an account keeps its own tenant wherever it calls from.
    Public,
    /// Acts on the calling account only; no field names another account's data: another
    /// tenant's customer gets its own data, never the other's.
    CallerOnly,
    /// Names a resource that belongs to one account: another tenant's is not found.
    Named,
    /// Administrators only: customers and tenant owners are refused.
    AdminOnly,
    /// A tenant's own data: another tenant's owner finds nothing.
    TenantOwner,
}

/// Every RPC of the contract, with its rule: a new RPC without one fails
/// `every_rpc_has_an_isolation_rule`, and every RPC is exercised across two tenants by
/// `no_rpc_reaches_another_tenants_data` (one with a rule but no exercise fails it).
fn isolation(method: &str) -> Option<Isolation> {
    use Isolation::*;
    Some(match method {
        // A refresh token is its own proof: whoever holds it holds the session.
        "AuthService.RefreshToken"
        | "AuthService.Logout"
        | "AuthService.Register"
        | "AuthService.VerifyEmail"
        | "AuthService.ResendVerificationEmail"
        | "AuthService.Login"
        | "AuthService.RequestPasswordReset"
        | "AuthService.ResetPassword"
        | "CatalogService.ListServices"
        | "CatalogService.ListCountries"
        | "CatalogService.GetPrice"
        | "SubscriptionService.ListPlans"
        | "TenantService.GetBranding"
        | "AnalyticsService.TrackEvent"
        | "WebhookService.ReceiveWebhook" => Public,
        "AuthService.GetMe"
        | "AuthService.CreateApiKey"
        | "AuthService.ListApiKeys"
        | "AuthService.SetupTwoFactor"
        | "AuthService.ConfirmTwoFactor"
        | "AuthService.DisableTwoFactor"
        | "SubscriptionService.GetSubscription"
        | "SubscriptionService.ChangePlan"
        | "SubscriptionService.CancelSubscription"
        | "SubscriptionService.GetUsage"
        | "SubscriptionService.SetUsageAlert"
        | "VerificationService.CreateVerification"
        | "VerificationService.ListVerifications"
        | "VerificationService.WatchVerifications"
        | "WalletService.GetBalance"
        | "WalletService.ListTransactions"
        | "WalletService.CreateTopUp" => CallerOnly,
        "AuthService.RevokeApiKey"
        | "VerificationService.GetVerification"
        | "VerificationService.CancelVerification"
        | "VerificationService.WatchVerification"
        | "WalletService.VerifyTopUp"
        | "SandboxService.InjectSms"
        | "SandboxService.CompletePayment" => Named,
        "AdminService.ListUsers"
        | "AdminService.GetUser"
        | "AdminService.AdjustBalance"
        | "AdminService.SuspendUser"
        | "AdminService.ReactivateUser"
        | "AdminService.SetServicePrice"
        | "AdminService.RefundVerification"
        | "AdminService.ListAuditLogEntries"
        | "TenantService.CreateTenant"
        | "TenantService.SuspendTenant"
        | "TenantService.ReactivateTenant" => AdminOnly,
        "TenantService.GetTenant"
        | "TenantService.ListTenants"
        | "TenantService.UpdateTenant"
        | "TenantService.ListTenantPrices"
        | "TenantService.SetTenantPrice"
        // Owners get their own tenant's reports; administrators anyone's.
        | "AnalyticsService.GetRevenueAnalytics"
        | "AnalyticsService.GetConversionFunnel"
        | "AnalyticsService.GetCustomerMetrics" => TenantOwner,
        _ => return None,
    })
}

/// Every RPC in the descriptor set, as `Service.Method`.
fn every_rpc() -> Vec<String> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(namaskah_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set");
    set.file
        .iter()
        .filter(|f| f.package() == "namaskah.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| {
            s.method
                .iter()
                .map(move |m| format!("{}.{}", s.name(), m.name()))
        })
        .collect()
}

#[test]
fn every_rpc_has_an_isolation_rule() {
    let rpcs = every_rpc();
    assert!(rpcs.len() > 50, "{rpcs:?}");
    let missing: Vec<&String> = rpcs.iter().filter(|m| isolation(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "RPCs without a tenant isolation rule (add them to `isolation` and to the cross-tenant test): {missing:?}"
    );
}

/// The two tenants of the cross-tenant test: what acme's customers own, and bolt's
/// customer who reaches for it.
struct TwoTenants<'a> {
    app: &'a TestApp,
    admin: String,
    acme_price: i64,
    bolt_price: i64,
    /// Acme's customer: an API key, a verification and a top-up made with
    /// `SHARED_REQUEST_ID`, the pro plan, usage alerts, two-factor authentication.
    acme: String,
    acme_user: String,
    acme_email: String,
    acme_key: pb::ApiKey,
    acme_verification: pb::Verification,
    acme_top_up: pb::TopUp,
    acme_totp_secret: String,
    /// Another of acme's customers, without two-factor authentication.
    acme_plain: String,
    acme_plain_email: String,
    /// One of acme's who never verified its email.
    acme_unverified: String,
    bolt: String,
    bolt_user: String,
    bolt_email: String,
    /// Bolt's owner (`users/…`), on the enterprise plan.
    bolt_owner: String,
}

/// An anonymous request sent to bolt's host.
fn at_bolt<T>(message: T) -> Request<T> {
    at_host(message, BOLT_HOST, None)
}

/// The request id acme's customer used for its purchase, top-up and plan change; bolt's
/// customer sends it too, and must get answers of its own.
const SHARED_REQUEST_ID: &str = "order-0001";
const ACME_ALERTS: [i32; 2] = [50, 90];

/// The `ErrorInfo` reason of a status (empty without one).
fn reason_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

impl TwoTenants<'_> {
    /// The administrators' RPC `rpc` as `token`, with a request an administrator's call
    /// would carry out on acme's data: its customer (by name and email), its purchase, its
    /// tenant, a price its customers pay; a new tenant for bolt's owner.
    async fn admin_only(&self, rpc: &str, token: &str) -> Result<(), tonic::Status> {
        let admin = || AdminServiceClient::new(self.app.channel.clone());
        let t = || tenants(self.app);
        let acme_user = || self.acme_user.clone();
        let request_id = || uuid::Uuid::new_v4().to_string();
        match rpc {
            "AdminService.ListUsers" => admin()
                .list_users(bearer(
                    pb::ListUsersRequest {
                        tenant: "tenants/acme".into(),
                        email_query: self.acme_email.clone(),
                        page_size: 10,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop),
            "AdminService.GetUser" => admin()
                .get_user(bearer(pb::GetUserRequest { name: acme_user() }, token))
                .await
                .map(drop),
            "AdminService.AdjustBalance" => admin()
                .adjust_balance(bearer(
                    pb::AdjustBalanceRequest {
                        name: acme_user(),
                        amount: Some(usd(-1_000)),
                        reason: "chargeback from the card issuer".into(),
                        request_id: request_id(),
                    },
                    token,
                ))
                .await
                .map(drop),
            "AdminService.SuspendUser" => admin()
                .suspend_user(bearer(
                    pb::SuspendUserRequest {
                        name: acme_user(),
                        reason: "a rival's customer".into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            "AdminService.ReactivateUser" => admin()
                .reactivate_user(bearer(
                    pb::ReactivateUserRequest {
                        name: acme_user(),
                        reason: "cleared".into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            "AdminService.SetServicePrice" => admin()
                .set_service_price(bearer(
                    pb::SetServicePriceRequest {
                        name: "services/whatsapp/prices/GB".into(),
                        base_price: Some(usd(9_999)),
                        withdrawn: false,
                        reason: "raise acme's cost".into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            "AdminService.RefundVerification" => admin()
                .refund_verification(bearer(
                    pb::RefundVerificationRequest {
                        name: self.acme_verification.name.clone(),
                        reason: "refund acme's purchase".into(),
                        request_id: request_id(),
                    },
                    token,
                ))
                .await
                .map(drop),
            "AdminService.ListAuditLogEntries" => admin()
                .list_audit_log_entries(bearer(
                    pb::ListAuditLogEntriesRequest {
                        target: acme_user(),
                        page_size: 10,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop),
            "TenantService.CreateTenant" => t()
                .create_tenant(bearer(
                    pb::CreateTenantRequest {
                        tenant_id: "bolt-two".into(),
                        tenant: Some(pb::Tenant {
                            display_name: "Bolt Two".into(),
                            owner: self.bolt_owner.clone(),
                            hosts: vec!["two.bolt.example.net".into()],
                            markup_basis_points: 1_000,
                            ..Default::default()
                        }),
                        request_id: request_id(),
                    },
                    token,
                ))
                .await
                .map(drop),
            "TenantService.SuspendTenant" => t()
                .suspend_tenant(bearer(
                    pb::SuspendTenantRequest {
                        name: "tenants/acme".into(),
                        reason: "a rival".into(),
                    },
                    token,
                ))
                .await
                .map(drop),
            "TenantService.ReactivateTenant" => t()
                .reactivate_tenant(bearer(
                    pb::ReactivateTenantRequest {
                        name: "tenants/acme".into(),
                        reason: String::new(),
                    },
                    token,
                ))
                .await
                .map(drop),
            other => panic!("no cross-tenant call written for {other}"),
        }
    }

    /// `tenants/…` of an account, as administrators see it.
    async fn tenant_of(&self, user: &str) -> String {
        AdminServiceClient::new(self.app.channel.clone())
            .get_user(bearer(
                pb::GetUserRequest { name: user.into() },
                &self.admin,
            ))
            .await
            .expect("get user")
            .into_inner()
            .user
            .unwrap()
            .tenant
    }

    async fn me(&self, token: &str) -> pb::User {
        self.app
            .auth()
            .get_me(bearer(pb::GetMeRequest {}, token))
            .await
            .expect("get me")
            .into_inner()
            .user
            .unwrap()
    }

    async fn subscription(&self, token: &str) -> pb::Subscription {
        SubscriptionServiceClient::new(self.app.channel.clone())
            .get_subscription(bearer(pb::GetSubscriptionRequest {}, token))
            .await
            .expect("get subscription")
            .into_inner()
            .subscription
            .unwrap()
    }

    async fn usage(&self, token: &str) -> pb::Usage {
        SubscriptionServiceClient::new(self.app.channel.clone())
            .get_usage(bearer(pb::GetUsageRequest::default(), token))
            .await
            .expect("get usage")
            .into_inner()
            .usage
            .unwrap()
    }

    async fn key_names(&self, token: &str) -> Vec<String> {
        self.app
            .auth()
            .list_api_keys(bearer(
                pb::ListApiKeysRequest {
                    show_revoked: true,
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("list keys")
            .into_inner()
            .api_keys
            .into_iter()
            .map(|k| k.name)
            .collect()
    }

    /// What the ledger holds in `email`'s account of `kind`.
    async fn ledger_balance(&self, email: &str, kind: &str) -> i64 {
        scalar(
            &self.app.state.db,
            &format!(
                "SELECT COALESCE(CAST(SUM(a.balance) AS BIGINT), 0) FROM ledger_accounts a \
                 JOIN users u ON u.id = a.owner_id WHERE a.kind = '{kind}' AND u.email = '{email}'"
            ),
        )
        .await
    }

    /// How many mails `to` has had.
    fn mails_to(&self, to: &str) -> usize {
        self.app.mails().iter().filter(|m| m["to"] == to).count()
    }

    /// The acme verifications and top-up bolt's customer must never see.
    fn acme_resources(&self) -> Vec<String> {
        vec![
            self.acme_verification.name.clone(),
            format!("topUps/{}", self.acme_top_up.reference),
        ]
    }

    /// A Public RPC sent to bolt's host: it answers with bolt's storefront (or the
    /// platform's, for what is the platform's alone), never with acme's, and an account
    /// keeps its own tenant whatever host it calls from.
    async fn public_at_bolts_host(&self, rpc: &str) {
        let app = self.app;
        match rpc {
            "AuthService.Register" => {
                let email = unique_email();
                let user = app
                    .auth()
                    .register(at_bolt(pb::RegisterRequest {
                        email: email.clone(),
                        password: PASSWORD.into(),
                        referral_code: String::new(),
                    }))
                    .await
                    .expect("register at bolt's host")
                    .into_inner()
                    .user
                    .unwrap();
                assert_eq!(self.tenant_of(&user.name).await, "tenants/bolt");
                let mail = app.nth_mail_to(&email, 1).await;
                assert_eq!(mail["from_name"], "Bolt Texts", "{mail}");
                // Acme's customer's address is taken (addresses are the platform's), and
                // its account stays acme's, sent nothing.
                let mails = self.mails_to(&self.acme_email);
                let err = app
                    .auth()
                    .register(at_bolt(pb::RegisterRequest {
                        email: self.acme_email.clone(),
                        password: PASSWORD.into(),
                        referral_code: String::new(),
                    }))
                    .await
                    .unwrap_err();
                assert_error(&err, Code::AlreadyExists, "EMAIL_TAKEN");
                assert_eq!(self.tenant_of(&self.acme_user).await, "tenants/acme");
                assert_eq!(self.mails_to(&self.acme_email), mails);
            }
            "AuthService.VerifyEmail" => {
                // The mailed token is its own proof, wherever it is used: the account is
                // verified and stays acme's.
                let email = registered_at(app, ACME_HOST).await;
                let token = app.nth_token_to(&email, 1).await;
                let user = app
                    .auth()
                    .verify_email(at_bolt(pb::VerifyEmailRequest { token }))
                    .await
                    .expect("verify at bolt's host")
                    .into_inner()
                    .user
                    .unwrap();
                assert_eq!(user.email, email);
                assert!(user.email_verified);
                assert_eq!(self.tenant_of(&user.name).await, "tenants/acme");
            }
            "AuthService.ResendVerificationEmail" => {
                let n = self.mails_to(&self.acme_unverified);
                app.auth()
                    .resend_verification_email(at_bolt(pb::ResendVerificationEmailRequest {
                        email: self.acme_unverified.clone(),
                    }))
                    .await
                    .expect("resend");
                let mail = app.nth_mail_to(&self.acme_unverified, n + 1).await;
                assert_eq!(mail["from_name"], "Acme SMS", "the account's brand: {mail}");
                let text = mail["text"].as_str().unwrap();
                assert!(
                    text.contains("https://www.acmesms.test/verify-email?token="),
                    "{text}"
                );
                assert!(!text.contains("bolt"), "{text}");
            }
            "AuthService.Login" => {
                let response = app
                    .auth()
                    .login(at_bolt(pb::LoginRequest {
                        email: self.acme_plain_email.clone(),
                        password: PASSWORD.into(),
                        totp_code: String::new(),
                    }))
                    .await
                    .expect("log in at bolt's host")
                    .into_inner();
                assert_eq!(response.user.unwrap().email, self.acme_plain_email);
                let token = response.tokens.unwrap().access_token;
                assert_eq!(
                    price_at(app, Some(BOLT_HOST), Some(&token)).await,
                    self.acme_price,
                    "the account's storefront, not the host's"
                );
            }
            "AuthService.RefreshToken" => {
                let pair = app.login(&self.acme_plain_email).await;
                let fresh = app
                    .auth()
                    .refresh_token(at_bolt(pb::RefreshTokenRequest {
                        refresh_token: pair.refresh_token,
                    }))
                    .await
                    .expect("refresh at bolt's host")
                    .into_inner()
                    .tokens
                    .unwrap();
                assert_eq!(
                    self.me(&fresh.access_token).await.email,
                    self.acme_plain_email
                );
                assert_eq!(
                    price_at(app, Some(BOLT_HOST), Some(&fresh.access_token)).await,
                    self.acme_price
                );
            }
            "AuthService.Logout" => {
                // Bolt's customer ends every session of its own: only its own.
                let email = registered_at(app, BOLT_HOST).await;
                let pair = app.login(&email).await;
                app.auth()
                    .logout(at_bolt(pb::LogoutRequest {
                        refresh_token: pair.refresh_token,
                        all_sessions: true,
                    }))
                    .await
                    .expect("log out at bolt's host");
                let err = app
                    .auth()
                    .get_me(bearer(pb::GetMeRequest {}, &pair.access_token))
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
                assert_eq!(self.me(&self.acme).await.email, self.acme_email);
                assert_eq!(self.me(&self.acme_plain).await.email, self.acme_plain_email);
                assert_eq!(self.me(&self.bolt).await.email, self.bolt_email);
            }
            "AuthService.RequestPasswordReset" => {
                let n = self.mails_to(&self.acme_plain_email);
                app.auth()
                    .request_password_reset(at_bolt(pb::RequestPasswordResetRequest {
                        email: self.acme_plain_email.clone(),
                    }))
                    .await
                    .expect("request a reset");
                let mail = app.nth_mail_to(&self.acme_plain_email, n + 1).await;
                assert_eq!(mail["from_name"], "Acme SMS", "the account's brand: {mail}");
                let text = mail["text"].as_str().unwrap();
                assert!(text.contains("https://www.acmesms.test/"), "{text}");
                assert!(!text.contains("bolt"), "{text}");
            }
            "AuthService.ResetPassword" => {
                let email = registered_at(app, ACME_HOST).await;
                app.auth()
                    .request_password_reset(pb::RequestPasswordResetRequest {
                        email: email.clone(),
                    })
                    .await
                    .unwrap();
                let token = app.nth_token_to(&email, 2).await;
                app.auth()
                    .reset_password(at_bolt(pb::ResetPasswordRequest {
                        token,
                        new_password: "a new secret 77".into(),
                    }))
                    .await
                    .expect("reset at bolt's host");
                let pair = app
                    .auth()
                    .login(pb::LoginRequest {
                        email: email.clone(),
                        password: "a new secret 77".into(),
                        totp_code: String::new(),
                    })
                    .await
                    .expect("the new password")
                    .into_inner();
                assert_eq!(
                    self.tenant_of(&pair.user.unwrap().name).await,
                    "tenants/acme"
                );
            }
            "CatalogService.ListServices" => {
                let prices = listed_prices(app, Some(BOLT_HOST), None, "GB").await;
                assert_eq!(prices["whatsapp"], self.bolt_price);
            }
            "CatalogService.ListCountries" => {
                let countries = catalog(app)
                    .list_countries(at_bolt(pb::ListCountriesRequest {
                        service: "services/whatsapp".into(),
                        page_size: 500,
                        ..Default::default()
                    }))
                    .await
                    .expect("list countries")
                    .into_inner()
                    .countries;
                let gb = countries.iter().find(|c| c.code == "GB").expect("GB");
                assert_eq!(cents(&gb.price), self.bolt_price);
            }
            "CatalogService.GetPrice" => {
                assert_eq!(price_at(app, Some(BOLT_HOST), None).await, self.bolt_price);
            }
            "SubscriptionService.ListPlans" => {
                // Plans are the platform's own: the same list on every host.
                let plans = |request| {
                    let mut client = SubscriptionServiceClient::new(app.channel.clone());
                    async move { client.list_plans(request).await.unwrap().into_inner() }
                };
                let at_bolt_host = plans(at_bolt(pb::ListPlansRequest {})).await;
                assert_eq!(at_bolt_host.plans.len(), 3);
                assert_eq!(
                    at_bolt_host,
                    plans(Request::new(pb::ListPlansRequest {})).await
                );
            }
            "TenantService.GetBranding" => {
                let found = tenants(app)
                    .get_branding(at_bolt(pb::GetBrandingRequest::default()))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(found.tenant, "tenants/bolt");
                assert_eq!(found.branding.unwrap().display_name, "Bolt Texts");
            }
            "AnalyticsService.TrackEvent" => {
                // Attributed to the caller, bolt's customer, and to no one else.
                let marker = uuid::Uuid::new_v4().simple().to_string();
                AnalyticsServiceClient::new(app.channel.clone())
                    .track_event(at_host(
                        pb::TrackEventRequest {
                            event_name: "page_viewed".into(),
                            properties: [("probe".to_owned(), marker.clone())].into(),
                            ..Default::default()
                        },
                        BOLT_HOST,
                        Some(&self.bolt),
                    ))
                    .await
                    .expect("track");
                app.state.analytics.tracker().flush().await;
                let count = |email: &str| {
                    format!(
                        "SELECT COUNT(*) FROM conversion_events c JOIN users u ON u.id = c.user_id \
                         WHERE c.properties LIKE '%{marker}%' AND u.email = '{email}'"
                    )
                };
                let db = &app.state.db;
                assert_eq!(scalar(db, &count(&self.bolt_email)).await, 1);
                assert_eq!(scalar(db, &count(&self.acme_email)).await, 0);
            }
            "WebhookService.ReceiveWebhook" => {
                // A forged gateway webhook for acme's top-up: refused, nothing credited.
                let balance = app.balance(&self.acme).await;
                let body = serde_json::to_vec(&serde_json::json!({
                    "event": "charge.success",
                    "data": {
                        "status": "success",
                        "reference": self.acme_top_up.reference,
                        "amount": 500,
                        "currency": "USD",
                    }
                }))
                .unwrap();
                let forged = "ab".repeat(64);
                let err = app
                    .webhooks()
                    .receive_webhook(at_bolt(pb::ReceiveWebhookRequest {
                        source: pb::WebhookSource::Sandbox as i32,
                        headers: vec![pb::WebhookHeader {
                            name: "x-paystack-signature".into(),
                            value: forged.into_bytes(),
                        }],
                        body,
                        query: String::new(),
                        client_address: "127.0.0.1".into(),
                        receive_time: None,
                    }))
                    .await
                    .unwrap_err();
                assert_error(&err, Code::Unauthenticated, "INVALID_SIGNATURE");
                assert_eq!(app.balance(&self.acme).await, balance);
            }
            other => panic!("no cross-tenant call written for {other}"),
        }
    }

    /// A CallerOnly RPC called by bolt's customer, while acme's customer has data of the
    /// same kind: bolt's customer gets its own, and acme's is untouched.
    async fn caller_only_by_bolts_customer(&self, rpc: &str) {
        let app = self.app;
        let bolt = self.bolt.as_str();
        let subscriptions = || SubscriptionServiceClient::new(app.channel.clone());
        match rpc {
            "AuthService.GetMe" => {
                let me = self.me(bolt).await;
                assert_eq!(me.name, self.bolt_user);
                assert_eq!(me.email, self.bolt_email);
            }
            "AuthService.CreateApiKey" => {
                let created = app
                    .auth()
                    .create_api_key(bearer(
                        pb::CreateApiKeyRequest {
                            display_name: self.acme_key.display_name.clone(),
                        },
                        bolt,
                    ))
                    .await
                    .expect("create a key")
                    .into_inner();
                let key = created.api_key.unwrap();
                assert_ne!(key.name, self.acme_key.name);
                let me = app
                    .auth()
                    .get_me(with_key(pb::GetMeRequest {}, &created.secret))
                    .await
                    .unwrap()
                    .into_inner()
                    .user
                    .unwrap();
                assert_eq!(me.email, self.bolt_email, "the key is bolt's customer's");
                assert!(self.key_names(bolt).await.contains(&key.name));
                assert_eq!(
                    self.key_names(&self.acme).await,
                    vec![self.acme_key.name.clone()]
                );
            }
            "AuthService.ListApiKeys" => {
                let keys = self.key_names(bolt).await;
                assert!(!keys.contains(&self.acme_key.name), "{keys:?}");
                assert!(
                    self.key_names(&self.acme)
                        .await
                        .contains(&self.acme_key.name)
                );
            }
            "AuthService.SetupTwoFactor" => {
                let setup = app
                    .auth()
                    .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, bolt))
                    .await
                    .expect("set up")
                    .into_inner();
                assert_ne!(setup.secret, self.acme_totp_secret);
                assert!(!self.me(bolt).await.two_factor_enabled);
                assert!(self.me(&self.acme).await.two_factor_enabled);
            }
            "AuthService.ConfirmTwoFactor" => {
                // A code of acme's customer's secret confirms nothing for bolt's.
                let setup = app
                    .auth()
                    .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, bolt))
                    .await
                    .expect("set up")
                    .into_inner();
                let bolts: Vec<String> = (-3..=3).map(|o| totp_code_at(&setup.secret, o)).collect();
                let code = (-1..=1)
                    .map(|o| totp_code_at(&self.acme_totp_secret, o))
                    .find(|c| !bolts.contains(c))
                    .expect("a code of acme's that is not bolt's");
                let result = app
                    .auth()
                    .confirm_two_factor(bearer(pb::ConfirmTwoFactorRequest { code }, bolt))
                    .await;
                assert!(result.is_err(), "{result:?}");
                assert!(!self.me(bolt).await.two_factor_enabled);
                assert!(self.me(&self.acme).await.two_factor_enabled);
            }
            "AuthService.DisableTwoFactor" => {
                let result = app
                    .auth()
                    .disable_two_factor(bearer(
                        pb::DisableTwoFactorRequest {
                            password: PASSWORD.into(),
                            code: totp_code_at(&self.acme_totp_secret, 0),
                        },
                        bolt,
                    ))
                    .await;
                assert!(result.is_err(), "{result:?}");
                assert!(self.me(&self.acme).await.two_factor_enabled);
            }
            "SubscriptionService.GetSubscription" => {
                let mine = self.subscription(bolt).await;
                assert_eq!(mine.name, format!("{}/subscription", self.bolt_user));
                let acme = self.subscription(&self.acme).await;
                assert_eq!(acme.name, format!("{}/subscription", self.acme_user));
                assert_eq!(acme.plan, pb::PlanTier::Pro as i32);
            }
            "SubscriptionService.ChangePlan" => {
                // Acme's request id: a change of bolt's own, not acme's answer replayed.
                let before = app.balance(bolt).await;
                let acme_before = app.balance(&self.acme).await;
                let changed = subscriptions()
                    .change_plan(bearer(
                        pb::ChangePlanRequest {
                            plan: pb::PlanTier::Pro as i32,
                            request_id: SHARED_REQUEST_ID.into(),
                        },
                        bolt,
                    ))
                    .await
                    .expect("bolt's customer upgrades")
                    .into_inner();
                let subscription = changed.subscription.unwrap();
                assert_eq!(
                    subscription.name,
                    format!("{}/subscription", self.bolt_user)
                );
                assert_eq!(subscription.plan, pb::PlanTier::Pro as i32);
                let charged = cents(&changed.charged);
                assert!(charged > 0);
                assert_eq!(app.balance(bolt).await, before - charged);
                assert_eq!(app.balance(&self.acme).await, acme_before);
            }
            "SubscriptionService.CancelSubscription" => {
                match subscriptions()
                    .cancel_subscription(bearer(pb::CancelSubscriptionRequest {}, bolt))
                    .await
                {
                    Ok(cancelled) => assert_eq!(
                        cancelled.into_inner().subscription.unwrap().name,
                        format!("{}/subscription", self.bolt_user)
                    ),
                    // On starter there is nothing to cancel.
                    Err(status) => assert_eq!(status.code(), Code::FailedPrecondition),
                }
                let acme = self.subscription(&self.acme).await;
                assert!(!acme.cancel_at_period_end, "{acme:?}");
                assert_eq!(acme.plan, pb::PlanTier::Pro as i32);
            }
            "SubscriptionService.GetUsage" => {
                // Bolt's customer's purchase counts in its usage, not in acme's.
                let before = self.usage(bolt).await;
                let acme_before = self.usage(&self.acme).await;
                app.buy(bolt, "whatsapp", "GB").await.unwrap();
                let after = self.usage(bolt).await;
                assert_eq!(after.verifications, before.verifications + 1);
                let bought = app
                    .verifications()
                    .list_verifications(bearer(pb::ListVerificationsRequest::default(), bolt))
                    .await
                    .unwrap()
                    .into_inner()
                    .verifications
                    .len();
                assert!(after.verifications <= bought as i64, "{after:?}");
                assert_ne!(after.alert_threshold_percents, ACME_ALERTS);
                let acme = self.usage(&self.acme).await;
                assert_eq!(acme.verifications, acme_before.verifications);
                assert!(acme.verifications >= 1);
                assert_eq!(acme.alert_threshold_percents, ACME_ALERTS);
            }
            "SubscriptionService.SetUsageAlert" => {
                let alert = subscriptions()
                    .set_usage_alert(bearer(
                        pb::SetUsageAlertRequest {
                            threshold_percents: vec![75],
                        },
                        bolt,
                    ))
                    .await
                    .expect("set alerts")
                    .into_inner()
                    .usage_alert
                    .unwrap();
                assert_eq!(alert.name, format!("{}/usageAlert", self.bolt_user));
                assert_eq!(alert.threshold_percents, vec![75]);
                assert_eq!(
                    self.usage(&self.acme).await.alert_threshold_percents,
                    ACME_ALERTS
                );
            }
            "VerificationService.CreateVerification" => {
                let v = app
                    .verifications()
                    .create_verification(bearer(
                        pb::CreateVerificationRequest {
                            service: "whatsapp".into(),
                            country: "GB".into(),
                            max_price: None,
                            request_id: SHARED_REQUEST_ID.into(),
                        },
                        bolt,
                    ))
                    .await
                    .expect("bolt's customer buys")
                    .into_inner()
                    .verification
                    .unwrap();
                assert_ne!(v.name, self.acme_verification.name, "not acme's replayed");
                assert_eq!(v.request_id, SHARED_REQUEST_ID);
                assert_eq!(
                    cents(&v.price),
                    price_at(app, None, Some(bolt)).await,
                    "at bolt's customer's own price"
                );
                let err = app
                    .verifications()
                    .get_verification(bearer(
                        pb::GetVerificationRequest { name: v.name },
                        &self.acme,
                    ))
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), Code::NotFound);
            }
            "VerificationService.ListVerifications" => {
                let own = app.buy(bolt, "whatsapp", "GB").await.unwrap();
                let listed: Vec<String> = app
                    .verifications()
                    .list_verifications(bearer(pb::ListVerificationsRequest::default(), bolt))
                    .await
                    .unwrap()
                    .into_inner()
                    .verifications
                    .into_iter()
                    .map(|v| v.name)
                    .collect();
                assert!(listed.contains(&own.name), "{listed:?}");
                assert!(!listed.contains(&self.acme_verification.name), "{listed:?}");
            }
            "VerificationService.WatchVerifications" => {
                // While acme's customer buys, bolt's stream shows bolt's own purchase only.
                let mut stream = app.watch_all(bolt, true).await.expect("watch");
                let acme_new = app.buy(&self.acme, "telegram", "GB").await.unwrap();
                let own = app.buy(bolt, "telegram", "GB").await.unwrap();
                let acme_names = [acme_new.name.clone(), self.acme_verification.name.clone()];
                loop {
                    let event =
                        tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
                            .await
                            .expect("bolt's own event comes")
                            .unwrap()
                            .unwrap()
                            .event
                            .unwrap();
                    let name = event.verification.unwrap().name;
                    assert!(!acme_names.contains(&name), "acme's {name} reached bolt");
                    if name == own.name {
                        break;
                    }
                }
                // Acme's customer's purchase is given back (its balance is checked later).
                app.verifications()
                    .cancel_verification(bearer(
                        pb::CancelVerificationRequest {
                            name: acme_new.name,
                        },
                        &self.acme,
                    ))
                    .await
                    .unwrap();
            }
            "WalletService.GetBalance" => {
                let balance = app
                    .wallet()
                    .get_balance(bearer(pb::GetBalanceRequest {}, bolt))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(
                    cents(&balance.balance),
                    self.ledger_balance(&self.bolt_email, "wallet").await
                );
                assert_eq!(
                    cents(&balance.held),
                    self.ledger_balance(&self.bolt_email, "holds").await
                );
                assert_ne!(
                    cents(&balance.balance),
                    self.ledger_balance(&self.acme_email, "wallet").await
                );
            }
            "WalletService.ListTransactions" => {
                let listed = app.transactions(bolt).await;
                assert!(!listed.is_empty());
                let acme = self.acme_resources();
                for t in &listed {
                    assert!(!acme.contains(&t.related_resource), "{t:?}");
                }
                assert_eq!(
                    cents(&listed[0].balance_after),
                    app.balance(bolt).await,
                    "the newest is bolt's customer's latest"
                );
            }
            "WalletService.CreateTopUp" => {
                let top_up = app
                    .wallet()
                    .create_top_up(bearer(
                        pb::CreateTopUpRequest {
                            amount: Some(usd(777)),
                            request_id: SHARED_REQUEST_ID.into(),
                            callback_url: String::new(),
                        },
                        bolt,
                    ))
                    .await
                    .expect("bolt's customer's top-up")
                    .into_inner()
                    .top_up
                    .unwrap();
                assert_ne!(top_up.reference, self.acme_top_up.reference);
                assert_eq!(cents(&top_up.amount), 777);
            }
            other => panic!("no cross-tenant call written for {other}"),
        }
    }
}

#[tokio::test]
async fn no_rpc_reaches_another_tenants_data() {
    let app = spawn_app_with(&[("NAMASKAH_SANDBOX_SMS_DELAY", "off")]).await;
    let admin = admin_session(&app).await;
    let (acme_owner, _) = enterprise_owner(&app).await;
    let (bolt_owner, bolt_owner_token) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &acme_owner,
        &[ACME_HOST],
        2_000,
        Some(branding("Acme SMS", "#112233")),
    )
    .await
    .unwrap();
    create(
        &app,
        &admin.token,
        "bolt",
        &bolt_owner,
        &[BOLT_HOST],
        1_000,
        Some(branding("Bolt Texts", "#00AA55")),
    )
    .await
    .unwrap();
    let platform = price_at(&app, None, None).await;

    // Acme's customer and what it owns: a key, a purchase and a top-up (with the request
    // id bolt's customer will send too), the pro plan, usage alerts and 2FA.
    let (acme_email, acme) = customer_at(&app, ACME_HOST, 10_000).await;
    let acme_user = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &acme))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .name;
    let key = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "ci".into(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    let verification = app
        .verifications()
        .create_verification(bearer(
            pb::CreateVerificationRequest {
                service: "whatsapp".into(),
                country: "GB".into(),
                max_price: None,
                request_id: SHARED_REQUEST_ID.into(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .verification
        .unwrap();
    let top_up = app
        .wallet()
        .create_top_up(bearer(
            pb::CreateTopUpRequest {
                amount: Some(usd(500)),
                request_id: SHARED_REQUEST_ID.into(),
                callback_url: String::new(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .top_up
        .unwrap();
    let subscriptions = SubscriptionServiceClient::new(app.channel.clone());
    subscriptions
        .clone()
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: pb::PlanTier::Pro as i32,
                request_id: SHARED_REQUEST_ID.into(),
            },
            &acme,
        ))
        .await
        .expect("acme's customer upgrades");
    subscriptions
        .clone()
        .set_usage_alert(bearer(
            pb::SetUsageAlertRequest {
                threshold_percents: ACME_ALERTS.to_vec(),
            },
            &acme,
        ))
        .await
        .unwrap();
    let setup = app
        .auth()
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &acme))
        .await
        .unwrap()
        .into_inner();
    app.auth()
        .confirm_two_factor(bearer(
            pb::ConfirmTwoFactorRequest {
                code: totp_code_at(&setup.secret, 0),
            },
            &acme,
        ))
        .await
        .expect("acme's customer turns 2FA on");
    let (acme_plain_email, acme_plain) = customer_at(&app, ACME_HOST, 1_000).await;
    let acme_unverified = registered_at(&app, ACME_HOST).await;

    // Bolt's customer reaches for each of them.
    let (bolt_email, bolt) = customer_at(&app, BOLT_HOST, 10_000).await;
    let bolt_user = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &bolt))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .name;
    let world = TwoTenants {
        app: &app,
        admin: admin.token.clone(),
        acme_price: marked_up(platform, 2_000),
        bolt_price: marked_up(platform, 1_000),
        acme: acme.clone(),
        acme_user,
        acme_email,
        acme_key: key.clone(),
        acme_verification: verification.clone(),
        acme_top_up: top_up.clone(),
        acme_totp_secret: setup.secret,
        acme_plain,
        acme_plain_email,
        acme_unverified,
        bolt: bolt.clone(),
        bolt_user,
        bolt_email,
        bolt_owner: bolt_owner.clone(),
    };
    let acme_balance = app.balance(&acme).await;
    let mut exercised = std::collections::BTreeSet::new();
    for rpc in every_rpc() {
        let rule = isolation(&rpc).unwrap();
        match rule {
            Isolation::Public => {
                world.public_at_bolts_host(&rpc).await;
                exercised.insert(rpc);
                continue;
            }
            Isolation::CallerOnly => {
                world.caller_only_by_bolts_customer(&rpc).await;
                exercised.insert(rpc);
                continue;
            }
            _ => {}
        }
        let refusal: Option<tonic::Status> = match (rule, rpc.as_str()) {
            (Isolation::Public | Isolation::CallerOnly, _) => unreachable!("exercised above"),
            (_, "AuthService.RevokeApiKey") => app
                .auth()
                .revoke_api_key(bearer(
                    pb::RevokeApiKeyRequest {
                        name: key.name.clone(),
                    },
                    &bolt,
                ))
                .await
                .err(),
            (_, "VerificationService.GetVerification") => app
                .verifications()
                .get_verification(bearer(
                    pb::GetVerificationRequest {
                        name: verification.name.clone(),
                    },
                    &bolt,
                ))
                .await
                .err(),
            (_, "VerificationService.CancelVerification") => app
                .verifications()
                .cancel_verification(bearer(
                    pb::CancelVerificationRequest {
                        name: verification.name.clone(),
                    },
                    &bolt,
                ))
                .await
                .err(),
            (_, "VerificationService.WatchVerification") => match app
                .verifications()
                .watch_verification(bearer(
                    pb::WatchVerificationRequest {
                        name: verification.name.clone(),
                        after_sequence: 0,
                    },
                    &bolt,
                ))
                .await
            {
                Err(status) => Some(status),
                Ok(mut stream) => stream.get_mut().message().await.err(),
            },
            (_, "WalletService.VerifyTopUp") => app
                .wallet()
                .verify_top_up(bearer(
                    pb::VerifyTopUpRequest {
                        reference: top_up.reference.clone(),
                    },
                    &bolt,
                ))
                .await
                .err(),
            (_, "SandboxService.InjectSms") => app
                .inject(&bolt, &verification.phone_number, "code 424242", None)
                .await
                .err(),
            (_, "SandboxService.CompletePayment") => app
                .sandbox()
                .complete_payment(bearer(
                    pb::CompletePaymentRequest {
                        reference: top_up.reference.clone(),
                        outcome: 0,
                        paid_amount: None,
                    },
                    &bolt,
                ))
                .await
                .err(),
            (Isolation::AdminOnly, rpc) => {
                // Neither a tenant's owner nor a customer is an administrator, whatever the
                // request names: each names acme's real data, as an administrator's call
                // would, so only the administrators' check can refuse it.
                let mut refusal = None;
                for (who, token) in [
                    ("bolt's owner", &bolt_owner_token),
                    ("bolt's customer", &bolt),
                ] {
                    let status = world
                        .admin_only(rpc, token)
                        .await
                        .err()
                        .unwrap_or_else(|| panic!("{rpc} let {who} through"));
                    assert_eq!(
                        (status.code(), reason_of(&status)),
                        (Code::PermissionDenied, "ADMIN_REQUIRED".to_owned()),
                        "{rpc} called by {who}: {status:?}"
                    );
                    refusal = Some(status);
                }
                refusal
            }
            (Isolation::TenantOwner, rpc) => {
                let token = bolt_owner_token.as_str();
                let t = || tenants(&app);
                let analytics = || AnalyticsServiceClient::new(app.channel.clone());
                let acme_name = || "tenants/acme".to_owned();
                match rpc {
                    "AnalyticsService.GetRevenueAnalytics" => analytics()
                        .get_revenue_analytics(bearer(
                            pb::GetRevenueAnalyticsRequest {
                                tenant: "tenants/acme".into(),
                                ..Default::default()
                            },
                            token,
                        ))
                        .await
                        .err(),
                    "AnalyticsService.GetConversionFunnel" => analytics()
                        .get_conversion_funnel(bearer(
                            pb::GetConversionFunnelRequest {
                                tenant: "tenants/acme".into(),
                                ..Default::default()
                            },
                            token,
                        ))
                        .await
                        .err(),
                    "AnalyticsService.GetCustomerMetrics" => analytics()
                        .get_customer_metrics(bearer(
                            pb::GetCustomerMetricsRequest {
                                tenant: "tenants/acme".into(),
                                ..Default::default()
                            },
                            token,
                        ))
                        .await
                        .err(),

                    "TenantService.GetTenant" => t()
                        .get_tenant(bearer(pb::GetTenantRequest { name: acme_name() }, token))
                        .await
                        .err(),
                    "TenantService.ListTenants" => {
                        let listed = t()
                            .list_tenants(bearer(
                                pb::ListTenantsRequest {
                                    owner: acme_owner.clone(),
                                    ..Default::default()
                                },
                                token,
                            ))
                            .await
                            .unwrap()
                            .into_inner();
                        assert!(listed.tenants.is_empty(), "{listed:?}");
                        Some(tonic::Status::not_found("listed nothing"))
                    }
                    "TenantService.UpdateTenant" => t()
                        .update_tenant(bearer(
                            pb::UpdateTenantRequest {
                                tenant: Some(pb::Tenant {
                                    name: acme_name(),
                                    display_name: "owned".into(),
                                    ..Default::default()
                                }),
                                update_mask: Some(prost_types::FieldMask {
                                    paths: vec!["display_name".into()],
                                }),
                            },
                            token,
                        ))
                        .await
                        .err(),
                    "TenantService.ListTenantPrices" => t()
                        .list_tenant_prices(bearer(
                            pb::ListTenantPricesRequest {
                                parent: acme_name(),
                                ..Default::default()
                            },
                            token,
                        ))
                        .await
                        .err(),
                    "TenantService.SetTenantPrice" => t()
                        .set_tenant_price(bearer(
                            pb::SetTenantPriceRequest {
                                name: "tenants/acme/services/whatsapp/prices/GB".into(),
                                fixed_price: Some(usd(100_000)),
                            },
                            token,
                        ))
                        .await
                        .err(),
                    other => panic!("no cross-tenant call written for {other}"),
                }
            }
            (Isolation::Named, other) => panic!("no cross-tenant call written for {other}"),
        };
        let status = refusal.unwrap_or_else(|| panic!("{rpc} let another tenant's caller through"));
        if rule == Isolation::AdminOnly {
            assert_error(&status, Code::PermissionDenied, "ADMIN_REQUIRED");
        } else {
            assert!(
                matches!(
                    status.code(),
                    Code::NotFound | Code::InvalidArgument | Code::Unauthenticated
                ),
                "{rpc}: {status:?}"
            );
        }
        exercised.insert(rpc);
    }
    assert_eq!(exercised.len(), every_rpc().len(), "{exercised:?}");

    // Nothing of acme's moved: its verification is still active, its top-up pending, its
    // key live, its tenant's name unchanged.
    let v = app.get_verification(&acme, &verification.name).await;
    assert_eq!(status_of(&v), pb::VerificationStatus::Active);
    assert_eq!(app.balance(&acme).await, acme_balance);
    let keys = app
        .auth()
        .list_api_keys(bearer(pb::ListApiKeysRequest::default(), &acme))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert!(keys.iter().all(|k| k.revoke_time.is_none()), "{keys:?}");
    let acme_tenant = tenant_as(&app, "tenants/acme", &admin.token).await;
    assert_eq!(acme_tenant.display_name, "acme reseller");
    // And bolt's customer's own lists hold nothing of acme's.
    let listed = app
        .verifications()
        .list_verifications(bearer(pb::ListVerificationsRequest::default(), &bolt))
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.verifications.is_empty());
    assert!(
        listed
            .verifications
            .iter()
            .all(|v| v.name != verification.name),
        "{listed:?}"
    );
    assert!(world.me(&acme).await.two_factor_enabled);
    assert_eq!(
        world.subscription(&acme).await.plan,
        pb::PlanTier::Pro as i32
    );
    // Nor did the administrators' RPCs change anything: acme's customer is active, acme
    // too, the platform's price is as it was, and bolt's owner has no second tenant.
    let account = admin_client(&app)
        .get_user(bearer(
            pb::GetUserRequest {
                name: world.acme_user.clone(),
            },
            &admin.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(account.status, pb::UserStatus::Active as i32);
    assert_eq!(acme_tenant.state, pb::TenantState::Active as i32);
    assert_eq!(price_at(&app, None, None).await, platform);
    let err = tenants(&app)
        .get_tenant(bearer(
            pb::GetTenantRequest {
                name: "tenants/bolt-two".into(),
            },
            &admin.token,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "TENANT_NOT_FOUND");

    // The requests bolt's callers sent were well formed and named real data: an
    // administrator sending the same is answered (or refused for the state of things,
    // never for its arguments).
    for rpc in every_rpc()
        .into_iter()
        .filter(|rpc| isolation(rpc) == Some(Isolation::AdminOnly))
    {
        if let Err(status) = world.admin_only(&rpc, &admin.token).await {
            assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "{rpc} sent by an administrator: {status:?}"
            );
        }
    }
}

/// Every call a tenant's owner may make on `tenant` (`tenants/…`), as `token`: each one's
/// name and outcome.
async fn owner_calls(
    app: &TestApp,
    token: &str,
    tenant: &str,
) -> Vec<(&'static str, Result<(), tonic::Status>)> {
    let t = || tenants(app);
    let mut outcomes = vec![
        (
            "GetTenant",
            t().get_tenant(bearer(
                pb::GetTenantRequest {
                    name: tenant.into(),
                },
                token,
            ))
            .await
            .map(drop),
        ),
        (
            "ListTenants",
            t().list_tenants(bearer(pb::ListTenantsRequest::default(), token))
                .await
                .map(|r| assert_eq!(r.into_inner().tenants.len(), 1)),
        ),
        (
            "UpdateTenant",
            t().update_tenant(bearer(
                pb::UpdateTenantRequest {
                    tenant: Some(pb::Tenant {
                        name: tenant.into(),
                        display_name: "Acme renamed".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                },
                token,
            ))
            .await
            .map(drop),
        ),
        (
            "ListTenantPrices",
            t().list_tenant_prices(bearer(
                pb::ListTenantPricesRequest {
                    parent: tenant.into(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        ),
        (
            "SetTenantPrice",
            t().set_tenant_price(bearer(
                pb::SetTenantPriceRequest {
                    name: format!("{tenant}/services/whatsapp/prices/GB"),
                    fixed_price: None,
                },
                token,
            ))
            .await
            .map(drop),
        ),
    ];
    outcomes.push((
        "GetRevenueAnalytics",
        analytics(app)
            .get_revenue_analytics(bearer(
                pb::GetRevenueAnalyticsRequest {
                    start_date: today(),
                    end_date: today(),
                    granularity: pb::TimeGranularity::Day as i32,
                    tenant: tenant.into(),
                },
                token,
            ))
            .await
            .map(drop),
    ));
    outcomes.push((
        "GetConversionFunnel",
        analytics(app)
            .get_conversion_funnel(bearer(
                pb::GetConversionFunnelRequest {
                    start_date: today(),
                    end_date: today(),
                    tenant: tenant.into(),
                },
                token,
            ))
            .await
            .map(drop),
    ));
    outcomes.push((
        "GetCustomerMetrics",
        analytics(app)
            .get_customer_metrics(bearer(
                pb::GetCustomerMetricsRequest {
                    start_date: today(),
                    end_date: today(),
                    tenant: tenant.into(),
                },
                token,
            ))
            .await
            .map(drop),
    ));
    outcomes
}

#[tokio::test]
async fn an_owner_off_the_enterprise_plan_loses_its_owner_access_but_its_tenant_keeps_serving() {
    // The billing jobs run by hand only.
    let app = spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ("NAMASKAH_JOB_INTERVAL", "1h"),
        ("NAMASKAH_USAGE_FLUSH", "1h"),
    ])
    .await;
    let admin = admin_session(&app).await;
    // The owner pays for the enterprise plan itself (enough for it twice).
    let owner_token = app.funded(70_000).await;
    let owner = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &owner_token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .name;
    let subscriptions = || SubscriptionServiceClient::new(app.channel.clone());
    let upgrade = || {
        let mut client = subscriptions();
        let request = bearer(
            pb::ChangePlanRequest {
                plan: pb::PlanTier::Enterprise as i32,
                request_id: uuid::Uuid::new_v4().to_string(),
            },
            &owner_token,
        );
        async move { client.change_plan(request).await.expect("enterprise plan") }
    };
    upgrade().await;
    create(
        &app,
        &admin.token,
        "acme",
        &owner,
        &[ACME_HOST],
        2_000,
        Some(branding("Acme SMS", "#112233")),
    )
    .await
    .expect("create acme");
    let (_, customer) = customer_at(&app, ACME_HOST, 5_000).await;
    let platform = price_at(&app, None, None).await;

    let all_allowed = |outcomes: Vec<(&str, Result<(), tonic::Status>)>, when: &str| {
        for (rpc, outcome) in outcomes {
            if let Err(status) = outcome {
                panic!("{rpc} {when}: {status:?}");
            }
        }
    };
    all_allowed(
        owner_calls(&app, &owner_token, "tenants/acme").await,
        "on the enterprise plan",
    );

    // A cancelled plan runs to its period's end: until then the owner keeps its access.
    let end = subscriptions()
        .cancel_subscription(bearer(pb::CancelSubscriptionRequest {}, &owner_token))
        .await
        .expect("cancel")
        .into_inner()
        .subscription
        .and_then(|s| s.current_period_end_time)
        .expect("a period end");
    let end = chrono::DateTime::from_timestamp(end.seconds, end.nanos as u32).unwrap();
    all_allowed(
        owner_calls(&app, &owner_token, "tenants/acme").await,
        "before the period ends",
    );

    // The period ends: the account is on starter now.
    set_clocks(&[&app], end + chrono::Duration::seconds(1)).await;
    app.state.billing.renew_due().await.unwrap();
    let me = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &owner_token))
        .await
        .expect("the owner's own account still works")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.plan, pb::PlanTier::Starter as i32);
    for (rpc, outcome) in owner_calls(&app, &owner_token, "tenants/acme").await {
        let status = outcome.expect_err(rpc);
        assert_error(&status, Code::PermissionDenied, "ENTERPRISE_PLAN_REQUIRED");
    }

    // Administrators are unaffected; the tenant is active and its customers are served at
    // its prices, by token and at its host.
    let acme = tenant_as(&app, "tenants/acme", &admin.token).await;
    assert_eq!(acme.state, pb::TenantState::Active as i32);
    assert_eq!(acme.owner, owner);
    analytics(&app)
        .get_customer_metrics(bearer(
            pb::GetCustomerMetricsRequest {
                start_date: today(),
                end_date: today(),
                tenant: "tenants/acme".into(),
            },
            &admin.token,
        ))
        .await
        .expect("an administrator reads the tenant's figures");
    assert_eq!(app.balance(&customer).await, 5_000);
    assert_eq!(
        price_at(&app, Some(ACME_HOST), None).await,
        marked_up(platform, 2_000)
    );
    assert_eq!(
        price_at(&app, None, Some(&customer)).await,
        marked_up(platform, 2_000)
    );

    // Back on the enterprise plan, the owner manages its tenant again.
    upgrade().await;
    all_allowed(
        owner_calls(&app, &owner_token, "tenants/acme").await,
        "on the enterprise plan again",
    );
}

#[tokio::test]
async fn a_suspended_tenants_host_takes_no_sign_ups_until_it_is_reactivated() {
    let app = spawn_app().await;
    let admin = admin_session(&app).await;
    let (owner, _) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &owner,
        &[ACME_HOST],
        2_000,
        Some(branding("Acme SMS", "#112233")),
    )
    .await
    .expect("create acme");
    let platform = price_at(&app, None, None).await;
    let set_suspended = |suspend: bool| {
        let mut client = tenants(&app);
        let token = admin.token.clone();
        async move {
            if suspend {
                client
                    .suspend_tenant(bearer(
                        pb::SuspendTenantRequest {
                            name: "tenants/acme".into(),
                            reason: "unpaid invoices".into(),
                        },
                        &token,
                    ))
                    .await
                    .map(drop)
            } else {
                client
                    .reactivate_tenant(bearer(
                        pb::ReactivateTenantRequest {
                            name: "tenants/acme".into(),
                            reason: String::new(),
                        },
                        &token,
                    ))
                    .await
                    .map(drop)
            }
        }
    };
    set_suspended(true).await.expect("suspend");

    // Signing up there is refused, and writes nothing: no platform account either.
    let email = unique_email();
    let register = |host: Option<&str>| {
        let mut client = app.auth();
        let request = request_as(
            pb::RegisterRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                referral_code: String::new(),
            },
            host,
            None,
        );
        async move { client.register(request).await }
    };
    let users_before = count_rows(&app, "users").await;
    let err = register(Some(ACME_HOST)).await.unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TENANT_SUSPENDED");
    // In any letter case, as the host is matched.
    let err = register(Some("SMS.Acme.Test")).await.unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TENANT_SUSPENDED");
    assert_eq!(count_rows(&app, "users").await, users_before);
    assert!(app.mails().iter().all(|m| m["to"] != email.as_str()));

    // Anonymous reads at the host are refused the same way (as its customers are).
    let err = catalog(&app)
        .get_price(at_host(
            pb::GetPriceRequest {
                name: "services/whatsapp/prices/GB".into(),
            },
            ACME_HOST,
            None,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TENANT_SUSPENDED");
    let err = catalog(&app)
        .list_services(at_host(pb::ListServicesRequest::default(), ACME_HOST, None))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TENANT_SUSPENDED");
    let err = tenants(&app)
        .get_branding(at_host(pb::GetBrandingRequest::default(), ACME_HOST, None))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "TENANT_SUSPENDED");
    // Asked by name from elsewhere, the host shows the platform's branding.
    let branding = tenants(&app)
        .get_branding(pb::GetBrandingRequest {
            host: ACME_HOST.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(branding.tenant, "tenants/default");
    // The platform's own host is not affected.
    assert_eq!(price_at(&app, None, None).await, platform);

    // Reactivated, the host signs customers up for the tenant again (the refused address
    // too: nothing of it was kept).
    set_suspended(false).await.expect("reactivate");
    let user = register(Some(ACME_HOST))
        .await
        .expect("register at the reactivated host")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(count_rows(&app, "users").await, users_before + 1);
    let account = admin_client(&app)
        .get_user(bearer(
            pb::GetUserRequest {
                name: user.name.clone(),
            },
            &admin.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(account.tenant, "tenants/acme");
    let mail = app.nth_mail_to(&email, 1).await;
    assert_eq!(mail["from_name"], "Acme SMS");
    assert_eq!(
        price_at(&app, Some(ACME_HOST), None).await,
        marked_up(platform, 2_000)
    );
}

#[tokio::test]
async fn a_tenant_without_an_address_of_its_own_mails_in_its_name_with_the_platforms_links() {
    let app = spawn_app_with(&[("NAMASKAH_PUBLIC_URL", "https://namaskah.test")]).await;
    let admin = admin_session(&app).await;
    let (owner, _) = enterprise_owner(&app).await;
    create(
        &app,
        &admin.token,
        "acme",
        &owner,
        &[ACME_HOST],
        0,
        Some(pb::Branding {
            website_uri: String::new(),
            mail_sender_name: "Acme Support".into(),
            ..branding("Acme SMS", "#112233")
        }),
    )
    .await
    .expect("create acme");
    // With a host and no web site, links go to the host.
    let email = registered_at(&app, ACME_HOST).await;
    let welcome = app.nth_mail_to(&email, 1).await;
    assert_eq!(welcome["from_name"], "Acme Support");
    let text = welcome["text"].as_str().unwrap();
    assert!(text.contains("Welcome to Acme SMS."), "{text}");
    assert!(
        text.contains("https://sms.acme.test/verify-email?token="),
        "{text}"
    );

    // Without hosts either, the tenant still signs its mails; only the links are the
    // platform's.
    tenants(&app)
        .update_tenant(bearer(
            pb::UpdateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "tenants/acme".into(),
                    hosts: Vec::new(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["hosts".into()],
                }),
            },
            &admin.token,
        ))
        .await
        .expect("remove acme's hosts");
    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.clone(),
        })
        .await
        .expect("request a password reset");
    let reset = app.nth_mail_to(&email, 2).await;
    assert_eq!(reset["from_name"], "Acme Support");
    let text = reset["text"].as_str().unwrap();
    assert!(text.contains("your Acme SMS account"), "{text}");
    assert!(
        text.contains("https://namaskah.test/reset-password?token="),
        "{text}"
    );
}
