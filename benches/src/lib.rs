//! `namaskah-load`: a load driver for the Namaskah gRPC API that reports the figures ghz
//! does (RPS, latency percentiles, status codes, errors), as text and as ghz-shaped JSON.
//!
//! The pieces: [`scenario`] (what one call is, and its set-up), [`runner`] (connections,
//! workers, the run's bound), [`stats`] (per-worker counts and an HDR histogram),
//! [`report`] (summary, text, ghz JSON), [`duration`] (`30s`-style durations), [`cli`], and
//! [`ledger`] (the one scenario that drives the database instead of the gRPC server), and
//! [`verifications`] (buying, reading and watching verifications from funded accounts), and
//! [`users`] (many customers at once, each a loop of log in, browse, top up, buy, watch).

pub mod analytics_data;
pub mod cli;
pub mod duration;
pub mod ledger;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod users;
pub mod verifications;
