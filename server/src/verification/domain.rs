//! The lifecycle's rules in plain Rust: which change a verification in a given state takes,
//! and what it does to the money. Storage applies the decision with a conditional update on
//! the row's sequence number, so of two racing changes exactly one is applied and the other
//! is decided again against the new state.
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Violations};

/// Where a verification is in its lifecycle (stored lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Active,
    Completed,
    Cancelled,
    Expired,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Active,
        Status::Completed,
        Status::Cancelled,
        Status::Expired,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// No further change of state (messages may still arrive and be stored).
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Pending | Status::Active)
    }
}

/// What has happened to the money held for a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    Held,
    Captured,
    Refunded,
}

impl Charge {
    pub fn as_str(self) -> &'static str {
        match self {
            Charge::Held => "held",
            Charge::Captured => "captured",
            Charge::Refunded => "refunded",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Charge::Held, Charge::Captured, Charge::Refunded]
            .into_iter()
            .find(|c| c.as_str() == raw)
    }
}

/// Why a verification failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// No provider had a number.
    NoNumbers,
    /// The providers answered with errors.
    ProviderError,
    /// No provider answered in time.
    ProviderTimeout,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::NoNumbers => "NO_NUMBERS",
            FailureReason::ProviderError => "PROVIDER_ERROR",
            FailureReason::ProviderTimeout => "PROVIDER_TIMEOUT",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            FailureReason::NoNumbers,
            FailureReason::ProviderError,
            FailureReason::ProviderTimeout,
        ]
        .into_iter()
        .find(|r| r.as_str() == raw)
    }
}

/// Why the price went back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundReason {
    Cancelled,
    Expired,
    Failed,
    /// An administrator refunded a completed verification by hand.
    Manual,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::Cancelled => "cancelled",
            RefundReason::Expired => "expired",
            RefundReason::Failed => "failed",
            RefundReason::Manual => "manual",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            RefundReason::Cancelled,
            RefundReason::Expired,
            RefundReason::Failed,
            RefundReason::Manual,
        ]
        .into_iter()
        .find(|r| r.as_str() == raw)
    }
}

/// What the provider still has to be told about a rental.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Give the number back (no SMS): the provider refunds us.
    Cancel,
    /// Renting timed out, so the provider may have rented a number we never heard of: ask
    /// again with the same idempotency key, and give back whatever it returns.
    Recover,
    /// The code arrived: close the order.
    Finish,
}

impl Cleanup {
    pub fn as_str(self) -> &'static str {
        match self {
            Cleanup::Cancel => "cancel",
            Cleanup::Recover => "recover",
            Cleanup::Finish => "finish",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "cancel" => Some(Cleanup::Cancel),
            "recover" => Some(Cleanup::Recover),
            "finish" => Some(Cleanup::Finish),
            _ => None,
        }
    }
}

/// The kinds of stored events (see `VerificationEventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    NumberAssigned,
    SmsReceived,
    Completed,
    Cancelled,
    Expired,
    Failed,
    /// A completed verification refunded by hand (not terminal: it already ended).
    Refunded,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::NumberAssigned => "number_assigned",
            EventKind::SmsReceived => "sms_received",
            EventKind::Completed => "completed",
            EventKind::Cancelled => "cancelled",
            EventKind::Expired => "expired",
            EventKind::Failed => "failed",
            EventKind::Refunded => "refunded",
        }
    }

    /// The event that brings a verification to its end.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventKind::Completed | EventKind::Cancelled | EventKind::Expired | EventKind::Failed
        )
    }
}

/// A change someone asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The provider assigned a number.
    Assign,
    /// No provider could serve it.
    Fail(FailureReason),
    /// The customer cancels.
    Cancel,
    /// The expiry job found it past `expires_at`.
    Expire,
    /// An SMS arrived, dated `received_at`.
    Sms { received_at: DateTime<Utc> },
    /// An administrator refunds it by hand.
    ManualRefund,
}

/// What the money does in a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Money {
    Capture,
    Release(RefundReason),
    /// The captured price goes back from revenue to the wallet (a manual refund).
    Refund,
}

/// How far before a verification's creation a message may be dated and still be taken as
/// its own: providers round message times down to the second, and clocks differ.
pub const SMS_CLOCK_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// The decided transition: the new status (if it changes), the events to append in order,
/// the money movement, and what the provider must be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub to: Option<Status>,
    pub events: Vec<EventKind>,
    pub money: Option<Money>,
    pub cleanup: Option<Cleanup>,
    /// For an SMS: it is stored as arriving after the refund (shown, free).
    pub after_refund: bool,
}

/// The answer to a change request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Apply(Transition),
    /// Nothing to do (for example expiring what already ended, or an SMS dated before the
    /// verification was created).
    Nothing,
    /// Refused, with the error the caller sees.
    Refuse(Refusal),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Cancel after an SMS.
    SmsAlreadyReceived,
    /// Cancel after it expired or failed.
    Ended,
    /// A manual refund of what was refunded before (by hand or automatically).
    AlreadyRefunded,
    /// A manual refund of a verification still waiting for its SMS.
    InProgress,
}

impl Refusal {
    pub fn into_error(self) -> ApiError {
        match self {
            Refusal::SmsAlreadyReceived => ApiError::failed_precondition(
                "SMS_ALREADY_RECEIVED",
                "an SMS already arrived: the verification is completed and its charge is final",
            ),
            Refusal::Ended => ApiError::failed_precondition(
                "VERIFICATION_ENDED",
                "the verification already ended (expired or failed) and was refunded then",
            ),
            Refusal::AlreadyRefunded => ApiError::failed_precondition(
                "ALREADY_REFUNDED",
                "the verification's price was already refunded",
            ),
            Refusal::InProgress => ApiError::failed_precondition(
                "VERIFICATION_IN_PROGRESS",
                "the verification is still waiting for its SMS: it is refunded automatically \
                 unless one arrives",
            ),
        }
    }
}

/// The facts about a verification a decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub status: Status,
    pub charge: Charge,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

fn apply(to: Option<Status>, events: Vec<EventKind>, money: Option<Money>) -> Decision {
    Decision::Apply(Transition {
        to,
        events,
        money,
        cleanup: None,
        after_refund: false,
    })
}

/// Decides what `change` does to a verification in `facts` at `now`.
pub fn decide(facts: Facts, change: &Change, now: DateTime<Utc>) -> Decision {
    use Status::*;
    match (change, facts.status) {
        (Change::Assign, Pending) => apply(Some(Active), vec![EventKind::NumberAssigned], None),
        // Cancelled (or failed by the stale-pending sweep) while the provider was still
        // answering: the number is not ours to keep, give it back.
        (Change::Assign, _) => Decision::Apply(Transition {
            to: None,
            events: Vec::new(),
            money: None,
            cleanup: Some(Cleanup::Cancel),
            after_refund: false,
        }),
        (Change::Fail(_), Pending) => apply(
            Some(Failed),
            vec![EventKind::Failed],
            Some(Money::Release(RefundReason::Failed)),
        ),
        (Change::Fail(_), _) => Decision::Nothing,
        (Change::Cancel, Pending | Active) => Decision::Apply(Transition {
            to: Some(Cancelled),
            events: vec![EventKind::Cancelled],
            money: Some(Money::Release(RefundReason::Cancelled)),
            cleanup: (facts.status == Active).then_some(Cleanup::Cancel),
            after_refund: false,
        }),
        (Change::Cancel, Cancelled) => Decision::Nothing,
        (Change::Cancel, Completed) => Decision::Refuse(Refusal::SmsAlreadyReceived),
        (Change::Cancel, Expired | Failed) => Decision::Refuse(Refusal::Ended),
        (Change::Expire, Active) if facts.expires_at.is_some_and(|at| at <= now) => {
            Decision::Apply(Transition {
                to: Some(Expired),
                events: vec![EventKind::Expired],
                money: Some(Money::Release(RefundReason::Expired)),
                cleanup: Some(Cleanup::Cancel),
                after_refund: false,
            })
        }
        (Change::Expire, _) => Decision::Nothing,
        // Only a charge that was kept can be given back by hand, and only once.
        (Change::ManualRefund, Pending | Active) => Decision::Refuse(Refusal::InProgress),
        (Change::ManualRefund, Completed) if facts.charge == Charge::Captured => {
            apply(None, vec![EventKind::Refunded], Some(Money::Refund))
        }
        (Change::ManualRefund, _) => Decision::Refuse(Refusal::AlreadyRefunded),
        // Numbers are recycled: a message from before this verification belongs to someone
        // else. Providers date messages to the second (5sim) and their clocks drift: a
        // message within the tolerance of the creation is ours.
        (Change::Sms { received_at }, _)
            if *received_at + SMS_CLOCK_TOLERANCE < facts.created_at =>
        {
            Decision::Nothing
        }
        (Change::Sms { .. }, Pending) => Decision::Nothing,
        (Change::Sms { received_at }, Active) => {
            match facts.expires_at {
                // Dated after the deadline: the verification had expired (whether or not the
                // expiry job got there first); the message is shown, free.
                Some(at) if *received_at >= at => Decision::Apply(Transition {
                    to: Some(Expired),
                    events: vec![EventKind::Expired, EventKind::SmsReceived],
                    money: Some(Money::Release(RefundReason::Expired)),
                    cleanup: Some(Cleanup::Cancel),
                    after_refund: true,
                }),
                _ => Decision::Apply(Transition {
                    to: Some(Completed),
                    events: vec![EventKind::SmsReceived, EventKind::Completed],
                    money: Some(Money::Capture),
                    cleanup: Some(Cleanup::Finish),
                    after_refund: false,
                }),
            }
        }
        // After a manual refund, later messages are free as well.
        (Change::Sms { .. }, Completed) => Decision::Apply(Transition {
            to: None,
            events: vec![EventKind::SmsReceived],
            money: None,
            cleanup: None,
            after_refund: facts.charge == Charge::Refunded,
        }),
        (Change::Sms { .. }, Cancelled | Expired | Failed) => Decision::Apply(Transition {
            to: None,
            events: vec![EventKind::SmsReceived],
            money: None,
            cleanup: None,
            after_refund: true,
        }),
    }
}

/// A fingerprint of what a `CreateVerification` asked for, to tell an honest retry from a
/// reused `request_id`.
pub fn fingerprint(service: &str, country: &str, max_price: Option<i64>) -> String {
    let mut hash = Sha256::new();
    hash.update(service.as_bytes());
    hash.update([0]);
    hash.update(country.as_bytes());
    hash.update([0]);
    hash.update(
        max_price
            .map(|p| p.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    hex::encode(hash.finalize())
}

/// `verifications/{id}` → the id.
pub fn parse_name(field: &'static str, name: &str) -> Result<uuid::Uuid, ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    let id = name.strip_prefix("verifications/").ok_or_else(|| {
        ApiError::invalid(field, "must look like `verifications/{verification_id}`")
    })?;
    uuid::Uuid::parse_str(id)
        .ok()
        .filter(|u| u.hyphenated().to_string() == id)
        .ok_or_else(|| ApiError::not_found("VERIFICATION_NOT_FOUND", "no such verification"))
}

pub fn name(id: uuid::Uuid) -> String {
    format!("verifications/{id}")
}

/// An E.164 number: `+` and 8 to 15 digits.
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// The longest message text stored (InjectSms refuses longer; providers' longer texts are
/// cut).
pub const MAX_TEXT: usize = 1600;

/// Checks an injected message.
pub fn check_injected(phone_number: &str, text: &str, sender: &str) -> Result<(), ApiError> {
    let mut v = Violations::default();
    if phone_number.is_empty() {
        v.add("phone_number", "is required");
    } else if !is_e164(phone_number) {
        v.add("phone_number", "must be in E.164 form, like +447700900123");
    }
    let length = text.chars().count();
    if length == 0 || text.trim().is_empty() {
        v.add("text", "is required");
    } else if length > MAX_TEXT {
        v.add("text", "must be at most 1,600 characters");
    }
    if sender.chars().count() > 64 {
        v.add("sender", "must be at most 64 characters");
    }
    v.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn facts(status: Status) -> Facts {
        let created = Utc::now() - Duration::minutes(5);
        Facts {
            status,
            charge: match status {
                Status::Pending | Status::Active => Charge::Held,
                Status::Completed => Charge::Captured,
                _ => Charge::Refunded,
            },
            created_at: created,
            expires_at: Some(created + Duration::minutes(15)),
        }
    }

    #[test]
    fn a_manual_refund_gives_back_a_kept_charge_once() {
        let now = Utc::now();
        let d = decide(facts(Status::Completed), &Change::ManualRefund, now);
        assert_eq!(
            d,
            apply(None, vec![EventKind::Refunded], Some(Money::Refund))
        );
        // Refunded already: by hand before, or automatically when it ended.
        let refunded = Facts {
            charge: Charge::Refunded,
            ..facts(Status::Completed)
        };
        for f in [
            refunded,
            facts(Status::Cancelled),
            facts(Status::Expired),
            facts(Status::Failed),
        ] {
            assert_eq!(
                decide(f, &Change::ManualRefund, now),
                Decision::Refuse(Refusal::AlreadyRefunded),
                "{:?}",
                f.status
            );
        }
        for status in [Status::Pending, Status::Active] {
            assert_eq!(
                decide(facts(status), &Change::ManualRefund, now),
                Decision::Refuse(Refusal::InProgress)
            );
        }
        // A message after a manual refund is shown, free.
        let sms = decide(refunded, &Change::Sms { received_at: now }, now);
        assert!(matches!(sms, Decision::Apply(t) if t.after_refund && t.money.is_none()));
        let sms = decide(
            facts(Status::Completed),
            &Change::Sms { received_at: now },
            now,
        );
        assert!(matches!(sms, Decision::Apply(t) if !t.after_refund));
    }

    #[test]
    fn exactly_one_money_movement_whatever_comes_first() {
        let now = Utc::now();
        let sms = Change::Sms { received_at: now };
        // Every order of cancel / expire / SMS against every state: from an open state one
        // change moves money; afterwards nothing moves money again.
        for status in Status::ALL {
            for change in [Change::Cancel, Change::Expire, sms.clone()] {
                let d = decide(facts(status), &change, now);
                let moves = matches!(&d, Decision::Apply(t) if t.money.is_some());
                if status.is_terminal() {
                    assert!(!moves, "{status:?} {change:?} moved money again");
                }
            }
        }
        let d = decide(facts(Status::Active), &sms, now);
        assert!(matches!(
            d,
            Decision::Apply(Transition {
                money: Some(Money::Capture),
                ..
            })
        ));
        let d = decide(facts(Status::Active), &Change::Cancel, now);
        assert!(matches!(
            d,
            Decision::Apply(Transition {
                money: Some(Money::Release(RefundReason::Cancelled)),
                ..
            })
        ));
    }

    #[test]
    fn old_messages_are_ignored_and_late_ones_are_free() {
        let f = facts(Status::Active);
        let before = Change::Sms {
            received_at: f.created_at - Duration::seconds(3),
        };
        // Dated to the second, in the second the verification was created: ours.
        let same_second = Change::Sms {
            received_at: f.created_at - Duration::milliseconds(900),
        };
        assert!(matches!(
            decide(f, &same_second, Utc::now()),
            Decision::Apply(_)
        ));
        assert_eq!(decide(f, &before, Utc::now()), Decision::Nothing);
        let late = Change::Sms {
            received_at: f.expires_at.unwrap() + Duration::seconds(1),
        };
        match decide(f, &late, Utc::now()) {
            Decision::Apply(t) => {
                assert_eq!(t.to, Some(Status::Expired));
                assert!(t.after_refund);
                assert_eq!(t.money, Some(Money::Release(RefundReason::Expired)));
            }
            other => panic!("{other:?}"),
        }
        for status in [Status::Cancelled, Status::Expired, Status::Failed] {
            match decide(
                facts(status),
                &Change::Sms {
                    received_at: Utc::now(),
                },
                Utc::now(),
            ) {
                Decision::Apply(t) => {
                    assert!(t.after_refund && t.money.is_none() && t.to.is_none())
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn cancel_answers() {
        assert_eq!(
            decide(facts(Status::Completed), &Change::Cancel, Utc::now()),
            Decision::Refuse(Refusal::SmsAlreadyReceived)
        );
        assert_eq!(
            decide(facts(Status::Expired), &Change::Cancel, Utc::now()),
            Decision::Refuse(Refusal::Ended)
        );
        assert_eq!(
            decide(facts(Status::Cancelled), &Change::Cancel, Utc::now()),
            Decision::Nothing
        );
    }

    #[test]
    fn expiry_waits_for_the_deadline() {
        let f = facts(Status::Active);
        assert_eq!(decide(f, &Change::Expire, f.created_at), Decision::Nothing);
        assert!(matches!(
            decide(f, &Change::Expire, f.expires_at.unwrap()),
            Decision::Apply(_)
        ));
    }

    #[test]
    fn names_and_numbers() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(parse_name("name", &name(id)).unwrap(), id);
        assert!(matches!(
            parse_name("name", "verifications/nope"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            parse_name("name", "topups/x"),
            Err(ApiError::InvalidArgument(_))
        ));
        assert!(is_e164("+447700900123"));
        assert!(!is_e164("447700900123"));
        assert!(!is_e164("+44 7700"));
        assert_ne!(
            fingerprint("a", "GB", None),
            fingerprint("a", "GB", Some(1))
        );
    }
}
