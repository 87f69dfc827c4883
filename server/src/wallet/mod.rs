//! The wallet: a double-entry ledger (this module's `ledger`), and — as they land — top-ups
//! through the payment gateway and `WalletService`.
pub mod domain;
pub mod entities;
pub mod grpc;
pub mod ledger;
