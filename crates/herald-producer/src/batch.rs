//! Group commit for `POST /v1/events`: requests that arrive together share one transaction,
//! one fsync and one NOTIFY, and each is answered only after that transaction committed.
//!
//! A handler checks its event and hands it to [`Publisher::publish`]. A few writer tasks take
//! whatever is waiting (at most [`MAX_BATCH`]; never waiting for more: a lone event goes at
//! once) and write it in one transaction (on Citus, one per node the batch's tenants live on,
//! never one that commits on two): per tenant, one INSERT of its events and their deliveries
//! straight away (the API owns Herald's database, so its events skip the outbox queue and the
//! poller's hop), then COMMIT. An event with a callback goes through `herald.publish_event_json`
//! in the same transaction, as the Rust crate's `publish` does. If a batch fails, each tenant's
//! part is written again alone, and then each of its events, so one bad event fails only its
//! own request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use herald_core::clock::SharedClock;
use herald_core::deliveries;
use herald_core::id::{EventId, TenantId};
use herald_core::metrics::Metrics;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::publish::{NewEvent, PublishError, Published};

/// Events written in one transaction at most.
pub const MAX_BATCH: usize = 256;
/// Writers, each with its batch: while one waits for its COMMIT, another fills the next.
const WRITERS: usize = 2;

/// Events of one tenant, straight into the outbox table; a duplicate id keeps the first.
const INSERT_EVENTS: &str = "INSERT INTO herald.events AS e (tenant_id, event_id, seq, event_type, data, \
        created_at, traceparent, tracestate, deliver_at, consumer) \
     SELECT $1, u.id, u.seq, u.event_type, u.data::json, u.at, u.traceparent, u.tracestate, u.deliver_at, u.consumer \
       FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], \
                   $9::timestamptz[], $10::text[]) \
            AS u(id, seq, event_type, data, at, traceparent, tracestate, deliver_at, consumer) \
     ON CONFLICT ON CONSTRAINT events_pkey DO NOTHING \
     RETURNING e.event_id";

/// The stored time of ids that were published before.
const EXISTING: &str = "SELECT event_id, created_at FROM herald.events WHERE tenant_id = $1 AND event_id = ANY($2)";

struct Job {
    tenant: TenantId,
    entry: Entry,
    answer: oneshot::Sender<Result<Published, PublishError>>,
}

/// An event to write: its id (made when it was queued), itself, its time.
struct Entry {
    id: EventId,
    event: NewEvent,
    at: DateTime<Utc>,
}

/// The API's way into the outbox.
#[derive(Clone, Debug)]
pub struct Publisher {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

impl Publisher {
    /// Starts the writers; they stop when every `Publisher` clone is dropped.
    pub fn start(pool: Pool, clock: SharedClock, metrics: Arc<Metrics>) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>(MAX_BATCH * WRITERS);
        let rx = Arc::new(Mutex::new(rx));
        let nodes = Arc::new(herald_core::citus::Nodes::default());
        for _ in 0..WRITERS {
            let (rx, pool, clock, metrics) = (rx.clone(), pool.clone(), clock.clone(), metrics.clone());
            let nodes = nodes.clone();
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&rx).await {
                    for group in by_node(&pool, &nodes, batch).await {
                        write(&pool, &clock, &metrics, group).await;
                    }
                }
            });
        }
        Self { jobs }
    }

    /// Publishes `event` (already checked with [`NewEvent::check`]) for `tenant`: answered once
    /// it is committed, with its deliveries.
    pub async fn publish(
        &self,
        tenant: &TenantId,
        event: NewEvent,
        at: DateTime<Utc>,
    ) -> Result<Published, PublishError> {
        let (answer, answered) = oneshot::channel();
        // PostgreSQL keeps microseconds: answer the time as it is stored.
        let at = chrono::SubsecRound::trunc_subsecs(at, 6);
        // The id is made here, once: if a COMMIT's answer is lost and the event is written
        // again alone, it is found as stored, not stored twice under a second id.
        let id = event.id.clone().unwrap_or_else(|| EventId::generate(at));
        let event = NewEvent { id: Some(id.clone()), ..event };
        let job = Job { tenant: tenant.clone(), entry: Entry { id, event, at }, answer };
        self.jobs.send(job).await.map_err(|_| PublishError::Stopped)?;
        answered.await.map_err(|_| PublishError::Stopped)?
    }
}

/// What is waiting now, at least one job; `None` when every sender is gone.
async fn next_batch(rx: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// A tenant's part of a batch.
type Part = (TenantId, Vec<Job>);

/// `batch` by tenant, and the tenants by node: one group per transaction. If the nodes cannot
/// be looked up, one group per tenant.
async fn by_node(pool: &Pool, nodes: &herald_core::citus::Nodes, batch: Vec<Job>) -> Vec<Vec<Part>> {
    let mut by_tenant: BTreeMap<TenantId, Vec<Job>> = BTreeMap::new();
    for job in batch {
        by_tenant.entry(job.tenant.clone()).or_default().push(job);
    }
    let tenants: Vec<&TenantId> = by_tenant.keys().collect();
    let found = match nodes.known(&tenants) {
        Some(known) => Ok(known),
        None => match pool.get().await {
            Ok(client) => nodes.of(&client, &tenants).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
    };
    match found {
        Ok(node) => {
            let mut groups: BTreeMap<i32, Vec<Part>> = BTreeMap::new();
            for (part, n) in by_tenant.into_iter().zip(node) {
                groups.entry(n).or_default().push(part);
            }
            groups.into_values().collect()
        }
        Err(e) => {
            tracing::debug!(error = %e, "which node holds each tenant: not known; one transaction per tenant");
            by_tenant.into_iter().map(|part| vec![part]).collect()
        }
    }
}

/// Writes `group` in one transaction and answers each job. If that fails because of what it
/// wrote, each tenant's part alone, and if that fails, each of its events alone: one event's
/// trouble is its own. If the database could not be reached, every job is told so at once.
async fn write(pool: &Pool, clock: &SharedClock, metrics: &Metrics, group: Vec<Part>) {
    type Answer = oneshot::Sender<Result<Published, PublishError>>;
    let mut parts: Vec<(TenantId, Vec<Entry>, Vec<Answer>)> = group
        .into_iter()
        .map(|(tenant, jobs)| {
            let (entries, answers) = jobs.into_iter().map(|j| (j.entry, j.answer)).unzip();
            (tenant, entries, answers)
        })
        .collect();
    let answer = |answers: Vec<Answer>, published: Vec<Published>| {
        for (answer, p) in answers.into_iter().zip(published) {
            if !p.duplicate {
                metrics.published("http");
            }
            let _ = answer.send(Ok(p));
        }
    };
    let all: Vec<(&TenantId, &[Entry])> = parts.iter().map(|(t, e, _)| (t, e.as_slice())).collect();
    let tried_each_tenant = parts.len() == 1;
    match write_batch(pool, clock, &all).await {
        Ok(published) => {
            for ((_, _, answers), p) in parts.into_iter().zip(published) {
                answer(answers, p);
            }
            return;
        }
        Err(e) if tried_each_tenant && parts[0].1.len() == 1 => {
            let _ = parts.remove(0).2.remove(0).send(Err(e));
            return;
        }
        Err(e) if unreachable(&e) => {
            // Every piece would wait for the database again: each request is told to retry.
            let why = e.to_string();
            let mut first = Some(e);
            for answer in parts.into_iter().flat_map(|(_, _, answers)| answers) {
                let e = first.take().unwrap_or_else(|| PublishError::Unavailable(why.clone()));
                let _ = answer.send(Err(e));
            }
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, tenants = parts.len(), "a batch of publishes failed; writing it again in parts")
        }
    }
    for (tenant, entries, answers) in parts {
        if !tried_each_tenant {
            match write_batch(pool, clock, &[(&tenant, &entries)]).await {
                Ok(mut p) => {
                    answer(answers, p.remove(0));
                    continue;
                }
                Err(e) if entries.len() == 1 => {
                    let _ = answers.into_iter().next().map(|a| a.send(Err(e)));
                    continue;
                }
                Err(_) => {}
            }
        }
        for (entry, answer) in entries.iter().zip(answers) {
            let one = write_batch(pool, clock, &[(&tenant, std::slice::from_ref(entry))])
                .await
                .map(|mut p| p.remove(0).remove(0));
            if one.as_ref().is_ok_and(|p| !p.duplicate) {
                metrics.published("http");
            }
            let _ = answer.send(one);
        }
    }
}

/// Whether the database could not be reached (rather than refused something in the batch).
fn unreachable(e: &PublishError) -> bool {
    match e {
        PublishError::Pool(_) | PublishError::Unavailable(_) => true,
        PublishError::Database(d) => herald_core::db::is_unavailable(d),
        _ => false,
    }
}

/// One transaction for every part (each a tenant and its events); the answers in their order.
async fn write_batch(
    pool: &Pool,
    clock: &SharedClock,
    parts: &[(&TenantId, &[Entry])],
) -> Result<Vec<Vec<Published>>, PublishError> {
    let mut client = pool.get().await.map_err(PublishError::Pool)?;
    let tx = client.transaction().await?;
    let mut published = Vec::with_capacity(parts.len());
    for (tenant, jobs) in parts {
        published.push(write_tenant(&tx, clock, tenant, jobs).await?);
    }
    tx.commit().await?;
    Ok(published)
}

/// A tenant's events and their deliveries, in `tx`; the answers in their order.
async fn write_tenant(
    tx: &deadpool_postgres::Transaction<'_>,
    clock: &SharedClock,
    tenant: &TenantId,
    jobs: &[Entry],
) -> Result<Vec<Published>, PublishError> {
    let mut answers: Vec<Option<Published>> = vec![None; jobs.len()];
    let (plain, with_callback): (Vec<usize>, Vec<usize>) =
        (0..jobs.len()).partition(|&i| jobs[i].event.callback_url.is_none());
    for i in with_callback {
        answers[i] = Some(crate::publish::publish_as(tx, tenant, &jobs[i].event, jobs[i].at, None).await?);
    }
    if !plain.is_empty() {
        let ids: Vec<&EventId> = plain.iter().map(|&i| &jobs[i].id).collect();
        let seqs: Vec<i64> = plain.iter().map(|&i| herald_core::id::seq_at(jobs[i].at)).collect();
        let types: Vec<&str> = plain.iter().map(|&i| jobs[i].event.event_type.as_str()).collect();
        let data: Vec<&str> = plain.iter().map(|&i| jobs[i].event.data.as_str()).collect();
        let ats: Vec<DateTime<Utc>> = plain.iter().map(|&i| jobs[i].at).collect();
        let traceparents: Vec<Option<&str>> = plain.iter().map(|&i| jobs[i].event.traceparent.as_deref()).collect();
        let tracestates: Vec<Option<&str>> = plain.iter().map(|&i| jobs[i].event.tracestate.as_deref()).collect();
        let deliver_ats: Vec<Option<DateTime<Utc>>> = plain.iter().map(|&i| jobs[i].event.deliver_at).collect();
        let consumers: Vec<Option<&str>> = plain.iter().map(|&i| jobs[i].event.consumer.as_deref()).collect();
        let insert = tx.prepare_cached(INSERT_EVENTS).await?;
        let inserted: Vec<EventId> = tx
            .query(
                &insert,
                &[&tenant, &ids, &seqs, &types, &data, &ats, &traceparents, &tracestates, &deliver_ats, &consumers],
            )
            .await
            .map_err(publish_error)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        // The first job with an id that was inserted made it; any other is a duplicate.
        let mut fresh: HashMap<&str, bool> = inserted.iter().map(|id| (id.as_str(), true)).collect();
        let mut events = Vec::new();
        let mut old = Vec::new();
        for (k, &i) in plain.iter().enumerate() {
            let made_here = fresh.get_mut(ids[k].as_str()).map(std::mem::take).unwrap_or(false);
            if made_here {
                events.push(deliveries::Event {
                    id: ids[k].clone(),
                    event_type: types[k].to_string(),
                    callback_url: None,
                    trace: jobs[i].event.trace_context(),
                    deliver_at: jobs[i].event.deliver_at,
                    seq: seqs[k],
                    consumer: jobs[i].event.consumer.clone(),
                });
                answers[i] = Some(Published {
                    id: ids[k].clone(),
                    created_at: ats[k],
                    duplicate: false,
                    generated_callback_secret: None,
                });
            } else {
                old.push((i, ids[k]));
            }
        }
        if !old.is_empty() {
            let wanted: Vec<&EventId> = old.iter().map(|(_, id)| *id).collect();
            let stored: HashMap<String, DateTime<Utc>> = tx
                .query(EXISTING, &[&tenant, &wanted])
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, tokio_postgres::Error>>()?;
            for (i, id) in old {
                // Inserted by this very batch (the same id twice): its time is the first's.
                let created_at = stored
                    .get(id.as_str())
                    .copied()
                    .or_else(|| answers.iter().flatten().find(|p| p.id == *id && !p.duplicate).map(|p| p.created_at));
                let created_at = created_at.unwrap_or(jobs[i].at);
                let id = id.clone();
                answers[i] = Some(Published { id, created_at, duplicate: true, generated_callback_secret: None });
            }
        }
        // Due from now, not from when the requests came: claims start shortly before where they
        // ended (see the worker's marks), and these rows must not land behind them.
        deliveries::fan_out(tx, tenant, &events, clock.now()).await?;
    }
    // Every job was answered above (it is plain or has a callback); a hole would be a bug,
    // answered as an error rather than a panic.
    answers.into_iter().map(|a| a.ok_or(PublishError::Stopped)).collect()
}

/// An unknown tenant (its row is gone) is a foreign key the database refuses.
fn publish_error(e: tokio_postgres::Error) -> PublishError {
    if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
        PublishError::UnknownTenant(String::new())
    } else {
        PublishError::Database(e)
    }
}
