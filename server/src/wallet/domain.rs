//! Ledger rules in plain Rust: which accounts exist, what each business event posts, and
//! the checks every posting passes before it reaches the database.
use uuid::Uuid;

use crate::error::{ApiError, StoreError};

/// The wallet currency. Every amount is an integer count of its minor unit (US cents).
pub const CURRENCY: &str = "USD";

/// The largest single movement accepted: 1,000,000.00 USD. Anything above is a mistake.
pub const MAX_AMOUNT: i64 = 100_000_000;

/// The kinds of ledger account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountKind {
    /// What a customer can spend. Never below zero.
    Wallet,
    /// Prices held from a customer's wallet for verifications that are still open. Never
    /// below zero.
    Holds,
    /// The platform's earnings (captured holds, fees).
    Revenue,
    /// Money the payment gateway has confirmed and owes the platform.
    GatewayClearing,
    /// The counterpart of administrators' corrections.
    Adjustments,
    /// A white-label tenant's share of its customers' captured verifications (what the
    /// platform owes it). One per tenant; summed from its lines, like the platform's.
    TenantMargin,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Wallet => "wallet",
            AccountKind::Holds => "holds",
            AccountKind::Revenue => "revenue",
            AccountKind::GatewayClearing => "gateway_clearing",
            AccountKind::Adjustments => "adjustments",
            AccountKind::TenantMargin => "tenant_margin",
        }
    }

    /// Customer accounts keep a balance column that a conditional update keeps at or above
    /// zero; platform accounts may go negative (a clearing account does, by design) and are
    /// summed from their lines, so that no single row becomes every transaction's lock.
    pub fn is_customer(self) -> bool {
        matches!(self, AccountKind::Wallet | AccountKind::Holds)
    }
}

/// One account: a customer's (with its owner) or the platform's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountRef {
    pub kind: AccountKind,
    pub owner: Option<Uuid>,
}

impl AccountRef {
    pub fn wallet(user: Uuid) -> Self {
        Self {
            kind: AccountKind::Wallet,
            owner: Some(user),
        }
    }

    pub fn holds(user: Uuid) -> Self {
        Self {
            kind: AccountKind::Holds,
            owner: Some(user),
        }
    }

    pub fn platform(kind: AccountKind) -> Self {
        Self { kind, owner: None }
    }

    /// A tenant's margin account (`owner` is the tenant's id, not an account's).
    pub fn tenant_margin(tenant: Uuid) -> Self {
        Self {
            kind: AccountKind::TenantMargin,
            owner: Some(tenant),
        }
    }

    /// The account (`users`) that owns it: customers' accounts only.
    pub fn owning_user(&self) -> Option<Uuid> {
        if self.kind.is_customer() {
            self.owner
        } else {
            None
        }
    }

    /// The account's unique code, for example `wallet:{user}:USD` or
    /// `platform:revenue:USD`.
    pub fn code(&self) -> String {
        match self.owner {
            Some(owner) => format!("{}:{owner}:{CURRENCY}", self.kind.as_str()),
            None => format!("platform:{}:{CURRENCY}", self.kind.as_str()),
        }
    }
}

/// The business events the ledger records; they are the `TransactionKind`s customers see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    TopUp,
    VerificationHold,
    VerificationCapture,
    VerificationRefund,
    SubscriptionFee,
    OverageCharge,
    Adjustment,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::TopUp => "top_up",
            EntryKind::VerificationHold => "verification_hold",
            EntryKind::VerificationCapture => "verification_capture",
            EntryKind::VerificationRefund => "verification_refund",
            EntryKind::SubscriptionFee => "subscription_fee",
            EntryKind::OverageCharge => "overage_charge",
            EntryKind::Adjustment => "adjustment",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            EntryKind::TopUp,
            EntryKind::VerificationHold,
            EntryKind::VerificationCapture,
            EntryKind::VerificationRefund,
            EntryKind::SubscriptionFee,
            EntryKind::OverageCharge,
            EntryKind::Adjustment,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One line of an entry: an amount into (positive) or out of (negative) an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    pub account: AccountRef,
    pub amount: i64,
}

/// Why the ledger refused a movement.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("invalid amount: {0}")]
    InvalidAmount(&'static str),
    #[error("the wallet cannot afford this")]
    InsufficientFunds,
    #[error("no hold with this reference")]
    HoldNotFound,
    #[error("the entry does not balance")]
    Unbalanced,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sea_orm::DbErr> for LedgerError {
    fn from(error: sea_orm::DbErr) -> Self {
        LedgerError::Store(error.into())
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::InvalidAmount(description) => ApiError::InvalidField {
                reason: "INVALID_AMOUNT",
                field: "amount",
                description: description.to_owned(),
            },
            LedgerError::InsufficientFunds => ApiError::failed_precondition(
                "INSUFFICIENT_FUNDS",
                "the wallet's balance is too low; top up first",
            ),
            LedgerError::HoldNotFound => {
                ApiError::Internal(anyhow::anyhow!("settling a hold that was never placed"))
            }
            LedgerError::Unbalanced => {
                ApiError::Internal(anyhow::anyhow!("an unbalanced ledger entry was refused"))
            }
            LedgerError::Store(error) => error.into(),
        }
    }
}

/// A positive amount within bounds.
pub fn check_amount(amount: i64) -> Result<(), LedgerError> {
    if amount <= 0 {
        Err(LedgerError::InvalidAmount("must be more than zero"))
    } else if amount > MAX_AMOUNT {
        Err(LedgerError::InvalidAmount(
            "must be at most 1,000,000.00 USD (100000000 cents)",
        ))
    } else {
        Ok(())
    }
}

/// A non-zero signed amount within bounds (adjustments).
pub fn check_signed_amount(amount: i64) -> Result<(), LedgerError> {
    if amount == 0 {
        Err(LedgerError::InvalidAmount("must not be zero"))
    } else if amount.unsigned_abs() > MAX_AMOUNT as u64 {
        Err(LedgerError::InvalidAmount(
            "must be at most 1,000,000.00 USD (100000000 cents) either way",
        ))
    } else {
        Ok(())
    }
}

/// An entry must have lines, none of them zero, summing to zero.
pub fn check_balanced(postings: &[Posting]) -> Result<(), LedgerError> {
    let sum = postings
        .iter()
        .try_fold(0i64, |sum, p| sum.checked_add(p.amount));
    if postings.len() < 2 || postings.iter().any(|p| p.amount == 0) || sum != Some(0) {
        return Err(LedgerError::Unbalanced);
    }
    Ok(())
}

/// Moves `amount` out of `from` into `to`.
pub fn transfer(from: AccountRef, to: AccountRef, amount: i64) -> Vec<Posting> {
    vec![
        Posting {
            account: from,
            amount: -amount,
        },
        Posting {
            account: to,
            amount,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert!(check_amount(1).is_ok());
        assert!(check_amount(MAX_AMOUNT).is_ok());
        for bad in [0, -1, MAX_AMOUNT + 1, i64::MIN, i64::MAX] {
            assert!(check_amount(bad).is_err(), "{bad}");
        }
        assert!(check_signed_amount(-5).is_ok());
        for bad in [0, MAX_AMOUNT + 1, -MAX_AMOUNT - 1, i64::MIN] {
            assert!(check_signed_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn balance() {
        let user = Uuid::now_v7();
        let ok = transfer(AccountRef::wallet(user), AccountRef::holds(user), 250);
        assert!(check_balanced(&ok).is_ok());
        let mut lopsided = ok.clone();
        lopsided[1].amount = 249;
        assert!(check_balanced(&lopsided).is_err());
        assert!(check_balanced(&ok[..1]).is_err());
        let overflow = vec![
            Posting {
                account: AccountRef::wallet(user),
                amount: i64::MAX,
            },
            Posting {
                account: AccountRef::holds(user),
                amount: i64::MAX,
            },
        ];
        assert!(check_balanced(&overflow).is_err());
    }

    #[test]
    fn codes_are_distinct_per_owner_and_kind() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_ne!(AccountRef::wallet(a).code(), AccountRef::wallet(b).code());
        assert_ne!(AccountRef::wallet(a).code(), AccountRef::holds(a).code());
        assert_eq!(
            AccountRef::platform(AccountKind::Revenue).code(),
            "platform:revenue:USD"
        );
        for kind in ["top_up", "verification_hold", "adjustment"] {
            assert_eq!(EntryKind::parse(kind).map(EntryKind::as_str), Some(kind));
        }
    }
}
