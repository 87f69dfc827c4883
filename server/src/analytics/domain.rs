//! The rules of analytics, in plain Rust: which events exist, how a date range and its
//! buckets are cut, and how the reports' figures are derived from the sums the store gives.
//! The definitions are the proto's (`analytics.proto`); this is where they are computed.
use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, Utc};

use crate::error::{ApiError, Violations};

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Client,
    Server,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Client => "client",
            Source::Server => "server",
        }
    }
}

/// The funnel's steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FunnelStep {
    Registered,
    EmailVerified,
    FirstTopUp,
    FirstVerification,
    FirstCompletedVerification,
    PlanUpgraded,
}

impl FunnelStep {
    pub const ALL: [FunnelStep; 6] = [
        FunnelStep::Registered,
        FunnelStep::EmailVerified,
        FunnelStep::FirstTopUp,
        FunnelStep::FirstVerification,
        FunnelStep::FirstCompletedVerification,
        FunnelStep::PlanUpgraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FunnelStep::Registered => "registered",
            FunnelStep::EmailVerified => "email_verified",
            FunnelStep::FirstTopUp => "first_top_up",
            FunnelStep::FirstVerification => "first_verification",
            FunnelStep::FirstCompletedVerification => "first_completed_verification",
            FunnelStep::PlanUpgraded => "plan_upgraded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The client-side events `TrackEvent` accepts.
pub const CLIENT_EVENTS: [&str; 9] = [
    "page_viewed",
    "pricing_viewed",
    "signup_started",
    "checkout_started",
    "checkout_abandoned",
    "verification_started",
    "code_copied",
    "api_docs_viewed",
    "plan_upgrade_started",
];

pub const MAX_PROPERTIES: usize = 20;
pub const MAX_PROPERTY_KEY: usize = 40;
pub const MAX_PROPERTY_VALUE: usize = 200;
pub const MAX_ANONYMOUS_ID: usize = 64;
pub const MAX_REQUEST_ID: usize = 64;
/// A client's clock further off than this is not believed.
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::days(1);

/// A checked `TrackEvent`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackedEvent {
    pub name: &'static str,
    pub properties: BTreeMap<String, String>,
    pub at: DateTime<Utc>,
    pub anonymous_id: Option<String>,
    pub request_id: Option<String>,
}

/// Checks a client event: the name from the allow-list, the properties within bounds, the
/// identifiers well-formed. A time more than a day from `now` becomes `now`.
pub fn check_event(
    name: &str,
    properties: BTreeMap<String, String>,
    at: Option<DateTime<Utc>>,
    anonymous_id: &str,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<TrackedEvent, ApiError> {
    let Some(name) = CLIENT_EVENTS.iter().copied().find(|n| *n == name.trim()) else {
        return Err(ApiError::InvalidField {
            reason: "UNKNOWN_EVENT_NAME",
            field: "event_name",
            description: format!(
                "{:?} is not a known event; known events: {}",
                truncate(name, 60),
                CLIENT_EVENTS.join(", ")
            ),
        });
    };
    if properties.len() > MAX_PROPERTIES {
        return Err(too_large(format!(
            "{} properties; at most {MAX_PROPERTIES}",
            properties.len()
        )));
    }
    for (key, value) in &properties {
        if key.is_empty() || key.chars().count() > MAX_PROPERTY_KEY {
            return Err(too_large(format!(
                "the key {:?} must be 1 to {MAX_PROPERTY_KEY} characters",
                truncate(key, 60)
            )));
        }
        if value.chars().count() > MAX_PROPERTY_VALUE {
            return Err(too_large(format!(
                "the value of {key:?} is over {MAX_PROPERTY_VALUE} characters"
            )));
        }
    }
    let mut violations = Violations::default();
    let anonymous_id = anonymous_id.trim();
    if anonymous_id.chars().count() > MAX_ANONYMOUS_ID {
        violations.add(
            "anonymous_id",
            format!("is longer than {MAX_ANONYMOUS_ID} characters"),
        );
    } else if anonymous_id.chars().any(char::is_control) {
        violations.add("anonymous_id", "may not contain control characters");
    }
    let request_id = request_id.trim();
    if request_id.len() > MAX_REQUEST_ID
        || !request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        violations.add(
            "request_id",
            format!("must be up to {MAX_REQUEST_ID} letters, digits, '-' or '_'"),
        );
    }
    violations.into_result()?;
    let at = match at {
        Some(at) if (at - now).abs() <= MAX_CLOCK_SKEW => at,
        _ => now,
    };
    Ok(TrackedEvent {
        name,
        properties,
        at,
        anonymous_id: (!anonymous_id.is_empty()).then(|| anonymous_id.to_owned()),
        request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
    })
}

fn too_large(description: String) -> ApiError {
    ApiError::InvalidField {
        reason: "PROPERTIES_TOO_LARGE",
        field: "properties",
        description,
    }
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// Bucket sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Week,
    Month,
}

impl Granularity {
    /// The longest range a report with these buckets may span, in days.
    pub fn max_days(self) -> i64 {
        match self {
            Granularity::Day => 366,
            Granularity::Week | Granularity::Month => 1096,
        }
    }

    /// The first day of the bucket holding `day`.
    fn bucket_start(self, day: NaiveDate) -> NaiveDate {
        match self {
            Granularity::Day => day,
            Granularity::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Granularity::Month => day.with_day(1).unwrap_or(day),
        }
    }

    /// The first day of the bucket after the one starting on `start`.
    fn next_start(self, start: NaiveDate) -> NaiveDate {
        match self {
            Granularity::Day => start + Days::new(1),
            Granularity::Week => start + Days::new(7),
            Granularity::Month => start + Months::new(1),
        }
    }
}

/// A range of whole UTC days, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

fn bad_range(field: &'static str, description: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        reason: "INVALID_DATE_RANGE",
        field,
        description: description.into(),
    }
}

impl DateRange {
    /// Checks a requested range: both days given, the end not before the start, the start
    /// not after `today`, the span within the granularity's maximum.
    pub fn checked(
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
        granularity: Granularity,
        today: NaiveDate,
    ) -> Result<Self, ApiError> {
        let start = start.ok_or_else(|| bad_range("start_date", "is required"))?;
        let end = end.ok_or_else(|| bad_range("end_date", "is required"))?;
        if end < start {
            return Err(bad_range("end_date", "is before start_date"));
        }
        if start > today {
            return Err(bad_range("start_date", "is in the future"));
        }
        let range = Self { start, end };
        if range.days() > granularity.max_days() {
            return Err(bad_range(
                "end_date",
                format!(
                    "the range spans {} days; at most {} with these buckets",
                    range.days(),
                    granularity.max_days()
                ),
            ));
        }
        Ok(range)
    }

    /// How many days the range holds.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    /// The range of as many days that ends the day before this one starts.
    pub fn previous(&self) -> Self {
        let end = self.start - Days::new(1);
        Self {
            start: end - Days::new((self.days() - 1) as u64),
            end,
        }
    }

    /// The last `days` days of the range's end (the range's last day included).
    pub fn trailing(&self, days: u64) -> Self {
        Self {
            start: self.end - Days::new(days.saturating_sub(1)),
            end: self.end,
        }
    }

    /// The first instant of the range.
    pub fn from(&self) -> DateTime<Utc> {
        start_of(self.start)
    }

    /// The first instant after the range.
    pub fn until(&self) -> DateTime<Utc> {
        start_of(self.end + Days::new(1))
    }

    /// The smallest range holding both.
    pub fn union(&self, other: &Self) -> Self {
        Self {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The range cut into buckets, oldest first, the first and last cut by the range.
    pub fn buckets(&self, granularity: Granularity) -> Vec<DateRange> {
        let mut out = Vec::new();
        let mut start = granularity.bucket_start(self.start);
        while start <= self.end {
            let next = granularity.next_start(start);
            out.push(DateRange {
                start: start.max(self.start),
                end: (next - Days::new(1)).min(self.end),
            });
            start = next;
        }
        out
    }
}

pub fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// `YYYY-MM-DD`, as the rollups key their days.
pub fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

pub fn parse_day_key(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// Days per bitmap chunk. A customer's days are kept as bitmap rows, one per chunk: twelve
/// 64-bit words, bit `o mod 64` of word `o / 64` for the day at offset `o` in its chunk.
pub const CHUNK_DAYS: i64 = 768;
/// Words per chunk (and per kind of day).
pub const CHUNK_WORDS: usize = 12;
/// Every day is kept twice, in two systems of chunks: system 0's start at day 0 since the
/// epoch, system 1's half a chunk later. Any window of up to this many days lies whole in
/// one chunk of one of them, so a report over it reads one row per customer.
pub const CHUNK_SHIFT: i64 = CHUNK_DAYS / 2;

/// Days since the Unix epoch (negative before it).
pub fn epoch_day(day: NaiveDate) -> i64 {
    (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days()
}

/// The key of the chunk of `system` (0 or 1) holding epoch day `day`, and the day's offset
/// in it. Keys of system 0 are even, of system 1 odd.
pub fn chunk_of(day: i64, system: i64) -> (i64, i64) {
    let shifted = day + system * CHUNK_SHIFT;
    (
        shifted.div_euclid(CHUNK_DAYS) * 2 + system,
        shifted.rem_euclid(CHUNK_DAYS),
    )
}

/// A set of days as the bitmap rows keep them: chunk key → its words. Chunks with no day of
/// the set are absent.
pub type DayMask = BTreeMap<i64, [i64; CHUNK_WORDS]>;

/// The days of `range` as a mask over the chunks of `system`.
pub fn day_mask(range: &DateRange, system: i64) -> DayMask {
    let mut mask = DayMask::new();
    for d in epoch_day(range.start)..=epoch_day(range.end) {
        let (chunk, offset) = chunk_of(d, system);
        let words = mask.entry(chunk).or_insert([0; CHUNK_WORDS]);
        // Bit 63 is the sign bit: the words are the databases' signed 64-bit integers.
        words[(offset / 64) as usize] |= (1u64 << (offset % 64)) as i64;
    }
    mask
}

/// A system and the one chunk of it that holds the whole of `range`, if any (always when
/// the range is at most [`CHUNK_SHIFT`] days long).
pub fn single_chunk(range: &DateRange) -> Option<(i64, i64)> {
    (0..2).find_map(|system| {
        let (first, _) = chunk_of(epoch_day(range.start), system);
        let (last, _) = chunk_of(epoch_day(range.end), system);
        (first == last).then_some((system, first))
    })
}

/// `(this − previous) ÷ previous`; none when the previous figure is zero.
pub fn growth(this: i64, previous: i64) -> Option<f64> {
    (previous != 0).then(|| (this - previous) as f64 / previous as f64)
}

/// `part ÷ whole`; none when the whole is zero.
pub fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole != 0).then(|| part as f64 / whole as f64)
}

/// The median of `values` (the mean of the middle two for an even count, as PostgreSQL's
/// `percentile_cont(0.5)`); none when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// `numerator ÷ denominator` to the nearest integer, halves away from zero (money).
pub fn div_round(numerator: i64, denominator: i64) -> i64 {
    if denominator == 0 {
        return 0;
    }
    let (n, d) = (i128::from(numerator), i128::from(denominator));
    let q = (2 * n.abs() + d.abs()) / (2 * d.abs());
    let q = if (n < 0) != (d < 0) { -q } else { q };
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// What the ledger's entries of a day add up to, by what they were for (minor units).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaySums {
    pub top_ups: i64,
    pub captures: i64,
    pub captured_verifications: i64,
    pub released: i64,
    pub manual_refunds: i64,
    pub subscriptions: i64,
    pub overage: i64,
    /// White-label tenants' share of the captures (less what refunds took back).
    pub reseller_margin: i64,
}

impl DaySums {
    pub fn add(&mut self, other: &DaySums) {
        self.top_ups += other.top_ups;
        self.captures += other.captures;
        self.captured_verifications += other.captured_verifications;
        self.released += other.released;
        self.manual_refunds += other.manual_refunds;
        self.subscriptions += other.subscriptions;
        self.overage += other.overage;
        self.reseller_margin += other.reseller_margin;
    }

    /// Adds `amount` over `entries` entries of `metric` (the rollup's metric names).
    pub fn add_metric(&mut self, metric: Metric, amount: i64, entries: i64) {
        match metric {
            Metric::TopUps => self.top_ups += amount,
            Metric::Captures => {
                self.captures += amount;
                self.captured_verifications += entries;
            }
            Metric::Released => self.released += amount,
            Metric::ManualRefunds => self.manual_refunds += amount,
            Metric::Subscriptions => self.subscriptions += amount,
            Metric::Overage => self.overage += amount,
            Metric::ResellerMargin => self.reseller_margin += amount,
        }
    }

    pub fn figures(&self) -> RevenueFigures {
        let verification_revenue = self.captures - self.manual_refunds;
        RevenueFigures {
            top_ups: self.top_ups,
            verification_revenue,
            refunds: self.released + self.manual_refunds,
            subscription_revenue: self.subscriptions,
            overage_revenue: self.overage,
            net_revenue: verification_revenue + self.subscriptions + self.overage,
            reseller_margin: self.reseller_margin,
            completed_verifications: self.captured_verifications,
        }
    }
}

/// The ledger sums the analytics read, named as the rollup stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    TopUps,
    Captures,
    Released,
    ManualRefunds,
    Subscriptions,
    Overage,
    /// Lines into tenants' margin accounts (never rolled up: read from the ledger).
    ResellerMargin,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::TopUps => "top_ups",
            Metric::Captures => "captures",
            Metric::Released => "released",
            Metric::ManualRefunds => "manual_refunds",
            Metric::Subscriptions => "subscriptions",
            Metric::Overage => "overage",
            Metric::ResellerMargin => "reseller_margin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Metric::TopUps,
            Metric::Captures,
            Metric::Released,
            Metric::ManualRefunds,
            Metric::Subscriptions,
            Metric::Overage,
            Metric::ResellerMargin,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }
}

/// The proto's `RevenueFigures`, in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevenueFigures {
    pub top_ups: i64,
    pub verification_revenue: i64,
    pub refunds: i64,
    pub subscription_revenue: i64,
    pub overage_revenue: i64,
    pub net_revenue: i64,
    pub reseller_margin: i64,
    pub completed_verifications: i64,
}

/// Per-day sums, by day.
pub type Daily = BTreeMap<NaiveDate, DaySums>;

/// The sums over `range` of `daily`.
pub fn total(daily: &Daily, range: &DateRange) -> DaySums {
    let mut sums = DaySums::default();
    for (_, day) in daily.range(range.start..=range.end) {
        sums.add(day);
    }
    sums
}

/// One bucket of a revenue report.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub range: DateRange,
    pub figures: RevenueFigures,
    pub net_revenue_growth: Option<f64>,
}

/// The revenue report's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct RevenueReport {
    pub buckets: Vec<Bucket>,
    pub total: RevenueFigures,
    pub previous: RevenueFigures,
    pub net_revenue_growth: Option<f64>,
}

/// The days a revenue report over `range` needs sums for: the range, the previous period,
/// and the span before the first bucket it is compared with.
pub fn revenue_days(range: &DateRange, granularity: Granularity) -> DateRange {
    let buckets = range.buckets(granularity);
    let first = buckets.first().copied().unwrap_or(*range);
    range.union(&range.previous()).union(&first.previous())
}

/// Cuts `daily` into the report over `range`. Each bucket's growth compares it with the
/// bucket before (the first with the span of as many days before it).
pub fn revenue_report(daily: &Daily, range: &DateRange, granularity: Granularity) -> RevenueReport {
    let ranges = range.buckets(granularity);
    let mut buckets = Vec::with_capacity(ranges.len());
    let mut before = ranges
        .first()
        .map(|first| total(daily, &first.previous()).figures().net_revenue)
        .unwrap_or(0);
    for bucket in ranges {
        let figures = total(daily, &bucket).figures();
        buckets.push(Bucket {
            range: bucket,
            figures,
            net_revenue_growth: growth(figures.net_revenue, before),
        });
        before = figures.net_revenue;
    }
    let total_figures = total(daily, range).figures();
    let previous = total(daily, &range.previous()).figures();
    RevenueReport {
        buckets,
        total: total_figures,
        previous,
        net_revenue_growth: growth(total_figures.net_revenue, previous.net_revenue),
    }
}

/// Activity counts the customer report is derived from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    pub total_customers: i64,
    pub new_customers: i64,
    pub previous_new_customers: i64,
    pub active: i64,
    pub previous_active: i64,
    /// Active in the previous period and not in the range.
    pub churned: i64,
    pub daily_active: i64,
    pub weekly_active: i64,
    pub monthly_active: i64,
    pub paying: i64,
}

/// The customer report's money figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CustomerValue {
    pub average_revenue_per_user: i64,
    pub churn_rate: Option<f64>,
    pub lifetime_value: Option<i64>,
}

/// ARPU = net revenue ÷ active customers (rounded to the cent, zero when nobody was active);
/// churn = churned ÷ previously active; lifetime value = ARPU ÷ churn.
pub fn customer_value(net_revenue: i64, activity: &Activity) -> CustomerValue {
    let average_revenue_per_user = div_round(net_revenue, activity.active);
    let churn_rate = ratio(activity.churned, activity.previous_active);
    let lifetime_value = churn_rate.filter(|c| *c > 0.0).map(|_| {
        // ARPU ÷ (churned ÷ previous) = ARPU × previous ÷ churned, in integers.
        div_round(
            average_revenue_per_user.saturating_mul(activity.previous_active),
            activity.churned,
        )
    });
    CustomerValue {
        average_revenue_per_user,
        churn_rate,
        lifetime_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn range(a: NaiveDate, b: NaiveDate) -> DateRange {
        DateRange { start: a, end: b }
    }

    #[test]
    fn ranges_are_checked() {
        let today = d(2026, 12, 2);
        let ok = DateRange::checked(
            Some(d(2026, 9, 1)),
            Some(d(2026, 11, 29)),
            Granularity::Day,
            today,
        )
        .unwrap();
        assert_eq!(ok.days(), 90);
        // The end may lie in the future (the figures simply stop at today).
        assert!(
            DateRange::checked(Some(today), Some(d(2026, 12, 31)), Granularity::Day, today).is_ok()
        );
        let reason = |r: Result<DateRange, ApiError>| r.unwrap_err().reason();
        assert_eq!(
            reason(DateRange::checked(
                Some(d(2026, 11, 2)),
                Some(d(2026, 11, 1)),
                Granularity::Day,
                today
            )),
            "INVALID_DATE_RANGE"
        );
        assert_eq!(
            reason(DateRange::checked(
                None,
                Some(d(2026, 11, 1)),
                Granularity::Day,
                today
            )),
            "INVALID_DATE_RANGE"
        );
        assert_eq!(
            reason(DateRange::checked(
                Some(d(2026, 12, 3)),
                Some(d(2026, 12, 4)),
                Granularity::Day,
                today
            )),
            "INVALID_DATE_RANGE"
        );
        // 367 days with day buckets is too long; with months it is fine; 1,097 is not.
        let a = d(2025, 1, 1);
        assert!(DateRange::checked(Some(a), Some(d(2026, 1, 1)), Granularity::Day, today).is_ok());
        assert!(DateRange::checked(Some(a), Some(d(2026, 1, 2)), Granularity::Day, today).is_err());
        assert!(
            DateRange::checked(Some(a), Some(d(2026, 1, 2)), Granularity::Month, today).is_ok()
        );
        let b = d(2023, 1, 1);
        assert!(
            DateRange::checked(Some(b), Some(d(2025, 12, 31)), Granularity::Week, today).is_ok()
        );
        assert!(
            DateRange::checked(Some(b), Some(d(2026, 1, 1)), Granularity::Week, today).is_err()
        );
    }

    #[test]
    fn previous_periods_and_buckets() {
        let r = range(d(2026, 3, 1), d(2026, 3, 31));
        assert_eq!(r.previous(), range(d(2026, 1, 29), d(2026, 2, 28)));
        assert_eq!(r.trailing(7), range(d(2026, 3, 25), d(2026, 3, 31)));
        assert_eq!(r.from().to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert_eq!(r.until().to_rfc3339(), "2026-04-01T00:00:00+00:00");

        // ISO weeks, Monday to Sunday, cut by the range (2026-03-01 is a Sunday).
        let weeks = range(d(2026, 3, 1), d(2026, 3, 10)).buckets(Granularity::Week);
        assert_eq!(
            weeks,
            vec![
                range(d(2026, 3, 1), d(2026, 3, 1)),
                range(d(2026, 3, 2), d(2026, 3, 8)),
                range(d(2026, 3, 9), d(2026, 3, 10)),
            ]
        );
        let months = range(d(2026, 1, 15), d(2026, 3, 2)).buckets(Granularity::Month);
        assert_eq!(
            months,
            vec![
                range(d(2026, 1, 15), d(2026, 1, 31)),
                range(d(2026, 2, 1), d(2026, 2, 28)),
                range(d(2026, 3, 1), d(2026, 3, 2)),
            ]
        );
        assert_eq!(
            range(d(2024, 2, 28), d(2024, 3, 1))
                .buckets(Granularity::Day)
                .len(),
            3
        );
        // Across a year's end, and a leap year's February.
        let m = range(d(2023, 12, 31), d(2024, 2, 29)).buckets(Granularity::Month);
        assert_eq!(m.last().unwrap(), &range(d(2024, 2, 1), d(2024, 2, 29)));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn growth_ratios_medians_and_rounding() {
        assert_eq!(growth(125, 100), Some(0.25));
        assert_eq!(growth(50, 100), Some(-0.5));
        assert_eq!(growth(10, 0), None);
        assert_eq!(growth(-10, -20), Some(-0.5));
        assert_eq!(ratio(1, 4), Some(0.25));
        assert_eq!(ratio(1, 0), None);
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5.0]), Some(5.0));
        assert_eq!(median(vec![9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5)); // (2 + 3) / 2
        assert_eq!(median(vec![10.0, 20.0]), Some(15.0));
        assert_eq!(div_round(10, 4), 3); // 2.5 → 3
        assert_eq!(div_round(-10, 4), -3);
        assert_eq!(div_round(9, 4), 2);
        assert_eq!(div_round(7, 0), 0);
        assert_eq!(div_round(i64::MAX, 1), i64::MAX);
    }

    #[test]
    fn metric_names_round_trip() {
        for m in [
            "top_ups",
            "captures",
            "released",
            "manual_refunds",
            "subscriptions",
            "overage",
            "reseller_margin",
        ] {
            assert_eq!(Metric::parse(m).unwrap().as_str(), m);
        }
        assert_eq!(Metric::parse("holds"), None);
    }

    #[test]
    fn figures_follow_the_definitions() {
        let sums = DaySums {
            top_ups: 10_000,
            captures: 900,
            captured_verifications: 6,
            released: 300,
            manual_refunds: 150,
            subscriptions: 1_999,
            overage: 40,
            reseller_margin: 120,
        };
        let f = sums.figures();
        assert_eq!(f.reseller_margin, 120);
        assert_eq!(f.verification_revenue, 750);
        assert_eq!(f.refunds, 450);
        assert_eq!(f.net_revenue, 750 + 1_999 + 40);
        assert_eq!(f.completed_verifications, 6);
    }

    #[test]
    fn revenue_reports_bucket_and_compare() {
        let mut daily = Daily::new();
        let sums = |captures| DaySums {
            captures,
            captured_verifications: 1,
            ..Default::default()
        };
        // 2026-02-23 .. 2026-03-01 is the week before; the range is 2026-03-02 .. 2026-03-15.
        daily.insert(d(2026, 2, 20), sums(100)); // previous period only
        daily.insert(d(2026, 2, 27), sums(200)); // previous period and the week before
        daily.insert(d(2026, 3, 2), sums(300));
        daily.insert(d(2026, 3, 9), sums(600));
        daily.insert(d(2026, 3, 16), sums(10_000)); // after the range: left out
        let r = range(d(2026, 3, 2), d(2026, 3, 15));
        assert_eq!(
            revenue_days(&r, Granularity::Week),
            range(d(2026, 2, 16), d(2026, 3, 15))
        );
        let report = revenue_report(&daily, &r, Granularity::Week);
        assert_eq!(report.buckets.len(), 2);
        assert_eq!(report.buckets[0].figures.net_revenue, 300);
        assert_eq!(report.buckets[0].net_revenue_growth, Some(0.5)); // 300 vs 200
        assert_eq!(report.buckets[1].figures.net_revenue, 600);
        assert_eq!(report.buckets[1].net_revenue_growth, Some(1.0));
        assert_eq!(report.total.net_revenue, 900);
        assert_eq!(report.total.completed_verifications, 2);
        assert_eq!(report.previous.net_revenue, 300);
        assert_eq!(report.net_revenue_growth, Some(2.0));
        // Nothing before: growth is unset, not infinite.
        let empty = revenue_report(&Daily::new(), &r, Granularity::Day);
        assert_eq!(empty.buckets.len(), 14);
        assert!(empty.buckets.iter().all(|b| b.net_revenue_growth.is_none()));
        assert_eq!(empty.net_revenue_growth, None);
    }

    #[test]
    fn customer_value_follows_the_definitions() {
        let activity = Activity {
            active: 4,
            previous_active: 5,
            churned: 2,
            ..Default::default()
        };
        let v = customer_value(1_001, &activity);
        assert_eq!(v.average_revenue_per_user, 250); // 250.25
        assert_eq!(v.churn_rate, Some(0.4));
        assert_eq!(v.lifetime_value, Some(625)); // 250 ÷ 0.4
        let none = customer_value(0, &Activity::default());
        assert_eq!(none.average_revenue_per_user, 0);
        assert_eq!(none.churn_rate, None);
        assert_eq!(none.lifetime_value, None);
        let no_churn = customer_value(
            100,
            &Activity {
                active: 1,
                previous_active: 1,
                ..Default::default()
            },
        );
        assert_eq!(no_churn.churn_rate, Some(0.0));
        assert_eq!(no_churn.lifetime_value, None);
    }

    #[test]
    fn client_events_are_checked() {
        let now = Utc::now();
        let ok = check_event("page_viewed", BTreeMap::new(), None, " anon-1 ", "r_1", now).unwrap();
        assert_eq!(ok.name, "page_viewed");
        assert_eq!(ok.at, now);
        assert_eq!(ok.anonymous_id.as_deref(), Some("anon-1"));
        assert_eq!(ok.request_id.as_deref(), Some("r_1"));
        let reason = |r: Result<TrackedEvent, ApiError>| r.unwrap_err().reason();
        assert_eq!(
            reason(check_event("hacked", BTreeMap::new(), None, "", "", now)),
            "UNKNOWN_EVENT_NAME"
        );
        let many: BTreeMap<_, _> = (0..21).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(
            reason(check_event("page_viewed", many, None, "", "", now)),
            "PROPERTIES_TOO_LARGE"
        );
        let long_key = BTreeMap::from([("k".repeat(41), "v".to_owned())]);
        assert_eq!(
            reason(check_event("page_viewed", long_key, None, "", "", now)),
            "PROPERTIES_TOO_LARGE"
        );
        let long_value = BTreeMap::from([("k".to_owned(), "é".repeat(201))]);
        assert_eq!(
            reason(check_event("page_viewed", long_value, None, "", "", now)),
            "PROPERTIES_TOO_LARGE"
        );
        let fits = BTreeMap::from([("k".repeat(40), "é".repeat(200))]);
        assert!(check_event("page_viewed", fits, None, "", "", now).is_ok());
        assert_eq!(
            reason(check_event(
                "page_viewed",
                BTreeMap::new(),
                None,
                "",
                "no spaces",
                now
            )),
            "INVALID_ARGUMENT"
        );
        assert_eq!(
            reason(check_event(
                "page_viewed",
                BTreeMap::new(),
                None,
                &"a".repeat(65),
                "",
                now
            )),
            "INVALID_ARGUMENT"
        );
        // A client clock two days off is replaced; an hour off is kept.
        let skewed = check_event(
            "code_copied",
            BTreeMap::new(),
            Some(now - chrono::Duration::days(2)),
            "",
            "",
            now,
        )
        .unwrap();
        assert_eq!(skewed.at, now);
        let hour = now - chrono::Duration::hours(1);
        assert_eq!(
            check_event("code_copied", BTreeMap::new(), Some(hour), "", "", now)
                .unwrap()
                .at,
            hour
        );
        assert_eq!(
            FunnelStep::parse("first_top_up"),
            Some(FunnelStep::FirstTopUp)
        );
    }

    #[test]
    fn day_masks_cut_ranges_into_chunks_of_words() {
        assert_eq!(epoch_day(d(1970, 1, 1)), 0);
        assert_eq!(epoch_day(d(1969, 12, 31)), -1);
        // 2026-12-04 is day 20,791: system 0's chunk 27 (key 54) from day 20,736, at offset
        // 55; system 1's chunk from day 20,352 (key 53), at offset 439.
        assert_eq!(epoch_day(d(2026, 12, 4)), 20_791);
        assert_eq!(chunk_of(20_791, 0), (54, 55));
        assert_eq!(chunk_of(20_791, 1), (55, 439));
        assert_eq!(chunk_of(20_352, 1), (55, 0));
        assert_eq!(chunk_of(20_351, 1), (53, 767));
        let one = day_mask(&range(d(2026, 12, 4), d(2026, 12, 4)), 0);
        let mut words = [0; CHUNK_WORDS];
        words[0] = 1 << 55;
        assert_eq!(one, DayMask::from([(54, words)]));
        let one = day_mask(&range(d(2026, 12, 4), d(2026, 12, 4)), 1);
        words[0] = 0;
        words[6] = 1 << (439 - 384);
        assert_eq!(one, DayMask::from([(55, words)]));
        // Offsets 63 and 64 straddle words 0 and 1; offset 63 is the sign bit.
        let day = |n: i64| NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + Days::new(n as u64);
        let two = day_mask(&range(day(20_736 + 63), day(20_736 + 64)), 0);
        let mut words = [0; CHUNK_WORDS];
        words[0] = i64::MIN;
        words[1] = 1;
        assert_eq!(two[&54], words);
        // A whole chunk is every bit of its words; the days around it are in the next and
        // previous chunks.
        let whole = day_mask(&range(day(20_736 - 1), day(20_736 + 768)), 0);
        assert_eq!(whole[&54], [-1; CHUNK_WORDS]);
        assert_eq!(whole[&52][CHUNK_WORDS - 1], i64::MIN);
        assert_eq!(whole[&56][0], 1);
        let bits: u32 = whole
            .values()
            .flat_map(|w| w.iter())
            .map(|w| w.count_ones())
            .sum();
        assert_eq!(bits, 770);
    }

    #[test]
    fn every_window_of_half_a_chunk_lies_in_one_chunk() {
        let day = |n: i64| NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + Days::new(n as u64);
        for start in 20_000..20_000 + CHUNK_DAYS {
            let window = range(day(start), day(start + CHUNK_SHIFT - 1));
            let (system, key) = single_chunk(&window).expect("one chunk");
            let mask = day_mask(&window, system);
            assert_eq!(mask.keys().copied().collect::<Vec<_>>(), vec![key]);
            assert_eq!(key % 2, system);
        }
        // A longer window may need two chunks of either system: this one crosses system 0's
        // boundary at day 20,736 and system 1's at day 21,120.
        let long = range(day(20_730), day(21_125));
        assert_eq!(single_chunk(&long), None);
        assert_eq!(day_mask(&long, 0).len(), 2);
    }
}
