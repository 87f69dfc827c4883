//! Administration: administrators (the admin role, and a login session that passed a TOTP
//! check), their operations on accounts, money, prices and verifications, and the
//! append-only audit log every one of them is written to.
pub mod domain;
pub mod entities;
pub mod grpc;
pub mod repo;
pub mod service;
