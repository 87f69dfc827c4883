//! Authentication, shared by every service: a tower layer in front of all of them reads
//! `authorization: Bearer …` or `x-api-key: …`, establishes the [`Principal`] and puts it in
//! the request's extensions. RPCs not on the public list are refused without credentials
//! before any handler runs, so a new service is protected by default.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::{Request, Status};
use tower::{Layer, Service};

use crate::catalog::service::Catalog;
use crate::error::ApiError;
use crate::identity::domain::Principal;
use crate::identity::service::{Identity, Presented, TenantGate};

/// RPCs that answer without credentials (they still use them when sent).
const PUBLIC_METHODS: &[&str] = &[
    "/namaskah.v1.AuthService/Register",
    "/namaskah.v1.AuthService/VerifyEmail",
    "/namaskah.v1.AuthService/ResendVerificationEmail",
    "/namaskah.v1.AuthService/Login",
    "/namaskah.v1.AuthService/RefreshToken",
    "/namaskah.v1.AuthService/Logout",
    "/namaskah.v1.AuthService/RequestPasswordReset",
    "/namaskah.v1.AuthService/ResetPassword",
    "/namaskah.v1.CatalogService/ListServices",
    "/namaskah.v1.CatalogService/ListCountries",
    "/namaskah.v1.CatalogService/GetPrice",
    "/namaskah.v1.SubscriptionService/ListPlans",
    "/namaskah.v1.TenantService/GetBranding",
    "/namaskah.v1.AnalyticsService/TrackEvent",
    "/namaskah.v1.WebhookService/ReceiveWebhook",
];

/// Services that are public as a whole (health checks and reflection).
const PUBLIC_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

fn path_is_health(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

pub fn is_public(path: &str) -> bool {
    PUBLIC_METHODS.contains(&path) || PUBLIC_SERVICES.iter().any(|s| path.starts_with(s))
}

/// Reads credentials from request headers. Both present is refused as ambiguous.
pub fn presented(headers: &http::HeaderMap) -> Result<Option<Presented>, ApiError> {
    let key = headers.get("x-api-key");
    let bearer = headers.get(http::header::AUTHORIZATION);
    let malformed = |what: &str| {
        ApiError::unauthenticated(
            "CREDENTIALS_MALFORMED",
            format!("the {what} header is malformed"),
        )
    };
    match (key, bearer) {
        (Some(_), Some(_)) => Err(ApiError::unauthenticated(
            "CREDENTIALS_AMBIGUOUS",
            "send either x-api-key or authorization, not both",
        )),
        (Some(key), None) => {
            let key = key.to_str().map_err(|_| malformed("x-api-key"))?;
            Ok(Some(Presented::ApiKey(key.trim().to_owned())))
        }
        (None, Some(value)) => {
            let value = value.to_str().map_err(|_| malformed("authorization"))?;
            let (scheme, token) = value
                .trim()
                .split_once(' ')
                .ok_or_else(|| malformed("authorization"))?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(malformed("authorization (expected `Bearer <token>`)"));
            }
            Ok(Some(Presented::Bearer(token.trim().to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// The calling account, established by [`AuthLayer`]; `UNAUTHENTICATED` if there is none.
pub fn caller<T>(request: &Request<T>) -> Result<&Principal, Status> {
    optional_caller(request).ok_or_else(|| {
        ApiError::unauthenticated("UNAUTHENTICATED", "this RPC needs credentials").into_status()
    })
}

/// The calling account on a public RPC, if credentials were sent.
pub fn optional_caller<T>(request: &Request<T>) -> Option<&Principal> {
    request.extensions().get::<Principal>()
}

/// The tenant whose storefront a request is in, established by [`AuthLayer`]: the
/// account's tenant when credentials were sent, else the tenant of the host name the
/// request was sent to. `None`: the platform's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Storefront(pub Option<uuid::Uuid>);

/// The request's storefront (see [`Storefront`]).
pub fn storefront<T>(request: &Request<T>) -> Option<uuid::Uuid> {
    request
        .extensions()
        .get::<Storefront>()
        .and_then(|store| store.0)
}

/// The host a request names: `x-forwarded-host` (set by the edge and by nginx, which see
/// the browser's `Host`), else `:authority`/`Host`. Only ever used to pick a storefront for
/// callers without credentials, who could send any `Host` anyway.
pub fn host_of<B>(request: &http::Request<B>) -> Option<String> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or_default().trim().to_owned())
    };
    let raw = header("x-forwarded-host")
        .filter(|h| !h.is_empty())
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
        .or_else(|| header("host"))?;
    crate::tenant::domain::normalize_host(&raw)
}

/// Login and RefreshToken refuse a suspended tenant's customers with the check
/// [`Authenticate`] applies to their other calls (the account's storefront), so the answer
/// is the same.
#[async_trait::async_trait]
impl TenantGate for Catalog {
    async fn admit(&self, tenant: Option<uuid::Uuid>) -> Result<(), ApiError> {
        self.storefront(Some(tenant), None).await.map(drop)
    }
}

#[derive(Clone)]
pub struct AuthLayer {
    identity: Arc<Identity>,
    catalog: Arc<Catalog>,
}

impl AuthLayer {
    pub fn new(identity: Arc<Identity>, catalog: Arc<Catalog>) -> Self {
        Self { identity, catalog }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            identity: Arc::clone(&self.identity),
            catalog: Arc::clone(&self.catalog),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    identity: Arc<Identity>,
    catalog: Arc<Catalog>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, RB> Service<http::Request<B>> for Authenticate<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone is the one that was polled ready; keep a fresh clone for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let identity = Arc::clone(&self.identity);
        let catalog = Arc::clone(&self.catalog);
        Box::pin(async move {
            let public = is_public(request.uri().path());
            let outcome = match presented(request.headers()) {
                // On a public RPC, credentials that fail (an expired access token sent along
                // with RefreshToken, say) leave the caller anonymous instead of refused.
                Ok(Some(credentials)) if public => {
                    Ok(identity.authenticate(credentials).await.ok())
                }
                Err(_) if public => Ok(None),
                Ok(Some(credentials)) => identity.authenticate(credentials).await.map(Some),
                Ok(None) if public => Ok(None),
                Ok(None) => Err(ApiError::unauthenticated(
                    "UNAUTHENTICATED",
                    "this RPC needs credentials: send `authorization: Bearer <access token>` or `x-api-key: nsk_…`",
                )),
                Err(error) => Err(error),
            };
            let host = host_of(&request);
            let account_tenant = match &outcome {
                Ok(Some(principal)) => Some(principal.tenant),
                _ => None,
            };
            let store = if outcome.is_ok() {
                catalog.storefront(account_tenant, host.as_deref()).await
            } else {
                Ok(None)
            };
            let store = match store {
                Ok(store) => store,
                // Health checks answer whatever the catalog's state.
                Err(_) if path_is_health(request.uri().path()) => None,
                Err(error) => return Ok(error.into_status().into_http()),
            };
            match outcome {
                Ok(Some(principal)) => {
                    crate::telemetry::authenticated(request.extensions(), principal.user_id);
                    request.extensions_mut().insert(principal);
                }
                Ok(None) => {}
                Err(error) => return Ok(error.into_status().into_http()),
            }
            request.extensions_mut().insert(Storefront(store));
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_list() {
        assert!(is_public("/namaskah.v1.AuthService/Login"));
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(!is_public("/namaskah.v1.AuthService/GetMe"));
        assert!(!is_public("/namaskah.v1.WalletService/GetBalance"));
        assert!(!is_public("/namaskah.v1.AuthService/Login/extra"));
    }

    #[test]
    fn credentials_from_headers() {
        let mut h = http::HeaderMap::new();
        assert!(presented(&h).unwrap().is_none());
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert!(matches!(presented(&h), Ok(Some(Presented::Bearer(t))) if t == "abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(presented(&h).is_err());
        h.insert("x-api-key", "nsk_x".parse().unwrap());
        assert!(presented(&h).is_err());
        h.remove("authorization");
        assert!(matches!(presented(&h), Ok(Some(Presented::ApiKey(k))) if k == "nsk_x"));
    }
}
