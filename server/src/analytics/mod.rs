//! Conversion tracking and the figures the business runs on: funnel steps recorded where
//! they happen and client events from `TrackEvent` (both written in batches, off the request
//! path), and the administrators' reports — revenue, the conversion funnel, customer
//! metrics — read from daily rollups kept up to date by a job, plus the raw tail after them.
pub mod domain;
pub mod entities;
pub mod events;
pub mod grpc;
pub mod repo;
pub mod service;
