//! Prometheus metrics of one process, shared by its components through an `Arc` (no globals).
//! `/metrics` renders them in the Prometheus text format.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    /// Events accepted over the HTTP API (SQL publishes are counted at fan-out).
    pub events_published: Counter,
    pub events_fanned_out: Counter,
    pub deliveries_created: Counter,
    /// Attempts by result: `delivered`, or the error class (`http_status`, `timeout`, ...).
    attempts: Family<Labels, Counter>,
    /// Deliveries that reached a final state: `delivered` or `failed`.
    finished: Family<Labels, Counter>,
    /// Seconds one HTTP attempt took.
    pub attempt_seconds: Histogram,
    /// Seconds from an event's creation to its delivery (first successful attempt).
    pub delivery_lag_seconds: Histogram,
    pub in_flight: Gauge,
    pub claims: Counter,
    pub claimed: Counter,
    /// LISTEN/NOTIFY wake-ups received, by channel.
    wakeups: Family<Labels, Counter>,
    /// Panics caught (and survived), by component: `api`, `worker`, `poller`.
    panics: Family<Labels, Counter>,
    /// Events the outbox-poller set aside because it could not fan them out.
    pub fanout_failures: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

fn buckets() -> impl Iterator<Item = f64> {
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0].into_iter()
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("herald");
        let m = Self {
            events_published: Counter::default(),
            events_fanned_out: Counter::default(),
            deliveries_created: Counter::default(),
            attempts: Family::default(),
            finished: Family::default(),
            attempt_seconds: Histogram::new(buckets()),
            delivery_lag_seconds: Histogram::new(buckets()),
            in_flight: Gauge::default(),
            claims: Counter::default(),
            claimed: Counter::default(),
            wakeups: Family::default(),
            panics: Family::default(),
            fanout_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("events_published", "Events accepted over the HTTP API", m.events_published.clone());
        registry.register("events_fanned_out", "Events fanned out into deliveries", m.events_fanned_out.clone());
        registry.register("deliveries_created", "Deliveries created by fan-out", m.deliveries_created.clone());
        registry.register("attempts", "HTTP attempts by result", m.attempts.clone());
        registry.register("deliveries_finished", "Deliveries that reached delivered or failed", m.finished.clone());
        registry.register("attempt_seconds", "Duration of one HTTP attempt", m.attempt_seconds.clone());
        registry.register(
            "delivery_lag_seconds",
            "From an event's creation to its successful delivery",
            m.delivery_lag_seconds.clone(),
        );
        registry.register("attempts_in_flight", "HTTP attempts in flight in this process", m.in_flight.clone());
        registry.register("claims", "Claim rounds run by this process's worker", m.claims.clone());
        registry.register("claimed", "Deliveries claimed by this process's worker", m.claimed.clone());
        registry.register("wakeups", "LISTEN/NOTIFY wake-ups received, by channel", m.wakeups.clone());
        registry.register("panics", "Panics caught and survived, by component", m.panics.clone());
        registry.register(
            "fanout_failures",
            "Events set aside because the outbox-poller could not fan them out",
            m.fanout_failures.clone(),
        );
        Arc::new(Self { registry, ..m })
    }

    pub fn attempt(&self, result: &str) {
        self.attempts.get_or_create(&vec![("result".to_string(), result.to_string())]).inc();
    }

    pub fn finished(&self, state: &str) {
        self.finished.get_or_create(&vec![("state".to_string(), state.to_string())]).inc();
    }

    pub fn panicked(&self, component: &str) {
        self.panics.get_or_create(&vec![("component".to_string(), component.to_string())]).inc();
    }

    pub fn wakeup(&self, channel: &str) {
        self.wakeups.get_or_create(&vec![("channel".to_string(), channel.to_string())]).inc();
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
