//! The receiving side of Herald webhooks, for agent servers and other receivers written in
//! Rust (docs/receiving.md shows the same in Python and TypeScript).
//!
//! Owns: verifying Standard Webhooks 1.0 signatures against one or more `whsec_` secrets
//! ([`Verifier`]); the event body Herald sends ([`Event`]) and the human-in-the-loop
//! [`Operation`] that `approval_*` and `human_contact_*` events carry as `data`; dedupe by
//! `webhook-id` ([`Deduper`], with an in-memory [`MemoryDeduper`]).
//!
//! Must not: depend on any other Herald crate (a receiver builds it alone), start tasks, need an
//! async runtime, an HTTP server or client, or a database; panic on anything a request
//! carries; read the body before its signature passed. It verifies the `standard-webhooks`
//! scheme only, not the GitHub-style `hmac-sha256-hex` one.
//!
//! # Receiving a webhook
//!
//! Verify the raw body bytes as received (not a re-serialised object), dedupe on the
//! webhook id, answer 2xx quickly, and do slow work after answering.
//!
//! ```
//! use base64::Engine as _;
//! use hmac::{Hmac, Mac};
//! use herald_receiver::{event_types, Deduper, MemoryDeduper, OpState, Verifier};
//!
//! // The endpoint's (or callback's) secret, as Herald answered it once; keep it in config.
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//!
//! // What Herald sends: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), where the key is
//! // the base64-decoded part after `whsec_`.
//! let body = br#"{"created_at":"2026-11-22T10:05:00.000000Z","data":{"call_id":"call_1","kind":"approval","requested_at":"2026-11-22T10:00:00.000000Z","run_id":null,"spec":{"fn":"send_email","kwargs":{"to":"ana@example.com"}},"state":{"thread_id":"th_9"},"status":{"approved":true,"state":"approved"}},"id":"evt_1","type":"approval_completed"}"#;
//! let timestamp = chrono::Utc::now().timestamp();
//! let key = base64::engine::general_purpose::STANDARD.decode(&secret["whsec_".len()..])?;
//! let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
//! mac.update(format!("evt_1.{timestamp}.").as_bytes());
//! mac.update(body);
//! let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("webhook-id", "evt_1".parse()?);
//! headers.insert("webhook-timestamp", timestamp.to_string().parse()?);
//! headers.insert("webhook-signature", format!("v1,{signature}").parse()?);
//!
//! // What the receiver does. Build these once, at start; during a secret rotation pass both.
//! let verifier = Verifier::new(&[secret])?;
//! let processed = MemoryDeduper::new(100_000);
//!
//! let webhook = verifier.verify(&headers, body)?; // Err: answer 400
//! if processed.first_time(&webhook.id) && webhook.event.event_type == event_types::APPROVAL_COMPLETED {
//!     let op = webhook.event.operation()?;
//!     assert_eq!(op.call_id, "call_1");
//!     assert_eq!(op.status.state, OpState::Approved);
//!     assert_eq!(op.state["thread_id"], "th_9"); // the agent's own state: which run to resume
//! }
//! assert!(!processed.first_time("evt_1")); // a retry of the same event: answer 2xx, skip it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Dedupe in production
//!
//! [`MemoryDeduper`] is for one process; use your database's unique constraint in
//! production, in the same transaction as the agent's own state change, so that a crash
//! between the two cannot lose or double an event:
//!
//! ```sql
//! CREATE TABLE processed_webhooks (
//!     webhook_id  text PRIMARY KEY,
//!     received_at timestamptz NOT NULL DEFAULT now()
//! );
//!
//! BEGIN;
//! INSERT INTO processed_webhooks (webhook_id) VALUES ($1) ON CONFLICT DO NOTHING;
//! -- 1 row inserted: the first time; apply the state change here, then COMMIT.
//! -- 0 rows: a duplicate; ROLLBACK (or COMMIT nothing) and answer 2xx.
//! COMMIT;
//! ```
//!
//! If the transaction rolls back, the id goes with it, and Herald's retry is processed.

mod dedupe;
mod event;
mod verify;

pub use dedupe::{Deduper, MemoryDeduper};
pub use event::{event_types, Event, Kind, OpState, Operation, Spec, Status, Webhook};
pub use verify::{
    sign, Verifier, VerifyError, DEFAULT_TOLERANCE, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SECRET_PREFIX,
};
