//! Publishing into Herald's outbox, and Herald's HTTP API.
//!
//! Owns: [`publish()`] on a caller's `tokio_postgres::Transaction` (the Rust twin of the SQL
//! function `herald.publish`), the API's group commit ([`Publisher`]: its events and their
//! deliveries, fanned out by `herald_core::deliveries` in the same transaction), and the axum
//! [`api::router`] for `/v1`, `/healthz`, `/readyz` and `/metrics`: tenants' tokens, events,
//! endpoints, operations.
//!
//! Must not: send webhooks (that is the delivery-worker's), fan out what `herald.publish`
//! queued (the outbox-poller's), or hold a transaction open across anything but its own
//! statements.

pub mod api;
mod batch;
mod publish;
mod sql;
pub mod tenant;

pub use batch::Publisher;
pub use publish::{publish, NewEvent, PublishError, Published};
