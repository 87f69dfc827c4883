//! Top-ups through Paystack, against a local fake Paystack that speaks its documented
//! protocol: initialize, the signed `charge.success` webhook, verify, and their faults. The
//! wallet is credited exactly once per reference whatever arrives, in whatever order.
mod common;

use std::time::Duration;

use common::paystack::{FakePaystack, Fault};
use common::*;
use namaskah_proto::v1 as pb;
use tonic::Code;

const SECRET: &str = "sk_test_namaskah_fake_paystack_key";

async fn spawn_with_paystack() -> (TestApp, FakePaystack) {
    let paystack = FakePaystack::start(SECRET).await;
    let base_url = paystack.base_url();
    let app = spawn_app_with(&[
        ("PAYSTACK_SECRET_KEY", SECRET),
        ("PAYSTACK_BASE_URL", &base_url),
        ("NAMASKAH_GATEWAY_TIMEOUT", "500ms"),
    ])
    .await;
    (app, paystack)
}

async fn deliver_paystack(
    app: &TestApp,
    body: &[u8],
    signature: &str,
) -> Result<pb::ReceiveWebhookResponse, tonic::Status> {
    app.deliver(
        pb::WebhookSource::Paystack,
        body,
        &[
            ("content-type", b"application/json"),
            ("x-paystack-signature", signature.as_bytes()),
        ],
    )
    .await
}

async fn verify(
    app: &TestApp,
    token: &str,
    reference: &str,
) -> Result<pb::VerifyTopUpResponse, tonic::Status> {
    app.wallet()
        .verify_top_up(bearer(
            pb::VerifyTopUpRequest {
                reference: reference.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn status_of(app: &TestApp, token: &str, reference: &str) -> pb::TopUp {
    // A final top-up is answered from the database without asking the gateway; a pending
    // one asks. Either way this is what the customer would see.
    verify(app, token, reference)
        .await
        .expect("verify")
        .top_up
        .unwrap()
}

/// A top-up's status as stored, read from the database (without asking the gateway).
async fn stored_status(app: &TestApp, reference: &str) -> String {
    use namaskah_server::payments::entities::payment_logs;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    payment_logs::Entity::find()
        .filter(payment_logs::Column::Reference.eq(reference))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the top-up")
        .status
}

/// How many ledger entries a reference's top-up wrote.
async fn top_up_entries(app: &TestApp, reference: &str) -> i64 {
    scalar(
        &app.state.db,
        &format!("SELECT COUNT(*) FROM journal_entries WHERE business_key = 'topup:{reference}'"),
    )
    .await
}

#[tokio::test]
async fn initialize_then_webhook_credits_once() {
    let (app, paystack) = spawn_with_paystack().await;
    let (email, token) = app.verified().await;
    let top_up = app.top_up(&token, 2_500).await;
    assert_eq!(top_up.gateway(), pb::PaymentGateway::Paystack);
    assert_eq!(top_up.status(), pb::TopUpStatus::Pending);

    // What Paystack was asked: kobo at the configured rate, the account's email, our
    // reference and the default callback page.
    let asked = paystack
        .initialized(&top_up.reference)
        .expect("initialized at Paystack");
    assert_eq!(asked.email, email);
    assert_eq!(asked.amount, 2_500 * 1_500);
    assert_eq!(asked.currency, "NGN");
    assert_eq!(
        asked.callback_url.as_deref(),
        Some("http://localhost:8080/wallet/top-ups")
    );
    assert!(
        top_up
            .checkout_url
            .starts_with("https://checkout.paystack.com/")
    );

    // The customer pays; Paystack's webhook arrives.
    paystack.pay(&top_up.reference);
    let (body, signature) = paystack.charge_success(&top_up.reference);
    let outcome = deliver_paystack(&app, &body, &signature)
        .await
        .expect("webhook");
    assert!(outcome.accepted);
    assert_eq!(outcome.related_resource, top_up.name);
    assert_eq!(app.balance(&token).await, 2_500);
    // The webhook was checked with Paystack before crediting.
    assert_eq!(paystack.verify_calls(&top_up.reference), 1);

    // Paystack retries; the customer comes back and verifies: nothing more is credited,
    // and a completed top-up is not asked about again.
    for _ in 0..3 {
        let again = deliver_paystack(&app, &body, &signature).await.unwrap();
        assert!(again.accepted);
    }
    let verified = verify(&app, &token, &top_up.reference).await.unwrap();
    assert_eq!(
        verified.top_up.unwrap().status(),
        pb::TopUpStatus::Completed
    );
    assert_eq!(verified.balance, Some(usd(2_500)));
    assert_eq!(paystack.verify_calls(&top_up.reference), 1);
    assert_eq!(top_up_entries(&app, &top_up.reference).await, 1);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn the_same_webhook_a_hundred_times_at_once_credits_once() {
    let (app, paystack) = spawn_with_paystack().await;
    let (_, token) = app.verified().await;
    let top_up = app.top_up(&token, 1_000).await;
    paystack.pay(&top_up.reference);
    let (body, signature) = paystack.charge_success(&top_up.reference);

    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let webhooks = app.webhooks();
        let request = pb::ReceiveWebhookRequest {
            source: pb::WebhookSource::Paystack as i32,
            headers: vec![pb::WebhookHeader {
                name: "x-paystack-signature".into(),
                value: signature.clone().into_bytes(),
            }],
            body: body.clone(),
            ..Default::default()
        };
        deliveries.spawn(async move {
            let mut webhooks = webhooks;
            webhooks.receive_webhook(request).await
        });
    }
    let mut accepted = 0;
    while let Some(result) = deliveries.join_next().await {
        // Every copy is answered OK (Paystack stops retrying), acted on or already done.
        accepted += usize::from(result.unwrap().expect("webhook").into_inner().accepted);
    }
    assert_eq!(accepted, 100);
    assert_eq!(app.balance(&token).await, 1_000);
    assert_eq!(top_up_entries(&app, &top_up.reference).await, 1);
    let completions = scalar(
        &app.state.db,
        "SELECT COUNT(*) FROM payment_events WHERE to_status = 'completed'",
    )
    .await;
    assert_eq!(completions, 1);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn webhooks_and_verify_calls_racing_credit_once() {
    let (app, paystack) = spawn_with_paystack().await;
    let (_, token) = app.verified().await;
    let mut expected = 0;
    for round in 0..5 {
        let amount = 100 * (round + 1);
        let top_up = app.top_up(&token, amount).await;
        paystack.pay(&top_up.reference);
        let (body, signature) = paystack.charge_success(&top_up.reference);
        let mut racers = tokio::task::JoinSet::new();
        for i in 0..16 {
            let (mut webhooks, mut wallet) = (app.webhooks(), app.wallet());
            let (body, signature) = (body.clone(), signature.clone());
            let (reference, token) = (top_up.reference.clone(), token.clone());
            racers.spawn(async move {
                if i % 2 == 0 {
                    webhooks
                        .receive_webhook(pb::ReceiveWebhookRequest {
                            source: pb::WebhookSource::Paystack as i32,
                            headers: vec![pb::WebhookHeader {
                                name: "x-paystack-signature".into(),
                                value: signature.into_bytes(),
                            }],
                            body,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ())
                } else {
                    wallet
                        .verify_top_up(bearer(pb::VerifyTopUpRequest { reference }, &token))
                        .await
                        .map(|_| ())
                }
            });
        }
        while let Some(result) = racers.join_next().await {
            result.unwrap().expect("every racer is answered");
        }
        expected += amount;
        assert_eq!(stored_status(&app, &top_up.reference).await, "completed");
        assert_eq!(app.balance(&token).await, expected, "round {round}");
        assert_eq!(top_up_entries(&app, &top_up.reference).await, 1);
    }
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn forged_missing_and_tampered_signatures_change_nothing() {
    let (app, paystack) = spawn_with_paystack().await;
    let (_, token) = app.verified().await;
    let top_up = app.top_up(&token, 1_000).await;
    paystack.pay(&top_up.reference);
    let (body, signature) = paystack.charge_success(&top_up.reference);

    let forged_key = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(b"sk_test_someone_else").unwrap();
        mac.update(&body);
        hex::encode(mac.finalize().into_bytes())
    };
    let mut tampered = body.clone();
    let at = tampered.len() - 2;
    tampered[at] = b' ';
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, Vec<u8>)>);
    let cases: Vec<Case> = vec![
        ("missing", body.clone(), vec![]),
        (
            "empty",
            body.clone(),
            vec![("x-paystack-signature", vec![])],
        ),
        (
            "not hex",
            body.clone(),
            vec![("x-paystack-signature", b"zz".to_vec())],
        ),
        (
            "other key",
            body.clone(),
            vec![("x-paystack-signature", forged_key.into_bytes())],
        ),
        (
            "truncated",
            body.clone(),
            vec![("x-paystack-signature", signature.as_bytes()[..64].to_vec())],
        ),
        (
            "tampered body",
            tampered,
            vec![("x-paystack-signature", signature.clone().into_bytes())],
        ),
        (
            "sent twice",
            body.clone(),
            vec![
                ("x-paystack-signature", signature.clone().into_bytes()),
                ("x-paystack-signature", signature.clone().into_bytes()),
            ],
        ),
        (
            "another header",
            body.clone(),
            vec![("x-signature", signature.clone().into_bytes())],
        ),
    ];
    for (case, body, headers) in cases {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let status = app
            .deliver(pb::WebhookSource::Paystack, &body, &headers)
            .await
            .expect_err(case);
        assert_error(&status, Code::Unauthenticated, "INVALID_SIGNATURE");
    }
    // With Paystack configured the sandbox gateway is off, even in sandbox mode.
    let status = app
        .deliver(
            pb::WebhookSource::Sandbox,
            &body,
            &[("x-paystack-signature", signature.as_bytes())],
        )
        .await
        .expect_err("sandbox gateway off");
    assert_error(&status, Code::NotFound, "WEBHOOK_SOURCE_DISABLED");
    assert_eq!(app.balance(&token).await, 0);
    assert_eq!(paystack.verify_calls(&top_up.reference), 0);
    assert_eq!(
        scalar(
            &app.state.db,
            "SELECT COUNT(*) FROM payment_logs WHERE status <> 'pending'"
        )
        .await,
        0
    );

    // Well signed but of no use: logged and answered, nothing credited.
    let signed = |json: serde_json::Value| {
        let body = serde_json::to_vec(&json).unwrap();
        let signature = paystack.sign(&body);
        (body, signature)
    };
    let (unknown, sig) = signed(serde_json::json!({
        "event": "charge.success",
        "data": {"reference": "nms-unknown", "status": "success", "amount": 1, "currency": "NGN"}
    }));
    let outcome = deliver_paystack(&app, &unknown, &sig).await.unwrap();
    assert!(!outcome.accepted && outcome.related_resource.is_empty());
    let (other_event, sig) = signed(serde_json::json!({
        "event": "transfer.success",
        "data": {"reference": top_up.reference}
    }));
    assert!(
        !deliver_paystack(&app, &other_event, &sig)
            .await
            .unwrap()
            .accepted
    );
    // Events of other shapes (no reference, nulls, no data) are answered, not refused, so
    // Paystack stops sending them.
    for json in [
        serde_json::json!({"event": "subscription.create", "data": {"subscription_code": "SUB_x"}}),
        serde_json::json!({"event": "charge.success", "data": {"reference": null, "currency": null}}),
        serde_json::json!({"event": "charge.success", "data": {"reference": 42}}),
        serde_json::json!({"event": "charge.dispute.create"}),
    ] {
        let (odd, sig) = signed(json.clone());
        let outcome = deliver_paystack(&app, &odd, &sig).await.expect("answered");
        assert!(!outcome.accepted, "{json}");
    }
    let garbage = b"{not json".to_vec();
    let status = deliver_paystack(&app, &garbage, &paystack.sign(&garbage))
        .await
        .expect_err("malformed");
    assert_error(&status, Code::InvalidArgument, "MALFORMED_WEBHOOK");
    let status = app
        .deliver(pb::WebhookSource::Textverified, &body, &[])
        .await
        .expect_err("TextVerified not configured");
    assert_error(&status, Code::NotFound, "WEBHOOK_SOURCE_DISABLED");
    let status = app
        .deliver(pb::WebhookSource::Unspecified, &body, &[])
        .await
        .expect_err("no source");
    assert_error(&status, Code::InvalidArgument, "UNKNOWN_WEBHOOK_SOURCE");
    assert_eq!(app.balance(&token).await, 0);

    // The genuine one, replayed after all that, is credited once.
    assert!(
        deliver_paystack(&app, &body, &signature)
            .await
            .unwrap()
            .accepted
    );
    assert!(
        deliver_paystack(&app, &body, &signature)
            .await
            .unwrap()
            .accepted
    );
    assert_eq!(app.balance(&token).await, 1_000);
}

#[tokio::test]
async fn another_amount_or_currency_is_refused_and_logged() {
    let (app, paystack) = spawn_with_paystack().await;
    let (_, token) = app.verified().await;

    // Paystack reports less than was asked.
    let short = app.top_up(&token, 1_000).await;
    paystack.pay_with(&short.reference, 1_000, "NGN");
    let (body, signature) = paystack.charge_success(&short.reference);
    let outcome = deliver_paystack(&app, &body, &signature).await.unwrap();
    assert!(!outcome.accepted);
    let refused = status_of(&app, &token, &short.reference).await;
    assert_eq!(refused.status(), pb::TopUpStatus::Failed);
    assert_eq!(refused.failure_reason, "AMOUNT_MISMATCH");

    // Paystack reports another currency (seen first by VerifyTopUp).
    let foreign = app.top_up(&token, 1_000).await;
    paystack.pay_with(&foreign.reference, 1_500_000, "GHS");
    let refused = verify(&app, &token, &foreign.reference)
        .await
        .unwrap()
        .top_up
        .unwrap();
    assert_eq!(refused.failure_reason, "CURRENCY_MISMATCH");

    // A webhook claiming the right amount does not outvote what verify says.
    let claimed = app.top_up(&token, 1_000).await;
    paystack.pay_with(&claimed.reference, 15, "NGN");
    let body = serde_json::to_vec(&serde_json::json!({
        "event": "charge.success",
        "data": {"reference": claimed.reference, "status": "success",
                 "amount": 1_500_000, "currency": "NGN"}
    }))
    .unwrap();
    let outcome = deliver_paystack(&app, &body, &paystack.sign(&body))
        .await
        .unwrap();
    assert!(!outcome.accepted);
    assert_eq!(
        status_of(&app, &token, &claimed.reference)
            .await
            .failure_reason,
        "AMOUNT_MISMATCH"
    );

    // A refused top-up never turns into a credit, whatever arrives later.
    paystack.pay(&short.reference);
    let (body, signature) = paystack.charge_success(&short.reference);
    assert!(
        !deliver_paystack(&app, &body, &signature)
            .await
            .unwrap()
            .accepted
    );
    assert_eq!(app.balance(&token).await, 0);
    for (top_up, reason) in [
        (&short, "AMOUNT_MISMATCH"),
        (&foreign, "CURRENCY_MISMATCH"),
        (&claimed, "AMOUNT_MISMATCH"),
    ] {
        let events = app.state.payments.history(&top_up.reference).await.unwrap();
        let moves: Vec<(Option<String>, String)> = events
            .iter()
            .map(|e| (e.from_status.clone(), e.to_status.clone()))
            .collect();
        assert_eq!(
            moves,
            [
                (None, "pending".to_owned()),
                (Some("pending".to_owned()), "failed".to_owned())
            ]
        );
        assert!(events[1].detail.starts_with(reason), "{:?}", events[1]);
    }

    // A declined payment (charge.failed) ends the top-up without money.
    let declined = app.top_up(&token, 1_000).await;
    paystack.decline(&declined.reference);
    let (body, signature) = paystack.charge_failed(&declined.reference);
    assert!(
        deliver_paystack(&app, &body, &signature)
            .await
            .unwrap()
            .accepted
    );
    let failed = status_of(&app, &token, &declined.reference).await;
    assert_eq!(failed.failure_reason, "PAYMENT_FAILED");
    assert_eq!(app.balance(&token).await, 0);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn gateway_faults_leave_top_ups_pending_and_nothing_twice() {
    let (app, paystack) = spawn_with_paystack().await;
    let (_, token) = app.verified().await;
    let request = |request_id: &str| pb::CreateTopUpRequest {
        amount: Some(usd(1_000)),
        request_id: request_id.into(),
        callback_url: String::new(),
    };

    // Starting a top-up while Paystack fails: nothing is started, the caller may retry.
    for fault in [
        Fault::Status(503),
        Fault::Delay(Duration::from_secs(2)),
        Fault::Garbage,
    ] {
        paystack.fail_next(1, fault);
        let status = app
            .wallet()
            .create_top_up(bearer(request("retry-me"), &token))
            .await
            .expect_err("gateway down");
        assert_error(&status, Code::Unavailable, "PAYMENT_GATEWAY_UNAVAILABLE");
        assert!(status.metadata().get("retry-after").is_some(), "{status:?}");
    }
    assert_eq!(count_rows(&app, "payment_logs").await, 0);
    // The retry with the same request id then works.
    let top_up = app
        .wallet()
        .create_top_up(bearer(request("retry-me"), &token))
        .await
        .expect("gateway back")
        .into_inner()
        .top_up
        .unwrap();
    paystack.pay(&top_up.reference);

    // Verifying while Paystack fails: the top-up stays pending, nothing is credited.
    for fault in [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Delay(Duration::from_secs(2)),
        Fault::Garbage,
    ] {
        paystack.fail_next(1, fault);
        let status = verify(&app, &token, &top_up.reference)
            .await
            .expect_err("gateway down");
        assert_error(&status, Code::Unavailable, "PAYMENT_GATEWAY_UNAVAILABLE");
    }
    // A webhook while the verify call fails is answered 5xx-like, so Paystack retries.
    let (body, signature) = paystack.charge_success(&top_up.reference);
    paystack.fail_next(1, Fault::Status(503));
    let status = deliver_paystack(&app, &body, &signature)
        .await
        .expect_err("cannot confirm now");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(app.balance(&token).await, 0);
    assert_eq!(
        scalar(
            &app.state.db,
            "SELECT COUNT(*) FROM payment_logs WHERE status = 'pending'"
        )
        .await,
        1
    );

    // Later, both paths work, once.
    let verified = verify(&app, &token, &top_up.reference).await.unwrap();
    assert_eq!(
        verified.top_up.unwrap().status(),
        pb::TopUpStatus::Completed
    );
    assert!(
        deliver_paystack(&app, &body, &signature)
            .await
            .unwrap()
            .accepted
    );
    assert_eq!(app.balance(&token).await, 1_000);
    assert_eq!(top_up_entries(&app, &top_up.reference).await, 1);
    assert_books_balance(&app.state.db).await;
}

/// Posts raw bytes to the edge over HTTP/1.1, as Paystack does; returns the status code and
/// the body.
async fn post_to_edge(
    edge: std::net::SocketAddr,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(edge).await.expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {edge}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the edge answers")
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn paystack_posts_its_webhook_to_the_in_process_edge() {
    let paystack = FakePaystack::start(SECRET).await;
    let base_url = paystack.base_url();
    let app = spawn_app_with(&[
        ("PAYSTACK_SECRET_KEY", SECRET),
        ("PAYSTACK_BASE_URL", &base_url),
        ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0"),
    ])
    .await;
    let edge = app.edge_addr.expect("the edge is on");
    let (_, token) = app.verified().await;
    let top_up = app.top_up(&token, 1_000).await;
    paystack.pay(&top_up.reference);
    let (body, signature) = paystack.charge_success(&top_up.reference);

    let (status, _) = post_to_edge(
        edge,
        "/webhooks/paystack",
        &body,
        &[("x-paystack-signature", &"0".repeat(128))],
    )
    .await;
    assert_eq!(status, 401, "a forged signature is refused");
    assert_eq!(app.balance(&token).await, 0);

    for _ in 0..2 {
        let (status, answer) = post_to_edge(
            edge,
            "/webhooks/paystack",
            &body,
            &[("x-paystack-signature", &signature)],
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains(r#""accepted":true"#), "{answer}");
    }
    assert_eq!(app.balance(&token).await, 1_000);
}

#[tokio::test]
async fn the_body_of_a_webhook_is_not_trusted_the_gateway_is_asked() {
    let (app, paystack) = spawn_with_paystack().await;
    let (_, token) = app.verified().await;
    let top_up = app.top_up(&token, 1_000).await;

    // Paystack still has it open: a charge.success is not credited and is retried later.
    let body = serde_json::to_vec(&serde_json::json!({
        "event": "charge.success",
        "data": {"reference": top_up.reference, "status": "success",
                 "amount": 1_500_000, "currency": "NGN"}
    }))
    .unwrap();
    let status = deliver_paystack(&app, &body, &paystack.sign(&body))
        .await
        .expect_err("not paid according to Paystack");
    assert_error(&status, Code::Unavailable, "UNAVAILABLE");
    assert_eq!(app.balance(&token).await, 0);

    // The body states a wrong amount, but Paystack confirms the right one: credited.
    paystack.pay(&top_up.reference);
    let body = serde_json::to_vec(&serde_json::json!({
        "event": "charge.success",
        "data": {"reference": top_up.reference, "status": "success",
                 "amount": 7, "currency": "GHS"}
    }))
    .unwrap();
    let outcome = deliver_paystack(&app, &body, &paystack.sign(&body))
        .await
        .unwrap();
    assert!(outcome.accepted);
    assert_eq!(app.balance(&token).await, 1_000);
}

#[tokio::test]
async fn top_up_limits_and_refusals_at_the_gateway() {
    let (app, paystack) = spawn_with_paystack().await;
    let (_, token) = app.verified().await;
    let create = |minor_units: i64, request_id: &str, callback_url: &str| {
        let request = bearer(
            pb::CreateTopUpRequest {
                amount: Some(usd(minor_units)),
                request_id: request_id.into(),
                callback_url: callback_url.into(),
            },
            &token,
        );
        let mut wallet = app.wallet();
        async move { wallet.create_top_up(request).await }
    };
    // 10,000.00 USD is 15,000,000.00 NGN: more than Paystack takes in one payment.
    let status = create(1_000_000, "big", "").await.expect_err("too big");
    assert_error(&status, Code::InvalidArgument, "INVALID_AMOUNT");
    let largest = create(666_666, "largest", "")
        .await
        .expect("largest")
        .into_inner();
    let reference = largest.top_up.unwrap().reference;
    assert_eq!(
        paystack.initialized(&reference).unwrap().amount,
        999_999_000
    );

    // Callback URLs: the platform's scheme and host, and short enough once encoded.
    let long = format!("http://localhost:8080/{}", "é".repeat(150));
    assert_invalid(
        &create(1_000, "cb", &long).await.unwrap_err(),
        "callback_url",
    );
    assert_invalid(
        &create(1_000, "cb", "https://localhost:8080/return")
            .await
            .unwrap_err(),
        "callback_url",
    );

    // Concurrent retries of one request start one top-up.
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..8 {
        retries.spawn(create(1_000, "same-request", ""));
    }
    let mut references = std::collections::HashSet::new();
    while let Some(result) = retries.join_next().await {
        let top_up = result
            .unwrap()
            .expect("created")
            .into_inner()
            .top_up
            .unwrap();
        references.insert(top_up.reference);
    }
    assert_eq!(references.len(), 1, "{references:?}");
    assert_eq!(
        scalar(
            &app.state.db,
            "SELECT COUNT(*) FROM payment_logs WHERE request_id = 'same-request'"
        )
        .await,
        1
    );

    // A server holding the wrong key: Paystack answers 401; retrying would not help.
    let misconfigured = spawn_app_with(&[
        ("PAYSTACK_SECRET_KEY", "sk_test_wrong"),
        ("PAYSTACK_BASE_URL", &paystack.base_url()),
    ])
    .await;
    let (_, other) = misconfigured.verified().await;
    let status = misconfigured
        .wallet()
        .create_top_up(bearer(
            pb::CreateTopUpRequest {
                amount: Some(usd(1_000)),
                request_id: "r".into(),
                callback_url: String::new(),
            },
            &other,
        ))
        .await
        .expect_err("bad key");
    assert_error(&status, Code::FailedPrecondition, "PAYMENT_GATEWAY_REFUSED");
    assert_eq!(count_rows(&misconfigured, "payment_logs").await, 0);
}
