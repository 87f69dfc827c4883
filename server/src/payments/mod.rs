//! Top-ups through a payment gateway (Paystack, or the built-in sandbox gateway): starting
//! them, learning how they ended from signed webhooks or by asking, and crediting the
//! wallet exactly once per gateway reference.
pub mod domain;
pub mod entities;
pub mod gateway;
pub mod grpc;
pub mod paystack;
pub mod repo;
pub mod sandbox;
pub mod service;
