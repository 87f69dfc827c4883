//! The verification lifecycle through the real server and the sandbox provider: buying a
//! number holds its price, the first SMS captures it, a cancel or an expiry gives it back,
//! exactly once whatever races; streams replay and resume without gaps.
mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use namaskah_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

/// Sandbox with no automatic code (InjectSms only) and quick jobs.
async fn spawn() -> TestApp {
    spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ("NAMASKAH_JOB_INTERVAL", "100ms"),
    ])
    .await
}

fn name_of(v: &pb::Verification) -> String {
    v.name.clone()
}

async fn settlements(app: &TestApp, id: &str) -> i64 {
    scalar(
        &app.state.db,
        &format!("SELECT COUNT(*) FROM journal_entries WHERE business_key = 'settle:{id}'"),
    )
    .await
}

fn id_of(v: &pb::Verification) -> String {
    v.name.trim_start_matches("verifications/").to_owned()
}

#[tokio::test]
async fn the_whole_lifecycle_through_the_sandbox() {
    let app = spawn().await;
    let token = app.funded(1_000).await;

    let v = app
        .buy(&token, "services/whatsapp", "countries/GB")
        .await
        .unwrap();
    assert_eq!(status_of(&v), pb::VerificationStatus::Active);
    assert!(
        v.phone_number.starts_with("+447700900"),
        "{}",
        v.phone_number
    );
    assert!(v.expire_time.is_some());
    assert_eq!(v.service, "services/whatsapp");
    assert_eq!(v.country, "countries/GB");
    assert_eq!(v.last_sequence, 2, "CREATED then NUMBER_ASSIGNED");
    let price = v.price.clone().unwrap().minor_units;
    assert!(price > 0);
    assert_eq!(
        pb::ChargeState::try_from(v.charge_state).unwrap(),
        pb::ChargeState::Held
    );
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, price);

    // The same price the catalog quotes.
    let quote =
        namaskah_proto::v1::catalog_service_client::CatalogServiceClient::new(app.channel.clone())
            .get_price(bearer(
                pb::GetPriceRequest {
                    name: "services/whatsapp/prices/GB".into(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(quote.price.unwrap().price.unwrap().minor_units, price);

    // An SMS dated before the verification was created is someone else's.
    let old = app
        .inject(
            &token,
            &v.phone_number,
            "Your code is 111111",
            Some(timestamp_in(-60_000)),
        )
        .await
        .unwrap();
    assert!(old.ignored);
    assert_eq!(
        status_of(old.verification.as_ref().unwrap()),
        pb::VerificationStatus::Active
    );
    assert!(old.verification.unwrap().messages.is_empty());

    let got = app
        .inject(
            &token,
            &v.phone_number,
            "WhatsApp code 123-456. Don't share it.",
            None,
        )
        .await
        .unwrap();
    assert!(!got.ignored);
    let done = got.verification.unwrap();
    assert_eq!(status_of(&done), pb::VerificationStatus::Completed);
    assert_eq!(done.code, "123456");
    assert_eq!(done.messages.len(), 1);
    assert_eq!(done.messages[0].sender, "WhatsApp");
    assert!(!done.messages[0].after_refund);
    assert!(done.end_time.is_some());
    assert_eq!(
        pb::ChargeState::try_from(done.charge_state).unwrap(),
        pb::ChargeState::Captured
    );
    assert_eq!(app.balance(&token).await, 1_000 - price);
    assert_eq!(app.held(&token).await, 0);

    // A second message is stored and free.
    let again = app
        .inject(&token, &v.phone_number, "Your WhatsApp code: 654321", None)
        .await
        .unwrap()
        .verification
        .unwrap();
    assert_eq!(again.messages.len(), 2);
    assert_eq!(again.code, "654321");
    assert_eq!(app.balance(&token).await, 1_000 - price);

    // Too late to cancel.
    let err = app
        .verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest { name: name_of(&v) },
            &token,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "SMS_ALREADY_RECEIVED");

    let fetched = app.get_verification(&token, &v.name).await;
    assert_eq!(fetched.messages.len(), 2);
    assert_eq!(
        fetched.last_sequence, 5,
        "CREATED, ASSIGNED, SMS, COMPLETED, SMS"
    );
    assert_eq!(settlements(&app, &id_of(&v)).await, 1);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_cancel_refunds_once_and_a_late_sms_is_free() {
    let app = spawn().await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "telegram", "US").await.unwrap();
    let price = v.price.clone().unwrap().minor_units;
    assert!(v.phone_number.starts_with("+1202555"), "{}", v.phone_number);

    let mut client = app.verifications();
    let cancelled = client
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: v.name.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .verification
        .unwrap();
    assert_eq!(status_of(&cancelled), pb::VerificationStatus::Cancelled);
    let refund = cancelled.refund.clone().expect("a refund");
    assert_eq!(refund.amount.unwrap().minor_units, price);
    assert_eq!(
        pb::RefundReason::try_from(refund.reason).unwrap(),
        pb::RefundReason::Cancelled
    );
    assert!(refund.transaction.starts_with("transactions/"));
    assert_eq!(app.balance(&token).await, 1_000);
    assert_eq!(app.held(&token).await, 0);

    // The refund is a wallet transaction the customer can see.
    let txs = app.transactions(&token).await;
    assert!(txs.iter().any(|t| t.name == refund.transaction));

    // Cancelling again returns it unchanged.
    let twice = client
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: v.name.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .verification
        .unwrap();
    assert_eq!(twice, cancelled);

    let late = app
        .inject(&token, &v.phone_number, "Telegram code 55555", None)
        .await
        .unwrap()
        .verification
        .unwrap();
    assert_eq!(status_of(&late), pb::VerificationStatus::Cancelled);
    assert_eq!(late.messages.len(), 1);
    assert!(late.messages[0].after_refund);
    assert_eq!(late.code, "55555");
    assert_eq!(app.balance(&token).await, 1_000);
    assert_eq!(settlements(&app, &id_of(&v)).await, 1);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn an_unanswered_number_expires_and_is_refunded() {
    let app = spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ("NAMASKAH_JOB_INTERVAL", "100ms"),
        ("NAMASKAH_VERIFICATION_TTL", "1s"),
    ])
    .await;
    let token = app.funded(500).await;
    let v = app.buy(&token, "google", "DE").await.unwrap();
    assert!(v.phone_number.starts_with("+490"), "{}", v.phone_number);
    let mut seen = v.clone();
    for _ in 0..100 {
        seen = app.get_verification(&token, &v.name).await;
        if status_of(&seen) != pb::VerificationStatus::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&seen), pb::VerificationStatus::Expired);
    assert_eq!(
        pb::RefundReason::try_from(seen.refund.unwrap().reason).unwrap(),
        pb::RefundReason::Expired
    );
    assert_eq!(app.balance(&token).await, 500);
    let err = app
        .verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: v.name.clone(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "VERIFICATION_ENDED");
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn the_sandbox_sends_a_code_by_itself_and_the_watcher_sees_it() {
    let app = spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "300ms"),
        ("NAMASKAH_JOB_INTERVAL", "100ms"),
    ])
    .await;
    let token = app.funded(500).await;
    let v = app.buy(&token, "discord", "GB").await.unwrap();
    let mut stream = app.watch(&token, &v.name, 0).await.unwrap();
    let mut events = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = stream.next().await {
            events.push(message.unwrap().event.unwrap());
        }
    })
    .await;
    assert!(collected.is_ok(), "the stream ends after COMPLETED");
    let types: Vec<_> = events
        .iter()
        .map(|e| pb::VerificationEventType::try_from(e.r#type).unwrap())
        .collect();
    assert_eq!(types[0], pb::VerificationEventType::Snapshot);
    assert_eq!(
        &types[1..],
        &[
            pb::VerificationEventType::SmsReceived,
            pb::VerificationEventType::Completed
        ]
    );
    assert_eq!(events[0].sequence, 2);
    assert_eq!(events[1].sequence, 3);
    assert_eq!(events[2].sequence, 4);
    let sms = events[1].message.clone().unwrap();
    assert_eq!(sms.code.len(), 6);
    assert_eq!(events[2].verification.as_ref().unwrap().code, sms.code);
    assert_eq!(
        status_of(events[2].verification.as_ref().unwrap()),
        pb::VerificationStatus::Completed
    );
}

#[tokio::test]
async fn streams_resume_from_a_sequence_and_end_on_finished_verifications() {
    let app = spawn().await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "uber", "FR").await.unwrap();
    app.inject(&token, &v.phone_number, "Uber code 4321", None)
        .await
        .unwrap();
    // Replay from the start: every stored event, in order, then the end.
    let replayed: Vec<pb::VerificationEvent> = app
        .watch(&token, &v.name, 1)
        .await
        .unwrap()
        .map(|m| m.unwrap().event.unwrap())
        .collect()
        .await;
    let sequences: Vec<i64> = replayed.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![2, 3, 4]);
    assert_eq!(
        pb::VerificationEventType::try_from(replayed[0].r#type).unwrap(),
        pb::VerificationEventType::NumberAssigned
    );

    // A finished verification: its snapshot, then the end.
    let snapshot: Vec<pb::VerificationEvent> = app
        .watch(&token, &v.name, 0)
        .await
        .unwrap()
        .map(|m| m.unwrap().event.unwrap())
        .collect()
        .await;
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].sequence, 4);

    let err = app.watch(&token, &v.name, 5).await.unwrap_err();
    assert_error(&err, Code::OutOfRange, "SEQUENCE_OUT_OF_RANGE");

    // Someone else's verification does not exist for them, streams included.
    let other = app.funded(100).await;
    let err = app.watch(&other, &v.name, 0).await.unwrap_err();
    assert_error(&err, Code::NotFound, "VERIFICATION_NOT_FOUND");
}

#[tokio::test]
async fn a_live_watch_of_all_verifications_sees_every_event_in_order() {
    let app = spawn().await;
    let token = app.funded(2_000).await;
    let mut all = app.watch_all(&token, false).await.unwrap();
    let a = app.buy(&token, "amazon", "IN").await.unwrap();
    let b = app.buy(&token, "tinder", "BR").await.unwrap();
    app.inject(&token, &b.phone_number, "Tinder code 778899", None)
        .await
        .unwrap();
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: a.name.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    let mut seen: std::collections::HashMap<String, Vec<i64>> = Default::default();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while seen.values().map(Vec::len).sum::<usize>() < 7 {
            let event = all.next().await.unwrap().unwrap().event.unwrap();
            seen.entry(event.verification.unwrap().name)
                .or_default()
                .push(event.sequence);
        }
    })
    .await;
    assert!(got.is_ok(), "all events arrive: {seen:?}");
    assert_eq!(seen[&a.name], vec![1, 2, 3]);
    assert_eq!(seen[&b.name], vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn watches_read_storage_for_changes_whose_live_event_never_came() {
    let app = spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ("NAMASKAH_WATCH_RECHECK", "300ms"),
    ])
    .await;
    // The SMS lands on an instance whose feed this one never hears.
    let other = app.spawn_detached_peer().await;
    let token = app.funded(1_000).await;
    let v = app.buy(&token, "telegram", "DE").await.unwrap();
    let mut one = app.watch(&token, &v.name, 0).await.unwrap();
    let mut all = app.watch_all(&token, true).await.unwrap();
    other
        .inject(&token, &v.phone_number, "Telegram code: 51842", None)
        .await
        .unwrap();
    let types = |events: &[pb::VerificationEvent]| -> Vec<(i64, pb::VerificationEventType)> {
        events
            .iter()
            .map(|e| {
                let kind = pb::VerificationEventType::try_from(e.r#type).unwrap();
                (e.sequence, kind)
            })
            .collect()
    };
    let single = tokio::time::timeout(Duration::from_secs(10), async {
        let mut events = Vec::new();
        while let Some(message) = one.next().await {
            events.push(message.unwrap().event.unwrap());
        }
        events
    })
    .await
    .expect("the single watch ends after COMPLETED without a live event");
    assert_eq!(
        types(&single),
        vec![
            (2, pb::VerificationEventType::Snapshot),
            (3, pb::VerificationEventType::SmsReceived),
            (4, pb::VerificationEventType::Completed),
        ]
    );
    assert_eq!(single[1].message.as_ref().unwrap().code, "51842");
    let account = tokio::time::timeout(Duration::from_secs(10), async {
        let mut events = Vec::new();
        while events.len() < 3 {
            events.push(all.next().await.unwrap().unwrap().event.unwrap());
        }
        events
    })
    .await
    .expect("the account's watch brings the SMS and the end without a live event");
    assert_eq!(types(&account), types(&single));
    // After the end the account's watch stays open and quiet: nothing is repeated.
    let more = tokio::time::timeout(Duration::from_millis(900), all.next()).await;
    assert!(more.is_err(), "no event after the end: {more:?}");
    other.shutdown().await.unwrap();
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let app = spawn().await;
    let token = app.funded(1_000).await;
    let mut client = app.verifications();
    let create = |service: &str, country: &str, max: Option<i64>, request_id: &str| {
        bearer(
            pb::CreateVerificationRequest {
                service: service.into(),
                country: country.into(),
                max_price: max.map(usd),
                request_id: request_id.into(),
            },
            &token,
        )
    };

    let err = client
        .create_verification(create("", "", None, ""))
        .await
        .unwrap_err();
    assert_invalid_fields(&err, &["service", "country", "request_id"]);
    let err = client
        .create_verification(create("what's app", "Britain", None, "a"))
        .await
        .unwrap_err();
    assert_invalid_fields(&err, &["service", "country"]);
    let err = client
        .create_verification(create("nosuchservice", "GB", None, "b"))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "SERVICE_NOT_FOUND");
    let err = client
        .create_verification(create("whatsapp", "ZZ", None, "c"))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "COUNTRY_NOT_FOUND");
    let err = client
        .create_verification(create("whatsapp", "GB", Some(0), "d"))
        .await
        .unwrap_err();
    assert_invalid(&err, "max_price.minor_units");
    let err = client
        .create_verification(create("whatsapp", "GB", Some(1), "e"))
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "MAX_PRICE_EXCEEDED");
    let price: i64 = err.get_details_error_info().unwrap().metadata["price_minor_units"]
        .parse()
        .unwrap();
    assert!(price > 1);
    assert_eq!(count_rows(&app, "verifications").await, 0);

    // The exact price as max_price is fine; a request id replayed returns the same one.
    let first = client
        .create_verification(create("whatsapp", "GB", Some(price), "same"))
        .await
        .unwrap()
        .into_inner()
        .verification
        .unwrap();
    let replay = client
        .create_verification(create("whatsapp", "GB", Some(price), "same"))
        .await
        .unwrap()
        .into_inner()
        .verification
        .unwrap();
    assert_eq!(first.name, replay.name);
    assert_eq!(replay.request_id, "same");
    assert_eq!(app.balance(&token).await, 1_000 - price);
    let err = client
        .create_verification(create("telegram", "GB", None, "same"))
        .await
        .unwrap_err();
    assert_error(&err, Code::AlreadyExists, "IDEMPOTENCY_CONFLICT");

    // Not enough money: refused, nothing written.
    let poor = app.funded(100).await;
    let err = client
        .create_verification(bearer(
            pb::CreateVerificationRequest {
                service: "whatsapp".into(),
                country: "GB".into(),
                max_price: None,
                request_id: "poor".into(),
            },
            &poor,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    assert_eq!(count_rows(&app, "verifications").await, 1);

    // An unverified email cannot buy.
    let email = app.register().await;
    let unverified = app.login(&email).await.access_token;
    let err = app.buy(&unverified, "whatsapp", "GB").await.unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "EMAIL_NOT_VERIFIED");

    // Someone else's verification is not found, for every RPC.
    let err = client
        .get_verification(bearer(
            pb::GetVerificationRequest {
                name: first.name.clone(),
            },
            &poor,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "VERIFICATION_NOT_FOUND");
    let err = client
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: first.name.clone(),
            },
            &poor,
        ))
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "VERIFICATION_NOT_FOUND");
    let err = client
        .get_verification(bearer(
            pb::GetVerificationRequest {
                name: "nope".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_invalid(&err, "name");
    let err = app
        .inject(&poor, &first.phone_number, "code 1234", None)
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "SANDBOX_NUMBER_NOT_FOUND");
    let err = app.inject(&token, "12345", "", None).await.unwrap_err();
    assert_invalid_fields(&err, &["phone_number", "text"]);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn lists_are_newest_first_and_filter_by_status() {
    let app = spawn().await;
    let token = app.funded(5_000).await;
    let mut names = Vec::new();
    for service in ["whatsapp", "telegram", "google", "facebook", "instagram"] {
        names.push(app.buy(&token, service, "GB").await.unwrap().name);
    }
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: names[1].clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    let mut client = app.verifications();
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_verifications(bearer(
                pb::ListVerificationsRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.verifications.into_iter().map(|v| v.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut newest_first = names.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let cancelled = client
        .list_verifications(bearer(
            pb::ListVerificationsRequest {
                statuses: vec![pb::VerificationStatus::Cancelled as i32],
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .verifications;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].name, names[1]);
    let by_service = client
        .list_verifications(bearer(
            pb::ListVerificationsRequest {
                service: "services/google".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .verifications;
    assert_eq!(by_service.len(), 1);
    // A token from one filter is refused by another.
    let first = client
        .list_verifications(bearer(
            pb::ListVerificationsRequest {
                page_size: 1,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_verifications(bearer(
            pb::ListVerificationsRequest {
                page_size: 1,
                page_token: first.next_page_token,
                statuses: vec![pb::VerificationStatus::Active as i32],
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
    // Another account sees none of them.
    let other = app.funded(100).await;
    let theirs = client
        .list_verifications(bearer(pb::ListVerificationsRequest::default(), &other))
        .await
        .unwrap()
        .into_inner()
        .verifications;
    assert!(theirs.is_empty());
}

#[tokio::test]
async fn a_thousand_concurrent_buys_on_a_wallet_that_affords_ten() {
    let app = spawn().await;
    let probe = app.funded(1_000).await;
    let price = app
        .buy(&probe, "whatsapp", "GB")
        .await
        .unwrap()
        .price
        .unwrap()
        .minor_units;
    let token = app.funded(price * 10).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let client = app.verifications();
        let token = token.clone();
        tasks.spawn(async move {
            let mut client = client;
            client
                .create_verification(bearer(
                    pb::CreateVerificationRequest {
                        service: "whatsapp".into(),
                        country: "GB".into(),
                        max_price: None,
                        request_id: uuid::Uuid::new_v4().to_string(),
                    },
                    &token,
                ))
                .await
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_error(&status, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (10, 990));
    assert_eq!(app.balance(&token).await, 0);
    assert_eq!(app.held(&token).await, price * 10);
    assert_eq!(count_rows(&app, "verifications").await, 11);
    assert_books_balance(&app.state.db).await;

    // The wallet's history lists its lines in the order its balance moved, though the
    // buys queued for the wallet: each line's balance is the next older one's plus its
    // amount.
    let lines = app.transactions(&token).await;
    assert_eq!(lines.len(), 11, "the top-up and ten holds");
    let cents = |m: &Option<pb::Money>| m.as_ref().unwrap().minor_units;
    for pair in lines.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(
            cents(&older.balance_after) + cents(&newer.amount),
            cents(&newer.balance_after),
            "{} listed above {}",
            newer.name,
            older.name
        );
    }
}

#[tokio::test]
async fn cancel_expiry_and_sms_race_and_money_moves_once() {
    let app = spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        // The job stays out of the way; the test drives expiry itself, in the race.
        ("NAMASKAH_JOB_INTERVAL", "1h"),
        ("NAMASKAH_VERIFICATION_TTL", "1s"),
    ])
    .await;
    let rounds = 12;
    let token = app.funded(300 * rounds).await;
    let start = app.balance(&token).await;
    let mut bought = Vec::new();
    for _ in 0..rounds {
        bought.push(app.buy(&token, "viber", "PH").await.unwrap());
    }
    // Past every deadline, so all three changes are possible at once.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut captured = 0;
    for v in &bought {
        let id: uuid::Uuid = id_of(v).parse().unwrap();
        let expires = v.expire_time.unwrap();
        let dated = prost_types::Timestamp {
            seconds: expires.seconds - 1,
            nanos: expires.nanos,
        };
        let cancel = {
            let mut c = app.verifications();
            let token = token.clone();
            let name = v.name.clone();
            async move {
                c.cancel_verification(bearer(pb::CancelVerificationRequest { name }, &token))
                    .await
            }
        };
        let sms = app.inject(&token, &v.phone_number, "Viber code 246810", Some(dated));
        let expire = app
            .state
            .verifications
            .apply(id, namaskah_server::verification::service::Input::Expire);
        let (cancelled, delivered, expired) = tokio::join!(cancel, sms, expire);
        // Every caller gets a clean answer: the winner its change, the losers the state.
        if let Err(status) = &cancelled {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            let reason = status.get_details_error_info().unwrap().reason;
            assert!(
                reason == "SMS_ALREADY_RECEIVED" || reason == "VERIFICATION_ENDED",
                "{status:?}"
            );
        }
        delivered.expect("the SMS is taken (stored, and free if it lost)");
        expired.expect("the expiry is taken");
        let end = app.get_verification(&token, &v.name).await;
        let status = status_of(&end);
        let charge = pb::ChargeState::try_from(end.charge_state).unwrap();
        assert_eq!(
            charge == pb::ChargeState::Captured,
            status == pb::VerificationStatus::Completed,
            "{end:?}"
        );
        assert_eq!(end.messages.len(), 1, "the message is stored whoever won");
        assert!(status != pb::VerificationStatus::Active, "{end:?}");
        assert_eq!(settlements(&app, &id_of(v)).await, 1, "{end:?}");
        if status == pb::VerificationStatus::Completed {
            captured += v.price.clone().unwrap().minor_units;
        } else {
            assert!(end.refund.is_some());
        }
    }
    assert_eq!(app.held(&token).await, 0);
    assert_eq!(app.balance(&token).await, start - captured);
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_watcher_on_one_instance_sees_an_sms_delivered_through_another() {
    let a = spawn().await;
    if !a.uses_redis() {
        // Without Redis, events stay inside the process that made them (the embedded
        // default is one instance); the PostgreSQL + Redis run covers this.
        return;
    }
    let b = a.spawn_peer().await;
    let token = a.funded(500).await;
    let v = a.buy(&token, "signal", "NL").await.unwrap();
    let mut stream = a.watch(&token, &v.name, 0).await.unwrap();
    let first = stream.next().await.unwrap().unwrap().event.unwrap();
    assert_eq!(
        pb::VerificationEventType::try_from(first.r#type).unwrap(),
        pb::VerificationEventType::Snapshot
    );
    b.inject(&token, &v.phone_number, "Signal code 135-790", None)
        .await
        .unwrap();
    let rest: Vec<pb::VerificationEvent> = tokio::time::timeout(
        Duration::from_secs(10),
        stream.map(|m| m.unwrap().event.unwrap()).collect(),
    )
    .await
    .expect("the events arrive through Redis");
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].message.as_ref().unwrap().code, "135790");
    assert_eq!(
        pb::VerificationEventType::try_from(rest[1].r#type).unwrap(),
        pb::VerificationEventType::Completed
    );
}

#[tokio::test]
async fn the_catalog_shows_success_rates_from_our_own_verifications() {
    let app = spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ("NAMASKAH_JOB_INTERVAL", "100ms"),
        ("NAMASKAH_VERIFICATION_TTL", "1s"),
    ])
    .await;
    let token = app.funded(2_000).await;
    let completed = app.buy(&token, "whatsapp", "GB").await.unwrap();
    app.inject(
        &token,
        &completed.phone_number,
        "WhatsApp code 112233",
        None,
    )
    .await
    .unwrap();
    let cancelled = app.buy(&token, "whatsapp", "GB").await.unwrap();
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: cancelled.name.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    let expired = app.buy(&token, "whatsapp", "GB").await.unwrap();
    for _ in 0..100 {
        let v = app.get_verification(&token, &expired.name).await;
        if status_of(&v) == pb::VerificationStatus::Expired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut catalog =
        namaskah_proto::v1::catalog_service_client::CatalogServiceClient::new(app.channel.clone());
    let price = catalog
        .get_price(bearer(
            pb::GetPriceRequest {
                name: "services/whatsapp/prices/GB".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .price
        .unwrap();
    // One completed, one expired; the cancellation is left out.
    assert_eq!(price.recent_verification_count, 2);
    assert_eq!(price.success_rate, Some(0.5));
    let services = catalog
        .list_services(bearer(
            pb::ListServicesRequest {
                country: "GB".into(),
                page_size: 500,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .services;
    let whatsapp = services.iter().find(|s| s.code == "whatsapp").unwrap();
    assert_eq!(whatsapp.success_rate, Some(0.5));
    let telegram = services.iter().find(|s| s.code == "telegram").unwrap();
    assert_eq!(telegram.success_rate, None);
    assert_eq!(telegram.recent_verification_count, 0);
}

#[tokio::test]
async fn two_instances_running_the_jobs_refund_each_expiry_once() {
    let a = spawn_app_with(&[
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
        ("NAMASKAH_JOB_INTERVAL", "50ms"),
        ("NAMASKAH_VERIFICATION_TTL", "1s"),
    ])
    .await;
    let b = a.spawn_peer().await;
    let token = a.funded(5_000).await;
    let mut bought = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 { &a } else { &b };
        bought.push(app.buy(&token, "line", "JP").await.unwrap());
    }
    let all_ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let active = scalar(
                &a.state.db,
                "SELECT COUNT(*) FROM verifications WHERE status = 'active'",
            )
            .await;
            if active == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(all_ended.is_ok(), "every verification expires");
    for v in &bought {
        let end = a.get_verification(&token, &v.name).await;
        assert_eq!(status_of(&end), pb::VerificationStatus::Expired);
        assert_eq!(settlements(&a, &id_of(v)).await, 1);
    }
    let expired_events = scalar(
        &a.state.db,
        "SELECT COUNT(*) FROM verification_events WHERE kind = 'expired'",
    )
    .await;
    assert_eq!(expired_events, 16, "one EXPIRED event per verification");
    assert_eq!(a.balance(&token).await, 5_000);
    assert_books_balance(&a.state.db).await;
}

#[tokio::test]
async fn watching_all_with_snapshots_starts_with_every_open_verification() {
    let app = spawn().await;
    let token = app.funded(2_000).await;
    let first = app.buy(&token, "yahoo", "GB").await.unwrap();
    let ended = app.buy(&token, "ebay", "GB").await.unwrap();
    app.inject(&token, &ended.phone_number, "eBay code 5566", None)
        .await
        .unwrap();
    let second = app.buy(&token, "olx", "PL").await.unwrap();
    let mut all = app.watch_all(&token, true).await.unwrap();
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(10), all.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        assert_eq!(
            pb::VerificationEventType::try_from(event.r#type).unwrap(),
            pb::VerificationEventType::Snapshot
        );
        snapshots.push(event);
    }
    // The open ones, oldest first; the completed one is left out.
    let names: Vec<_> = snapshots
        .iter()
        .map(|e| e.verification.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(names, vec![first.name.clone(), second.name.clone()]);
    assert_eq!(snapshots[0].sequence, 2);
    // Live events follow.
    app.verifications()
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: second.name.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), all.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    assert_eq!(next.verification.unwrap().name, second.name);
    assert_eq!(next.sequence, 3);
}
