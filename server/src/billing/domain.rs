//! The billing rules in plain Rust: periods, proration, plan changes, renewals, overage
//! and usage alerts. No storage, no tonic; times are passed in, so tests control them.
use chrono::{DateTime, Datelike, Months, TimeZone, Utc};

use super::plans::{PlanBook, PlanTerms};
use crate::error::ApiError;
use crate::identity::domain::Plan;

/// Usage-alert thresholds in force until an account sets its own.
pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];
/// At most this many thresholds.
pub const MAX_THRESHOLDS: usize = 10;
/// Thresholds run from 1 % to 1 000 % of the allowance.
pub const THRESHOLD_RANGE: std::ops::RangeInclusive<i32> = 1..=1_000;

/// `anchor` moved on by `months` calendar months, the day clamped to the month's last
/// (a plan started on 31 January renews on 28 or 29 February, then on 31 March): counted
/// from the anchor each time, so short months never make the billing day drift.
pub fn add_months(anchor: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    anchor
        .checked_add_months(Months::new(months))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The UTC calendar month that contains `t`: starter's billing periods.
pub fn calendar_month(t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc
        .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t);
    (start, add_months(start, 1))
}

/// The monthly period anchored at `anchor` that contains `t` (`t` at or after `anchor`).
pub fn paid_period(anchor: DateTime<Utc>, t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    if t < anchor {
        return (anchor, add_months(anchor, 1));
    }
    // Estimate the month count from the calendar, then correct by a step either way.
    let months = (t.year() - anchor.year()) * 12 + t.month() as i32 - anchor.month() as i32;
    let mut n = u32::try_from(months.max(0)).unwrap_or(0);
    while n > 0 && add_months(anchor, n) > t {
        n -= 1;
    }
    while add_months(anchor, n + 1) <= t {
        n += 1;
    }
    (add_months(anchor, n), add_months(anchor, n + 1))
}

/// `amount × numerator ÷ denominator`, rounded to the nearest minor unit, halves up.
pub fn scale_half_up(amount: i64, numerator: i64, denominator: i64) -> i64 {
    if denominator <= 0 || amount <= 0 || numerator <= 0 {
        return 0;
    }
    let product = i128::from(amount) * i128::from(numerator);
    let denominator = i128::from(denominator);
    let rounded = (product * 2 + denominator) / (denominator * 2);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// What an upgrade within a paid period costs now: the difference between the two fees
/// for the part of the period still to run, by the second, halves up.
pub fn prorate(
    fee_difference: i64,
    now: DateTime<Utc>,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> i64 {
    let (start, end) = period;
    let total = (end - start).num_seconds();
    let remaining = (end - now).num_seconds().clamp(0, total.max(0));
    scale_half_up(fee_difference, remaining, total)
}

/// Calls beyond the allowance and what they cost: `over × price ÷ 1000`, halves up.
pub fn overage(api_calls: i64, terms: (i64, i64)) -> (i64, i64) {
    let (included, per_thousand) = terms;
    let over = (api_calls - included).max(0);
    (over, scale_half_up(over, per_thousand, 1_000))
}

/// The share of the allowance used, in percent, rounded down (0 without an allowance).
pub fn percent_used(api_calls: i64, included: i64) -> i32 {
    if included <= 0 {
        return 0;
    }
    let percent = i128::from(api_calls.max(0)) * 100 / i128::from(included);
    i32::try_from(percent).unwrap_or(i32::MAX)
}

/// The thresholds (percent) that `api_calls` has reached, ascending.
pub fn reached(api_calls: i64, included: i64, thresholds: &[u32]) -> Vec<u32> {
    if included <= 0 {
        return Vec::new();
    }
    thresholds
        .iter()
        .copied()
        .filter(|t| i128::from(api_calls) * 100 >= i128::from(*t) * i128::from(included))
        .collect()
}

/// Checks `SetUsageAlert`'s thresholds; returns them ascending.
pub fn check_thresholds(thresholds: &[i32]) -> Result<Vec<u32>, ApiError> {
    let invalid = |description: String| ApiError::InvalidField {
        reason: "INVALID_THRESHOLD",
        field: "threshold_percents",
        description,
    };
    if thresholds.len() > MAX_THRESHOLDS {
        return Err(invalid(format!(
            "has {} thresholds; at most {MAX_THRESHOLDS} are allowed",
            thresholds.len()
        )));
    }
    let mut sorted = Vec::with_capacity(thresholds.len());
    for &t in thresholds {
        if !THRESHOLD_RANGE.contains(&t) {
            return Err(invalid(format!(
                "{t} is outside 1 to 1000 (percent of the allowance)"
            )));
        }
        sorted.push(t.unsigned_abs());
    }
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("repeats a threshold".into()));
    }
    Ok(sorted)
}

/// A subscription as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub plan: Plan,
    /// The day and time monthly periods renew on (paid plans).
    pub anchor: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub scheduled_plan: Option<Plan>,
    pub cancel_at_period_end: bool,
    pub plan_started_at: DateTime<Utc>,
}

impl Subscription {
    /// A new account's: starter, this calendar month.
    pub fn starter(now: DateTime<Utc>) -> Self {
        let (start, end) = calendar_month(now);
        Self {
            plan: Plan::Starter,
            anchor: start,
            period_start: start,
            period_end: end,
            scheduled_plan: None,
            cancel_at_period_end: false,
            plan_started_at: now,
        }
    }

    /// The subscription as it stands at `now` when nothing needs charging: starter's
    /// periods simply roll over with the calendar. (Paid periods roll over only through a
    /// renewal, which the job performs.)
    pub fn as_of(&self, now: DateTime<Utc>) -> Self {
        let mut current = self.clone();
        if current.plan == Plan::Starter
            && current.scheduled_plan.is_none()
            && now >= current.period_end
        {
            let (start, end) = calendar_month(now);
            current.period_start = start;
            current.period_end = end;
        }
        current
    }

    /// The plan in force after the current period.
    pub fn next_plan(&self) -> Plan {
        if self.cancel_at_period_end {
            Plan::Starter
        } else {
            self.scheduled_plan.unwrap_or(self.plan)
        }
    }

    /// What the next period will cost.
    pub fn next_fee(&self, plans: &PlanBook) -> i64 {
        plans.terms(self.next_plan()).monthly_fee
    }
}

/// What `ChangePlan` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Takes effect now, for `charge` (the new subscription is included).
    Upgrade { charge: i64, next: Subscription },
    /// Takes effect at the end of the period.
    ScheduleDowngrade { next: Subscription },
    /// The current plan was asked for while a change was scheduled: the change is dropped.
    ClearSchedule { next: Subscription },
}

impl Change {
    pub fn next(&self) -> &Subscription {
        match self {
            Change::Upgrade { next, .. }
            | Change::ScheduleDowngrade { next }
            | Change::ClearSchedule { next } => next,
        }
    }

    pub fn charge(&self) -> i64 {
        match self {
            Change::Upgrade { charge, .. } => *charge,
            _ => 0,
        }
    }

    /// When the new plan takes (or took) effect.
    pub fn effective_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Change::ScheduleDowngrade { next } => next.period_end,
            _ => now,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Change::Upgrade { .. } => "upgrade",
            Change::ScheduleDowngrade { .. } => "downgrade_scheduled",
            Change::ClearSchedule { .. } => "schedule_cleared",
        }
    }
}

/// Decides `ChangePlan` from `current` (as of `now`) to `target`.
pub fn change_plan(
    current: &Subscription,
    target: Plan,
    now: DateTime<Utc>,
    plans: &PlanBook,
) -> Result<Change, ApiError> {
    let current = current.as_of(now);
    let from = PlanBook::rank(current.plan);
    let to = PlanBook::rank(target);
    if to == from {
        if current.scheduled_plan.is_none() && !current.cancel_at_period_end {
            return Err(ApiError::failed_precondition(
                "PLAN_UNCHANGED",
                format!("the account is already on {}", target.as_str()),
            ));
        }
        let mut next = current;
        next.scheduled_plan = None;
        next.cancel_at_period_end = false;
        return Ok(Change::ClearSchedule { next });
    }
    if to < from {
        let mut next = current;
        next.scheduled_plan = Some(target);
        next.cancel_at_period_end = false;
        return Ok(Change::ScheduleDowngrade { next });
    }
    let fee = plans.terms(target).monthly_fee;
    let (charge, next) = if current.plan == Plan::Starter {
        // From the free plan a paid plan starts its own monthly period now, paid in full.
        let next = Subscription {
            plan: target,
            anchor: now,
            period_start: now,
            period_end: add_months(now, 1),
            scheduled_plan: None,
            cancel_at_period_end: false,
            plan_started_at: now,
        };
        (fee, next)
    } else {
        let difference = fee - plans.terms(current.plan).monthly_fee;
        let charge = prorate(difference, now, (current.period_start, current.period_end));
        let mut next = current;
        next.plan = target;
        next.scheduled_plan = None;
        next.cancel_at_period_end = false;
        next.plan_started_at = now;
        (charge, next)
    };
    Ok(Change::Upgrade { charge, next })
}

/// `CancelSubscription`: the paid plan ends with the period.
pub fn cancel(current: &Subscription, now: DateTime<Utc>) -> Result<Subscription, ApiError> {
    let current = current.as_of(now);
    if current.plan == Plan::Starter {
        return Err(ApiError::failed_precondition(
            "NO_PAID_PLAN",
            "the account is on starter: there is nothing to cancel",
        ));
    }
    let mut next = current;
    next.cancel_at_period_end = true;
    next.scheduled_plan = Some(Plan::Starter);
    Ok(next)
}

/// The next period after a paid period ends, for the plan that takes over.
pub fn renewal(current: &Subscription, next_plan: Plan) -> Subscription {
    let start = current.period_end;
    let (anchor, end) = if next_plan != Plan::Starter {
        let (_, end) = paid_period(current.anchor, start);
        (current.anchor, end)
    } else {
        // Back on starter: to the end of the calendar month, then calendar months.
        let (month_start, month_end) = calendar_month(start);
        (month_start, month_end)
    };
    Subscription {
        plan: next_plan,
        anchor,
        period_start: start,
        period_end: end,
        scheduled_plan: None,
        cancel_at_period_end: false,
        plan_started_at: if next_plan == current.plan {
            current.plan_started_at
        } else {
            start
        },
    }
}

/// The usage terms of a period on `terms`: the allowance and the overage price.
pub fn usage_terms(terms: &PlanTerms) -> (i64, i64) {
    if terms.usage_billing {
        (terms.included_api_calls, terms.overage_per_thousand)
    } else {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn months_clamp_without_drift() {
        let anchor = t("2026-01-31T10:00:00Z");
        assert_eq!(add_months(anchor, 1), t("2026-02-28T10:00:00Z"));
        assert_eq!(add_months(anchor, 2), t("2026-03-31T10:00:00Z"));
        assert_eq!(
            add_months(t("2028-01-31T00:00:00Z"), 1),
            t("2028-02-29T00:00:00Z")
        );
    }

    #[test]
    fn calendar_months() {
        assert_eq!(
            calendar_month(t("2026-11-26T13:00:00Z")),
            (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            calendar_month(t("2026-12-31T23:59:59Z")),
            (t("2026-12-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
        );
        // The boundary belongs to the new month.
        assert_eq!(
            calendar_month(t("2027-01-01T00:00:00Z")).0,
            t("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn paid_periods_contain_the_time() {
        let anchor = t("2026-01-31T10:00:00Z");
        for (when, start, end) in [
            (
                "2026-01-31T10:00:00Z",
                "2026-01-31T10:00:00Z",
                "2026-02-28T10:00:00Z",
            ),
            (
                "2026-02-28T09:59:59Z",
                "2026-01-31T10:00:00Z",
                "2026-02-28T10:00:00Z",
            ),
            (
                "2026-02-28T10:00:00Z",
                "2026-02-28T10:00:00Z",
                "2026-03-31T10:00:00Z",
            ),
            (
                "2026-03-01T00:00:00Z",
                "2026-02-28T10:00:00Z",
                "2026-03-31T10:00:00Z",
            ),
            (
                "2027-01-31T10:00:00Z",
                "2027-01-31T10:00:00Z",
                "2027-02-28T10:00:00Z",
            ),
        ] {
            assert_eq!(paid_period(anchor, t(when)), (t(start), t(end)), "{when}");
        }
    }

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(scale_half_up(1, 1, 2), 1);
        assert_eq!(scale_half_up(1, 1, 3), 0);
        assert_eq!(scale_half_up(2, 1, 3), 1);
        assert_eq!(scale_half_up(5, 1, 10), 1);
        assert_eq!(scale_half_up(4, 1, 10), 0);
        assert_eq!(scale_half_up(0, 1, 2), 0);
        assert_eq!(scale_half_up(i64::MAX, 1, 1), i64::MAX);
    }

    #[test]
    fn proration_table() {
        let period = (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z"));
        // (fee difference, upgrade time, charge)
        for (difference, when, charge) in [
            (27_000, "2026-11-01T00:00:00Z", 27_000), // at the start: all of it
            (27_000, "2026-11-16T00:00:00Z", 13_500), // half way through 30 days
            (27_000, "2026-11-30T00:00:00Z", 900),    // one day of thirty
            (27_000, "2026-12-01T00:00:00Z", 0),      // at the end: nothing
            (27_000, "2026-10-01T00:00:00Z", 27_000), // before the start: capped
            (100, "2026-11-30T23:59:59Z", 0),         // one second: 0.0000386 → 0
            (1, "2026-11-16T00:00:00Z", 1),           // half a cent rounds up
            (2_900, "2026-11-21T00:00:00Z", 967),     // 10/30 × 29.00 = 9.666…
            (0, "2026-11-16T00:00:00Z", 0),
        ] {
            assert_eq!(
                prorate(difference, t(when), period),
                charge,
                "{difference} at {when}"
            );
        }
    }

    #[test]
    fn overage_table() {
        for (calls, included, price, over, charge) in [
            (0, 1_000, 50, 0, 0),
            (1_000, 1_000, 50, 0, 0),
            (1_001, 1_000, 50, 1, 0),  // 0.05 cents
            (1_010, 1_000, 50, 10, 1), // 0.5 cents: halves up
            (2_000, 1_000, 50, 1_000, 50),
            (1_234_567, 1_000_000, 50, 234_567, 11_728), // 11 728.35
        ] {
            assert_eq!(overage(calls, (included, price)), (over, charge), "{calls}");
        }
    }

    #[test]
    fn thresholds() {
        assert_eq!(check_thresholds(&[100, 50, 80]).unwrap(), vec![50, 80, 100]);
        assert!(check_thresholds(&[]).unwrap().is_empty());
        for bad in [
            vec![0],
            vec![1_001],
            vec![-5],
            vec![50, 50],
            (1..=11).collect(),
        ] {
            let error = check_thresholds(&bad).unwrap_err();
            assert_eq!(error.reason(), "INVALID_THRESHOLD", "{bad:?}");
        }
        assert_eq!(reached(499, 1_000, &[50, 80, 100]), Vec::<u32>::new());
        assert_eq!(reached(500, 1_000, &[50, 80, 100]), vec![50]);
        assert_eq!(
            reached(1_500, 1_000, &[50, 80, 100, 150]),
            vec![50, 80, 100, 150]
        );
        assert_eq!(reached(5, 0, &[50]), Vec::<u32>::new());
        assert_eq!(percent_used(1_999, 1_000), 199);
        assert_eq!(percent_used(5, 0), 0);
    }

    #[test]
    fn plan_changes() {
        let plans = PlanBook::default();
        let now = t("2026-11-16T00:00:00Z");
        let starter = Subscription::starter(t("2026-11-02T00:00:00Z"));

        let err = change_plan(&starter, Plan::Starter, now, &plans).unwrap_err();
        assert_eq!(err.reason(), "PLAN_UNCHANGED");

        // Starter → pro: a new period from now, the full fee.
        let up = change_plan(&starter, Plan::Pro, now, &plans).unwrap();
        assert_eq!(up.charge(), 2_900);
        let pro = up.next().clone();
        assert_eq!(
            (pro.period_start, pro.period_end),
            (now, t("2026-12-16T00:00:00Z"))
        );

        // Pro → enterprise half way: half the difference.
        let half = t("2026-12-01T00:00:00Z");
        let up = change_plan(&pro, Plan::Enterprise, half, &plans).unwrap();
        assert_eq!(up.charge(), (29_900 - 2_900) / 2);
        assert_eq!(up.next().period_end, pro.period_end);

        // Enterprise → pro: scheduled for the end; asking for enterprise again clears it.
        let ent = up.next().clone();
        let down = change_plan(&ent, Plan::Pro, half, &plans).unwrap();
        assert_eq!(down.charge(), 0);
        assert_eq!(down.effective_at(half), ent.period_end);
        assert_eq!(down.next().scheduled_plan, Some(Plan::Pro));
        assert_eq!(down.next().next_fee(&plans), 2_900);
        let clear = change_plan(down.next(), Plan::Enterprise, half, &plans).unwrap();
        assert!(matches!(clear, Change::ClearSchedule { .. }));
        assert_eq!(clear.next().scheduled_plan, None);

        // Cancelling: starter afterwards, nothing to renew; starter cannot cancel.
        let cancelled = cancel(&ent, half).unwrap();
        assert!(cancelled.cancel_at_period_end);
        assert_eq!(cancelled.next_plan(), Plan::Starter);
        assert_eq!(cancelled.next_fee(&plans), 0);
        assert_eq!(cancel(&starter, half).unwrap_err().reason(), "NO_PAID_PLAN");
        // An upgrade clears a cancellation.
        let up = change_plan(&cancelled, Plan::Enterprise, half, &plans);
        assert!(matches!(up, Ok(Change::ClearSchedule { .. })));
    }

    #[test]
    fn renewals_roll_periods() {
        let anchor = t("2026-01-31T10:00:00Z");
        let pro = Subscription {
            plan: Plan::Pro,
            anchor,
            period_start: anchor,
            period_end: t("2026-02-28T10:00:00Z"),
            scheduled_plan: None,
            cancel_at_period_end: false,
            plan_started_at: anchor,
        };
        let next = renewal(&pro, Plan::Pro);
        assert_eq!(next.period_start, t("2026-02-28T10:00:00Z"));
        assert_eq!(next.period_end, t("2026-03-31T10:00:00Z"));
        assert_eq!(next.plan_started_at, anchor);
        let back = renewal(&pro, Plan::Starter);
        assert_eq!(back.period_end, t("2026-03-01T00:00:00Z"));
        assert_eq!(back.plan_started_at, t("2026-02-28T10:00:00Z"));
        // Starter periods then follow the calendar.
        let later = back.as_of(t("2026-04-15T00:00:00Z"));
        assert_eq!(later.period_start, t("2026-04-01T00:00:00Z"));
    }
}
