//! Billing as the API shows it.
use chrono::{DateTime, Utc};
use namaskah_proto::v1 as pb;
use uuid::Uuid;

use super::domain::{self, Subscription};
use super::plans::{PlanBook, PlanTerms};
use super::repo::PeriodTerms;
use crate::convert::{timestamp, usd};
use crate::identity::domain::Plan;

pub fn tier(plan: Plan) -> i32 {
    match plan {
        Plan::Starter => pb::PlanTier::Starter,
        Plan::Pro => pb::PlanTier::Pro,
        Plan::Enterprise => pb::PlanTier::Enterprise,
    }
    .into()
}

/// The plan a request names; `None` for unspecified or unknown values.
pub fn plan_from_tier(value: i32) -> Option<Plan> {
    match pb::PlanTier::try_from(value).ok()? {
        pb::PlanTier::Starter => Some(Plan::Starter),
        pb::PlanTier::Pro => Some(Plan::Pro),
        pb::PlanTier::Enterprise => Some(Plan::Enterprise),
        pb::PlanTier::Unspecified => None,
    }
}

pub fn subscription_name(user: Uuid) -> String {
    format!("users/{user}/subscription")
}

/// `$29.00` for 2900.
pub fn dollars(minor_units: i64) -> String {
    format!("${}.{:02}", minor_units / 100, (minor_units % 100).abs())
}

pub fn plan(terms: &PlanTerms) -> pb::Plan {
    pb::Plan {
        name: format!("plans/{}", terms.plan.as_str()),
        tier: tier(terms.plan),
        display_name: terms.display_name.clone(),
        monthly_fee: Some(usd(terms.monthly_fee)),
        requests_per_minute: i32::try_from(terms.requests_per_minute).unwrap_or(i32::MAX),
        discount_basis_points: i32::try_from(terms.discount_basis_points).unwrap_or(0),
        usage_billing: terms.usage_billing,
        included_api_calls: if terms.usage_billing {
            terms.included_api_calls
        } else {
            0
        },
        overage_price_per_thousand_calls: terms
            .usage_billing
            .then(|| usd(terms.overage_per_thousand)),
        white_label: terms.white_label,
    }
}

pub fn subscription(
    user: Uuid,
    sub: &Subscription,
    plans: &PlanBook,
    updated_at: DateTime<Utc>,
) -> pb::Subscription {
    let scheduled = if sub.cancel_at_period_end {
        Some(Plan::Starter)
    } else {
        sub.scheduled_plan
    };
    pb::Subscription {
        name: subscription_name(user),
        plan: tier(sub.plan),
        current_period_start_time: Some(timestamp(sub.period_start)),
        current_period_end_time: Some(timestamp(sub.period_end)),
        scheduled_plan: scheduled.map_or(0, tier),
        cancel_at_period_end: sub.cancel_at_period_end,
        next_renewal_fee: Some(usd(sub.next_fee(plans))),
        plan_start_time: Some(timestamp(sub.plan_started_at)),
        update_time: Some(timestamp(updated_at)),
    }
}

pub fn usage_alert(
    user: Uuid,
    thresholds: &[u32],
    updated_at: Option<DateTime<Utc>>,
) -> pb::UsageAlert {
    pb::UsageAlert {
        name: format!("users/{user}/usageAlert"),
        threshold_percents: thresholds
            .iter()
            .map(|t| i32::try_from(*t).unwrap_or(i32::MAX))
            .collect(),
        update_time: updated_at.map(timestamp),
    }
}

pub fn usage(
    terms: &PeriodTerms,
    api_calls: i64,
    verifications: i64,
    spend: i64,
    thresholds: &[u32],
    crossed: &[i32],
    update_time: DateTime<Utc>,
) -> pb::Usage {
    let allowance = (terms.included_api_calls, terms.overage_per_thousand);
    let (over, charge) = if terms.included_api_calls > 0 || terms.overage_per_thousand > 0 {
        domain::overage(api_calls, allowance)
    } else {
        (0, 0)
    };
    pb::Usage {
        plan: tier(terms.plan),
        period_start_time: Some(timestamp(terms.start)),
        period_end_time: Some(timestamp(terms.end)),
        api_calls,
        verifications,
        spend: Some(usd(spend)),
        included_api_calls: terms.included_api_calls,
        overage_api_calls: over,
        overage_charge: Some(usd(charge)),
        allowance_used_percent: domain::percent_used(api_calls, terms.included_api_calls),
        alert_threshold_percents: thresholds
            .iter()
            .map(|t| i32::try_from(*t).unwrap_or(i32::MAX))
            .collect(),
        crossed_threshold_percents: crossed.to_vec(),
        update_time: Some(timestamp(update_time)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_read_well() {
        assert_eq!(dollars(2_900), "$29.00");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(123_456), "$1234.56");
    }
}
