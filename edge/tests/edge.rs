//! The edge in front of a real (small) tonic server, over real sockets.

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use namaskah_edge::EdgeOptions;
use namaskah_proto::v1;
use prost::Message as _;
use support::{
    Edge, Upstream, closed_port, grpc_client, grpc_frame, grpc_web_client, grpc_web_frames, http1,
};
use tonic::Code;
use tonic_health::ServingStatus;

/// Upper bound for anything that must not hang.
const PROMPTLY: Duration = Duration::from_secs(10);

const GET_ME: &str = "/namaskah.v1.AuthService/GetMe";

fn get_me_with_credentials() -> tonic::Request<v1::GetMeRequest> {
    let mut request = tonic::Request::new(v1::GetMeRequest {});
    let metadata = request.metadata_mut();
    metadata.insert("x-api-key", "nsk_test_key".parse().unwrap());
    metadata.insert("authorization", "Bearer token-123".parse().unwrap());
    request
}

fn post(edge: &Edge, path: &str, content_type: &str) -> http::request::Builder {
    http::Request::builder()
        .method(Method::POST)
        .uri(format!("{}{path}", edge.url()))
        .header("content-type", content_type)
}

fn request(builder: http::request::Builder, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    builder.body(Full::new(body.into())).unwrap()
}

fn get(edge: &Edge, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .uri(format!("{}{path}", edge.url()))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn grpc_web_call_reaches_the_upstream_with_its_metadata() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let mut client = grpc_web_client(&edge);

    let response = client.get_me(get_me_with_credentials()).await.unwrap();

    assert_eq!(
        response.metadata().get("x-process-time").unwrap(),
        "0.000042"
    );
    let user = response.into_inner().user.unwrap();
    assert_eq!(user.email, "nsk_test_key");
    assert_eq!(user.name, "Bearer token-123");
    assert_eq!(
        user.referral_code, "127.0.0.1",
        "x-forwarded-for carries the caller"
    );
}

#[tokio::test]
async fn grpc_web_errors_come_back_as_grpc_statuses() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let mut client = grpc_web_client(&edge);

    let status = client
        .logout(v1::LogoutRequest::default())
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(status.message(), "Logout is not faked");
}

#[tokio::test]
async fn grpc_web_text_by_hand() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let body = BASE64.encode(grpc_frame(&v1::GetMeRequest {}));

    let reply = http1(request(
        post(&edge, GET_ME, "application/grpc-web-text")
            .header("accept", "application/grpc-web-text")
            .header("x-api-key", "nsk_by_hand")
            .header("x-grpc-web", "1"),
        body,
    ))
    .await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/grpc-web-text+proto")
    );
    assert_eq!(reply.header("x-process-time"), Some("0.000042"));
    // Each chunk is base64 on its own (padding included), so decode quantum by quantum.
    let mut raw = Vec::new();
    for quantum in reply.body.chunks(4) {
        raw.extend(BASE64.decode(quantum).unwrap());
    }
    let (messages, trailers) = grpc_web_frames(&raw);
    assert_eq!(messages.len(), 1);
    let answer = v1::GetMeResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(answer.user.unwrap().email, "nsk_by_hand");
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
}

#[tokio::test]
async fn native_grpc_is_forwarded_as_is() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let mut client = grpc_client(&edge).await;

    let response = client.get_me(get_me_with_credentials()).await.unwrap();
    assert_eq!(
        response.metadata().get("x-process-time").unwrap(),
        "0.000042"
    );
    let user = response.into_inner().user.unwrap();
    assert_eq!(user.email, "nsk_test_key");
    assert_eq!(user.name, "Bearer token-123");
    assert_eq!(user.referral_code, "127.0.0.1");

    let status = client.login(v1::LoginRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(status.message(), "Login is not faked");
}

#[tokio::test]
async fn native_grpc_to_an_unknown_service_is_unimplemented() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let channel = tonic::transport::Channel::from_shared(edge.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // The health service under a name the upstream does not serve.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<_, tonic_health::pb::HealthCheckResponse, _>(
            tonic::Request::new(tonic_health::pb::HealthCheckRequest::default()),
            "/namaskah.v1.NoSuchService/Check".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn calls_share_one_upstream_connection() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    let calls = (0..32).map(|_| {
        let mut client = grpc_web_client(&edge);
        async move { client.get_me(get_me_with_credentials()).await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    let mut client = grpc_client(&edge).await;
    client.get_me(get_me_with_credentials()).await.unwrap();

    assert_eq!(
        upstream
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn healthz_follows_the_upstream() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    let reply = http1(get(&edge, "/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok");

    upstream
        .health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let reply = http1(get(&edge, "/healthz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    upstream
        .health
        .set_service_status("", ServingStatus::Serving)
        .await;
    assert_eq!(http1(get(&edge, "/healthz")).await.status, StatusCode::OK);

    upstream.stop().await;
    let reply = tokio::time::timeout(PROMPTLY, http1(get(&edge, "/healthz")))
        .await
        .expect("healthz answers promptly when the upstream is gone");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_paths_are_404_json() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    for request in [
        get(&edge, "/nope"),
        get(&edge, "/"),
        request(post(&edge, "/v1/whatever", "application/json"), "{}"),
    ] {
        let reply = http1(request).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let json = reply.json();
        assert_eq!(json["code"], 5, "{json}");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .starts_with("no route for "),
            "{json}"
        );
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405_json() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    let reply = http1(request(post(&edge, "/healthz", "text/plain"), "")).await;

    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.json()["code"], 12);
}

#[tokio::test]
async fn grpc_web_to_a_path_that_is_not_a_method_is_refused() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    let reply = http1(request(
        post(&edge, "/healthz/extra/parts", "application/grpc-web+proto"),
        grpc_frame(&v1::GetMeRequest {}),
    ))
    .await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("grpc-status"), Some("12"));
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let too_big = vec![0u8; namaskah_edge::DEFAULT_MAX_BODY_BYTES + 1];

    // grpc-web with a declared length: refused before anything is forwarded.
    let reply = http1(request(
        post(&edge, GET_ME, "application/grpc-web+proto"),
        too_big.clone(),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.header("grpc-status"), Some("8"));

    // Plain HTTP: the JSON error shape.
    let reply = http1(request(
        post(&edge, "/v1/anything", "application/json"),
        too_big,
    ))
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["code"], 8);

    // Exactly at the limit is fine (the upstream then rejects the garbage itself).
    let at_limit = vec![0u8; namaskah_edge::DEFAULT_MAX_BODY_BYTES];
    let reply = http1(request(
        post(&edge, GET_ME, "application/grpc-web+proto"),
        at_limit,
    ))
    .await;
    assert_ne!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn streamed_oversized_bodies_are_refused_too() {
    let upstream = Upstream::start().await;
    let options = EdgeOptions {
        max_body_bytes: 1024,
        ..EdgeOptions::default()
    };
    let edge = Edge::start_with(upstream.channel(), options).await;
    let big = v1::RegisterRequest {
        email: "someone@example.com".into(),
        password: "x".repeat(4096),
        ..Default::default()
    };

    // grpc-web from tonic streams its body (no content-length): counted, then refused.
    let mut web = grpc_web_client(&edge);
    let status = tokio::time::timeout(PROMPTLY, web.register(big.clone()))
        .await
        .expect("no hang")
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Native gRPC over HTTP/2 never declares a length either.
    let mut native = grpc_client(&edge).await;
    let status = tokio::time::timeout(PROMPTLY, native.register(big))
        .await
        .expect("no hang")
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The connection is still good for calls under the limit.
    native.get_me(get_me_with_credentials()).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_prompt_clean_error() {
    let nowhere = closed_port().await;
    let upstream = namaskah_edge::upstream_channel(format!("http://{nowhere}").parse().unwrap());
    let edge = Edge::start(upstream).await;

    let reply = tokio::time::timeout(
        PROMPTLY,
        http1(request(
            post(&edge, GET_ME, "application/grpc-web+proto"),
            grpc_frame(&v1::GetMeRequest {}),
        )),
    )
    .await
    .expect("grpc-web answers promptly");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("grpc-status"), Some("14"));

    let mut web = grpc_web_client(&edge);
    let status = tokio::time::timeout(PROMPTLY, web.get_me(v1::GetMeRequest {}))
        .await
        .expect("no hang")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    let mut native = grpc_client(&edge).await;
    let status = tokio::time::timeout(PROMPTLY, native.get_me(v1::GetMeRequest {}))
        .await
        .expect("no hang")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    let reply = tokio::time::timeout(PROMPTLY, http1(get(&edge, "/healthz")))
        .await
        .expect("no hang");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    // Still serving afterwards.
    assert_eq!(
        http1(get(&edge, "/nope")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_silent_upstream_does_not_hang_callers() {
    // A listener whose connections are accepted by the kernel and then ignored.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = namaskah_edge::upstream_channel(
        format!("http://{}", silent.local_addr().unwrap())
            .parse()
            .unwrap(),
    );
    let options = EdgeOptions {
        health_check_timeout: Duration::from_millis(300),
        ..EdgeOptions::default()
    };
    let edge = Edge::start_with(upstream, options).await;

    let reply = tokio::time::timeout(PROMPTLY, http1(get(&edge, "/healthz")))
        .await
        .expect("no hang");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);

    // The caller's grpc-timeout bounds a call the upstream never answers (enforced by the
    // edge's channel: this raw client has no timer of its own).
    let reply = tokio::time::timeout(
        PROMPTLY,
        http1(request(
            post(&edge, GET_ME, "application/grpc-web+proto").header("grpc-timeout", "300m"),
            grpc_frame(&v1::GetMeRequest {}),
        )),
    )
    .await
    .expect("no hang");
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.header("grpc-status"), Some("4"));
    drop(silent);
}

#[tokio::test]
async fn shutdown_is_graceful() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let addr = edge.addr;
    let mut client = grpc_client(&edge).await;
    client.get_me(get_me_with_credentials()).await.unwrap();

    tokio::time::timeout(PROMPTLY, edge.shutdown())
        .await
        .expect("shutdown completes")
        .expect("serve returns Ok");

    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
