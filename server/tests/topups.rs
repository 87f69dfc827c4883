//! Top-ups through the built-in sandbox gateway (the embedded default), and every way a
//! top-up request can be wrong.
mod common;

use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::sandbox_service_client::SandboxServiceClient;
use tonic::Code;

async fn complete(
    app: &TestApp,
    token: &str,
    reference: &str,
    outcome: pb::SandboxPaymentOutcome,
    paid: Option<pb::Money>,
) -> Result<pb::TopUp, tonic::Status> {
    SandboxServiceClient::new(app.channel.clone())
        .complete_payment(bearer(
            pb::CompletePaymentRequest {
                reference: reference.into(),
                outcome: outcome as i32,
                paid_amount: paid,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().top_up.expect("a top-up"))
}

fn ngn(minor_units: i64) -> pb::Money {
    pb::Money {
        currency_code: "NGN".into(),
        minor_units,
    }
}

/// The recorded transitions of a top-up, as `from>to` strings, oldest first.
async fn transitions(app: &TestApp, reference: &str) -> Vec<String> {
    app.state
        .payments
        .history(reference)
        .await
        .expect("history")
        .into_iter()
        .map(|e| format!("{}>{}", e.from_status.unwrap_or_default(), e.to_status))
        .collect()
}

#[tokio::test]
async fn a_sandbox_top_up_is_credited_once_through_the_signed_webhook() {
    let app = spawn_app().await;
    let (_, token) = app.verified().await;
    let request = pb::CreateTopUpRequest {
        amount: Some(usd(1_000)),
        request_id: "first-top-up".into(),
        callback_url: String::new(),
    };
    let top_up = app
        .wallet()
        .create_top_up(bearer(request.clone(), &token))
        .await
        .expect("create")
        .into_inner()
        .top_up
        .unwrap();
    assert_eq!(top_up.status(), pb::TopUpStatus::Pending);
    assert_eq!(top_up.gateway(), pb::PaymentGateway::Sandbox);
    assert_eq!(top_up.name, format!("topUps/{}", top_up.reference));
    assert!(
        top_up.checkout_url.contains(&top_up.reference),
        "{top_up:?}"
    );
    assert_eq!(top_up.amount, Some(usd(1_000)));
    // 10.00 USD at the default 1500 NGN per USD.
    assert_eq!(top_up.charged_amount, Some(ngn(1_500_000)));
    assert!(top_up.credited_amount.is_none() && top_up.transaction.is_empty());

    // The same request again is the same top-up; the same id for another request is refused.
    let again = app
        .wallet()
        .create_top_up(bearer(request.clone(), &token))
        .await
        .unwrap()
        .into_inner()
        .top_up
        .unwrap();
    assert_eq!(again.reference, top_up.reference);
    let conflict = app
        .wallet()
        .create_top_up(bearer(
            pb::CreateTopUpRequest {
                amount: Some(usd(2_000)),
                ..request.clone()
            },
            &token,
        ))
        .await
        .expect_err("same id, other amount");
    assert_error(&conflict, Code::AlreadyExists, "IDEMPOTENCY_CONFLICT");
    assert_eq!(count_rows(&app, "payment_logs").await, 1);

    // Not paid yet: verifying changes nothing.
    let verified = app
        .wallet()
        .verify_top_up(bearer(
            pb::VerifyTopUpRequest {
                reference: top_up.reference.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.top_up.unwrap().status(), pb::TopUpStatus::Pending);
    assert_eq!(verified.balance, Some(usd(0)));

    let done = complete(
        &app,
        &token,
        &top_up.reference,
        pb::SandboxPaymentOutcome::Unspecified,
        None,
    )
    .await
    .expect("complete");
    assert_eq!(done.status(), pb::TopUpStatus::Completed);
    assert_eq!(done.credited_amount, Some(usd(1_000)));
    assert!(done.end_time.is_some() && done.checkout_url.is_empty());
    assert_eq!(app.balance(&token).await, 1_000);

    // Completing, verifying or replaying it again credits nothing more.
    let twice = complete(
        &app,
        &token,
        &top_up.reference,
        pb::SandboxPaymentOutcome::Succeeded,
        None,
    )
    .await
    .unwrap();
    assert_eq!(twice.status(), pb::TopUpStatus::Completed);
    let verified = app
        .wallet()
        .verify_top_up(bearer(
            pb::VerifyTopUpRequest {
                reference: top_up.reference.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.balance, Some(usd(1_000)));
    assert_eq!(app.balance(&token).await, 1_000);

    // The wallet shows one top-up, named as the top-up says.
    let list = app
        .wallet()
        .list_transactions(bearer(pb::ListTransactionsRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.transactions.len(), 1);
    let line = &list.transactions[0];
    assert_eq!(line.kind(), pb::TransactionKind::TopUp);
    assert_eq!(line.amount, Some(usd(1_000)));
    assert_eq!(line.balance_after, Some(usd(1_000)));
    assert_eq!(line.related_resource, top_up.name);
    assert_eq!(line.name, done.transaction);

    assert_eq!(
        transitions(&app, &top_up.reference).await,
        [">pending", "pending>processing", "processing>completed"]
    );
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn mismatches_and_declines_are_never_credited() {
    let app = spawn_app().await;
    let (_, token) = app.verified().await;

    let short = app.top_up(&token, 1_000).await;
    let refused = complete(
        &app,
        &token,
        &short.reference,
        pb::SandboxPaymentOutcome::Succeeded,
        Some(ngn(1_499_999)),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), pb::TopUpStatus::Failed);
    assert_eq!(refused.failure_reason, "AMOUNT_MISMATCH");
    assert!(refused.credited_amount.is_none());

    let foreign = app.top_up(&token, 1_000).await;
    let refused = complete(
        &app,
        &token,
        &foreign.reference,
        pb::SandboxPaymentOutcome::Succeeded,
        Some(pb::Money {
            currency_code: "ghs".into(),
            minor_units: 1_500_000,
        }),
    )
    .await
    .unwrap();
    assert_eq!(refused.failure_reason, "CURRENCY_MISMATCH");
    // A refused top-up stays refused, even if paid right afterwards.
    let still = complete(
        &app,
        &token,
        &foreign.reference,
        pb::SandboxPaymentOutcome::Succeeded,
        None,
    )
    .await
    .unwrap();
    assert_eq!(still.status(), pb::TopUpStatus::Failed);
    assert_eq!(app.balance(&token).await, 0);

    // A declined card can be retried on the same checkout page: a later payment counts.
    let declined = app.top_up(&token, 500).await;
    let failed = complete(
        &app,
        &token,
        &declined.reference,
        pb::SandboxPaymentOutcome::Failed,
        None,
    )
    .await
    .unwrap();
    assert_eq!(failed.status(), pb::TopUpStatus::Failed);
    assert_eq!(failed.failure_reason, "PAYMENT_FAILED");
    assert_eq!(app.balance(&token).await, 0);
    let paid = complete(
        &app,
        &token,
        &declined.reference,
        pb::SandboxPaymentOutcome::Succeeded,
        None,
    )
    .await
    .unwrap();
    assert_eq!(paid.status(), pb::TopUpStatus::Completed);
    assert_eq!(paid.failure_reason, "");
    assert_eq!(app.balance(&token).await, 500);
    assert_eq!(
        transitions(&app, &declined.reference).await,
        [
            ">pending",
            "pending>failed",
            "failed>processing",
            "processing>completed"
        ]
    );
    assert_eq!(
        transitions(&app, &foreign.reference).await,
        [">pending", "pending>failed"]
    );
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn bad_top_up_requests_get_clear_errors_and_write_nothing() {
    let app = spawn_app().await;

    // An account whose email is not verified cannot pay.
    let (_, unverified) = app.signed_in().await;
    let status = app
        .wallet()
        .create_top_up(bearer(
            pb::CreateTopUpRequest {
                amount: Some(usd(1_000)),
                request_id: "r1".into(),
                callback_url: String::new(),
            },
            &unverified,
        ))
        .await
        .expect_err("unverified");
    assert_error(&status, Code::FailedPrecondition, "EMAIL_NOT_VERIFIED");

    let (_, token) = app.verified().await;
    let create = |amount: Option<pb::Money>, request_id: &str, callback_url: &str| {
        let request = pb::CreateTopUpRequest {
            amount,
            request_id: request_id.into(),
            callback_url: callback_url.into(),
        };
        let mut wallet = app.wallet();
        let token = token.clone();
        async move {
            wallet
                .create_top_up(bearer(request, &token))
                .await
                .expect_err("refused")
        }
    };
    assert_invalid(&create(None, "r1", "").await, "amount");
    for amount in [i64::MIN, -100, 0, 99, 1_000_001, i64::MAX] {
        let status = create(Some(usd(amount)), "r1", "").await;
        assert_error(&status, Code::InvalidArgument, "INVALID_AMOUNT");
        assert_eq!(violated_fields(&status), ["amount.minor_units"], "{amount}");
    }
    let euro = pb::Money {
        currency_code: "EUR".into(),
        minor_units: 1_000,
    };
    let status = create(Some(euro), "r1", "").await;
    assert_error(&status, Code::InvalidArgument, "UNSUPPORTED_CURRENCY");
    let none = pb::Money {
        currency_code: String::new(),
        minor_units: 1_000,
    };
    assert_invalid(&create(Some(none), "r1", "").await, "amount.currency_code");
    assert_invalid(&create(Some(usd(1_000)), "", "").await, "request_id");
    assert_invalid(
        &create(Some(usd(1_000)), "has spaces", "").await,
        "request_id",
    );
    assert_invalid(
        &create(Some(usd(1_000)), &"x".repeat(65), "").await,
        "request_id",
    );
    for url in [
        "not a url",
        "/relative/path",
        "ftp://localhost:8080/x",
        "https://evil.example/return",
        "http://user:pass@localhost:8080/return",
    ] {
        assert_invalid(&create(Some(usd(1_000)), "r1", url).await, "callback_url");
    }
    assert_eq!(count_rows(&app, "payment_logs").await, 0);
    assert_eq!(count_rows(&app, "sandbox_payments").await, 0);

    // A callback on the platform's own host is taken.
    let ok = app
        .wallet()
        .create_top_up(bearer(
            pb::CreateTopUpRequest {
                amount: Some(usd(100)),
                request_id: "r1".into(),
                callback_url: "http://localhost:8080/wallet?from=topup".into(),
            },
            &token,
        ))
        .await
        .expect("own host")
        .into_inner()
        .top_up
        .unwrap();

    // Verifying: unknown, malformed, empty, and another account's references.
    let verify = |reference: &str, token: &str| {
        let request = bearer(
            pb::VerifyTopUpRequest {
                reference: reference.into(),
            },
            token,
        );
        let mut wallet = app.wallet();
        async move { wallet.verify_top_up(request).await.expect_err("refused") }
    };
    for reference in ["nms-00000000000000000000000000000000", "a/b", "../x"] {
        assert_error(
            &verify(reference, &token).await,
            Code::NotFound,
            "TOP_UP_NOT_FOUND",
        );
    }
    assert_invalid(&verify("", &token).await, "reference");
    let (_, stranger) = app.verified().await;
    assert_error(
        &verify(&ok.reference, &stranger).await,
        Code::NotFound,
        "TOP_UP_NOT_FOUND",
    );
    let status = complete(
        &app,
        &stranger,
        &ok.reference,
        pb::SandboxPaymentOutcome::Succeeded,
        None,
    )
    .await
    .expect_err("another account's");
    assert_error(&status, Code::NotFound, "TOP_UP_NOT_FOUND");
    let status = complete(
        &app,
        &token,
        &ok.reference,
        pb::SandboxPaymentOutcome::Succeeded,
        Some(ngn(-5)),
    )
    .await
    .expect_err("negative paid amount");
    assert_invalid(&status, "paid_amount.minor_units");
    assert_eq!(app.balance(&token).await, 0);
    assert_eq!(app.balance(&stranger).await, 0);
}

#[tokio::test]
async fn the_sandbox_answers_disabled_when_it_is_off() {
    let app = spawn_app_with(&[("NAMASKAH_SANDBOX", "off")]).await;
    let (_, token) = app.verified().await;
    let status = complete(
        &app,
        &token,
        "nms-1",
        pb::SandboxPaymentOutcome::Succeeded,
        None,
    )
    .await
    .expect_err("sandbox off");
    assert_error(&status, Code::Unimplemented, "SANDBOX_DISABLED");
    // With no gateway at all, a top-up cannot start.
    let status = app
        .wallet()
        .create_top_up(bearer(
            pb::CreateTopUpRequest {
                amount: Some(usd(1_000)),
                request_id: "r1".into(),
                callback_url: String::new(),
            },
            &token,
        ))
        .await
        .expect_err("no gateway");
    assert_error(
        &status,
        Code::FailedPrecondition,
        "PAYMENT_GATEWAY_DISABLED",
    );
    let status = app
        .deliver(pb::WebhookSource::Sandbox, b"{}", &[])
        .await
        .expect_err("sandbox webhooks off");
    assert_error(&status, Code::NotFound, "WEBHOOK_SOURCE_DISABLED");
}
