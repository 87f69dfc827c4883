//! Who the caller is: an API key (`x-api-key`) or a session's access token
//! (`authorization: Bearer …`), with the refresh token exchanged for a new pair shortly
//! before the access token expires.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::v1;
use crate::v1::auth_service_client::AuthServiceClient;

/// How the client proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// An API key (`nsk_…`), for integrators: it never expires, but cannot create keys or
    /// change two-factor authentication.
    ApiKey(String),
    /// Log in with an email and password (and a TOTP or backup code once 2FA is on).
    Password {
        email: String,
        password: String,
        totp_code: Option<String>,
    },
    /// Resume a session from tokens kept from an earlier login or refresh.
    Tokens(v1::TokenPair),
}

impl std::fmt::Debug for Credentials {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ApiKey(_) => f.write_str("ApiKey(…)"),
            Credentials::Password { email, .. } => write!(f, "Password({email}, …)"),
            Credentials::Tokens(_) => f.write_str("Tokens(…)"),
        }
    }
}

/// What can go wrong outside a call's own answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the server refused: {0}")]
    Status(#[from] Status),
    #[error("the server answered {0} without tokens")]
    NoTokens(&'static str),
    #[error("the credential cannot be sent as metadata (it is not visible ASCII)")]
    BadCredential,
}

/// The service under every client [`Namaskah`] makes: the channel, with the credential
/// added to each call (`VerificationServiceClient<Authenticated>` and so on).
pub type Authenticated = InterceptedService<Channel, AuthInterceptor>;

/// Adds the credential to a request's metadata.
#[derive(Clone)]
pub struct AuthInterceptor {
    key: MetadataKey<tonic::metadata::Ascii>,
    value: AsciiMetadataValue,
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(self.key.clone(), self.value.clone());
        Ok(request)
    }
}

enum State {
    ApiKey(AsciiMetadataValue),
    Session(v1::TokenPair),
}

/// A connection to the Namaskah gRPC API with one caller's credentials. Cheap to clone:
/// clones share the connection and the session (so a refresh by one is seen by all).
#[derive(Clone)]
pub struct Namaskah {
    channel: Channel,
    state: Arc<tokio::sync::Mutex<State>>,
    refresh_margin: Duration,
}

impl Namaskah {
    /// Connects to `url` (for example `http://localhost:50051`) and, for
    /// [`Credentials::Password`], logs in.
    pub async fn connect(url: impl Into<String>, credentials: Credentials) -> Result<Self, Error> {
        let channel = Endpoint::from_shared(url.into())?.connect().await?;
        Self::with_channel(channel, credentials).await
    }

    /// Uses an existing channel (TLS, timeouts and the like configured by the caller).
    pub async fn with_channel(channel: Channel, credentials: Credentials) -> Result<Self, Error> {
        let state = match credentials {
            Credentials::ApiKey(key) => {
                State::ApiKey(key.parse().map_err(|_| Error::BadCredential)?)
            }
            Credentials::Tokens(tokens) => State::Session(tokens),
            Credentials::Password {
                email,
                password,
                totp_code,
            } => {
                let answer = AuthServiceClient::new(channel.clone())
                    .login(v1::LoginRequest {
                        email,
                        password,
                        totp_code: totp_code.unwrap_or_default(),
                    })
                    .await?
                    .into_inner();
                State::Session(answer.tokens.ok_or(Error::NoTokens("Login"))?)
            }
        };
        Ok(Self {
            channel,
            state: Arc::new(tokio::sync::Mutex::new(state)),
            refresh_margin: Duration::from_secs(60),
        })
    }

    /// Refresh the access token when less than `margin` of its life is left (default one
    /// minute).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The session's current tokens (to keep and resume with [`Credentials::Tokens`]);
    /// `None` for an API key.
    pub async fn tokens(&self) -> Option<v1::TokenPair> {
        match &*self.state.lock().await {
            State::ApiKey(_) => None,
            State::Session(tokens) => Some(tokens.clone()),
        }
    }

    /// Exchanges the refresh token for a new pair now. Refresh tokens rotate: the old one
    /// is spent (presenting it again would end the session).
    pub async fn refresh(&self) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        if let State::Session(tokens) = &mut *state {
            *tokens = self.refreshed(tokens).await?;
        }
        Ok(())
    }

    async fn refreshed(&self, tokens: &v1::TokenPair) -> Result<v1::TokenPair, Error> {
        let answer = AuthServiceClient::new(self.channel.clone())
            .refresh_token(v1::RefreshTokenRequest {
                refresh_token: tokens.refresh_token.clone(),
            })
            .await?
            .into_inner();
        answer.tokens.ok_or(Error::NoTokens("RefreshToken"))
    }

    /// The interceptor for the next calls, refreshing the session first when its access
    /// token is about to expire. One caller refreshes at a time; the others wait and use
    /// the new token.
    pub async fn interceptor(&self) -> Result<AuthInterceptor, Error> {
        let mut state = self.state.lock().await;
        match &mut *state {
            State::ApiKey(key) => Ok(AuthInterceptor {
                key: MetadataKey::from_static("x-api-key"),
                value: key.clone(),
            }),
            State::Session(tokens) => {
                if expires_within(tokens, self.refresh_margin) {
                    *tokens = self.refreshed(tokens).await?;
                }
                Ok(AuthInterceptor {
                    key: MetadataKey::from_static("authorization"),
                    value: format!("Bearer {}", tokens.access_token)
                        .parse()
                        .map_err(|_| Error::BadCredential)?,
                })
            }
        }
    }

    async fn intercepted(&self) -> Result<Authenticated, Error> {
        Ok(InterceptedService::new(
            self.channel.clone(),
            self.interceptor().await?,
        ))
    }

    /// `AuthService`. Credentials are fixed when a client is made: make a new one rather
    /// than keeping one longer than the access token lives.
    pub async fn auth(
        &self,
    ) -> Result<v1::auth_service_client::AuthServiceClient<Authenticated>, Error> {
        Ok(v1::auth_service_client::AuthServiceClient::new(
            self.intercepted().await?,
        ))
    }

    /// `VerificationService`.
    pub async fn verifications(
        &self,
    ) -> Result<v1::verification_service_client::VerificationServiceClient<Authenticated>, Error>
    {
        Ok(
            v1::verification_service_client::VerificationServiceClient::new(
                self.intercepted().await?,
            ),
        )
    }

    /// `WalletService`.
    pub async fn wallet(
        &self,
    ) -> Result<v1::wallet_service_client::WalletServiceClient<Authenticated>, Error> {
        Ok(v1::wallet_service_client::WalletServiceClient::new(
            self.intercepted().await?,
        ))
    }

    /// `CatalogService`.
    pub async fn catalog(
        &self,
    ) -> Result<v1::catalog_service_client::CatalogServiceClient<Authenticated>, Error> {
        Ok(v1::catalog_service_client::CatalogServiceClient::new(
            self.intercepted().await?,
        ))
    }

    /// `SubscriptionService`.
    pub async fn subscriptions(
        &self,
    ) -> Result<v1::subscription_service_client::SubscriptionServiceClient<Authenticated>, Error>
    {
        Ok(
            v1::subscription_service_client::SubscriptionServiceClient::new(
                self.intercepted().await?,
            ),
        )
    }

    /// `SandboxService` (sandbox servers only).
    pub async fn sandbox(
        &self,
    ) -> Result<v1::sandbox_service_client::SandboxServiceClient<Authenticated>, Error> {
        Ok(v1::sandbox_service_client::SandboxServiceClient::new(
            self.intercepted().await?,
        ))
    }

    /// The underlying channel, for the other generated clients with
    /// [`Namaskah::interceptor`].
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

fn expires_within(tokens: &v1::TokenPair, margin: Duration) -> bool {
    let Some(expiry) = &tokens.access_token_expire_time else {
        return false;
    };
    let Ok(expiry) = SystemTime::try_from(*expiry) else {
        return true;
    };
    match expiry.duration_since(SystemTime::now()) {
        Ok(left) => left < margin,
        Err(_) => true,
    }
}
