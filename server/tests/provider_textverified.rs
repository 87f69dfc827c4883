//! The TextVerified API v2 client against a local fake speaking the documented protocol:
//! tokens, idempotent renting, errors, polling, cancel and report, and webhooks.
use std::time::{Duration, Instant};

use namaskah_server::providers::textverified::{
    TextVerified, Webhook, parse_webhook, verify_webhook,
};
use namaskah_server::providers::{NumberRequest, Provider, ProviderError, RemoteState};

#[path = "common/textverified.rs"]
mod fake_textverified;

use fake_textverified::{FakeTextVerified, Fault, sign_webhook, sms_received_webhook};

const USERNAME: &str = "ops@namaskah.test";
const API_KEY: &str = "tv_primary_key_1";
const SECRET: &str = "whsec_test_0123456789";

async fn start() -> (FakeTextVerified, TextVerified) {
    start_with_timeout(Duration::from_secs(5)).await
}

async fn start_with_timeout(timeout: Duration) -> (FakeTextVerified, TextVerified) {
    let fake = FakeTextVerified::start(USERNAME, API_KEY).await;
    let client = client(&fake, USERNAME, API_KEY, timeout);
    (fake, client)
}

fn client(fake: &FakeTextVerified, username: &str, key: &str, timeout: Duration) -> TextVerified {
    let base = fake.base_url().parse().expect("the fake's URL");
    TextVerified::new(base, username.to_owned(), key.to_owned(), timeout).expect("a client")
}

fn google(key: &str) -> NumberRequest<'_> {
    NumberRequest {
        service: "google",
        country: "US",
        idempotency_key: key,
    }
}

#[tokio::test]
async fn the_token_is_fetched_once_and_reused() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    for _ in 0..5 {
        client.poll(&rental.provider_ref).await.expect("a poll");
    }
    client.rent(&google("v-2")).await.expect("a second rental");
    client.report(&rental.provider_ref).await.expect("a report");
    assert_eq!(fake.auth_calls(), 1);
    assert_eq!(fake.unauthorized_answers(), 0);
    assert!(
        fake.api_calls() >= 15,
        "only {} API calls",
        fake.api_calls()
    );
}

/// Polls the rental from `count` tasks at once.
async fn poll_concurrently(client: &std::sync::Arc<TextVerified>, id: &str, count: usize) {
    let polls: Vec<_> = (0..count)
        .map(|_| {
            let client = client.clone();
            let id = id.to_owned();
            tokio::spawn(async move { client.poll(&id).await })
        })
        .collect();
    for poll in polls {
        poll.await.expect("the task").expect("a poll");
    }
}

#[tokio::test]
async fn concurrent_calls_share_one_token_and_one_refresh() {
    let (fake, client) = start().await;
    let client = std::sync::Arc::new(client);
    // Ids are checked only by the details call: an unknown one would be Refused, so rent
    // first with another client and count from there.
    let setup = self::client(&fake, USERNAME, API_KEY, Duration::from_secs(5));
    let rental = setup.rent(&google("v-1")).await.expect("a rental");
    assert_eq!(fake.tokens_issued(), 1);

    poll_concurrently(&client, &rental.provider_ref, 8).await;
    assert_eq!(
        fake.tokens_issued(),
        2,
        "concurrent first calls each fetched a token"
    );

    fake.revoke_tokens();
    poll_concurrently(&client, &rental.provider_ref, 8).await;
    // One more token after the revocation, however many calls saw 401.
    assert_eq!(fake.tokens_issued(), 3);
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_call_succeeds() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.revoke_tokens();
    let poll = client.poll(&rental.provider_ref).await.expect("a poll");
    assert_eq!(poll.state, RemoteState::Waiting);
    assert_eq!(fake.auth_calls(), 2);
    assert_eq!(fake.unauthorized_answers(), 1);
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_and_the_call_succeeds() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.expire_tokens();
    client.cancel(&rental.provider_ref).await.expect("a cancel");
    assert_eq!(
        fake.state(&rental.provider_ref).as_deref(),
        Some("verificationCanceled")
    );
    assert_eq!(fake.auth_calls(), 2);
    assert_eq!(fake.unauthorized_answers(), 1);
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_before_it_expires() {
    let (fake, client) = start().await;
    // Renewed half-way through a lifetime too short for the usual minute of margin.
    fake.set_token_lifetime(Duration::from_secs(2));
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    assert_eq!(fake.auth_calls(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client.poll(&rental.provider_ref).await.expect("a poll");
    assert!(fake.auth_calls() >= 2, "the token was not renewed early");
    assert_eq!(fake.unauthorized_answers(), 0);
}

#[tokio::test]
async fn a_second_401_is_unauthorized_without_a_loop() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.fail_next(2, Fault::Status(401));
    assert_eq!(
        client.poll(&rental.provider_ref).await,
        Err(ProviderError::Unauthorized)
    );
    assert_eq!(fake.auth_calls(), 2);
}

#[tokio::test]
async fn bad_credentials_are_unauthorized() {
    let fake = FakeTextVerified::start(USERNAME, API_KEY).await;
    let wrong_key = client(&fake, USERNAME, "not-the-key", Duration::from_secs(5));
    assert_eq!(
        wrong_key.rent(&google("v-1")).await,
        Err(ProviderError::Unauthorized)
    );
    let wrong_user = client(&fake, "someone@else.test", API_KEY, Duration::from_secs(5));
    assert_eq!(
        wrong_user.poll("ver_1").await,
        Err(ProviderError::Unauthorized)
    );
    assert_eq!(fake.auth_calls(), 2);
    assert_eq!(fake.api_calls(), 0);
    assert!(fake.verifications().is_empty());
}

#[tokio::test]
async fn auth_failures_are_mapped() {
    let (fake, client) = start().await;
    fake.fail_next_auth(1, Fault::Status(429));
    fake.fail_next_auth(1, Fault::Status(503));
    fake.fail_next_auth(1, Fault::Garbage);
    assert_eq!(client.poll("ver_x").await, Err(ProviderError::RateLimited));
    assert!(matches!(
        client.poll("ver_x").await,
        Err(ProviderError::Upstream(_))
    ));
    assert!(matches!(
        client.poll("ver_x").await,
        Err(ProviderError::Garbage(_))
    ));
    assert_eq!(fake.api_calls(), 0);
}

#[tokio::test]
async fn rent_returns_an_e164_number_and_its_expiry() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    let held = fake
        .verification(&rental.provider_ref)
        .expect("the verification at the fake");
    assert_eq!(held.service_name, "google");
    assert_eq!(held.capability, "sms");
    assert_eq!(held.idempotency_key.as_deref(), Some("v-1"));
    assert_eq!(held.number.len(), 10);
    assert_eq!(rental.phone_number, format!("+1{}", held.number));
    let expires_at = rental.expires_at.expect("an expiry");
    assert!((expires_at - held.ends_at).num_milliseconds().abs() < 2);
    assert_eq!(rental.cost.as_deref(), Some("0.95"));
    assert_eq!(fake.create_calls(), 1);
}

#[tokio::test]
async fn the_same_key_twice_rents_one_number() {
    let (fake, client) = start().await;
    let first = client.rent(&google("v-1")).await.expect("a rental");
    let again = client.rent(&google("v-1")).await.expect("the same rental");
    assert_eq!(first, again);
    assert_eq!(fake.create_calls(), 2);
    assert_eq!(fake.verifications().len(), 1);
    let other = client.rent(&google("v-2")).await.expect("another rental");
    assert_ne!(other.provider_ref, first.provider_ref);
    assert_ne!(other.phone_number, first.phone_number);
    assert_eq!(fake.verifications().len(), 2);
}

#[tokio::test]
async fn unsupported_requests_never_reach_textverified() {
    let (fake, client) = start().await;
    let gb = NumberRequest {
        country: "GB",
        ..google("v-1")
    };
    assert_eq!(client.rent(&gb).await, Err(ProviderError::Unsupported));
    let shopee = NumberRequest {
        service: "shopee",
        ..google("v-1")
    };
    assert_eq!(client.rent(&shopee).await, Err(ProviderError::Unsupported));
    assert!(client.serves("google", "US"));
    assert!(!client.serves("google", "GB"));
    assert_eq!(client.name(), "textverified");
    assert_eq!(fake.auth_calls() + fake.api_calls(), 0);
}

#[tokio::test]
async fn no_stock_is_no_numbers() {
    let (fake, client) = start().await;
    fake.set_stock("google", 0);
    assert_eq!(
        client.rent(&google("v-1")).await,
        Err(ProviderError::NoNumbers)
    );
    assert!(fake.verifications().is_empty());
    // Another service still has numbers.
    let telegram = NumberRequest {
        service: "telegram",
        ..google("v-2")
    };
    client.rent(&telegram).await.expect("a telegram number");
}

#[tokio::test]
async fn a_low_balance_is_insufficient_balance() {
    let (fake, client) = start().await;
    fake.set_balance_low();
    assert_eq!(
        client.rent(&google("v-1")).await,
        Err(ProviderError::InsufficientBalance)
    );
    assert!(fake.verifications().is_empty());
}

#[tokio::test]
async fn too_many_requests_is_rate_limited() {
    let (fake, client) = start().await;
    fake.fail_next(1, Fault::Status(429));
    assert_eq!(
        client.rent(&google("v-1")).await,
        Err(ProviderError::RateLimited)
    );
    assert!(fake.verifications().is_empty());
}

#[tokio::test]
async fn server_errors_are_upstream() {
    let (fake, client) = start().await;
    for status in [500, 503] {
        fake.fail_next(1, Fault::Status(status));
        let error = client.rent(&google("v-1")).await;
        assert!(
            matches!(&error, Err(ProviderError::Upstream(m)) if m.contains(&status.to_string())),
            "{status}: {error:?}"
        );
    }
    assert!(fake.verifications().is_empty());
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.fail_next(1, Fault::Status(502));
    assert!(matches!(
        client.poll(&rental.provider_ref).await,
        Err(ProviderError::Upstream(_))
    ));
    // A refusal without a documented code is Refused.
    fake.fail_next(1, Fault::Status(400));
    assert!(matches!(
        client.report(&rental.provider_ref).await,
        Err(ProviderError::Refused(_))
    ));
    fake.fail_next(1, Fault::Status(403));
    assert_eq!(
        client.poll(&rental.provider_ref).await,
        Err(ProviderError::Unauthorized)
    );
}

#[tokio::test]
async fn a_hanging_textverified_is_a_timeout() {
    let (fake, client) = start_with_timeout(Duration::from_millis(300)).await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.fail_next(1, Fault::Delay(Duration::from_secs(5)));
    let started = Instant::now();
    assert_eq!(
        client.poll(&rental.provider_ref).await,
        Err(ProviderError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_create_that_keeps_hanging_is_a_timeout_after_three_tries_and_one_number() {
    let (fake, client) = start_with_timeout(Duration::from_millis(300)).await;
    fake.fail_next(3, Fault::Delay(Duration::from_secs(5)));
    let started = Instant::now();
    assert_eq!(
        client.rent(&google("v-1")).await,
        Err(ProviderError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.create_calls(), 3);
    // The first try really bought a number; the retries, with the same key, did not.
    let bought = fake.verifications();
    assert_eq!(bought.len(), 1);
    assert_eq!(bought[0].idempotency_key.as_deref(), Some("v-1"));
}

#[tokio::test]
async fn a_create_that_timed_out_is_retried_with_its_key() {
    let (fake, client) = start_with_timeout(Duration::from_millis(300)).await;
    // The first create takes a little longer than the client waits: it buys the number,
    // and the retry (answered 409 while the first runs, then 201) returns that number.
    fake.fail_next(1, Fault::Delay(Duration::from_millis(450)));
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    let bought = fake.verifications();
    assert_eq!(bought.len(), 1);
    assert_eq!(bought[0].id, rental.provider_ref);
    assert!(fake.create_calls() >= 2);
}

#[tokio::test]
async fn a_create_still_running_is_awaited_with_its_key() {
    let (fake, client) = start().await;
    fake.hold_key("v-1", Duration::from_millis(700));
    let started = Instant::now();
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(fake.create_calls(), 3, "409, 409, then 201");
    let bought = fake.verifications();
    assert_eq!(bought.len(), 1);
    assert_eq!(bought[0].id, rental.provider_ref);
}

#[tokio::test]
async fn a_create_running_for_too_long_is_a_timeout() {
    let (fake, client) = start().await;
    fake.hold_key("v-1", Duration::from_secs(30));
    let started = Instant::now();
    assert_eq!(
        client.rent(&google("v-1")).await,
        Err(ProviderError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.create_calls(), 3);
    assert!(fake.verifications().is_empty());
}

#[tokio::test]
async fn garbage_is_garbage() {
    let (fake, client) = start().await;
    fake.fail_next(1, Fault::Garbage);
    assert!(matches!(
        client.rent(&google("v-1")).await,
        Err(ProviderError::Garbage(_))
    ));
    let rental = client.rent(&google("v-2")).await.expect("a rental");
    fake.fail_next(1, Fault::Garbage);
    assert!(matches!(
        client.poll(&rental.provider_ref).await,
        Err(ProviderError::Garbage(_))
    ));
    // The details answer is fine, the SMS page is not.
    fake.fail_next(1, Fault::Delay(Duration::ZERO));
    fake.fail_next(1, Fault::Garbage);
    assert!(matches!(
        client.poll(&rental.provider_ref).await,
        Err(ProviderError::Garbage(_))
    ));
}

#[tokio::test]
async fn poll_reads_every_page_of_messages_and_the_state() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    let other = client.rent(&google("v-2")).await.expect("another rental");

    let empty = client.poll(&rental.provider_ref).await.expect("a poll");
    assert!(empty.messages.is_empty());
    assert_eq!(empty.state, RemoteState::Waiting);

    fake.set_page_size(2);
    let mut delivered = Vec::new();
    for i in 0..5 {
        let text = format!("Your Google code is G-{}. Don't share it.", 100_000 + i);
        delivered.push(fake.deliver_sms(&rental.provider_ref, "22000", &text));
    }
    fake.deliver_sms(&other.provider_ref, "22000", "Your code is 999999");
    let pages_before = fake.sms_page_calls();
    let poll = client.poll(&rental.provider_ref).await.expect("a poll");
    assert_eq!(fake.sms_page_calls() - pages_before, 3);
    assert_eq!(poll.state, RemoteState::Waiting);
    assert_eq!(poll.messages.len(), 5);
    for (got, sent) in poll.messages.iter().zip(&delivered) {
        assert_eq!(got.id.as_deref(), Some(sent.id.as_str()));
        assert_eq!(got.sender, "22000");
        assert_eq!(got.text, sent.text);
        assert_eq!(got.code, sent.parsed_code);
        assert!((got.received_at - sent.created_at).num_milliseconds().abs() < 2);
    }
    assert_eq!(poll.messages[4].code.as_deref(), Some("100004"));

    fake.complete(&rental.provider_ref);
    let done = client.poll(&rental.provider_ref).await.expect("a poll");
    assert_eq!(done.state, RemoteState::Ended);
    assert_eq!(done.messages.len(), 5);

    fake.expire(&other.provider_ref);
    let expired = client.poll(&other.provider_ref).await.expect("a poll");
    assert_eq!(expired.state, RemoteState::Ended);
    assert_eq!(expired.messages.len(), 1);
    assert_eq!(expired.messages[0].code.as_deref(), Some("999999"));
}

#[tokio::test]
async fn poll_stops_after_ten_pages() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.set_page_size(1);
    for i in 0..12 {
        fake.deliver_sms(&rental.provider_ref, "", &format!("code {}", 1000 + i));
    }
    let poll = client.poll(&rental.provider_ref).await.expect("a poll");
    assert_eq!(poll.messages.len(), 10);
    assert_eq!(fake.sms_page_calls(), 10);
}

#[tokio::test]
async fn an_unknown_verification_is_refused() {
    let (_fake, client) = start().await;
    assert!(matches!(
        client.poll("ver_nope").await,
        Err(ProviderError::Refused(_))
    ));
    assert!(matches!(
        client.cancel("ver_nope").await,
        Err(ProviderError::Refused(_))
    ));
    assert!(matches!(
        client.report("ver_nope").await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn cancelling_a_pending_verification_cancels_it() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    client.cancel(&rental.provider_ref).await.expect("a cancel");
    assert_eq!(
        fake.state(&rental.provider_ref).as_deref(),
        Some("verificationCanceled")
    );
    // Again: TextVerified says 400, the verification has ended, so that is success.
    client
        .cancel(&rental.provider_ref)
        .await
        .expect("a second cancel");
    let poll = client.poll(&rental.provider_ref).await.expect("a poll");
    assert_eq!(poll.state, RemoteState::Ended);
}

#[tokio::test]
async fn cancelling_an_expired_verification_is_success() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.expire(&rental.provider_ref);
    client.cancel(&rental.provider_ref).await.expect("a cancel");
    assert_eq!(
        fake.state(&rental.provider_ref).as_deref(),
        Some("verificationTimedOut")
    );
}

#[tokio::test]
async fn a_refused_cancel_of_a_pending_verification_is_refused() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    fake.fail_next(1, Fault::Status(400));
    assert!(matches!(
        client.cancel(&rental.provider_ref).await,
        Err(ProviderError::Refused(_))
    ));
    assert_eq!(
        fake.state(&rental.provider_ref).as_deref(),
        Some("verificationPending")
    );
}

#[tokio::test]
async fn report_reports_and_finish_sends_nothing() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    let calls = fake.api_calls();
    client.finish(&rental.provider_ref).await.expect("a finish");
    assert_eq!(fake.api_calls(), calls);
    client.report(&rental.provider_ref).await.expect("a report");
    assert_eq!(
        fake.state(&rental.provider_ref).as_deref(),
        Some("verificationReported")
    );
    // Reported twice: TextVerified refuses.
    assert!(matches!(
        client.report(&rental.provider_ref).await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn webhook_signatures_are_checked() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    let sms = fake.deliver_sms(&rental.provider_ref, "22000", "G-123456 is your code");
    let body = sms_received_webhook("idem-1", &sms);
    let signature = sign_webhook(SECRET, &body);
    assert!(signature.starts_with("HMAC-SHA512="));
    assert!(verify_webhook(SECRET, &body, &signature));
    assert!(!verify_webhook("whsec_other", &body, &signature));
    let mut tampered = body.clone();
    let at = tampered
        .iter()
        .position(|b| *b == b'1')
        .expect("a digit in the body");
    tampered[at] = b'7';
    assert!(!verify_webhook(SECRET, &tampered, &signature));
    let bare = signature.trim_start_matches("HMAC-SHA512=");
    assert!(!verify_webhook(SECRET, &body, bare));
    assert!(!verify_webhook(SECRET, &body, ""));
}

#[tokio::test]
async fn webhooks_are_read_in_camel_case() {
    let (fake, client) = start().await;
    let rental = client.rent(&google("v-1")).await.expect("a rental");
    let sms = fake.deliver_sms(&rental.provider_ref, "22000", "G-123456 is your code");
    let body = sms_received_webhook("idem-1", &sms);
    let Ok(Webhook::Sms {
        idempotency_key,
        reservation_id,
        sms: got,
    }) = parse_webhook(&body)
    else {
        panic!("not an SMS webhook: {:?}", parse_webhook(&body));
    };
    assert_eq!(idempotency_key, "idem-1");
    assert_eq!(reservation_id, rental.provider_ref);
    assert_eq!(got.sender, "22000");
    assert_eq!(got.text, "G-123456 is your code");
    assert_eq!(got.code.as_deref(), Some("123456"));
    assert!((got.received_at - sms.created_at).num_milliseconds().abs() < 2);
}

#[test]
fn webhooks_are_read_in_pascal_case() {
    let body = br#"{"Id":"evt_7","Event":"v2.sms.received","Attempt":2,
        "OccurredAt":"2026-03-04T05:06:07Z","IdempotencyKey":"idem-7",
        "Data":{"From":"Twitter","To":"2025550000","CreatedAt":"2026-03-04T05:06:00+00:00",
        "SmsContent":"Your X code is 424242","ParsedCode":"424242","Encrypted":false,
        "ReservationId":"ver_abc"}}"#;
    let Ok(Webhook::Sms {
        idempotency_key,
        reservation_id,
        sms,
    }) = parse_webhook(body)
    else {
        panic!("not an SMS webhook: {:?}", parse_webhook(body));
    };
    assert_eq!(idempotency_key, "idem-7");
    assert_eq!(reservation_id, "ver_abc");
    assert_eq!(sms.sender, "Twitter");
    assert_eq!(sms.text, "Your X code is 424242");
    assert_eq!(sms.code.as_deref(), Some("424242"));
    assert_eq!(sms.received_at.to_rfc3339(), "2026-03-04T05:06:00+00:00");

    let created = br#"{"Event":"v2.reservation.created","IdempotencyKey":"idem-8",
        "Data":{"Id":"ver_abc","Type":"verification"}}"#;
    assert_eq!(
        parse_webhook(created),
        Ok(Webhook::Other {
            event: "v2.reservation.created".to_owned(),
            idempotency_key: "idem-8".to_owned(),
        })
    );
    assert!(matches!(
        parse_webhook(b"{\"Event\":"),
        Err(ProviderError::Garbage(_))
    ));
}
