//! A year of realistic data for the analytics reports, and their timings.
//!
//! `fill` writes, inside PostgreSQL itself (`generate_series`, one statement per table, so a
//! million verifications take about a minute rather than an hour of round trips):
//!
//! - customers registering over the year, more of them towards its end (the business grows),
//!   four in five verifying their email, a few on paid plans;
//! - verifications spread over each customer's lifetime, heavily skewed towards a few busy
//!   customers (a cubic draw), across 24 services and 16 countries, the popular ones far more
//!   often; 72 % completed, 13 % expired, 8 % cancelled, 7 % failed;
//! - their ledger entries exactly as the server writes them (`hold:{id}` when bought,
//!   `settle:{id}` when it ended: a capture into revenue or a release back to the wallet, two
//!   lines each), a top-up before each buying customer's first purchase, monthly fees for
//!   paid plans, and a manual refund of one completed verification in 500;
//! - each customer's funnel steps and their server events, plus client events (page views
//!   and the like).
//!
//! Wallet balances are not reconstructed (the reports never read them): the generated
//! ledger is for reading, not for spending.
//!
//! `measure` then starts the real server on that database, signs in an administrator with
//! a TOTP code, and calls each analytics RPC over the last 90 days: once before the rollup
//! job has run (everything from the raw tables), then, after one rollup pass, `rounds` times
//! each, reporting the median and the slowest.
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chrono::{Datelike, Days, Utc};
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::analytics_service_client::AnalyticsServiceClient;
use namaskah_proto::v1::auth_service_client::AuthServiceClient;
use namaskah_server::{Application, Config, store};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tonic::Request;
use tonic::transport::Channel;

/// How big the generated world is.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub users: u64,
    pub verifications: u64,
    pub client_events: u64,
    pub days: u64,
}

impl Default for Size {
    fn default() -> Self {
        Self {
            users: 100_000,
            verifications: 1_000_000,
            client_events: 500_000,
            days: 365,
        }
    }
}

const SERVICES: &str = "ARRAY['whatsapp','telegram','google','facebook','instagram','tiktok','twitter','discord','uber','amazon','microsoft','apple','paypal','tinder','snapchat','linkedin','yahoo','netflix','airbnb','signal','viber','wechat','line','openai']";
const COUNTRIES: &str =
    "ARRAY['US','GB','IN','ID','BR','NG','RU','PH','DE','FR','CA','MX','PK','VN','TH','KE']";

/// A UUIDv7 minted at timestamp `t`, as the server mints ledger entries' ids at insertion
/// (the analytics rollup reads the ledger by id).
fn uuid7(t: &str) -> String {
    format!(
        "(lpad(to_hex(floor(extract(epoch FROM {t}) * 1000)::bigint), 12, '0') || '7' \
         || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid"
    )
}

fn statements(size: Size) -> Vec<(&'static str, String)> {
    let Size {
        users,
        verifications,
        client_events,
        days,
    } = size;
    vec![
        (
            "customers",
            format!(
                "INSERT INTO users (id, email, email_lower, email_verified, password_hash, role, plan, status, referral_code, totp_enabled, created_at, updated_at) \
                 SELECT gen_random_uuid(), 'gen' || i || '@example.test', 'gen' || i || '@example.test', random() < 0.8, 'generated: no login', 'customer', \
                   CASE WHEN r < 0.04 THEN 'pro' WHEN r < 0.05 THEN 'enterprise' ELSE 'starter' END, 'active', 'GEN' || i, false, t, t \
                 FROM (SELECT i, random() AS r, now() - interval '1 hour' - ({days} * sqrt(random())) * interval '1 day' AS t \
                       FROM generate_series(1, {users}) i) s"
            ),
        ),
        (
            "index of the generated customers",
            "CREATE TABLE gen_users AS SELECT row_number() OVER (ORDER BY id) AS idx, id, created_at, plan, email_verified FROM users WHERE email LIKE 'gen%@example.test'".to_owned(),
        ),
        ("gen_users key", "ALTER TABLE gen_users ADD PRIMARY KEY (idx)".to_owned()),
        (
            "wallets and holds",
            "INSERT INTO ledger_accounts (id, code, kind, owner_id, currency, balance, created_at, updated_at) \
             SELECT gen_random_uuid(), k || ':' || u.id || ':USD', k, u.id, 'USD', 0, u.created_at, u.created_at \
             FROM gen_users u CROSS JOIN (VALUES ('wallet'), ('holds')) AS kinds(k) \
             ON CONFLICT (code) DO NOTHING".to_owned(),
        ),
        (
            "platform accounts",
            "INSERT INTO ledger_accounts (id, code, kind, owner_id, currency, balance, created_at, updated_at) \
             SELECT gen_random_uuid(), 'platform:' || k || ':USD', k, NULL, 'USD', 0, now(), now() \
             FROM (VALUES ('revenue'), ('gateway_clearing')) AS kinds(k) ON CONFLICT (code) DO NOTHING".to_owned(),
        ),
        (
            "verifications",
            format!(
                "INSERT INTO verifications (id, user_id, request_id, request_fingerprint, service, country, price, currency, status, charge_state, provider, phone_number, code, last_sequence, created_at, updated_at, expires_at, ended_at, poll_count, cleanup_attempts) \
                 SELECT gen_random_uuid(), u.id, 'gen-' || s.i, 'generated', \
                   ({SERVICES})[1 + floor(24 * power(s.r3, 2))::int], ({COUNTRIES})[1 + floor(16 * power(s.r4, 2))::int], \
                   50 + floor(250 * s.r5)::int, 'USD', \
                   CASE WHEN s.r2 < 0.72 THEN 'completed' WHEN s.r2 < 0.85 THEN 'expired' WHEN s.r2 < 0.93 THEN 'cancelled' ELSE 'failed' END, \
                   CASE WHEN s.r2 < 0.72 THEN 'captured' ELSE 'refunded' END, 'sandbox', '+1555' || lpad((s.i % 10000000)::text, 7, '0'), \
                   CASE WHEN s.r2 < 0.72 THEN '123456' END, 3, tt.t, tt.t, tt.t + interval '15 minutes', \
                   tt.t + CASE WHEN s.r2 < 0.72 THEN (30 + 270 * s.r5) * interval '1 second' WHEN s.r2 < 0.85 THEN interval '15 minutes' \
                              WHEN s.r2 < 0.93 THEN interval '2 minutes' ELSE interval '3 seconds' END, 0, 0 \
                 FROM (SELECT i, 1 + floor({users} * power(random(), 3))::bigint AS uidx, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5 \
                       FROM generate_series(1, {verifications}) i) s \
                 JOIN gen_users u ON u.idx = s.uidx \
                 CROSS JOIN LATERAL (SELECT u.created_at + (now() - interval '20 minutes' - u.created_at) * s.r1 AS t) tt"
            ),
        ),
        (
            "holds",
            format!("INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, created_at) \
             SELECT {}, 'hold:' || v.id, 'verification_hold', v.user_id, v.id::text, v.service || ' number in ' || v.country, v.created_at \
             FROM verifications v WHERE v.request_id LIKE 'gen-%'", uuid7("v.created_at")),
        ),
        (
            "settlements",
            format!("INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, created_at) \
             SELECT {}, 'settle:' || v.id, CASE WHEN v.status = 'completed' THEN 'verification_capture' ELSE 'verification_refund' END, \
               v.user_id, v.id::text, v.service || CASE WHEN v.status = 'completed' THEN ' code received' ELSE ' refund' END, v.ended_at \
             FROM verifications v WHERE v.request_id LIKE 'gen-%'", uuid7("v.ended_at")),
        ),
        (
            "manual refunds",
            format!("INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, created_at) \
             SELECT {}, 'refund:' || v.id, 'verification_refund', v.user_id, v.id::text, v.service || ' refund: generated', t \
             FROM verifications v CROSS JOIN LATERAL (SELECT LEAST(v.ended_at + interval '1 day', now() - interval '10 minutes') AS t) tt \
             WHERE v.request_id LIKE 'gen-%' AND v.status = 'completed' AND random() < 0.002", uuid7("tt.t")),
        ),
        (
            "top-ups",
            format!("INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, created_at) \
             SELECT {}, 'topup:gen-' || f.user_id, 'top_up', f.user_id, 'gen-' || f.user_id, 'Top-up (generated)', tt.t \
             FROM (SELECT user_id, MIN(created_at) AS first_at FROM verifications WHERE request_id LIKE 'gen-%' GROUP BY user_id) f \
             JOIN gen_users u ON u.id = f.user_id \
             CROSS JOIN LATERAL (SELECT GREATEST(f.first_at - interval '1 hour', u.created_at) AS t) tt", uuid7("tt.t")),
        ),
        (
            "plan fees",
            format!("INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, created_at) \
             SELECT {}, 'renewal:' || u.id || ':' || m, 'subscription_fee', u.id, 'subscriptions/' || u.id, u.plan || ' plan (generated)', tt.t \
             FROM gen_users u CROSS JOIN LATERAL generate_series(0, floor(extract(epoch FROM (now() - u.created_at - interval '1 day')) / 2592000)::int) m \
             CROSS JOIN LATERAL (SELECT u.created_at + interval '1 day' + m * interval '30 days' AS t) tt \
             WHERE u.plan <> 'starter' AND u.created_at < now() - interval '1 day'", uuid7("tt.t")),
        ),
        (
            "ledger lines",
            // Two lines per entry, as the server writes them (balance_after left unset).
            "INSERT INTO journal_lines (id, entry_id, account_id, amount, balance_after, created_at) \
             SELECT gen_random_uuid(), y.entry_id, a.id, x.amount, NULL, y.created_at FROM ( \
               SELECT e.id AS entry_id, e.created_at, \
                 CASE e.kind WHEN 'verification_hold' THEN 'wallet:' || e.user_id || ':USD' \
                             WHEN 'verification_capture' THEN 'holds:' || e.user_id || ':USD' \
                             WHEN 'top_up' THEN 'platform:gateway_clearing:USD' \
                             WHEN 'subscription_fee' THEN 'wallet:' || e.user_id || ':USD' \
                             ELSE CASE WHEN e.business_key LIKE 'refund:%' THEN 'platform:revenue:USD' ELSE 'holds:' || e.user_id || ':USD' END END AS from_code, \
                 CASE e.kind WHEN 'verification_hold' THEN 'holds:' || e.user_id || ':USD' \
                             WHEN 'verification_capture' THEN 'platform:revenue:USD' \
                             WHEN 'top_up' THEN 'wallet:' || e.user_id || ':USD' \
                             WHEN 'subscription_fee' THEN 'platform:revenue:USD' \
                             ELSE 'wallet:' || e.user_id || ':USD' END AS to_code, \
                 CASE WHEN e.kind = 'subscription_fee' THEN CASE WHEN e.memo LIKE 'pro%' THEN 1999 ELSE 9999 END \
                      WHEN e.kind = 'top_up' THEN 2000 + 500 * floor(10 * random())::int \
                      ELSE v.price END AS amount \
               FROM journal_entries e LEFT JOIN verifications v ON v.id::text = e.reference AND e.kind LIKE 'verification_%' \
             ) y CROSS JOIN LATERAL (VALUES (y.from_code, -y.amount), (y.to_code, y.amount)) AS x(code, amount) \
             JOIN ledger_accounts a ON a.code = x.code".to_owned(),
        ),
        (
            "funnel: registered",
            "INSERT INTO funnel_progress (user_id, step, reached_at) SELECT id, 'registered', created_at FROM gen_users".to_owned(),
        ),
        (
            "funnel: email verified",
            "INSERT INTO funnel_progress (user_id, step, reached_at) \
             SELECT id, 'email_verified', created_at + (60 + 3600 * power(random(), 4)) * interval '1 second' FROM gen_users WHERE email_verified".to_owned(),
        ),
        (
            "funnel: first top-up",
            "INSERT INTO funnel_progress (user_id, step, reached_at) \
             SELECT user_id, 'first_top_up', created_at FROM journal_entries WHERE kind = 'top_up' AND business_key LIKE 'topup:gen-%'".to_owned(),
        ),
        (
            "funnel: first verification",
            "INSERT INTO funnel_progress (user_id, step, reached_at) \
             SELECT user_id, 'first_verification', MIN(created_at) FROM verifications WHERE request_id LIKE 'gen-%' GROUP BY user_id".to_owned(),
        ),
        (
            "funnel: first completed verification",
            "INSERT INTO funnel_progress (user_id, step, reached_at) \
             SELECT user_id, 'first_completed_verification', MIN(ended_at) FROM verifications WHERE request_id LIKE 'gen-%' AND status = 'completed' GROUP BY user_id".to_owned(),
        ),
        (
            "funnel: plan upgraded",
            "INSERT INTO funnel_progress (user_id, step, reached_at) \
             SELECT id, 'plan_upgraded', created_at + interval '1 day' FROM gen_users WHERE plan <> 'starter' AND created_at < now() - interval '1 day'".to_owned(),
        ),
        (
            "server events",
            "INSERT INTO conversion_events (id, name, source, user_id, anonymous_id, properties, event_time, received_at, dedup_key) \
             SELECT gen_random_uuid(), f.step, 'server', f.user_id, NULL, '{}', f.reached_at, f.reached_at, 'step:' || f.user_id || ':' || f.step \
             FROM funnel_progress f JOIN gen_users u ON u.id = f.user_id".to_owned(),
        ),
        (
            "client events",
            format!(
                "INSERT INTO conversion_events (id, name, source, user_id, anonymous_id, properties, event_time, received_at, dedup_key) \
                 SELECT gen_random_uuid(), (ARRAY['page_viewed','pricing_viewed','signup_started','checkout_started','verification_started','code_copied','api_docs_viewed'])[1 + floor(7 * power(random(), 2))::int], \
                   'client', CASE WHEN random() < 0.6 THEN u.id END, 'anon-' || s.i, '{{\"page\":\"/\"}}', u.created_at + (now() - u.created_at) * random(), now(), NULL \
                 FROM (SELECT i, 1 + floor({users} * random())::bigint AS uidx FROM generate_series(1, {client_events}) i) s JOIN gen_users u ON u.idx = s.uidx"
            ),
        ),
        ("drop the index of customers", "DROP TABLE gen_users".to_owned()),
        ("analyze", "ANALYZE".to_owned()),
    ]
}

async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("a row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Fills the (migrated, empty) PostgreSQL database `db`; prints what each step took.
pub async fn fill(db: &DatabaseConnection, size: Size) -> anyhow::Result<()> {
    ensure!(
        db.get_database_backend() == sea_orm::DbBackend::Postgres,
        "the generator writes PostgreSQL SQL: give it a postgres:// database"
    );
    ensure!(
        count(db, "SELECT COUNT(*) FROM users").await? == 0,
        "the database already holds accounts: give the generator an empty one"
    );
    for (what, sql) in statements(size) {
        let started = Instant::now();
        let result = db
            .execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .with_context(|| format!("generating {what}"))?;
        println!(
            "{what:<40} {:>9} rows  {:>7.1} s",
            result.rows_affected(),
            started.elapsed().as_secs_f64()
        );
    }
    for table in [
        "users",
        "verifications",
        "journal_entries",
        "journal_lines",
        "funnel_progress",
        "conversion_events",
    ] {
        println!(
            "{table:<20} {:>10} rows",
            count(db, &format!("SELECT COUNT(*) FROM {table}")).await?
        );
    }
    Ok(())
}

/// One RPC's timings.
#[derive(Debug)]
pub struct Timing {
    pub rpc: &'static str,
    pub cold: Duration,
    pub median: Duration,
    pub slowest: Duration,
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

/// Signs in a new administrator with a TOTP code; returns its access token.
async fn admin_token(db: &DatabaseConnection, channel: Channel) -> anyhow::Result<String> {
    let email = format!("bench-admin-{}@example.test", uuid::Uuid::new_v4().simple());
    let password = "a long bench password 1";
    namaskah_server::identity::service::create_admin(db, &email, password)
        .await
        .map_err(|e| anyhow::anyhow!("creating the administrator: {e}"))?;
    let mut auth = AuthServiceClient::new(channel);
    let login = |totp_code: String| pb::LoginRequest {
        email: email.clone(),
        password: password.into(),
        totp_code,
    };
    let first = auth
        .login(login(String::new()))
        .await?
        .into_inner()
        .tokens
        .context("tokens")?
        .access_token;
    let secret = auth
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &first))
        .await?
        .into_inner()
        .secret;
    let totp = namaskah_server::identity::domain::totp(&secret, &email)
        .context("a TOTP from the secret")?;
    let now = Utc::now().timestamp() as u64;
    auth.confirm_two_factor(bearer(
        pb::ConfirmTwoFactorRequest {
            code: totp.generate(now).to_string(),
        },
        &first,
    ))
    .await?;
    Ok(auth
        .login(login(totp.generate(now + 30).to_string()))
        .await?
        .into_inner()
        .tokens
        .context("tokens")?
        .access_token)
}

fn date(day: chrono::NaiveDate) -> Option<pb::Date> {
    Some(pb::Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    })
}

/// Starts the server on `database_url` and times each analytics RPC over the last 90 days.
pub async fn measure(database_url: &str, rounds: usize) -> anyhow::Result<Vec<Timing>> {
    let source = std::collections::HashMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("NAMASKAH_GRPC_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("NAMASKAH_EDGE_ADDR".to_owned(), String::new()),
        ("NAMASKAH_METRICS_ADDR".to_owned(), String::new()),
        ("NAMASKAH_SENSITIVE_RPM".to_owned(), "1000000".to_owned()),
    ]);
    let config = Config::from_source(&source).context("configuration")?;
    let app = Application::build(config).await?;
    let addr = app.grpc_addr();
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let token = admin_token(&state.db, channel.clone()).await?;
    let mut client = AnalyticsServiceClient::new(channel);
    let end = Utc::now().date_naive();
    let start = end - Days::new(89);

    type Call = Box<
        dyn Fn(
            &mut AnalyticsServiceClient<Channel>,
            &str,
        ) -> futures::future::BoxFuture<'static, Result<(), tonic::Status>>,
    >;
    let calls: Vec<(&'static str, Call)> = vec![
        (
            "GetRevenueAnalytics (90 days by day)",
            Box::new(move |c, t| {
                let mut c = c.clone();
                let r = bearer(
                    pb::GetRevenueAnalyticsRequest {
                        start_date: date(start),
                        end_date: date(end),
                        granularity: pb::TimeGranularity::Day as i32,
                        tenant: String::new(),
                    },
                    t,
                );
                Box::pin(async move { c.get_revenue_analytics(r).await.map(|_| ()) })
            }),
        ),
        (
            "GetConversionFunnel (90-day cohort)",
            Box::new(move |c, t| {
                let mut c = c.clone();
                let r = bearer(
                    pb::GetConversionFunnelRequest {
                        start_date: date(start),
                        end_date: date(end),
                        tenant: String::new(),
                    },
                    t,
                );
                Box::pin(async move { c.get_conversion_funnel(r).await.map(|_| ()) })
            }),
        ),
        (
            "GetCustomerMetrics (90 days)",
            Box::new(move |c, t| {
                let mut c = c.clone();
                let r = bearer(
                    pb::GetCustomerMetricsRequest {
                        start_date: date(start),
                        end_date: date(end),
                        tenant: String::new(),
                    },
                    t,
                );
                Box::pin(async move { c.get_customer_metrics(r).await.map(|_| ()) })
            }),
        ),
    ];

    // Before any rollup: the raw tables alone (what the reports would cost without it).
    let mut cold = Vec::new();
    for (_, call) in &calls {
        let started = Instant::now();
        call(&mut client, &token).await?;
        cold.push(started.elapsed());
    }
    // The server's own job starts rolling up at once; this pass helps, and the timings
    // start only when the rollup has caught up.
    let started = Instant::now();
    let mut windows = 0;
    loop {
        windows += state
            .analytics
            .roll_up(Utc::now())
            .await
            .map_err(|e| anyhow::anyhow!("rollup: {e}"))?;
        let upto = namaskah_server::analytics::repo::rollup_upto(
            &state.db,
            namaskah_server::analytics::repo::DAILY,
        )
        .await
        .map_err(|e| anyhow::anyhow!("rollup mark: {e}"))?;
        if upto > Utc::now() - chrono::Duration::minutes(5) {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the rollup did not catch up in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "rollup caught up in {:.1} s ({windows} windows by this pass, the rest by the server's job)",
        started.elapsed().as_secs_f64()
    );
    let mut timings = Vec::new();
    for ((rpc, call), cold) in calls.iter().zip(cold) {
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds.max(1) {
            let started = Instant::now();
            call(&mut client, &token).await?;
            samples.push(started.elapsed());
        }
        samples.sort();
        timings.push(Timing {
            rpc,
            cold,
            median: samples[samples.len() / 2],
            slowest: *samples.last().expect("a sample"),
        });
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(timings)
}

/// Connects to `database_url` and applies the migrations.
pub async fn connect(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    let source =
        std::collections::HashMap::from([("DATABASE_URL".to_owned(), database_url.to_owned())]);
    let config = Config::from_source(&source).context("DATABASE_URL")?;
    let db = store::connect(&config).await?;
    store::migrate(&db).await?;
    Ok(db)
}
