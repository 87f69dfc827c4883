//! Verifications: a number rented for one service, the SMS it receives and the code in it.
pub mod codes;
pub mod domain;
pub mod entities;
pub mod feed;
pub mod grpc;
pub mod jobs;
pub mod repo;
pub mod service;
pub mod view;
