//! The plans table (the SPEC's, by default), overridable from configuration
//! (`NAMASKAH_PLANS`: a JSON list, inline or in a file).
use serde::Deserialize;

use crate::identity::domain::Plan;

/// One plan's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanTerms {
    pub plan: Plan,
    pub display_name: String,
    /// Fee for each monthly period, in minor units; 0 for starter.
    pub monthly_fee: i64,
    /// API requests per minute, per account.
    pub requests_per_minute: u32,
    /// Verification-price discount in basis points (2 000 = 20 %).
    pub discount_basis_points: u32,
    /// API calls metered and billed beyond an allowance.
    pub usage_billing: bool,
    /// With usage billing: calls included in each period.
    pub included_api_calls: i64,
    /// With usage billing: price of each 1 000 calls beyond the allowance, minor units.
    pub overage_per_thousand: i64,
    /// May own white-label tenants.
    pub white_label: bool,
}

/// Every plan's terms, cheapest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanBook {
    plans: [PlanTerms; 3],
}

impl Default for PlanBook {
    fn default() -> Self {
        Self {
            plans: [
                PlanTerms {
                    plan: Plan::Starter,
                    display_name: "Starter".into(),
                    monthly_fee: 0,
                    requests_per_minute: 100,
                    discount_basis_points: 0,
                    usage_billing: false,
                    included_api_calls: 0,
                    overage_per_thousand: 0,
                    white_label: false,
                },
                PlanTerms {
                    plan: Plan::Pro,
                    display_name: "Pro".into(),
                    monthly_fee: 2_900,
                    requests_per_minute: 500,
                    discount_basis_points: 2_000,
                    usage_billing: false,
                    included_api_calls: 0,
                    overage_per_thousand: 0,
                    white_label: false,
                },
                PlanTerms {
                    plan: Plan::Enterprise,
                    display_name: "Enterprise".into(),
                    monthly_fee: 29_900,
                    requests_per_minute: 2_000,
                    discount_basis_points: 3_500,
                    usage_billing: true,
                    included_api_calls: 1_000_000,
                    overage_per_thousand: 50,
                    white_label: true,
                },
            ],
        }
    }
}

/// One entry of `NAMASKAH_PLANS`: the plan it changes and the terms it sets (the others
/// keep their defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    plan: String,
    display_name: Option<String>,
    monthly_fee: Option<i64>,
    requests_per_minute: Option<u32>,
    discount_basis_points: Option<u32>,
    included_api_calls: Option<i64>,
    overage_per_thousand: Option<i64>,
}

/// The largest fee a period may cost (minor units): $100 000, far above any real plan.
const MAX_FEE: i64 = 10_000_000;

impl PlanBook {
    /// The default terms changed by `json`: a list like
    /// `[{"plan": "pro", "monthly_fee": 1900, "requests_per_minute": 600}]`.
    pub fn with_overrides(json: &str) -> Result<Self, String> {
        let overrides: Vec<Override> =
            serde_json::from_str(json).map_err(|e| format!("is not a JSON list of plans: {e}"))?;
        let mut book = Self::default();
        for o in overrides {
            let plan = Plan::parse(&o.plan).ok_or_else(|| {
                format!("unknown plan `{}` (use starter, pro or enterprise)", o.plan)
            })?;
            let terms = book
                .plans
                .iter_mut()
                .find(|t| t.plan == plan)
                .ok_or_else(|| format!("unknown plan `{}`", o.plan))?;
            if let Some(name) = o.display_name {
                if name.trim().is_empty() || name.len() > 40 {
                    return Err(format!(
                        "{}: display_name must be 1 to 40 characters",
                        o.plan
                    ));
                }
                terms.display_name = name;
            }
            if let Some(fee) = o.monthly_fee {
                if !(0..=MAX_FEE).contains(&fee) || (plan == Plan::Starter && fee != 0) {
                    return Err(format!(
                        "{}: monthly_fee must be 0 to {MAX_FEE} minor units (0 for starter)",
                        o.plan
                    ));
                }
                terms.monthly_fee = fee;
            }
            if let Some(rpm) = o.requests_per_minute {
                if !(1..=100_000_000).contains(&rpm) {
                    return Err(format!(
                        "{}: requests_per_minute must be 1 to 100000000",
                        o.plan
                    ));
                }
                terms.requests_per_minute = rpm;
            }
            if let Some(bp) = o.discount_basis_points {
                if bp >= 10_000 {
                    return Err(format!(
                        "{}: discount_basis_points must be below 10000",
                        o.plan
                    ));
                }
                terms.discount_basis_points = bp;
            }
            if let Some(calls) = o.included_api_calls {
                if !terms.usage_billing || calls < 0 {
                    return Err(format!(
                        "{}: included_api_calls applies to enterprise only, and is not negative",
                        o.plan
                    ));
                }
                terms.included_api_calls = calls;
            }
            if let Some(price) = o.overage_per_thousand {
                if !terms.usage_billing || !(0..=MAX_FEE).contains(&price) {
                    return Err(format!(
                        "{}: overage_per_thousand applies to enterprise only, 0 to {MAX_FEE}",
                        o.plan
                    ));
                }
                terms.overage_per_thousand = price;
            }
        }
        let fees: Vec<i64> = book.plans.iter().map(|t| t.monthly_fee).collect();
        if fees[0] > fees[1] || fees[1] > fees[2] {
            return Err("fees must not fall from starter to pro to enterprise".into());
        }
        Ok(book)
    }

    /// Every plan, cheapest first.
    pub fn all(&self) -> &[PlanTerms] {
        &self.plans
    }

    pub fn terms(&self, plan: Plan) -> &PlanTerms {
        match plan {
            Plan::Starter => &self.plans[0],
            Plan::Pro => &self.plans[1],
            Plan::Enterprise => &self.plans[2],
        }
    }

    /// Where a plan sits: moving to a higher rank is an upgrade.
    pub fn rank(plan: Plan) -> u8 {
        match plan {
            Plan::Starter => 0,
            Plan::Pro => 1,
            Plan::Enterprise => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let book = PlanBook::default();
        let rpm: Vec<u32> = book.all().iter().map(|t| t.requests_per_minute).collect();
        assert_eq!(rpm, [100, 500, 2_000]);
        let discounts: Vec<u32> = book.all().iter().map(|t| t.discount_basis_points).collect();
        assert_eq!(discounts, [0, 2_000, 3_500]);
        assert!(book.terms(Plan::Enterprise).usage_billing);
        assert!(!book.terms(Plan::Pro).usage_billing);
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let book = PlanBook::with_overrides(
            r#"[{"plan": "pro", "monthly_fee": 1900, "requests_per_minute": 600},
                {"plan": "enterprise", "included_api_calls": 10}]"#,
        )
        .unwrap();
        assert_eq!(book.terms(Plan::Pro).monthly_fee, 1_900);
        assert_eq!(book.terms(Plan::Pro).requests_per_minute, 600);
        assert_eq!(book.terms(Plan::Pro).discount_basis_points, 2_000);
        assert_eq!(book.terms(Plan::Enterprise).included_api_calls, 10);
        assert_eq!(
            book.terms(Plan::Starter),
            PlanBook::default().terms(Plan::Starter)
        );
    }

    #[test]
    fn bad_overrides_are_refused() {
        for bad in [
            "{}",
            r#"[{"plan": "gold"}]"#,
            r#"[{"plan": "pro", "colour": "red"}]"#,
            r#"[{"plan": "starter", "monthly_fee": 100}]"#,
            r#"[{"plan": "pro", "monthly_fee": -1}]"#,
            r#"[{"plan": "pro", "requests_per_minute": 0}]"#,
            r#"[{"plan": "pro", "discount_basis_points": 10000}]"#,
            r#"[{"plan": "pro", "included_api_calls": 5}]"#,
            r#"[{"plan": "enterprise", "monthly_fee": 100}]"#,
        ] {
            assert!(
                PlanBook::with_overrides(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }
}
