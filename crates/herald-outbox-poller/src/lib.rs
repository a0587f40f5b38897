//! The outbox-poller: fans each pending event out into one delivery per subscribed endpoint
//! and one for the event's own callback URL, in sequence order, exactly once.
//!
//! Owns: `herald.pending_events` (it is the only one that deletes from it) and the creation of
//! deliveries; the upkeep of the attempt partitions; retention (`retention.rs`); sending the
//! failing-endpoint notices by email and Slack (`notices.rs`, `herald.notices`); running replay
//! jobs (`replay.rs`, `herald.replays`).
//!
//! Must not: send HTTP requests (but the Slack notices, through the same SSRF guard as the
//! worker's), or change events (the outbox is append-only).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use herald_core::clock::SharedClock;
use herald_core::deliveries;
use herald_core::id::{EventId, TenantId};
use herald_core::listen::Wake;
use herald_core::metrics::Metrics;
use herald_core::trace::TraceContext;
use rand::Rng;
use tokio_util::sync::CancellationToken;

pub mod notices;
pub mod replay;
pub mod retention;

mod sql {
    /// Whether tenant `$1` has pending events, read without locks; asked per tenant (see
    /// `herald_core::db::tenants_where`), then each is fanned out on its own.
    pub const TENANT_HAS_PENDING: &str = "SELECT EXISTS (SELECT 1 FROM herald.pending_events p WHERE p.tenant_id = $1)";

    /// Takes a batch of a tenant's pending events, oldest first; SKIP LOCKED lets several
    /// pollers work at once, each on different events.
    pub const TAKE: &str = "WITH taken AS ( \
           SELECT seq, event_id FROM herald.pending_events WHERE tenant_id = $1 \
           ORDER BY seq, event_id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         DELETE FROM herald.pending_events p USING taken \
          WHERE p.tenant_id = $1 AND p.seq = taken.seq AND p.event_id = taken.event_id \
         RETURNING p.event_id";

    pub const EVENTS: &str =
        "SELECT event_id, event_type, callback_url, traceparent, tracestate, door, deliver_at, seq, consumer FROM herald.events \
         WHERE tenant_id = $1 AND event_id = ANY($2) ORDER BY seq, event_id";

    /// A tenant's pending events in sequence order, read without locks (to go one at a time).
    pub const PENDING: &str = "SELECT event_id FROM herald.pending_events WHERE tenant_id = $1 \
         ORDER BY seq, event_id LIMIT $2";

    /// Takes one pending event (`TAKE` narrowed to one id).
    pub const TAKE_ONE: &str = "WITH taken AS ( \
           SELECT seq, event_id FROM herald.pending_events WHERE tenant_id = $1 AND event_id = $2 \
           FOR UPDATE SKIP LOCKED) \
         DELETE FROM herald.pending_events p USING taken \
          WHERE p.tenant_id = $1 AND p.seq = taken.seq AND p.event_id = taken.event_id \
         RETURNING p.event_id";

    /// Sets an event aside, with why, when it cannot be fanned out (its pending row goes).
    pub const SET_ASIDE: &str = "INSERT INTO herald.fanout_failures (tenant_id, event_id, failed_at, error) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

    /// Whether tenant `$1` has human-in-the-loop operations whose time is up at `$2`.
    pub const TENANT_HAS_EXPIRED: &str = "SELECT EXISTS (SELECT 1 FROM herald.operations o \
         WHERE o.tenant_id = $1 AND o.status = 'pending' AND o.expires_at <= $2)";

    /// Expires them, each with its `*_expired` event, in one transaction per tenant.
    pub const EXPIRE: &str = "SELECT herald.expire_operations($1, $2)";

    pub const ENSURE_PARTITIONS: &str = "SELECT herald.ensure_partitions($1)";
}

#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    #[error(transparent)]
    Db(#[from] herald_core::db::DbError),
    #[error("database: {}", herald_core::db::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl PollerError {
    /// Whether the error is about the rows at hand (so the same rows fail again), rather than
    /// about the database (which fails or passes for every row alike).
    fn is_about_the_rows(&self) -> bool {
        match self {
            PollerError::Postgres(e) => herald_core::db::is_data_error(e),
            PollerError::Db(_) | PollerError::Pool(_) => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Events taken per transaction.
    pub batch: usize,
    /// The fallback poll when no NOTIFY arrives (jittered ±20 %).
    pub poll_interval: Duration,
}

impl PollerConfig {
    /// Events taken per transaction (HERALD_POLLER_BATCH).
    pub const BATCH: usize = 500;
}

impl Default for PollerConfig {
    fn default() -> Self {
        let poll_interval = herald_core::config::default_duration(herald_core::config::POLL_INTERVAL);
        Self { batch: Self::BATCH, poll_interval }
    }
}

pub struct Poller {
    pool: Pool,
    clock: SharedClock,
    config: PollerConfig,
    wake: Arc<Wake>,
    metrics: Arc<Metrics>,
}

impl Poller {
    pub fn new(pool: Pool, clock: SharedClock, config: PollerConfig, metrics: Arc<Metrics>) -> Self {
        Self { pool, clock, config, wake: Wake::new(), metrics }
    }

    /// Woken by `wake`, which the binary's listener on its channel wakes, instead of a wake-up
    /// of its own that nothing wakes but polls (a poller started again after a panic keeps the
    /// listener of the one before).
    pub fn woken_by(mut self, wake: Arc<Wake>) -> Self {
        self.wake = wake;
        self
    }

    /// Expires operations whose `expires_at` has passed (their `*_expired` events then wait in
    /// the outbox like any other). Returns how many.
    pub async fn expire(&self) -> Result<usize, PollerError> {
        let now = self.clock.now();
        let client = self.pool.get().await?;
        let mut n = 0;
        for tenant in herald_core::db::tenants_where(&client, sql::TENANT_HAS_EXPIRED, &[&now]).await? {
            // One tenant's trouble must not hold up the others.
            match client.query_one(sql::EXPIRE, &[&tenant, &now]).await {
                Ok(row) => n += row.try_get::<_, i32>(0).unwrap_or(0) as usize,
                Err(e) => {
                    tracing::warn!(error = %e, %tenant, "expiring operations failed for this tenant; the others go on")
                }
            }
        }
        Ok(n)
    }

    /// Fans out everything pending now, tenant by tenant. Returns the number of events.
    pub async fn tick(&self) -> Result<usize, PollerError> {
        self.tick_for(None).await
    }

    /// Fans out what is pending for `only` these tenants, or for every tenant that has some.
    async fn tick_for(&self, only: Option<Vec<TenantId>>) -> Result<usize, PollerError> {
        let tenants = match only {
            Some(t) => t,
            None => {
                let client = self.pool.get().await?;
                herald_core::db::tenants_where(&client, sql::TENANT_HAS_PENDING, &[]).await?
            }
        };
        let mut total = 0;
        for tenant in tenants {
            // Bounded: a tenant that publishes faster than we fan out still lets the others in.
            for _ in 0..20 {
                match self.fan_out_batch(&tenant).await {
                    Ok(n) => {
                        total += n;
                        if n < self.config.batch {
                            break;
                        }
                    }
                    // One tenant's trouble must not hold up the others.
                    Err(e) => {
                        tracing::warn!(error = %e, %tenant, "fan-out failed for this tenant; the others go on");
                        break;
                    }
                }
            }
        }
        Ok(total)
    }

    /// Takes up to `batch` pending events of `tenant` and fans them out in one transaction.
    /// When that fails because of the rows themselves (a value that cannot be read or written),
    /// the events go one at a time, and one that fails alone is set aside with its error, so
    /// that the tenant's other events go on. Returns the number of events taken.
    pub async fn fan_out_batch(&self, tenant: &TenantId) -> Result<usize, PollerError> {
        match self.fan_out(tenant, None).await {
            Err(e) if e.is_about_the_rows() => {
                tracing::warn!(error = %e, %tenant, "fan-out of a batch failed on its rows; going one event at a time");
                self.fan_out_one_by_one(tenant).await
            }
            other => other,
        }
    }

    async fn fan_out_one_by_one(&self, tenant: &TenantId) -> Result<usize, PollerError> {
        let pending: Vec<EventId> = {
            let client = self.pool.get().await?;
            let rows = client.query(sql::PENDING, &[&tenant, &(self.config.batch as i64)]).await?;
            rows.iter().filter_map(|r| r.try_get(0).ok()).collect()
        };
        let (mut n, mut refused) = (0, Vec::new());
        for event_id in pending {
            match self.fan_out(tenant, Some(&event_id)).await {
                Ok(k) => n += k,
                Err(e) if e.is_about_the_rows() => refused.push((event_id, e)),
                Err(e) => return Err(e),
            }
        }
        // When every one of several events fails alone, the trouble is not theirs (a constraint
        // or trigger that refuses all): keep them queued, and let the operator see why.
        if n == 0 && refused.len() > 1 {
            let (_, e) = refused.swap_remove(0);
            tracing::error!(%tenant, error = %e, count = refused.len() + 1, "every pending event of this tenant fails to fan out; keeping them queued");
            return Err(e);
        }
        for (event_id, e) in refused {
            n += self.set_aside(tenant, &event_id, &e.to_string()).await?;
        }
        Ok(n)
    }

    /// Takes `event_id` off the outbox queue, if it is still there and no other poller holds
    /// it, and records why it cannot be fanned out. Returns 1 if it did.
    async fn set_aside(&self, tenant: &TenantId, event_id: &EventId, error: &str) -> Result<usize, PollerError> {
        let now = self.clock.now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if tx.query(sql::TAKE_ONE, &[&tenant, &event_id]).await?.is_empty() {
            return Ok(0);
        }
        tx.execute(sql::SET_ASIDE, &[&tenant, &event_id, &now, &error]).await?;
        tx.commit().await?;
        self.metrics.fanout_failures.inc();
        tracing::error!(%tenant, event = %event_id, error, "an event could not be fanned out; set aside (GET /v1/events/{{id}} shows why, herald.refan(tenant) queues it again)");
        Ok(1)
    }

    /// One transaction: take up to `batch` pending events of `tenant` (or just `only`), create
    /// their deliveries, wake the workers, commit. A crash before COMMIT leaves them pending.
    async fn fan_out(&self, tenant: &TenantId, only: Option<&EventId>) -> Result<usize, PollerError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let taken = match only {
            None => tx.query(sql::TAKE, &[&tenant, &(self.config.batch as i64)]).await?,
            Some(id) => tx.query(sql::TAKE_ONE, &[&tenant, &id]).await?,
        };
        let taken: Vec<EventId> = taken.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        if taken.is_empty() {
            return Ok(0);
        }
        // Where each came in: events published from SQL or the Rust crate are counted here.
        let mut doors: Vec<Option<String>> = Vec::with_capacity(taken.len());
        let events = tx
            .query(sql::EVENTS, &[&tenant, &taken])
            .await?
            .iter()
            .map(|r| {
                doors.push(r.try_get(5)?);
                Ok(deliveries::Event {
                    id: r.try_get(0)?,
                    event_type: r.try_get(1)?,
                    callback_url: r.try_get(2)?,
                    trace: TraceContext::new(r.try_get(3)?, r.try_get(4)?),
                    deliver_at: r.try_get(6)?,
                    seq: r.try_get(7)?,
                    consumer: r.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        // Due from now, not from when the transaction began: claims start shortly before where
        // they ended (see the worker's marks), and this row must not land behind them.
        let made = deliveries::fan_out(&tx, tenant, &events, self.clock.now()).await?;
        tx.commit().await?;
        self.metrics.events_fanned_out.inc_by(taken.len() as u64);
        for door in doors.iter().flatten() {
            // Bounded: anything but the Rust crate's came from SQL.
            self.metrics.published(if door == "rust" { "rust" } else { "sql" });
        }
        self.metrics.deliveries_created.inc_by(made as u64);
        tracing::debug!(%tenant, events = taken.len(), deliveries = made, "fanned out");
        Ok(taken.len())
    }

    /// Runs until `shutdown`: on each wake-up (NOTIFY) or poll, fans out what is pending.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("outbox-poller started");
        let mut last_upkeep: Option<DateTime<Utc>> = None;
        // A notification names its tenant: fan out just those. A poll (`None`) looks at every
        // tenant, and is also when operations expire and partitions are kept ahead.
        let mut woken: Option<Vec<TenantId>> = None;
        let mut last_poll = tokio::time::Instant::now();
        loop {
            let now = self.clock.now();
            // However busy the notifications keep it, a poll comes round at its interval.
            if last_poll.elapsed() >= self.config.poll_interval {
                woken = None;
            }
            if woken.is_none() {
                last_poll = tokio::time::Instant::now();
                if last_upkeep.is_none_or(|t| now - t > chrono::Duration::hours(1)) {
                    match self.upkeep(now).await {
                        Ok(()) => last_upkeep = Some(now),
                        Err(e) => tracing::warn!(error = %e, "partition upkeep failed; will retry"),
                    }
                }
                if let Err(e) = self.expire().await {
                    tracing::warn!(error = %e, "expiring operations failed; retrying at the next poll");
                }
            }
            if let Err(e) = self.tick_for(woken.take()).await {
                tracing::warn!(error = %e, "fan-out failed; retrying at the next poll");
            }
            let wait = self.config.poll_interval.mul_f64(rand::rng().random_range(0.8..=1.2));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => woken = self.wake.take(),
                _ = tokio::time::sleep(wait) => woken = None,
            }
        }
        tracing::info!("outbox-poller stopped");
    }

    async fn upkeep(&self, now: DateTime<Utc>) -> Result<(), PollerError> {
        self.pool.get().await?.execute(sql::ENSURE_PARTITIONS, &[&now]).await?;
        Ok(())
    }
}
