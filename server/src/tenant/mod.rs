//! The tenant room: white-label resellers with their own host names, branding and prices.
//! Their storefronts (who sees which prices, whose customers are refused while suspended)
//! are read from the catalog's cached snapshot; this room edits them.
pub mod domain;
pub mod entities;
pub mod grpc;
pub mod repo;
pub mod service;
