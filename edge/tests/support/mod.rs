//! Test fixtures: a small upstream gRPC server, the edge in front of it, and clients.
//!
//! Servers bind port 0 first and serve second, so a test never waits on a timer for a
//! server to come up.
#![allow(dead_code)] // each test crate uses its own subset

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use namaskah_edge::EdgeOptions;
use namaskah_proto::v1;
use namaskah_proto::v1::auth_service_server::{AuthService, AuthServiceServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use tonic_health::server::HealthReporter;

/// A fake `AuthService`: `GetMe` echoes what the edge passed on, everything else is
/// `UNIMPLEMENTED`.
pub struct FakeAuth;

fn metadata(request: &Request<impl Sized>, key: &str) -> String {
    request
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn not_faked(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not faked"))
}

#[tonic::async_trait]
impl AuthService for FakeAuth {
    /// `user.email` = `x-api-key`, `user.name` = `authorization`, `user.referral_code` =
    /// `x-forwarded-for`; the response carries `x-process-time`.
    async fn get_me(
        &self,
        request: Request<v1::GetMeRequest>,
    ) -> Result<Response<v1::GetMeResponse>, Status> {
        let user = v1::User {
            name: metadata(&request, "authorization"),
            email: metadata(&request, "x-api-key"),
            referral_code: metadata(&request, "x-forwarded-for"),
            ..Default::default()
        };
        let mut response = Response::new(v1::GetMeResponse { user: Some(user) });
        response
            .metadata_mut()
            .insert("x-process-time", "0.000042".parse().expect("ascii"));
        Ok(response)
    }

    async fn register(
        &self,
        _: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        Err(not_faked("Register"))
    }

    async fn verify_email(
        &self,
        _: Request<v1::VerifyEmailRequest>,
    ) -> Result<Response<v1::VerifyEmailResponse>, Status> {
        Err(not_faked("VerifyEmail"))
    }

    async fn resend_verification_email(
        &self,
        _: Request<v1::ResendVerificationEmailRequest>,
    ) -> Result<Response<v1::ResendVerificationEmailResponse>, Status> {
        Err(not_faked("ResendVerificationEmail"))
    }

    async fn login(
        &self,
        _: Request<v1::LoginRequest>,
    ) -> Result<Response<v1::LoginResponse>, Status> {
        Err(not_faked("Login"))
    }

    async fn refresh_token(
        &self,
        _: Request<v1::RefreshTokenRequest>,
    ) -> Result<Response<v1::RefreshTokenResponse>, Status> {
        Err(not_faked("RefreshToken"))
    }

    async fn logout(
        &self,
        _: Request<v1::LogoutRequest>,
    ) -> Result<Response<v1::LogoutResponse>, Status> {
        Err(not_faked("Logout"))
    }

    async fn create_api_key(
        &self,
        _: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        Err(not_faked("CreateApiKey"))
    }

    async fn list_api_keys(
        &self,
        _: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        Err(not_faked("ListApiKeys"))
    }

    async fn revoke_api_key(
        &self,
        _: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::RevokeApiKeyResponse>, Status> {
        Err(not_faked("RevokeApiKey"))
    }

    async fn setup_two_factor(
        &self,
        _: Request<v1::SetupTwoFactorRequest>,
    ) -> Result<Response<v1::SetupTwoFactorResponse>, Status> {
        Err(not_faked("SetupTwoFactor"))
    }

    async fn confirm_two_factor(
        &self,
        _: Request<v1::ConfirmTwoFactorRequest>,
    ) -> Result<Response<v1::ConfirmTwoFactorResponse>, Status> {
        Err(not_faked("ConfirmTwoFactor"))
    }

    async fn disable_two_factor(
        &self,
        _: Request<v1::DisableTwoFactorRequest>,
    ) -> Result<Response<v1::DisableTwoFactorResponse>, Status> {
        Err(not_faked("DisableTwoFactor"))
    }

    async fn request_password_reset(
        &self,
        _: Request<v1::RequestPasswordResetRequest>,
    ) -> Result<Response<v1::RequestPasswordResetResponse>, Status> {
        Err(not_faked("RequestPasswordReset"))
    }

    async fn reset_password(
        &self,
        _: Request<v1::ResetPasswordRequest>,
    ) -> Result<Response<v1::ResetPasswordResponse>, Status> {
        Err(not_faked("ResetPassword"))
    }
}

/// The upstream gRPC server: grpc.health.v1 and the fake `AuthService`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub health: HealthReporter,
    /// TCP connections the upstream has accepted.
    pub connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Logs to the test's captured output when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl Upstream {
    pub async fn start() -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let (health, health_service) = tonic_health::server::health_reporter();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let incoming = TcpListenerStream::new(listener).map(move |conn| {
            counter.fetch_add(1, Ordering::SeqCst);
            conn
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            Server::builder()
                .add_service(health_service)
                .add_service(AuthServiceServer::new(FakeAuth))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .expect("upstream serves");
        });
        Self {
            addr,
            health,
            connections,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn channel(&self) -> Channel {
        namaskah_edge::upstream_channel(self.url().parse().expect("url"))
    }

    /// Stops the server and waits until its port is closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("upstream task");
    }
}

/// The edge under test, on its own port.
pub struct Edge {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Edge {
    pub async fn start(upstream: Channel) -> Self {
        Self::start_with(upstream, EdgeOptions::default()).await
    }

    pub async fn start_with(upstream: Channel, options: EdgeOptions) -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind edge");
        let addr = listener.local_addr().expect("edge addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(namaskah_edge::serve_with(
            listener,
            upstream,
            options,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Asks the edge to shut down and returns what `serve` returned.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("edge task"),
            None => Ok(()),
        }
    }
}

/// A port nothing listens on: bound, then released.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

/// A native gRPC client (HTTP/2) pointed at the edge.
pub async fn grpc_client(edge: &Edge) -> v1::auth_service_client::AuthServiceClient<Channel> {
    let channel = Channel::from_shared(edge.url())
        .expect("url")
        .connect()
        .await
        .expect("connect to edge");
    v1::auth_service_client::AuthServiceClient::new(channel)
}

/// A grpc-web client (HTTP/1.1, `application/grpc-web`) pointed at the edge.
pub fn grpc_web_client(
    edge: &Edge,
) -> v1::auth_service_client::AuthServiceClient<
    tonic_web::GrpcWebClientService<
        Client<HttpConnector, tonic_web::GrpcWebCall<tonic::body::Body>>,
    >,
> {
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http1);
    v1::auth_service_client::AuthServiceClient::with_origin(web, edge.url().parse().expect("url"))
}

/// What a plain HTTP/1.1 exchange came back with.
pub struct HttpReply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub trailers: Option<http::HeaderMap>,
    pub body: Bytes,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends one HTTP/1.1 request and reads the whole answer.
pub async fn http1(request: http::Request<Full<Bytes>>) -> HttpReply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.expect("HTTP exchange");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    HttpReply {
        status: parts.status,
        headers: parts.headers,
        trailers,
        body: collected.to_bytes(),
    }
}

/// A gRPC length-prefixed message frame (uncompressed), as grpc-web also uses.
pub fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// Splits a grpc-web response body into its message payloads and its trailer block.
pub fn grpc_web_frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let mut messages = Vec::new();
    let mut trailers = String::new();
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 == 0 {
            messages.push(payload.to_vec());
        } else {
            trailers.push_str(std::str::from_utf8(payload).expect("trailers are text"));
        }
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "trailing bytes after the last frame");
    (messages, trailers)
}

/// One call a [`FakeGrpc`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/package.Service/Method`.
    pub path: String,
    /// The request's headers (its metadata).
    pub metadata: http::HeaderMap,
    /// The request message, encoded.
    pub message: Bytes,
}

impl Recorded {
    pub fn decode<M: prost::Message + Default>(&self) -> M {
        M::decode(self.message.clone()).expect("the edge sent a valid message")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.metadata.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a [`FakeGrpc`] answers a call.
pub enum Answer {
    /// Response headers (metadata), these encoded messages, then the status (`OK` or an
    /// error after the messages) in the trailers.
    Messages {
        metadata: Vec<(&'static str, String)>,
        messages: Vec<Vec<u8>>,
        end: Status,
    },
    /// A trailers-only error.
    Status(Status),
    /// One message, a pause, then another and `OK`.
    Slow {
        messages: [Vec<u8>; 2],
        pause: std::time::Duration,
    },
}

impl Answer {
    /// One empty message (valid for every message type) and `OK`.
    pub fn empty() -> Self {
        Self::one(Vec::new())
    }

    pub fn one(message: Vec<u8>) -> Self {
        Self::Messages {
            metadata: vec![
                ("x-process-time", "0.000042".into()),
                ("x-request-id", "req-1".into()),
            ],
            messages: vec![message],
            end: Status::ok(""),
        }
    }
}

type Answering = dyn Fn(&Recorded) -> Answer + Send + Sync;

/// A gRPC server for any method of any service: it records what it receives and answers
/// as told. Speaks HTTP/2 gRPC framing itself, so every RPC of the contract is served
/// without per-service code.
pub struct FakeGrpc {
    pub addr: SocketAddr,
    pub calls: Arc<std::sync::Mutex<Vec<Recorded>>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeGrpc {
    pub async fn start(answer: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let addr = listener.local_addr().expect("fake addr");
        let calls: Arc<std::sync::Mutex<Vec<Recorded>>> = Arc::default();
        let answer: Arc<Answering> = Arc::new(answer);
        let state = (calls.clone(), answer);
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (calls, answer) = state.clone();
            async move { serve_fake_call(request, &calls, &*answer).await }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("fake serves");
        });
        Self {
            addr,
            calls,
            stop: Some(stop),
            task,
        }
    }

    /// Answers every call with one empty message.
    pub async fn echo() -> Self {
        Self::start(|_| Answer::empty()).await
    }

    pub fn channel(&self) -> Channel {
        namaskah_edge::upstream_channel(format!("http://{}", self.addr).parse().expect("url"))
    }

    pub fn calls(&self) -> Vec<Recorded> {
        self.calls.lock().expect("calls").clone()
    }

    /// The only call received so far.
    pub fn only_call(&self) -> Recorded {
        let calls = self.calls();
        assert_eq!(calls.len(), 1, "expected one call, got {calls:?}");
        calls[0].clone()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

async fn serve_fake_call(
    request: axum::extract::Request,
    calls: &std::sync::Mutex<Vec<Recorded>>,
    answer: &Answering,
) -> axum::response::Response {
    use axum::body::Body;
    use http_body::Frame;

    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // One length-prefixed, uncompressed message.
    let message = if body.len() >= 5 {
        body.slice(5..)
    } else {
        Bytes::new()
    };
    let recorded = Recorded {
        path: parts.uri.path().to_owned(),
        metadata: parts.headers.clone(),
        message,
    };
    calls.lock().expect("calls").push(recorded.clone());
    match answer(&recorded) {
        Answer::Status(status) => status.into_http::<Body>(),
        Answer::Slow {
            messages: [first, second],
            pause,
        } => {
            let trailers = {
                let mut headers = Status::ok("").into_http::<()>().into_parts().0.headers;
                headers.remove(http::header::CONTENT_TYPE);
                headers
            };
            let frames = futures::stream::unfold(0, move |step| {
                let (first, second, trailers) = (first.clone(), second.clone(), trailers.clone());
                async move {
                    let frame = match step {
                        0 => Frame::data(Bytes::from(length_prefixed(&first))),
                        1 => {
                            tokio::time::sleep(pause).await;
                            Frame::data(Bytes::from(length_prefixed(&second)))
                        }
                        2 => Frame::trailers(trailers),
                        _ => return None,
                    };
                    Some((Ok::<_, std::convert::Infallible>(frame), step + 1))
                }
            });
            let mut response =
                http::Response::new(Body::new(http_body_util::StreamBody::new(frames)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            response
        }
        Answer::Messages {
            metadata,
            messages,
            end,
        } => {
            let trailers = {
                let mut headers = end.into_http::<()>().into_parts().0.headers;
                headers.remove(http::header::CONTENT_TYPE);
                headers
            };
            let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = messages
                .into_iter()
                .map(|payload| Ok(Frame::data(Bytes::from(length_prefixed(&payload)))))
                .collect();
            frames.push(Ok(Frame::trailers(trailers)));
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
            let mut response = http::Response::new(Body::new(body));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            for (name, value) in metadata {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("header value"));
            }
            response
        }
    }
}

fn length_prefixed(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}
