//! Herald's shared core: what every component needs and nothing that belongs to one of them.
//!
//! Owns: settings shared by all components ([`config`]), the database pool and the embedded
//! migrations ([`db`]), time-ordered ids ([`id`]), the [`clock::Clock`] that every statement
//! takes its time from, input validation ([`validate`]) and event data as sent ([`data`]),
//! the SSRF allow-list ([`targets`]), webhook signing ([`signing`]), and every statement on
//! herald.deliveries with its states and fan-out ([`deliveries`]).
//!
//! Must not: depend on any Herald service crate, on axum, or on an HTTP client. Its only loop
//! is the LISTEN wake-up helper ([`listen`]); component loops live in their crates.

pub mod citus;
pub mod clock;
pub mod config;
pub mod data;
pub mod db;
pub mod deliveries;
pub mod dialect;
pub mod id;
pub mod listen;
pub mod metrics;
pub mod panic;
pub mod policy;
pub mod signing;
pub mod statements;
pub mod targets;
pub mod tls;
pub mod token;
pub mod trace;
pub mod validate;
