//! Retention: what is older than `HERALD_RETENTION` (30 days) goes, without a DELETE storm.
//!
//! Every `HERALD_RETENTION_INTERVAL`, one poller at a time (an advisory lock), tenant by tenant
//! (each statement names one tenant: single-node on Citus):
//! - finished deliveries (`delivered`, `failed`, `cancelled`) created before the cutoff (their
//!   time-ordered id says when), by the primary key, [`RetentionConfig::batch`] at a time with
//!   a pause between batches; a delivery still `pending` is never deleted, however old;
//! - events published before the cutoff (their `seq`), the same way, once no delivery of theirs
//!   is left and they are neither in the outbox nor set aside by fan-out;
//! - the attempt log, by whole monthly partitions (`herald.drop_old_attempts`: a partition goes
//!   once its last day is past the cutoff, so attempts are kept up to a month longer).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use herald_core::clock::SharedClock;
use herald_core::metrics::Metrics;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::PollerError;

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How long events, deliveries and attempts are kept; `None`: for ever.
    pub keep: Option<Duration>,
    /// How often retention runs.
    pub every: Duration,
    /// Rows deleted per statement.
    pub batch: i64,
    /// The pause after each batch, so that deliveries go on meanwhile.
    pub pause: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            keep: Some(Duration::from_secs(30 * 86_400)),
            every: Duration::from_secs(600),
            batch: 1_000,
            pause: Duration::from_millis(100),
        }
    }
}

/// An arbitrary constant: the advisory lock of the poller that runs retention.
const RETENTION_LOCK: i64 = 0x6865_7261_6c72; // "heralr"

/// Finished (or cancelled) deliveries made before the cutoff; the outer conditions again, for
/// a row a manual retry changed between the two.
const DELETE_DELIVERIES: &str = "DELETE FROM herald.deliveries WHERE tenant_id = $1 AND delivery_id IN ( \
       SELECT delivery_id FROM herald.deliveries \
        WHERE tenant_id = $1 AND delivery_id < $2 AND state IN ('delivered', 'failed', 'cancelled') \
        ORDER BY delivery_id LIMIT $3) \
     AND delivery_id < $2 AND state IN ('delivered', 'failed', 'cancelled')";

/// Events published before the cutoff that nothing refers to any more: no delivery of theirs
/// left (`UNIQUE (tenant_id, event_id, target)` finds them), not in the outbox, not set aside.
const DELETE_EVENTS: &str = "DELETE FROM herald.events WHERE tenant_id = $1 AND event_id IN ( \
       SELECT e.event_id FROM herald.events e \
        WHERE e.tenant_id = $1 AND e.seq < $2 \
          AND NOT EXISTS (SELECT 1 FROM herald.deliveries d \
                           WHERE d.tenant_id = $1 AND d.event_id = e.event_id) \
          AND NOT EXISTS (SELECT 1 FROM herald.pending_events p \
                           WHERE p.tenant_id = $1 AND p.seq = e.seq AND p.event_id = e.event_id) \
          AND NOT EXISTS (SELECT 1 FROM herald.fanout_failures f \
                           WHERE f.tenant_id = $1 AND f.event_id = e.event_id) \
        ORDER BY e.seq LIMIT $3)";

const DROP_OLD_ATTEMPTS: &str = "SELECT herald.drop_old_attempts($1)";

/// What one run removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub deliveries: u64,
    pub events: u64,
    pub attempt_partitions: u64,
}

pub struct Retention {
    pool: Pool,
    clock: SharedClock,
    config: RetentionConfig,
    metrics: Arc<Metrics>,
}

impl Retention {
    pub fn new(pool: Pool, clock: SharedClock, config: RetentionConfig, metrics: Arc<Metrics>) -> Self {
        Self { pool, clock, config, metrics }
    }

    /// Runs retention every `every` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(keep) = self.config.keep else { return };
        loop {
            match self.once(keep, &shutdown).await {
                Ok(Some(r)) if r != Removed::default() => tracing::info!(?r, "retention removed what was past it"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention failed; it runs again at its next interval"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.every) => {}
            }
        }
    }

    /// One run, if no other poller is running one; `None` if one is.
    pub async fn once(&self, keep: Duration, shutdown: &CancellationToken) -> Result<Option<Removed>, PollerError> {
        // Out of the pool: the session lock goes with the connection, whatever happens (an
        // error, a panic), never back into the pool with it.
        let client = deadpool_postgres::Object::take(self.pool.get().await?);
        let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK]).await?.get(0);
        if !locked {
            return Ok(None);
        }
        self.remove(&client, keep, shutdown).await.map(Some)
    }

    async fn remove(
        &self,
        client: &tokio_postgres::Client,
        keep: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Removed, PollerError> {
        let cutoff: DateTime<Utc> =
            self.clock.now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        // The time-ordered keys at the cutoff: a delivery id made then sorts after every id
        // made before; `seq` is microseconds × 1024.
        let first_kept = herald_core::id::DeliveryId::first_at(cutoff);
        let seq = herald_core::id::seq_at(cutoff) & !1023;
        let mut removed = Removed::default();
        for tenant in &herald_core::db::tenants(client).await? {
            removed.deliveries += self
                .in_batches(client, DELETE_DELIVERIES, &[&tenant, &first_kept, &self.config.batch], shutdown)
                .await?;
            removed.events +=
                self.in_batches(client, DELETE_EVENTS, &[&tenant, &seq, &self.config.batch], shutdown).await?;
        }
        removed.attempt_partitions = client.query_one(DROP_OLD_ATTEMPTS, &[&cutoff]).await?.get::<_, i32>(0) as u64;
        self.metrics.retention_removed("deliveries", removed.deliveries);
        self.metrics.retention_removed("events", removed.events);
        self.metrics.retention_removed("attempt_partitions", removed.attempt_partitions);
        Ok(removed)
    }

    /// Runs `delete` until it deletes less than a batch, pausing after each; the rows deleted.
    async fn in_batches(
        &self,
        client: &tokio_postgres::Client,
        delete: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        shutdown: &CancellationToken,
    ) -> Result<u64, PollerError> {
        let statement = client.prepare(delete).await?;
        let mut total = 0;
        loop {
            let n = client.execute(&statement, params).await?;
            total += n;
            if (n as i64) < self.config.batch || shutdown.is_cancelled() {
                return Ok(total);
            }
            tokio::time::sleep(self.config.pause).await;
        }
    }
}
