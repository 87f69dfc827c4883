//! Services whose room has not landed yet. Each answers every RPC with `UNIMPLEMENTED`
//! (reason `NOT_IMPLEMENTED`) naming the missing capability — never a fake success — while
//! reflection already lists every RPC of the contract.
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use crate::error::ApiError;

fn unimplemented(path: &str, capability: &str) -> http::Response<Body> {
    let method = path.trim_start_matches('/').replacen('/', ".", 1);
    ApiError::Unimplemented {
        capability: format!("{method} ({capability})"),
    }
    .into_status()
    .into_http()
}

macro_rules! pending_service {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $capability:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $ty;

        impl NamedService for $ty {
            const NAME: &'static str = $name;
        }

        impl<B> Service<http::Request<B>> for $ty {
            type Response = http::Response<Body>;
            type Error = Infallible;
            type Future = Ready<Result<Self::Response, Infallible>>;

            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: http::Request<B>) -> Self::Future {
                ready(Ok(unimplemented(request.uri().path(), $capability)))
            }
        }
    };
}

pending_service!(
    /// White-label tenants.
    PendingTenant,
    "namaskah.v1.TenantService",
    "white-label tenants"
);
