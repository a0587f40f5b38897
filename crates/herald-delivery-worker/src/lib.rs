//! The delivery-worker: leases due deliveries, signs and sends them, records every attempt, and
//! schedules retries (contract sections 1 and 2).
//!
//! Owns: the claim (one `FOR UPDATE SKIP LOCKED` statement per tenant that also sets the lease
//! deadline, committed at once), the per-endpoint limits that hold across workers, the HTTP
//! client and its SSRF guard, signing, retry times, attempt records, endpoint health
//! (`failing`, `healthy`, `disabled`) and the `endpoint.*` events.
//!
//! Must not: hold a transaction or a row lock during an HTTP call; claim more deliveries than it
//! has free slots; sleep to retry (retries are rows with a `next_attempt_at`).

pub mod attempt;
mod config;
pub mod fault;
pub mod prepare;
pub mod retry;
pub mod send;
mod sql;
mod store;
mod worker;

pub use attempt::{AttemptOutcome, Claimed, Finished};
pub use config::WorkerConfig;
pub use send::Sender;
pub use store::{Claim, Store, StoreError};

/// A finished attempt, as the recorder takes it (for tests that drive the store directly).
pub fn store_finished(claimed: Claimed, outcome: AttemptOutcome) -> Finished {
    Finished::new(claimed, outcome)
}
pub use worker::{RecorderStopped, Worker};
