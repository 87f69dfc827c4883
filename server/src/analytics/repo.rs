//! Storage of analytics: the rollup job's windows and the reports' reads. The SQL is shared
//! by PostgreSQL and SQLite except for a few expressions (a timestamp's UTC day as text and
//! as a day number, the seconds between two timestamps), which [`Sql`] writes for the
//! backend at hand.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType, OnConflict};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QuerySelect, Statement, Value,
};
use uuid::Uuid;

use super::domain::{
    CHUNK_DAYS, CHUNK_SHIFT, CHUNK_WORDS, Daily, DateRange, DayMask, FunnelStep, Metric, day_key,
    day_mask, median, parse_day_key, single_chunk,
};
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

/// Every ledger kind the revenue report reads.
const REVENUE_KINDS: &str = "('top_up', 'verification_capture', 'verification_refund', \
     'subscription_fee', 'overage_charge')";
/// The kinds that make a customer a paying one on the entry's day.
const PAID_KINDS: &str = "('verification_capture', 'subscription_fee', 'overage_charge')";
/// Everyone who is not a customer (administrators): a handful of ids, so `NOT IN` them is a
/// hashed look-up, where `IN` the customers would build a hash of every account per query.
const NOT_CUSTOMERS: &str = "(SELECT id FROM users WHERE role <> 'customer')";

/// The smallest UUIDv7 minted at `at` or later. Ledger entries' ids are UUIDv7 minted at
/// insertion, so `id >= id_mark(t)` are the entries inserted from `t` on (to the millisecond),
/// whatever date they carry.
pub fn id_mark(at: DateTime<Utc>) -> Uuid {
    let ms = at.timestamp_millis().max(0) as u128;
    Uuid::from_u128(ms << 80)
}

/// Word `k` of the bitmap of the day at shifted day number `e` (a column of that name: the
/// day since the epoch plus its system's shift): the day's bit when it falls in that word,
/// else 0. Distinct days have distinct bits, so the SUM of these over distinct days is
/// their OR (and never overflows).
fn word_of_day(k: usize) -> String {
    format!(
        "CASE WHEN (e % {CHUNK_DAYS}) / 64 = {k} \
         THEN CAST(1 AS BIGINT) << CAST(e % 64 AS INTEGER) ELSE 0 END"
    )
}

/// The chunk key of shifted day `e` in system `sys` (columns of those names).
fn chunk_of_day() -> String {
    format!("(e / {CHUNK_DAYS}) * 2 + sys")
}

/// The bitmap columns of a row built from shifted day `e`: `prefix`'s words from `e`
/// (summed over the group when `summed`), the other prefix's words 0.
fn day_words(prefix: char, summed: bool) -> String {
    let mut out = Vec::with_capacity(2 * CHUNK_WORDS);
    for p in ['a', 'p'] {
        for k in 0..CHUNK_WORDS {
            let value = if p != prefix {
                "0".to_owned()
            } else if summed {
                format!("CAST(SUM({}) AS BIGINT)", word_of_day(k))
            } else {
                word_of_day(k)
            };
            out.push(format!("{value} AS {p}{k}"));
        }
    }
    out.join(", ")
}

/// The bitmap's column names: `a0`, …, `a11`, `p0`, …, `p11`.
fn word_names() -> impl Iterator<Item = String> {
    ['a', 'p']
        .into_iter()
        .flat_map(|p| (0..CHUNK_WORDS).map(move |k| format!("{p}{k}")))
}

/// `a0, …, a11, p0, …, p11`.
fn all_words() -> String {
    word_names().collect::<Vec<_>>().join(", ")
}

/// Whose figures a report counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every customer (administrators never count).
    Platform,
    /// One tenant's customers (`None`: the platform's own, `tenants/default`). Its reports
    /// read the raw tables only: the rollups are the whole platform's.
    Tenant(Option<Uuid>),
}

/// How far behind the rollup may be for the activity report's quick path (one row per
/// customer, and a correction for each customer seen since the mark). Further behind (it is
/// catching up with a year of history), the customers seen since the mark are most of them,
/// and grouping everything by customer is faster.
const ROLLUP_FRESH: chrono::Duration = chrono::Duration::hours(1);

impl Audience {
    /// Whether the platform's rollups, at `upto`, answer for this audience over a window
    /// that starts at `from` (a rollup that has not reached it holds nothing of it).
    fn rolled_up(self, upto: DateTime<Utc>, from: DateTime<Utc>) -> bool {
        self == Audience::Platform && upto > from
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

    /// Days since the Unix epoch of timestamp column `col` (its UTC day), as an integer.
    fn epoch_day(&self, col: &str) -> String {
        match self.backend {
            DbBackend::Postgres => {
                format!("CAST(FLOOR(EXTRACT(EPOCH FROM {col}) / 86400) AS BIGINT)")
            }
            // julianday('1970-01-01') is 2440587.5: whole days give whole numbers.
            _ => format!("CAST(julianday(substr({col}, 1, 10)) - 2440587.5 AS INTEGER)"),
        }
    }

    /// 1 when bitmap row `row` (columns `chunk` and `{prefix}0`…) has a day of `mask`, else
    /// 0. The masks are bound, not written into the text.
    fn has_day(&mut self, row: &str, prefix: char, mask: &DayMask) -> String {
        let mut arms = String::new();
        for (chunk, words) in mask {
            let tests: Vec<String> = words
                .iter()
                .enumerate()
                .filter(|(_, word)| **word != 0)
                .map(|(k, word)| format!("({row}.{prefix}{k} & {}) <> 0", self.bind(*word)))
                .collect();
            if tests.is_empty() {
                continue;
            }
            let chunk = self.bind(*chunk);
            arms.push_str(&format!(
                "WHEN {row}.chunk = {chunk} AND ({}) THEN 1 ",
                tests.join(" OR ")
            ));
        }
        if arms.is_empty() {
            "0".to_owned()
        } else {
            format!("CASE {arms}ELSE 0 END")
        }
    }

    /// The larger of two numbers.
    fn greatest(&self, a: &str, b: &str) -> String {
        match self.backend {
            DbBackend::Postgres => format!("GREATEST({a}, {b})"),
            _ => format!("MAX({a}, {b})"),
        }
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

/// How far the rollup has got: the ledger entries inserted before this, and the
/// verifications bought or ended before it, are in it.
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

/// Adds everything that happened in `[from, to)` to the rollups and moves the rollup to
/// `to`, in the caller's transaction (which holds the rollup's row): the ledger entries
/// inserted in it (by id, whatever date they carry: a fee is dated at its period's
/// boundary), the verifications bought in it and those that ended in it.
pub async fn roll_up(
    txn: &DatabaseTransaction,
    name: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut q = Sql::new(txn);
    let (a, b) = (q.bind(id_mark(from)), q.bind(id_mark(to)));
    let sql = format!(
        "INSERT INTO analytics_revenue_daily (day, metric, amount, entries) \
         SELECT {day}, {METRIC_OF_ENTRY}, CAST(SUM(l.amount) AS BIGINT), CAST(COUNT(DISTINCT e.id) AS BIGINT) \
         FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id AND l.amount > 0 \
         WHERE e.kind IN {REVENUE_KINDS} AND e.id >= {a} AND e.id < {b} \
           AND e.user_id NOT IN {NOT_CUSTOMERS} \
         GROUP BY 1, 2 \
         ON CONFLICT (day, metric) DO UPDATE SET \
           amount = analytics_revenue_daily.amount + excluded.amount, \
           entries = analytics_revenue_daily.entries + excluded.entries",
        day = q.day("e.created_at"),
    );
    txn.execute_raw(q.statement(sql)).await?;

    // Active days (a verification bought) and paying days (a charge), OR-ed into each
    // customer's bitmap rows.
    let merge = word_names()
        .map(|w| format!("{w} = analytics_customer_days.{w} | excluded.{w}"))
        .collect::<Vec<_>>()
        .join(", ");
    for prefix in ['a', 'p'] {
        let mut q = Sql::new(txn);
        let days = match prefix {
            'a' => {
                let (a, b) = (q.bind(from), q.bind(to));
                format!(
                    "SELECT DISTINCT user_id, {d} AS d FROM verifications \
                     WHERE created_at >= {a} AND created_at < {b}",
                    d = q.epoch_day("created_at"),
                )
            }
            _ => {
                let (a, b) = (q.bind(id_mark(from)), q.bind(id_mark(to)));
                format!(
                    "SELECT DISTINCT user_id, {d} AS d FROM journal_entries \
                     WHERE id >= {a} AND id < {b} AND kind IN {PAID_KINDS} \
                       AND user_id IS NOT NULL",
                    d = q.epoch_day("created_at"),
                )
            }
        };
        // Each day into both systems' chunks. `WHERE 1 = 1`: SQLite's upsert needs a WHERE
        // in its SELECT to parse.
        let sql = format!(
            "INSERT INTO analytics_customer_days (user_id, chunk, {words}) \
             SELECT user_id, {chunk}, {summed} FROM ( \
               SELECT t.user_id, t.d + s.sys * {CHUNK_SHIFT} AS e, s.sys FROM ({days}) t \
               CROSS JOIN (SELECT 0 AS sys UNION ALL SELECT 1 AS sys) s \
             ) x WHERE 1 = 1 \
             GROUP BY user_id, {chunk} \
             ON CONFLICT (chunk, user_id) DO UPDATE SET {merge}",
            words = all_words(),
            chunk = chunk_of_day(),
            summed = day_words(prefix, true),
        );
        txn.execute_raw(q.statement(sql)).await?;
    }

    let mut q = Sql::new(txn);
    let (a, b) = (q.bind(from), q.bind(to));
    let sql = format!(
        "INSERT INTO analytics_outcomes_daily (day, service, country, completed, expired, failed, cancelled) \
         SELECT {day}, service, country, \
           CAST(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN status = 'expired' THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS BIGINT) \
         FROM verifications \
         WHERE ended_at >= {a} AND ended_at < {b} \
           AND status IN ('completed', 'expired', 'failed', 'cancelled') \
           AND user_id NOT IN {NOT_CUSTOMERS} \
         GROUP BY 1, 2, 3 \
         ON CONFLICT (day, service, country) DO UPDATE SET \
           completed = analytics_outcomes_daily.completed + excluded.completed, \
           expired = analytics_outcomes_daily.expired + excluded.expired, \
           failed = analytics_outcomes_daily.failed + excluded.failed, \
           cancelled = analytics_outcomes_daily.cancelled + excluded.cancelled",
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

/// Tidies the rollups after a catch-up has rewritten them (PostgreSQL; SQLite plans
/// without statistics): the versions each window's upserts left behind are cleared, so a
/// report's scan does not step over them, and the planner's statistics are refreshed.
/// Autovacuum would do the same, in its own time (or never, where it is off). Outside any
/// transaction: `VACUUM` cannot run in one.
pub async fn tidy_rollups(db: &sea_orm::DatabaseConnection) -> Result<(), StoreError> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(
            "VACUUM (ANALYZE) analytics_customer_days, analytics_outcomes_daily, analytics_revenue_daily",
        )
        .await?;
    }
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

/// Per-day ledger sums over `days`: for the platform, the rollup's days plus the entries
/// inserted since it (by id: whatever day they carry); for a tenant, its customers' entries.
pub async fn daily_revenue(
    conn: &impl ConnectionTrait,
    days: &DateRange,
    upto: DateTime<Utc>,
    audience: Audience,
) -> Result<Daily, StoreError> {
    let mut daily = Daily::new();

    let mut q = Sql::new(conn);
    let (a, b) = (q.bind(days.from()), q.bind(days.until()));
    let since = if audience.rolled_up(upto, days.from()) {
        let mut r = Sql::new(conn);
        let (ra, rb) = (r.bind(day_key(days.start)), r.bind(day_key(days.end)));
        let sql = format!(
            "SELECT day, metric, amount, entries FROM analytics_revenue_daily \
             WHERE day >= {ra} AND day <= {rb}"
        );
        add_rows(&mut daily, conn.query_all_raw(r.statement(sql)).await?)?;
        format!(" AND e.id >= {}", q.bind(id_mark(upto)))
    } else {
        String::new()
    };
    let counted = q.counted("e.user_id", audience);
    let sql = format!(
        "SELECT {day}, {METRIC_OF_ENTRY}, CAST(SUM(l.amount) AS BIGINT), CAST(COUNT(DISTINCT e.id) AS BIGINT) \
         FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id AND l.amount > 0 \
         WHERE e.kind IN {REVENUE_KINDS} AND e.created_at >= {a} AND e.created_at < {b}{since} \
           AND {counted} \
         GROUP BY 1, 2",
        day = q.day("e.created_at"),
    );
    add_rows(&mut daily, conn.query_all_raw(q.statement(sql)).await?)?;
    let until = days.until();

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

/// Distinct customers: active in the range, in the previous period, in the previous period
/// but not the range (churned), on the last day, in the last 7 and the last 30 days; and
/// paying in the range. Active: bought a verification that day; paying: charged anything
/// that day (a captured verification, a fee, an overage).
pub async fn activity(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    previous: &DateRange,
    upto: DateTime<Utc>,
    audience: Audience,
) -> Result<[i64; 7], StoreError> {
    if audience.rolled_up(upto, activity_window(range, previous).from()) {
        rolled_activity(conn, range, previous, upto).await
    } else {
        raw_activity(conn, range, previous, audience).await
    }
}

/// Every day an activity report looks at: the previous period, the last 30 days, the range.
fn activity_window(range: &DateRange, previous: &DateRange) -> DateRange {
    previous.union(&range.trailing(30)).union(range)
}

/// The seven figures from column `from` on.
fn figures(row: &sea_orm::QueryResult, from: usize) -> Result<[i64; 7], StoreError> {
    let mut out = [0; 7];
    for (i, figure) in out.iter_mut().enumerate() {
        *figure = get(row, from + i)?;
    }
    Ok(out)
}

/// The windows of an activity report, in the order of its figures: the range, the previous
/// period, the last day, the last 7 and 30 days (active days), the range (paying days).
fn activity_windows(range: &DateRange, previous: &DateRange) -> [(char, DateRange); 6] {
    [
        ('a', *range),
        ('a', *previous),
        ('a', range.trailing(1)),
        ('a', range.trailing(7)),
        ('a', range.trailing(30)),
        ('p', *range),
    ]
}

/// The seven figures' sums over per-customer flags `{prefix}r`, `{prefix}p`, `{prefix}d1`,
/// `{prefix}d7`, `{prefix}d30`, `{prefix}paid` (churned: in the previous period, not in the
/// range), as a select list.
fn activity_sums(prefix: &str) -> String {
    let sum = |e: String| format!("CAST(COALESCE(SUM({e}), 0) AS BIGINT)");
    let [r, p, d1, d7, d30, paid] = FLAGS.map(|f| format!("{prefix}{f}"));
    [
        sum(r.clone()),
        sum(p.clone()),
        sum(format!("CASE WHEN {p} = 1 AND {r} = 0 THEN 1 ELSE 0 END")),
        sum(d1),
        sum(d7),
        sum(d30),
        sum(paid),
    ]
    .join(", ")
}

const FLAGS: [&str; 6] = ["r", "p", "d1", "d7", "d30", "paid"];

/// What happened since the rollup's mark, as bitmap rows of `system` (`user_id`, `chunk`
/// and the words): the verifications bought since then, and the charges in the range
/// inserted since then.
fn tail_rows(
    q: &mut Sql,
    system: i64,
    window: &DateRange,
    range: &DateRange,
    upto: DateTime<Utc>,
) -> String {
    let (from, until) = (q.bind(upto.max(window.from())), q.bind(window.until()));
    let (paid_from, paid_until) = (q.bind(range.from()), q.bind(range.until()));
    let paid_since = q.bind(id_mark(upto));
    let shift = system * CHUNK_SHIFT;
    let day = q.epoch_day("created_at");
    format!(
        "SELECT user_id, {chunk} AS chunk, {bought} FROM ( \
           SELECT user_id, {day} + {shift} AS e, {system} AS sys FROM verifications \
           WHERE created_at >= {from} AND created_at < {until}) v \
         UNION ALL \
         SELECT user_id, {chunk} AS chunk, {charged} FROM ( \
           SELECT user_id, {day} + {shift} AS e, {system} AS sys FROM journal_entries \
           WHERE id >= {paid_since} AND kind IN {PAID_KINDS} AND user_id IS NOT NULL \
             AND created_at >= {paid_from} AND created_at < {paid_until}) j",
        chunk = chunk_of_day(),
        bought = day_words('a', false),
        charged = day_words('p', false),
    )
}

/// The platform's activity from the customers' day bitmaps, plus what happened since the
/// rollup's mark.
///
/// When the report's whole window lies in one chunk (always for ranges of up to 192 days:
/// the range and the period before it) and the rollup is less than [`ROLLUP_FRESH`] behind,
/// each customer has one row there: the figures are a scan of those rows, plus a correction
/// for the few customers seen since the mark (their flags OR-ed with their row's, less their
/// row's). Otherwise the rows of every chunk the window touches, and what came after the
/// mark, are grouped by customer.
async fn rolled_activity(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    previous: &DateRange,
    upto: DateTime<Utc>,
) -> Result<[i64; 7], StoreError> {
    let window = activity_window(range, previous);
    let windows = activity_windows(range, previous);
    let mut q = Sql::new(conn);
    // The six flags of bitmap row `row`, each written as `pattern` makes it (`{e}` the
    // flag's expression, `{n}` its name).
    let flags = |q: &mut Sql, row: &str, system: i64, pattern: &str| -> String {
        windows
            .iter()
            .zip(FLAGS)
            .map(|((prefix, w), name)| {
                let expr = q.has_day(row, *prefix, &day_mask(w, system));
                pattern.replace("{e}", &expr).replace("{n}", name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let one_chunk = if Utc::now() - upto < ROLLUP_FRESH {
        single_chunk(&window)
    } else {
        None
    };
    let sql = if let Some((system, key)) = one_chunk {
        let main_flags = flags(&mut q, "m", system, "{e} AS {n}");
        let k = q.bind(key);
        let main = format!(
            "SELECT {sums} FROM ( \
               SELECT {main_flags} FROM analytics_customer_days m \
               WHERE m.chunk = {k} AND m.user_id NOT IN {NOT_CUSTOMERS}) f",
            sums = activity_sums(""),
        );
        let tail_flags = flags(&mut q, "x", system, "MAX({e}) AS {n}");
        let rows = tail_rows(&mut q, system, &window, range, upto);
        let row_flags = flags(&mut q, "m", system, "{e} AS m_{n}");
        let k = q.bind(key);
        // Per customer seen since the mark: its flags with the tail (`w_`) and without
        // (`m_`, its row's alone).
        let with: Vec<String> = FLAGS
            .iter()
            .map(|f| {
                format!(
                    "{} AS w_{f}",
                    q.greatest(&format!("s.{f}"), &format!("s.m_{f}"))
                )
            })
            .collect();
        let seen = format!(
            "SELECT t.*, {row_flags} FROM ( \
               SELECT x.user_id, {tail_flags} FROM ({rows}) x GROUP BY x.user_id \
             ) t LEFT JOIN analytics_customer_days m ON m.chunk = {k} AND m.user_id = t.user_id \
             WHERE t.user_id NOT IN {NOT_CUSTOMERS}",
        );
        format!(
            "SELECT * FROM ({main}) main CROSS JOIN ( \
               SELECT {with_sums}, {without_sums} FROM (SELECT s.*, {with} FROM ({seen}) s) c \
             ) seen",
            with_sums = activity_sums("w_"),
            without_sums = activity_sums("m_"),
            with = with.join(", "),
        )
    } else {
        let chunks: Vec<String> = day_mask(&window, 0)
            .keys()
            .map(|key| q.bind(*key))
            .collect();
        let grouped = flags(&mut q, "x", 0, "MAX({e}) AS {n}");
        let rows = tail_rows(&mut q, 0, &window, range, upto);
        format!(
            "SELECT {sums} FROM ( \
               SELECT {grouped} FROM ( \
                 SELECT user_id, chunk, {words} FROM analytics_customer_days \
                   WHERE chunk IN ({chunks}) \
                 UNION ALL {rows} \
               ) x \
               WHERE x.user_id NOT IN {NOT_CUSTOMERS} \
               GROUP BY x.user_id \
             ) f",
            sums = activity_sums(""),
            words = all_words(),
            chunks = chunks.join(", "),
        )
    };
    let row = conn
        .query_one_raw(q.statement(sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("activity".to_owned()))?;
    let mut out = figures(&row, 0)?;
    if one_chunk.is_some() {
        let (with, without) = (figures(&row, 7)?, figures(&row, 14)?);
        for i in 0..7 {
            out[i] += with[i] - without[i];
        }
    }
    Ok(out)
}

/// The activity from the raw tables: a tenant's always (the rollups are the whole
/// platform's), the platform's while the rollup has not reached the report's window.
async fn raw_activity(
    conn: &impl ConnectionTrait,
    range: &DateRange,
    previous: &DateRange,
    audience: Audience,
) -> Result<[i64; 7], StoreError> {
    let week = range.trailing(7);
    let month = range.trailing(30);
    let window = activity_window(range, previous);
    let mut q = Sql::new(conn);
    let (rs, re) = (q.bind(day_key(range.start)), q.bind(day_key(range.end)));
    let (ps, pe) = (
        q.bind(day_key(previous.start)),
        q.bind(day_key(previous.end)),
    );
    let (ws, ms) = (q.bind(day_key(week.start)), q.bind(day_key(month.start)));
    let (from, until) = (q.bind(window.from()), q.bind(window.until()));
    let (paid_from, paid_until) = (q.bind(range.from()), q.bind(range.until()));
    let counted = q.counted("user_id", audience);
    let sql = format!(
        "SELECT {sums} FROM ( \
           SELECT user_id, \
             MAX(CASE WHEN src = 'v' AND day >= {rs} AND day <= {re} THEN 1 ELSE 0 END) AS r, \
             MAX(CASE WHEN src = 'v' AND day >= {ps} AND day <= {pe} THEN 1 ELSE 0 END) AS p, \
             MAX(CASE WHEN src = 'v' AND day = {re} THEN 1 ELSE 0 END) AS d1, \
             MAX(CASE WHEN src = 'v' AND day >= {ws} AND day <= {re} THEN 1 ELSE 0 END) AS d7, \
             MAX(CASE WHEN src = 'v' AND day >= {ms} AND day <= {re} THEN 1 ELSE 0 END) AS d30, \
             MAX(CASE WHEN src = 'e' THEN 1 ELSE 0 END) AS paid \
           FROM ( \
             SELECT 'v' AS src, {vday} AS day, user_id FROM verifications \
               WHERE created_at >= {from} AND created_at < {until} \
             UNION ALL \
             SELECT 'e' AS src, '' AS day, user_id FROM journal_entries \
               WHERE kind IN {PAID_KINDS} AND created_at >= {paid_from} AND created_at < {paid_until} \
           ) a \
           WHERE {counted} \
           GROUP BY user_id \
         ) u",
        sums = activity_sums(""),
        vday = q.day("created_at"),
    );
    let row = conn
        .query_one_raw(q.statement(sql))
        .await?
        .ok_or_else(|| StoreError::Corrupt("activity".to_owned()))?;
    figures(&row, 0)
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
    const STATUSES: [&str; 4] = ["completed", "expired", "failed", "cancelled"];
    let mut out = Outcomes::new();
    // Rows of (service, country, then a count per status in the order of STATUSES).
    let mut add = |rows: Vec<sea_orm::QueryResult>| -> Result<(), StoreError> {
        for row in rows {
            let service: String = get(&row, 0)?;
            let country: String = get(&row, 1)?;
            let by_status = out.entry((service, country)).or_default();
            for (i, status) in STATUSES.into_iter().enumerate() {
                let n: i64 = get(&row, 2 + i)?;
                if n != 0 {
                    *by_status.entry(status.to_owned()).or_insert(0) += n;
                }
            }
        }
        Ok(())
    };

    let from = if audience.rolled_up(upto, range.from()) {
        let mut q = Sql::new(conn);
        let (a, b) = (q.bind(day_key(range.start)), q.bind(day_key(range.end)));
        let sql = format!(
            "SELECT service, country, CAST(SUM(completed) AS BIGINT), \
               CAST(SUM(expired) AS BIGINT), CAST(SUM(failed) AS BIGINT), \
               CAST(SUM(cancelled) AS BIGINT) \
             FROM analytics_outcomes_daily WHERE day >= {a} AND day <= {b} \
             GROUP BY service, country"
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
        let counts: Vec<String> = STATUSES
            .iter()
            .map(|s| format!("CAST(SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END) AS BIGINT)"))
            .collect();
        let sql = format!(
            "SELECT service, country, {} FROM verifications \
             WHERE ended_at >= {a} AND ended_at < {b} \
               AND status IN ('completed', 'expired', 'failed', 'cancelled') \
               AND {counted} \
             GROUP BY service, country",
            counts.join(", ")
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
