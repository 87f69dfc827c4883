//! AuthService end to end: registration, mail tokens, sessions, API keys and 2FA.
mod common;

use common::*;
use namaskah_proto::v1 as pb;
use tonic::Code;

fn totp_now(secret: &str, offset_steps: i64) -> String {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    let now = chrono::Utc::now().timestamp() + offset_steps * 30;
    totp.generate(now as u64).to_string()
}

#[tokio::test]
async fn register_verify_login_get_me() {
    let app = spawn_app().await;
    let email = unique_email();
    let mixed_case = email.to_uppercase().replace("EXAMPLE.COM", "Example.com");
    let user = app
        .auth()
        .register(pb::RegisterRequest {
            email: mixed_case.clone(),
            password: PASSWORD.into(),
            referral_code: String::new(),
        })
        .await
        .expect("register")
        .into_inner()
        .user
        .unwrap();
    assert!(user.name.starts_with("users/"));
    assert!(!user.email_verified);
    assert_eq!(user.plan(), pb::PlanTier::Starter);
    assert_eq!(user.role(), pb::UserRole::Customer);
    assert_eq!(user.referral_code.len(), 8);

    // Emails are unique whatever their letter case.
    let taken = app
        .auth()
        .register(pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            referral_code: String::new(),
        })
        .await
        .expect_err("duplicate");
    assert_error(&taken, Code::AlreadyExists, "EMAIL_TAKEN");

    let token = app.nth_token_to(&mixed_case, 1).await;
    let verified = app
        .auth()
        .verify_email(pb::VerifyEmailRequest {
            token: token.clone(),
        })
        .await
        .expect("verify")
        .into_inner()
        .user
        .unwrap();
    assert!(verified.email_verified);
    let again = app
        .auth()
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .expect_err("token reuse");
    assert_error(&again, Code::InvalidArgument, "TOKEN_ALREADY_USED");

    // Login with any letter case.
    let login = app
        .auth()
        .login(pb::LoginRequest {
            email: email.to_lowercase(),
            password: PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .expect("login")
        .into_inner();
    let tokens = login.tokens.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    let me = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &tokens.access_token))
        .await
        .expect("get me")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.name, user.name);
    assert!(me.email_verified);
    assert_eq!(me.email, mixed_case);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = spawn_app().await;
    let email = app.register().await;
    for (email, password) in [
        (email.as_str(), "wrong password 1"),
        ("nobody-here@example.com", PASSWORD),
    ] {
        let status = app
            .auth()
            .login(pb::LoginRequest {
                email: email.into(),
                password: password.into(),
                totp_code: String::new(),
            })
            .await
            .expect_err("refused");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
        assert_eq!(status.message(), "the email or password is wrong");
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let email = app.register().await;
    let first = app.login(&email).await;
    let second = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, &second.access_token))
        .await
        .expect("new access token works");

    // The spent token comes back: the whole session ends.
    let reuse = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: first.refresh_token,
        })
        .await
        .expect_err("reuse");
    assert_error(&reuse, Code::Unauthenticated, "TOKEN_REUSED");
    let after = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: second.refresh_token,
        })
        .await
        .expect_err("family revoked");
    assert_error(&after, Code::Unauthenticated, "SESSION_REVOKED");
    for token in [&first.access_token, &second.access_token] {
        let status = app
            .auth()
            .get_me(bearer(pb::GetMeRequest {}, token))
            .await
            .expect_err("access tokens of the session stop working");
        assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
    }
    // Another session of the same account is untouched.
    let other = app.login(&email).await;
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, &other.access_token))
        .await
        .expect("other session works");
}

#[tokio::test]
async fn expired_access_tokens_are_refused() {
    let app = spawn_app_with(&[
        ("NAMASKAH_ACCESS_TOKEN_TTL", "2s"),
        ("NAMASKAH_REFRESH_TOKEN_TTL", "1h"),
    ])
    .await;
    let email = app.register().await;
    let tokens = app.login(&email).await;
    // Past the advertised expiry (which the server rounds up to a whole second).
    let expiry = tokens.access_token_expire_time.unwrap();
    assert!(expiry.nanos == 0, "expiry on a whole second");
    let wait = expiry.seconds - chrono::Utc::now().timestamp() + 1;
    tokio::time::sleep(std::time::Duration::from_secs(wait.max(0) as u64)).await;
    let status = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &tokens.access_token))
        .await
        .expect_err("expired");
    assert_error(&status, Code::Unauthenticated, "TOKEN_EXPIRED");
    // The refresh token still works and gives a fresh access token.
    let fresh = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: tokens.refresh_token,
        })
        .await
        .expect("refresh")
        .into_inner()
        .tokens
        .unwrap();
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, &fresh.access_token))
        .await
        .expect("fresh token");
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let app = spawn_app().await;
    let email = app.register().await;
    let a = app.login(&email).await;
    let b = app.login(&email).await;
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, &a.access_token))
        .await
        .expect("works before logout");
    app.auth()
        .logout(pb::LogoutRequest {
            refresh_token: a.refresh_token.clone(),
            all_sessions: false,
        })
        .await
        .expect("logout");
    let status = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &a.access_token))
        .await
        .expect_err("ended");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
    let status = app
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: a.refresh_token,
        })
        .await
        .expect_err("ended");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
    app.auth()
        .get_me(bearer(pb::GetMeRequest {}, &b.access_token))
        .await
        .expect("the other session lives");
    // Logging out everywhere with the access token of the remaining session.
    app.auth()
        .logout(bearer(
            pb::LogoutRequest {
                refresh_token: String::new(),
                all_sessions: true,
            },
            &b.access_token,
        ))
        .await
        .expect("logout everywhere");
    let status = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &b.access_token))
        .await
        .expect_err("ended");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
}

#[tokio::test]
async fn api_keys_are_shown_once_work_everywhere_and_revoke() {
    let app = spawn_app().await;
    let (email, token) = app.signed_in().await;
    let created = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "ci runner".into(),
            },
            &token,
        ))
        .await
        .expect("create key")
        .into_inner();
    let secret = created.secret;
    let key = created.api_key.unwrap();
    assert!(secret.starts_with("nsk_"));
    assert!(secret.starts_with(&key.prefix));
    assert!(key.name.starts_with("apiKeys/"));

    let me = app
        .auth()
        .get_me(with_key(pb::GetMeRequest {}, &secret))
        .await
        .expect("key works")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.email, email);

    let listed = app
        .auth()
        .list_api_keys(with_key(pb::ListApiKeysRequest::default(), &secret))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.api_keys.len(), 1);
    assert_eq!(listed.api_keys[0].name, key.name);
    assert_eq!(listed.api_keys[0].display_name, "ci runner");

    // Someone else cannot revoke it.
    let (_, stranger) = app.signed_in().await;
    let status = app
        .auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: key.name.clone(),
            },
            &stranger,
        ))
        .await
        .expect_err("not theirs");
    assert_error(&status, Code::NotFound, "API_KEY_NOT_FOUND");

    let revoked = app
        .auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: key.name.clone(),
            },
            &token,
        ))
        .await
        .expect("revoke")
        .into_inner()
        .api_key
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    let status = app
        .auth()
        .get_me(with_key(pb::GetMeRequest {}, &secret))
        .await
        .expect_err("revoked key");
    assert_error(&status, Code::Unauthenticated, "API_KEY_REVOKED");
    let hidden = app
        .auth()
        .list_api_keys(bearer(pb::ListApiKeysRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(hidden.api_keys.is_empty());
    let shown = app
        .auth()
        .list_api_keys(bearer(
            pb::ListApiKeysRequest {
                show_revoked: true,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.api_keys.len(), 1);
}

#[tokio::test]
async fn two_factor_setup_confirm_login_and_disable() {
    let app = spawn_app().await;
    let (email, token) = app.signed_in().await;
    let setup = app
        .auth()
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &token))
        .await
        .expect("setup")
        .into_inner();
    assert!(setup.otpauth_uri.starts_with("otpauth://totp/"));
    assert!(setup.otpauth_uri.contains(&setup.secret));
    assert_eq!(&setup.qr_code_png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(setup.backup_codes.len(), 10);

    // Not on until confirmed: login still needs no code.
    app.login(&email).await;
    let wrong = app
        .auth()
        .confirm_two_factor(bearer(
            pb::ConfirmTwoFactorRequest {
                code: "000000".into(),
            },
            &token,
        ))
        .await;
    if let Err(status) = wrong {
        assert_error(&status, Code::PermissionDenied, "INVALID_TOTP_CODE");
    } else {
        // 000000 was, by a one-in-a-million chance, the current code.
        return;
    }
    let user = app
        .auth()
        .confirm_two_factor(bearer(
            pb::ConfirmTwoFactorRequest {
                code: totp_now(&setup.secret, 0),
            },
            &token,
        ))
        .await
        .expect("confirm")
        .into_inner()
        .user
        .unwrap();
    assert!(user.two_factor_enabled);

    let login = |code: String| {
        let mut auth = app.auth();
        let email = email.clone();
        async move {
            auth.login(pb::LoginRequest {
                email,
                password: PASSWORD.into(),
                totp_code: code,
            })
            .await
        }
    };
    let status = login(String::new()).await.expect_err("code required");
    assert_error(&status, Code::FailedPrecondition, "TOTP_REQUIRED");
    // The code used to confirm cannot be used again; the next step's code works once.
    let status = login(totp_now(&setup.secret, 0))
        .await
        .expect_err("replayed code");
    assert_error(&status, Code::Unauthenticated, "INVALID_TOTP_CODE");
    let next = totp_now(&setup.secret, 1);
    login(next.clone()).await.expect("fresh code");
    let status = login(next).await.expect_err("same code twice");
    assert_error(&status, Code::Unauthenticated, "INVALID_TOTP_CODE");
    // Backup codes work once each, in any letter case.
    let backup = setup.backup_codes[3].clone();
    login(backup.to_lowercase()).await.expect("backup code");
    let status = login(backup).await.expect_err("backup code reused");
    assert_error(&status, Code::Unauthenticated, "INVALID_TOTP_CODE");

    // Disabling needs the password and a code.
    let status = app
        .auth()
        .disable_two_factor(bearer(
            pb::DisableTwoFactorRequest {
                password: "wrong password 9".into(),
                code: setup.backup_codes[0].clone(),
            },
            &token,
        ))
        .await
        .expect_err("wrong password");
    assert_error(&status, Code::PermissionDenied, "INVALID_CREDENTIALS");
    let user = app
        .auth()
        .disable_two_factor(bearer(
            pb::DisableTwoFactorRequest {
                password: PASSWORD.into(),
                code: setup.backup_codes[0].clone(),
            },
            &token,
        ))
        .await
        .expect("disable")
        .into_inner()
        .user
        .unwrap();
    assert!(!user.two_factor_enabled);
    app.login(&email).await;
}

#[tokio::test]
async fn password_reset_changes_the_password_and_ends_sessions() {
    let app = spawn_app().await;
    let email = app.register().await;
    let session = app.login(&email).await;
    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.clone(),
        })
        .await
        .expect("request reset");
    // Unknown addresses get the same answer and no mail.
    app.auth()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: "nobody-at-all@example.com".into(),
        })
        .await
        .expect("same answer for unknown");
    // Mail 1 is the verification mail; mail 2 the reset.
    let reset = app.nth_mail_to(&email, 2).await;
    assert!(reset["subject"].as_str().unwrap().contains("Reset"));
    let token = token_in(reset["text"].as_str().unwrap());

    let weak = app
        .auth()
        .reset_password(pb::ResetPasswordRequest {
            token: token.clone(),
            new_password: "short".into(),
        })
        .await
        .expect_err("weak password");
    assert_invalid(&weak, "new_password");
    app.auth()
        .reset_password(pb::ResetPasswordRequest {
            token: token.clone(),
            new_password: "a brand new passphrase 7".into(),
        })
        .await
        .expect("reset");
    let reused = app
        .auth()
        .reset_password(pb::ResetPasswordRequest {
            token,
            new_password: "another passphrase 8".into(),
        })
        .await
        .expect_err("token reuse");
    assert_error(&reused, Code::InvalidArgument, "TOKEN_ALREADY_USED");

    let status = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &session.access_token))
        .await
        .expect_err("sessions ended");
    assert_error(&status, Code::Unauthenticated, "SESSION_REVOKED");
    let old = app
        .auth()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .expect_err("old password");
    assert_error(&old, Code::Unauthenticated, "INVALID_CREDENTIALS");
    app.auth()
        .login(pb::LoginRequest {
            email,
            password: "a brand new passphrase 7".into(),
            totp_code: String::new(),
        })
        .await
        .expect("new password");
}

#[tokio::test]
async fn api_keys_cannot_change_how_the_account_is_protected() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in().await;
    let secret = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "integration".into(),
            },
            &token,
        ))
        .await
        .expect("create with a session")
        .into_inner()
        .secret;
    let mut auth = app.auth();
    let refused = [
        auth.create_api_key(with_key(
            pb::CreateApiKeyRequest {
                display_name: "another".into(),
            },
            &secret,
        ))
        .await
        .expect_err("a key minting keys"),
        auth.setup_two_factor(with_key(pb::SetupTwoFactorRequest {}, &secret))
            .await
            .expect_err("a key setting up 2FA"),
        auth.confirm_two_factor(with_key(
            pb::ConfirmTwoFactorRequest {
                code: "123456".into(),
            },
            &secret,
        ))
        .await
        .expect_err("a key confirming 2FA"),
        auth.disable_two_factor(with_key(
            pb::DisableTwoFactorRequest {
                password: PASSWORD.into(),
                code: "123456".into(),
            },
            &secret,
        ))
        .await
        .expect_err("a key disabling 2FA"),
    ];
    for status in &refused {
        assert_error(status, Code::PermissionDenied, "SESSION_REQUIRED");
    }
    let keys = auth
        .list_api_keys(with_key(pb::ListApiKeysRequest::default(), &secret))
        .await
        .expect("a key may list keys")
        .into_inner();
    assert_eq!(keys.api_keys.len(), 1, "no key was minted by a key");
}

#[tokio::test]
async fn public_rpcs_ignore_stale_credentials() {
    let app = spawn_app().await;
    let email = app.register().await;
    let tokens = app.login(&email).await;
    // The web app sends its old (here: unusable) access token along with the refresh.
    let refreshed = app
        .auth()
        .refresh_token(bearer(
            pb::RefreshTokenRequest {
                refresh_token: tokens.refresh_token,
            },
            "an.expired.token",
        ))
        .await
        .expect("refresh with a stale access token attached");
    assert!(refreshed.into_inner().tokens.is_some());
}
