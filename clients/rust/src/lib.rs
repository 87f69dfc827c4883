//! A client for the Namaskah API (`namaskah.v1`): the messages and gRPC clients generated
//! from `proto/` by `buf generate` (protoc-gen-prost and protoc-gen-tonic), and
//! [`Namaskah`], a small wrapper that authenticates every call with an API key or with
//! the tokens of a login, refreshing them before they run out.
//!
//! ```no_run
//! # async fn run() -> Result<(), namaskah_client::Error> {
//! use namaskah_client::{Credentials, Namaskah, v1};
//!
//! let namaskah = Namaskah::connect(
//!     "http://localhost:50051",
//!     Credentials::ApiKey("nsk_…".into()),
//! )
//! .await?;
//! let me = namaskah.auth().await?.get_me(v1::GetMeRequest {}).await?;
//! println!("{}", me.into_inner().user.unwrap_or_default().email);
//! # Ok(())
//! # }
//! ```

mod auth;

pub use auth::{AuthInterceptor, Authenticated, Credentials, Error, Namaskah};

/// Every message and gRPC client of package `namaskah.v1`, as generated.
pub mod v1 {
    #![allow(
        missing_docs,
        clippy::all,
        clippy::pedantic,
        rustdoc::broken_intra_doc_links,
        rustdoc::invalid_html_tags,
        rustdoc::bare_urls
    )]
    include!("gen/namaskah/v1/namaskah.v1.rs");
}
