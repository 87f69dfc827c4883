//! Plans, subscriptions and usage-based billing through the real server: the plan table,
//! upgrades (full fee from starter, prorated by the second between paid plans), scheduled
//! downgrades and cancellations, renewals (once, whatever instances run the job), metering
//! of every authenticated call, usage alerts (once per threshold and period) and the
//! overage charged once when a period closes.
//!
//! Billing time is the application's own clock (`app.state.clock`), which tests move
//! forward; the billing jobs are run by hand (`renew_due`, `close_due`, `flush_usage`): the
//! background jobs are slowed to an hour, so nothing happens behind a test's back, except
//! in the one test that checks the background jobs themselves.
mod common;

use std::time::Duration;

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::catalog_service_client::CatalogServiceClient;
use namaskah_proto::v1::subscription_service_client::SubscriptionServiceClient;
use namaskah_server::billing::entities::{billing_periods, subscription_changes, usage_alerts};
use namaskah_server::wallet::entities::journal_entries;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

use pb::PlanTier::{Enterprise, Pro, Starter};

// ---------------------------------------------------------------------------------------
// Set-up and helpers
// ---------------------------------------------------------------------------------------

/// Quiet jobs (run by hand), no automatic SMS, the harness's raised limits.
async fn spawn() -> TestApp {
    spawn_app_with(&[
        ("NAMASKAH_JOB_INTERVAL", "1h"),
        ("NAMASKAH_USAGE_FLUSH", "1h"),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
    ])
    .await
}

/// As [`spawn`], with the enterprise allowance and overage price given (limits raised).
async fn spawn_enterprise(included: i64, per_thousand: i64) -> TestApp {
    let plans = format!(
        r#"[{{"plan": "enterprise", "included_api_calls": {included},
              "overage_per_thousand": {per_thousand}, "requests_per_minute": 1000000}},
            {{"plan": "starter", "requests_per_minute": 1000000}},
            {{"plan": "pro", "requests_per_minute": 1000000}}]"#
    );
    spawn_app_with(&[
        ("NAMASKAH_JOB_INTERVAL", "1h"),
        ("NAMASKAH_USAGE_FLUSH", "1h"),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ("NAMASKAH_PLANS", &plans),
    ])
    .await
}

/// With `NAMASKAH_USAGE_FLUSH=1h` a period closes this long after its end.
const CLOSE_GRACE: chrono::Duration = chrono::Duration::seconds(3 * 3_600 + 5);

fn subs(app: &TestApp) -> SubscriptionServiceClient<Channel> {
    SubscriptionServiceClient::new(app.channel.clone())
}

fn catalog(app: &TestApp) -> CatalogServiceClient<Channel> {
    CatalogServiceClient::new(app.channel.clone())
}

fn time(ts: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let ts = ts.as_ref().expect("a timestamp");
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32).expect("a valid timestamp")
}

fn stamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn cents(money: &Option<pb::Money>) -> i64 {
    let money = money.as_ref().expect("an amount");
    assert_eq!(money.currency_code, "USD");
    money.minor_units
}

fn tier(value: i32) -> pb::PlanTier {
    pb::PlanTier::try_from(value).expect("a known plan")
}

/// `amount × numerator ÷ denominator`, to the nearest cent, halves up (the contract's
/// rounding for proration and overage).
fn half_up(amount: i64, numerator: i64, denominator: i64) -> i64 {
    let product = i128::from(amount) * i128::from(numerator);
    let denominator = i128::from(denominator);
    ((product * 2 + denominator) / (denominator * 2)) as i64
}

fn add_months(t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    t.checked_add_months(Months::new(months)).expect("a date")
}

/// The UTC calendar month that contains `t`.
fn calendar_month(t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc
        .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .expect("a month start");
    (start, add_months(start, 1))
}

async fn me(app: &TestApp, token: &str) -> pb::User {
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, token))
        .await
        .expect("get me")
        .into_inner()
        .user
        .expect("a user")
}

fn id_of(user: &pb::User) -> Uuid {
    user.name
        .trim_start_matches("users/")
        .parse()
        .expect("a user id")
}

async fn subscription(app: &TestApp, token: &str) -> pb::Subscription {
    subs(app)
        .get_subscription(bearer(pb::GetSubscriptionRequest {}, token))
        .await
        .expect("get subscription")
        .into_inner()
        .subscription
        .expect("a subscription")
}

async fn change_plan(
    app: &TestApp,
    token: &str,
    plan: pb::PlanTier,
    request_id: &str,
) -> Result<pb::ChangePlanResponse, Status> {
    subs(app)
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: plan as i32,
                request_id: request_id.to_owned(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// `ChangePlan` with a fresh request id, expected to succeed.
async fn change(app: &TestApp, token: &str, plan: pb::PlanTier) -> pb::ChangePlanResponse {
    change_plan(app, token, plan, &Uuid::new_v4().to_string())
        .await
        .unwrap_or_else(|status| panic!("change to {plan:?}: {status:?}"))
}

async fn cancel(app: &TestApp, token: &str) -> Result<pb::Subscription, Status> {
    subs(app)
        .cancel_subscription(bearer(pb::CancelSubscriptionRequest {}, token))
        .await
        .map(|r| r.into_inner().subscription.expect("a subscription"))
}

async fn usage_at(
    app: &TestApp,
    token: &str,
    at: Option<DateTime<Utc>>,
) -> Result<pb::Usage, Status> {
    subs(app)
        .get_usage(bearer(
            pb::GetUsageRequest {
                period_time: at.map(stamp),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().usage.expect("a usage"))
}

async fn usage(app: &TestApp, token: &str) -> pb::Usage {
    usage_at(app, token, None).await.expect("get usage")
}

async fn set_alerts(
    app: &TestApp,
    token: &str,
    thresholds: &[i32],
) -> Result<pb::UsageAlert, Status> {
    subs(app)
        .set_usage_alert(bearer(
            pb::SetUsageAlertRequest {
                threshold_percents: thresholds.to_vec(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().usage_alert.expect("a usage alert"))
}

/// `n` metered calls (`GetMe`).
async fn calls(app: &TestApp, token: &str, n: usize) {
    for _ in 0..n {
        me(app, token).await;
    }
}

async fn flush(app: &TestApp) {
    app.state.billing.flush_usage().await.expect("usage flush");
}

/// The account's recorded plan changes, oldest first: (actor, kind, from, to, charged).
async fn changes(app: &TestApp, user: Uuid) -> Vec<(String, String, String, String, i64)> {
    subscription_changes::Entity::find()
        .filter(subscription_changes::Column::UserId.eq(user))
        .order_by_asc(subscription_changes::Column::CreatedAt)
        .order_by_asc(subscription_changes::Column::Id)
        .all(&app.state.db)
        .await
        .expect("subscription changes")
        .into_iter()
        .map(|c| (c.actor, c.kind, c.from_plan, c.to_plan, c.charged))
        .collect()
}

fn change_row(
    actor: &str,
    kind: &str,
    from: &str,
    to: &str,
    charged: i64,
) -> (String, String, String, String, i64) {
    (actor.into(), kind.into(), from.into(), to.into(), charged)
}

/// Journal entries of the account of `kind`.
async fn entries_of_kind(app: &TestApp, user: Uuid, kind: &str) -> u64 {
    journal_entries::Entity::find()
        .filter(journal_entries::Column::UserId.eq(user))
        .filter(journal_entries::Column::Kind.eq(kind))
        .count(&app.state.db)
        .await
        .expect("count entries")
}

/// Journal entries with this business key (0 or 1).
async fn entries_keyed(app: &TestApp, key: &str) -> u64 {
    journal_entries::Entity::find()
        .filter(journal_entries::Column::BusinessKey.eq(key))
        .count(&app.state.db)
        .await
        .expect("count entries")
}

async fn alert_rows(app: &TestApp, user: Uuid) -> Vec<usage_alerts::Model> {
    usage_alerts::Entity::find()
        .filter(usage_alerts::Column::UserId.eq(user))
        .order_by_asc(usage_alerts::Column::Threshold)
        .all(&app.state.db)
        .await
        .expect("usage alerts")
}

/// Every mail to `to` whose subject contains `part`, after the mail being sent has gone.
async fn mails_about(app: &TestApp, to: &str, part: &str) -> Vec<serde_json::Value> {
    app.state.outbox.drain().await;
    app.mails()
        .into_iter()
        .filter(|m| m["to"] == to && m["subject"].as_str().unwrap_or("").contains(part))
        .collect()
}

/// The subscription without `update_time` (which moves with every change).
fn without_update_time(sub: &pb::Subscription) -> pb::Subscription {
    pb::Subscription {
        update_time: None,
        ..sub.clone()
    }
}

async fn price(app: &TestApp, token: &str, name: &str) -> pb::Price {
    catalog(app)
        .get_price(bearer(pb::GetPriceRequest { name: name.into() }, token))
        .await
        .expect("get price")
        .into_inner()
        .price
        .expect("a price")
}

// ---------------------------------------------------------------------------------------
// The plans
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_plans_are_public_cheapest_first_with_the_spec_terms() {
    // The SPEC's terms exactly: no overrides (an empty list keeps every default).
    let app = spawn_app_with(&[("NAMASKAH_PLANS", "[]")]).await;
    let plans = subs(&app)
        .list_plans(pb::ListPlansRequest {})
        .await
        .expect("ListPlans needs no credentials")
        .into_inner()
        .plans;
    assert_eq!(plans.len(), 3, "{plans:?}");

    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["plans/starter", "plans/pro", "plans/enterprise"]);
    let tiers: Vec<pb::PlanTier> = plans.iter().map(|p| tier(p.tier)).collect();
    assert_eq!(tiers, [Starter, Pro, Enterprise]);
    let display: Vec<&str> = plans.iter().map(|p| p.display_name.as_str()).collect();
    assert_eq!(display, ["Starter", "Pro", "Enterprise"]);
    let fees: Vec<i64> = plans.iter().map(|p| cents(&p.monthly_fee)).collect();
    assert_eq!(fees, [0, 2_900, 29_900]);
    assert!(fees.windows(2).all(|w| w[0] <= w[1]), "cheapest first");
    let rpm: Vec<i32> = plans.iter().map(|p| p.requests_per_minute).collect();
    assert_eq!(rpm, [100, 500, 2_000]);
    let discounts: Vec<i32> = plans.iter().map(|p| p.discount_basis_points).collect();
    assert_eq!(discounts, [0, 2_000, 3_500]);

    // Usage billing and white-label are enterprise's alone.
    for plan in &plans[..2] {
        assert!(!plan.usage_billing, "{plan:?}");
        assert_eq!(plan.included_api_calls, 0, "{plan:?}");
        assert!(plan.overage_price_per_thousand_calls.is_none(), "{plan:?}");
        assert!(!plan.white_label, "{plan:?}");
    }
    let enterprise = &plans[2];
    assert!(enterprise.usage_billing);
    assert_eq!(enterprise.included_api_calls, 1_000_000);
    assert_eq!(cents(&enterprise.overage_price_per_thousand_calls), 50);
    assert!(enterprise.white_label);

    // The same with credentials.
    let (_, token) = app.signed_in().await;
    let again = subs(&app)
        .list_plans(bearer(pb::ListPlansRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
        .plans;
    assert_eq!(again, plans);
}

#[tokio::test]
async fn the_plans_follow_the_configuration() {
    let app = spawn_enterprise(10, 1_234).await;
    let plans = subs(&app)
        .list_plans(pb::ListPlansRequest {})
        .await
        .unwrap()
        .into_inner()
        .plans;
    let enterprise = &plans[2];
    assert_eq!(enterprise.included_api_calls, 10);
    assert_eq!(cents(&enterprise.overage_price_per_thousand_calls), 1_234);
    assert_eq!(enterprise.requests_per_minute, 1_000_000);
    assert_eq!(
        cents(&enterprise.monthly_fee),
        29_900,
        "what is not named keeps its default"
    );
}

// ---------------------------------------------------------------------------------------
// Subscriptions and plan changes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_account_is_on_starter_for_the_calendar_month() {
    let app = spawn().await;
    let (_, token) = app.signed_in().await;
    let user = me(&app, &token).await;
    assert_eq!(tier(user.plan), Starter);

    // An hour later (billing time), the subscription is still the one the account got
    // when it was created.
    app.state.clock.advance(Duration::from_secs(3_600));
    let now = app.state.clock.now();
    let sub = subscription(&app, &token).await;
    assert_eq!(sub.name, format!("{}/subscription", user.name));
    assert_eq!(tier(sub.plan), Starter);
    let (start, end) = calendar_month(now);
    assert_eq!(time(&sub.current_period_start_time), start);
    assert_eq!(time(&sub.current_period_end_time), end);
    assert_eq!(sub.scheduled_plan, 0, "nothing scheduled");
    assert!(!sub.cancel_at_period_end);
    assert_eq!(cents(&sub.next_renewal_fee), 0);
    assert!(sub.update_time.is_some());
    let created = time(&user.create_time);
    let plan_start = time(&sub.plan_start_time);
    assert!(
        (plan_start - created).num_seconds().abs() <= 1,
        "starter took effect when the account was created ({created}), not at {plan_start}"
    );

    // Reading it again changes nothing.
    assert_eq!(subscription(&app, &token).await, sub);

    // Without credentials there is no subscription to read.
    let err = subs(&app)
        .get_subscription(pb::GetSubscriptionRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

#[tokio::test]
async fn upgrading_to_pro_charges_the_fee_and_takes_effect_at_once() {
    let app = spawn().await;
    let token = app.funded(5_000).await;
    let user = id_of(&me(&app, &token).await);

    let before = app.state.clock.now();
    let answer = change(&app, &token, Pro).await;
    let after = app.state.clock.now();

    assert_eq!(cents(&answer.charged), 2_900, "the full fee from starter");
    let effective = time(&answer.effective_time);
    assert!(before <= effective && effective <= after, "{effective}");
    let sub = answer.subscription.clone().expect("a subscription");
    assert_eq!(tier(sub.plan), Pro);
    // A monthly period of its own, from now.
    let start = time(&sub.current_period_start_time);
    let end = time(&sub.current_period_end_time);
    assert!(
        (start - effective).num_milliseconds().abs() < 1,
        "{start} vs {effective}"
    );
    assert_eq!(end, add_months(start, 1));
    assert!(
        (time(&sub.plan_start_time) - effective)
            .num_milliseconds()
            .abs()
            < 1
    );
    assert_eq!(sub.scheduled_plan, 0);
    assert!(!sub.cancel_at_period_end);
    assert_eq!(cents(&sub.next_renewal_fee), 2_900);

    // Paid from the wallet, once, as a subscription fee.
    assert_eq!(app.balance(&token).await, 2_100);
    assert_eq!(entries_of_kind(&app, user, "subscription_fee").await, 1);

    // GetSubscription says the same as the answer, and the account is on pro everywhere.
    assert_eq!(
        subscription(&app, &token).await,
        sub,
        "GetSubscription agrees with ChangePlan"
    );
    assert_eq!(tier(me(&app, &token).await.plan), Pro);

    assert_eq!(
        changes(&app, user).await,
        [change_row(
            &format!("user:{user}"),
            "upgrade",
            "starter",
            "pro",
            2_900
        )]
    );

    // The fee is spent in the new period, which is the one GetUsage reports now.
    let used = usage(&app, &token).await;
    assert_eq!(tier(used.plan), Pro);
    assert_eq!(
        time(&used.period_start_time),
        time(&sub.current_period_start_time)
    );
    assert_eq!(time(&used.period_end_time), end);
    assert_eq!(cents(&used.spend), 2_900);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn an_upgrade_between_paid_plans_is_prorated_by_the_second() {
    let app = spawn().await;
    let token = app.funded(40_000).await;
    let user = id_of(&me(&app, &token).await);
    change(&app, &token, Pro).await;
    let pro = subscription(&app, &token).await; // as stored
    let (start, end) = (
        time(&pro.current_period_start_time),
        time(&pro.current_period_end_time),
    );
    assert_eq!(app.balance(&token).await, 40_000 - 2_900);

    // Ten days, three hours and a few seconds into the period.
    set_clocks(
        &[&app],
        start + chrono::Duration::seconds(10 * 86_400 + 3 * 3_600 + 17),
    )
    .await;
    let before = app.state.clock.now();
    let answer = change(&app, &token, Enterprise).await;
    let after = app.state.clock.now();

    let effective = time(&answer.effective_time);
    assert!(before <= effective && effective <= after, "{effective}");
    let sub = answer.subscription.clone().unwrap();
    assert_eq!(tier(sub.plan), Enterprise);
    // The period does not move: the upgrade pays for the rest of it.
    assert_eq!(time(&sub.current_period_start_time), start);
    assert_eq!(time(&sub.current_period_end_time), end);
    assert_eq!(cents(&sub.next_renewal_fee), 29_900);

    let total = (end - start).num_seconds();
    let remaining = (end - effective).num_seconds();
    let expected = half_up(29_900 - 2_900, remaining, total);
    let charged = cents(&answer.charged);
    assert_eq!(charged, expected, "{remaining} s of {total} s of 270.00");
    // Sanity: about two thirds of the difference in a 28- to 31-day month.
    assert!((16_000..=18_500).contains(&charged), "{charged}");

    assert_eq!(app.balance(&token).await, 40_000 - 2_900 - charged);
    assert_eq!(tier(me(&app, &token).await.plan), Enterprise);
    let stored = subscription(&app, &token).await;
    assert_eq!(tier(stored.plan), Enterprise);
    assert_eq!(time(&stored.current_period_end_time), end);
    assert_eq!(
        changes(&app, user).await,
        [
            change_row(&format!("user:{user}"), "upgrade", "starter", "pro", 2_900),
            change_row(
                &format!("user:{user}"),
                "upgrade",
                "pro",
                "enterprise",
                charged
            ),
        ]
    );
    assert_eq!(entries_of_kind(&app, user, "subscription_fee").await, 2);

    // An upgrade to enterprise brings its allowance for the whole period.
    let used = usage(&app, &token).await;
    assert_eq!(tier(used.plan), Enterprise);
    assert_eq!(time(&used.period_start_time), start);
    assert_eq!(used.included_api_calls, 1_000_000);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn the_catalog_discount_applies_at_once() {
    let app = spawn().await;
    let token = app.funded(50_000).await;
    let name = "services/whatsapp/prices/GB";

    let list = price(&app, &token, name).await;
    assert_eq!(tier(list.plan), Starter);
    assert_eq!(list.discount_basis_points, 0);
    let list_price = cents(&list.list_price);
    assert_eq!(cents(&list.price), list_price);

    change(&app, &token, Pro).await;
    let quote = price(&app, &token, name).await;
    assert_eq!(tier(quote.plan), Pro);
    assert_eq!(quote.discount_basis_points, 2_000);
    assert_eq!(cents(&quote.list_price), list_price);
    let pro_price = half_up(list_price, 8_000, 10_000).max(1);
    assert_eq!(cents(&quote.price), pro_price);

    // What a verification holds is that price.
    let before = app.balance(&token).await;
    let v = app
        .buy(&token, "whatsapp", "GB")
        .await
        .expect("buy a number");
    assert_eq!(cents(&v.price), pro_price);
    assert_eq!(app.balance(&token).await, before - pro_price);

    change(&app, &token, Enterprise).await;
    let quote = price(&app, &token, name).await;
    assert_eq!(tier(quote.plan), Enterprise);
    assert_eq!(quote.discount_basis_points, 3_500);
    assert_eq!(
        cents(&quote.price),
        half_up(list_price, 6_500, 10_000).max(1)
    );
}

#[tokio::test]
async fn a_replayed_change_returns_the_first_answer_and_charges_once() {
    let app = spawn().await;
    let token = app.funded(40_000).await;
    let user = id_of(&me(&app, &token).await);
    let request_id = Uuid::new_v4().to_string();

    // Several at once with the same key: one change, one charge, the same answer for all.
    let answers =
        futures::future::join_all((0..6).map(|_| change_plan(&app, &token, Pro, &request_id)))
            .await;
    let answers: Vec<pb::ChangePlanResponse> = answers
        .into_iter()
        .map(|a| a.expect("every retry of the same request gets its answer"))
        .collect();
    let first = answers[0].clone();
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    assert_eq!(cents(&first.charged), 2_900);

    // Later, the same again.
    app.state.clock.advance(Duration::from_secs(3_600));
    let replay = change_plan(&app, &token, Pro, &request_id).await.unwrap();
    assert_eq!(replay, first, "the identical first answer");
    assert_eq!(app.balance(&token).await, 40_000 - 2_900);
    assert_eq!(entries_of_kind(&app, user, "subscription_fee").await, 1);
    assert_eq!(changes(&app, user).await.len(), 1);

    // The same key for another plan.
    let err = change_plan(&app, &token, Enterprise, &request_id)
        .await
        .unwrap_err();
    assert_error(&err, Code::AlreadyExists, "IDEMPOTENCY_CONFLICT");
    assert_eq!(tier(subscription(&app, &token).await.plan), Pro);
    assert_eq!(app.balance(&token).await, 40_000 - 2_900);

    // The same key on another account is another request.
    let other = app.funded(3_000).await;
    let theirs = change_plan(&app, &other, Pro, &request_id).await.unwrap();
    assert_eq!(cents(&theirs.charged), 2_900);
    assert_eq!(app.balance(&other).await, 100);

    // Malformed requests name their fields, and change nothing.
    let err = change_plan(&app, &token, Enterprise, "").await.unwrap_err();
    assert_invalid_fields(&err, &["request_id"]);
    let err = change_plan(&app, &token, pb::PlanTier::Unspecified, "k-1")
        .await
        .unwrap_err();
    assert_invalid_fields(&err, &["plan"]);
    let err = change_plan(&app, &token, pb::PlanTier::Unspecified, "")
        .await
        .unwrap_err();
    assert_invalid_fields(&err, &["plan", "request_id"]);
    let err = change_plan(&app, &token, Enterprise, "not ok!")
        .await
        .unwrap_err();
    assert_invalid_fields(&err, &["request_id"]);
    let err = change_plan(&app, &token, Enterprise, &"k".repeat(65))
        .await
        .unwrap_err();
    assert_invalid_fields(&err, &["request_id"]);
    let err = subs(&app)
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: 42,
                request_id: "k-2".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_invalid(&err, "plan");
    assert_eq!(tier(subscription(&app, &token).await.plan), Pro);
    assert_eq!(changes(&app, user).await.len(), 1);
    assert_eq!(app.balance(&token).await, 40_000 - 2_900);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn an_upgrade_the_wallet_cannot_pay_changes_nothing() {
    let app = spawn().await;
    let token = app.funded(2_899).await;
    let user = id_of(&me(&app, &token).await);
    let sub = subscription(&app, &token).await;

    let err = change_plan(&app, &token, Pro, "upgrade-1")
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    let err = change_plan(&app, &token, Enterprise, "upgrade-2")
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");

    assert_eq!(app.balance(&token).await, 2_899);
    assert_eq!(
        subscription(&app, &token).await,
        sub,
        "the subscription is untouched"
    );
    assert_eq!(tier(me(&app, &token).await.plan), Starter);
    assert!(changes(&app, user).await.is_empty(), "no change recorded");
    assert_eq!(entries_of_kind(&app, user, "subscription_fee").await, 0);

    // Pro → enterprise mid-period with too little left for the prorated difference.
    let token = app.funded(3_000).await;
    let user = id_of(&me(&app, &token).await);
    change(&app, &token, Pro).await;
    let sub = subscription(&app, &token).await;
    let err = change_plan(&app, &token, Enterprise, "upgrade-3")
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    assert_eq!(app.balance(&token).await, 100);
    assert_eq!(subscription(&app, &token).await, sub);
    assert_eq!(tier(me(&app, &token).await.plan), Pro);
    assert_eq!(changes(&app, user).await.len(), 1);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn upgrades_need_a_verified_email() {
    let app = spawn().await;
    let (_, token) = app.signed_in().await;
    let user = id_of(&me(&app, &token).await);
    for plan in [Pro, Enterprise] {
        let err = change_plan(&app, &token, plan, &Uuid::new_v4().to_string())
            .await
            .unwrap_err();
        assert_error(&err, Code::FailedPrecondition, "EMAIL_NOT_VERIFIED");
    }
    // Nothing to downgrade or cancel on starter.
    let err = change_plan(&app, &token, Starter, "same")
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "PLAN_UNCHANGED");
    let err = cancel(&app, &token).await.unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "NO_PAID_PLAN");
    assert_eq!(tier(subscription(&app, &token).await.plan), Starter);
    assert!(changes(&app, user).await.is_empty());
}

#[tokio::test]
async fn a_downgrade_is_scheduled_for_the_period_end_and_can_be_cleared() {
    let app = spawn().await;
    let token = app.funded(40_000).await;
    let user = id_of(&me(&app, &token).await);
    change(&app, &token, Enterprise).await;
    let ent = subscription(&app, &token).await;
    let end = time(&ent.current_period_end_time);
    let balance = app.balance(&token).await;
    assert_eq!(balance, 40_000 - 29_900);

    let down = change(&app, &token, Pro).await;
    assert_eq!(cents(&down.charged), 0);
    assert_eq!(
        time(&down.effective_time),
        end,
        "takes effect at the period end"
    );
    let sub = down.subscription.unwrap();
    assert_eq!(tier(sub.plan), Enterprise, "enterprise until then");
    assert_eq!(tier(sub.scheduled_plan), Pro);
    assert!(!sub.cancel_at_period_end);
    assert_eq!(cents(&sub.next_renewal_fee), 2_900);
    assert_eq!(time(&sub.current_period_end_time), end);
    assert_eq!(
        without_update_time(&subscription(&app, &token).await),
        without_update_time(&sub)
    );
    assert_eq!(tier(me(&app, &token).await.plan), Enterprise);
    assert_eq!(app.balance(&token).await, balance);

    // A downgrade to starter replaces it.
    let down = change(&app, &token, Starter).await;
    let sub = down.subscription.unwrap();
    assert_eq!(tier(sub.scheduled_plan), Starter);
    assert_eq!(cents(&sub.next_renewal_fee), 0);

    // Asking for the current plan clears it.
    let kept = change(&app, &token, Enterprise).await;
    assert_eq!(cents(&kept.charged), 0);
    let sub = kept.subscription.unwrap();
    assert_eq!(tier(sub.plan), Enterprise);
    assert_eq!(sub.scheduled_plan, 0);
    assert_eq!(cents(&sub.next_renewal_fee), 29_900);
    assert_eq!(time(&sub.current_period_end_time), end);
    // Then again, with nothing scheduled: unchanged.
    let err = change_plan(&app, &token, Enterprise, "again")
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "PLAN_UNCHANGED");
    assert_eq!(
        app.balance(&token).await,
        balance,
        "no charge for any of it"
    );

    // Schedule pro for good, and let the period end: the renewal is at pro's fee.
    change(&app, &token, Pro).await;
    set_clocks(&[&app], end + chrono::Duration::seconds(1)).await;
    app.state.billing.renew_due().await.unwrap();
    let renewed = subscription(&app, &token).await;
    assert_eq!(tier(renewed.plan), Pro);
    assert_eq!(renewed.scheduled_plan, 0);
    assert_eq!(time(&renewed.current_period_start_time), end);
    assert_eq!(
        time(&renewed.current_period_end_time),
        add_months(time(&ent.current_period_start_time), 2)
    );
    assert_eq!(cents(&renewed.next_renewal_fee), 2_900);
    assert_eq!(app.balance(&token).await, balance - 2_900);
    assert_eq!(tier(me(&app, &token).await.plan), Pro);

    let actor = format!("user:{user}");
    assert_eq!(
        changes(&app, user).await,
        [
            change_row(&actor, "upgrade", "starter", "enterprise", 29_900),
            change_row(&actor, "downgrade_scheduled", "enterprise", "pro", 0),
            change_row(&actor, "downgrade_scheduled", "enterprise", "starter", 0),
            change_row(&actor, "schedule_cleared", "enterprise", "enterprise", 0),
            change_row(&actor, "downgrade_scheduled", "enterprise", "pro", 0),
            change_row("system", "downgrade", "enterprise", "pro", 2_900),
        ]
    );
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_cancelled_plan_ends_with_its_period_without_a_charge() {
    let app = spawn().await;
    let token = app.funded(5_000).await;
    let user = id_of(&me(&app, &token).await);
    let err = cancel(&app, &token).await.unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "NO_PAID_PLAN");

    change(&app, &token, Pro).await;
    let pro = subscription(&app, &token).await;
    let end = time(&pro.current_period_end_time);

    let cancelled = cancel(&app, &token).await.unwrap();
    assert_eq!(
        tier(cancelled.plan),
        Pro,
        "the plan stays until the period ends"
    );
    assert!(cancelled.cancel_at_period_end);
    assert_eq!(tier(cancelled.scheduled_plan), Starter);
    assert_eq!(cents(&cancelled.next_renewal_fee), 0);
    assert_eq!(time(&cancelled.current_period_end_time), end);
    assert_eq!(
        without_update_time(&cancelled),
        without_update_time(&subscription(&app, &token).await)
    );

    // Twice: unchanged, nothing recorded again.
    let stored = subscription(&app, &token).await;
    assert_eq!(cancel(&app, &token).await.unwrap(), stored);
    assert_eq!(changes(&app, user).await.len(), 2);

    // ChangePlan to the current plan undoes it; cancelling again schedules it again.
    let undone = change(&app, &token, Pro).await.subscription.unwrap();
    assert!(!undone.cancel_at_period_end);
    assert_eq!(undone.scheduled_plan, 0);
    assert_eq!(cents(&undone.next_renewal_fee), 2_900);
    assert!(cancel(&app, &token).await.unwrap().cancel_at_period_end);
    assert_eq!(app.balance(&token).await, 2_100);

    // Just before the end nothing happens; at the end the account moves to starter.
    set_clocks(&[&app], end - chrono::Duration::seconds(5)).await;
    assert_eq!(app.state.billing.renew_due().await.unwrap(), 0);
    assert_eq!(tier(subscription(&app, &token).await.plan), Pro);
    set_clocks(&[&app], end).await;
    app.state.billing.renew_due().await.unwrap();

    let after = subscription(&app, &token).await;
    assert_eq!(tier(after.plan), Starter);
    assert!(!after.cancel_at_period_end);
    assert_eq!(after.scheduled_plan, 0);
    assert_eq!(cents(&after.next_renewal_fee), 0);
    assert_eq!(time(&after.current_period_start_time), end);
    assert_eq!(time(&after.current_period_end_time), calendar_month(end).1);
    assert_eq!(time(&after.plan_start_time), end);
    assert_eq!(tier(me(&app, &token).await.plan), Starter);
    assert_eq!(
        app.balance(&token).await,
        2_100,
        "nothing charged, nothing refunded"
    );
    assert_eq!(entries_of_kind(&app, user, "subscription_fee").await, 1);
    assert_eq!(
        price(&app, &token, "services/whatsapp/prices/GB")
            .await
            .discount_basis_points,
        0,
        "list prices again"
    );

    let actor = format!("user:{user}");
    assert_eq!(
        changes(&app, user).await,
        [
            change_row(&actor, "upgrade", "starter", "pro", 2_900),
            change_row(&actor, "cancel_scheduled", "pro", "starter", 0),
            change_row(&actor, "schedule_cleared", "pro", "pro", 0),
            change_row(&actor, "cancel_scheduled", "pro", "starter", 0),
            change_row("system", "cancelled", "pro", "starter", 0),
        ]
    );
    // Nothing more to renew.
    assert_eq!(app.state.billing.renew_due().await.unwrap(), 0);
    assert_books_balance(&app.state.db).await;
}

// ---------------------------------------------------------------------------------------
// Renewals
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_renewal_charges_once_whatever_instances_run_it() {
    let app = spawn().await;
    let peer = app.spawn_peer().await;
    let token = app.funded(10_000).await;
    let user = id_of(&me(&app, &token).await);
    change(&app, &token, Pro).await;
    let first = subscription(&app, &token).await;
    let anchor = time(&first.current_period_start_time);
    let end = time(&first.current_period_end_time);
    assert_eq!(app.balance(&token).await, 7_100);

    set_clocks(&[&app, &peer], end + chrono::Duration::seconds(30)).await;
    let (a, b) = tokio::join!(
        app.state.billing.renew_due(),
        peer.state.billing.renew_due()
    );
    let renewed = a.unwrap() + b.unwrap();
    assert!(renewed <= 1, "renewed {renewed} times");

    assert_eq!(app.balance(&token).await, 7_100 - 2_900, "charged once");
    let key = format!("renewal:{user}:{}", end.timestamp_millis());
    assert_eq!(entries_keyed(&app, &key).await, 1, "one entry under {key}");
    let sub = subscription(&app, &token).await;
    assert_eq!(tier(sub.plan), Pro);
    assert_eq!(time(&sub.current_period_start_time), end);
    assert_eq!(time(&sub.current_period_end_time), add_months(anchor, 2));
    assert_eq!(time(&sub.plan_start_time), time(&first.plan_start_time));

    // Again on both: nothing more is due.
    let (a, b) = tokio::join!(
        app.state.billing.renew_due(),
        peer.state.billing.renew_due()
    );
    assert_eq!(a.unwrap() + b.unwrap(), 0);
    assert_eq!(app.balance(&token).await, 4_200);

    // The next period end: charged once more, at the anchor's day.
    set_clocks(&[&app, &peer], add_months(anchor, 2)).await;
    let (a, b) = tokio::join!(
        peer.state.billing.renew_due(),
        app.state.billing.renew_due()
    );
    assert!(a.unwrap() + b.unwrap() <= 1);
    assert_eq!(app.balance(&token).await, 1_300);
    let sub = subscription(&app, &token).await;
    assert_eq!(time(&sub.current_period_start_time), add_months(anchor, 2));
    assert_eq!(time(&sub.current_period_end_time), add_months(anchor, 3));

    let renewals: Vec<_> = changes(&app, user)
        .await
        .into_iter()
        .filter(|c| c.1 == "renewal")
        .collect();
    assert_eq!(
        renewals,
        [
            change_row("system", "renewal", "pro", "pro", 2_900),
            change_row("system", "renewal", "pro", "pro", 2_900),
        ]
    );
    assert_eq!(entries_of_kind(&app, user, "subscription_fee").await, 3);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_renewal_the_wallet_cannot_pay_moves_the_account_to_starter_with_a_mail() {
    let app = spawn().await;
    let token = app.funded(2_900).await;
    let user = me(&app, &token).await;
    let id = id_of(&user);
    change(&app, &token, Pro).await;
    assert_eq!(app.balance(&token).await, 0);
    let end = time(&subscription(&app, &token).await.current_period_end_time);

    set_clocks(&[&app], end + chrono::Duration::seconds(1)).await;
    app.state.billing.renew_due().await.unwrap();

    let sub = subscription(&app, &token).await;
    assert_eq!(tier(sub.plan), Starter);
    assert_eq!(time(&sub.current_period_start_time), end);
    assert_eq!(time(&sub.current_period_end_time), calendar_month(end).1);
    assert_eq!(cents(&sub.next_renewal_fee), 0);
    assert_eq!(tier(me(&app, &token).await.plan), Starter);
    assert_eq!(app.balance(&token).await, 0);
    assert_eq!(
        entries_keyed(&app, &format!("renewal:{id}:{}", end.timestamp_millis())).await,
        0
    );
    assert_eq!(entries_of_kind(&app, id, "subscription_fee").await, 1);
    assert_eq!(
        changes(&app, id).await.last().cloned(),
        Some(change_row("system", "renewal_failed", "pro", "starter", 0))
    );

    let mails = mails_about(&app, &user.email, "Starter").await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["subject"], "Your Namaskah plan is now Starter");
    assert!(
        mails[0]["text"].as_str().unwrap().contains("$29.00"),
        "{}",
        mails[0]
    );

    // Running the job again neither charges nor mails.
    assert_eq!(app.state.billing.renew_due().await.unwrap(), 0);
    assert_eq!(mails_about(&app, &user.email, "Starter").await.len(), 1);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn the_renewal_fee_is_spend_of_the_period_it_pays_for() {
    let app = spawn().await;
    let token = app.funded(10_000).await;
    change(&app, &token, Pro).await;
    let end = time(&subscription(&app, &token).await.current_period_end_time);
    set_clocks(&[&app], end + chrono::Duration::seconds(1)).await;
    app.state.billing.renew_due().await.unwrap();
    assert_eq!(app.balance(&token).await, 10_000 - 2 * 2_900);

    let old = usage_at(&app, &token, Some(end - chrono::Duration::seconds(1)))
        .await
        .unwrap();
    let new = usage(&app, &token).await;
    assert_eq!(time(&new.period_start_time), end);
    assert_eq!(
        (cents(&old.spend), cents(&new.spend)),
        (2_900, 2_900),
        "each period's fee is spent in that period"
    );
}

#[tokio::test]
async fn the_background_jobs_renew_without_help() {
    let app = spawn_app_with(&[
        ("NAMASKAH_JOB_INTERVAL", "100ms"),
        ("NAMASKAH_USAGE_FLUSH", "100ms"),
    ])
    .await;
    let token = app.funded(10_000).await;
    change(&app, &token, Pro).await;
    let end = time(&subscription(&app, &token).await.current_period_end_time);
    set_clocks(&[&app], end + chrono::Duration::seconds(1)).await;

    let mut renewed = None;
    for _ in 0..200 {
        let sub = subscription(&app, &token).await;
        if time(&sub.current_period_start_time) == end {
            renewed = Some(sub);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sub = renewed.expect("the job renewed the plan within 5 s");
    assert_eq!(tier(sub.plan), Pro);
    assert_eq!(app.balance(&token).await, 10_000 - 2 * 2_900);
    assert_books_balance(&app.state.db).await;
}

// ---------------------------------------------------------------------------------------
// Metering and periods
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_authenticated_call_is_metered_once_across_instances() {
    let app = spawn().await;
    let peer = app.spawn_peer().await;
    // Register and Login are limited per address, not per account: not metered.
    let (_, token) = app.signed_in().await;

    calls(&app, &token, 20).await; // 20
    let key = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "metering".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret; // 21
    for _ in 0..5 {
        app.auth()
            .get_me(with_key(pb::GetMeRequest {}, &key))
            .await
            .unwrap(); // 26
    }
    // Calls the handler refuses still passed the limiter: they count.
    for _ in 0..2 {
        let err = app
            .verifications()
            .get_verification(bearer(
                pb::GetVerificationRequest {
                    name: format!("verifications/{}", Uuid::new_v4()),
                },
                &token,
            ))
            .await
            .unwrap_err(); // 28
        assert_ne!(err.code(), Code::ResourceExhausted);
    }
    // Calls without credentials are not the account's.
    for _ in 0..3 {
        subs(&app)
            .list_plans(pb::ListPlansRequest {})
            .await
            .unwrap();
    }
    // Another instance counts its own calls for the same account.
    calls(&peer, &token, 4).await; // 32
    flush(&app).await;
    flush(&peer).await;

    let first = usage(&app, &token).await; // 33
    assert_eq!(first.api_calls, 33);
    assert_eq!(tier(first.plan), Starter);
    assert_eq!(first.verifications, 0);
    assert_eq!(cents(&first.spend), 0);
    assert_eq!(first.included_api_calls, 0);
    assert_eq!(first.overage_api_calls, 0);
    assert_eq!(cents(&first.overage_charge), 0);
    assert_eq!(first.allowance_used_percent, 0);
    assert_eq!(first.alert_threshold_percents, [50, 80, 100]);
    assert!(first.crossed_threshold_percents.is_empty());
    let (start, end) = calendar_month(app.state.clock.now());
    assert_eq!(time(&first.period_start_time), start);
    assert_eq!(time(&first.period_end_time), end);

    // Not flushed yet, this instance's own calls are included.
    assert_eq!(usage(&app, &token).await.api_calls, 34);
    flush(&app).await;
    // Every instance reads the same figure once flushed.
    assert_eq!(usage(&peer, &token).await.api_calls, 35);
    flush(&peer).await;
    flush(&app).await;
    let rows = billing_periods::Entity::find()
        .filter(billing_periods::Column::UserId.eq(id_of(&me(&app, &token).await)))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].api_calls, 35);
}

#[tokio::test]
async fn usage_counts_verifications_and_spend() {
    let app = spawn().await;
    let token = app.funded(10_000).await;
    change(&app, &token, Pro).await;

    let kept = app.buy(&token, "whatsapp", "GB").await.unwrap();
    let got = app
        .inject(&token, &kept.phone_number, "Your code is 482913", None)
        .await
        .unwrap();
    assert!(!got.ignored);
    let cancelled = app.buy(&token, "telegram", "US").await.unwrap();
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: cancelled.name.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    let held = app.buy(&token, "telegram", "US").await.unwrap();

    let used = usage(&app, &token).await;
    assert_eq!(used.verifications, 3);
    assert_eq!(
        cents(&used.spend),
        2_900 + cents(&kept.price),
        "the fee and the captured price; no refund, no hold ({})",
        cents(&held.price)
    );
}

#[tokio::test]
async fn a_call_at_a_calendar_month_end_counts_in_the_next_month() {
    let app = spawn().await;
    let (_, token) = app.signed_in().await;
    // The end of next month, as the month boundary.
    let (_, this_end) = calendar_month(app.state.clock.now());
    let (start, end) = calendar_month(this_end);
    let next_end = add_months(end, 1);

    set_clocks(&[&app], end - chrono::Duration::seconds(3)).await;
    calls(&app, &token, 3).await;
    set_clocks(&[&app], end).await;
    calls(&app, &token, 4).await;
    flush(&app).await;

    let before = usage_at(&app, &token, Some(end - chrono::Duration::seconds(1)))
        .await
        .unwrap(); // 1 in the new month
    assert_eq!(time(&before.period_start_time), start);
    assert_eq!(time(&before.period_end_time), end);
    assert_eq!(before.api_calls, 3);

    let at = usage_at(&app, &token, Some(end)).await.unwrap(); // 2
    assert_eq!(time(&at.period_start_time), end);
    assert_eq!(time(&at.period_end_time), next_end);
    assert_eq!(at.api_calls, 4 + 2);
    let now = usage(&app, &token).await; // 3
    assert_eq!(time(&now.period_start_time), end);
    assert_eq!(now.api_calls, 4 + 3);

    // No reports about the future.
    let err = usage_at(
        &app,
        &token,
        Some(app.state.clock.now() + chrono::Duration::seconds(60)),
    )
    .await
    .unwrap_err();
    assert_invalid(&err, "period_time");
}

#[tokio::test]
async fn a_call_at_a_paid_period_end_counts_in_the_next_period() {
    let app = spawn().await;
    let token = app.funded(10_000).await;
    change(&app, &token, Pro).await;
    let sub = subscription(&app, &token).await; // 1 in the pro period
    let (start, end) = (
        time(&sub.current_period_start_time),
        time(&sub.current_period_end_time),
    );

    set_clocks(&[&app], end - chrono::Duration::seconds(3)).await;
    calls(&app, &token, 3).await; // 4
    // At the end, before the renewal job ran: the calls already belong to the next period.
    set_clocks(&[&app], end).await;
    calls(&app, &token, 4).await; // 4 in the next period
    flush(&app).await;
    app.state.billing.renew_due().await.unwrap();
    assert_eq!(app.balance(&token).await, 10_000 - 2 * 2_900); // 5

    let before = usage_at(&app, &token, Some(end - chrono::Duration::seconds(1)))
        .await
        .unwrap(); // 6
    assert_eq!(tier(before.plan), Pro);
    assert_eq!(time(&before.period_start_time), start);
    assert_eq!(time(&before.period_end_time), end);
    assert_eq!(before.api_calls, 4);

    let at = usage_at(&app, &token, Some(end)).await.unwrap(); // 7
    assert_eq!(tier(at.plan), Pro);
    assert_eq!(time(&at.period_start_time), end);
    assert_eq!(time(&at.period_end_time), add_months(start, 2));
    assert_eq!(at.api_calls, 7);
}

// ---------------------------------------------------------------------------------------
// Usage alerts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_usage_alert_goes_out_once_per_threshold() {
    let app = spawn_enterprise(10, 50).await;
    let token = app.funded(40_000).await;
    let user = me(&app, &token).await; // (starter period)
    let id = id_of(&user);
    change(&app, &token, Enterprise).await; // (starter period: counted before the change)

    calls(&app, &token, 4).await; // 4 of 10
    flush(&app).await;
    assert!(
        alert_rows(&app, id).await.is_empty(),
        "40 % crosses nothing"
    );

    calls(&app, &token, 1).await; // 5: 50 %
    flush(&app).await;
    calls(&app, &token, 1).await; // 6: 60 %, 50 % crossed already
    flush(&app).await;

    let rows = alert_rows(&app, id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].threshold,
            rows[0].api_calls,
            rows[0].included_api_calls
        ),
        (50, 5, 10)
    );
    let mails = mails_about(&app, &user.email, "allowance").await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0]["subject"],
        "You have used 50 % of your API allowance"
    );

    let used = usage(&app, &token).await; // 7
    assert_eq!(tier(used.plan), Enterprise);
    assert_eq!(used.api_calls, 7);
    assert_eq!(used.included_api_calls, 10);
    assert_eq!(used.allowance_used_percent, 70);
    assert_eq!(used.overage_api_calls, 0);
    assert_eq!(used.alert_threshold_percents, [50, 80, 100]);
    assert_eq!(used.crossed_threshold_percents, [50]);

    // New thresholds: 60 % is behind already, and goes out at the next flush.
    let set = set_alerts(&app, &token, &[90, 60]).await.unwrap(); // 8
    assert_eq!(set.threshold_percents, [60, 90]);
    assert_eq!(set.name, format!("{}/usageAlert", user.name));
    assert!(set.update_time.is_some());
    flush(&app).await;
    assert_eq!(
        mails_about(&app, &user.email, "allowance").await.len(),
        2,
        "one more, for 60 %"
    );

    // Off: no more alerts, even in overage.
    let off = set_alerts(&app, &token, &[]).await.unwrap(); // 9
    assert!(off.threshold_percents.is_empty());
    calls(&app, &token, 5).await; // 14
    flush(&app).await;
    let used = usage(&app, &token).await; // 15
    assert_eq!(used.api_calls, 15);
    assert_eq!(used.overage_api_calls, 5);
    assert_eq!(
        cents(&used.overage_charge),
        0,
        "5 × 0.05 cents = 0.25: rounds to 0"
    );
    assert_eq!(used.allowance_used_percent, 150);
    assert!(used.alert_threshold_percents.is_empty());
    assert_eq!(used.crossed_threshold_percents, [50, 60]);
    let subjects: Vec<String> = mails_about(&app, &user.email, "allowance")
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        subjects,
        [
            "You have used 50 % of your API allowance",
            "You have used 60 % of your API allowance"
        ]
    );
    assert_eq!(alert_rows(&app, id).await.len(), 2);
}

#[tokio::test]
async fn usage_alerts_go_out_once_when_two_instances_flush_together() {
    let app = spawn_enterprise(10, 50).await;
    let peer = app.spawn_peer().await;
    let token = app.funded(40_000).await;
    let user = me(&app, &token).await;
    change(&app, &token, Enterprise).await;

    calls(&app, &token, 5).await;
    calls(&peer, &token, 5).await;
    let (a, b) = tokio::join!(
        app.state.billing.flush_usage(),
        peer.state.billing.flush_usage()
    );
    a.unwrap();
    b.unwrap();
    // Each instance checks again at its next flush: still once.
    calls(&app, &token, 1).await;
    calls(&peer, &token, 1).await;
    let (a, b) = tokio::join!(
        peer.state.billing.flush_usage(),
        app.state.billing.flush_usage()
    );
    a.unwrap();
    b.unwrap();

    let thresholds: Vec<i32> = alert_rows(&app, id_of(&user))
        .await
        .iter()
        .map(|r| r.threshold)
        .collect();
    assert_eq!(thresholds, [50, 80, 100]);
    peer.state.outbox.drain().await;
    let mut subjects: Vec<String> = mails_about(&app, &user.email, "allowance")
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "You have used 100 % of your API allowance",
            "You have used 50 % of your API allowance",
            "You have used 80 % of your API allowance",
        ]
    );
    assert_eq!(
        usage(&app, &token).await.crossed_threshold_percents,
        [50, 80, 100]
    );
}

#[tokio::test]
async fn an_upgrade_to_enterprise_mid_period_alerts_on_the_calls_before_it() {
    // Calls made on pro, then the upgrade (which brings enterprise's allowance for the
    // whole period), then one flush: the period is past 50 % of the allowance.
    let app = spawn_enterprise(10, 50).await;
    let token = app.funded(40_000).await;
    let user = me(&app, &token).await;
    change(&app, &token, Pro).await;
    calls(&app, &token, 6).await; // 6 calls in the pro period, not flushed yet
    change(&app, &token, Enterprise).await; // 7 (counted before the change)
    flush(&app).await;

    let used = usage(&app, &token).await; // 8
    assert_eq!(tier(used.plan), Enterprise);
    assert_eq!(used.included_api_calls, 10);
    assert_eq!(used.api_calls, 8);
    assert_eq!(
        used.crossed_threshold_percents,
        [50],
        "7 of 10 calls were flushed: 50 % was crossed at that flush"
    );
    assert_eq!(mails_about(&app, &user.email, "allowance").await.len(), 1);
}

#[tokio::test]
async fn usage_alert_thresholds_are_checked() {
    let app = spawn().await;
    let (_, token) = app.signed_in().await;
    let defaults = usage(&app, &token).await;
    assert_eq!(defaults.alert_threshold_percents, [50, 80, 100]);

    for bad in [
        vec![0],
        vec![1_001],
        vec![-5],
        vec![50, 50],
        vec![80, 50, 80],
        (1..=11).collect::<Vec<i32>>(),
    ] {
        let err = set_alerts(&app, &token, &bad).await.unwrap_err();
        assert_error(&err, Code::InvalidArgument, "INVALID_THRESHOLD");
        assert_eq!(violated_fields(&err), ["threshold_percents"], "{bad:?}");
    }
    assert_eq!(
        usage(&app, &token).await.alert_threshold_percents,
        [50, 80, 100],
        "refused settings change nothing"
    );

    // The bounds themselves, and ten thresholds, are fine; they come back ascending.
    let set = set_alerts(&app, &token, &[1_000, 1]).await.unwrap();
    assert_eq!(set.threshold_percents, [1, 1_000]);
    let ten: Vec<i32> = (1..=10).rev().map(|n| n * 100).collect();
    let set = set_alerts(&app, &token, &ten).await.unwrap();
    assert_eq!(
        set.threshold_percents,
        (1..=10).map(|n| n * 100).collect::<Vec<i32>>()
    );
    assert_eq!(
        usage(&app, &token).await.alert_threshold_percents,
        set.threshold_percents
    );
    let off = set_alerts(&app, &token, &[]).await.unwrap();
    assert!(off.threshold_percents.is_empty());
    assert!(
        usage(&app, &token)
            .await
            .alert_threshold_percents
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// Overage at the period's close
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_overage_is_charged_once_at_close_whatever_instances_run_it() {
    const PER_THOUSAND: i64 = 1_234;
    let app = spawn_enterprise(10, PER_THOUSAND).await;
    let peer = app.spawn_peer().await;
    let token = app.funded(80_000).await;
    let user = id_of(&me(&app, &token).await);
    change(&app, &token, Enterprise).await;
    // Calls in the enterprise period, counted as they go.
    let sub = subscription(&app, &token).await; // 1
    let (start, end) = (
        time(&sub.current_period_start_time),
        time(&sub.current_period_end_time),
    );
    assert_eq!(app.balance(&token).await, 80_000 - 29_900); // 2

    calls(&app, &token, 20).await; // 22
    calls(&peer, &token, 5).await; // 27
    let used = usage(&app, &token).await; // 28
    assert_eq!(
        used.api_calls,
        28 - 5,
        "the peer's calls are not flushed yet"
    );
    flush(&app).await;
    flush(&peer).await;
    let used = usage_at(&app, &token, Some(start)).await.unwrap(); // 29
    assert_eq!(used.api_calls, 29);
    let over = 29 - 10;
    let charge = half_up(over, PER_THOUSAND, 1_000);
    assert_eq!(used.overage_api_calls, over);
    assert_eq!(cents(&used.overage_charge), charge);
    flush(&app).await;

    // Nothing is charged while the period runs, nor before the grace after its end.
    for instance in [&app, &peer] {
        instance.state.billing.close_due().await.unwrap();
    }
    set_clocks(&[&app, &peer], end + chrono::Duration::seconds(1)).await;
    let (a, b) = tokio::join!(
        app.state.billing.renew_due(),
        peer.state.billing.renew_due()
    );
    assert!(a.unwrap() + b.unwrap() <= 1);
    for instance in [&app, &peer] {
        instance.state.billing.close_due().await.unwrap();
    }
    let key = format!("overage:{user}:{}", start.timestamp_millis());
    assert_eq!(entries_keyed(&app, &key).await, 0, "not before the grace");
    assert_eq!(app.balance(&token).await, 80_000 - 2 * 29_900);

    // After the grace, both instances at once: charged once.
    set_clocks(
        &[&app, &peer],
        end + CLOSE_GRACE + chrono::Duration::seconds(60),
    )
    .await;
    let (a, b) = tokio::join!(
        app.state.billing.close_due(),
        peer.state.billing.close_due()
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(entries_keyed(&app, &key).await, 1);
    assert_eq!(entries_of_kind(&app, user, "overage_charge").await, 1);
    assert_eq!(app.balance(&token).await, 80_000 - 2 * 29_900 - charge);

    // And never again.
    let (a, b) = tokio::join!(
        peer.state.billing.close_due(),
        app.state.billing.close_due()
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(app.balance(&token).await, 80_000 - 2 * 29_900 - charge);

    let row = billing_periods::Entity::find_by_id((user, start))
        .one(&app.state.db)
        .await
        .unwrap();
    let row = match row {
        Some(row) => row,
        // The stored start may be rounded by the database: find it by range.
        None => billing_periods::Entity::find()
            .filter(billing_periods::Column::UserId.eq(user))
            .filter(billing_periods::Column::Plan.eq("enterprise"))
            .order_by_asc(billing_periods::Column::PeriodStart)
            .one(&app.state.db)
            .await
            .unwrap()
            .expect("the enterprise period"),
    };
    assert_eq!(row.close_status, "charged");
    assert_eq!(row.api_calls, 29);
    assert_eq!(row.overage_calls, Some(over));
    assert_eq!(row.overage_charge, Some(charge));

    // The closed period still reads the same.
    let closed = usage_at(&app, &token, Some(start)).await.unwrap();
    assert_eq!(closed.api_calls, 29);
    assert_eq!(cents(&closed.overage_charge), charge);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn an_overage_the_wallet_cannot_pay_is_kept_mailed_once_and_taken_later() {
    let app = spawn_enterprise(10, 1_000).await; // one cent a call over the allowance
    let token = app.funded(29_900).await;
    let user = me(&app, &token).await;
    let id = id_of(&user);
    change(&app, &token, Enterprise).await;
    assert_eq!(app.balance(&token).await, 0); // 1 in the enterprise period
    let sub = subscription(&app, &token).await; // 2
    let (start, end) = (
        time(&sub.current_period_start_time),
        time(&sub.current_period_end_time),
    );
    calls(&app, &token, 30).await; // 32
    flush(&app).await;
    let charge = 32 - 10;

    // The period ends: the renewal cannot be paid (starter), nor can the overage.
    set_clocks(&[&app], end + CLOSE_GRACE + chrono::Duration::seconds(60)).await;
    app.state.billing.renew_due().await.unwrap();
    app.state.billing.close_due().await.unwrap();
    app.state.billing.close_due().await.unwrap();
    assert_eq!(app.balance(&token).await, 0);
    let key = format!("overage:{id}:{}", start.timestamp_millis());
    assert_eq!(entries_keyed(&app, &key).await, 0);
    let closed = usage_at(&app, &token, Some(start)).await.unwrap();
    assert_eq!(closed.api_calls, 32);
    assert_eq!(cents(&closed.overage_charge), charge);
    let due = mails_about(&app, &user.email, "usage charge").await;
    assert_eq!(due.len(), 1, "{due:?}");
    assert!(
        due[0]["text"].as_str().unwrap().contains("$0.22"),
        "{}",
        due[0]
    );

    // A top-up, then the hourly retry takes it, once.
    let top_up = app.top_up(&token, 1_000).await;
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
        .unwrap();
    app.state.billing.close_due().await.unwrap();
    assert_eq!(
        app.balance(&token).await,
        1_000,
        "not before the retry time"
    );
    app.state.clock.advance(Duration::from_secs(3_601));
    let (a, b) = tokio::join!(app.state.billing.close_due(), app.state.billing.close_due());
    a.unwrap();
    b.unwrap();
    assert_eq!(app.balance(&token).await, 1_000 - charge);
    assert_eq!(entries_keyed(&app, &key).await, 1);
    app.state.clock.advance(Duration::from_secs(3_601));
    app.state.billing.close_due().await.unwrap();
    assert_eq!(app.balance(&token).await, 1_000 - charge);
    assert_eq!(
        mails_about(&app, &user.email, "usage charge").await.len(),
        1
    );
    assert_books_balance(&app.state.db).await;
}
