//! Herald's ids: a prefix and a ULID (48 bits of milliseconds, 80 random bits, Crockford base32),
//! so that ids sort as text in creation order. `herald.new_id` in SQL makes the same shape.
//! `seq` is the outbox's order key: never a database sequence (shared/scale-out.md, rule 5).

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rand::Rng;
use ulid::Generator;

pub const EVENT: &str = "evt_";
pub const ENDPOINT: &str = "ep_";
pub const DELIVERY: &str = "dlv_";
pub const ATTEMPT: &str = "att_";
pub const CALL: &str = "call_";

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// A new id with `prefix`, time-ordered at `at`; monotonic within this process.
pub fn new_id(prefix: &str, at: DateTime<Utc>) -> String {
    let mut guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    let ulid = generator
        .generate_from_datetime(at.into())
        // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one.
        .unwrap_or_else(|_| ulid::Ulid::from_datetime(at.into()));
    format!("{prefix}{ulid}")
}

/// The outbox order key for an event published at `at`: microseconds since the epoch times
/// 1024 plus 10 random bits, as in `herald.publish_event`.
pub fn seq_at(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros() * 1024 + rand::rng().random_range(0..1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order() {
        let t = Utc::now();
        let ids: Vec<String> = (0..1000).map(|_| new_id(EVENT, t)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].starts_with("evt_") && ids[0].len() == 30);
        let later = new_id(EVENT, t + chrono::Duration::milliseconds(5));
        assert!(later > ids[999]);
    }
}
