//! The 5sim client against a local fake 5sim that speaks API v1 (PROTOCOLS.md section 2):
//! buying, polling, finishing, cancelling and banning, and every documented failure mapped
//! to its `ProviderError`. Each test checks what the fake saw, not only what the client said.
#[path = "common/fivesim.rs"]
mod fake_fivesim;

use std::time::{Duration, Instant};

use fake_fivesim::{DEFAULT_BALANCE, FIRST_ORDER, FakeFiveSim, Fault, PRICE};
use namaskah_server::providers::fivesim::FiveSim;
use namaskah_server::providers::{NumberRequest, Provider, ProviderError, RemoteState, Rental};

const KEY: &str = "eyJhbGciOiJSUzUxMiJ9.fake-5sim-key";
const TIMEOUT: Duration = Duration::from_millis(300);

fn client_with(base_url: &str, key: &str) -> FiveSim {
    FiveSim::new(base_url.parse().expect("fake URL"), key.into(), TIMEOUT).expect("client")
}

async fn start() -> (FakeFiveSim, FiveSim) {
    let fake = FakeFiveSim::start(KEY).await;
    let client = client_with(&fake.base_url(), KEY);
    (fake, client)
}

fn whatsapp_gb() -> NumberRequest<'static> {
    NumberRequest {
        service: "whatsapp",
        country: "GB",
        idempotency_key: "0191c2de-5sim-test",
    }
}

async fn rent(client: &FiveSim) -> (Rental, u64) {
    let rental = client.rent(&whatsapp_gb()).await.expect("rent");
    let id = rental.provider_ref.parse().expect("a numeric order id");
    (rental, id)
}

fn status(fake: &FakeFiveSim, id: u64) -> String {
    fake.order(id).expect("the fake knows the order").status
}

#[tokio::test]
async fn buying_returns_the_number_with_one_plus_and_the_orders_expiry() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;

    let order = fake.order(id).expect("bought at the fake");
    assert_eq!(id, FIRST_ORDER);
    assert_eq!(
        (order.country.as_str(), order.product.as_str()),
        ("england", "whatsapp")
    );
    assert_eq!(order.status, "PENDING");
    assert!(order.phone.starts_with("+44"), "{}", order.phone);
    assert_eq!(rental.phone_number, order.phone);
    assert_eq!(rental.phone_number.matches('+').count(), 1);
    assert!(rental.phone_number[1..].bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(rental.expires_at, Some(order.expires));
    assert_eq!(rental.cost, Some(PRICE.to_string()));
    assert_eq!(fake.buys(), 1);
    assert_eq!(fake.balance(), DEFAULT_BALANCE - PRICE);
}

#[tokio::test]
async fn a_base_url_that_ends_in_v1_works_too() {
    let fake = FakeFiveSim::start(KEY).await;
    let client = client_with(&format!("{}/v1/", fake.base_url()), KEY);
    let (_, id) = rent(&client).await;
    assert_eq!(status(&fake, id), "PENDING");
}

#[tokio::test]
async fn unmapped_services_and_countries_are_unsupported_without_a_call() {
    let (fake, client) = start().await;
    for (service, country) in [("whatsapp", "ZZ"), ("hinge", "US"), ("", "")] {
        assert!(!client.serves(service, country));
        let request = NumberRequest {
            service,
            country,
            idempotency_key: "k",
        };
        assert_eq!(client.rent(&request).await, Err(ProviderError::Unsupported));
    }
    assert!(client.serves("telegram", "US"));
    assert_eq!(fake.buys(), 0);
}

#[tokio::test]
async fn no_free_phones_is_no_numbers_whatever_the_status() {
    let (fake, client) = start().await;
    fake.set_stock("england", "whatsapp", 0);
    for http in [200, 400] {
        fake.set_no_phones_status(http);
        assert_eq!(
            client.rent(&whatsapp_gb()).await,
            Err(ProviderError::NoNumbers),
            "with HTTP {http}"
        );
    }
    assert_eq!(fake.buys(), 2);
    assert!(fake.orders().is_empty());
    // Other products in the same country still sell.
    let telegram = NumberRequest {
        service: "telegram",
        ..whatsapp_gb()
    };
    assert!(client.rent(&telegram).await.is_ok());
}

#[tokio::test]
async fn a_low_balance_is_insufficient_balance() {
    let (fake, client) = start().await;
    fake.set_balance(PRICE - 1);
    assert_eq!(
        client.rent(&whatsapp_gb()).await,
        Err(ProviderError::InsufficientBalance)
    );
    assert!(fake.orders().is_empty());
    assert_eq!(fake.balance(), PRICE - 1);
}

#[tokio::test]
async fn a_bad_key_is_unauthorized() {
    let fake = FakeFiveSim::start(KEY).await;
    let client = client_with(&fake.base_url(), "not-the-key");
    assert_eq!(
        client.rent(&whatsapp_gb()).await,
        Err(ProviderError::Unauthorized)
    );
    assert_eq!(
        client.poll("560000001").await,
        Err(ProviderError::Unauthorized)
    );
    assert!(fake.orders().is_empty());
}

#[tokio::test]
async fn rate_limits_by_status_or_by_words() {
    let (fake, client) = start().await;
    fake.fail_next(1, Fault::Status(429));
    fake.fail_next(1, Fault::Text(429, "api limit is 100 requests per second"));
    fake.fail_next(
        1,
        Fault::Text(200, "ip address limit is 100 requests per second"),
    );
    fake.fail_next(1, Fault::Text(400, "not enough rating"));
    for _ in 0..4 {
        assert_eq!(
            client.rent(&whatsapp_gb()).await,
            Err(ProviderError::RateLimited)
        );
    }
    assert!(fake.orders().is_empty());
}

#[tokio::test]
async fn server_errors_are_upstream() {
    let (fake, client) = start().await;
    fake.fail_next(1, Fault::Status(500));
    fake.fail_next(1, Fault::Status(503));
    fake.fail_next(1, Fault::Text(200, "server offline"));
    for _ in 0..3 {
        let answer = client.rent(&whatsapp_gb()).await;
        assert!(
            matches!(answer, Err(ProviderError::Upstream(_))),
            "{answer:?}"
        );
    }
    assert!(fake.orders().is_empty());
    // And it recovers.
    assert!(client.rent(&whatsapp_gb()).await.is_ok());
}

#[tokio::test]
async fn bad_path_parts_are_unsupported() {
    let (fake, client) = start().await;
    for words in [
        "bad country",
        "bad operator",
        "no product",
        "select country",
    ] {
        fake.fail_next(1, Fault::Text(400, words));
        assert_eq!(
            client.rent(&whatsapp_gb()).await,
            Err(ProviderError::Unsupported),
            "{words}"
        );
    }
}

#[tokio::test]
async fn a_hang_is_a_timeout_in_bounded_time_and_the_buy_is_not_retried() {
    let (fake, client) = start().await;
    fake.fail_next(1, Fault::Delay(Duration::from_secs(3)));
    let started = Instant::now();
    let answer = client.rent(&whatsapp_gb()).await;
    let took = started.elapsed();
    assert_eq!(answer, Err(ProviderError::Timeout));
    assert!(answer.unwrap_err().outcome_unknown());
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // Give a retry, had there been one, time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.buys(), 1);
    // The fake did buy: that is why the client must not buy again on its own.
    assert_eq!(fake.orders().len(), 1);
}

#[tokio::test]
async fn unreadable_answers_are_garbage() {
    let (fake, client) = start().await;
    fake.fail_next(1, Fault::Garbage);
    fake.fail_next(
        1,
        Fault::Text(200, r#"{"id":"x","phone":447,"status":"PENDING"}"#),
    );
    fake.fail_next(1, Fault::Text(200, "<html>maintenance</html>"));
    for _ in 0..3 {
        let answer = client.rent(&whatsapp_gb()).await;
        assert!(
            matches!(answer, Err(ProviderError::Garbage(_))),
            "{answer:?}"
        );
    }
    assert_eq!(fake.buys(), 3);
}

#[tokio::test]
async fn polling_shows_delivered_sms_then_ends_after_finish() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;

    let fresh = client.poll(&rental.provider_ref).await.expect("poll");
    assert_eq!(fresh.state, RemoteState::Waiting);
    assert!(fresh.messages.is_empty());

    fake.deliver_sms(id, "WhatsApp", "Your WhatsApp code: 123-456", "123456");
    let polled = client.poll(&rental.provider_ref).await.expect("poll");
    assert_eq!(polled.state, RemoteState::Waiting);
    let sms = &fake.order(id).expect("order").sms[0];
    assert_eq!(polled.messages.len(), 1);
    let message = &polled.messages[0];
    assert_eq!(message.id, Some(sms.id.to_string()));
    assert_eq!(message.sender, "WhatsApp");
    assert_eq!(message.text, "Your WhatsApp code: 123-456");
    assert_eq!(message.code.as_deref(), Some("123456"));
    // `date`, in whole seconds, rather than `created_at`.
    assert_eq!(message.received_at, sms.date);
    assert_eq!(status(&fake, id), "RECEIVED");

    client.finish(&rental.provider_ref).await.expect("finish");
    assert_eq!(status(&fake, id), "FINISHED");
    assert_eq!(fake.finishes(), 1);
    let ended = client.poll(&rental.provider_ref).await.expect("poll");
    assert_eq!(ended.state, RemoteState::Ended);
    assert_eq!(ended.messages.len(), 1, "the list still holds the message");
    // Finishing again is success.
    client
        .finish(&rental.provider_ref)
        .await
        .expect("finish again");
}

#[tokio::test]
async fn messages_without_ids_have_none() {
    let (fake, client) = start().await;
    fake.set_sms_ids(false);
    let (rental, id) = rent(&client).await;
    fake.deliver_sms(id, "Google", "G-482913 is your code", "482913");
    let polled = client.poll(&rental.provider_ref).await.expect("poll");
    assert_eq!(polled.messages.len(), 1);
    assert_eq!(polled.messages[0].id, None);
    assert_eq!(polled.messages[0].code.as_deref(), Some("482913"));
}

#[tokio::test]
async fn polling_ends_after_a_time_out() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    fake.time_out(id);
    let polled = client.poll(&rental.provider_ref).await.expect("poll");
    assert_eq!(polled.state, RemoteState::Ended);
    assert_eq!(status(&fake, id), "TIMEOUT");
}

#[tokio::test]
async fn polling_an_unknown_order_is_refused() {
    let (fake, client) = start().await;
    let answer = client.poll("999").await;
    assert!(
        matches!(answer, Err(ProviderError::Refused(_))),
        "{answer:?}"
    );
    assert_eq!(fake.checks(), 1);
    // Not an order id at all: refused without a call.
    let answer = client.poll("../profile").await;
    assert!(
        matches!(answer, Err(ProviderError::Refused(_))),
        "{answer:?}"
    );
    assert_eq!(fake.checks(), 1);
}

#[tokio::test]
async fn cancelling_refunds_and_shows_canceled() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    client.cancel(&rental.provider_ref).await.expect("cancel");
    assert_eq!(status(&fake, id), "CANCELED");
    assert_eq!(fake.cancels(), 1);
    assert_eq!(fake.balance(), DEFAULT_BALANCE);
    // Cancelling again is success, and refunds nothing twice.
    client
        .cancel(&rental.provider_ref)
        .await
        .expect("cancel again");
    assert_eq!(status(&fake, id), "CANCELED");
    assert_eq!(fake.balance(), DEFAULT_BALANCE);
}

#[tokio::test]
async fn cancelling_an_order_with_sms_is_refused() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    fake.deliver_sms(id, "Telegram", "Telegram code 55123", "55123");
    let answer = client.cancel(&rental.provider_ref).await;
    match answer {
        Err(ProviderError::Refused(text)) => assert!(text.contains("order has sms"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(status(&fake, id), "RECEIVED");
    assert_eq!(fake.balance(), DEFAULT_BALANCE - PRICE);
}

#[tokio::test]
async fn cancelling_after_a_time_out_is_success() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    fake.time_out(id);
    client.cancel(&rental.provider_ref).await.expect("cancel");
    assert_eq!(status(&fake, id), "TIMEOUT");
    assert_eq!(fake.cancels(), 1);
    // `order expired` is success even when the check cannot confirm it.
    fake.fail_next(1, Fault::Text(400, "order expired"));
    fake.fail_next(1, Fault::Status(503));
    client
        .cancel(&rental.provider_ref)
        .await
        .expect("cancel again");
}

#[tokio::test]
async fn cancelling_when_5sim_fails_is_an_error() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    fake.fail_next(1, Fault::Status(502));
    let answer = client.cancel(&rental.provider_ref).await;
    assert!(
        matches!(answer, Err(ProviderError::Upstream(_))),
        "{answer:?}"
    );
    assert_eq!(status(&fake, id), "PENDING");
    fake.fail_next(1, Fault::Delay(Duration::from_secs(2)));
    assert_eq!(
        client.cancel(&rental.provider_ref).await,
        Err(ProviderError::Timeout)
    );
}

#[tokio::test]
async fn reporting_bans_rather_than_cancels() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    client.report(&rental.provider_ref).await.expect("report");
    assert_eq!(status(&fake, id), "BANNED");
    assert_eq!((fake.bans(), fake.cancels()), (1, 0));
    assert_eq!(fake.balance(), DEFAULT_BALANCE);
    let polled = client.poll(&rental.provider_ref).await.expect("poll");
    assert_eq!(polled.state, RemoteState::Ended);
}

#[tokio::test]
async fn finishing_without_sms_is_refused() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    let answer = client.finish(&rental.provider_ref).await;
    assert!(
        matches!(answer, Err(ProviderError::Refused(_))),
        "{answer:?}"
    );
    assert_eq!(status(&fake, id), "PENDING");
}

#[tokio::test]
async fn finishing_marks_the_order_finished() {
    let (fake, client) = start().await;
    let (rental, id) = rent(&client).await;
    fake.deliver_sms(id, "Uber", "Your Uber code is 9921", "9921");
    client.finish(&rental.provider_ref).await.expect("finish");
    assert_eq!(status(&fake, id), "FINISHED");
    assert_eq!((fake.finishes(), fake.cancels(), fake.bans()), (1, 0, 0));
}
