//! The sandbox provider: numbers from reserved test ranges, and a code of its own a while
//! after each number is assigned, so the whole lifecycle runs without a real phone.
//!
//! It keeps no state: everything a poll needs (when the number was assigned, which code it
//! will send) is in the rental's reference, so any server instance can poll any sandbox
//! rental, before or after a restart. `SandboxService.InjectSms` delivers other messages
//! straight to the verification room.
//!
//! Numbers: the United Kingdom's Ofcom drama range `+44 7700 900000–900999`; North America's
//! `555-0100–0199` lines (area code 202 for the US, 416 for Canada); elsewhere the
//! country's calling code followed by `0` (a trunk prefix, which no E.164 number has after
//! its country code, so the number can never reach a real phone) and seven digits.
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use rand::Rng;

use super::{NumberRequest, Poll, Provider, ProviderError, ProviderSms, RemoteState, Rental};

/// How long a sandbox number is held, as a provider would say.
const HOLD: Duration = Duration::from_secs(20 * 60);

pub struct SandboxProvider {
    /// `GB` → `+44`, from the catalog's countries (set once the catalog is seeded).
    calling_codes: RwLock<HashMap<String, String>>,
    /// When the automatic code arrives after the number is assigned; `None`: never (only
    /// `InjectSms`).
    sms_delay: Option<Duration>,
}

impl SandboxProvider {
    pub fn new(calling_codes: HashMap<String, String>, sms_delay: Option<Duration>) -> Self {
        Self {
            calling_codes: RwLock::new(calling_codes),
            sms_delay,
        }
    }

    /// Replaces the calling codes (after the catalog is seeded or changed).
    pub fn set_calling_codes(&self, calling_codes: HashMap<String, String>) {
        *self
            .calling_codes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = calling_codes;
    }

    fn calling_code(&self, country: &str) -> Option<String> {
        self.calling_codes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(country)
            .cloned()
    }

    /// Until when a rental assigned at `assigned` has nothing new for a poll at `now`: the
    /// time of its code until the code is sent, then the end of the hold (the sandbox sends
    /// one message; `InjectSms` does not go through polls).
    fn quiet_until(&self, assigned: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.sms_delay {
            Some(delay) if now < assigned + delay => assigned + delay,
            _ => assigned + HOLD,
        }
    }

    /// A number from the country's reserved test range.
    fn number(&self, country: &str) -> Option<String> {
        let mut rng = rand::rng();
        match country {
            "GB" => Some(format!("+447700900{:03}", rng.random_range(0..1000))),
            "US" => Some(format!("+1202555{:04}", rng.random_range(100..200))),
            "CA" => Some(format!("+1416555{:04}", rng.random_range(100..200))),
            other => {
                let code = self.calling_code(other)?;
                Some(format!("{code}0{:07}", rng.random_range(0..10_000_000)))
            }
        }
    }
}

/// The reference of a sandbox rental: `sbx-{assigned unix ms}-{code}-{nonce}`.
fn reference(assigned: DateTime<Utc>, code: u32) -> String {
    format!(
        "sbx-{}-{code:06}-{:08x}",
        assigned.timestamp_millis(),
        rand::rng().random::<u32>()
    )
}

fn parse_reference(reference: &str) -> Option<(DateTime<Utc>, String)> {
    let mut parts = reference.strip_prefix("sbx-")?.split('-');
    let millis: i64 = parts.next()?.parse().ok()?;
    let code = parts.next()?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let assigned = Utc.timestamp_millis_opt(millis).single()?;
    Some((assigned, code.to_owned()))
}

#[async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn serves(&self, _service: &str, country: &str) -> bool {
        matches!(country, "GB" | "US" | "CA") || self.calling_code(country).is_some()
    }

    async fn rent(&self, request: &NumberRequest<'_>) -> Result<Rental, ProviderError> {
        let phone_number = self
            .number(request.country)
            .ok_or(ProviderError::Unsupported)?;
        // To the millisecond, as the reference keeps it.
        let now = Utc::now().trunc_subsecs(3);
        let code = rand::rng().random_range(100_000..1_000_000);
        Ok(Rental {
            provider_ref: reference(now, code),
            phone_number,
            expires_at: Some(now + HOLD),
            cost: Some("0".to_owned()),
            // Its code's time (even when that is now), or never.
            quiet_until: Some(now + self.sms_delay.unwrap_or(HOLD)),
        })
    }

    async fn poll(&self, rental: &str) -> Result<Poll, ProviderError> {
        let (assigned, code) = parse_reference(rental)
            .ok_or_else(|| ProviderError::Refused(format!("unknown sandbox rental {rental}")))?;
        let now = Utc::now();
        let mut messages = Vec::new();
        if let Some(delay) = self.sms_delay {
            let at = assigned + delay;
            if now >= at {
                messages.push(ProviderSms {
                    id: Some(format!("{rental}-1")),
                    sender: "Namaskah Sandbox".to_owned(),
                    text: format!("Your verification code is {code}. Do not share it."),
                    code: Some(code),
                    received_at: at,
                });
            }
        }
        let state = if now >= assigned + HOLD {
            RemoteState::Ended
        } else {
            RemoteState::Waiting
        };
        Ok(Poll {
            messages,
            state,
            quiet_until: Some(self.quiet_until(assigned, now)),
        })
    }

    async fn cancel(&self, _rental: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn finish(&self, _rental: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn report(&self, _rental: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(delay: Option<Duration>) -> SandboxProvider {
        SandboxProvider::new(HashMap::from([("NG".to_owned(), "+234".to_owned())]), delay)
    }

    #[tokio::test]
    async fn numbers_come_from_reserved_ranges() {
        let p = provider(None);
        for (country, prefix, len) in [
            ("GB", "+447700900", 13),
            ("US", "+1202555", 12),
            ("CA", "+1416555", 12),
            ("NG", "+2340", 12),
        ] {
            let request = NumberRequest {
                service: "whatsapp",
                country,
                idempotency_key: "k",
            };
            let rental = p.rent(&request).await.unwrap();
            assert!(rental.phone_number.starts_with(prefix), "{rental:?}");
            assert_eq!(rental.phone_number.len(), len, "{rental:?}");
        }
        let unknown = NumberRequest {
            service: "whatsapp",
            country: "ZZ",
            idempotency_key: "k",
        };
        assert_eq!(p.rent(&unknown).await, Err(ProviderError::Unsupported));
        assert!(!p.serves("whatsapp", "ZZ"));
    }

    #[tokio::test]
    async fn the_code_arrives_after_the_delay_and_only_then() {
        let p = provider(Some(Duration::ZERO));
        let request = NumberRequest {
            service: "telegram",
            country: "GB",
            idempotency_key: "k",
        };
        let rental = p.rent(&request).await.unwrap();
        let poll = p.poll(&rental.provider_ref).await.unwrap();
        assert_eq!(poll.messages.len(), 1);
        let code = poll.messages[0].code.clone().unwrap();
        assert!(poll.messages[0].text.contains(&code));
        assert_eq!(poll.state, RemoteState::Waiting);

        let slow = provider(Some(Duration::from_secs(3600)));
        assert!(
            slow.poll(&rental.provider_ref)
                .await
                .unwrap()
                .messages
                .is_empty()
        );
        let never = provider(None);
        assert!(
            never
                .poll(&rental.provider_ref)
                .await
                .unwrap()
                .messages
                .is_empty()
        );
        assert!(matches!(
            p.poll("nonsense").await,
            Err(ProviderError::Refused(_))
        ));
    }

    #[tokio::test]
    async fn polls_are_told_when_something_can_next_arrive() {
        let request = NumberRequest {
            service: "telegram",
            country: "GB",
            idempotency_key: "k",
        };
        let delay = Duration::from_secs(3600);
        let slow = provider(Some(delay));
        let rental = slow.rent(&request).await.unwrap();
        let (assigned, _) = parse_reference(&rental.provider_ref).unwrap();
        // Before the code: wait for the code's time, from the rental and from each poll.
        assert_eq!(rental.quiet_until, Some(assigned + delay));
        let early = slow.poll(&rental.provider_ref).await.unwrap();
        assert!(early.messages.is_empty());
        assert_eq!(early.quiet_until, Some(assigned + delay));
        // The code sent: nothing more comes until the hold ends.
        let done = provider(Some(Duration::ZERO));
        let sent = done.poll(&rental.provider_ref).await.unwrap();
        assert_eq!(sent.messages.len(), 1);
        assert_eq!(sent.quiet_until, Some(assigned + HOLD));
        // Without automatic codes the rental is quiet for its whole hold.
        let never = provider(None);
        let silent = never.rent(&request).await.unwrap();
        let (assigned, _) = parse_reference(&silent.provider_ref).unwrap();
        assert_eq!(silent.quiet_until, Some(assigned + HOLD));
        assert_eq!(
            never.poll(&silent.provider_ref).await.unwrap().quiet_until,
            Some(assigned + HOLD)
        );
    }
}
