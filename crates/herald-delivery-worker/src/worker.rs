//! The worker's hot loop: one `select!` over shutdown, a wake-up (NOTIFY), a jittered poll, and
//! finished attempts. It claims only when it has free slots and never more than it has.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use deadpool_postgres::Pool;
use herald_core::clock::SharedClock;
use herald_core::id::TenantId;
use herald_core::listen::Wake;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::attempt::{AttemptOutcome, Claimed, Finished, INTERNAL};
use crate::config::WorkerConfig;
use crate::send::Sender;
use crate::store::{jittered, Claim, Store, StoreError};

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
    wake: Arc<Wake>,
}

impl Worker {
    pub fn new(
        pool: Pool,
        clock: SharedClock,
        config: WorkerConfig,
        metrics: Arc<herald_core::metrics::Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let sender = Sender::new(config.allow.clone(), config.connect_timeout, config.attempt_timeout, config.lease)?;
        Ok(Self { store: Store::new(pool, config, metrics), sender, clock, wake: Wake::new() })
    }

    /// Woken by `wake`, which the binary's listener on its channel wakes, instead of a wake-up
    /// of its own that nothing wakes but polls (a worker started again after a panic keeps the
    /// listener of the one before).
    pub fn woken_by(mut self, wake: Arc<Wake>) -> Self {
        self.wake = wake;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until `shutdown`, then drains: no new claims, attempts in flight get
    /// `shutdown_grace` to finish, leases of the rest are given back, results are written.
    /// An error means the worker stopped because it could no longer record results (the
    /// process should exit non-zero, so that its supervisor notices and restarts it).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RecorderStopped> {
        let config = self.store.config.clone();
        let (results, rx) = mpsc::channel::<Finished>(config.concurrency * 2 + 16);
        let recorder = tokio::spawn(record_loop(self.store.clone(), self.clock.clone(), self.wake.clone(), rx));
        let mut recorder_lost = false;
        let mut inflight = InFlight::default();
        let (mut want_claim, mut backlog, mut stopping) = (true, false, false);
        // Whom the next claim is for: the tenants a notification named and those whose last
        // claim filled up, or everyone (`None`: ask each tenant whether it has due work).
        let mut next: Option<BTreeSet<TenantId>> = None;
        // Attempts in flight just after the last claim: with a backlog, claim again once half
        // of them have finished. Fewer, larger claims cost the database far less per delivery.
        let mut after_claim = 0usize;
        // Where the rotation of tenants and endpoints starts: random, so that a worker started
        // again (after a panic, or a crash) does not always begin with the same tenant.
        let mut rotate = rand::Rng::random::<u32>(&mut rand::rng()) as usize;
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
                    let only = next.take().map(|t| t.into_iter().collect::<Vec<_>>());
                    match self.claim_round(free, &inflight.per_target, rotate, only).await {
                        Ok(claim) => {
                            backlog = claim.more;
                            if backlog {
                                next = Some(claim.busy.iter().cloned().collect());
                            }
                            for c in claim.ready {
                                crate::fault::at(crate::fault::Fault::PanicClaim, &c.event_type);
                                self.store.metrics.in_flight.inc();
                                inflight.start(c, &self.sender, &self.clock);
                            }
                            for f in claim.refused {
                                recorder_lost |= !self.finish(&results, f).await;
                            }
                            after_claim = inflight.len();
                        }
                        Err(e) => tracing::warn!(error = %e, "claim failed; retrying at the next poll"),
                    }
                    rotate = rotate.wrapping_add(1);
                }
            }
            if recorder_lost && !stopping {
                // Sending on without recording would only make duplicates.
                tracing::error!(
                    "the result recorder stopped; stopping this worker (its leases will expire and be retried)"
                );
                shutdown.cancel();
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
                Some(done) = inflight.next() => {
                    self.store.metrics.in_flight.dec();
                    let finished = match done {
                        Done::Finished(f) => Some(f),
                        Done::Panicked(c, said) => {
                            // Herald's fault, not the receiver's: recorded, retried on the schedule.
                            self.store.metrics.panicked("worker");
                            tracing::error!(delivery = %c.delivery_id, tenant = %c.tenant_id, panic = %said, "an attempt panicked; recording it as failed");
                            let why = format!("Herald failed during this attempt ({said}); it is retried on the schedule");
                            Some(Finished::new(c, AttemptOutcome::refused(self.clock.now(), INTERNAL, why)))
                        }
                        Done::Cancelled(c) => {
                            let _ = self.store.give_back(&[c], self.clock.now()).await;
                            None
                        }
                        Done::Untracked => None,
                    };
                    if let Some(f) = finished {
                        recorder_lost |= !self.finish(&results, f).await;
                    }
                    if backlog && inflight.len() * 2 <= after_claim {
                        want_claim = true;
                    }
                    if want_claim && next.as_ref().is_some_and(BTreeSet::is_empty) {
                        next = None;
                    }
                }
                _ = self.wake.notified(), if !stopping => {
                    want_claim = true;
                    next = match (self.wake.take(), next.take()) {
                        (Some(woken), Some(mut n)) => { n.extend(woken); Some(n) }
                        (Some(woken), None) if !backlog => Some(woken.into_iter().collect()),
                        _ => None,
                    };
                }
                _ = &mut poll, if !stopping => {
                    want_claim = true;
                    next = None;
                    self.store.forget_marks();
                    poll.as_mut().reset(tokio::time::Instant::now() + jittered(config.poll_interval));
                }
                _ = &mut grace, if stopping => {
                    // Attempts that finished (even as the rest were aborted) are recorded, not
                    // given back: given back, a delivered one would be sent again.
                    let (done, left) = inflight.abort(self.clock.now()).await;
                    for f in done {
                        let _ = results.send(f).await;
                    }
                    tracing::warn!(count = left.len(), "grace period over: aborting attempts and giving their leases back");
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

    /// Counts a finished attempt and hands it to the recorder; false if the recorder is gone.
    async fn finish(&self, results: &mpsc::Sender<Finished>, f: Finished) -> bool {
        let m = &self.store.metrics;
        m.attempt_seconds.observe(f.outcome.duration.as_secs_f64());
        m.attempt(if f.outcome.delivered() { "delivered" } else { f.outcome.error.unwrap_or("failed") });
        results.send(f).await.is_ok()
    }

    /// One round: tenants with due deliveries in turn (`only` these, or every tenant that
    /// has some), each claiming up to its share of `free`. `more` says whether any tenant
    /// filled its share (more may be due), `busy` which.
    pub async fn claim_round(
        &self,
        free: usize,
        local: &HashMap<String, usize>,
        rotate: usize,
        only: Option<Vec<TenantId>>,
    ) -> Result<Claim, crate::store::StoreError> {
        let now = self.clock.now();
        let mut tenants = match only {
            Some(t) => t,
            None => self.store.due_tenants(now).await?,
        };
        let mut out = Claim::default();
        if tenants.is_empty() {
            return Ok(out);
        }
        let k = rotate % tenants.len();
        tenants.rotate_left(k);
        let share = free.div_ceil(tenants.len()).max(1);
        let (n, mut failures) = (tenants.len(), 0);
        for tenant in tenants {
            let want = share.min(free - out.len());
            if want == 0 {
                out.more = true;
                out.busy.push(tenant);
                continue;
            }
            let span = claim_span(&tenant);
            match self.store.claim(&tenant, want, now, local, rotate).instrument(span.clone()).await {
                Ok(got) => {
                    if herald_core::trace::on() {
                        span.record("herald.claimed", got.len());
                        for c in got.ready.iter().chain(got.refused.iter().map(|f| &f.claimed)) {
                            c.trace.link_from(&span);
                        }
                    }
                    if got.more || got.len() == want {
                        out.more = true;
                        out.busy.push(tenant.clone());
                    }
                    out.ready.extend(got.ready);
                    out.refused.extend(got.refused);
                }
                // Each tenant's claim commits on its own: one that fails (on Citus, its node may
                // be down) leaves the others' to go on, and what was leased is sent. Without a
                // connection at all, the round ends.
                Err(e) => {
                    failures += 1;
                    if matches!(e, StoreError::Pool(_)) || failures == n {
                        if out.is_empty() {
                            return Err(e);
                        }
                        tracing::warn!(error = %e, %tenant, "claim failed; sending what was already leased");
                        break;
                    }
                    tracing::warn!(error = %e, %tenant, "claim failed for this tenant; the others go on");
                }
            }
        }
        Ok(out)
    }
}

/// The span of one tenant's claim: a batch, linked to the trace of each delivery it leased.
fn claim_span(tenant: &TenantId) -> tracing::Span {
    if !herald_core::trace::on() {
        return tracing::Span::none();
    }
    tracing::info_span!("herald.claim", herald.tenant = %tenant, herald.claimed = tracing::field::Empty)
}

/// How an attempt's task ended.
enum Done {
    Finished(Finished),
    Panicked(Claimed, String),
    Cancelled(Claimed),
    Untracked,
}

/// The attempts in flight in one worker: their tasks, the delivery each holds, and how many
/// go to each target (the room left per endpoint is `endpoint_concurrency` less this).
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<Finished>,
    held: HashMap<tokio::task::Id, Claimed>,
    per_target: HashMap<String, usize>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn start(&mut self, c: Claimed, sender: &Sender, clock: &SharedClock) {
        *self.per_target.entry(c.target_key()).or_default() += 1;
        let (sender, clock, task) = (sender.clone(), clock.clone(), c.clone());
        let span = crate::send::attempt_span(&c);
        let trace = c.trace.from_within(&span);
        let attempt = async move {
            crate::fault::at(crate::fault::Fault::PanicAttempt, &task.event_type);
            let outcome = sender.send(&task, &trace, clock.now()).await;
            crate::send::record(&tracing::Span::current(), &outcome);
            Finished::new(task, outcome)
        };
        let handle = self.tasks.spawn(attempt.instrument(span));
        self.held.insert(handle.id(), c);
    }

    /// The next attempt to end, however it ended; `None` when none is in flight.
    async fn next(&mut self) -> Option<Done> {
        let joined = self.tasks.join_next_with_id().await?;
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let claimed = self.held.remove(&id);
        if let Some(key) = claimed.as_ref().map(Claimed::target_key) {
            if let Some(n) = self.per_target.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.per_target.remove(&key);
                }
            }
        }
        Some(match (joined, claimed) {
            (Ok((_, f)), _) => Done::Finished(f),
            (Err(e), Some(c)) if e.is_panic() => Done::Panicked(c, herald_core::panic::message(&*e.into_panic())),
            (Err(_), Some(c)) => Done::Cancelled(c),
            // Every task is in `held` from its start; were one not, its lease would expire.
            (Err(_), None) => Done::Untracked,
        })
    }

    /// Ends the rest: aborts every attempt still running, and sorts them all into those that
    /// finished (to be recorded, a panic as an `internal` failure) and those that were cut off
    /// (to be given back).
    async fn abort(&mut self, now: chrono::DateTime<chrono::Utc>) -> (Vec<Finished>, Vec<Claimed>) {
        self.tasks.abort_all();
        let (mut done, mut left) = (Vec::new(), Vec::new());
        while let Some(joined) = self.tasks.join_next_with_id().await {
            let id = match &joined {
                Ok((id, _)) => *id,
                Err(e) => e.id(),
            };
            let held = self.held.remove(&id);
            match (joined, held) {
                (Ok((_, f)), _) => done.push(f),
                (Err(e), Some(c)) if e.is_panic() => {
                    let said = herald_core::panic::message(&*e.into_panic());
                    let why = format!("Herald failed during this attempt ({said}); it is retried on the schedule");
                    done.push(Finished::new(c, AttemptOutcome::refused(now, INTERNAL, why)));
                }
                (Err(_), Some(c)) => left.push(c),
                (Err(_), None) => {}
            }
        }
        self.per_target.clear();
        (done, left)
    }
}

/// Writes results as they come, in batches. A tenant whose results cannot be written (the
/// database, or on Citus its node, is unreachable) has them held and tried again after a
/// backoff, while the other tenants' results go on being written: their leases do not expire
/// for another tenant's trouble (see [`Held`]).
async fn record_loop(store: Store, clock: SharedClock, wake: Arc<Wake>, mut rx: mpsc::Receiver<Finished>) {
    let mut held = Held::new();
    let mut open = true;
    while open || !held.results.is_empty() {
        // Wait for results; with some held, no longer than until they are due again.
        let received = if !open {
            tokio::time::sleep_until(held.due_at).await;
            Ok(None)
        } else if held.results.is_empty() {
            Ok(rx.recv().await)
        } else {
            tokio::time::timeout_at(held.due_at, rx.recv()).await
        };
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        match received {
            Ok(Some(f)) => batch.push(f),
            Ok(None) => open = false,
            Err(_) => {} // the held results are due
        }
        while batch.len() < RECORD_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        if tokio::time::Instant::now() >= held.due_at {
            batch.append(&mut held.results);
        }
        let unwritten = write(&store, &clock, &wake, batch).await;
        held.hold(unwritten);
    }
}

/// Writes a batch; answers the results that cannot be written for now (their tenant's
/// database, or on Citus its node, is unreachable).
async fn write(store: &Store, clock: &SharedClock, wake: &Wake, batch: Vec<Finished>) -> Vec<Finished> {
    let mut unwritten = vec![false; batch.len()];
    for (idx, e) in store.record_each(&batch, clock.now()).await {
        if !e.is_data_error() {
            tracing::warn!(error = %e, count = idx.len(), "recording a tenant's results failed; holding them to try again");
            idx.iter().for_each(|&i| unwritten[i] = true);
            continue;
        }
        // One bad row must not hold up the others: write them one by one.
        tracing::error!(error = %e, count = idx.len(), "a result could not be stored; recording one by one");
        for i in idx {
            for (_, e) in store.record_each(std::slice::from_ref(&batch[i]), clock.now()).await {
                if e.is_data_error() {
                    // Not lost: the lease expires and the delivery is attempted again.
                    tracing::error!(error = %e, delivery = %batch[i].claimed.delivery_id, "could not record a result");
                } else {
                    unwritten[i] = true;
                }
            }
        }
    }
    // A FIFO endpoint's next delivery may go once this one's result is in: claim it now
    // rather than at the next poll.
    for (f, _) in batch.iter().zip(&unwritten).filter(|(f, &u)| f.claimed.fifo && !u) {
        wake.hint(Some(f.claimed.tenant_id.as_str()));
    }
    batch.into_iter().zip(unwritten).filter_map(|(f, u)| u.then_some(f)).collect()
}

/// Results the recorder could not write yet, and when they are due to be tried again: after a
/// backoff, at most 5 s apart, given up after `RECORD_TRIES` (about 80 minutes; not lost:
/// their leases expire and the deliveries are attempted again).
struct Held {
    results: Vec<Finished>,
    due_at: tokio::time::Instant,
    backoff: ExponentialBuilder,
    delays: ExponentialBackoff,
}

const RECORD_TRIES: usize = 1000;

impl Held {
    fn new() -> Self {
        let backoff = ExponentialBuilder::default().with_max_delay(Duration::from_secs(5)).with_max_times(RECORD_TRIES);
        Self { results: Vec::new(), due_at: tokio::time::Instant::now(), delays: backoff.build(), backoff }
    }

    /// Holds what a write left unwritten; once nothing is held, the backoff starts over.
    fn hold(&mut self, mut unwritten: Vec<Finished>) {
        if unwritten.is_empty() {
            if self.results.is_empty() {
                self.delays = self.backoff.build();
            }
            return;
        }
        match self.delays.next() {
            Some(wait) => {
                self.due_at = tokio::time::Instant::now() + wait;
                self.results.append(&mut unwritten);
            }
            None => {
                tracing::error!(count = unwritten.len(), "giving up recording results; their leases will expire");
                self.delays = self.backoff.build();
            }
        }
    }
}
