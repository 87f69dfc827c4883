//! `POST /webhooks/{source}` in front of a fake `WebhookService`, over real sockets.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use namaskah_edge::{EdgeOptions, WEBHOOK_MAX_BODY_BYTES};
use namaskah_proto::v1;
use namaskah_proto::v1::webhook_service_server::{WebhookService, WebhookServiceServer};
use serde_json::json;
use support::{Edge, HttpReply, closed_port, http1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// Upper bound for anything that must not hang.
const PROMPTLY: Duration = Duration::from_secs(10);

/// What the fake answers, given the webhook it received.
type Script =
    dyn Fn(&v1::ReceiveWebhookRequest) -> Result<v1::ReceiveWebhookResponse, Status> + Send + Sync;

/// One call the fake received.
struct Received {
    metadata: MetadataMap,
    webhook: v1::ReceiveWebhookRequest,
}

/// A fake `WebhookService` that records every call and answers by its script.
#[derive(Clone)]
struct FakeWebhooks {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Arc<Script>>>,
}

#[tonic::async_trait]
impl WebhookService for FakeWebhooks {
    async fn receive_webhook(
        &self,
        request: tonic::Request<v1::ReceiveWebhookRequest>,
    ) -> Result<tonic::Response<v1::ReceiveWebhookResponse>, Status> {
        let (metadata, _, webhook) = request.into_parts();
        let script = self.script.lock().unwrap().clone();
        let answer = script(&webhook);
        self.received
            .lock()
            .unwrap()
            .push(Received { metadata, webhook });
        answer.map(tonic::Response::new)
    }
}

/// The upstream gRPC server, serving only the fake `WebhookService`.
struct Upstream {
    addr: SocketAddr,
    fake: FakeWebhooks,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Answers `accepted: true` until told otherwise.
    async fn start() -> Self {
        support::init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept_all: Arc<Script> = Arc::new(|_| Ok(accepted(true)));
        let fake = FakeWebhooks {
            received: Arc::default(),
            script: Arc::new(Mutex::new(accept_all)),
        };
        let service = WebhookServiceServer::new(fake.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            fake,
            stop: Some(stop),
            task,
        }
    }

    fn channel(&self) -> Channel {
        namaskah_edge::upstream_channel(format!("http://{}", self.addr).parse().unwrap())
    }

    fn answer_with(
        &self,
        script: impl Fn(&v1::ReceiveWebhookRequest) -> Result<v1::ReceiveWebhookResponse, Status>
        + Send
        + Sync
        + 'static,
    ) {
        *self.fake.script.lock().unwrap() = Arc::new(script);
    }

    fn calls(&self) -> usize {
        self.fake.received.lock().unwrap().len()
    }

    /// Takes the calls received so far.
    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.fake.received.lock().unwrap())
    }

    /// The one call received since the last `take`.
    fn only(&self) -> Received {
        let mut calls = self.take();
        assert_eq!(calls.len(), 1, "expected exactly one call upstream");
        calls.pop().unwrap()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

fn accepted(accepted: bool) -> v1::ReceiveWebhookResponse {
    v1::ReceiveWebhookResponse {
        accepted,
        related_resource: "topUps/T1".into(),
    }
}

/// A status as the server builds them: `ErrorInfo` in domain `namaskah.sms`.
fn refused(code: Code, reason: &str, message: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, "namaskah.sms", HashMap::new());
    Status::with_error_details(code, message, details)
}

fn webhook(
    edge: &Edge,
    path_and_query: &str,
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(Method::POST)
        .uri(format!("{}{path_and_query}", edge.url()))
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

/// Sends `request` byte for byte on a fresh connection (it must ask `Connection: close`) and
/// returns the status and body of the answer.
async fn raw_http1(addr: SocketAddr, request: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut answer))
        .await
        .expect("the edge answers and closes")
        .unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = std::str::from_utf8(&answer[..split]).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer[split + 4..].to_vec())
}

/// POSTs `chunks` as a chunked body (no `content-length`).
async fn post_streamed(url: String, chunks: Vec<Bytes>) -> HttpReply {
    type Chunks =
        futures::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, Infallible>>>;
    let frames: Vec<_> = chunks
        .into_iter()
        .map(|chunk| Ok(http_body::Frame::data(chunk)))
        .collect();
    let body: StreamBody<Chunks> = StreamBody::new(futures::stream::iter(frames));
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(url)
        .body(body)
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<StreamBody<Chunks>>();
    let response = client.request(request).await.expect("HTTP exchange");
    let (parts, body) = response.into_parts();
    HttpReply {
        status: parts.status,
        headers: parts.headers,
        trailers: None,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn header_pairs(webhook: &v1::ReceiveWebhookRequest) -> Vec<(&str, &[u8])> {
    webhook
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect()
}

#[tokio::test]
async fn a_webhook_reaches_the_server_untouched() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    // Not UTF-8, not JSON-normalised: CR LF, NUL, 0xFF, and meaningful whitespace.
    let body: &[u8] = b"{\"event\": \"charge.success\",\r\n \"data\":\x00\xff\xfe }  \n";
    let mut request = Vec::new();
    request.extend_from_slice(
        b"POST /webhooks/paystack?trxref=T1&reference=a%20b+c&x= HTTP/1.1\r\n\
          Host: edge.test\r\n\
          X-Paystack-Signature: 9f86d08188\r\n\
          X-Repeat: first\r\n\
          Content-Type: application/json\r\n\
          X-Repeat: second\r\n\
          X-Latin: caf\xe9 au lait\r\n\
          X-Forwarded-For: 203.0.113.9\r\n",
    );
    request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request.extend_from_slice(body);

    let before = SystemTime::now();
    let (status, answer) = raw_http1(edge.addr, &request).await;
    let after = SystemTime::now();

    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer, json!({ "accepted": true }));

    let Received { metadata, webhook } = upstream.only();
    assert_eq!(webhook.source(), v1::WebhookSource::Paystack);
    assert_eq!(webhook.body, body, "the body byte for byte");
    assert_eq!(webhook.query, "trxref=T1&reference=a%20b+c&x=");
    // Names lowercase, values raw, one entry per value; the values of a repeated header
    // stay in their order, together at the place of the first one.
    assert_eq!(
        header_pairs(&webhook),
        vec![
            ("host", b"edge.test".as_slice()),
            ("x-paystack-signature", b"9f86d08188"),
            ("x-repeat", b"first"),
            ("x-repeat", b"second"),
            ("content-type", b"application/json"),
            ("x-latin", b"caf\xe9 au lait"),
            ("x-forwarded-for", b"203.0.113.9"),
            ("content-length", body.len().to_string().as_bytes()),
            ("connection", b"close"),
        ]
    );
    // The address the edge saw, whatever the sender claims in x-forwarded-for; the chain
    // goes on as metadata, as for every call the edge forwards.
    assert_eq!(webhook.client_address, "127.0.0.1");
    assert_eq!(
        metadata.get("x-forwarded-for").unwrap(),
        "203.0.113.9, 127.0.0.1"
    );
    let received_at = SystemTime::try_from(webhook.receive_time.unwrap()).unwrap();
    assert!(
        before - Duration::from_millis(1) <= received_at
            && received_at <= after + Duration::from_millis(1),
        "receive_time {received_at:?} not within {before:?}..{after:?}"
    );
    // The edge gives the call a deadline.
    assert!(metadata.get("grpc-timeout").is_some());
}

#[tokio::test]
async fn each_source_is_named_by_its_path() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    for (segment, source) in [
        ("paystack", v1::WebhookSource::Paystack),
        ("textverified", v1::WebhookSource::Textverified),
        ("sandbox", v1::WebhookSource::Sandbox),
    ] {
        let body = format!("{{\"from\":\"{segment}\"}}");
        let reply = http1(webhook(
            &edge,
            &format!("/webhooks/{segment}"),
            body.clone(),
        ))
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{segment}");

        let Received { webhook, .. } = upstream.only();
        assert_eq!(webhook.source(), source, "{segment}");
        assert_eq!(webhook.body, body.as_bytes());
        assert_eq!(webhook.query, "", "no query string");
    }
}

#[tokio::test]
async fn unknown_sources_are_404_and_never_forwarded() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    for path in [
        "/webhooks/stripe",
        "/webhooks/Paystack",
        "/webhooks/unspecified",
        "/webhooks/webhook_source_paystack",
    ] {
        let reply = http1(webhook(&edge, path, "{}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(
            reply.json(),
            json!({ "error": "unknown webhook source" }),
            "{path}"
        );
    }
    // Not webhook routes at all: the edge's usual 404.
    for path in ["/webhooks/paystack/extra", "/webhooks", "/webhooks/"] {
        let reply = http1(webhook(&edge, path, "{}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn only_post_is_allowed() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let request = http::Request::builder()
            .method(method.clone())
            .uri(format!("{}/webhooks/paystack", edge.url()))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let reply = http1(request).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header("allow"), Some("POST"), "{method}");
        assert!(reply.json()["error"].is_string(), "{method}");
    }
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_never_forwarded() {
    let upstream = Upstream::start().await;
    // The edge's general limit is higher: the webhook limit still holds.
    let options = EdgeOptions {
        max_body_bytes: 4 * WEBHOOK_MAX_BODY_BYTES,
        ..EdgeOptions::default()
    };
    let edge = Edge::start_with(upstream.channel(), options).await;

    // Declared with content-length.
    let too_big = vec![b'x'; WEBHOOK_MAX_BODY_BYTES + 1];
    let reply = http1(webhook(&edge, "/webhooks/paystack", too_big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.json()["error"].is_string());

    // Chunked, without a length: counted as it arrives.
    let chunks = vec![Bytes::from(vec![b'y'; 64 * 1024]); 17];
    let reply = post_streamed(format!("{}/webhooks/textverified", edge.url()), chunks).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(upstream.calls(), 0);

    // Exactly at the limit, either way, arrives whole.
    let at_limit = vec![b'z'; WEBHOOK_MAX_BODY_BYTES];
    let reply = http1(webhook(&edge, "/webhooks/paystack", at_limit.clone())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.only().webhook.body, at_limit);
    let chunks = vec![Bytes::from(vec![b'z'; 64 * 1024]); 16];
    let reply = post_streamed(format!("{}/webhooks/sandbox", edge.url()), chunks).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.only().webhook.body, at_limit);
}

#[tokio::test]
async fn a_smaller_edge_limit_applies_to_webhooks_too() {
    let upstream = Upstream::start().await;
    let options = EdgeOptions {
        max_body_bytes: 1024,
        ..EdgeOptions::default()
    };
    let edge = Edge::start_with(upstream.channel(), options).await;

    let reply = http1(webhook(&edge, "/webhooks/paystack", vec![b'x'; 1025])).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(upstream.calls(), 0);
    let reply = http1(webhook(&edge, "/webhooks/paystack", vec![b'x'; 1024])).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn the_servers_answer_becomes_the_http_status() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    struct Case {
        answer: fn() -> Result<v1::ReceiveWebhookResponse, Status>,
        http: StatusCode,
        body: serde_json::Value,
        retry_after: Option<&'static str>,
    }
    let cases = [
        Case {
            answer: || Ok(accepted(true)),
            http: StatusCode::OK,
            body: json!({ "accepted": true }),
            retry_after: None,
        },
        Case {
            answer: || Ok(accepted(false)),
            http: StatusCode::OK,
            body: json!({ "accepted": false }),
            retry_after: None,
        },
        Case {
            answer: || {
                Err(refused(
                    Code::Unauthenticated,
                    "INVALID_SIGNATURE",
                    "the webhook signature is missing or wrong",
                ))
            },
            http: StatusCode::UNAUTHORIZED,
            body: json!({
                "error": "the webhook signature is missing or wrong",
                "reason": "INVALID_SIGNATURE",
            }),
            retry_after: None,
        },
        Case {
            answer: || {
                Err(refused(
                    Code::InvalidArgument,
                    "MALFORMED_WEBHOOK",
                    "the body is not a Paystack event",
                ))
            },
            http: StatusCode::BAD_REQUEST,
            body: json!({
                "error": "the body is not a Paystack event",
                "reason": "MALFORMED_WEBHOOK",
            }),
            retry_after: None,
        },
        Case {
            answer: || {
                Err(refused(
                    Code::NotFound,
                    "WEBHOOK_SOURCE_DISABLED",
                    "paystack is not configured",
                ))
            },
            http: StatusCode::NOT_FOUND,
            body: json!({
                "error": "paystack is not configured",
                "reason": "WEBHOOK_SOURCE_DISABLED",
            }),
            retry_after: None,
        },
        Case {
            answer: || {
                let mut status = refused(Code::ResourceExhausted, "RATE_LIMITED", "slow down");
                status
                    .metadata_mut()
                    .insert("retry-after", "17".parse().unwrap());
                Err(status)
            },
            http: StatusCode::TOO_MANY_REQUESTS,
            body: json!({ "error": "slow down", "reason": "RATE_LIMITED" }),
            retry_after: Some("17"),
        },
        Case {
            answer: || {
                let mut details = ErrorDetails::new();
                details.set_error_info("UNAVAILABLE", "namaskah.sms", HashMap::new());
                details.set_retry_info(Some(Duration::from_secs(5)));
                Err(Status::with_error_details(
                    Code::Unavailable,
                    "the database is unreachable",
                    details,
                ))
            },
            http: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({
                "error": "the database is unreachable",
                "reason": "UNAVAILABLE",
            }),
            retry_after: Some("5"),
        },
        Case {
            answer: || Err(Status::internal("boom")),
            http: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({ "error": "boom" }),
            retry_after: None,
        },
        Case {
            answer: || Err(Status::failed_precondition("not now")),
            http: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({ "error": "not now" }),
            retry_after: None,
        },
    ];

    for (i, case) in cases.into_iter().enumerate() {
        let answer = case.answer;
        upstream.answer_with(move |_| answer());
        let reply = http1(webhook(
            &edge,
            "/webhooks/paystack",
            format!("{{\"n\":{i}}}"),
        ))
        .await;
        assert_eq!(reply.status, case.http, "case {i}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.json(), case.body, "case {i}");
        assert_eq!(reply.header("retry-after"), case.retry_after, "case {i}");
        assert_eq!(
            upstream.only().webhook.body,
            format!("{{\"n\":{i}}}").as_bytes(),
            "case {i} was handed over"
        );
    }
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_prompt_502() {
    let nowhere = closed_port().await;
    let channel = namaskah_edge::upstream_channel(format!("http://{nowhere}").parse().unwrap());
    let edge = Edge::start(channel).await;

    let reply = tokio::time::timeout(PROMPTLY, http1(webhook(&edge, "/webhooks/paystack", "{}")))
        .await
        .expect("answers promptly");
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(reply.json()["error"].is_string());
}

#[tokio::test]
async fn an_upstream_that_went_away_is_a_5xx() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    let reply = http1(webhook(&edge, "/webhooks/paystack", "{}")).await;
    assert_eq!(reply.status, StatusCode::OK);

    upstream.stop().await;
    let reply = tokio::time::timeout(PROMPTLY, http1(webhook(&edge, "/webhooks/paystack", "{}")))
        .await
        .expect("answers promptly");
    assert!(reply.status.is_server_error(), "{}", reply.status);
    assert!(reply.json()["error"].is_string());
}

#[tokio::test]
async fn a_silent_upstream_is_a_504_after_the_webhook_timeout() {
    // Connections are accepted by the kernel and then ignored.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let channel = namaskah_edge::upstream_channel(
        format!("http://{}", silent.local_addr().unwrap())
            .parse()
            .unwrap(),
    );
    let options = EdgeOptions {
        webhook_timeout: Duration::from_millis(300),
        ..EdgeOptions::default()
    };
    let edge = Edge::start_with(channel, options).await;

    let reply = tokio::time::timeout(PROMPTLY, http1(webhook(&edge, "/webhooks/paystack", "{}")))
        .await
        .expect("answers promptly");
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    drop(silent);
}
