//! AnalyticsService end to end: client events through `TrackEvent`, funnel steps recorded
//! where they happen, and the three reports checked against figures computed by hand on a
//! small dataset made by the real flows (top-ups, purchases, a cancellation, a manual
//! refund, a plan change, a churned customer), then moved in time — the same before and
//! after the rollup job has run.
mod common;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::analytics_service_client::AnalyticsServiceClient;
use namaskah_proto::v1::subscription_service_client::SubscriptionServiceClient;
use namaskah_server::analytics::domain::FunnelStep;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

fn analytics(app: &TestApp) -> AnalyticsServiceClient<Channel> {
    AnalyticsServiceClient::new(app.channel.clone())
}

fn date(day: NaiveDate) -> Option<pb::Date> {
    Some(pb::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    })
}

fn cents(m: &Option<pb::Money>) -> i64 {
    m.as_ref().map_or(0, |m| m.minor_units)
}

/// `sql` written with `$n` placeholders, for either backend.
fn statement(app: &TestApp, sql: &str, values: Vec<Value>) -> Statement {
    let backend = app.state.db.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        sql.to_owned()
    } else {
        let mut out = sql.to_owned();
        for n in (1..=values.len()).rev() {
            out = out.replace(&format!("${n}"), &format!("?{n}"));
        }
        out
    };
    Statement::from_sql_and_values(backend, sql, values)
}

async fn exec(app: &TestApp, sql: &str, values: Vec<Value>) {
    app.state
        .db
        .execute_raw(statement(app, sql, values))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn one(app: &TestApp, sql: &str, values: Vec<Value>) -> sea_orm::QueryResult {
    app.state
        .db
        .query_one_raw(statement(app, sql, values))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a row")
}

async fn count(app: &TestApp, sql: &str, values: Vec<Value>) -> i64 {
    one(app, sql, values)
        .await
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// Dates everything `user` did so far at `at`: the account, its ledger entries, its
/// verifications and its funnel steps.
async fn move_user(app: &TestApp, user: Uuid, at: DateTime<Utc>) {
    exec(
        app,
        "UPDATE users SET created_at = $1 WHERE id = $2",
        vec![at.into(), user.into()],
    )
    .await;
    exec(
        app,
        "UPDATE journal_entries SET created_at = $1 WHERE user_id = $2",
        vec![at.into(), user.into()],
    )
    .await;
    exec(
        app,
        "UPDATE verifications SET created_at = $1, ended_at = CASE WHEN ended_at IS NULL THEN NULL ELSE $2 END WHERE user_id = $3",
        vec![at.into(), at.into(), user.into()],
    )
    .await;
    exec(
        app,
        "UPDATE funnel_progress SET reached_at = $1 WHERE user_id = $2",
        vec![at.into(), user.into()],
    )
    .await;
}

async fn set_step(app: &TestApp, user: Uuid, step: FunnelStep, at: DateTime<Utc>) {
    exec(
        app,
        "UPDATE funnel_progress SET reached_at = $1 WHERE user_id = $2 AND step = $3",
        vec![at.into(), user.into(), step.as_str().into()],
    )
    .await;
}

async fn id_of(app: &TestApp, token: &str) -> Uuid {
    let me = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, token))
        .await
        .expect("get me")
        .into_inner()
        .user
        .expect("user");
    me.name
        .trim_start_matches("users/")
        .parse()
        .expect("a uuid")
}

/// Buys a number and has its code arrive; returns its price.
async fn completed(app: &TestApp, token: &str, service: &str) -> i64 {
    let v = app.buy(token, service, "GB").await.expect("buy");
    app.inject(token, &v.phone_number, "Your code is 482913", None)
        .await
        .expect("inject");
    let done = app.get_verification(token, &v.name).await;
    assert_eq!(status_of(&done), pb::VerificationStatus::Completed);
    cents(&v.price)
}

async fn cancelled(app: &TestApp, token: &str, service: &str) -> i64 {
    let v = app.buy(token, service, "GB").await.expect("buy");
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: v.name.clone(),
            },
            token,
        ))
        .await
        .expect("cancel");
    cents(&v.price)
}

fn at(day: NaiveDate, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, minute, second).unwrap().and_utc()
}

#[tokio::test]
async fn track_event_checks_names_and_sizes_and_records_once_per_request_id() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    let event = |name: &str, request_id: &str| pb::TrackEventRequest {
        event_name: name.into(),
        properties: [("page".to_owned(), "/pricing".to_owned())].into(),
        event_time: None,
        anonymous_id: "visitor-1".into(),
        request_id: request_id.into(),
    };
    // Anonymous, retried with the same request id: one row.
    for _ in 0..3 {
        analytics(&app)
            .track_event(event("pricing_viewed", "r-1"))
            .await
            .expect("track");
    }
    // Signed in: attributed to the account.
    let (_, token) = app.signed_in().await;
    let user = id_of(&app, &token).await;
    analytics(&app)
        .track_event(bearer(event("checkout_started", "r-2"), &token))
        .await
        .expect("track signed in");

    let status = analytics(&app)
        .track_event(event("admin_hacked", ""))
        .await
        .expect_err("an unknown name");
    assert_error(&status, Code::InvalidArgument, "UNKNOWN_EVENT_NAME");
    let mut big = event("page_viewed", "");
    big.properties = (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
    let status = analytics(&app)
        .track_event(big)
        .await
        .expect_err("21 properties");
    assert_error(&status, Code::InvalidArgument, "PROPERTIES_TOO_LARGE");
    let mut long = event("page_viewed", "");
    long.properties = [("k".to_owned(), "x".repeat(201))].into();
    let status = analytics(&app)
        .track_event(long)
        .await
        .expect_err("a long value");
    assert_error(&status, Code::InvalidArgument, "PROPERTIES_TOO_LARGE");
    let status = analytics(&app)
        .track_event(event("page_viewed", "not allowed!"))
        .await
        .expect_err("a bad request id");
    assert_invalid(&status, "request_id");

    app.state.analytics.tracker().flush().await;
    let db = &app.state.db;
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM conversion_events WHERE source = 'client'"
        )
        .await,
        2
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM conversion_events WHERE name = 'pricing_viewed' AND anonymous_id = 'visitor-1' AND user_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM conversion_events WHERE name = 'checkout_started' AND user_id = $1",
            vec![user.into()]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn funnel_steps_are_recorded_once_where_they_happen() {
    let app = spawn_app_with(&[
        ("NAMASKAH_PLANS", RAISED_LIMITS),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
    ])
    .await;
    let token = app.funded(10_000).await;
    let user = id_of(&app, &token).await;
    app.state.analytics.tracker().flush().await;
    let steps = namaskah_server::analytics::repo::steps_of(&app.state.db, user)
        .await
        .unwrap();
    assert_eq!(
        steps.keys().copied().collect::<Vec<_>>(),
        vec![
            FunnelStep::Registered,
            FunnelStep::EmailVerified,
            FunnelStep::FirstTopUp
        ]
    );
    let first_top_up = steps[&FunnelStep::FirstTopUp];

    completed(&app, &token, "whatsapp").await;
    cancelled(&app, &token, "telegram").await;
    SubscriptionServiceClient::new(app.channel.clone())
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: pb::PlanTier::Pro as i32,
                request_id: "up-1".into(),
            },
            &token,
        ))
        .await
        .expect("upgrade");
    // A second top-up is not a first one.
    let second = app.top_up(&token, 500).await;
    app.sandbox()
        .complete_payment(bearer(
            pb::CompletePaymentRequest {
                reference: second.reference,
                outcome: 0,
                paid_amount: None,
            },
            &token,
        ))
        .await
        .expect("pay");
    app.state.analytics.tracker().flush().await;
    let steps = namaskah_server::analytics::repo::steps_of(&app.state.db, user)
        .await
        .unwrap();
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert_eq!(steps[&FunnelStep::FirstTopUp], first_top_up);
    let order: Vec<_> = FunnelStep::ALL.iter().map(|s| steps[s]).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    // One server event per step, however often it was reported.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM conversion_events WHERE source = 'server' AND user_id = $1",
            vec![user.into()]
        )
        .await,
        6
    );
}

#[tokio::test]
async fn reports_are_for_administrators_with_a_totp_session_and_check_their_ranges() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    let session = admin_session(&app).await;
    let (_, customer) = app.signed_in().await;
    let today = Utc::now().date_naive();
    let request = |start: NaiveDate, end: NaiveDate, granularity: pb::TimeGranularity| {
        pb::GetRevenueAnalyticsRequest {
            start_date: date(start),
            end_date: date(end),
            granularity: granularity as i32,
            tenant: String::new(),
        }
    };
    let ok = request(today - Days::new(6), today, pb::TimeGranularity::Day);
    let status = analytics(&app)
        .get_revenue_analytics(bearer(ok.clone(), &customer))
        .await
        .expect_err("a customer");
    assert_error(&status, Code::PermissionDenied, "ADMIN_REQUIRED");
    // Whatever it asks for: a malformed tenant name is refused the same way.
    let status = analytics(&app)
        .get_revenue_analytics(bearer(
            pb::GetRevenueAnalyticsRequest {
                tenant: "not a tenant".into(),
                ..ok.clone()
            },
            &customer,
        ))
        .await
        .expect_err("a customer");
    assert_error(&status, Code::PermissionDenied, "ADMIN_REQUIRED");
    let status = analytics(&app)
        .get_customer_metrics(bearer(
            pb::GetCustomerMetricsRequest {
                start_date: date(today),
                end_date: date(today),
                tenant: String::new(),
            },
            &session.password_only,
        ))
        .await
        .expect_err("no TOTP");
    assert_error(&status, Code::PermissionDenied, "TOTP_REQUIRED");
    let status = analytics(&app)
        .get_conversion_funnel(pb::GetConversionFunnelRequest::default())
        .await
        .expect_err("no credentials");
    assert_eq!(status.code(), Code::Unauthenticated);
    // The three refusals of signed-in callers are in the audit log.
    assert_eq!(
        scalar(
            &app.state.db,
            "SELECT COUNT(*) FROM audit_log_entries WHERE method LIKE 'namaskah.v1.AnalyticsService/%' AND outcome = 'denied'"
        )
        .await,
        3
    );

    let admin = |r: pb::GetRevenueAnalyticsRequest| {
        let mut client = analytics(&app);
        let token = session.token.clone();
        async move { client.get_revenue_analytics(bearer(r, &token)).await }
    };
    let report = admin(ok).await.expect("an admin").into_inner();
    assert_eq!(report.buckets.len(), 7);
    for (bad, reason) in [
        (
            request(today, today - Days::new(1), pb::TimeGranularity::Day),
            "INVALID_DATE_RANGE",
        ),
        (
            request(
                today + Days::new(1),
                today + Days::new(2),
                pb::TimeGranularity::Day,
            ),
            "INVALID_DATE_RANGE",
        ),
        (
            request(today - Days::new(366), today, pb::TimeGranularity::Day),
            "INVALID_DATE_RANGE",
        ),
        (
            pb::GetRevenueAnalyticsRequest {
                granularity: 9,
                ..request(today, today, pb::TimeGranularity::Day)
            },
            "INVALID_GRANULARITY",
        ),
        (
            pb::GetRevenueAnalyticsRequest {
                start_date: Some(pb::Date {
                    year: 2026,
                    month: 2,
                    day: 30,
                }),
                ..request(today, today, pb::TimeGranularity::Day)
            },
            "INVALID_DATE_RANGE",
        ),
        (
            pb::GetRevenueAnalyticsRequest {
                start_date: None,
                ..request(today, today, pb::TimeGranularity::Day)
            },
            "INVALID_DATE_RANGE",
        ),
    ] {
        let status = admin(bad.clone()).await.expect_err("bad input");
        assert_error(&status, Code::InvalidArgument, reason);
    }
    // A year in week buckets is fine; another tenant does not exist yet.
    let weeks = admin(request(
        today - Days::new(366),
        today,
        pb::TimeGranularity::Week,
    ))
    .await
    .expect("weeks")
    .into_inner();
    assert!(weeks.buckets.len() >= 53);
    let status = admin(pb::GetRevenueAnalyticsRequest {
        tenant: "tenants/acme".into(),
        ..request(today, today, pb::TimeGranularity::Day)
    })
    .await
    .expect_err("an unknown tenant");
    assert_error(&status, Code::NotFound, "TENANT_NOT_FOUND");
    let status = admin(pb::GetRevenueAnalyticsRequest {
        tenant: "acme".into(),
        ..request(today, today, pb::TimeGranularity::Day)
    })
    .await
    .expect_err("not a tenant name");
    assert_invalid(&status, "tenant");
}

/// The dataset: range R is the last 10 days (today included), P the 10 before.
/// - A registered in P, topped up, bought one number (completed) and cancelled one, all in
///   P, and was never seen again: churned.
/// - B registered in P, topped up and completed one in P; in R completed another,
///   cancelled one and upgraded to pro.
/// - C registered in R (three days ago), topped up and completed one, which an administrator
///   then refunded.
/// - D registered yesterday and never verified the email.
/// - An administrator, who never counts.
#[tokio::test]
async fn reports_match_figures_computed_by_hand() {
    let app = spawn_app_with(&[
        ("NAMASKAH_PLANS", RAISED_LIMITS),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
    ])
    .await;
    let session = admin_session(&app).await;
    let today = Utc::now().date_naive();
    let r_start = today - Days::new(9);
    let p_start = today - Days::new(19);
    let (a_day, b_day, c_day, d_day) = (
        today - Days::new(15),
        today - Days::new(12),
        today - Days::new(3),
        today - Days::new(1),
    );

    let a = app.funded(3_000).await;
    let a_id = id_of(&app, &a).await;
    let a_price = completed(&app, &a, "whatsapp").await;
    let a_cancelled = cancelled(&app, &a, "telegram").await;
    app.state.analytics.tracker().flush().await;
    move_user(&app, a_id, at(a_day, 12, 0, 0)).await;

    let b = app.funded(10_000).await;
    let b_id = id_of(&app, &b).await;
    let b_first = completed(&app, &b, "whatsapp").await;
    app.state.analytics.tracker().flush().await;
    move_user(&app, b_id, at(b_day, 9, 0, 0)).await;
    // B's part in R happens now (today).
    let b_second = completed(&app, &b, "whatsapp").await;
    let b_cancelled = cancelled(&app, &b, "whatsapp").await;
    let fee = SubscriptionServiceClient::new(app.channel.clone())
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: pb::PlanTier::Pro as i32,
                request_id: "b-up".into(),
            },
            &b,
        ))
        .await
        .expect("upgrade")
        .into_inner()
        .charged;
    let fee = cents(&fee);
    assert!(fee > 0);

    let c = app.funded(2_000).await;
    let c_id = id_of(&app, &c).await;
    let c_price = completed(&app, &c, "telegram").await;
    let c_name = app
        .verifications()
        .list_verifications(bearer(pb::ListVerificationsRequest::default(), &c))
        .await
        .expect("list")
        .into_inner()
        .verifications[0]
        .name
        .clone();
    namaskah_proto::v1::admin_service_client::AdminServiceClient::new(app.channel.clone())
        .refund_verification(bearer(
            pb::RefundVerificationRequest {
                name: c_name,
                reason: "code never worked".into(),
                request_id: "c-refund".into(),
            },
            &session.token,
        ))
        .await
        .expect("refund");
    app.state.analytics.tracker().flush().await;
    move_user(&app, c_id, at(c_day, 10, 0, 0)).await;
    // C's funnel, to the second.
    set_step(&app, c_id, FunnelStep::EmailVerified, at(c_day, 10, 10, 0)).await;
    set_step(&app, c_id, FunnelStep::FirstTopUp, at(c_day, 10, 30, 0)).await;
    set_step(
        &app,
        c_id,
        FunnelStep::FirstVerification,
        at(c_day, 11, 0, 0),
    )
    .await;
    set_step(
        &app,
        c_id,
        FunnelStep::FirstCompletedVerification,
        at(c_day, 11, 2, 0),
    )
    .await;
    // A verified after 100 s, B after 300 s: the P cohort's median is 200 s.
    set_step(&app, a_id, FunnelStep::EmailVerified, at(a_day, 12, 1, 40)).await;
    set_step(&app, b_id, FunnelStep::Registered, at(b_day, 9, 0, 0)).await;
    set_step(&app, b_id, FunnelStep::EmailVerified, at(b_day, 9, 5, 0)).await;

    let d = app.register().await;
    app.state.analytics.tracker().flush().await;
    let d_id: Uuid = one(
        &app,
        "SELECT id FROM users WHERE email = $1",
        vec![d.into()],
    )
    .await
    .try_get_by_index(0)
    .unwrap();
    move_user(&app, d_id, at(d_day, 8, 0, 0)).await;

    let check = |app: &TestApp| {
        let token = session.token.clone();
        let channel = app.channel.clone();
        async move {
            let mut client = AnalyticsServiceClient::new(channel);
            let revenue = client
                .get_revenue_analytics(bearer(
                    pb::GetRevenueAnalyticsRequest {
                        start_date: date(r_start),
                        end_date: date(today),
                        granularity: pb::TimeGranularity::Day as i32,
                        tenant: String::new(),
                    },
                    &token,
                ))
                .await
                .expect("revenue")
                .into_inner();
            let total = revenue.total.as_ref().unwrap();
            assert_eq!(cents(&total.top_ups), 2_000, "C's top-up");
            assert_eq!(cents(&total.verification_revenue), b_second);
            assert_eq!(cents(&total.refunds), b_cancelled + c_price);
            assert_eq!(cents(&total.subscription_revenue), fee);
            assert_eq!(cents(&total.overage_revenue), 0);
            assert_eq!(cents(&total.net_revenue), b_second + fee);
            assert_eq!(total.completed_verifications, 2);
            let previous = revenue.previous_period_total.as_ref().unwrap();
            assert_eq!(cents(&previous.top_ups), 3_000 + 10_000);
            assert_eq!(cents(&previous.verification_revenue), a_price + b_first);
            assert_eq!(cents(&previous.refunds), a_cancelled);
            assert_eq!(cents(&previous.net_revenue), a_price + b_first);
            let growth = revenue.net_revenue_growth.expect("growth");
            let expected = (b_second + fee - a_price - b_first) as f64 / (a_price + b_first) as f64;
            assert!((growth - expected).abs() < 1e-9, "{growth} vs {expected}");
            assert_eq!(revenue.buckets.len(), 10);
            let c_bucket = &revenue.buckets[6];
            assert_eq!(c_bucket.start_date, date(c_day));
            let f = c_bucket.figures.as_ref().unwrap();
            assert_eq!(cents(&f.verification_revenue), 0, "captured and refunded");
            assert_eq!(f.completed_verifications, 1);
            let last = revenue.buckets[9].figures.as_ref().unwrap();
            assert_eq!(cents(&last.net_revenue), b_second + fee);
            assert_eq!(
                revenue.buckets[9].net_revenue_growth, None,
                "yesterday was zero"
            );

            let funnel = client
                .get_conversion_funnel(bearer(
                    pb::GetConversionFunnelRequest {
                        start_date: date(r_start),
                        end_date: date(today),
                        tenant: String::new(),
                    },
                    &token,
                ))
                .await
                .expect("funnel")
                .into_inner();
            assert_eq!(funnel.cohort_size, 2, "C and D");
            let counts: Vec<i64> = funnel.stages.iter().map(|s| s.customers).collect();
            assert_eq!(counts, vec![2, 1, 1, 1, 1, 0]);
            assert_eq!(funnel.stages[1].conversion_from_previous, Some(0.5));
            assert_eq!(funnel.stages[4].conversion_from_start, Some(0.5));
            assert_eq!(funnel.stages[5].conversion_from_previous, Some(0.0));
            let secs = |i: usize| {
                funnel.stages[i]
                    .median_time_from_previous
                    .as_ref()
                    .map(|d| d.seconds)
            };
            assert_eq!(secs(0), None);
            assert_eq!(secs(1), Some(600));
            assert_eq!(secs(2), Some(1_200));
            assert_eq!(secs(3), Some(1_800));
            assert_eq!(secs(4), Some(120));
            assert_eq!(secs(5), None);
            let earlier = client
                .get_conversion_funnel(bearer(
                    pb::GetConversionFunnelRequest {
                        start_date: date(p_start),
                        end_date: date(r_start - Days::new(1)),
                        tenant: String::new(),
                    },
                    &token,
                ))
                .await
                .expect("funnel of P")
                .into_inner();
            assert_eq!(earlier.cohort_size, 2, "A and B");
            assert_eq!(
                earlier.stages[1]
                    .median_time_from_previous
                    .as_ref()
                    .map(|d| d.seconds),
                Some(200)
            );
            assert_eq!(earlier.stages[5].customers, 1, "B upgraded");

            let metrics = client
                .get_customer_metrics(bearer(
                    pb::GetCustomerMetricsRequest {
                        start_date: date(r_start),
                        end_date: date(today),
                        tenant: String::new(),
                    },
                    &token,
                ))
                .await
                .expect("customers")
                .into_inner();
            assert_eq!(metrics.total_customers, 4, "the administrator is left out");
            assert_eq!(metrics.new_customers, 2);
            assert_eq!(metrics.new_customer_growth, Some(0.0));
            assert_eq!(metrics.active_customers, 2, "B and C");
            assert_eq!(metrics.active_customer_growth, Some(0.0), "A and B before");
            assert_eq!(metrics.daily_active_customers, 1, "B today");
            assert_eq!(metrics.weekly_active_customers, 2);
            assert_eq!(metrics.monthly_active_customers, 3);
            assert_eq!(metrics.paying_customers, 2);
            let arpu = cents(&metrics.average_revenue_per_user);
            assert_eq!(arpu, ((b_second + fee) as f64 / 2.0).round() as i64);
            assert_eq!(metrics.churn_rate, Some(0.5), "A churned");
            assert_eq!(cents(&metrics.customer_lifetime_value), arpu * 2);
            let rates: Vec<_> = metrics
                .success_rates
                .iter()
                .map(|r| (r.service.as_str(), r.completed, r.cancelled, r.success_rate))
                .collect();
            assert_eq!(
                rates,
                vec![
                    ("services/whatsapp", 1, 1, Some(1.0)),
                    ("services/telegram", 1, 0, Some(1.0)),
                ]
            );
        }
    };
    check(&app).await;
    // The rollup job covers everything older than its grace; the figures stay the same.
    let windows = app
        .state
        .analytics
        .roll_up(Utc::now() + chrono::Duration::minutes(3))
        .await
        .expect("roll up");
    // The first account is from 15 days ago: three windows of at most a week, no more.
    assert_eq!(windows, 3, "a window per week since the first account");
    assert!(count_rows(&app, "analytics_revenue_daily").await > 0);
    check(&app).await;
    // Rolling up again adds nothing twice.
    app.state
        .analytics
        .roll_up(Utc::now() + chrono::Duration::minutes(3))
        .await
        .expect("roll up again");
    check(&app).await;
}

/// The customers' day bitmaps hold 768 days a row, in two systems of rows half a chunk
/// apart: a short report whose window crosses one system's boundary reads the other's
/// rows, and a long one that crosses both groups each customer's rows; either way each
/// customer counts once. And a fee dated in the past, after the rollup has passed that day,
/// is still counted on its own day.
#[tokio::test]
async fn activity_across_a_bitmap_boundary_and_a_fee_dated_late_are_counted_once() {
    use namaskah_server::analytics::domain::{CHUNK_DAYS, epoch_day};
    let app = spawn_app_with(&[
        ("NAMASKAH_PLANS", RAISED_LIMITS),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
    ])
    .await;
    let session = admin_session(&app).await;
    let today = Utc::now().date_naive();
    // The last first day of a system-0 row at least three days ago; the range is it and
    // the day before it.
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let boundary_day = epoch_day(today - Days::new(3)).div_euclid(CHUNK_DAYS) * CHUNK_DAYS;
    let boundary = epoch + Days::new(boundary_day as u64);
    let before = boundary - Days::new(1);

    // A on the day before the boundary, B on the boundary, C on both days.
    let a = app.funded(3_000).await;
    let a_id = id_of(&app, &a).await;
    completed(&app, &a, "whatsapp").await;
    let b = app.funded(3_000).await;
    let b_id = id_of(&app, &b).await;
    completed(&app, &b, "whatsapp").await;
    let c = app.funded(10_000).await;
    let c_id = id_of(&app, &c).await;
    completed(&app, &c, "whatsapp").await;
    app.state.analytics.tracker().flush().await;
    move_user(&app, a_id, at(before, 23, 59, 59)).await;
    move_user(&app, b_id, at(boundary, 0, 0, 0)).await;
    move_user(&app, c_id, at(before, 8, 0, 0)).await;
    let c_second = completed(&app, &c, "telegram").await;
    for table in ["verifications", "journal_entries"] {
        exec(
            &app,
            &format!("UPDATE {table} SET created_at = $1 WHERE user_id = $2 AND created_at > $3"),
            vec![
                at(boundary, 20, 0, 0).into(),
                c_id.into(),
                at(before, 8, 0, 0).into(),
            ],
        )
        .await;
    }
    exec(
        &app,
        "UPDATE verifications SET ended_at = created_at WHERE user_id = $1",
        vec![c_id.into()],
    )
    .await;

    let metrics_from = |start: NaiveDate| {
        let (app, token) = (&app, session.token.clone());
        async move {
            analytics(app)
                .get_customer_metrics(bearer(
                    pb::GetCustomerMetricsRequest {
                        start_date: date(start),
                        end_date: date(boundary),
                        tenant: String::new(),
                    },
                    &token,
                ))
                .await
                .expect("customers")
                .into_inner()
        }
    };
    let metrics = || async {
        analytics(&app)
            .get_customer_metrics(bearer(
                pb::GetCustomerMetricsRequest {
                    start_date: date(before),
                    end_date: date(boundary),
                    tenant: String::new(),
                },
                &session.token,
            ))
            .await
            .expect("customers")
            .into_inner()
    };
    let revenue = || async {
        analytics(&app)
            .get_revenue_analytics(bearer(
                pb::GetRevenueAnalyticsRequest {
                    start_date: date(before),
                    end_date: date(boundary),
                    granularity: pb::TimeGranularity::Day as i32,
                    tenant: String::new(),
                },
                &session.token,
            ))
            .await
            .expect("revenue")
            .into_inner()
    };
    let check = |m: pb::GetCustomerMetricsResponse| {
        assert_eq!(m.active_customers, 3, "A, B and C, C once");
        assert_eq!(m.paying_customers, 3);
        assert_eq!(m.daily_active_customers, 2, "B and C on the boundary");
        assert_eq!(m.weekly_active_customers, 3);
        assert_eq!(m.active_customer_growth, None, "nobody active before");
        assert_eq!(m.churn_rate, None);
    };
    // The same over 200 days and the 200 before: that window also crosses the system-1
    // boundary 384 days before the boundary.
    let long_start = boundary - Days::new(199);
    check(metrics().await);
    check(metrics_from(long_start).await);
    // The rollup as the job runs it: it passes the days above (by when the verifications
    // were bought) but not what was inserted in the last two minutes (by ledger id).
    let roll_up = |now: DateTime<Utc>| {
        let analytics = app.state.analytics.clone();
        async move { analytics.roll_up(now).await.expect("roll up") }
    };
    roll_up(Utc::now()).await;
    check(metrics().await);
    check(metrics_from(long_start).await);
    let fees = |r: &pb::GetRevenueAnalyticsResponse| -> Vec<i64> {
        r.buckets
            .iter()
            .map(|b| {
                b.figures
                    .as_ref()
                    .map_or(0, |f| cents(&f.subscription_revenue))
            })
            .collect()
    };
    let first = revenue().await;
    assert_eq!(fees(&first), vec![0, 0]);
    let captured: i64 = first
        .buckets
        .iter()
        .map(|b| {
            b.figures
                .as_ref()
                .map_or(0, |f| cents(&f.verification_revenue))
        })
        .sum();
    assert!(captured >= c_second, "{captured} {c_second}");

    // C upgrades now, after the rollup; the fee is then dated on the boundary (a renewal
    // run late is dated at its period's start).
    let fee = SubscriptionServiceClient::new(app.channel.clone())
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: pb::PlanTier::Pro as i32,
                request_id: "c-up".into(),
            },
            &c,
        ))
        .await
        .expect("upgrade")
        .into_inner()
        .charged;
    let fee = cents(&fee);
    assert!(fee > 0);
    exec(
        &app,
        "UPDATE journal_entries SET created_at = $1 WHERE user_id = $2 AND kind = 'subscription_fee'",
        vec![at(boundary, 12, 0, 0).into(), c_id.into()],
    )
    .await;
    exec(
        &app,
        "UPDATE journal_lines SET created_at = $1 WHERE entry_id IN \
           (SELECT id FROM journal_entries WHERE user_id = $2 AND kind = 'subscription_fee')",
        vec![at(boundary, 12, 0, 0).into(), c_id.into()],
    )
    .await;
    // From the ledger while the rollup has not reached it, from the rollup once it has
    // (everything inserted until a minute from now), once.
    assert_eq!(fees(&revenue().await), vec![0, fee]);
    roll_up(Utc::now() + chrono::Duration::minutes(3)).await;
    assert_eq!(fees(&revenue().await), vec![0, fee]);
    check(metrics().await);
    check(metrics_from(long_start).await);
}
