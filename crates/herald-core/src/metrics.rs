//! Prometheus metrics of one process, shared by its components through an `Arc` (no globals),
//! in one prometheus-client registry, served as OpenMetrics text (`/metrics`). docs/metrics.md
//! lists each. Labels are bounded: no per-tenant, per-endpoint or per-event label.
//!
//! The queue's gauges need a query over every tenant: one Herald process at a time runs it, the
//! one that holds an advisory lock ([`watch_queue`]), every few seconds; the others export none.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of [`Metrics::render_text`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct Metrics {
    registry: Registry,
    /// Events published, by door: `http` (the API, counted as accepted), `sql` (`herald.publish`)
    /// or `rust` (the Rust crate), those two counted when the poller fans them out.
    published: Family<Labels, Counter>,
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
    /// Deliveries claimed again after the lease of the worker that held them expired.
    pub leases_reclaimed: Counter,
    /// LISTEN/NOTIFY wake-ups received, by channel.
    wakeups: Family<Labels, Counter>,
    /// Panics caught (and survived), by component: `api`, `worker`, `poller`.
    panics: Family<Labels, Counter>,
    /// Events the outbox-poller set aside because it could not fan them out.
    pub fanout_failures: Counter,
    /// What retention removed, by what: deliveries, events, attempt partitions.
    retention: Family<Labels, Counter>,
    /// HTTP requests served, by route (its pattern), method and status.
    http_requests: Family<Labels, Counter>,
    /// Failing-endpoint notices, by channel (`email`, `slack`) and result: `sent`, `failed` (an
    /// attempt that failed; retried), `given_up`, `dropped` (not sent: its channel was turned
    /// off, a newer notice of the same endpoint superseded it, or, for email, the poller has no
    /// mail server).
    notices: Family<Labels, Counter>,
    http_seconds: Histograms,
    pool: Arc<PoolGauges>,
    queue: Arc<QueueGauges>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

/// Seconds, from 5 ms to past the default retry schedule's span (about 14.6 hours) and a week.
fn buckets() -> impl Iterator<Item = f64> {
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 7200.0,
        21600.0, 43200.0, 86400.0, 259200.0, 604800.0,
    ]
    .into_iter()
}

/// An HTTP request's seconds: Herald answers in milliseconds; a slow upload takes up to 30 s.
fn http_buckets() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

fn notice_labels(channel: &str, result: &str) -> Labels {
    vec![("channel".to_string(), channel.to_string()), ("result".to_string(), result.to_string())]
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("herald");
        let m = Self {
            published: Family::default(),
            events_fanned_out: Counter::default(),
            deliveries_created: Counter::default(),
            attempts: Family::default(),
            finished: Family::default(),
            attempt_seconds: Histogram::new(buckets()),
            delivery_lag_seconds: Histogram::new(buckets()),
            in_flight: Gauge::default(),
            claims: Counter::default(),
            claimed: Counter::default(),
            leases_reclaimed: Counter::default(),
            wakeups: Family::default(),
            panics: Family::default(),
            fanout_failures: Counter::default(),
            retention: Family::default(),
            http_requests: Family::default(),
            notices: Family::default(),
            http_seconds: Family::new_with_constructor(http_buckets),
            pool: Arc::default(),
            queue: Arc::default(),
            registry: Registry::default(),
        };
        registry.register("build", "Herald's version", Info::new(label("version", env!("CARGO_PKG_VERSION"))));
        registry.register("events_published", "Events published, by door: http, sql or rust", m.published.clone());
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
        registry.register(
            "leases_reclaimed",
            "Deliveries claimed again after the lease of the worker that held them expired",
            m.leases_reclaimed.clone(),
        );
        registry.register("wakeups", "LISTEN/NOTIFY wake-ups received, by channel", m.wakeups.clone());
        registry.register("panics", "Panics caught and survived, by component", m.panics.clone());
        registry.register(
            "fanout_failures",
            "Events set aside because the outbox-poller could not fan them out",
            m.fanout_failures.clone(),
        );
        registry.register(
            "retention_removed",
            "Rows retention removed (deliveries, events) and attempt partitions it dropped",
            m.retention.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests served, by route, method and status",
            m.http_requests.clone(),
        );
        registry.register("http_request_seconds", "Duration of an HTTP request, by route", m.http_seconds.clone());
        registry.register(
            "notices",
            "Failing-endpoint notices by channel (email, slack) and result (sent, failed, given_up, dropped)",
            m.notices.clone(),
        );
        registry.register_collector(Box::new(m.pool.clone()));
        registry.register_collector(Box::new(m.queue.clone()));
        // The series that alerts and dashboards watch exist from the start, at 0 (an empty
        // family prints nothing, and `increase()` of a series that appears says nothing).
        for component in ["api", "worker", "poller", "retention", "notices"] {
            let _ = m.panics.get_or_create(&label("component", component));
        }
        for state in ["delivered", "failed"] {
            let _ = m.finished.get_or_create(&label("state", state));
        }
        for door in ["http", "sql", "rust"] {
            let _ = m.published.get_or_create(&label("door", door));
        }
        for what in ["deliveries", "events", "attempt_partitions"] {
            let _ = m.retention.get_or_create(&label("what", what));
        }
        for channel in ["email", "slack"] {
            for result in ["sent", "failed", "given_up", "dropped"] {
                let _ = m.notices.get_or_create(&notice_labels(channel, result));
            }
        }
        Arc::new(Self { registry, ..m })
    }

    /// An event published through `door` (`http`, `sql`, `rust`).
    pub fn published(&self, door: &str) {
        self.published.get_or_create(&label("door", door)).inc();
    }

    pub fn attempt(&self, result: &str) {
        self.attempts.get_or_create(&label("result", result)).inc();
    }

    pub fn finished(&self, state: &str) {
        self.finished.get_or_create(&label("state", state)).inc();
    }

    pub fn panicked(&self, component: &str) {
        self.panics.get_or_create(&label("component", component)).inc();
    }

    pub fn retention_removed(&self, what: &str, n: u64) {
        self.retention.get_or_create(&label("what", what)).inc_by(n);
    }

    /// A failing-endpoint notice's attempt on `channel` came to `result` (see `notices`).
    pub fn notice(&self, channel: &str, result: &str) {
        self.notices.get_or_create(&notice_labels(channel, result)).inc();
    }

    pub fn wakeup(&self, channel: &str) {
        self.wakeups.get_or_create(&label("channel", channel)).inc();
    }

    /// A request served: `route` is the pattern it matched (`/v1/events/{id}`), never its path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = vec![
            ("route".to_string(), route.to_string()),
            ("method".to_string(), method.to_string()),
            ("status".to_string(), status.to_string()),
        ];
        self.http_requests.get_or_create(&labels).inc();
        self.http_seconds.get_or_create(&label("route", route)).observe(took.as_secs_f64());
    }

    /// This process's database pool, for the `db_pool_*` gauges.
    pub fn watch_pool(&self, pool: &deadpool_postgres::Pool) {
        *self.pool.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool.clone());
    }

    /// OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The same, in the Prometheus text format 0.0.4 ([`TEXT_CONTENT_TYPE`]), for a client that
    /// does not ask for OpenMetrics (`curl`, `promtool check metrics`): a counter's `# HELP` and
    /// `# TYPE` name its `_total` samples, an info metric is a gauge, no `# UNIT`, no `# EOF`.
    pub fn render_text(&self) -> String {
        let open = self.render();
        let mut counters = std::collections::HashSet::new();
        let mut infos = std::collections::HashSet::new();
        for line in open.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                match rest.rsplit_once(' ') {
                    Some((name, "counter")) => counters.insert(name.to_string()),
                    Some((name, "info")) => infos.insert(name.to_string()),
                    _ => false,
                };
            }
        }
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let meta = ["# HELP ", "# TYPE "].iter().find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
            match meta.and_then(|(p, rest)| rest.split_once(' ').map(|(name, tail)| (p, name, tail))) {
                Some((p, name, tail)) if counters.contains(name) => out.push_str(&format!("{p}{name}_total {tail}")),
                Some((p, name, tail)) if infos.contains(name) => {
                    let tail = if p == "# TYPE " { "gauge" } else { tail };
                    out.push_str(&format!("{p}{name}_info {tail}"));
                }
                _ => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}

/// `db_pool_*`: read from the pool at each scrape.
#[derive(Debug, Default)]
struct PoolGauges(Mutex<Option<deadpool_postgres::Pool>>);

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for PoolGauges {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let Some(pool) = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(()) };
        let s = pool.status();
        gauge(&mut e, "db_pool_max", "Most database connections this process's pool may open", s.max_size as i64)?;
        gauge(&mut e, "db_pool_connections", "Database connections open in this process's pool", s.size as i64)?;
        gauge(&mut e, "db_pool_in_use", "Database connections in use", s.size.saturating_sub(s.available) as i64)?;
        gauge(&mut e, "db_pool_waiting", "Tasks waiting for a database connection", s.waiting as i64)
    }
}

/// The queue as one query saw it.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    pub outbox_depth: i64,
    pub outbox_oldest_age_seconds: f64,
    pub due: i64,
    pub oldest_due_age_seconds: f64,
    pub pending: i64,
    pub delivering: i64,
    pub endpoints: Vec<(String, i64)>,
}

/// The queue's gauges, exported by the process that counted them, while the count is fresh.
#[derive(Debug, Default)]
struct QueueGauges(Mutex<Option<(Queue, Instant, Duration)>>);

impl Collector for QueueGauges {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let Some((q, at, every)) = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(()) };
        // Three intervals without a count: not exported (its process lost the database).
        if at.elapsed() > (every * 3).max(Duration::from_secs(15)) {
            return Ok(());
        }
        gauge(&mut e, "outbox_depth", "Events published by herald.publish and not fanned out yet", q.outbox_depth)?;
        gauge(
            &mut e,
            "outbox_oldest_age_seconds",
            "Age of the oldest event not fanned out yet",
            q.outbox_oldest_age_seconds,
        )?;
        gauge(&mut e, "deliveries_due", "Deliveries due now and not sent yet", q.due)?;
        gauge(
            &mut e,
            "deliveries_oldest_due_age_seconds",
            "How long the oldest due delivery has been due",
            q.oldest_due_age_seconds,
        )?;
        let open = [("pending".to_string(), q.pending), ("delivering".to_string(), q.delivering)];
        family(&mut e, "deliveries_open", "Deliveries not finished, by state", "state", &open)?;
        family(&mut e, "endpoints", "Endpoints by status: healthy, failing or disabled", "status", &q.endpoints)
    }
}

/// A gauge with one label, a value for each.
fn family(e: &mut DescriptorEncoder, name: &str, help: &str, key: &str, values: &[(String, i64)]) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
    for (v, n) in values {
        let labels = label(key, v);
        ConstGauge::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One query over every tenant (on Citus it reaches every node): the queue now. A delivery
/// being sent is a `pending` row under a lease (deliveries::claim).
const QUEUE: &str = "SELECT (SELECT count(*) FROM herald.pending_events), \
        (SELECT min(seq) FROM herald.pending_events), \
        (SELECT count(*) FROM herald.deliveries d WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
            AND (d.lease_until IS NULL OR d.lease_until <= $1)), \
        (SELECT min(d.next_attempt_at) FROM herald.deliveries d WHERE d.state = 'pending' \
            AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1)), \
        (SELECT count(*) FROM herald.deliveries d WHERE d.state = 'pending' \
            AND (d.lease_until IS NULL OR d.lease_until <= $1)), \
        (SELECT count(*) FROM herald.deliveries d WHERE d.state = 'pending' AND d.lease_until > $1)";

const ENDPOINTS: &str = "SELECT status, count(*) FROM herald.endpoints GROUP BY status ORDER BY status";

/// An arbitrary constant: the advisory lock of the process that counts the queue.
const QUEUE_LOCK: i64 = 0x6865_7261_6c71; // "heralq"

async fn read_queue(client: &tokio_postgres::Client, now: DateTime<Utc>) -> Result<Queue, tokio_postgres::Error> {
    let row = client.query_one(QUEUE, &[&now]).await?;
    let now_us = now.timestamp_micros();
    // `seq` is microseconds × 1024 plus random bits (herald_core::id::seq_at).
    let oldest_seq: Option<i64> = row.get(1);
    let oldest_due: Option<DateTime<Utc>> = row.get(3);
    let endpoints = client.query(ENDPOINTS, &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(Queue {
        outbox_depth: row.get(0),
        outbox_oldest_age_seconds: oldest_seq.map_or(0.0, |s| (now_us - s / 1024).max(0) as f64 / 1e6),
        due: row.get(2),
        oldest_due_age_seconds: oldest_due.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3),
        pending: row.get(4),
        delivering: row.get(5),
        endpoints,
    })
}

/// Counts the queue every `every` for the queue's gauges, in whichever one Herald process holds
/// the lock (on its own connection: when the process dies, another takes over). A process
/// that loses its connection stops exporting at once; each step is bounded in time, and
/// shutdown is never held up.
pub async fn watch_queue(
    url: String,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    every: Duration,
    shutdown: CancellationToken,
) {
    let bound = every.max(Duration::from_secs(5));
    let mut client: Option<tokio_postgres::Client> = None;
    let mut leader = false;
    let forget = |m: &Metrics| *m.queue.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    loop {
        let step = async {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                leader = false;
                forget(&metrics);
                client = crate::db::connect(&url).await.ok();
            }
            let Some(c) = &client else { return };
            if !leader {
                leader = c
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&QUEUE_LOCK])
                    .await
                    .is_ok_and(|r| r.get::<_, bool>(0));
            }
            if leader {
                match read_queue(c, clock.now()).await {
                    Ok(q) => {
                        *metrics.queue.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((q, Instant::now(), every))
                    }
                    Err(e) => {
                        forget(&metrics);
                        tracing::warn!(error = %crate::db::describe(&e), "counting the queue for /metrics failed");
                    }
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            done = tokio::time::timeout(bound, step) => if done.is_err() {
                // Stuck (an unreachable database): start again with a new connection.
                forget(&metrics);
                client = None;
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
