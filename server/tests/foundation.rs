//! The server as infrastructure: health, reflection, `x-process-time`, RPCs whose room has
//! not landed, authentication on every service, graceful shutdown.
mod common;

use common::*;
use namaskah_proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICES: &[&str] = &[
    "namaskah.v1.AuthService",
    "namaskah.v1.CatalogService",
    "namaskah.v1.VerificationService",
    "namaskah.v1.WalletService",
    "namaskah.v1.SubscriptionService",
    "namaskah.v1.AnalyticsService",
    "namaskah.v1.AdminService",
    "namaskah.v1.TenantService",
    "namaskah.v1.SandboxService",
    "namaskah.v1.WebhookService",
    "grpc.health.v1.Health",
];

#[tokio::test]
async fn health_check_serves() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", "namaskah.v1.AuthService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_lists_every_service_and_method() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = spawn_app().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "namaskah.v1.VerificationService".into(),
            )),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();
    let listed = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    let files = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = files.message_response else {
        panic!("expected file descriptors");
    };
    use prost::Message;
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|f| f.name() == "namaskah/v1/verification.proto")
        .expect("verification.proto");
    let methods: Vec<&str> = file.service[0].method.iter().map(|m| m.name()).collect();
    for rpc in [
        "CreateVerification",
        "GetVerification",
        "ListVerifications",
        "CancelVerification",
        "WatchVerification",
        "WatchVerifications",
    ] {
        assert!(methods.contains(&rpc), "{rpc} missing from {methods:?}");
    }
}

#[tokio::test]
async fn reflection_v1alpha_answers_too() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let app = spawn_app().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let listed = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "namaskah.v1.AuthService")
    );
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "namaskah.v1.WalletService")
    );
}

#[tokio::test]
async fn every_response_carries_process_time() {
    let app = spawn_app().await;
    // A success, a validation error and an authentication error.
    let email = app.register().await;
    let ok = app
        .auth()
        .login(pb::LoginRequest {
            email,
            password: PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .expect("login");
    let seconds: f64 = ok
        .metadata()
        .get("x-process-time")
        .expect("x-process-time on success")
        .to_str()
        .unwrap()
        .parse()
        .expect("seconds as a decimal");
    assert!(seconds >= 0.0);
    let bad = app
        .auth()
        .register(pb::RegisterRequest::default())
        .await
        .expect_err("empty register");
    assert!(bad.metadata().get("x-process-time").is_some(), "{bad:?}");
    let unauthenticated = app
        .auth()
        .get_me(pb::GetMeRequest {})
        .await
        .expect_err("no credentials");
    assert!(unauthenticated.metadata().get("x-process-time").is_some());
}

#[tokio::test]
async fn every_non_public_service_demands_credentials() {
    use namaskah_proto::v1::wallet_service_client::WalletServiceClient;
    let app = spawn_app().await;
    // Even an unimplemented room never answers an anonymous caller.
    let status = WalletServiceClient::new(app.channel.clone())
        .get_balance(pb::GetBalanceRequest::default())
        .await
        .expect_err("anonymous");
    assert_error(&status, Code::Unauthenticated, "UNAUTHENTICATED");
    let status = app
        .auth()
        .get_me(with_key(pb::GetMeRequest {}, "nsk_not-a-real-key"))
        .await
        .expect_err("garbage key");
    assert_error(&status, Code::Unauthenticated, "API_KEY_INVALID");
    let status = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, "not.a.jwt"))
        .await
        .expect_err("garbage token");
    assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns() {
    let app = spawn_app().await;
    let addr = app.grpc_addr;
    let mut health = HealthClient::new(app.channel.clone());
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("serving before shutdown");
    app.shutdown().await.expect("clean shutdown");
    let reconnect = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    assert!(
        reconnect.is_err(),
        "the listener must be closed after shutdown"
    );
}

#[tokio::test]
async fn the_in_process_edge_serves_grpc_web() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use namaskah_proto::v1::auth_service_client::AuthServiceClient;

    let app = spawn_app_with(&[("NAMASKAH_EDGE_ADDR", "127.0.0.1:0")]).await;
    let edge = app.edge_addr.expect("the edge is on");
    let (email, token) = app.signed_in().await;
    // A browser's protocol: grpc-web over HTTP/1.1.
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http1);
    let mut client = AuthServiceClient::with_origin(web, format!("http://{edge}").parse().unwrap());
    let response = client
        .get_me(bearer(pb::GetMeRequest {}, &token))
        .await
        .expect("GetMe over grpc-web");
    assert!(response.metadata().get("x-process-time").is_some());
    assert_eq!(response.into_inner().user.unwrap().email, email);
    let status = client
        .get_me(pb::GetMeRequest {})
        .await
        .expect_err("no credentials over grpc-web either");
    assert_error(&status, Code::Unauthenticated, "UNAUTHENTICATED");
}

#[tokio::test]
async fn shutdown_tells_health_watchers_and_ends_their_streams() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("a status").expect("not ended");
    assert_eq!(first.status(), ServingStatus::Serving);
    let stopping = tokio::spawn(app.shutdown());
    let second = watch.message().await.expect("a status").expect("not ended");
    assert_eq!(second.status(), ServingStatus::NotServing);
    // The stream then ends cleanly. (Bounded: without the fix it would stay open for ever,
    // since in a test the runtime outlives the aborted server.)
    let end = tokio::time::timeout(std::time::Duration::from_secs(30), watch.message())
        .await
        .expect("the watch stream ends instead of staying open");
    assert!(end.expect("a clean end").is_none(), "the watch stream ends");
    stopping.await.unwrap().expect("clean shutdown");
}
