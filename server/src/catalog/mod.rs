//! The catalog: the services numbers are rented for, the countries they come from, and
//! what each costs the caller (`CatalogService`), seeded from `server/data/catalog.json`.
pub mod domain;
pub mod entities;
pub mod grpc;
pub mod inventory;
pub mod rates;
pub mod repo;
pub mod seed;
pub mod service;
