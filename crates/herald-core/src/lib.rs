//! Herald's shared core: what every component needs and nothing that belongs to one of them.
//!
//! Owns: settings shared by all components ([`config`]), the database pool and the embedded
//! migrations ([`db`]), time-ordered ids ([`id`]), the [`clock::Clock`] that every statement
//! takes its time from, input validation ([`validate`]), the SSRF allow-list ([`targets`]),
//! and webhook signing ([`signing`]).
//!
//! Must not: depend on any Herald service crate, on axum, or on an HTTP client. It holds no
//! loops and starts no tasks.

pub mod clock;
pub mod config;
pub mod db;
pub mod id;
pub mod signing;
pub mod targets;
pub mod token;
pub mod validate;
