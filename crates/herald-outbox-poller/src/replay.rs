//! Replay jobs (`herald.replays`): the runner that carries out what
//! `POST /v1/endpoints/{id}/replay` asked, in the processes that run the outbox-poller
//! (`herald poller`, `herald all`).
//!
//! A job is a window of the tenant's events to deliver again to one endpoint. The runner asks
//! which tenants have a job to run (unlocked probes, tenant by tenant, as every loop does), then
//! per tenant claims one with a lease (`FOR UPDATE SKIP LOCKED`, `lease_owner`, `lease_until`;
//! committed at once), and walks its window in batches of `batch` events. Each batch is one
//! transaction: it locks the job row and checks the lease is still this runner's, holds the
//! endpoint (`FOR SHARE`: a PATCH that makes it FIFO waits for the batch's deliveries), makes
//! the deliveries as the synchronous replay did (`deliveries::insert` again: a new delivery, or
//! a finished one made pending again, for each event of the window whose type the endpoint
//! takes; never `herald.test` events, nor events still in the outbox or set aside there), and
//! moves the job's place (`after_seq`, `after_event_id`: the last event done) with its counts
//! and lease. So a runner that dies resumes, once its lease is over, where its last commit left
//! the job, and no event of the window is done twice by two runners: a second runner cannot
//! claim a leased job, and a runner whose lease was taken over finds another owner at its next
//! batch and stops. After `turn` batches a runner gives its lease back, so that other tenants'
//! jobs (and other runners) get their turn.
//!
//! A job ends `done` when a batch finds the rest of the window empty, or `failed` with a reason:
//! its endpoint was deleted, or a batch failed on its rows (a value that cannot be read or
//! written). Any other error (the database unreachable) leaves it `running`, to be taken again.
//!
//! Must not: send HTTP requests (the delivery-worker sends what the job made due).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use herald_core::clock::SharedClock;
use herald_core::deliveries;
use herald_core::id::{DeliveryId, EndpointId, EventId, TenantId};
use herald_core::listen::Wake;
use herald_core::validate::type_matches;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::PollerError;

mod sql {
    /// Whether tenant `$1` has a job to run at `$2` (running, and not leased, or its lease is over).
    pub const TENANT_HAS_JOB: &str = "SELECT EXISTS (SELECT 1 FROM herald.replays \
         WHERE tenant_id = $1 AND state = 'running' AND (lease_until IS NULL OR lease_until <= $2))";

    /// Leases the tenant's oldest job to run to `$3` until `$4`.
    pub const CLAIM: &str = "WITH job AS ( \
           SELECT replay_id FROM herald.replays \
            WHERE tenant_id = $1 AND state = 'running' AND (lease_until IS NULL OR lease_until <= $2) \
            ORDER BY replay_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         UPDATE herald.replays r SET lease_owner = $3, lease_until = $4 FROM job \
          WHERE r.tenant_id = $1 AND r.replay_id = job.replay_id RETURNING r.replay_id";

    /// The job, locked for a batch, if it still runs under this runner's (`$3`) lease.
    pub const LOCK: &str = "SELECT endpoint_id, since, until, after_seq, after_event_id FROM herald.replays \
         WHERE tenant_id = $1 AND replay_id = $2 AND state = 'running' AND lease_owner = $3 FOR UPDATE";

    /// The endpoint, held against a PATCH (one that makes it FIFO waits for the batch's
    /// deliveries, and orders them), not against fan-out.
    pub const ENDPOINT: &str = "SELECT url, event_types, ordering = 'fifo', consumer FROM herald.endpoints \
         WHERE tenant_id = $1 AND endpoint_id = $2 FOR SHARE";

    /// The next events of the window `[$2, $3)` of `seq` after `($4, $5)`, in Herald's key order:
    /// those fanned out already, but not `herald.test` events (each was meant for one endpoint).
    /// An event still in the outbox (or set aside there) gets its deliveries from the
    /// outbox-poller, whose insert expects none to exist yet.
    pub const EVENTS: &str = "SELECT e.event_id, e.event_type, e.seq, e.deliver_at, e.consumer FROM herald.events e \
          WHERE e.tenant_id = $1 AND e.seq >= $2 AND e.seq < $3 AND (e.seq, e.event_id) > ($4, $5) \
            AND e.event_type <> 'herald.test' \
            AND NOT EXISTS (SELECT 1 FROM herald.pending_events p \
                             WHERE p.tenant_id = $1 AND p.seq = e.seq AND p.event_id = e.event_id) \
            AND NOT EXISTS (SELECT 1 FROM herald.fanout_failures f WHERE f.tenant_id = $1 AND f.event_id = e.event_id) \
          ORDER BY e.seq, e.event_id LIMIT $6";

    /// A batch's progress, and the lease carried on (`$10` is `running` or `done`).
    pub const PROGRESS: &str = "UPDATE herald.replays \
            SET after_seq = $3, after_event_id = $4, events_scanned = events_scanned + $5, \
                events_matched = events_matched + $6, deliveries_created = deliveries_created + $7, \
                state = $10::text, updated_at = $9::timestamptz, \
                finished_at = CASE WHEN $10::text = 'done' THEN $9::timestamptz END, \
                lease_until = CASE WHEN $10::text = 'done' THEN NULL ELSE $8::timestamptz END, \
                lease_owner = CASE WHEN $10::text = 'done' THEN NULL ELSE lease_owner END \
          WHERE tenant_id = $1 AND replay_id = $2";

    /// Ends the job `failed` with why, if this runner (`$5`) still holds it.
    pub const FAIL: &str = "UPDATE herald.replays \
            SET state = 'failed', error = $4, finished_at = $3, updated_at = $3, lease_owner = NULL, lease_until = NULL \
          WHERE tenant_id = $1 AND replay_id = $2 AND state = 'running' AND lease_owner = $5";

    /// Gives the lease back, if it is still this runner's (`$3`).
    pub const RELEASE: &str = "UPDATE herald.replays SET lease_owner = NULL, lease_until = NULL \
          WHERE tenant_id = $1 AND replay_id = $2 AND lease_owner = $3";
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Events per batch (one transaction each).
    pub batch: usize,
    /// Batches a runner gives one job before it lets the others have a turn.
    pub turn: usize,
    /// How long a job stays with a runner that does not move it on: a runner that died leaves
    /// its job for this long. Each batch carries it on.
    pub lease: Duration,
    /// The poll when no NOTIFY arrives (jittered ±20 %).
    pub poll_interval: Duration,
}

impl ReplayConfig {
    pub const BATCH: usize = 500;
    pub const TURN: usize = 20;
    pub const LEASE: Duration = Duration::from_secs(60);
}

impl Default for ReplayConfig {
    fn default() -> Self {
        let poll_interval = herald_core::config::default_duration(herald_core::config::POLL_INTERVAL);
        Self { batch: Self::BATCH, turn: Self::TURN, lease: Self::LEASE, poll_interval }
    }
}

/// What one batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The window goes on.
    More,
    /// The window is done: the job is `done`.
    Done,
    /// The job is `failed` (its endpoint is gone).
    Failed,
    /// The job is no longer this runner's (another took it over, or it ended).
    Lost,
}

/// The channel that `POST /v1/endpoints/{id}/replay` wakes runners on (a hint: they poll too).
pub const CHANNEL: &str = "herald_replays";

pub struct Replayer {
    pool: Pool,
    clock: SharedClock,
    config: ReplayConfig,
    owner: String,
    wake: Arc<Wake>,
}

/// The lowest `seq` of an instant (see `herald_core::id::seq_at`).
fn seq_floor(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().saturating_mul(1024)
}

impl Replayer {
    pub fn new(pool: Pool, clock: SharedClock, config: ReplayConfig) -> Self {
        let owner = herald_core::id::new_id("replayer-", clock.now());
        Self { pool, clock, config, owner, wake: Wake::new() }
    }

    /// Woken by `wake`, which the binary's listener on [`CHANNEL`] wakes.
    pub fn woken_by(mut self, wake: Arc<Wake>) -> Self {
        self.wake = wake;
        self
    }

    fn lease_until(&self) -> DateTime<Utc> {
        self.clock.now() + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX)
    }

    /// Leases `tenant`'s oldest job that runs and that no live lease holds; its id.
    pub async fn claim(&self, tenant: &TenantId) -> Result<Option<String>, PollerError> {
        let client = self.pool.get().await?;
        let row = client.query_opt(sql::CLAIM, &[tenant, &self.clock.now(), &self.owner, &self.lease_until()]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// One batch of `job`, a job this runner claimed (see the module's documentation).
    pub async fn step(&self, tenant: &TenantId, job: &str) -> Result<Step, PollerError> {
        let now = self.clock.now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx.query_opt(sql::LOCK, &[tenant, &job, &self.owner]).await? else {
            return Ok(Step::Lost);
        };
        let endpoint: EndpointId = row.try_get("endpoint_id")?;
        let (since, until): (DateTime<Utc>, DateTime<Utc>) = (row.try_get("since")?, row.try_get("until")?);
        let after: (i64, String) = (
            row.try_get::<_, Option<i64>>("after_seq")?.unwrap_or(i64::MIN),
            row.try_get::<_, Option<String>>("after_event_id")?.unwrap_or_default(),
        );
        let Some(ep) = tx.query_opt(sql::ENDPOINT, &[tenant, &endpoint]).await? else {
            let why = format!("endpoint {endpoint} was deleted while the replay ran; the deliveries made before stay");
            tx.execute(sql::FAIL, &[tenant, &job, &now, &why, &self.owner]).await?;
            tx.commit().await?;
            tracing::info!(%tenant, replay = job, %endpoint, "a replay failed: its endpoint is gone");
            return Ok(Step::Failed);
        };
        let (url, patterns, fifo): (String, Vec<String>, bool) = (ep.try_get(0)?, ep.try_get(1)?, ep.try_get(2)?);
        let consumer: Option<String> = ep.try_get(3)?;
        let batch = self.config.batch.max(1);
        let rows = tx
            .query(sql::EVENTS, &[tenant, &seq_floor(since), &seq_floor(until), &after.0, &after.1, &(batch as i64)])
            .await?;
        type Replayed = (EventId, String, i64, Option<DateTime<Utc>>);
        let mut events: Vec<Replayed> = Vec::with_capacity(rows.len());
        let mut matched: Vec<usize> = Vec::new();
        for r in &rows {
            let for_consumer: Option<String> = r.try_get(4)?;
            let event: Replayed = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            if deliveries::reaches(consumer.as_deref(), for_consumer.as_deref()) && type_matches(&patterns, &event.1) {
                matched.push(events.len());
            }
            events.push(event);
        }
        let matched: Vec<&Replayed> = matched.iter().map(|&i| &events[i]).collect();
        // Fan-out's own insert: new deliveries, and finished ones made pending again.
        let again = deliveries::New {
            ids: matched.iter().map(|_| DeliveryId::generate(now)).collect(),
            event_ids: matched.iter().map(|(id, _, _, _)| id).collect(),
            targets: vec![deliveries::target_of(Some(&endpoint)); matched.len()],
            endpoint_ids: vec![Some(&endpoint); matched.len()],
            urls: vec![url.as_str(); matched.len()],
            // A scheduled event is not sent before its time, replayed or not.
            dues: matched.iter().map(|(_, _, _, due)| *due).collect(),
            seqs: matched.iter().map(|(_, _, seq, _)| fifo.then_some(*seq)).collect(),
        };
        let made = deliveries::insert(&tx, tenant, &again, now, true).await?;
        let done = events.len() < batch;
        let (last_seq, last_id) =
            events.last().map_or((after.0, after.1.clone()), |(id, _, seq, _)| (*seq, id.to_string()));
        let state = if done { "done" } else { "running" };
        let counts = (events.len() as i64, matched.len() as i64, made as i64);
        tx.execute(
            sql::PROGRESS,
            &[tenant, &job, &last_seq, &last_id, &counts.0, &counts.1, &counts.2, &self.lease_until(), &now, &state],
        )
        .await?;
        tx.commit().await?;
        tracing::debug!(%tenant, replay = job, events = counts.0, matched = counts.1, deliveries = counts.2, done, "replay batch");
        Ok(if done { Step::Done } else { Step::More })
    }

    /// Ends `job` `failed` with `why`, if this runner still holds it.
    async fn fail(&self, tenant: &TenantId, job: &str, why: &str) -> Result<(), PollerError> {
        let now = self.clock.now();
        self.pool.get().await?.execute(sql::FAIL, &[tenant, &job, &now, &why, &self.owner]).await?;
        tracing::error!(%tenant, replay = job, error = why, "a replay failed");
        Ok(())
    }

    /// Gives `job`'s lease back, if it is still this runner's.
    pub async fn release(&self, tenant: &TenantId, job: &str) -> Result<(), PollerError> {
        self.pool.get().await?.execute(sql::RELEASE, &[tenant, &job, &self.owner]).await?;
        Ok(())
    }

    /// One job's turn: up to `turn` batches, then the lease back if it still runs. Returns the
    /// batches run.
    async fn turn(&self, tenant: &TenantId, job: &str, shutdown: &CancellationToken) -> usize {
        let mut batches = 0;
        let mut holding = true;
        while batches < self.config.turn && !shutdown.is_cancelled() {
            match self.step(tenant, job).await {
                Ok(Step::More) => batches += 1,
                Ok(Step::Done | Step::Failed) => {
                    batches += 1;
                    holding = false;
                    break;
                }
                Ok(Step::Lost) => {
                    holding = false;
                    break;
                }
                Err(e) if e.is_about_the_rows() => {
                    // The same rows would fail again: the job cannot go on.
                    let why = format!("a batch of the window could not be replayed: {e}");
                    if let Err(e) = self.fail(tenant, job, &why).await {
                        tracing::warn!(%tenant, replay = job, error = %e, "could not mark a replay failed; it will be tried again");
                    }
                    holding = false;
                    break;
                }
                Err(e) => {
                    tracing::warn!(%tenant, replay = job, error = %e, "a replay batch failed; it will be tried again");
                    break;
                }
            }
        }
        if holding {
            if let Err(e) = self.release(tenant, job).await {
                tracing::warn!(%tenant, replay = job, error = %e, "could not give a replay's lease back; it ends with its time");
            }
        }
        batches
    }

    /// Gives one job of each tenant that has one its turn. Returns the batches run.
    pub async fn tick(&self, shutdown: &CancellationToken) -> Result<usize, PollerError> {
        let tenants = {
            let client = self.pool.get().await?;
            herald_core::db::tenants_where(&client, sql::TENANT_HAS_JOB, &[&self.clock.now()]).await?
        };
        let mut batches = 0;
        for tenant in tenants {
            if shutdown.is_cancelled() {
                break;
            }
            // One tenant's trouble must not hold up the others.
            match self.claim(&tenant).await {
                Ok(Some(job)) => batches += self.turn(&tenant, &job, shutdown).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "claiming a replay failed for this tenant; the others go on")
                }
            }
        }
        Ok(batches)
    }

    /// Runs until `shutdown`: at each wake-up (a replay was asked for) or poll, and at once again
    /// while there is work, gives the jobs their turns.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("replay runner started");
        loop {
            let worked = match self.tick(&shutdown).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for replays failed; retrying at the next poll");
                    false
                }
            };
            if shutdown.is_cancelled() {
                break;
            }
            if worked {
                tokio::task::yield_now().await;
                continue;
            }
            let wait = self.config.poll_interval.mul_f64(rand::rng().random_range(0.8..=1.2));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => { self.wake.take(); }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("replay runner stopped");
    }
}
