//! The worker's hot loop: one `select!` over shutdown, a wake-up (NOTIFY), a jittered poll, and
//! finished attempts. It claims only when it has free slots and never more than it has.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use deadpool_postgres::Pool;
use herald_core::clock::SharedClock;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::send::{Claimed, Sender};
use crate::store::{jittered, Finished, Store, StoreError};

/// The worker stopped because its result recorder did.
#[derive(Debug, thiserror::Error)]
#[error("the delivery-worker's result recorder stopped; deliveries it held will be retried when their leases expire")]
pub struct RecorderStopped;

/// Results are written in batches of at most this many.
const RECORD_BATCH: usize = 500;

pub struct Worker {
    store: Store,
    sender: Sender,
    clock: SharedClock,
    wake: Arc<Notify>,
}

impl Worker {
    pub fn new(
        pool: Pool,
        clock: SharedClock,
        config: WorkerConfig,
        metrics: Arc<herald_core::metrics::Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let sender = Sender::new(config.allow.clone(), config.connect_timeout, config.attempt_timeout)?;
        Ok(Self { store: Store { pool, config, metrics }, sender, clock, wake: Arc::new(Notify::new()) })
    }

    /// Woken on `herald_deliveries` notifications (see `herald_core::listen`).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until `shutdown`, then drains: no new claims, attempts in flight get
    /// `shutdown_grace` to finish, leases of the rest are given back, results are written.
    /// An error means the worker stopped because it could no longer record results (the
    /// process should exit non-zero, so that its supervisor notices and restarts it).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RecorderStopped> {
        let mut recorder_lost = false;
        let config = self.store.config.clone();
        let (results, rx) = mpsc::channel::<Finished>(config.concurrency * 2 + 16);
        let recorder = tokio::spawn(record_loop(self.store.clone(), self.clock.clone(), rx));
        let mut inflight: JoinSet<Finished> = JoinSet::new();
        let mut started: HashMap<tokio::task::Id, Claimed> = HashMap::new();
        let mut per_endpoint: HashMap<String, usize> = HashMap::new();
        let mut want_claim = true;
        let mut backlog = false;
        // Attempts in flight just after the last claim: with a backlog, claim again once half
        // of them have finished. Fewer, larger claims cost the database far less per delivery.
        let mut after_claim = 0usize;
        let mut rotate = 0usize;
        let mut stopping = false;
        let poll = tokio::time::sleep(jittered(config.poll_interval));
        tokio::pin!(poll);
        let grace = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(grace);
        tracing::info!(worker = %config.worker_id, concurrency = config.concurrency, "delivery-worker started");

        loop {
            if want_claim && !stopping {
                want_claim = false;
                let free = config.concurrency.saturating_sub(inflight.len());
                if free > 0 {
                    match self.claim_round(free, &per_endpoint, rotate).await {
                        Ok((batch, full)) => {
                            backlog = full;
                            for c in batch {
                                *per_endpoint.entry(target_key(&c)).or_default() += 1;
                                let sender = self.sender.clone();
                                let clock = self.clock.clone();
                                let task = c.clone();
                                self.store.metrics.in_flight.inc();
                                let handle = inflight.spawn(async move {
                                    let outcome = sender.send(&task, clock.now()).await;
                                    Finished::new(task, outcome)
                                });
                                started.insert(handle.id(), c);
                            }
                            after_claim = inflight.len();
                        }
                        Err(e) => tracing::warn!(error = %e, "claim failed; retrying at the next poll"),
                    }
                    rotate = rotate.wrapping_add(1);
                }
            }
            if stopping && inflight.is_empty() {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    tracing::info!(in_flight = inflight.len(), "draining: no new claims");
                    grace.as_mut().reset(tokio::time::Instant::now() + config.shutdown_grace);
                }
                Some(joined) = inflight.join_next_with_id() => {
                    let claimed = match &joined {
                        Ok((id, _)) => started.remove(id),
                        Err(e) => started.remove(&e.id()),
                    };
                    if let Some(key) = claimed.as_ref().map(target_key) {
                        if let Some(n) = per_endpoint.get_mut(&key) {
                            *n -= 1;
                            if *n == 0 { per_endpoint.remove(&key); }
                        }
                    }
                    self.store.metrics.in_flight.dec();
                    match joined {
                        Ok((_, finished)) => {
                            let m = &self.store.metrics;
                            m.attempt_seconds.observe(finished.outcome.duration.as_secs_f64());
                            m.attempt(if finished.outcome.delivered() { "delivered" } else { finished.outcome.error.unwrap_or("failed") });
                            if results.send(finished).await.is_err() {
                                // Sending on without recording would only make duplicates.
                                tracing::error!("the result recorder stopped; stopping this worker (its leases will expire and be retried)");
                                recorder_lost = true;
                                shutdown.cancel();
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "an attempt task failed; giving its lease back");
                            if let Some(c) = claimed {
                                let _ = self.store.give_back(&[c], self.clock.now()).await;
                            }
                        }
                    }
                    if backlog && inflight.len() * 2 <= after_claim {
                        want_claim = true;
                    }
                }
                _ = self.wake.notified(), if !stopping => want_claim = true,
                _ = &mut poll, if !stopping => {
                    want_claim = true;
                    poll.as_mut().reset(tokio::time::Instant::now() + jittered(config.poll_interval));
                }
                _ = &mut grace, if stopping => {
                    // Attempts that finished but were not collected yet are recorded, not given back.
                    while let Some(Ok((id, finished))) = inflight.try_join_next_with_id() {
                        started.remove(&id);
                        let _ = results.send(finished).await;
                    }
                    let left: Vec<Claimed> = started.drain().map(|(_, c)| c).collect();
                    tracing::warn!(count = left.len(), "grace period over: aborting attempts and giving their leases back");
                    inflight.abort_all();
                    if let Err(e) = self.store.give_back(&left, self.clock.now()).await {
                        tracing::warn!(error = %e, "could not give leases back; they will expire");
                    }
                    break;
                }
            }
        }
        drop(results);
        if recorder.await.is_err() {
            tracing::error!("the result recorder panicked");
            recorder_lost = true;
        }
        tracing::info!(worker = %config.worker_id, "delivery-worker stopped");
        if recorder_lost {
            return Err(RecorderStopped);
        }
        Ok(())
    }

    /// One round: tenants with due deliveries in turn, each claiming up to its share of `free`.
    /// Returns what was claimed and whether any tenant filled its share (more may be due).
    pub async fn claim_round(
        &self,
        free: usize,
        local: &HashMap<String, usize>,
        rotate: usize,
    ) -> Result<(Vec<Claimed>, bool), crate::store::StoreError> {
        let now = self.clock.now();
        let tenants = self.store.due_tenants(now, rotate).await?;
        if tenants.is_empty() {
            return Ok((Vec::new(), false));
        }
        let share = free.div_ceil(tenants.len()).max(1);
        let mut out = Vec::new();
        let mut full = false;
        for tenant in tenants {
            let want = share.min(free - out.len());
            if want == 0 {
                full = true;
                break;
            }
            match self.store.claim(&tenant, want, now, local, rotate).await {
                Ok((got, more)) => {
                    full |= more || got.len() == want;
                    out.extend(got);
                }
                // Each tenant's claim commits on its own: keep what earlier ones leased.
                Err(e) if !out.is_empty() => {
                    tracing::warn!(error = %e, tenant, "claim failed; sending what was already leased");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, full))
    }
}

/// The key under which a worker counts its attempts in flight: the endpoint, or all callbacks
/// together (a callback has no endpoint row to hold a limit).
fn target_key(c: &Claimed) -> String {
    c.endpoint_id.clone().unwrap_or_else(|| CALLBACKS.to_string())
}

/// `target_key` of callbacks; no endpoint id has this shape.
pub(crate) const CALLBACKS: &str = "(callbacks)";

async fn record_loop(store: Store, clock: SharedClock, mut rx: mpsc::Receiver<Finished>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        if let Err(e) = record_with_retries(&store, &clock, &batch).await {
            if e.is_data_error() {
                // One bad row must not hold up the others: write them one by one.
                tracing::error!(error = %e, count = batch.len(), "a result could not be stored; recording one by one");
                for f in &batch {
                    if let Err(e) = record_with_retries(&store, &clock, std::slice::from_ref(f)).await {
                        // Not lost: the lease expires and the delivery is attempted again.
                        tracing::error!(error = %e, delivery = %f.claimed.delivery_id, "could not record a result");
                    }
                }
            } else {
                tracing::error!(error = %e, count = batch.len(), "giving up recording results; their leases will expire");
            }
        }
        batch.clear();
    }
}

/// Writes a batch, retrying while the database is unreachable or the transaction lost a race;
/// a data error is answered at once (retrying the same rows cannot help).
async fn record_with_retries(store: &Store, clock: &SharedClock, batch: &[Finished]) -> Result<(), StoreError> {
    let write = || async { store.record(batch, clock.now()).await };
    write
        .retry(ExponentialBuilder::default().with_max_delay(Duration::from_secs(5)).with_max_times(1000))
        .when(|e: &StoreError| !e.is_data_error())
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "recording results failed; retrying"))
        .await
}
