//! Identity: accounts, email verification, password reset, sessions with rotating refresh
//! tokens, API keys and two-factor authentication.
pub mod domain;
pub mod entities;
pub mod grpc;
pub mod repo;
pub mod service;
