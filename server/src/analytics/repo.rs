//! Storage of analytics: the rollup job's windows and the reports' reads. The SQL is shared
//! by PostgreSQL and SQLite except for two expressions (a timestamp's UTC day, the seconds
//! between two timestamps), which [`Sql`] writes for the backend at hand.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType, OnConflict};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QuerySelect, Statement, Value,
};
use uuid::Uuid;

use super::domain::{Daily, DateRange, FunnelStep, Metric, day_key, median, parse_day_key};
use super::entities::analytics_rollups;
use crate::error::StoreError;

/// The one rollup this room keeps (revenue, active days and outcomes move together).
pub const DAILY: &str = "daily";

/// Maps a ledger entry to the rollup's metric names (entries of other kinds are not read).
const METRIC_OF_ENTRY: &str = "CASE e.kind \
     WHEN 'top_up' THEN 'top_ups' \
     WHEN 'verification_capture' THEN 'captures' \
     WHEN 'subscription_fee' THEN 'subscriptions' \
     WHEN 'overage_charge' THEN 'overage' \
     ELSE CASE WHEN e.business_key LIKE 'refund:%' THEN 'manual_refunds' ELSE 'released' END \
   END";

/// The kinds the rollup sums: each written at the moment it happens. Subscription fees and
/// overage charges are dated at their period's boundary, possibly in the past, so a window
/// could miss them: they are always read from the ledger itself (a few rows per subscriber
/// and month, behind an index).
const ROLLED_KINDS: &str = "('top_up', 'verification_capture', 'verification_refund')";
const DATED_KINDS: &str = "('subscription_fee', 'overage_charge')";
/// Everyone who is not a customer (administrators): a handful of ids, so `NOT IN` them is a
/// hashed look-up, where `IN` the customers would build a hash of every account per query.
const NOT_CUSTOMERS: &str = "(SELECT id FROM users WHERE role <> 'customer')";

/// Whose figures a report counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every customer (administrators never count).
    Platform,
    /// One tenant's customers (`None`: the platform's own, `tenants/default`). Its reports
    /// read the raw tables only: the rollups are the whole platform's.
    Tenant(Option<Uuid>),
}

impl Audience {
    /// Whether the platform's rollups answer for this audience.
    fn rolled_up(self) -> bool {
        self == Audience::Platform
    }
}

/// A statement under construction for one backend: placeholders are numbered as they are
/// bound.
struct Sql {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Sql {
    fn new(conn: &impl ConnectionTrait) -> Self {
        Self {
            backend: conn.get_database_backend(),
            values: Vec::new(),
        }
    }

    /// Binds `value`, returning its placeholder: numbered on both backends (`$n`, `?n`), so
    /// that a value may be used several times and in any order.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => format!("?{}", self.values.len()),
        }
    }

    /// The UTC day of timestamp column `col`, as `YYYY-MM-DD` text.
    fn day(&self, col: &str) -> String {
        match self.backend {
            DbBackend::Postgres => format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
            // sqlx writes UTC times as RFC 3339 text that starts with the day.
            _ => format!("substr({col}, 1, 10)"),
        }
    }

    /// Seconds from timestamp `a` to timestamp `b`, as a double (PostgreSQL).
    fn seconds_between(&self, a: &str, b: &str) -> String {
        format!("EXTRACT(EPOCH FROM ({b} - {a}))::float8")
    }

    /// The condition that account column `col` is one the report counts.
    fn counted(&mut self, col: &str, audience: Audience) -> String {
        match audience {
            Audience::Platform => format!("{col} NOT IN {NOT_CUSTOMERS}"),
            Audience::Tenant(Some(tenant)) => {
                let t = self.bind(tenant);
                format!(
                    "{col} IN (SELECT id FROM users WHERE tenant_id = {t} AND role = 'customer')"
                )
            }
            Audience::Tenant(None) => format!(
                "{col} IN (SELECT id FROM users WHERE tenant_id IS NULL AND role = 'customer')"
            ),
        }
    }

    /// The condition on `users` rows for the audience (the `users` table's own columns).
    fn users_of(&mut self, audience: Audience) -> String {
        match audience {
            Audience::Platform => String::new(),
            Audience::Tenant(Some(tenant)) => format!(" AND tenant_id = {}", self.bind(tenant)),
            Audience::Tenant(None) => " AND tenant_id IS NULL".to_owned(),
        }
    }

    fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// Locks the rollup's row for this transaction, creating it (at the epoch: everything still
/// to roll up) the first time. None when another instance holds it (PostgreSQL's `SKIP
/// LOCKED`): that instance is rolling up now.
pub async fn lock_rollup(
    txn: &DatabaseTransaction,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    analytics_rollups::Entity::insert(analytics_rollups::ActiveModel {
        name: sea_orm::Set(name.to_owned()),
        upto: sea_orm::Set(DateTime::<Utc>::UNIX_EPOCH),
        updated_at: sea_orm::Set(now),
    })
    .on_conflict(
        OnConflict::column(analytics_rollups::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let mut query = analytics_rollups::Entity::find_by_id(name.to_owned());
    if txn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(query.one(txn).await?.map(|row| row.upto))
}

/// How far the rollup has got: everything dated before this is in it.
pub async fn rollup_upto(
    conn: &impl ConnectionTrait,
    name: &str,
) -> Result<DateTime<Utc>, StoreError> {
    Ok(analytics_rollups::Entity::find_by_id(name.to_owned())
        .one(conn)
        .await?
        .map(|row| row.upto)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH))
}

/// When the first account was created (nothing the rollup reads is older).
pub async fn first_account_time(
    conn: &impl ConnectionTrait,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let sql = "SELECT MIN(created_at) FROM users".to_owned();
    let row = conn.query_one_raw(Sql::new(conn).statement(sql)).await?;
    match row {
        Some(row) => get::<Option<DateTime<Utc>>>(&row, 0),
        None => Ok(None),
    }
}

/// Adds everything dated in `[from, to)` to the daily rollups and moves the rollup to `to`,
/// in the caller's transaction (which holds the rollup's row).
pub async fn roll_up(
    txn: &DatabaseTransaction,
    name: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut q = Sql::new(txn);
    let (a, b) = (q.bind(from), q.bind(to));
    let sql = format!(
        "INSERT INTO analytics_revenue_daily (day, metric, amount, entries) \
         SELECT {day}, {METRIC_OF_ENTRY}, CAST(SUM(l.amount) AS BIGINT), CAST(COUNT(DISTINCT e.id) AS BIGINT) \
         FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id AND l.amount > 0 \
         WHERE e.kind IN {ROLLED_KINDS} AND e.created_at >= {a} AND e.created_at < {b} \
           AND e.user_id NOT IN {NOT_CUSTOMERS} \
         GROUP BY 1, 2 \
         ON CONFLICT (day, metric) DO UPDATE SET \
           amount = analytics_revenue_daily.amount + excluded.amount, \
           entries = analytics_revenue_daily.entries + excluded.entries",
        day = q.day("e.created_at"),
    );
    txn.execute_raw(q.statement(sql)).await?;

    let mut q = Sql::new(txn);
    let (a, b) = (q.bind(from), q.bind(to));
    let sql = format!(
        "INSERT INTO analytics_active_days (day, user_id) \
         SELECT DISTINCT {day}, user_id FROM verifications \
         WHERE created_at >= {a} AND created_at < {b} \
         ON CONFLICT (day, user_id) DO NOTHING",
        day = q.day("created_at"),
    );
    txn.execute_raw(q.statement(sql)).await?;

    let mut q = Sql::new(txn);
    let (a, b) = (q.bind(from), q.bind(to));
    let sql = format!(
        "INSERT INTO analytics_outcomes_daily (day, service, country, status, verifications) \
         SELECT {day}, service, country, status, CAST(COUNT(*) AS BIGINT) FROM verifications \
         WHERE ended_at >= {a} AND ended_at < {b} \
           AND status IN ('completed', 'expired', 'failed', 'cancelled') \
           AND user_id NOT IN {NOT_CUSTOMERS} \
         GROUP BY 1, 2, 3, 4 \
         ON CONFLICT (day, service, country, status) DO UPDATE SET \
           verifications = analytics_outcomes_daily.verifications + excluded.verifications",
        day = q.day("ended_at"),
    );
    txn.execute_raw(q.statement(sql)).await?;

    let mut q = Sql::new(txn);
    let (t, now, n) = (q.bind(to), q.bind(Utc::now()), q.bind(name));
    let sql =
        format!("UPDATE analytics_rollups SET upto = {t}, updated_at = {now} WHERE name = {n}");
    txn.execute_raw(q.statement(sql)).await?;
    Ok(())
}

fn get<T: sea_orm::TryGetable>(row: &sea_orm::QueryResult, index: usize) -> Result<T, StoreError> {
    row.try_get_by_index(index)
        .map_err(|e| StoreError::Database(sea_orm::DbErr::Type(format!("column {index}: {e:?}"))))
}

fn add_rows(daily: &mut Daily, rows: Vec<sea_orm::QueryResult>) -> Result<(), StoreError> {
    for row in rows {
        let day: String = get(&row, 0)?;
        let metric: String = get(&row, 1)?;
        let amount: i64 = get(&row, 2)?;
        let entries: i64 = get(&row, 3)?;
        let (Some(day), Some(metric)) = (parse_day_key(&day), Metric::parse(&metric)) else {
            return Err(StoreError::Corrupt(format!("revenue row {day} {metric}")));
        };
        daily
            .entry(day)
            .or_default()
            .add_metric(metric, amount, entries);
    }
    Ok(())
}

/// Per-day ledger sums over `days`: the rollup's days, what came after it from the ledger,
/// and the fees and overage (always from the ledger).
pub async fn daily_revenue(
    conn: &impl ConnectionTrait,
    days: &DateRange,
    upto: DateTime<Utc>,
    audience: Audience,
) -> Result<Daily, StoreError> {
    let mut daily = Daily::new();

    let tail_from = if audience.rolled_up() {
        let mut q = Sql::new(conn);
        let (a, b) = (q.bind(day_key(days.start)), q.bind(day_key(days.end)));
        let sql = format!(
            "SELECT day, metric, amount, entries FROM analytics_revenue_daily \
             WHERE day >= {a} AND day <= {b}"
        );
        add_rows(&mut daily, conn.query_all_raw(q.statement(sql)).await?)?;
        upto.max(days.from())
    } else {
        days.from()
    };
    let until = days.until();
    for (kinds, from) in [(ROLLED_KINDS, tail_from), (DATED_KINDS, days.from())] {
        if from >= until {
            continue;
        }
        let mut q = Sql::new(conn);
        let (a, b) = (q.bind(from), q.bind(until));
        let counted = q.counted("e.user_id", audience);
        let sql = format!(
            "SELECT {day}, {METRIC_OF_ENTRY}, CAST(SUM(l.amount) AS BIGINT), CAST(COUNT(DISTINCT e.id) AS BIGINT) \
             FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id AND l.amount > 0 \
             WHERE e.kind IN {kinds} AND e.created_at >= {a} AND e.created_at < {b} \
               AND {counted} \
             GROUP BY 1, 2",
            day = q.day("e.created_at"),
        );
        add_rows(&mut daily, conn.query_all_raw(q.statement(sql)).await?)?;
    }

    // Tenants' margins, from their margin accounts' lines (a handful of accounts, each line
    // dated as its entry): captures add, manual refunds take back.
    let mut q = Sql::new(conn);
    let (a, b) = (q.bind(days.from()), q.bind(until));
    let accounts = match audience {
        Audience::Platform => {
            "SELECT id FROM ledger_accounts WHERE kind = 'tenant_margin'".to_owned()
        }
        Audience::Tenant(Some(tenant)) => {
            let code = q.bind(crate::wallet::domain::AccountRef::tenant_margin(tenant).code());
            format!("SELECT id FROM ledger_accounts WHERE code = {code}")
        }
        // The platform's own customers earn no reseller anything.
        Audience::Tenant(None) => "SELECT id FROM ledger_accounts WHERE 1 = 0".to_owned(),
    };
    let sql = format!(
        "SELECT {day}, 'reseller_margin', CAST(SUM(l.amount) AS BIGINT), CAST(COUNT(*) AS BIGINT) \
         FROM journal_lines l \
         WHERE l.account_id IN ({accounts}) AND l.created_at >= {a} AND l.created_at < {b} \
         GROUP BY 1",
        day = q.day("l.created_at"),
    );
    add_rows(&mut daily, conn.query_all_raw(q.statement(sql)).await?)?;
    Ok(daily)
}

/// Customers registered before the range's end, in it, and in the period before it.
pub async fn customer_counts(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    previous: &DateRange,
    audience: Audience,
) -> Result<(i64, i64, i64), StoreError> {
    let mut q = Sql::new(conn);
    let end = q.bind(range.until());
    let start = q.bind(range.from());
    let prev = q.bind(previous.from());
    let tenant = q.users_of(audience);
    let sql = format!(
        "SELECT \
           CAST(COALESCE(SUM(CASE WHEN created_at < {end} THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN created_at >= {start} AND created_at < {end} THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN created_at >= {prev} AND created_at < {start} THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM users WHERE role = 'customer'{tenant}"
    );
    let row = conn
        .query_one_raw(q.statement(sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("customer counts".to_owned()))?;
    Ok((get(&row, 0)?, get(&row, 1)?, get(&row, 2)?))
}

/// Distinct active customers: in the range, in the previous period, in the previous period
/// but not the range (churned), on the last day, in the last 7 and the last 30 days.
pub async fn activity(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    previous: &DateRange,
    upto: DateTime<Utc>,
    audience: Audience,
) -> Result<[i64; 6], StoreError> {
    let week = range.trailing(7);
    let month = range.trailing(30);
    let window = previous.union(&month).union(range);
    let mut q = Sql::new(conn);
    let (rs, re) = (q.bind(day_key(range.start)), q.bind(day_key(range.end)));
    let (ps, pe) = (
        q.bind(day_key(previous.start)),
        q.bind(day_key(previous.end)),
    );
    let (ws, ms) = (q.bind(day_key(week.start)), q.bind(day_key(month.start)));
    let (rolled, tail_from) = if audience.rolled_up() {
        let (lo, hi) = (q.bind(day_key(window.start)), q.bind(day_key(window.end)));
        (
            format!(
                "SELECT day, user_id FROM analytics_active_days WHERE day >= {lo} AND day <= {hi} UNION ALL "
            ),
            q.bind(upto.max(window.from())),
        )
    } else {
        (String::new(), q.bind(window.from()))
    };
    let tail_until = q.bind(window.until());
    let counted = q.counted("user_id", audience);
    let sql = format!(
        "SELECT \
           CAST(COALESCE(SUM(r), 0) AS BIGINT), CAST(COALESCE(SUM(p), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN p = 1 AND r = 0 THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(d1), 0) AS BIGINT), CAST(COALESCE(SUM(d7), 0) AS BIGINT), \
           CAST(COALESCE(SUM(d30), 0) AS BIGINT) \
         FROM ( \
           SELECT user_id, \
             MAX(CASE WHEN day >= {rs} AND day <= {re} THEN 1 ELSE 0 END) AS r, \
             MAX(CASE WHEN day >= {ps} AND day <= {pe} THEN 1 ELSE 0 END) AS p, \
             MAX(CASE WHEN day = {re} THEN 1 ELSE 0 END) AS d1, \
             MAX(CASE WHEN day >= {ws} AND day <= {re} THEN 1 ELSE 0 END) AS d7, \
             MAX(CASE WHEN day >= {ms} AND day <= {re} THEN 1 ELSE 0 END) AS d30 \
           FROM ( \
             {rolled}\
             SELECT {day} AS day, user_id FROM verifications \
               WHERE created_at >= {tail_from} AND created_at < {tail_until} \
           ) a \
           WHERE {counted} \
           GROUP BY user_id \
         ) u",
        day = q.day("created_at"),
    );
    let row = conn
        .query_one_raw(q.statement(sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("activity".to_owned()))?;
    Ok([
        get(&row, 0)?,
        get(&row, 1)?,
        get(&row, 2)?,
        get(&row, 3)?,
        get(&row, 4)?,
        get(&row, 5)?,
    ])
}

/// Customers charged anything in the range: a final verification charge, a fee, overage.
pub async fn paying_customers(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    audience: Audience,
) -> Result<i64, StoreError> {
    let mut q = Sql::new(conn);
    let (a, b) = (q.bind(range.from()), q.bind(range.until()));
    let counted = q.counted("user_id", audience);
    let sql = format!(
        "SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM journal_entries \
         WHERE kind IN ('verification_capture', 'subscription_fee', 'overage_charge') \
           AND created_at >= {a} AND created_at < {b} AND {counted}"
    );
    let row = conn
        .query_one_raw(q.statement(sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("paying customers".to_owned()))?;
    get(&row, 0)
}

/// Verification outcomes per (service, country): counts by status, over the days of the
/// range (by the day each ended).
pub type Outcomes = BTreeMap<(String, String), BTreeMap<String, i64>>;

pub async fn outcomes(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    upto: DateTime<Utc>,
    audience: Audience,
) -> Result<Outcomes, StoreError> {
    let mut out = Outcomes::new();
    let mut add = |rows: Vec<sea_orm::QueryResult>| -> Result<(), StoreError> {
        for row in rows {
            let service: String = get(&row, 0)?;
            let country: String = get(&row, 1)?;
            let status: String = get(&row, 2)?;
            let n: i64 = get(&row, 3)?;
            *out.entry((service, country))
                .or_default()
                .entry(status)
                .or_insert(0) += n;
        }
        Ok(())
    };

    let from = if audience.rolled_up() {
        let mut q = Sql::new(conn);
        let (a, b) = (q.bind(day_key(range.start)), q.bind(day_key(range.end)));
        let sql = format!(
            "SELECT service, country, status, CAST(SUM(verifications) AS BIGINT) \
             FROM analytics_outcomes_daily WHERE day >= {a} AND day <= {b} \
             GROUP BY service, country, status"
        );
        add(conn.query_all_raw(q.statement(sql)).await?)?;
        upto.max(range.from())
    } else {
        range.from()
    };
    if from < range.until() {
        let mut q = Sql::new(conn);
        let (a, b) = (q.bind(from), q.bind(range.until()));
        let counted = q.counted("user_id", audience);
        let sql = format!(
            "SELECT service, country, status, CAST(COUNT(*) AS BIGINT) FROM verifications \
             WHERE ended_at >= {a} AND ended_at < {b} \
               AND status IN ('completed', 'expired', 'failed', 'cancelled') \
               AND {counted} \
             GROUP BY service, country, status"
        );
        add(conn.query_all_raw(q.statement(sql)).await?)?;
    }
    Ok(out)
}

/// The funnel of the customers who registered in the range: how many reached each step, and
/// the median seconds from each step to the next over those who reached both in that order.
pub async fn funnel(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    audience: Audience,
) -> Result<Vec<(FunnelStep, i64, Option<f64>)>, StoreError> {
    let mut q = Sql::new(conn);
    let (a, b) = (q.bind(range.from()), q.bind(range.until()));
    let counted = q.counted("r.user_id", audience);
    let columns: Vec<String> = FunnelStep::ALL
        .iter()
        .enumerate()
        .map(|(i, step)| {
            format!(
                "MAX(CASE WHEN f.step = '{}' THEN f.reached_at END) AS s{i}",
                step.as_str()
            )
        })
        .collect();
    // One row per customer of the cohort, with the time of each step (or NULL).
    let cohort = format!(
        "SELECT {} FROM funnel_progress r \
         JOIN funnel_progress f ON f.user_id = r.user_id \
         WHERE r.step = 'registered' AND r.reached_at >= {a} AND r.reached_at < {b} \
           AND {counted} \
         GROUP BY r.user_id",
        columns.join(", ")
    );
    let steps = FunnelStep::ALL.len();
    if q.backend == DbBackend::Postgres {
        let mut figures: Vec<String> = (0..steps).map(|i| format!("COUNT(s{i})")).collect();
        for i in 1..steps {
            figures.push(format!(
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY {}) FILTER (WHERE s{i} >= s{})",
                q.seconds_between(&format!("s{}", i - 1), &format!("s{i}")),
                i - 1
            ));
        }
        let sql = format!("SELECT {} FROM ({cohort}) c", figures.join(", "));
        let row = conn
            .query_one_raw(q.statement(sql))
            .await?
            .ok_or_else(|| StoreError::Corrupt("funnel".to_owned()))?;
        let mut out = Vec::with_capacity(steps);
        for (i, step) in FunnelStep::ALL.into_iter().enumerate() {
            let count: i64 = get(&row, i)?;
            let median = if i == 0 {
                None
            } else {
                get::<Option<f64>>(&row, steps + i - 1)?
            };
            out.push((step, count, median));
        }
        return Ok(out);
    }
    // SQLite has no percentile: the cohort's times come over and the medians are taken here.
    let sql = format!(
        "SELECT {} FROM ({cohort}) c",
        (0..steps)
            .map(|i| format!("julianday(s{i})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut times: Vec<Vec<Option<f64>>> = Vec::new();
    for row in conn.query_all_raw(q.statement(sql)).await? {
        let mut customer = Vec::with_capacity(steps);
        for i in 0..steps {
            customer.push(get::<Option<f64>>(&row, i)?);
        }
        times.push(customer);
    }
    let mut out = Vec::with_capacity(steps);
    for (i, step) in FunnelStep::ALL.into_iter().enumerate() {
        let count = times.iter().filter(|t| t[i].is_some()).count() as i64;
        let median = (i > 0)
            .then(|| {
                median(
                    times
                        .iter()
                        .filter_map(|t| match (t[i - 1], t[i]) {
                            // Days to seconds, to the millisecond (a double of days is good
                            // to well under one).
                            (Some(before), Some(after)) if after >= before => {
                                Some(((after - before) * 86_400_000.0).round() / 1_000.0)
                            }
                            _ => None,
                        })
                        .collect(),
                )
            })
            .flatten();
        out.push((step, count, median));
    }
    Ok(out)
}

/// When `user` reached each step.
pub async fn steps_of(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<BTreeMap<FunnelStep, DateTime<Utc>>, StoreError> {
    let mut q = Sql::new(conn);
    let u = q.bind(user);
    let sql = format!("SELECT step, reached_at FROM funnel_progress WHERE user_id = {u}");
    let mut out = BTreeMap::new();
    for row in conn.query_all_raw(q.statement(sql)).await? {
        let step: String = get(&row, 0)?;
        let at: DateTime<Utc> = get(&row, 1)?;
        if let Some(step) = FunnelStep::parse(&step) {
            out.insert(step, at);
        }
    }
    Ok(out)
}
