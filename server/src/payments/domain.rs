//! Top-up rules in plain Rust: amounts and their conversion to the gateway's currency,
//! references, the payment state machine, and what a gateway's answer means for a top-up.
use std::fmt;

use uuid::Uuid;

use crate::error::ApiError;

/// The smallest top-up: 1.00 in the wallet's currency.
pub const MIN_TOP_UP: i64 = 100;
/// The largest top-up: 10,000.00 in the wallet's currency.
pub const MAX_TOP_UP: i64 = 1_000_000;

/// Which gateway a top-up goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayKind {
    Paystack,
    Sandbox,
}

impl GatewayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Paystack => "paystack",
            GatewayKind::Sandbox => "sandbox",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "paystack" => Some(GatewayKind::Paystack),
            "sandbox" => Some(GatewayKind::Sandbox),
            _ => None,
        }
    }
}

/// Where a top-up stands: `pending → processing → completed | failed`. A payment declined
/// at the gateway (`failed` with `PAYMENT_FAILED`) can still be paid on the same checkout
/// page, so a later confirmed payment moves it on to `processing`; every other `failed`
/// and `completed` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopUpStatus {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl TopUpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TopUpStatus::Pending => "pending",
            TopUpStatus::Processing => "processing",
            TopUpStatus::Completed => "completed",
            TopUpStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(TopUpStatus::Pending),
            "processing" => Some(TopUpStatus::Processing),
            "completed" => Some(TopUpStatus::Completed),
            "failed" => Some(TopUpStatus::Failed),
            _ => None,
        }
    }
}

/// Why a top-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// Declined, failed or reversed at the gateway.
    PaymentFailed,
    /// The gateway confirmed another amount than the one asked for.
    AmountMismatch,
    /// The gateway confirmed a payment in another currency.
    CurrencyMismatch,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::PaymentFailed => "PAYMENT_FAILED",
            FailureReason::AmountMismatch => "AMOUNT_MISMATCH",
            FailureReason::CurrencyMismatch => "CURRENCY_MISMATCH",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PAYMENT_FAILED" => Some(FailureReason::PaymentFailed),
            "AMOUNT_MISMATCH" => Some(FailureReason::AmountMismatch),
            "CURRENCY_MISMATCH" => Some(FailureReason::CurrencyMismatch),
            _ => None,
        }
    }
}

/// A top-up's state as far as the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub status: TopUpStatus,
    pub failure: Option<FailureReason>,
}

impl State {
    /// Whether a confirmed payment may still be credited.
    pub fn can_credit(self) -> bool {
        match self.status {
            TopUpStatus::Pending => true,
            TopUpStatus::Failed => self.failure == Some(FailureReason::PaymentFailed),
            TopUpStatus::Processing | TopUpStatus::Completed => false,
        }
    }

    /// Whether the gateway has anything left to tell us about it.
    pub fn is_final(self) -> bool {
        !self.can_credit()
    }

    /// Whether a refusal or a decline may move it to `failed` with `reason`. A decline
    /// only ends a pending top-up; a mismatch also replaces a decline.
    pub fn can_fail(self, reason: FailureReason) -> bool {
        match (self.status, reason) {
            (TopUpStatus::Pending, _) => true,
            (TopUpStatus::Failed, FailureReason::PaymentFailed) => false,
            (TopUpStatus::Failed, _) => self.failure == Some(FailureReason::PaymentFailed),
            _ => false,
        }
    }
}

/// The gateway's currency and how many of its minor units one wallet minor unit costs, in
/// hundredths (1500 NGN per USD with both in cents/kobo is `150000`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    pub currency: String,
    pub hundredths: u64,
}

impl Rate {
    /// Reads a rate written like `1500` or `1500.25` (gateway units per wallet unit, up to
    /// two decimals).
    pub fn parse(currency: &str, text: &str) -> Result<Self, String> {
        let currency = currency.trim().to_ascii_uppercase();
        if !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(format!("`{currency}` is not a three-letter currency code"));
        }
        let text = text.trim();
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !fraction.is_none_or(|f| digits(f) && f.len() <= 2) {
            return Err(format!(
                "`{text}` is not a rate like 1500 or 1500.25 (at most two decimals)"
            ));
        }
        let whole: u64 = whole
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let fraction: u64 = format!("{:0<2}", fraction.unwrap_or(""))
            .parse()
            .unwrap_or(0);
        let hundredths = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(fraction))
            .filter(|h| (1..=100_000_000).contains(h))
            .ok_or_else(|| format!("`{text}` must be more than 0 and at most 1000000"))?;
        Ok(Self {
            currency,
            hundredths,
        })
    }

    /// What the gateway charges for `amount` wallet minor units, rounded up so the
    /// platform is never short.
    pub fn charge_for(&self, amount: i64) -> i64 {
        let product = i128::from(amount) * i128::from(self.hundredths);
        i64::try_from((product + 99) / 100).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02} {} per unit",
            self.hundredths / 100,
            self.hundredths % 100,
            self.currency
        )
    }
}

/// The most the gateway charges in one payment, in its minor units (Paystack: 10,000,000
/// of the currency's major unit).
pub const GATEWAY_MAX_CHARGE: i64 = 1_000_000_000;

/// Checks a requested top-up amount (wallet minor units), also against what the gateway can
/// charge in one payment at `rate`.
pub fn check_top_up_amount(amount: i64, rate: &Rate) -> Result<(), ApiError> {
    let problem = if amount <= 0 {
        "must be more than zero".to_owned()
    } else if amount < MIN_TOP_UP {
        "is below the minimum top-up of 1.00".to_owned()
    } else if amount > MAX_TOP_UP {
        "is above the maximum top-up of 10,000.00".to_owned()
    } else if rate.charge_for(amount) > GATEWAY_MAX_CHARGE {
        let most = i128::from(GATEWAY_MAX_CHARGE) * 100 / i128::from(rate.hundredths);
        format!(
            "is more than the gateway charges in one payment (at most {}.{:02} at {rate})",
            most / 100,
            most % 100
        )
    } else {
        return Ok(());
    };
    Err(ApiError::InvalidField {
        reason: "INVALID_AMOUNT",
        field: "amount.minor_units",
        description: problem,
    })
}

/// A new gateway reference: `nms-` and a UUIDv7 in hex (Paystack allows letters, digits,
/// `-`, `.` and `=`).
pub fn new_reference() -> String {
    format!("nms-{}", Uuid::now_v7().simple())
}

/// Whether `text` can be a reference at all (anything else is unknown without a lookup).
pub fn is_reference(text: &str) -> bool {
    (1..=100).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'='))
}

/// Where a payment stands at the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayStatus {
    /// Paid.
    Success,
    /// Declined, failed or reversed.
    Failed,
    /// Anything else: not paid yet (abandoned, ongoing, pending, processing, queued).
    Open,
}

impl GatewayStatus {
    /// Reads Paystack's `data.status`.
    pub fn from_paystack(status: &str) -> Self {
        match status {
            "success" => GatewayStatus::Success,
            "failed" | "reversed" => GatewayStatus::Failed,
            _ => GatewayStatus::Open,
        }
    }
}

/// What the gateway says about one payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmation {
    pub status: GatewayStatus,
    /// In the gateway currency's minor units.
    pub amount: i64,
    pub currency: String,
    /// The gateway's own words (`Successful`, `Declined`, …), for the log.
    pub gateway_response: String,
}

/// What to do with a top-up given the gateway's word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Paid as asked: credit this many wallet minor units.
    Credit(i64),
    /// Refuse or record the failure.
    Fail(FailureReason),
    /// Nothing to do yet.
    Wait,
}

/// What the top-up asked the gateway for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected<'a> {
    /// Wallet minor units.
    pub amount: i64,
    /// Gateway minor units.
    pub charge_amount: i64,
    pub charge_currency: &'a str,
}

/// Decides from the gateway's confirmation. Value is granted only for a successful payment
/// of exactly the amount and currency asked for; the credit is that confirmed amount
/// converted back at the rate recorded when the top-up started.
pub fn decide(expected: Expected<'_>, confirmation: &Confirmation) -> Decision {
    match confirmation.status {
        GatewayStatus::Open => Decision::Wait,
        GatewayStatus::Failed => Decision::Fail(FailureReason::PaymentFailed),
        GatewayStatus::Success => {
            if !confirmation
                .currency
                .eq_ignore_ascii_case(expected.charge_currency)
            {
                Decision::Fail(FailureReason::CurrencyMismatch)
            } else if confirmation.amount != expected.charge_amount {
                Decision::Fail(FailureReason::AmountMismatch)
            } else {
                let credited = i128::from(confirmation.amount) * i128::from(expected.amount)
                    / i128::from(expected.charge_amount);
                Decision::Credit(i64::try_from(credited).unwrap_or(expected.amount))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ngn() -> Rate {
        Rate::parse("ngn", "1500").unwrap()
    }

    #[test]
    fn rates_parse_and_convert_in_integers() {
        assert_eq!(ngn().hundredths, 150_000);
        assert_eq!(ngn().currency, "NGN");
        assert_eq!(ngn().charge_for(1_000), 1_500_000);
        let odd = Rate::parse("NGN", "1500.5").unwrap();
        assert_eq!(odd.hundredths, 150_050);
        // 1 cent at 1500.50 is 1500.5 kobo: rounded up.
        assert_eq!(odd.charge_for(1), 1_501);
        assert_eq!(Rate::parse("USD", "1").unwrap().charge_for(123), 123);
        for bad in ["", "0", "-1", "1.234", "abc", "1e3", "10000001", ".5", "5."] {
            assert!(Rate::parse("NGN", bad).is_err(), "{bad}");
        }
        assert!(Rate::parse("naira", "1500").is_err());
    }

    #[test]
    fn top_up_amounts_have_bounds() {
        let usd = Rate::parse("USD", "1").unwrap();
        assert!(check_top_up_amount(MIN_TOP_UP, &usd).is_ok());
        assert!(check_top_up_amount(MAX_TOP_UP, &usd).is_ok());
        for bad in [i64::MIN, -100, 0, MIN_TOP_UP - 1, MAX_TOP_UP + 1, i64::MAX] {
            assert!(check_top_up_amount(bad, &usd).is_err(), "{bad}");
        }
        // At 1500 NGN per USD, Paystack's one-payment ceiling binds before ours.
        assert!(check_top_up_amount(666_666, &ngn()).is_ok());
        assert!(check_top_up_amount(666_667, &ngn()).is_err());
    }

    #[test]
    fn references_are_gateway_safe_and_unique() {
        let a = new_reference();
        assert!(is_reference(&a));
        assert_ne!(a, new_reference());
        assert!(!is_reference(""));
        assert!(!is_reference("a b"));
        assert!(!is_reference("nms_1"));
        assert!(!is_reference(&"a".repeat(101)));
    }

    fn confirmation(status: GatewayStatus, amount: i64, currency: &str) -> Confirmation {
        Confirmation {
            status,
            amount,
            currency: currency.to_owned(),
            gateway_response: String::new(),
        }
    }

    #[test]
    fn only_an_exact_success_is_credited() {
        let expected = Expected {
            amount: 1_000,
            charge_amount: 1_500_000,
            charge_currency: "NGN",
        };
        let decide = |c| decide(expected, &c);
        assert_eq!(
            decide(confirmation(GatewayStatus::Success, 1_500_000, "NGN")),
            Decision::Credit(1_000)
        );
        assert_eq!(
            decide(confirmation(GatewayStatus::Success, 1_499_999, "NGN")),
            Decision::Fail(FailureReason::AmountMismatch)
        );
        assert_eq!(
            decide(confirmation(GatewayStatus::Success, 3_000_000, "NGN")),
            Decision::Fail(FailureReason::AmountMismatch)
        );
        assert_eq!(
            decide(confirmation(GatewayStatus::Success, 1_500_000, "GHS")),
            Decision::Fail(FailureReason::CurrencyMismatch)
        );
        assert_eq!(
            decide(confirmation(GatewayStatus::Failed, 1_500_000, "NGN")),
            Decision::Fail(FailureReason::PaymentFailed)
        );
        assert_eq!(
            decide(confirmation(GatewayStatus::Open, 0, "")),
            Decision::Wait
        );
    }

    #[test]
    fn the_state_machine_never_credits_twice() {
        let state = |status, failure| State { status, failure };
        assert!(state(TopUpStatus::Pending, None).can_credit());
        assert!(state(TopUpStatus::Failed, Some(FailureReason::PaymentFailed)).can_credit());
        assert!(!state(TopUpStatus::Completed, None).can_credit());
        assert!(!state(TopUpStatus::Processing, None).can_credit());
        assert!(!state(TopUpStatus::Failed, Some(FailureReason::AmountMismatch)).can_credit());
        assert!(state(TopUpStatus::Pending, None).can_fail(FailureReason::PaymentFailed));
        assert!(
            state(TopUpStatus::Failed, Some(FailureReason::PaymentFailed))
                .can_fail(FailureReason::AmountMismatch)
        );
        assert!(
            !state(TopUpStatus::Failed, Some(FailureReason::PaymentFailed))
                .can_fail(FailureReason::PaymentFailed)
        );
        assert!(!state(TopUpStatus::Completed, None).can_fail(FailureReason::AmountMismatch));
    }

    #[test]
    fn paystack_statuses() {
        assert_eq!(
            GatewayStatus::from_paystack("success"),
            GatewayStatus::Success
        );
        assert_eq!(
            GatewayStatus::from_paystack("reversed"),
            GatewayStatus::Failed
        );
        assert_eq!(
            GatewayStatus::from_paystack("failed"),
            GatewayStatus::Failed
        );
        for open in [
            "abandoned",
            "ongoing",
            "pending",
            "processing",
            "queued",
            "new",
        ] {
            assert_eq!(GatewayStatus::from_paystack(open), GatewayStatus::Open);
        }
    }
}
