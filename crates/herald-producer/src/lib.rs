//! Publishing into Herald's outbox, and Herald's HTTP API.
//!
//! Owns: [`publish()`] on a caller's `tokio_postgres::Transaction` (the Rust twin of the SQL
//! function `herald.publish`), and the axum [`api::router`] for `/v1`, `/healthz`, `/readyz`
//! and `/metrics`: tenants' tokens, events, endpoints.
//!
//! Must not: fan events out or send webhooks (that is the outbox-poller's and the
//! delivery-worker's), or hold a transaction open across anything but its own statements.

pub mod api;
mod batch;
mod publish;
mod sql;
pub mod tenant;

pub use batch::Publisher;
pub use publish::{publish, NewEvent, PublishError, Published};
