//! Dedupe by `webhook-id`. Herald delivers at least once: after a timeout, a crash, a manual
//! retry or a replay, the same event comes again with the same `webhook-id`.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Remembers which webhook ids were processed.
///
/// Production receivers do this in their database, in the same transaction as their own
/// state change, so that "processed" and "marked as processed" commit or roll back together
/// (see the crate docs for the SQL).
pub trait Deduper {
    /// Records `webhook_id` and answers `true` if it was not recorded before: process the
    /// webhook. `false`: a duplicate; answer 2xx and do nothing.
    fn first_time(&self, webhook_id: &str) -> bool;

    /// Forgets `webhook_id`, so that the next delivery of it is processed. Call it when
    /// processing failed after [`Deduper::first_time`] said `true` and you answer non-2xx to
    /// get a retry; without it the retry would be taken for a duplicate.
    fn forget(&self, webhook_id: &str);
}

/// An in-memory [`Deduper`] that keeps the last `capacity` ids, dropping the oldest first.
///
/// For one process: it forgets on restart and is not shared between replicas, so a retry
/// that reaches another process, or this one after a restart, is processed again. Use your
/// database's unique constraint in production.
#[derive(Debug)]
pub struct MemoryDeduper {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    /// The same ids in insertion order, for dropping the oldest.
    order: VecDeque<String>,
}

impl MemoryDeduper {
    /// Keeps at most `capacity` ids (a capacity of 0 is taken as 1). Size it to cover at
    /// least the retry window: with the default schedule that is about 15 hours of webhooks.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), seen: Mutex::new(Seen::default()) }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many ids are remembered now.
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // The set is consistent after every statement, so a panic elsewhere cannot leave it
        // half-changed: take it back from a poisoned lock.
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Deduper for MemoryDeduper {
    fn first_time(&self, webhook_id: &str) -> bool {
        let mut seen = self.lock();
        if seen.ids.contains(webhook_id) {
            return false;
        }
        while seen.ids.len() >= self.capacity {
            let Some(oldest) = seen.order.pop_front() else { break };
            seen.ids.remove(&oldest);
        }
        seen.ids.insert(webhook_id.to_string());
        seen.order.push_back(webhook_id.to_string());
        true
    }

    fn forget(&self, webhook_id: &str) {
        let mut seen = self.lock();
        if seen.ids.remove(webhook_id) {
            seen.order.retain(|id| id != webhook_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_delivery_of_the_same_id_is_a_duplicate() {
        let d = MemoryDeduper::new(10);
        assert!(d.first_time("evt_1"));
        assert!(!d.first_time("evt_1"));
        assert!(d.first_time("evt_2"));
        assert!(!d.first_time("evt_2"));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn the_oldest_id_is_dropped_at_capacity() {
        let d = MemoryDeduper::new(2);
        assert!(d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c")); // drops "a"
        assert_eq!(d.len(), 2);
        assert!(!d.first_time("b"));
        assert!(!d.first_time("c"));
        assert!(d.first_time("a")); // forgotten, so new again; drops "b"
        assert!(d.first_time("b"));
        assert_eq!(MemoryDeduper::new(0).capacity(), 1);
    }

    #[test]
    fn a_forgotten_id_is_processed_again() {
        let d = MemoryDeduper::new(2);
        assert!(d.first_time("a"));
        d.forget("a");
        assert!(d.is_empty());
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        d.forget("never-seen");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn can_be_shared_between_threads() {
        let d = std::sync::Arc::new(MemoryDeduper::new(100));
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| d.first_time("evt_1") as usize)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 1);
    }
}
