//! AuthService refusals: bad input on every RPC answers the exact gRPC code, `ErrorInfo`
//! reason and `BadRequest` field, writes nothing, and never surfaces as an internal error.
//! Also the edges of the happy paths: referral codes, re-sent mails, paging, and one account
//! never reaching another's keys or sessions.
mod common;

use std::collections::HashSet;

use chrono::Utc;
use common::*;
use namaskah_proto::v1 as pb;
use namaskah_server::identity::domain::hash_secret;
use namaskah_server::identity::entities::{mail_tokens, refresh_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tonic::metadata::AsciiMetadataValue;
use tonic::{Code, Request, Status};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn register_request(email: &str, password: &str, referral_code: &str) -> pb::RegisterRequest {
    pb::RegisterRequest {
        email: email.into(),
        password: password.into(),
        referral_code: referral_code.into(),
    }
}

async fn try_register(
    app: &TestApp,
    email: &str,
    password: &str,
    referral_code: &str,
) -> Result<pb::User, Status> {
    app.auth()
        .register(register_request(email, password, referral_code))
        .await
        .map(|r| r.into_inner().user.expect("user"))
}

async fn try_login(
    app: &TestApp,
    email: &str,
    password: &str,
) -> Result<pb::LoginResponse, Status> {
    app.auth()
        .login(pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            totp_code: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn get_me(app: &TestApp, token: &str) -> Result<pb::User, Status> {
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, token))
        .await
        .map(|r| r.into_inner().user.expect("user"))
}

/// A mail-token refusal: `INVALID_ARGUMENT` with its own reason, on the `token` field.
#[track_caller]
fn assert_token_refused(status: &Status, reason: &str) {
    assert_error(status, Code::InvalidArgument, reason);
    assert_eq!(violated_fields(status), ["token"], "{status:?}");
}

/// Registers and asserts the refusal names exactly `fields`, and that no account appeared.
#[track_caller]
fn assert_refused_register(result: Result<pb::User, Status>, fields: &[&str]) -> Status {
    match result {
        Ok(user) => panic!("registration should fail on {fields:?}, got {user:?}"),
        Err(status) => {
            assert_invalid_fields(&status, fields);
            status
        }
    }
}

/// A `dots`-free email of exactly `len` bytes whose local part is unique.
fn email_of_len(len: usize) -> String {
    // 64 (local) + 1 (@) + 63 + 1 + 63 + 1 + n + 4 (".com") = len
    let local = format!("{:x<64}", uuid::Uuid::new_v4().simple().to_string());
    let last = len - 64 - 1 - 63 - 1 - 63 - 1 - 4;
    format!(
        "{local}@{}.{}.{}.com",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(last)
    )
}

/// Makes a mailed token look issued long ago: its expiry is in the past.
async fn expire_mail_token(app: &TestApp, token: &str) {
    let past = Utc::now() - chrono::Duration::minutes(1);
    let result = mail_tokens::Entity::update_many()
        .col_expr(mail_tokens::Column::ExpiresAt, Expr::value(past))
        .filter(mail_tokens::Column::TokenHash.eq(hash_secret(token)))
        .exec(&app.state.db)
        .await
        .expect("expire the mail token");
    assert_eq!(result.rows_affected, 1, "exactly one token expired");
}

async fn expire_refresh_token(app: &TestApp, token: &str) {
    let past = Utc::now() - chrono::Duration::minutes(1);
    let result = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::ExpiresAt, Expr::value(past))
        .filter(refresh_tokens::Column::TokenHash.eq(hash_secret(token)))
        .exec(&app.state.db)
        .await
        .expect("expire the refresh token");
    assert_eq!(result.rows_affected, 1, "exactly one token expired");
}

/// Waits until `to` has `n` mails, then a little longer, and asserts no more arrived.
async fn assert_mail_count_settles(app: &TestApp, to: &str, n: usize) {
    if n > 0 {
        app.nth_mail_to(to, n).await;
    }
    // Mail leaves in the background: give a stray one time to land before counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let count = app.mails().iter().filter(|m| m["to"] == to).count();
    assert_eq!(count, n, "mails to {to}: {:?}", app.mails());
}

async fn create_key(app: &TestApp, token: &str, display_name: &str) -> (pb::ApiKey, String) {
    let created = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: display_name.into(),
            },
            token,
        ))
        .await
        .expect("create key")
        .into_inner();
    (created.api_key.expect("api key"), created.secret)
}

async fn list_keys(
    app: &TestApp,
    token: &str,
    request: pb::ListApiKeysRequest,
) -> Result<pb::ListApiKeysResponse, Status> {
    app.auth()
        .list_api_keys(bearer(request, token))
        .await
        .map(|r| r.into_inner())
}

// ---------------------------------------------------------------------------------------
// Register
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn register_refuses_empty_and_malformed_emails_and_writes_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("blank", "   ".into()),
        ("no @", "plainaddress.example.com".into()),
        ("space inside", "first last@example.com".into()),
        ("space in domain", "someone@exa mple.com".into()),
        ("tab", "some\tone@example.com".into()),
        ("no TLD", "someone@example".into()),
        ("one-letter TLD", "someone@example.c".into()),
        ("digit TLD", "someone@example.c0m".into()),
        ("nothing after @", "someone@".into()),
        ("nothing before @", "@example.com".into()),
        ("two @", "some@one@example.com".into()),
        ("double dot", "some..one@example.com".into()),
        ("leading dot", ".someone@example.com".into()),
        ("empty label", "someone@example..com".into()),
        ("hyphen label", "someone@-example.com".into()),
        ("control character", "some\u{0}one@example.com".into()),
        (
            "local part of 65",
            format!("{}@example.com", "a".repeat(65)),
        ),
        ("255 characters", email_of_len(255)),
        ("10 KB", format!("{}@example.com", "a".repeat(10 * 1024))),
    ];
    for (what, email) in cases {
        let status =
            assert_refused_register(try_register(&app, &email, PASSWORD, "").await, &["email"]);
        assert!(
            status.message().contains("email"),
            "{what}: the message names the field: {status:?}"
        );
        assert_eq!(count_rows(&app, "users").await, 0, "{what}: no row written");
    }
    // The longest allowed address (254) is accepted.
    let longest = email_of_len(254);
    assert_eq!(longest.len(), 254);
    try_register(&app, &longest, PASSWORD, "")
        .await
        .expect("254 characters is allowed");
    try_login(&app, &longest, PASSWORD)
        .await
        .expect("and it logs in");
    assert_eq!(count_rows(&app, "users").await, 1);
    assert_eq!(count_rows(&app, "mail_tokens").await, 1);
}

#[tokio::test]
async fn register_refuses_weak_passwords_and_writes_nothing() {
    let app = spawn_app().await;
    let email = format!("pw1-{}@example.com", uuid::Uuid::new_v4().simple());
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("short", "abc123".into()),
        ("nine characters", "abcdefgh1".into()),
        ("no digit", "only letters here".into()),
        ("no letter", "1234567890 42".into()),
        ("equal to the email", email.clone()),
        ("the email in another case", email.to_uppercase()),
        ("the email with spaces", format!("  {email} ")),
        ("129 characters", format!("{}1", "a".repeat(128))),
        ("100 KB", format!("{}1", "a".repeat(100 * 1024))),
    ];
    for (what, password) in cases {
        assert_refused_register(
            try_register(&app, &email, &password, "").await,
            &["password"],
        );
        assert_eq!(count_rows(&app, "users").await, 0, "{what}: no row written");
        let login = try_login(&app, &email, &password).await;
        assert!(login.is_err(), "{what}: no account to log in to");
    }
    // Both fields wrong at once: both named, in order.
    assert_refused_register(
        try_register(&app, "not an email", "short", "").await,
        &["email", "password"],
    );
    // Oversized everything at once: still a clean INVALID_ARGUMENT.
    assert_refused_register(
        try_register(
            &app,
            &format!("{}@example.com", "e".repeat(10 * 1024)),
            &"p4".repeat(50 * 1024),
            "",
        )
        .await,
        &["email", "password"],
    );
    assert_eq!(count_rows(&app, "users").await, 0);
    assert_eq!(count_rows(&app, "mail_tokens").await, 0);
    assert!(app.mails().is_empty(), "no mail for refused accounts");

    // The boundaries themselves are accepted.
    for password in ["abcdefgh12".to_owned(), format!("{}1", "a".repeat(127))] {
        let email = unique_email();
        try_register(&app, &email, &password, "")
            .await
            .unwrap_or_else(|s| panic!("{} characters is allowed: {s:?}", password.len()));
        try_login(&app, &email, &password).await.expect("logs in");
    }
}

#[tokio::test]
async fn a_long_non_ascii_password_that_registers_also_logs_in() {
    // 100 characters but 199 bytes: the limits are in characters, everywhere.
    let app = spawn_app().await;
    let email = unique_email();
    let password = format!("{}1", "é".repeat(99));
    assert_eq!(password.chars().count(), 100);
    try_register(&app, &email, &password, "")
        .await
        .expect("100 characters is allowed");
    let tokens = try_login(&app, &email, &password)
        .await
        .expect("the password it registered with logs in")
        .tokens
        .unwrap();

    // And the other RPCs that take the password accept it too.
    let setup = app
        .auth()
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &tokens.access_token))
        .await
        .expect("setup")
        .into_inner();
    app.auth()
        .confirm_two_factor(bearer(
            pb::ConfirmTwoFactorRequest {
                code: totp_code_at(&setup.secret, 0),
            },
            &tokens.access_token,
        ))
        .await
        .expect("confirm");
    let user = app
        .auth()
        .disable_two_factor(bearer(
            pb::DisableTwoFactorRequest {
                password: password.clone(),
                code: setup.backup_codes[0].clone(),
            },
            &tokens.access_token,
        ))
        .await
        .expect("disable with the non-ASCII password")
        .into_inner()
        .user
        .unwrap();
    assert!(!user.two_factor_enabled);
}

#[tokio::test]
async fn register_refuses_unknown_and_malformed_referral_codes() {
    let app = spawn_app().await;
    let cases: Vec<(&str, String)> = vec![
        ("unknown", "ZZZZZZZZ".into()),
        ("unknown, lower case", "zzzzzzzz".into()),
        ("17 characters", "A".repeat(17)),
        ("10 KB", "A".repeat(10 * 1024)),
        ("a NUL byte", "AB\u{0}CDEFG".into()),
        ("punctuation", "'; DROP TABLE users; --".into()),
        ("non-ASCII", "ÄÖÜ12345".into()),
    ];
    for (what, code) in cases {
        let email = unique_email();
        assert_refused_register(
            try_register(&app, &email, PASSWORD, &code).await,
            &["referral_code"],
        );
        assert_eq!(count_rows(&app, "users").await, 0, "{what}: no row written");
        let status = try_login(&app, &email, PASSWORD).await.expect_err(what);
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn a_request_over_the_message_limit_is_refused_and_the_server_carries_on() {
    // 2 MB of password: tonic refuses the message (limit 1 MB) before any handler runs.
    let app = spawn_app().await;
    let status = try_register(&app, &unique_email(), &"p1".repeat(1024 * 1024), "")
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.metadata().get("x-process-time").is_some());
    assert_eq!(count_rows(&app, "users").await, 0);
    // The connection and the server are fine afterwards.
    app.register().await;
    assert_eq!(count_rows(&app, "users").await, 1);
}

#[tokio::test]
async fn register_with_another_accounts_referral_code_succeeds() {
    let app = spawn_app().await;
    let referrer_email = unique_email();
    let referrer = try_register(&app, &referrer_email, PASSWORD, "")
        .await
        .expect("referrer");
    assert_eq!(referrer.referral_code.len(), 8);

    // Codes are read without letter case or surrounding spaces.
    let code = format!("  {}  ", referrer.referral_code.to_lowercase());
    let referred = try_register(&app, &unique_email(), PASSWORD, &code)
        .await
        .expect("a known referral code is accepted");
    assert_ne!(referred.referral_code, referrer.referral_code);

    let referrer_id: uuid::Uuid = referrer.name["users/".len()..].parse().unwrap();
    let referred_id: uuid::Uuid = referred.name["users/".len()..].parse().unwrap();
    let row = users::Entity::find_by_id(referred_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the referred account is stored");
    assert_eq!(row.referred_by, Some(referrer_id));
    let row = users::Entity::find_by_id(referrer_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.referred_by, None);
}

#[tokio::test]
async fn register_taken_email_writes_nothing_more() {
    let app = spawn_app().await;
    let email = app.register().await;
    for taken in [email.clone(), email.to_uppercase(), format!(" {email} ")] {
        let status = try_register(&app, &taken, "another password 5", "")
            .await
            .expect_err("taken");
        assert_error(&status, Code::AlreadyExists, "EMAIL_TAKEN");
    }
    assert_eq!(count_rows(&app, "users").await, 1);
    // The first account's password is untouched.
    try_login(&app, &email, PASSWORD)
        .await
        .expect("original password");
    assert_mail_count_settles(&app, &email, 1).await;
}

// ---------------------------------------------------------------------------------------
// Mail tokens: VerifyEmail, ResendVerificationEmail, RequestPasswordReset, ResetPassword
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn verify_email_refuses_empty_garbage_oversized_expired_reused_and_foreign_tokens() {
    let app = spawn_app().await;
    let email = app.register().await;
    let session = app.login(&email).await;
    // Mail 1 first, so that later mails keep their numbers.
    let token = app.nth_token_to(&email, 1).await;
    let verify = |token: String| {
        let mut auth = app.auth();
        async move { auth.verify_email(pb::VerifyEmailRequest { token }).await }
    };

    for empty in ["", "   "] {
        let status = verify(empty.into()).await.expect_err("empty");
        assert_invalid_fields(&status, &["token"]);
    }
    for oversized in ["x".repeat(1000), "x".repeat(100 * 1024)] {
        let status = verify(oversized).await.expect_err("oversized");
        assert_invalid_fields(&status, &["token"]);
    }
    for garbage in [
        "not-a-token",
        "0000000000000000000000000000000000000000000",
        "'; DELETE FROM mail_tokens; --",
        "tok\u{0}en",
        "токен",
    ] {
        let status = verify(garbage.into()).await.expect_err(garbage);
        assert_token_refused(&status, "TOKEN_INVALID");
    }

    // A password-reset token is not a verification token.
    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.clone(),
        })
        .await
        .expect("request reset");
    let reset_token = token_in(app.nth_mail_to(&email, 2).await["text"].as_str().unwrap());
    let status = verify(reset_token.clone())
        .await
        .expect_err("wrong purpose");
    assert_token_refused(&status, "TOKEN_INVALID");

    // Expired.
    expire_mail_token(&app, &token).await;
    let status = verify(token).await.expect_err("expired");
    assert_token_refused(&status, "TOKEN_EXPIRED");
    assert!(
        !get_me(&app, &session.access_token)
            .await
            .unwrap()
            .email_verified
    );

    // A fresh one works once.
    app.auth()
        .resend_verification_email(pb::ResendVerificationEmailRequest {
            email: email.clone(),
        })
        .await
        .expect("resend");
    let token = app.nth_token_to(&email, 3).await;
    let user = verify(token.clone())
        .await
        .expect("fresh token verifies")
        .into_inner()
        .user
        .unwrap();
    assert!(user.email_verified);
    let status = verify(token).await.expect_err("reused");
    assert_token_refused(&status, "TOKEN_ALREADY_USED");
    // The reset token was never spent by the refused attempt: it still resets.
    app.auth()
        .reset_password(pb::ResetPasswordRequest {
            token: reset_token,
            new_password: "a brand new passphrase 7".into(),
        })
        .await
        .expect("reset token unaffected");
}

#[tokio::test]
async fn resend_verification_email_supersedes_the_first_and_hides_unknown_addresses() {
    let app = spawn_app().await;
    let email = app.register().await;
    let first = app.nth_token_to(&email, 1).await;

    let resend = |email: String| {
        let mut auth = app.auth();
        async move {
            auth.resend_verification_email(pb::ResendVerificationEmailRequest { email })
                .await
        }
    };
    let known = resend(email.to_uppercase())
        .await
        .expect("resend")
        .into_inner();
    let second = app.nth_token_to(&email, 2).await;
    assert_ne!(first, second, "a new mail carries a new token");
    let mail = app.nth_mail_to(&email, 2).await;
    assert_eq!(mail["subject"], "Confirm your email address");

    // The first token is superseded; the second verifies.
    let status = app
        .auth()
        .verify_email(pb::VerifyEmailRequest {
            token: first.clone(),
        })
        .await
        .expect_err("superseded");
    assert_token_refused(&status, "TOKEN_ALREADY_USED");
    let user = app
        .auth()
        .verify_email(pb::VerifyEmailRequest {
            token: second.clone(),
        })
        .await
        .expect("the new token works")
        .into_inner()
        .user
        .unwrap();
    assert!(user.email_verified);
    let status = app
        .auth()
        .verify_email(pb::VerifyEmailRequest { token: first })
        .await
        .expect_err("still refused");
    assert_token_refused(&status, "TOKEN_ALREADY_USED");

    // Unknown and already-verified addresses get the same answer, and no mail.
    let unknown = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());
    let answer = resend(unknown.clone())
        .await
        .expect("same answer")
        .into_inner();
    assert_eq!(answer, known);
    let answer = resend(email.clone())
        .await
        .expect("same answer")
        .into_inner();
    assert_eq!(answer, known);
    assert_mail_count_settles(&app, &unknown, 0).await;
    assert_mail_count_settles(&app, &email, 2).await;

    // Malformed addresses are refused as such.
    for bad in [
        "",
        "nobody",
        &format!("{}@example.com", "a".repeat(10 * 1024)),
    ] {
        let status = resend(bad.to_owned()).await.expect_err("malformed");
        assert_invalid_fields(&status, &["email"]);
    }
}

#[tokio::test]
async fn request_password_reset_refuses_malformed_emails_and_hides_unknown_ones() {
    let app = spawn_app().await;
    for bad in ["", "no-at-sign", "a b@example.com", "someone@example"] {
        let status = app
            .auth()
            .request_password_reset(pb::RequestPasswordResetRequest { email: bad.into() })
            .await
            .expect_err(bad);
        assert_invalid_fields(&status, &["email"]);
    }
    let unknown = unique_email();
    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: unknown.clone(),
        })
        .await
        .expect("same answer for unknown");
    assert_mail_count_settles(&app, &unknown, 0).await;
    assert_eq!(count_rows(&app, "mail_tokens").await, 0);
}

#[tokio::test]
async fn reset_password_refuses_bad_tokens_and_weak_passwords_without_spending_the_token() {
    let app = spawn_app().await;
    let email = format!("pw1-{}@example.com", uuid::Uuid::new_v4().simple());
    try_register(&app, &email, PASSWORD, "")
        .await
        .expect("register");
    let verification = app.nth_token_to(&email, 1).await;
    let reset = |token: String, new_password: &str| {
        let mut auth = app.auth();
        let new_password = new_password.to_owned();
        async move {
            auth.reset_password(pb::ResetPasswordRequest {
                token,
                new_password,
            })
            .await
        }
    };
    const NEW: &str = "a brand new passphrase 7";

    for empty in ["", "  "] {
        let status = reset(empty.into(), NEW).await.expect_err("empty token");
        assert_invalid_fields(&status, &["token"]);
    }
    let status = reset("t".repeat(1000), NEW).await.expect_err("oversized");
    assert_invalid_fields(&status, &["token"]);
    let status = reset("garbage".into(), NEW).await.expect_err("garbage");
    assert_token_refused(&status, "TOKEN_INVALID");
    // The verification token is not a reset token.
    let status = reset(verification.clone(), NEW)
        .await
        .expect_err("wrong purpose");
    assert_token_refused(&status, "TOKEN_INVALID");

    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.clone(),
        })
        .await
        .unwrap();
    let token = app.nth_token_to(&email, 2).await;
    // Weak new passwords are refused before the token is spent.
    for weak in [
        String::new(),
        "short1".into(),
        "no digits at all".into(),
        "12345678901".into(),
        format!("{}1", "a".repeat(128)),
        format!("{}1", "a".repeat(100 * 1024)),
        email.clone(),
        email.to_uppercase(),
    ] {
        let status = reset(token.clone(), &weak)
            .await
            .expect_err("weak password");
        assert_invalid_fields(&status, &["new_password"]);
    }
    try_login(&app, &email, PASSWORD)
        .await
        .expect("the old password still works after refusals");

    // A second request supersedes the first token.
    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.clone(),
        })
        .await
        .unwrap();
    let newer = app.nth_token_to(&email, 3).await;
    let status = reset(token, NEW).await.expect_err("superseded");
    assert_token_refused(&status, "TOKEN_ALREADY_USED");

    // Expired.
    expire_mail_token(&app, &newer).await;
    let status = reset(newer, NEW).await.expect_err("expired");
    assert_token_refused(&status, "TOKEN_EXPIRED");
    try_login(&app, &email, PASSWORD)
        .await
        .expect("still the old password");

    // A fresh one works once; the verification token was never spent by the attempts.
    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.clone(),
        })
        .await
        .unwrap();
    let fresh = app.nth_token_to(&email, 4).await;
    reset(fresh.clone(), NEW).await.expect("reset");
    let status = reset(fresh, "yet another passphrase 9")
        .await
        .expect_err("reused");
    assert_token_refused(&status, "TOKEN_ALREADY_USED");
    try_login(&app, &email, NEW)
        .await
        .expect("the new password");
    app.auth()
        .verify_email(pb::VerifyEmailRequest {
            token: verification,
        })
        .await
        .expect("verification token unaffected");
}

// ---------------------------------------------------------------------------------------
// Login, RefreshToken, Logout
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn login_refuses_malformed_and_oversized_fields() {
    let app = spawn_app().await;
    let email = app.register().await;
    let login = |email: &str, password: &str, totp_code: &str| {
        let mut auth = app.auth();
        let request = pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            totp_code: totp_code.into(),
        };
        async move { auth.login(request).await }
    };
    let cases: Vec<(String, String, String, Vec<&str>)> = vec![
        (String::new(), PASSWORD.into(), String::new(), vec!["email"]),
        (
            "not-an-email".into(),
            PASSWORD.into(),
            String::new(),
            vec!["email"],
        ),
        (
            format!("{}@example.com", "a".repeat(10 * 1024)),
            PASSWORD.into(),
            String::new(),
            vec!["email"],
        ),
        (
            email.clone(),
            String::new(),
            String::new(),
            vec!["password"],
        ),
        (email.clone(), "   ".into(), String::new(), vec!["password"]),
        (
            email.clone(),
            format!("{}1", "a".repeat(100 * 1024)),
            String::new(),
            vec!["password"],
        ),
        (
            email.clone(),
            PASSWORD.into(),
            "1".repeat(33),
            vec!["totp_code"],
        ),
        (
            String::new(),
            String::new(),
            String::new(),
            vec!["email", "password"],
        ),
    ];
    for (email, password, code, fields) in cases {
        let status = login(&email, &password, &code).await.expect_err("refused");
        assert_invalid_fields(&status, &fields);
    }
    assert_eq!(
        count_rows(&app, "sessions").await,
        0,
        "no session was opened"
    );
    // A password one character off is wrong credentials, not bad input.
    let status = login(&email, "correct horse 43", "")
        .await
        .expect_err("wrong");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(count_rows(&app, "sessions").await, 0);
}

#[tokio::test]
async fn refresh_token_refuses_empty_garbage_expired_and_reused_tokens() {
    let app = spawn_app().await;
    let email = app.register().await;
    let refresh = |refresh_token: String| {
        let mut auth = app.auth();
        async move {
            auth.refresh_token(pb::RefreshTokenRequest { refresh_token })
                .await
        }
    };
    for empty in ["", " "] {
        let status = refresh(empty.into()).await.expect_err("empty");
        assert_invalid_fields(&status, &["refresh_token"]);
    }
    for oversized in ["r".repeat(1000), "r".repeat(100 * 1024)] {
        let status = refresh(oversized).await.expect_err("oversized");
        assert_invalid_fields(&status, &["refresh_token"]);
    }
    let tokens = app.login(&email).await;
    for garbage in [
        "garbage".to_owned(),
        "x".repeat(43),
        "tok\u{0}en".to_owned(),
        // An access token is not a refresh token.
        tokens.access_token.clone(),
    ] {
        let status = refresh(garbage).await.expect_err("garbage");
        assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
    }

    // Expired.
    expire_refresh_token(&app, &tokens.refresh_token).await;
    let status = refresh(tokens.refresh_token.clone())
        .await
        .expect_err("expired");
    assert_error(&status, Code::Unauthenticated, "TOKEN_EXPIRED");

    // Reused: the second use is refused and ends the session.
    let tokens = app.login(&email).await;
    let next = refresh(tokens.refresh_token.clone())
        .await
        .expect("first use")
        .into_inner()
        .tokens
        .unwrap();
    let status = refresh(tokens.refresh_token.clone())
        .await
        .expect_err("reused");
    assert_error(&status, Code::Unauthenticated, "TOKEN_REUSED");
    let status = refresh(next.refresh_token).await.expect_err("family ended");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
    // Reusing it once more still reports the session as ended, never INTERNAL.
    let status = refresh(tokens.refresh_token).await.expect_err("again");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
}

#[tokio::test]
async fn logout_without_credentials_or_with_foreign_and_garbage_tokens_is_refused() {
    let app = spawn_app().await;
    let (email_a, _) = app.signed_in().await;
    let a = app.login(&email_a).await;
    let (_, token_b) = app.signed_in().await;
    let logout = |request: Request<pb::LogoutRequest>| {
        let mut auth = app.auth();
        async move { auth.logout(request).await }
    };
    let body = |refresh_token: &str, all_sessions: bool| pb::LogoutRequest {
        refresh_token: refresh_token.into(),
        all_sessions,
    };

    // Neither credentials nor a refresh token: nothing says whose session to end.
    for all_sessions in [false, true] {
        let status = logout(Request::new(body("", all_sessions)))
            .await
            .expect_err("anonymous");
        assert_error(&status, Code::Unauthenticated, "UNAUTHENTICATED");
    }
    let status = logout(Request::new(body("garbage", false)))
        .await
        .expect_err("garbage");
    assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
    let status = logout(Request::new(body(&"r".repeat(1000), false)))
        .await
        .expect_err("oversized");
    assert_invalid_fields(&status, &["refresh_token"]);

    // B cannot end A's session with A's refresh token.
    let status = logout(bearer(body(&a.refresh_token, false), &token_b))
        .await
        .expect_err("not B's session");
    assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
    let status = logout(bearer(body(&a.refresh_token, true), &token_b))
        .await
        .expect_err("not B's account");
    assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
    get_me(&app, &a.access_token)
        .await
        .expect("A's session is untouched");
    get_me(&app, &token_b).await.expect("B's session too");

    // With an API key, there is no "this session": a refresh token or all_sessions is needed.
    let (_, key) = create_key(&app, &token_b, "logout").await;
    let status = logout(with_key(body("", false), &key))
        .await
        .expect_err("key without refresh token");
    assert_invalid_fields(&status, &["refresh_token"]);
    get_me(&app, &token_b).await.expect("nothing ended");
    logout(with_key(body("", true), &key))
        .await
        .expect("every session of the key's account");
    let status = get_me(&app, &token_b).await.expect_err("ended");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
    get_me(&app, &a.access_token)
        .await
        .expect("the other account is untouched");
    // A's refresh token still rotates: B's attempts never touched it.
    app.auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: a.refresh_token,
        })
        .await
        .expect("A's refresh token");
}

// ---------------------------------------------------------------------------------------
// Credentials: API keys and access tokens on any RPC
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn revoked_malformed_and_ambiguous_credentials_are_refused_everywhere() {
    let app = spawn_app().await;
    let (email, token) = app.signed_in().await;
    let (key, secret) = create_key(&app, &token, "soon revoked").await;
    app.auth()
        .get_me(with_key(pb::GetMeRequest {}, &secret))
        .await
        .expect("works before revocation");
    app.auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: key.name.clone(),
            },
            &token,
        ))
        .await
        .expect("revoke");

    // A revoked key is refused on every RPC that needs credentials.
    let mut auth = app.auth();
    let statuses = [
        auth.get_me(with_key(pb::GetMeRequest {}, &secret))
            .await
            .expect_err("get me"),
        auth.list_api_keys(with_key(pb::ListApiKeysRequest::default(), &secret))
            .await
            .expect_err("list"),
        auth.create_api_key(with_key(
            pb::CreateApiKeyRequest {
                display_name: "replacement".into(),
            },
            &secret,
        ))
        .await
        .expect_err("create"),
        auth.revoke_api_key(with_key(
            pb::RevokeApiKeyRequest {
                name: key.name.clone(),
            },
            &secret,
        ))
        .await
        .expect_err("revoke"),
    ];
    for status in &statuses {
        assert_error(status, Code::Unauthenticated, "API_KEY_REVOKED");
    }
    // Public RPCs ignore credentials that fail: the caller is simply anonymous there.
    auth.login(with_key(
        pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            totp_code: String::new(),
        },
        &secret,
    ))
    .await
    .expect("login with a stale key attached");
    assert_eq!(
        list_keys(&app, &token, pb::ListApiKeysRequest::default())
            .await
            .unwrap()
            .api_keys
            .len(),
        0,
        "the revoked key created nothing"
    );

    // Malformed and unknown keys.
    let well_formed_unknown = format!("nsk_{}", "A".repeat(43));
    let wrong_prefix = secret.replacen("nsk_", "nsx_", 1);
    let one_short = secret[..secret.len() - 1].to_owned();
    let bad_char = format!("{}!", &secret[..secret.len() - 1]);
    let oversized = format!("nsk_{}", "a".repeat(10 * 1024));
    for key in [
        "",
        "nsk_",
        "nsk_short",
        well_formed_unknown.as_str(),
        wrong_prefix.as_str(),
        one_short.as_str(),
        bad_char.as_str(),
        oversized.as_str(),
    ] {
        let status = app
            .auth()
            .get_me(with_key(pb::GetMeRequest {}, key))
            .await
            .expect_err(key);
        assert_error(&status, Code::Unauthenticated, "API_KEY_INVALID");
    }

    // Malformed authorization headers.
    for header in [
        "Bearer",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "token-without-scheme",
    ] {
        let mut request = Request::new(pb::GetMeRequest {});
        request
            .metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let status = app.auth().get_me(request).await.expect_err(header);
        assert_error(&status, Code::Unauthenticated, "CREDENTIALS_MALFORMED");
    }
    // Header bytes that are not text.
    for name in ["x-api-key", "authorization"] {
        let mut request = Request::new(pb::GetMeRequest {});
        let value = AsciiMetadataValue::try_from(&b"Bearer nsk_\xff\xfe"[..]).expect("obs-text");
        request.metadata_mut().insert(name, value);
        let status = app.auth().get_me(request).await.expect_err(name);
        assert_error(&status, Code::Unauthenticated, "CREDENTIALS_MALFORMED");
    }

    // Bad access tokens: oversized, signed by someone else, not a JWT at all.
    let foreign = {
        let signer = namaskah_server::identity::domain::TokenSigner::new(
            b"someone else's secret, 32 bytes!",
        );
        let now = Utc::now().timestamp();
        let me: uuid::Uuid = get_me(&app, &token).await.unwrap().name["users/".len()..]
            .parse()
            .unwrap();
        signer.sign(&namaskah_server::identity::domain::AccessClaims {
            sub: me,
            sid: uuid::Uuid::now_v7(),
            iat: now,
            exp: now + 600,
            tfa: true,
        })
    };
    let mut tampered = token.clone();
    tampered.push('A');
    for bad in [
        "t".repeat(1000),
        foreign,
        tampered,
        "a.b.c".into(),
        "eyJhbGciOiJub25lIn0.e30.".into(),
        secret.clone(),
    ] {
        let status = get_me(&app, &bad).await.expect_err("bad token");
        assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
    }

    // Both kinds at once are ambiguous, even when both are valid (public RPCs ignore them).
    let (_, live_secret) = create_key(&app, &token, "live").await;
    let both = |mut request: Request<pb::GetMeRequest>| {
        request
            .metadata_mut()
            .insert("x-api-key", live_secret.parse().unwrap());
        request
    };
    let status = app
        .auth()
        .get_me(both(bearer(pb::GetMeRequest {}, &token)))
        .await
        .expect_err("ambiguous");
    assert_error(&status, Code::Unauthenticated, "CREDENTIALS_AMBIGUOUS");
    let mut login = bearer(
        pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            totp_code: String::new(),
        },
        &token,
    );
    login
        .metadata_mut()
        .insert("x-api-key", live_secret.parse().unwrap());
    app.auth()
        .login(login)
        .await
        .expect("a public RPC ignores the ambiguous credentials");

    // And each one alone still works.
    get_me(&app, &token).await.expect("token alone");
    app.auth()
        .get_me(with_key(pb::GetMeRequest {}, &live_secret))
        .await
        .expect("key alone");
}

// ---------------------------------------------------------------------------------------
// API keys: create, list, revoke
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_api_key_refuses_bad_display_names() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in().await;
    for bad in [
        String::new(),
        "   ".into(),
        "k".repeat(65),
        "é".repeat(65),
        "k".repeat(10 * 1024),
        "line\nbreak".into(),
        "nul\u{0}byte".into(),
    ] {
        let status = app
            .auth()
            .create_api_key(bearer(
                pb::CreateApiKeyRequest {
                    display_name: bad.clone(),
                },
                &token,
            ))
            .await
            .expect_err("bad display name");
        assert_invalid_fields(&status, &["display_name"]);
    }
    assert_eq!(count_rows(&app, "api_keys").await, 0, "nothing written");

    // 64 characters is fine, ASCII or not, and is kept as given (trimmed).
    for good in [
        "k".repeat(64),
        "é".repeat(64),
        format!("  {}  ", "ключ".repeat(16)),
    ] {
        let (key, _) = create_key(&app, &token, &good).await;
        assert_eq!(key.display_name, good.trim());
    }
    assert_eq!(count_rows(&app, "api_keys").await, 3);
}

#[tokio::test]
async fn revoke_api_key_refuses_malformed_names_and_unknown_keys() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in().await;
    let (key, secret) = create_key(&app, &token, "target").await;
    let id = &key.name["apiKeys/".len()..];
    let revoke = |name: String| {
        let mut auth = app.auth();
        let request = bearer(pb::RevokeApiKeyRequest { name }, &token);
        async move { auth.revoke_api_key(request).await }
    };
    for bad in [
        String::new(),
        "apiKeys".into(),
        "apiKeys/".into(),
        "apiKeys/not-a-uuid".into(),
        id.to_owned(),
        format!("users/{id}"),
        format!("apikeys/{id}"),
        format!("apiKeys/{id}/extra"),
        format!("apiKeys/{}", "a".repeat(10 * 1024)),
    ] {
        let status = revoke(bad.clone()).await.expect_err("malformed name");
        assert_invalid_fields(&status, &["name"]);
    }
    let status = revoke(format!("apiKeys/{}", uuid::Uuid::now_v7()))
        .await
        .expect_err("unknown");
    assert_error(&status, Code::NotFound, "API_KEY_NOT_FOUND");
    app.auth()
        .get_me(with_key(pb::GetMeRequest {}, &secret))
        .await
        .expect("the key survived every refused attempt");

    // Revoking twice returns the key unchanged.
    let first = revoke(key.name.clone())
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    let second = revoke(key.name.clone())
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    assert!(first.revoke_time.is_some());
    assert_eq!(first, second);
}

#[tokio::test]
async fn list_api_keys_refuses_bad_paging_and_pages_newest_first() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in().await;
    let mut created = Vec::new();
    for i in 1..=5 {
        created.push(create_key(&app, &token, &format!("key {i}")).await.0.name);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    for page_size in [-1, -100, i32::MIN] {
        let status = list_keys(
            &app,
            &token,
            pb::ListApiKeysRequest {
                page_size,
                ..Default::default()
            },
        )
        .await
        .expect_err("negative page size");
        assert_invalid_fields(&status, &["page_size"]);
    }
    use base64::Engine;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for page_token in [
        "garbage!".to_owned(),
        "bm90IGEgdG9rZW4".into(),
        "p".repeat(10 * 1024),
        b64(format!("verifications:{}", uuid::Uuid::now_v7())),
        b64("apikeys:not-a-uuid".into()),
        b64("apikeys".into()),
    ] {
        let status = list_keys(
            &app,
            &token,
            pb::ListApiKeysRequest {
                page_size: 2,
                page_token,
                ..Default::default()
            },
        )
        .await
        .expect_err("bad page token");
        assert_invalid_fields(&status, &["page_token"]);
    }

    // Five keys, two a page: three pages, newest first, each key once.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = Vec::new();
    loop {
        let page = list_keys(
            &app,
            &token,
            pb::ListApiKeysRequest {
                page_size: 2,
                page_token: page_token.clone(),
                show_revoked: false,
            },
        )
        .await
        .expect("page");
        pages.push(page.api_keys.len());
        seen.extend(page.api_keys.into_iter().map(|k| k.name));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "paging never ends");
        page_token = page.next_page_token;
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen, newest_first);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        5,
        "no duplicates"
    );

    // A large page size is capped, not refused; zero means the default.
    for page_size in [0, 1000, i32::MAX] {
        let all = list_keys(
            &app,
            &token,
            pb::ListApiKeysRequest {
                page_size,
                ..Default::default()
            },
        )
        .await
        .expect("capped");
        let names: Vec<String> = all.api_keys.into_iter().map(|k| k.name).collect();
        assert_eq!(names, newest_first);
        assert!(all.next_page_token.is_empty());
    }

    // Revoked keys drop out of the pages unless asked for.
    app.auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: created[2].clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    let first = list_keys(
        &app,
        &token,
        pb::ListApiKeysRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let second = list_keys(
        &app,
        &token,
        pb::ListApiKeysRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let live: Vec<String> = first
        .api_keys
        .iter()
        .chain(&second.api_keys)
        .map(|k| k.name.clone())
        .collect();
    assert_eq!(
        live,
        [&created[4], &created[3], &created[1], &created[0]].map(|s| s.clone())
    );
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn one_account_never_reads_or_changes_another_accounts_keys() {
    let app = spawn_app().await;
    let (_, token_a) = app.signed_in().await;
    let (_, token_b) = app.signed_in().await;
    let mut a_keys = Vec::new();
    for i in 0..3 {
        a_keys.push(create_key(&app, &token_a, &format!("a{i}")).await);
    }
    let (b_key, b_secret) = create_key(&app, &token_b, "b").await;

    // B lists only B's key, with a token or a key, whatever page token it borrows from A.
    let a_page = list_keys(
        &app,
        &token_a,
        pb::ListApiKeysRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!a_page.next_page_token.is_empty());
    for page_token in [String::new(), a_page.next_page_token.clone()] {
        let request = pb::ListApiKeysRequest {
            page_token,
            show_revoked: true,
            ..Default::default()
        };
        let by_token = list_keys(&app, &token_b, request.clone()).await.unwrap();
        let by_key = app
            .auth()
            .list_api_keys(with_key(request, &b_secret))
            .await
            .unwrap()
            .into_inner();
        for listed in [by_token, by_key] {
            let names: Vec<String> = listed.api_keys.into_iter().map(|k| k.name).collect();
            assert!(
                names.iter().all(|n| *n == b_key.name),
                "B sees only its own keys: {names:?}"
            );
        }
    }

    // B cannot revoke A's keys, whether calling with a token or a key.
    for (key, _) in &a_keys {
        let status = app
            .auth()
            .revoke_api_key(bearer(
                pb::RevokeApiKeyRequest {
                    name: key.name.clone(),
                },
                &token_b,
            ))
            .await
            .expect_err("not B's");
        assert_error(&status, Code::NotFound, "API_KEY_NOT_FOUND");
        let status = app
            .auth()
            .revoke_api_key(with_key(
                pb::RevokeApiKeyRequest {
                    name: key.name.clone(),
                },
                &b_secret,
            ))
            .await
            .expect_err("not B's");
        assert_error(&status, Code::NotFound, "API_KEY_NOT_FOUND");
    }
    // Nor A revoke B's.
    let status = app
        .auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: b_key.name.clone(),
            },
            &token_a,
        ))
        .await
        .expect_err("not A's");
    assert_error(&status, Code::NotFound, "API_KEY_NOT_FOUND");

    // Everything of A's is as it was, and each key still names its own account.
    let a_listed = list_keys(&app, &token_a, pb::ListApiKeysRequest::default())
        .await
        .unwrap();
    assert_eq!(a_listed.api_keys.len(), 3);
    assert!(a_listed.api_keys.iter().all(|k| k.revoke_time.is_none()));
    let a_me = get_me(&app, &token_a).await.unwrap();
    for (_, secret) in &a_keys {
        let me = app
            .auth()
            .get_me(with_key(pb::GetMeRequest {}, secret))
            .await
            .expect("A's key works")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(me.name, a_me.name);
    }
    let b_me = app
        .auth()
        .get_me(with_key(pb::GetMeRequest {}, &b_secret))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_ne!(b_me.name, a_me.name);
}

// ---------------------------------------------------------------------------------------
// Two-factor authentication
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn two_factor_refuses_wrong_codes_and_out_of_order_calls() {
    let app = spawn_app().await;
    let (email, token) = app.signed_in().await;
    let confirm = |code: &str| {
        let mut auth = app.auth();
        let request = bearer(pb::ConfirmTwoFactorRequest { code: code.into() }, &token);
        async move { auth.confirm_two_factor(request).await }
    };
    let disable = |password: &str, code: &str| {
        let mut auth = app.auth();
        let request = bearer(
            pb::DisableTwoFactorRequest {
                password: password.into(),
                code: code.into(),
            },
            &token,
        );
        async move { auth.disable_two_factor(request).await }
    };

    // Codes that are not six digits are bad input, before or after setup.
    let not_six_digits = [
        "",
        "12345",
        "1234567",
        "abcdef",
        "12 345",
        "１２３４５６",
        &"9".repeat(10 * 1024),
    ];
    for code in not_six_digits {
        let status = confirm(code).await.expect_err("not six digits");
        assert_invalid_fields(&status, &["code"]);
    }
    // Before setup there is nothing to confirm.
    let status = confirm("123456").await.expect_err("not set up");
    assert_error(&status, Code::FailedPrecondition, "TWO_FACTOR_NOT_SET_UP");
    // Nor anything to disable.
    let status = disable(PASSWORD, "123456").await.expect_err("not enabled");
    assert_error(&status, Code::FailedPrecondition, "TWO_FACTOR_NOT_ENABLED");

    let stale = app
        .auth()
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    for code in not_six_digits {
        let status = confirm(code).await.expect_err("not six digits");
        assert_invalid_fields(&status, &["code"]);
    }
    let status = confirm(&wrong_totp_code(&stale.secret))
        .await
        .expect_err("wrong code");
    assert_error(&status, Code::PermissionDenied, "INVALID_TOTP_CODE");
    // A backup code is not accepted to confirm (the app must be proven to work).
    let status = confirm(&stale.backup_codes[0])
        .await
        .expect_err("backup code");
    assert_invalid_fields(&status, &["code"]);

    // Setting up again replaces the pending secret: the first one's codes stop working.
    let setup = app
        .auth()
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(setup.secret, stale.secret);
    let stale_code = totp_code_at(&stale.secret, 0);
    if (-1..=1).all(|step| totp_code_at(&setup.secret, step) != stale_code) {
        let status = confirm(&stale_code).await.expect_err("replaced secret");
        assert_error(&status, Code::PermissionDenied, "INVALID_TOTP_CODE");
    }
    let me = get_me(&app, &token).await.unwrap();
    assert!(!me.two_factor_enabled, "nothing turned on by refused codes");
    app.login(&email).await;

    confirm(&totp_code_at(&setup.secret, 0))
        .await
        .expect("confirm with the current secret");
    let status = confirm(&totp_code_at(&setup.secret, 1))
        .await
        .expect_err("already on");
    assert_error(
        &status,
        Code::FailedPrecondition,
        "TWO_FACTOR_ALREADY_ENABLED",
    );
    let status = app
        .auth()
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &token))
        .await
        .expect_err("already on");
    assert_error(
        &status,
        Code::FailedPrecondition,
        "TWO_FACTOR_ALREADY_ENABLED",
    );
    // The backup codes of the replaced setup never became valid.
    let status = disable(PASSWORD, &stale.backup_codes[0])
        .await
        .expect_err("stale backup code");
    assert_error(&status, Code::PermissionDenied, "INVALID_TOTP_CODE");

    // Login: a wrong code, a stale backup code, an oversized code.
    let login = |code: String| {
        let mut auth = app.auth();
        let request = pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            totp_code: code,
        };
        async move { auth.login(request).await }
    };
    for code in [
        wrong_totp_code(&setup.secret),
        stale.backup_codes[1].clone(),
        "AAAAA-AAAAA".into(),
    ] {
        let status = login(code).await.expect_err("wrong second factor");
        assert_error(&status, Code::Unauthenticated, "INVALID_TOTP_CODE");
    }
    let status = login("1".repeat(33)).await.expect_err("oversized");
    assert_invalid_fields(&status, &["totp_code"]);
    // A wrong password with a right code is still wrong credentials.
    let status = app
        .auth()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: "wrong password 1".into(),
            totp_code: setup.backup_codes[9].clone(),
        })
        .await
        .expect_err("wrong password");
    assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");

    // Disable: missing fields, wrong code, then for real; then not enabled any more.
    let status = disable("", "").await.expect_err("empty");
    assert_invalid_fields(&status, &["password", "code"]);
    let status = disable(PASSWORD, &"1".repeat(33))
        .await
        .expect_err("oversized");
    assert_invalid_fields(&status, &["code"]);
    let status = disable(
        &format!("{}1", "a".repeat(100 * 1024)),
        &setup.backup_codes[0],
    )
    .await
    .expect_err("oversized password");
    assert_invalid_fields(&status, &["password"]);
    let status = disable(PASSWORD, &wrong_totp_code(&setup.secret))
        .await
        .expect_err("wrong code");
    assert_error(&status, Code::PermissionDenied, "INVALID_TOTP_CODE");
    assert!(get_me(&app, &token).await.unwrap().two_factor_enabled);
    disable(PASSWORD, &setup.backup_codes[0])
        .await
        .expect("disable");
    let status = disable(PASSWORD, &setup.backup_codes[1])
        .await
        .expect_err("not on");
    assert_error(&status, Code::FailedPrecondition, "TWO_FACTOR_NOT_ENABLED");
    // The backup codes died with it, and logins need no code again.
    assert_eq!(count_rows(&app, "backup_codes").await, 0);
    app.login(&email).await;
}
