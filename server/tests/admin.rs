//! AdminService end to end: administrators need a TOTP-verified session (codes computed
//! here), every action and every denied attempt lands in the append-only audit log, and
//! the money moves once.
mod common;

use common::*;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::admin_service_client::AdminServiceClient;
use sea_orm::ConnectionTrait;
use tonic::Code;
use tonic::transport::Channel;

fn admin(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(app.channel.clone())
}

async fn me(app: &TestApp, token: &str) -> pb::User {
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, token))
        .await
        .expect("get me")
        .into_inner()
        .user
        .expect("a user")
}

async fn audit(
    app: &TestApp,
    token: &str,
    filter: pb::ListAuditLogEntriesRequest,
) -> Vec<pb::AuditLogEntry> {
    admin(app)
        .list_audit_log_entries(bearer(filter, token))
        .await
        .expect("list the audit log")
        .into_inner()
        .audit_log_entries
}

fn field<'a>(
    s: &'a Option<prost_types::Struct>,
    name: &str,
) -> Option<&'a prost_types::value::Kind> {
    s.as_ref()?.fields.get(name)?.kind.as_ref()
}

fn number(s: &Option<prost_types::Struct>, name: &str) -> Option<f64> {
    match field(s, name)? {
        prost_types::value::Kind::NumberValue(n) => Some(*n),
        _ => None,
    }
}

fn text(s: &Option<prost_types::Struct>, name: &str) -> Option<String> {
    match field(s, name)? {
        prost_types::value::Kind::StringValue(t) => Some(t.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn only_administrators_with_a_totp_session_get_in_and_refusals_are_audited() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    let session = admin_session(&app).await;
    let (_, customer) = app.signed_in().await;
    let customer_id = me(&app, &customer).await.name;

    let status = admin(&app)
        .list_users(bearer(pb::ListUsersRequest::default(), &customer))
        .await
        .expect_err("a customer");
    assert_error(&status, Code::PermissionDenied, "ADMIN_REQUIRED");
    let status = admin(&app)
        .get_user(bearer(
            pb::GetUserRequest {
                name: customer_id.clone(),
            },
            &session.password_only,
        ))
        .await
        .expect_err("an administrator without a TOTP login");
    assert_error(&status, Code::PermissionDenied, "TOTP_REQUIRED");
    // An API key never qualifies, even an administrator's.
    let key = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "ops".into(),
            },
            &session.token,
        ))
        .await
        .expect("an admin's API key")
        .into_inner()
        .secret;
    let status = admin(&app)
        .list_users(with_key(pb::ListUsersRequest::default(), &key))
        .await
        .expect_err("an API key");
    assert_error(&status, Code::PermissionDenied, "TOTP_REQUIRED");
    let status = admin(&app)
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect_err("no credentials");
    assert_eq!(status.code(), Code::Unauthenticated);

    // With the TOTP session: in, and the refusals are on record.
    let denied = audit(
        &app,
        &session.token,
        pb::ListAuditLogEntriesRequest {
            outcome: pb::AuditOutcome::Denied as i32,
            ..Default::default()
        },
    )
    .await;
    let summary: Vec<(String, String, String, String)> = denied
        .iter()
        .map(|e| {
            (
                e.actor.clone(),
                e.method.clone(),
                e.target.clone(),
                e.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                session.id.clone(),
                "namaskah.v1.AdminService/ListUsers".to_owned(),
                "users".to_owned(),
                "TOTP_REQUIRED".to_owned()
            ),
            (
                session.id.clone(),
                "namaskah.v1.AdminService/GetUser".to_owned(),
                customer_id.clone(),
                "TOTP_REQUIRED".to_owned()
            ),
            (
                customer_id.clone(),
                "namaskah.v1.AdminService/ListUsers".to_owned(),
                "users".to_owned(),
                "ADMIN_REQUIRED".to_owned()
            ),
        ],
        "newest first"
    );
    assert!(
        denied
            .iter()
            .all(|e| e.before.is_none() && e.after.is_none())
    );
    assert!(
        denied.iter().all(|e| !e.client_address.is_empty()),
        "{denied:?}"
    );

    // The log cannot be rewritten, even from inside.
    let db = &app.state.db;
    for sql in [
        "UPDATE audit_log_entries SET reason = 'nothing happened'",
        "DELETE FROM audit_log_entries",
    ] {
        assert!(
            db.execute_unprepared(sql).await.is_err(),
            "{sql} went through"
        );
    }
    assert_eq!(count_rows(&app, "audit_log_entries").await, 3);
}

#[tokio::test]
async fn balance_adjustments_move_money_once_per_request_and_never_below_zero() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    let session = admin_session(&app).await;
    let customer = app.funded(1_000).await;
    let name = me(&app, &customer).await.name;
    let adjust = |amount: i64, reason: &str, request_id: &str| {
        let mut client = admin(&app);
        let request = pb::AdjustBalanceRequest {
            name: name.clone(),
            amount: Some(usd(amount)),
            reason: reason.into(),
            request_id: request_id.into(),
        };
        let token = session.token.clone();
        async move { client.adjust_balance(bearer(request, &token)).await }
    };

    let first = adjust(250, "goodwill for the outage", "adj-1")
        .await
        .expect("credit")
        .into_inner();
    assert_eq!(first.balance.as_ref().unwrap().minor_units, 1_250);
    let line = first.transaction.clone().expect("a transaction");
    assert_eq!(line.kind, pb::TransactionKind::Adjustment as i32);
    assert_eq!(line.amount.as_ref().unwrap().minor_units, 250);
    assert_eq!(line.reason, "goodwill for the outage");
    // The same request again: the same answer, no more money.
    let again = adjust(250, "goodwill for the outage", "adj-1")
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(again, first);
    assert_eq!(app.balance(&customer).await, 1_250);
    let status = adjust(999, "goodwill for the outage", "adj-1")
        .await
        .expect_err("the same id for another request");
    assert_error(&status, Code::AlreadyExists, "IDEMPOTENCY_CONFLICT");
    // Concurrent retries of one request: one movement.
    let racing =
        futures::future::join_all((0..8).map(|_| adjust(-50, "duplicate charge", "adj-2"))).await;
    let answers: Vec<_> = racing
        .into_iter()
        .map(|r| r.expect("each retry answered").into_inner())
        .collect();
    assert!(answers.iter().all(|a| *a == answers[0]));
    assert_eq!(app.balance(&customer).await, 1_200);

    // Below zero: refused, nothing changed, and the attempt is on record.
    let status = adjust(-1_201, "clawback", "adj-3")
        .await
        .expect_err("more than the balance");
    assert_error(&status, Code::FailedPrecondition, "INSUFFICIENT_FUNDS");
    assert_eq!(app.balance(&customer).await, 1_200);
    for (amount, field) in [(0, "amount.minor_units")] {
        let status = adjust(amount, "nothing", "adj-4").await.expect_err("zero");
        assert_error(&status, Code::InvalidArgument, "INVALID_AMOUNT");
        assert!(status.message().contains(field), "{status:?}");
    }
    let status = adjust(5, "no", "adj-5").await.expect_err("a short reason");
    assert_invalid_fields(&status, &["reason"]);
    let status = adjust(5, "a fine reason", "")
        .await
        .expect_err("no request id");
    assert_invalid_fields(&status, &["request_id"]);

    let entries = audit(
        &app,
        &session.token,
        pb::ListAuditLogEntriesRequest {
            target: name.clone(),
            method: "namaskah.v1.AdminService/AdjustBalance".into(),
            ..Default::default()
        },
    )
    .await;
    let outcomes: Vec<(i32, String)> = entries
        .iter()
        .map(|e| (e.outcome, e.request_id.clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (pb::AuditOutcome::Failed as i32, "adj-3".to_owned()),
            (pb::AuditOutcome::Succeeded as i32, "adj-2".to_owned()),
            (pb::AuditOutcome::Succeeded as i32, "adj-1".to_owned()),
        ]
    );
    assert_eq!(entries[0].reason, "INSUFFICIENT_FUNDS");
    let credit = &entries[2];
    assert_eq!(credit.actor, session.id);
    assert_eq!(credit.actor_email, session.email);
    assert_eq!(credit.reason, "goodwill for the outage");
    assert_eq!(number(&credit.before, "balance"), Some(1_000.0));
    assert_eq!(number(&credit.after, "balance"), Some(1_250.0));
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_suspension_stops_keys_and_tokens_at_once_and_reactivation_brings_keys_back() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    let session = admin_session(&app).await;
    let (email, token) = app.signed_in().await;
    let key = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "script".into(),
            },
            &token,
        ))
        .await
        .expect("key")
        .into_inner()
        .secret;
    let name = me(&app, &token).await.name;
    let suspend = |reason: &str, target: &str| {
        let mut client = admin(&app);
        let request = pb::SuspendUserRequest {
            name: target.into(),
            reason: reason.into(),
        };
        let token = session.token.clone();
        async move { client.suspend_user(bearer(request, &token)).await }
    };

    let account = suspend("chargeback fraud", &name)
        .await
        .expect("suspend")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(account.status, pb::UserStatus::Suspended as i32);
    assert_eq!(account.suspend_reason, "chargeback fraud");
    assert!(account.suspend_time.is_some());
    for status in [
        app.auth()
            .get_me(with_key(pb::GetMeRequest {}, &key))
            .await
            .expect_err("the key"),
        app.auth()
            .get_me(bearer(pb::GetMeRequest {}, &token))
            .await
            .expect_err("the token"),
        app.auth()
            .login(pb::LoginRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                totp_code: String::new(),
            })
            .await
            .expect_err("a login"),
    ] {
        assert_error(&status, Code::PermissionDenied, "ACCOUNT_SUSPENDED");
    }
    // Suspending again changes nothing; suspending oneself is refused.
    let again = suspend("still", &name)
        .await
        .expect("again")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(again.suspend_reason, "chargeback fraud");
    let status = suspend("oops", &session.id).await.expect_err("self");
    assert_error(&status, Code::FailedPrecondition, "CANNOT_SUSPEND_SELF");
    let listed = admin(&app)
        .list_users(bearer(
            pb::ListUsersRequest {
                status: pb::UserStatus::Suspended as i32,
                ..Default::default()
            },
            &session.token,
        ))
        .await
        .expect("list suspended")
        .into_inner()
        .users;
    assert_eq!(
        listed
            .iter()
            .map(|u| u.user.as_ref().unwrap().name.clone())
            .collect::<Vec<_>>(),
        vec![name.clone()]
    );

    let back = admin(&app)
        .reactivate_user(bearer(
            pb::ReactivateUserRequest {
                name: name.clone(),
                reason: "cleared by the bank".into(),
            },
            &session.token,
        ))
        .await
        .expect("reactivate")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(back.status, pb::UserStatus::Active as i32);
    assert!(back.suspend_reason.is_empty() && back.suspend_time.is_none());
    // The key works again; the session the suspension ended stays ended.
    assert_eq!(
        app.auth()
            .get_me(with_key(pb::GetMeRequest {}, &key))
            .await
            .expect("the key again")
            .into_inner()
            .user
            .unwrap()
            .name,
        name
    );
    let status = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &token))
        .await
        .expect_err("the old session");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
    app.login(&email).await;

    let entries = audit(
        &app,
        &session.token,
        pb::ListAuditLogEntriesRequest {
            target: name.clone(),
            ..Default::default()
        },
    )
    .await;
    let kinds: Vec<(String, i32)> = entries
        .iter()
        .map(|e| (e.method.rsplit('/').next().unwrap().to_owned(), e.outcome))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "ReactivateUser".to_owned(),
                pb::AuditOutcome::Succeeded as i32
            ),
            ("SuspendUser".to_owned(), pb::AuditOutcome::Succeeded as i32),
        ],
        "a suspension that changed nothing is not a change"
    );
    assert_eq!(
        text(&entries[1].before, "status").as_deref(),
        Some("active")
    );
    assert_eq!(
        text(&entries[1].after, "status").as_deref(),
        Some("suspended")
    );
    assert_eq!(
        text(&entries[1].after, "suspend_reason").as_deref(),
        Some("chargeback fraud")
    );
}

#[tokio::test]
async fn a_completed_verification_is_refunded_by_hand_once() {
    let app = spawn_app_with(&[
        ("NAMASKAH_PLANS", RAISED_LIMITS),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
    ])
    .await;
    let session = admin_session(&app).await;
    let customer = app.funded(2_000).await;
    let completed = app.buy(&customer, "whatsapp", "GB").await.expect("buy");
    app.inject(
        &customer,
        &completed.phone_number,
        "Your WhatsApp code is 482-913",
        None,
    )
    .await
    .expect("inject");
    let open = app
        .buy(&customer, "telegram", "GB")
        .await
        .expect("buy another");
    let price = completed.price.as_ref().unwrap().minor_units;
    let before = app.balance(&customer).await;
    let refund = |name: &str, request_id: &str| {
        let mut client = admin(&app);
        let request = pb::RefundVerificationRequest {
            name: name.into(),
            reason: "code never worked".into(),
            request_id: request_id.into(),
        };
        let token = session.token.clone();
        async move { client.refund_verification(bearer(request, &token)).await }
    };

    let refunded = refund(&completed.name, "r-1")
        .await
        .expect("refund")
        .into_inner()
        .verification
        .unwrap();
    assert_eq!(status_of(&refunded), pb::VerificationStatus::Completed);
    assert_eq!(refunded.charge_state, pb::ChargeState::Refunded as i32);
    let r = refunded.refund.clone().expect("the refund");
    assert_eq!(r.reason, pb::RefundReason::Manual as i32);
    assert_eq!(r.note, "code never worked");
    assert_eq!(r.amount.unwrap().minor_units, price);
    assert!(r.transaction.starts_with("transactions/"));
    assert_eq!(refunded.code, "482913", "the code stays shown");
    assert_eq!(app.balance(&customer).await, before + price);
    // The customer sees the same.
    let seen = app.get_verification(&customer, &completed.name).await;
    assert_eq!(seen.refund.unwrap().note, "code never worked");

    // The same request again replays; another request is refused; nothing moves again.
    let replayed = refund(&completed.name, "r-1")
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replayed.verification.unwrap(), refunded);
    let status = refund(&completed.name, "r-2").await.expect_err("twice");
    assert_error(&status, Code::FailedPrecondition, "ALREADY_REFUNDED");
    let status = refund(&open.name, "r-3").await.expect_err("still waiting");
    assert_error(
        &status,
        Code::FailedPrecondition,
        "VERIFICATION_IN_PROGRESS",
    );
    let status = refund(&format!("verifications/{}", uuid::Uuid::now_v7()), "r-4")
        .await
        .expect_err("unknown");
    assert_error(&status, Code::NotFound, "VERIFICATION_NOT_FOUND");
    assert_eq!(app.balance(&customer).await, before + price);
    // A message after the refund is stored, shown and free.
    app.inject(
        &customer,
        &completed.phone_number,
        "Your WhatsApp code is 111-222",
        None,
    )
    .await
    .expect("a late message");
    let late = app.get_verification(&customer, &completed.name).await;
    assert_eq!(late.messages.len(), 2);
    assert!(late.messages.iter().any(|m| m.after_refund));
    assert_eq!(app.balance(&customer).await, before + price);

    let entries = audit(
        &app,
        &session.token,
        pb::ListAuditLogEntriesRequest {
            target: completed.name.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].outcome, pb::AuditOutcome::Failed as i32);
    assert_eq!(entries[0].reason, "ALREADY_REFUNDED");
    assert_eq!(entries[1].outcome, pb::AuditOutcome::Succeeded as i32);
    assert_eq!(entries[1].request_id, "r-1");
    assert_eq!(
        text(&entries[1].before, "charge_state").as_deref(),
        Some("captured")
    );
    assert_eq!(
        text(&entries[1].after, "charge_state").as_deref(),
        Some("refunded")
    );
    assert_books_balance(&app.state.db).await;
}

#[tokio::test]
async fn a_price_change_reaches_the_catalog_at_once_and_is_audited() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    let session = admin_session(&app).await;
    let price_of = || {
        let mut catalog = namaskah_proto::v1::catalog_service_client::CatalogServiceClient::new(
            app.channel.clone(),
        );
        async move {
            catalog
                .get_price(pb::GetPriceRequest {
                    name: "services/telegram/prices/DE".into(),
                })
                .await
        }
    };
    let before = price_of()
        .await
        .expect("a price")
        .into_inner()
        .price
        .unwrap();
    let set = |request: pb::SetServicePriceRequest| {
        let mut client = admin(&app);
        let token = session.token.clone();
        async move { client.set_service_price(bearer(request, &token)).await }
    };
    let changed = set(pb::SetServicePriceRequest {
        name: "services/telegram/prices/DE".into(),
        base_price: Some(usd(400)),
        withdrawn: false,
        reason: "supplier raised prices".into(),
    })
    .await
    .expect("set")
    .into_inner();
    assert_eq!(changed.base_price.unwrap().minor_units, 400);
    assert!(changed.previous_base_price.is_some());
    let after = price_of()
        .await
        .expect("a price")
        .into_inner()
        .price
        .unwrap();
    assert_ne!(after.price, before.price);
    // 400 × 1.25 storefront markup, no discount for a caller without credentials.
    assert_eq!(after.price.unwrap().minor_units, 500);

    let withdrawn = set(pb::SetServicePriceRequest {
        name: "services/telegram/prices/DE".into(),
        base_price: None,
        withdrawn: true,
        reason: String::new(),
    })
    .await
    .expect("withdraw")
    .into_inner();
    assert!(withdrawn.withdrawn);
    assert!(price_of().await.is_err(), "no longer offered");

    for (request, code, reason) in [
        (
            pb::SetServicePriceRequest {
                name: "services/nosuch/prices/DE".into(),
                base_price: Some(usd(100)),
                ..Default::default()
            },
            Code::NotFound,
            "SERVICE_NOT_FOUND",
        ),
        (
            pb::SetServicePriceRequest {
                name: "services/telegram/prices/DE".into(),
                base_price: Some(usd(-5)),
                ..Default::default()
            },
            Code::InvalidArgument,
            "INVALID_AMOUNT",
        ),
        (
            pb::SetServicePriceRequest {
                name: "telegram/DE".into(),
                base_price: Some(usd(100)),
                ..Default::default()
            },
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
    ] {
        let status = set(request).await.expect_err("refused");
        assert_error(&status, code, reason);
    }
    let entries = audit(
        &app,
        &session.token,
        pb::ListAuditLogEntriesRequest {
            target: "services/telegram/prices/DE".into(),
            ..Default::default()
        },
    )
    .await;
    let outcomes: Vec<i32> = entries.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            pb::AuditOutcome::Succeeded as i32,
            pb::AuditOutcome::Succeeded as i32
        ]
    );
    assert_eq!(number(&entries[1].after, "base_price"), Some(400.0));
    assert_eq!(entries[1].reason, "supplier raised prices");
    assert_eq!(text(&entries[0].after, "base_price"), None);
    // An attempt on an unknown service is on record; malformed input never got that far.
    let failed = audit(
        &app,
        &session.token,
        pb::ListAuditLogEntriesRequest {
            outcome: pb::AuditOutcome::Failed as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        failed
            .iter()
            .map(|e| (e.target.as_str(), e.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![("services/nosuch/prices/DE", "SERVICE_NOT_FOUND")]
    );
}

#[tokio::test]
async fn administrators_search_and_view_accounts() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    let session = admin_session(&app).await;
    let customer = app.funded(700).await;
    let bought = app.buy(&customer, "whatsapp", "GB").await.expect("buy");
    let profile = me(&app, &customer).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(app.signed_in().await.0);
    }
    let list = |request: pb::ListUsersRequest| {
        let mut client = admin(&app);
        let token = session.token.clone();
        async move {
            client
                .list_users(bearer(request, &token))
                .await
                .map(|r| r.into_inner())
        }
    };
    // Newest first, two at a time, every account once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(pb::ListUsersRequest {
            page_size: 2,
            page_token: token.clone(),
            ..Default::default()
        })
        .await
        .expect("a page");
        seen.extend(page.users.into_iter().map(|u| u.user.unwrap().email));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected: Vec<String> = others.iter().rev().cloned().collect();
    expected.push(profile.email.clone());
    expected.push(session.email.clone());
    assert_eq!(seen, expected);
    // By address, ignoring case; by plan.
    let found = list(pb::ListUsersRequest {
        email_query: profile.email.to_uppercase(),
        ..Default::default()
    })
    .await
    .expect("search")
    .users;
    assert_eq!(found.len(), 1);
    let account = &found[0];
    assert_eq!(
        account.balance.as_ref().unwrap().minor_units,
        700 - bought.price.as_ref().unwrap().minor_units
    );
    assert_eq!(
        account.held.as_ref().unwrap().minor_units,
        bought.price.as_ref().unwrap().minor_units
    );
    assert_eq!(account.verification_count, 1);
    assert_eq!(account.tenant, "tenants/default");
    assert!(account.last_active_time.is_some());
    let wildcard = list(pb::ListUsersRequest {
        email_query: "%".into(),
        ..Default::default()
    })
    .await
    .expect("a literal percent sign");
    assert!(wildcard.users.is_empty());
    let pro = list(pb::ListUsersRequest {
        plan: pb::PlanTier::Pro as i32,
        ..Default::default()
    })
    .await
    .expect("by plan");
    assert!(pro.users.is_empty());
    let status = list(pb::ListUsersRequest {
        page_token: "garbage".into(),
        ..Default::default()
    })
    .await
    .expect_err("a bad token");
    assert_invalid_fields(&status, &["page_token"]);

    let detail = admin(&app)
        .get_user(bearer(
            pb::GetUserRequest {
                name: profile.name.clone(),
            },
            &session.token,
        ))
        .await
        .expect("get user")
        .into_inner();
    assert_eq!(detail.user.unwrap().user.unwrap().email, profile.email);
    assert_eq!(
        detail
            .recent_verifications
            .iter()
            .map(|v| v.name.clone())
            .collect::<Vec<_>>(),
        vec![bought.name.clone()]
    );
    let kinds: Vec<i32> = detail.recent_transactions.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        vec![
            pb::TransactionKind::VerificationHold as i32,
            pb::TransactionKind::TopUp as i32
        ]
    );
    let status = admin(&app)
        .get_user(bearer(
            pb::GetUserRequest {
                name: format!("users/{}", uuid::Uuid::now_v7()),
            },
            &session.token,
        ))
        .await
        .expect_err("unknown");
    assert_error(&status, Code::NotFound, "USER_NOT_FOUND");
    // Looking at a customer is on record too.
    let viewed = audit(
        &app,
        &session.token,
        pb::ListAuditLogEntriesRequest {
            method: "namaskah.v1.AdminService/GetUser".into(),
            outcome: pb::AuditOutcome::Succeeded as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(viewed.len(), 1);
    assert_eq!(viewed[0].target, profile.name);
}

#[tokio::test]
async fn the_first_administrator_comes_from_the_command_line_with_the_password_on_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("admin.db").display()
    );
    let run = |args: &[&str], stdin: &str, env: &[(&str, &str)]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_namaskah-server"))
            .args(args)
            .env("DATABASE_URL", &database)
            .env("NAMASKAH_MAIL_SINK", dir.path().join("mail.jsonl"))
            .env_remove("NAMASKAH_ADMIN_PASSWORD")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run namaskah-server");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().expect("it ends")
    };
    let ok = run(
        &["admin", "create", "--email", "ops@example.com"],
        "correct horse 42\n",
        &[],
    );
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("administrator users/"));
    let taken = run(
        &["admin", "create", "--email", "OPS@example.com"],
        "",
        &[("NAMASKAH_ADMIN_PASSWORD", "another horse 43")],
    );
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
    let weak = run(
        &["admin", "create", "--email", "two@example.com"],
        "short\n",
        &[],
    );
    assert!(!weak.status.success());
    let usage = run(&["admin", "create", "--password", "x"], "", &[]);
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage"));
}

#[tokio::test]
async fn a_suspension_on_one_instance_stops_the_key_on_the_other() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", RAISED_LIMITS)]).await;
    if !app.uses_redis() {
        eprintln!("skipped: set TEST_REDIS_URL to run several instances on one Redis");
        return;
    }
    let peer = app.spawn_peer().await;
    let session = admin_session(&app).await;
    let (_, token) = peer.signed_in().await;
    let key = peer
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "script".into(),
            },
            &token,
        ))
        .await
        .expect("key")
        .into_inner()
        .secret;
    // The peer has the account's profile and key cached now.
    let name = me(&peer, &token).await.name;
    peer.auth()
        .get_me(with_key(pb::GetMeRequest {}, &key))
        .await
        .expect("the key works");
    admin(&app)
        .suspend_user(bearer(
            pb::SuspendUserRequest {
                name,
                reason: "abuse report".into(),
            },
            &session.token,
        ))
        .await
        .expect("suspend on the first instance");
    // The change travels over Redis pub/sub: the other instance hears of it a moment later
    // (bounded here at two seconds).
    for _ in 0..100 {
        match peer
            .auth()
            .get_me(with_key(pb::GetMeRequest {}, &key))
            .await
        {
            Err(status) => {
                assert_error(&status, Code::PermissionDenied, "ACCOUNT_SUSPENDED");
                return;
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    panic!("the suspension did not reach the other instance");
}
