//! The verification lifecycle through the real server against the real provider clients,
//! each talking to a local fake (TextVerified, 5sim): numbers rented and polled to a code,
//! TextVerified's signed webhooks, cancels and expiries given back at the provider, 5sim
//! orders finished, failover between providers, and the clean failures (refunded, with
//! the reason) when no provider can serve.
mod common;

use std::time::{Duration, Instant};

use common::fivesim::{FakeFiveSim, Fault as FiveSimFault};
use common::textverified::{
    FakeSms, FakeTextVerified, Fault as TvFault, sign_webhook, sms_received_webhook,
};
use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::catalog_service_client::CatalogServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

const TV_USERNAME: &str = "ops@namaskah.test";
const TV_KEY: &str = "tv_primary_key_1";
const TV_SECRET: &str = "whsec_test_0123456789";
const FIVESIM_KEY: &str = "fivesim_key_1";
/// The longest any wait in these tests lasts.
const WAIT: Duration = Duration::from_secs(10);
/// How often waits look again.
const STEP: Duration = Duration::from_millis(50);

/// Which fakes the server is pointed at, and any extra configuration (later wins).
struct Setup<'a> {
    textverified: Option<&'a FakeTextVerified>,
    webhook_secret: Option<&'a str>,
    fivesim: Option<&'a FakeFiveSim>,
    fivesim_key: &'a str,
    extra: &'a [(&'a str, &'a str)],
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            textverified: None,
            webhook_secret: None,
            fivesim: None,
            fivesim_key: FIVESIM_KEY,
            extra: &[],
        }
    }
}

/// The server with the given providers; the sandbox payment gateway stays on (Paystack is
/// not configured) so that `funded()` works, and the jobs run every 100 ms.
async fn spawn(setup: Setup<'_>) -> TestApp {
    let mut vars: Vec<(String, String)> = vec![
        ("NAMASKAH_SANDBOX".into(), "on".into()),
        ("NAMASKAH_JOB_INTERVAL".into(), "100ms".into()),
        ("NAMASKAH_PROVIDER_TIMEOUT".into(), "2s".into()),
    ];
    if let Some(tv) = setup.textverified {
        vars.push(("TEXTVERIFIED_BASE_URL".into(), tv.base_url()));
        vars.push(("TEXTVERIFIED_USERNAME".into(), TV_USERNAME.into()));
        vars.push(("TEXTVERIFIED_API_KEY".into(), TV_KEY.into()));
        if let Some(secret) = setup.webhook_secret {
            vars.push(("TEXTVERIFIED_WEBHOOK_SECRET".into(), secret.into()));
        }
    }
    if let Some(fivesim) = setup.fivesim {
        vars.push(("FIVESIM_BASE_URL".into(), fivesim.base_url()));
        vars.push(("FIVESIM_API_KEY".into(), setup.fivesim_key.into()));
    }
    for (k, v) in setup.extra {
        vars.push(((*k).into(), (*v).into()));
    }
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(&refs).await
}

async fn textverified() -> FakeTextVerified {
    FakeTextVerified::start(TV_USERNAME, TV_KEY).await
}

async fn fivesim() -> FakeFiveSim {
    FakeFiveSim::start(FIVESIM_KEY).await
}

fn id_of(v: &pb::Verification) -> String {
    v.name.trim_start_matches("verifications/").to_owned()
}

fn price_of(v: &pb::Verification) -> i64 {
    v.price.as_ref().expect("a price").minor_units
}

fn charge_of(v: &pb::Verification) -> pb::ChargeState {
    pb::ChargeState::try_from(v.charge_state).expect("a known charge state")
}

fn refund_reason_of(v: &pb::Verification) -> pb::RefundReason {
    let refund = v
        .refund
        .as_ref()
        .unwrap_or_else(|| panic!("no refund: {v:?}"));
    pb::RefundReason::try_from(refund.reason).expect("a known refund reason")
}

/// How many times the hold of a verification was settled (captured or released).
async fn settlements(app: &TestApp, v: &pb::Verification) -> i64 {
    scalar(
        &app.state.db,
        &format!(
            "SELECT COUNT(*) FROM journal_entries WHERE business_key = 'settle:{}'",
            id_of(v)
        ),
    )
    .await
}

/// How many verifications were served by `provider`.
async fn served_by(app: &TestApp, provider: &str) -> i64 {
    scalar(
        &app.state.db,
        &format!("SELECT COUNT(*) FROM verifications WHERE provider = '{provider}'"),
    )
    .await
}

/// Whether the verification is stored with this provider and provider reference (found by
/// its request id: ids are stored differently by SQLite and PostgreSQL).
async fn stored_with(app: &TestApp, v: &pb::Verification, provider: &str, reference: &str) -> bool {
    scalar(
        &app.state.db,
        &format!(
            "SELECT COUNT(*) FROM verifications WHERE request_id = '{}' \
             AND provider = '{provider}' AND provider_ref = '{reference}'",
            v.request_id
        ),
    )
    .await
        == 1
}

/// Waits (bounded) until the verification reaches `status`; returns it.
async fn wait_for_status(
    app: &TestApp,
    token: &str,
    name: &str,
    status: pb::VerificationStatus,
) -> pb::Verification {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = app.get_verification(token, name).await;
        if status_of(&seen) == status {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not become {status:?} within {WAIT:?}: {seen:?}"
        );
        tokio::time::sleep(STEP).await;
    }
}

/// Waits (bounded) until `check` holds; `what` names it in the failure.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(STEP).await;
    }
}

/// The caller's availability of one service in one country, from `CatalogService.GetPrice`.
async fn availability(
    app: &TestApp,
    token: &str,
    service: &str,
    country: &str,
) -> pb::Availability {
    let price = CatalogServiceClient::new(app.channel.clone())
        .get_price(bearer(
            pb::GetPriceRequest {
                name: format!("services/{service}/prices/{country}"),
            },
            token,
        ))
        .await
        .expect("get price")
        .into_inner()
        .price
        .expect("a price");
    pb::Availability::try_from(price.availability).expect("a known availability")
}

async fn create(
    app: &TestApp,
    token: &str,
    service: &str,
    country: &str,
    request_id: &str,
) -> Result<pb::Verification, tonic::Status> {
    app.verifications()
        .create_verification(bearer(
            pb::CreateVerificationRequest {
                service: service.into(),
                country: country.into(),
                max_price: None,
                request_id: request_id.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().verification.expect("a verification"))
}

async fn cancel(app: &TestApp, token: &str, name: &str) -> pb::Verification {
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest { name: name.into() },
            token,
        ))
        .await
        .expect("cancel")
        .into_inner()
        .verification
        .expect("a verification")
}

/// A `CreateVerification` that failed at the providers: `UNAVAILABLE` with `reason`, a
/// retry delay and the failed verification named in the metadata; that verification is
/// `FAILED` with `failure_reason`, its hold released (reason `FAILED`) and the wallet whole
/// again. Returns the verification.
async fn assert_failed_and_refunded(
    app: &TestApp,
    token: &str,
    status: &tonic::Status,
    reason: &str,
    failure_reason: &str,
    balance: i64,
) -> pb::Verification {
    assert_error(status, Code::Unavailable, reason);
    let retry = status
        .get_details_retry_info()
        .unwrap_or_else(|| panic!("no RetryInfo in {status:?}"));
    assert!(
        retry.retry_delay.is_some_and(|d| d > Duration::ZERO),
        "{retry:?}"
    );
    let info = status.get_details_error_info().expect("ErrorInfo");
    let name = info
        .metadata
        .get("verification")
        .unwrap_or_else(|| panic!("no verification in the metadata of {status:?}"))
        .clone();
    assert!(name.starts_with("verifications/"), "{name}");
    let failed = app.get_verification(token, &name).await;
    assert_eq!(
        status_of(&failed),
        pb::VerificationStatus::Failed,
        "{failed:?}"
    );
    assert_eq!(failed.failure_reason, failure_reason, "{failed:?}");
    assert!(failed.phone_number.is_empty(), "{failed:?}");
    assert_eq!(charge_of(&failed), pb::ChargeState::Refunded);
    assert_eq!(refund_reason_of(&failed), pb::RefundReason::Failed);
    assert_eq!(
        failed
            .refund
            .as_ref()
            .unwrap()
            .amount
            .as_ref()
            .unwrap()
            .minor_units,
        price_of(&failed)
    );
    assert!(failed.end_time.is_some());
    assert_eq!(app.balance(token).await, balance);
    assert_eq!(app.held(token).await, 0);
    assert_eq!(settlements(app, &failed).await, 1);
    failed
}

// ---------------------------------------------------------------------------------------
// TextVerified
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_textverified_number_is_polled_to_its_code_and_charged_once() {
    let tv = textverified().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;

    let v = app.buy(&token, "whatsapp", "US").await.unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active, "{v:?}");
    assert_eq!(tv.create_calls(), 1);
    let rented = tv.verifications();
    assert_eq!(rented.len(), 1);
    let rental = &rented[0];
    assert_eq!(rental.service_name, "whatsapp");
    assert_eq!(rental.capability, "sms");
    assert_eq!(
        rental.idempotency_key.as_deref(),
        Some(id_of(&v).as_str()),
        "created with our verification id as the key"
    );
    assert_eq!(v.phone_number, format!("+1{}", rental.number));
    assert_eq!(v.phone_number.len(), 12, "{}", v.phone_number);
    assert!(stored_with(&app, &v, "textverified", &rental.id).await);
    let price = price_of(&v);
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, price);

    tv.deliver_sms(
        &rental.id,
        "WhatsApp",
        "Your WhatsApp code: 482-913. Don't share it.",
    );
    let done = wait_for_status(&app, &token, &v.name, pb::VerificationStatus::Completed).await;
    assert!(tv.sms_page_calls() >= 1, "the job read the SMS listing");
    assert_eq!(done.code, "482913");
    assert_eq!(done.messages.len(), 1);
    assert_eq!(done.messages[0].sender, "WhatsApp");
    assert!(!done.messages[0].after_refund);
    assert_eq!(charge_of(&done), pb::ChargeState::Captured);
    assert!(done.refund.is_none());
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, 0);
    assert_eq!(settlements(&app, &v).await, 1);
    // Nothing was cancelled or reported at TextVerified for a number that brought its code.
    assert_eq!(tv.state(&rental.id).as_deref(), Some("verificationPending"));
    assert_eq!(tv.verifications().len(), 1, "one number rented in all");
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_signed_textverified_webhook_completes_the_verification_once() {
    let tv = textverified().await;
    // The jobs stay out of the way: only the webhook can deliver the SMS.
    let app = spawn(Setup {
        textverified: Some(&tv),
        webhook_secret: Some(TV_SECRET),
        extra: &[("NAMASKAH_JOB_INTERVAL", "1h")],
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "telegram", "US").await.unwrap();
    let price = price_of(&v);
    let rental = tv.verifications().pop().expect("a rental");
    let sms = tv.deliver_sms(&rental.id, "Telegram", "Telegram code 77120");
    let body = sms_received_webhook("idem_evt_1", &sms);
    let signature = sign_webhook(TV_SECRET, &body);

    // Refused deliveries change nothing: a wrong signature, none at all, two of them.
    let forged = sign_webhook("whsec_someone_else", &body);
    for headers in [
        vec![("x-webhook-signature", forged.as_bytes())],
        vec![],
        vec![
            ("x-webhook-signature", signature.as_bytes()),
            ("x-webhook-signature", forged.as_bytes()),
        ],
    ] {
        let err = app
            .deliver(pb::WebhookSource::Textverified, &body, &headers)
            .await
            .unwrap_err();
        assert_error(&err, Code::Unauthenticated, "INVALID_SIGNATURE");
    }
    // A well signed body naming a good reservation but altered after signing.
    let mut tampered = body.clone();
    let at = tampered
        .windows(5)
        .position(|w| w == b"77120")
        .expect("the code in the body");
    tampered[at] = b'9';
    let err = app
        .deliver(
            pb::WebhookSource::Textverified,
            &tampered,
            &[("x-webhook-signature", signature.as_bytes())],
        )
        .await
        .unwrap_err();
    assert_error(&err, Code::Unauthenticated, "INVALID_SIGNATURE");
    let untouched = app.get_verification(&token, &v.name).await;
    assert_eq!(status_of(&untouched), pb::VerificationStatus::Active);
    assert!(untouched.messages.is_empty());
    assert_eq!(untouched.last_sequence, v.last_sequence);
    assert_eq!(app.held(&token).await, price);
    assert_eq!(count_rows(&app, "verification_messages").await, 0);

    // An SMS for a reservation that is not ours: well signed, ignored.
    let stranger = FakeSms {
        reservation_id: "ver_not_one_of_ours".into(),
        ..sms.clone()
    };
    let stranger_body = sms_received_webhook("idem_evt_2", &stranger);
    let ignored = app
        .deliver(
            pb::WebhookSource::Textverified,
            &stranger_body,
            &[(
                "x-webhook-signature",
                sign_webhook(TV_SECRET, &stranger_body).as_bytes(),
            )],
        )
        .await
        .unwrap();
    assert!(!ignored.accepted);
    assert!(ignored.related_resource.is_empty());
    assert_eq!(count_rows(&app, "verification_messages").await, 0);

    // A signed body that is not a TextVerified event.
    let junk = br#"{"hello":"world"}"#;
    let err = app
        .deliver(
            pb::WebhookSource::Textverified,
            junk,
            &[(
                "x-webhook-signature",
                sign_webhook(TV_SECRET, junk).as_bytes(),
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // The real delivery.
    let accepted = app
        .deliver(
            pb::WebhookSource::Textverified,
            &body,
            &[("x-webhook-signature", signature.as_bytes())],
        )
        .await
        .unwrap();
    assert!(accepted.accepted);
    assert_eq!(accepted.related_resource, v.name);
    let done = app.get_verification(&token, &v.name).await;
    assert_eq!(
        status_of(&done),
        pb::VerificationStatus::Completed,
        "{done:?}"
    );
    assert_eq!(done.code, "77120");
    assert_eq!(done.messages.len(), 1);
    assert_eq!(charge_of(&done), pb::ChargeState::Captured);
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, 0);

    // TextVerified retries: the same delivery five more times, all at once.
    let signed: [(&str, &[u8]); 1] = [("x-webhook-signature", signature.as_bytes())];
    let retries = (0..5).map(|_| app.deliver(pb::WebhookSource::Textverified, &body, &signed));
    for answer in futures::future::join_all(retries).await {
        let answer = answer.expect("a retried delivery is answered OK");
        assert!(answer.accepted);
        assert_eq!(answer.related_resource, v.name);
    }
    let after = app.get_verification(&token, &v.name).await;
    assert_eq!(after.messages.len(), 1, "{after:?}");
    assert_eq!(after.last_sequence, done.last_sequence);
    assert_eq!(count_rows(&app, "verification_messages").await, 1);
    assert_eq!(settlements(&app, &v).await, 1);
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, 0);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn textverified_webhooks_are_refused_when_no_secret_is_configured() {
    let tv = textverified().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "google", "US").await.unwrap();
    let rental = tv.verifications().pop().expect("a rental");
    let sms = tv.deliver_sms(&rental.id, "Google", "G-123456 is your Google code");
    let body = sms_received_webhook("idem_1", &sms);
    let err = app
        .deliver(
            pb::WebhookSource::Textverified,
            &body,
            &[(
                "x-webhook-signature",
                sign_webhook(TV_SECRET, &body).as_bytes(),
            )],
        )
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "WEBHOOK_SOURCE_DISABLED");
    let seen = app.get_verification(&token, &v.name).await;
    assert!(seen.messages.is_empty(), "{seen:?}");
    // Cancel so that the test ends with no open hold racing the poller.
    let cancelled = cancel(&app, &token, &v.name).await;
    assert_eq!(status_of(&cancelled), pb::VerificationStatus::Cancelled);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn an_sms_both_polled_and_pushed_is_stored_once() {
    let tv = textverified().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        webhook_secret: Some(TV_SECRET),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "discord", "US").await.unwrap();
    let price = price_of(&v);
    let rental = tv.verifications().pop().expect("a rental");
    let sms = tv.deliver_sms(&rental.id, "Discord", "Your Discord code is 605143");

    // The poll gets there first.
    let polled = wait_for_status(&app, &token, &v.name, pb::VerificationStatus::Completed).await;
    assert_eq!(polled.messages.len(), 1);
    assert_eq!(polled.code, "605143");

    // Then TextVerified's webhook for the same message.
    let body = sms_received_webhook("idem_discord_1", &sms);
    let answer = app
        .deliver(
            pb::WebhookSource::Textverified,
            &body,
            &[(
                "x-webhook-signature",
                sign_webhook(TV_SECRET, &body).as_bytes(),
            )],
        )
        .await
        .unwrap();
    assert!(answer.accepted);
    assert_eq!(answer.related_resource, v.name);
    let after = app.get_verification(&token, &v.name).await;
    assert_eq!(
        after.messages.len(),
        1,
        "one message, however it came: {after:?}"
    );
    assert_eq!(after.last_sequence, polled.last_sequence);
    assert_eq!(count_rows(&app, "verification_messages").await, 1);
    assert_eq!(settlements(&app, &v).await, 1);
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, 0);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_cancel_refunds_at_once_and_gives_the_number_back_to_textverified() {
    let tv = textverified().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "uber", "US").await.unwrap();
    let price = price_of(&v);
    assert_eq!(app.balance(&token).await, 1_000 - price);
    let rental = tv.verifications().pop().expect("a rental");
    assert_eq!(tv.state(&rental.id).as_deref(), Some("verificationPending"));

    let cancelled = cancel(&app, &token, &v.name).await;
    assert_eq!(status_of(&cancelled), pb::VerificationStatus::Cancelled);
    assert_eq!(refund_reason_of(&cancelled), pb::RefundReason::Cancelled);
    assert_eq!(charge_of(&cancelled), pb::ChargeState::Refunded);
    // The money comes back at once, before TextVerified hears of it.
    assert_eq!(app.balance(&token).await, 1_000);
    assert_eq!(app.held(&token).await, 0);

    wait_until(
        "the cleanup job cancels the verification at TextVerified",
        || tv.state(&rental.id).as_deref() == Some("verificationCanceled"),
    )
    .await;
    assert_eq!(tv.verifications().len(), 1);
    // The cleanup is done: nothing is left owed to the provider.
    let deadline = Instant::now() + WAIT;
    while scalar(
        &app.state.db,
        "SELECT COUNT(*) FROM verifications WHERE cleanup IS NOT NULL",
    )
    .await
        != 0
    {
        assert!(
            Instant::now() < deadline,
            "the cleanup was never marked done"
        );
        tokio::time::sleep(STEP).await;
    }
    assert_eq!(settlements(&app, &v).await, 1);
    assert_eq!(app.balance(&token).await, 1_000);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn an_unanswered_textverified_number_expires_is_refunded_and_given_back() {
    let tv = textverified().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        extra: &[("NAMASKAH_VERIFICATION_TTL", "1s")],
        ..Setup::default()
    })
    .await;
    let token = app.funded(500).await;
    let v = app.buy(&token, "google", "US").await.unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active);
    let rental = tv.verifications().pop().expect("a rental");

    let expired = wait_for_status(&app, &token, &v.name, pb::VerificationStatus::Expired).await;
    assert_eq!(refund_reason_of(&expired), pb::RefundReason::Expired);
    assert_eq!(charge_of(&expired), pb::ChargeState::Refunded);
    assert_eq!(app.balance(&token).await, 500);
    assert_eq!(app.held(&token).await, 0);

    wait_until(
        "the cleanup job cancels (or reports) the expired number at TextVerified",
        || {
            matches!(
                tv.state(&rental.id).as_deref(),
                Some("verificationCanceled" | "verificationReported")
            )
        },
    )
    .await;
    assert_eq!(settlements(&app, &v).await, 1);
    assert_books_balance(&app.state.db).await;
}

// ---------------------------------------------------------------------------------------
// 5sim
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_fivesim_number_is_polled_to_its_code_and_the_order_finished() {
    let fs = fivesim().await;
    let app = spawn(Setup {
        fivesim: Some(&fs),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "whatsapp", "GB").await.unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active, "{v:?}");
    assert_eq!(fs.buys(), 1);
    let orders = fs.orders();
    assert_eq!(orders.len(), 1);
    let order = &orders[0];
    assert_eq!(order.country, "england");
    assert_eq!(order.product, "whatsapp");
    assert_eq!(v.phone_number, order.phone);
    assert_eq!(v.phone_number.matches('+').count(), 1, "{}", v.phone_number);
    assert!(v.phone_number.starts_with("+44"), "{}", v.phone_number);
    assert!(stored_with(&app, &v, "fivesim", &order.id.to_string()).await);
    let price = price_of(&v);
    assert_eq!(app.balance(&token).await, 1_000 - price);

    // 5sim dates SMS in whole seconds: deliver in a later second than the purchase, so
    // that this test does not depend on the same-second case (tested on its own).
    let created = v.create_time.expect("a create time").seconds;
    while chrono::Utc::now().timestamp() <= created {
        tokio::time::sleep(STEP).await;
    }
    fs.deliver_sms(order.id, "WhatsApp", "Your WhatsApp code 318-204", "318204");
    let done = wait_for_status(&app, &token, &v.name, pb::VerificationStatus::Completed).await;
    assert!(fs.checks() >= 1);
    assert_eq!(done.code, "318204");
    assert_eq!(done.messages.len(), 1);
    assert_eq!(done.messages[0].sender, "WhatsApp");
    assert_eq!(charge_of(&done), pb::ChargeState::Captured);
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, 0);

    wait_until("the cleanup job finishes the 5sim order", || {
        fs.order(order.id).is_some_and(|o| o.status == "FINISHED")
    })
    .await;
    assert!(fs.finishes() >= 1);
    assert_eq!(fs.cancels(), 0);
    assert_eq!(fs.bans(), 0);
    assert_eq!(settlements(&app, &v).await, 1);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_fivesim_sms_in_the_same_second_as_the_purchase_is_not_lost() {
    let fs = fivesim().await;
    let app = spawn(Setup {
        fivesim: Some(&fs),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    // Start early in a second, so that buying and the SMS share it.
    loop {
        let now = chrono::Utc::now();
        if now.timestamp_subsec_millis() < 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v = app.buy(&token, "telegram", "GB").await.unwrap();
    let order = fs.orders().pop().expect("an order");
    fs.deliver_sms(order.id, "Telegram", "Telegram code 55123", "55123");
    let sms_date = fs.order(order.id).unwrap().sms[0].date;
    let created = v.create_time.unwrap();
    assert_eq!(
        sms_date.timestamp(),
        created.seconds,
        "the test meant the SMS to arrive in the purchase's second"
    );
    let done = wait_for_status(&app, &token, &v.name, pb::VerificationStatus::Completed).await;
    assert_eq!(done.code, "55123");
    assert_eq!(done.messages.len(), 1);
    assert_eq!(settlements(&app, &v).await, 1);
    assert_books_balance(&app.state.db).await;
}

// ---------------------------------------------------------------------------------------
// Failover between providers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn textverified_without_stock_fails_over_to_fivesim() {
    let tv = textverified().await;
    let fs = fivesim().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        fivesim: Some(&fs),
        ..Setup::default()
    })
    .await;
    let token = app.funded(2_000).await;
    tv.set_stock("whatsapp", 0);

    let v = app.buy(&token, "whatsapp", "US").await.unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active, "{v:?}");
    assert_eq!(tv.create_calls(), 1, "TextVerified was asked first");
    assert!(tv.verifications().is_empty());
    assert_eq!(fs.buys(), 1);
    let order = fs.orders().pop().expect("a 5sim order");
    assert_eq!(order.country, "usa");
    assert_eq!(order.product, "whatsapp");
    assert_eq!(v.phone_number, order.phone);
    assert!(v.phone_number.starts_with("+1"), "{}", v.phone_number);
    assert!(stored_with(&app, &v, "fivesim", &order.id.to_string()).await);
    // The catalog still sells it: 5sim has numbers.
    assert_eq!(
        availability(&app, &token, "whatsapp", "US").await,
        pb::Availability::Available
    );

    // Another service TextVerified has in stock is still bought there.
    let other = app.buy(&token, "telegram", "US").await.unwrap();
    let rental = tv.verifications().pop().expect("a TextVerified rental");
    assert_eq!(other.phone_number, format!("+1{}", rental.number));
    assert!(stored_with(&app, &other, "textverified", &rental.id).await);
    assert_eq!(fs.buys(), 1);
    assert_eq!(served_by(&app, "fivesim").await, 1);
    assert_eq!(served_by(&app, "textverified").await, 1);

    // Both end cleanly, each at its own provider.
    cancel(&app, &token, &v.name).await;
    cancel(&app, &token, &other.name).await;
    assert_eq!(app.balance(&token).await, 2_000);
    wait_until("both numbers are given back", || {
        fs.order(order.id).is_some_and(|o| o.status == "CANCELED")
            && tv.state(&rental.id).as_deref() == Some("verificationCanceled")
    })
    .await;
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn textverified_errors_fail_over_to_fivesim_and_trip_its_breaker() {
    let tv = textverified().await;
    let fs = fivesim().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        fivesim: Some(&fs),
        ..Setup::default()
    })
    .await;
    let token = app.funded(10_000).await;

    tv.fail_next(1, TvFault::Status(500));
    let v = app.buy(&token, "whatsapp", "US").await.unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active, "{v:?}");
    assert_eq!(tv.create_calls(), 1);
    assert!(tv.verifications().is_empty());
    assert_eq!(fs.buys(), 1);
    assert_eq!(v.phone_number, fs.orders()[0].phone);
    assert_eq!(served_by(&app, "fivesim").await, 1);

    // TextVerified is back: it is preferred again.
    let back = app.buy(&token, "whatsapp", "US").await.unwrap();
    assert_eq!(tv.verifications().len(), 1);
    assert_eq!(
        back.phone_number,
        format!("+1{}", tv.verifications()[0].number)
    );
    assert_eq!(fs.buys(), 1);

    // Five failures in a row open its breaker; then it is not asked at all.
    let router = app.state.verifications.router();
    tv.fail_next(5, TvFault::Status(503));
    for round in 0..5 {
        let v = app.buy(&token, "whatsapp", "US").await.unwrap();
        assert_eq!(
            status_of(&v),
            pb::VerificationStatus::Active,
            "round {round}"
        );
    }
    assert_eq!(tv.create_calls(), 7);
    assert_eq!(fs.buys(), 6);
    assert!(router.is_open("textverified"));
    let skipped = app.buy(&token, "whatsapp", "US").await.unwrap();
    assert_eq!(tv.create_calls(), 7, "an open breaker keeps calls away");
    assert_eq!(fs.buys(), 7);
    assert_eq!(skipped.phone_number, fs.orders()[6].phone);
    assert_eq!(served_by(&app, "fivesim").await, 7);
    assert_eq!(served_by(&app, "textverified").await, 1);
    assert_books_balance(&app.state.db).await;
}

// ---------------------------------------------------------------------------------------
// No provider can serve
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_numbers_anywhere_fails_refunds_and_replays_the_same_error() {
    let fs = fivesim().await;
    let app = spawn(Setup {
        fivesim: Some(&fs),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    fs.set_stock("england", "whatsapp", 0);

    let err = create(&app, &token, "whatsapp", "GB", "first-try")
        .await
        .unwrap_err();
    let failed =
        assert_failed_and_refunded(&app, &token, &err, "NO_NUMBERS", "NO_NUMBERS", 1_000).await;
    assert_eq!(failed.request_id, "first-try");
    assert_eq!(fs.buys(), 1);
    assert!(fs.orders().is_empty());
    assert_eq!(served_by(&app, "fivesim").await, 0);

    // The same request again: the same answer, and nobody is asked again.
    let again = create(&app, &token, "whatsapp", "GB", "first-try")
        .await
        .unwrap_err();
    assert_error(&again, Code::Unavailable, "NO_NUMBERS");
    assert!(again.get_details_retry_info().is_some());
    assert_eq!(
        again.get_details_error_info().unwrap().metadata["verification"],
        failed.name
    );
    assert_eq!(fs.buys(), 1);
    assert_eq!(count_rows(&app, "verifications").await, 1);
    assert_eq!(app.balance(&token).await, 1_000);
    assert_eq!(settlements(&app, &failed).await, 1);

    // 5sim's other way of saying it (HTTP 200) is the same answer.
    fs.set_no_phones_status(200);
    let err = create(&app, &token, "whatsapp", "GB", "second-try")
        .await
        .unwrap_err();
    assert_failed_and_refunded(&app, &token, &err, "NO_NUMBERS", "NO_NUMBERS", 1_000).await;
    assert_eq!(fs.buys(), 2);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_hanging_provider_is_given_up_on_in_bounded_time_and_refunded() {
    let fs = fivesim().await;
    let app = spawn(Setup {
        fivesim: Some(&fs),
        extra: &[("NAMASKAH_PROVIDER_TIMEOUT", "300ms")],
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    fs.fail_next(1, FiveSimFault::Delay(Duration::from_secs(8)));

    let started = Instant::now();
    let err = tokio::time::timeout(WAIT, app.buy(&token, "whatsapp", "GB"))
        .await
        .expect("CreateVerification answers in bounded time")
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_failed_and_refunded(
        &app,
        &token,
        &err,
        "PROVIDER_ERROR",
        "PROVIDER_TIMEOUT",
        1_000,
    )
    .await;
    // 5sim has no idempotency key: a buy that timed out is not sent again.
    assert_eq!(fs.buys(), 1);
    assert_eq!(served_by(&app, "fivesim").await, 0);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn garbage_from_the_provider_is_a_provider_error_and_refunded() {
    let fs = fivesim().await;
    let app = spawn(Setup {
        fivesim: Some(&fs),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    fs.fail_next(1, FiveSimFault::Garbage);
    let err = app.buy(&token, "whatsapp", "GB").await.unwrap_err();
    assert_failed_and_refunded(
        &app,
        &token,
        &err,
        "PROVIDER_ERROR",
        "PROVIDER_ERROR",
        1_000,
    )
    .await;
    assert_eq!(fs.buys(), 1);
    assert!(fs.orders().is_empty());

    // The next call is answered properly and is served.
    let v = app.buy(&token, "whatsapp", "GB").await.unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active);
    assert_eq!(v.phone_number, fs.orders()[0].phone);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_bad_provider_key_is_a_provider_error_and_refunded() {
    let fs = fivesim().await;
    let app = spawn(Setup {
        fivesim: Some(&fs),
        fivesim_key: "not_the_key",
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    let err = app.buy(&token, "whatsapp", "GB").await.unwrap_err();
    assert_failed_and_refunded(
        &app,
        &token,
        &err,
        "PROVIDER_ERROR",
        "PROVIDER_ERROR",
        1_000,
    )
    .await;
    assert_eq!(fs.buys(), 1, "5sim was asked (and said 401)");
    assert!(fs.orders().is_empty());
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn bad_textverified_credentials_are_a_provider_error_and_refunded() {
    let tv = FakeTextVerified::start(TV_USERNAME, "another_key").await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    let err = app.buy(&token, "whatsapp", "US").await.unwrap_err();
    assert_failed_and_refunded(
        &app,
        &token,
        &err,
        "PROVIDER_ERROR",
        "PROVIDER_ERROR",
        1_000,
    )
    .await;
    assert!(tv.auth_calls() >= 1);
    assert_eq!(tv.tokens_issued(), 0);
    assert_eq!(tv.create_calls(), 0);
    assert!(tv.verifications().is_empty());
    assert_books_balance(&app.state.db).await;
}

// ---------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_catalog_shows_out_of_stock_after_a_provider_said_no_numbers() {
    let fs = fivesim().await;
    let app = spawn(Setup {
        fivesim: Some(&fs),
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    assert_eq!(
        availability(&app, &token, "whatsapp", "GB").await,
        pb::Availability::Available
    );
    fs.set_stock("england", "whatsapp", 0);
    let err = app.buy(&token, "whatsapp", "GB").await.unwrap_err();
    assert_error(&err, Code::Unavailable, "NO_NUMBERS");

    assert_eq!(
        availability(&app, &token, "whatsapp", "GB").await,
        pb::Availability::Unavailable
    );
    // Only that service in that country.
    assert_eq!(
        availability(&app, &token, "telegram", "GB").await,
        pb::Availability::Available
    );
    assert_eq!(
        availability(&app, &token, "whatsapp", "DE").await,
        pb::Availability::Available
    );
    // A service no configured provider serves (5sim does not sell bumble) is unavailable,
    // and buying it fails the same way without asking anyone.
    assert_eq!(
        availability(&app, &token, "bumble", "GB").await,
        pb::Availability::Unavailable
    );
    let buys = fs.buys();
    let err = app.buy(&token, "bumble", "GB").await.unwrap_err();
    assert_failed_and_refunded(&app, &token, &err, "NO_NUMBERS", "NO_NUMBERS", 1_000).await;
    assert_eq!(fs.buys(), buys);
    // A successful buy of an in-stock service keeps it in stock.
    let v = app.buy(&token, "telegram", "GB").await.unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active);
    assert_eq!(
        availability(&app, &token, "telegram", "GB").await,
        pb::Availability::Available
    );
    assert_eq!(app.balance(&token).await, 1_000 - price_of(&v));
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_textverified_rental_from_a_timed_out_call_is_found_and_given_back() {
    let tv = textverified().await;
    let app = spawn(Setup {
        textverified: Some(&tv),
        extra: &[("NAMASKAH_PROVIDER_TIMEOUT", "300ms")],
        ..Setup::default()
    })
    .await;
    let token = app.funded(1_000).await;
    // TextVerified creates the verification but answers too late, every time the client
    // tries: the outcome is unknown to us.
    tv.fail_next(3, TvFault::Delay(Duration::from_millis(800)));
    let err = app.buy(&token, "whatsapp", "US").await.unwrap_err();
    assert_error(&err, Code::Unavailable, "PROVIDER_ERROR");
    let name = err.get_details_error_info().unwrap().metadata["verification"].clone();
    let failed = app.get_verification(&token, &name).await;
    assert_eq!(failed.failure_reason, "PROVIDER_TIMEOUT");
    assert_eq!(app.balance(&token).await, 1_000, "refunded");

    // The cleanup job asks again with the same idempotency key, gets the rental the
    // timed-out call made, and cancels it, so the platform is refunded too.
    wait_until("the orphaned rental is cancelled at TextVerified", || {
        let all = tv.verifications();
        all.len() == 1 && all[0].state == "verificationCanceled"
    })
    .await;
    assert_eq!(tv.verifications().len(), 1, "no second number was bought");
    assert_books_balance(&app.state.db).await;
}
