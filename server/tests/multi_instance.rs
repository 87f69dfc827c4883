//! Two server instances of one deployment (one database, one Redis): what one instance
//! changes, the other honours. Needs Redis (`TEST_REDIS_URL`, as in CI): with in-process
//! caches, instances are not meant to share a database.
mod common;

use std::time::Duration;

use common::*;
use namaskah_proto::v1 as pb;
use tonic::Code;

/// Two instances of one deployment, or `None` (with a note) when no Redis is configured.
async fn two_instances() -> Option<(TestApp, TestApp)> {
    let a = spawn_app().await;
    if !a.uses_redis() {
        eprintln!("skipped: set TEST_REDIS_URL to run several instances on one Redis");
        return None;
    }
    let b = a.spawn_peer().await;
    Some((a, b))
}

/// Polls `check` until it returns true, for at most two seconds: invalidations travel over
/// Redis pub/sub, so the other instance learns of them a moment later.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not reach the other instance");
}

/// Polls GetMe on `instance` with `credentials` until it is refused, which must then be
/// `UNAUTHENTICATED` with `reason`.
async fn eventually_refused(
    what: &str,
    instance: &TestApp,
    credentials: impl Fn() -> tonic::Request<pb::GetMeRequest>,
    reason: &str,
) {
    eventually(what, || {
        let mut auth = instance.auth();
        let request = credentials();
        async move {
            match auth.get_me(request).await {
                Err(status) => {
                    assert_error(&status, Code::Unauthenticated, reason);
                    true
                }
                Ok(_) => false,
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_key_revoked_on_one_instance_is_refused_by_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let (_, token) = a.signed_in().await;
    let created = a
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "shared".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    // Instance B authenticates the key (and now holds it in its near cache).
    for _ in 0..3 {
        b.auth()
            .get_me(with_key(pb::GetMeRequest {}, &created.secret))
            .await
            .expect("B accepts the key");
    }
    a.auth()
        .revoke_api_key(bearer(
            pb::RevokeApiKeyRequest {
                name: created.api_key.unwrap().name,
            },
            &token,
        ))
        .await
        .expect("revoke on A");
    eventually_refused(
        "the revocation",
        &b,
        || with_key(pb::GetMeRequest {}, &created.secret),
        "API_KEY_REVOKED",
    )
    .await;
}

#[tokio::test]
async fn a_logout_on_one_instance_ends_the_session_on_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let email = a.register().await;
    let tokens = a.login(&email).await;
    b.auth()
        .get_me(bearer(pb::GetMeRequest {}, &tokens.access_token))
        .await
        .expect("B accepts the session");
    // A session started on A refreshes on B.
    let refreshed = b
        .auth()
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: tokens.refresh_token,
        })
        .await
        .expect("refresh on B")
        .into_inner()
        .tokens
        .unwrap();
    a.auth()
        .logout(bearer(
            pb::LogoutRequest::default(),
            &refreshed.access_token,
        ))
        .await
        .expect("logout on A");
    eventually_refused(
        "the logout",
        &b,
        || bearer(pb::GetMeRequest {}, &refreshed.access_token),
        "SESSION_REVOKED",
    )
    .await;
}

#[tokio::test]
async fn a_profile_change_on_one_instance_shows_on_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let email = a.register().await;
    let access = a.login(&email).await.access_token;
    let me = b
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &access))
        .await
        .expect("B reads the profile (and caches it)")
        .into_inner()
        .user
        .unwrap();
    assert!(!me.email_verified);
    let token = a.nth_token_to(&email, 1).await;
    a.auth()
        .verify_email(pb::VerifyEmailRequest { token })
        .await
        .expect("verify on A");
    eventually("the verified email", || {
        let mut auth = b.auth();
        let access = access.clone();
        async move {
            auth.get_me(bearer(pb::GetMeRequest {}, &access))
                .await
                .expect("get me on B")
                .into_inner()
                .user
                .is_some_and(|u| u.email_verified)
        }
    })
    .await;
}
