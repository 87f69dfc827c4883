//! Namaskah's gRPC server as a library, so that `main` and the integration tests build the
//! very same application.
//!
//! Rooms are named after the product (identity, …); each has its handlers (`grpc`), its
//! rules (`domain`) and its storage (`repo`). The plumbing lives beside them.
pub mod admin;
pub mod analytics;
pub mod app;
pub mod authn;
pub mod billing;
pub mod cache;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod convert;
pub mod error;
pub mod identity;
pub mod mail;
pub mod paging;
pub mod payments;
pub mod providers;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod verification;
pub mod wallet;

pub use app::Application;
pub use config::Config;
