//! The worker's database work: claim, record, give back. Each call is one short transaction;
//! none is open while an HTTP request is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use herald_core::deliveries::{self, State};
use herald_core::id::{DeliveryId, EndpointId, TenantId};
use herald_core::policy::TenantSettings;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::attempt::{target_key, AttemptOutcome, Claimed, Finished, URL_POLICY};
use crate::config::WorkerConfig;
use crate::retry;
use crate::sql;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] herald_core::db::DbError),
}

impl StoreError {
    /// An error in the data itself (see `herald_core::db::is_data_error`): the same rows fail again.
    pub fn is_data_error(&self) -> bool {
        match self {
            StoreError::Postgres(e) | StoreError::Db(herald_core::db::DbError::Postgres(e)) => {
                herald_core::db::is_data_error(e)
            }
            StoreError::Pool(_) | StoreError::Db(_) => false,
        }
    }
}

/// The database side of a worker.
#[derive(Debug, Clone)]
pub struct Store {
    pub pool: Pool,
    pub config: WorkerConfig,
    pub metrics: std::sync::Arc<herald_core::metrics::Metrics>,
    /// Per tenant and target, the latest next_attempt_at among the deliveries this worker
    /// claimed there: the next claim starts [`MARK_MARGIN`] before it. Everything older was claimed (by
    /// this worker or another, or locked by one claiming right then), so the claim index's
    /// front, where the entries of delivered rows wait for VACUUM, is not walked again. The
    /// margin is for deliveries that commit out of order (two writers, each with its own time);
    /// whatever still falls behind (a lease that expired, a retry due a while ago, a commit
    /// later than the margin) is found at the next poll, when [`Store::forget_marks`] makes
    /// the claim start from the beginning.
    marks: std::sync::Arc<std::sync::Mutex<Marks>>,
    /// Tenants' settings as read lately (their URL policy applies at every attempt).
    settings: std::sync::Arc<std::sync::Mutex<HashMap<TenantId, (std::time::Instant, TenantSettings)>>>,
}

/// How long a tenant's settings are used before they are read again: a policy tightened takes
/// effect within it.
const SETTINGS_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// How far before its mark a claim starts (see `Store::marks`).
const MARK_MARGIN: chrono::Duration = chrono::Duration::milliseconds(250);

/// (tenant, target) -> the latest next_attempt_at claimed there.
type Marks = HashMap<(TenantId, String), DateTime<Utc>>;

/// What one claim leased: attempts to send, attempts already failed (deliveries that cannot
/// be prepared, see [`crate::prepare`]), and whether more may be due right now.
#[derive(Debug, Default)]
pub struct Claim {
    pub ready: Vec<Claimed>,
    pub refused: Vec<Finished>,
    pub more: bool,
    /// Tenants that may have more due right now.
    pub busy: Vec<TenantId>,
}

impl Claim {
    /// Deliveries to URLs the tenant's policy no longer allows are not sent: each is a refused
    /// attempt (`url_policy`), retried on the schedule, so a policy loosened again lets them go.
    fn apply_policy(&mut self, settings: &TenantSettings, now: DateTime<Utc>) {
        if !settings.require_https && settings.allowed_domains.is_none() {
            return;
        }
        for c in std::mem::take(&mut self.ready) {
            let field = if c.endpoint_id.is_some() { "the endpoint's URL" } else { "the callback URL" };
            let verdict = url::Url::parse(&c.url)
                .map_err(|e| e.to_string())
                .and_then(|u| settings.permits(field, &u).map_err(|e| format!("{}; it is not sent", e.message)));
            match verdict {
                Ok(()) => self.ready.push(c),
                Err(why) => self.refused.push(Finished::new(c, AttemptOutcome::refused(now, URL_POLICY, why))),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ready.len() + self.refused.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the rows of a committed claim, each prepared on its own.
    fn take(&mut self, tenant: &TenantId, rows: Vec<tokio_postgres::Row>, now: DateTime<Utc>) {
        for row in &rows {
            match crate::prepare::prepare(tenant, row, now) {
                Some(Ok(c)) => self.ready.push(c),
                Some(Err(f)) => self.refused.push(f),
                None => {}
            }
        }
    }
}

impl Store {
    pub fn new(pool: Pool, config: WorkerConfig, metrics: std::sync::Arc<herald_core::metrics::Metrics>) -> Self {
        Self { pool, config, metrics, marks: Default::default(), settings: Default::default() }
    }

    /// Claims start from the beginning of each target's range again (see `marks`).
    pub fn forget_marks(&self) {
        self.marks.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Tenants with due deliveries.
    pub async fn due_tenants(&self, now: DateTime<Utc>) -> Result<Vec<TenantId>, StoreError> {
        let client = self.pool.get().await?;
        Ok(herald_core::db::tenants_where(&client, deliveries::TENANT_HAS_DUE, &[&now]).await?)
    }

    /// Claims up to `limit` due deliveries of `tenant`, leased to this worker.
    ///
    /// Its callbacks and its endpoints without limits in one statement (its own transaction):
    /// each target gets at most what this worker has room for (`endpoint_concurrency` less
    /// `local` in flight), so one endpoint's backlog or a hanging receiver never takes every
    /// slot; the targets take turns to go first (`rotate`). Then each limited endpoint with due
    /// work, under its row's lock, at most what its `max_in_flight` and token bucket allow
    /// across all workers.
    ///
    /// `more` says whether more may be due right now (a target that filled its room, or the
    /// whole claim full), so the worker claims again as its attempts finish.
    pub async fn claim(
        &self,
        tenant: &TenantId,
        limit: usize,
        now: DateTime<Utc>,
        local: &HashMap<String, usize>,
        rotate: usize,
    ) -> Result<Claim, StoreError> {
        if limit == 0 {
            return Ok(Claim::default());
        }
        let lease_until = now + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(60));
        let worker = &self.config.worker_id;
        let room = self.config.endpoint_concurrency;
        let mut client = self.pool.get().await?;
        // What this worker has in flight to each of this tenant's targets.
        let prefix = target_key(tenant, "");
        let in_flight = |target: &str| local.get(&target_key(tenant, target)).copied().unwrap_or(0);
        let (targets, counts): (Vec<&str>, Vec<i32>) = local
            .iter()
            .filter_map(|(k, n)| Some((k.strip_prefix(&prefix)?, (*n).min(i32::MAX as usize) as i32)))
            .unzip();
        let (marked, after): (Vec<String>, Vec<DateTime<Utc>>) = {
            let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
            marks
                .iter()
                .filter(|((t, _), _)| t == tenant)
                .map(|((_, target), at)| (target.clone(), *at - MARK_MARGIN))
                .unzip()
        };
        // Planned for these values each time, never cached: a generic plan of this statement
        // (which PostgreSQL picks for a cached one after five runs, on the statistics of a table
        // that was small then) walked the whole claim index; make bench saw 7 ms a claim, not 0.3.
        let statement = client.prepare(&deliveries::claim_open()).await?;
        let mut rows = client
            .query(
                &statement,
                &[
                    &tenant,
                    &now,
                    &(limit as i64),
                    &lease_until,
                    worker,
                    &(room as i32),
                    &targets,
                    &counts,
                    &(rotate as i64),
                    &marked,
                    &after,
                ],
            )
            .await?;
        // Per target: how many were claimed, and the mark moved to the latest claimed.
        let mut per_target: HashMap<String, usize> = HashMap::new();
        {
            let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
            for r in &rows {
                let target =
                    deliveries::target_of(r.try_get::<_, Option<EndpointId>>("endpoint_id").ok().flatten().as_ref())
                        .to_string();
                if let Ok(at) = r.try_get::<_, DateTime<Utc>>("next_attempt_at") {
                    let mark = marks.entry((tenant.clone(), target.clone())).or_insert(at);
                    *mark = (*mark).max(at);
                }
                *per_target.entry(target).or_default() += 1;
            }
        }
        // More may be due if the claim filled up, or a target filled (or had no) room.
        let mut more = rows.len() >= limit
            || counts.iter().any(|n| *n as usize >= room)
            || per_target.iter().any(|(t, n)| n + in_flight(t) >= room);
        drop(per_target);
        if rows.len() < limit {
            let limited =
                client.query(&client.prepare_cached(deliveries::DUE_LIMITED).await?, &[&tenant, &now]).await?;
            let mut limited: Vec<EndpointId> = limited.iter().filter_map(|r| r.try_get(0).ok()).collect();
            if !limited.is_empty() {
                let k = rotate % limited.len();
                limited.rotate_left(k);
            }
            for endpoint in limited {
                let want = (limit - rows.len()).min(room.saturating_sub(in_flight(&endpoint)));
                if want == 0 {
                    more = true;
                    continue;
                }
                let tx = client.transaction().await?;
                let (got, full) = self.claim_limited(&tx, tenant, &endpoint, want, now, lease_until).await?;
                tx.commit().await?;
                more |= full;
                rows.extend(got);
                if rows.len() >= limit {
                    more = true;
                    break;
                }
            }
        }
        self.metrics.claims.inc();
        self.metrics.claimed.inc_by(rows.len() as u64);
        let reclaimed = rows.iter().filter(|r| r.try_get::<_, i16>("lost_leases").is_ok_and(|n| n > 0)).count();
        self.metrics.leases_reclaimed.inc_by(reclaimed as u64);
        let mut claim = Claim { more, ..Claim::default() };
        claim.take(tenant, rows, now);
        // Leased already: a failed read must not drop them (they would wait for their leases).
        match self.settings(&client, tenant).await {
            Ok(settings) => claim.apply_policy(&settings, now),
            Err(e) => tracing::warn!(%tenant, error = %e, "could not read the tenant's URL policy; sending as claimed"),
        }
        Ok(claim)
    }

    /// `tenant`'s settings, read again when older than [`SETTINGS_FOR`].
    async fn settings(&self, client: &tokio_postgres::Client, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let cached = self.settings.lock().unwrap_or_else(|p| p.into_inner()).get(tenant).cloned();
        if let Some((_, s)) = cached.filter(|(at, _)| at.elapsed() < SETTINGS_FOR) {
            return Ok(s);
        }
        let s = TenantSettings::load(client, tenant).await?.unwrap_or_default();
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.clone(), (std::time::Instant::now(), s.clone()));
        Ok(s)
    }

    /// Claims up to `want` of a limited endpoint's due deliveries in `tx`, under the endpoint
    /// row's lock: what every worker together may still send. Whether it got all it may have.
    async fn claim_limited(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        tenant: &TenantId,
        endpoint: &EndpointId,
        want: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<(Vec<tokio_postgres::Row>, bool), StoreError> {
        let Some(l) = tx.query_opt(sql::LOCK_LIMITED, &[&tenant, &endpoint]).await? else {
            return Ok((Vec::new(), false));
        };
        type Limits = (Option<i32>, Option<i32>, Option<f64>, Option<DateTime<Utc>>, bool);
        let read = || -> Result<Limits, tokio_postgres::Error> {
            Ok((
                l.try_get("max_in_flight")?,
                l.try_get("rate_limit_per_s")?,
                l.try_get("rate_tokens")?,
                l.try_get("rate_refilled_at")?,
                l.try_get("fifo")?,
            ))
        };
        let (max_in_flight, rate_limit, stored, at, fifo) = match read() {
            Ok(x) => x,
            // An endpoint row that cannot be read holds up its own deliveries only.
            Err(e) => {
                tracing::error!(%tenant, %endpoint, error = %herald_core::db::describe(&e), "an endpoint row cannot be read; its deliveries wait");
                return Ok((Vec::new(), false));
            }
        };
        let mut budget = want as i64;
        // FIFO: one at a time, across every worker.
        let max_in_flight = if fifo { Some(max_in_flight.map_or(1, |m| m.min(1))) } else { max_in_flight };
        if let Some(m) = max_in_flight {
            let in_flight: i64 = tx.query_one(deliveries::IN_FLIGHT, &[&tenant, &endpoint, &now]).await?.try_get(0)?;
            budget = budget.min(i64::from(m) - in_flight);
        }
        let mut bucket = None;
        if let Some(rate) = rate_limit {
            let rate = f64::from(rate);
            let elapsed = at.map_or(f64::MAX, |a| (now - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
            // The bucket holds at most one second's worth: in any one second at most twice the
            // rate (a full bucket and its refill), over longer spans the rate itself.
            let tokens = (stored.unwrap_or(rate) + elapsed.max(0.0) * rate).min(rate);
            budget = budget.min(tokens.floor() as i64);
            bucket = Some(tokens);
        }
        let worker = &self.config.worker_id;
        let rows = if budget <= 0 {
            Vec::new()
        } else if fifo {
            let settled = now - chrono::Duration::from_std(self.config.fifo_settle).unwrap_or_default();
            let before = herald_core::id::seq_at(settled) | 1023;
            tx.query(&deliveries::claim_fifo(), &[&tenant, &now, &budget, &lease_until, worker, &endpoint, &before])
                .await?
        } else {
            tx.query(&deliveries::claim_one(), &[&tenant, &now, &budget, &lease_until, worker, &endpoint]).await?
        };
        if let Some(tokens) = bucket {
            let left = tokens - rows.len() as f64;
            tx.execute(sql::UPDATE_BUCKET, &[&tenant, &endpoint, &left, &now]).await?;
        }
        let full = budget > 0 && rows.len() as i64 == budget;
        Ok((rows, full))
    }

    /// Records a batch of finished attempts: per tenant, each delivery's new state (see
    /// [`retry::after`]) and its attempt in one statement. When an endpoint's health changes
    /// (rare), that tenant's results and the `endpoint.*` events go in one transaction,
    /// endpoints taken in a fixed order so that two recorders never deadlock. The first error,
    /// if any (see [`Store::record_each`]).
    pub async fn record(&self, batch: &[Finished], now: DateTime<Utc>) -> Result<(), StoreError> {
        match self.record_each(batch, now).await.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Store::record`], tenant by tenant: a tenant whose results cannot be written (on Citus,
    /// its node may be down) does not hold up the others'. Answers the tenants that failed:
    /// the indexes in `batch` of their results, and why.
    pub async fn record_each(&self, batch: &[Finished], now: DateTime<Utc>) -> Vec<(Vec<usize>, StoreError)> {
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let nexts: Vec<retry::Next> = batch
            .iter()
            .map(|f| retry::after(&f.claimed, &f.outcome, &self.config.retry_schedule, now, &mut rng))
            .collect();
        let mut by_tenant: BTreeMap<&TenantId, Vec<usize>> = BTreeMap::new();
        for (i, f) in batch.iter().enumerate() {
            by_tenant.entry(&f.claimed.tenant_id).or_default().push(i);
        }
        let mut client = match self.pool.get().await {
            Ok(c) => c,
            Err(e) => return vec![((0..batch.len()).collect(), e.into())],
        };
        // Planned for these values each time, as the claim is: a cached generic plan of this
        // join with an array (PostgreSQL's choice after five runs) scanned the whole table, 43 ms
        // for 125 results with 50,000 deliveries (make bench), where the custom plan takes 2.
        let statement = match client.prepare(deliveries::RECORD).await {
            Ok(s) => s,
            Err(e) => return vec![((0..batch.len()).collect(), e.into())],
        };
        let mut failed = Vec::new();
        for (tenant, idx) in by_tenant {
            let items: Vec<_> = idx.iter().map(|&i| (&batch[i], &nexts[i])).collect();
            if let Err(e) = self.record_for(&mut client, &statement, tenant, &items, now).await {
                failed.push((idx, e));
            }
        }
        failed
    }

    /// One tenant's results, each with what follows it.
    async fn record_for(
        &self,
        client: &mut deadpool_postgres::Object,
        statement: &tokio_postgres::Statement,
        tenant: &TenantId,
        items: &[(&Finished, &retry::Next)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if items.iter().all(|(_, next)| next.transition.is_none()) {
            // Nothing but results: the statement commits on its own.
            let landed = self.record_tenant(&***client, statement, tenant, items, now).await?;
            self.count(items, &landed);
            return Ok(());
        }
        // A change of an endpoint's health: the tenant's results, the endpoint and its
        // event in one transaction (of this tenant alone: on Citus, on one node).
        let tx = client.transaction().await?;
        let here = self.record_tenant(&*tx, statement, tenant, items, now).await?;
        // The strongest change per endpoint wins: disabled over failing over recovered.
        let mut transitions: BTreeMap<&EndpointId, (retry::Transition, &Finished)> = BTreeMap::new();
        for &(f, next) in items {
            let (Some(t), Some(endpoint)) = (next.transition, f.claimed.endpoint_id.as_ref()) else { continue };
            if !here.contains(&f.claimed.delivery_id) {
                continue;
            }
            let e = transitions.entry(endpoint).or_insert((t, f));
            if t > e.0 {
                *e = (t, f);
            }
        }
        for (endpoint, (transition, f)) in transitions {
            self.transition(&tx, tenant, endpoint, transition, f, now).await?;
        }
        tx.commit().await?;
        self.count(items, &here);
        Ok(())
    }

    /// Counts what of one tenant's results landed, once they are committed (a later tenant's
    /// failure retries the batch, and these no longer land then).
    fn count(&self, items: &[(&Finished, &retry::Next)], landed: &HashSet<DeliveryId>) {
        for (f, next) in items {
            if next.state != State::Pending && landed.contains(&f.claimed.delivery_id) {
                self.metrics.finished(next.state.as_str());
                if next.state == State::Delivered {
                    // From when it was due to go: a scheduled event's wait is not lag.
                    let from = f.claimed.deliver_at.map_or(f.claimed.created_at, |d| d.max(f.claimed.created_at));
                    let lag = (f.outcome.started_at - from).num_milliseconds().max(0) as f64 / 1e3;
                    self.metrics.delivery_lag_seconds.observe(lag + f.outcome.duration.as_secs_f64());
                }
            }
        }
    }

    /// One tenant's results and attempts, in one statement; the deliveries whose result landed
    /// (still leased to this worker for this attempt). The attempt log keeps every attempt,
    /// also one whose lease had expired.
    async fn record_tenant(
        &self,
        db: &impl tokio_postgres::GenericClient,
        statement: &tokio_postgres::Statement,
        tenant: &TenantId,
        results: &[(&Finished, &retry::Next)],
        now: DateTime<Utc>,
    ) -> Result<HashSet<DeliveryId>, StoreError> {
        let items: Vec<&Finished> = results.iter().map(|(f, _)| *f).collect();
        let ids: Vec<&str> = items.iter().map(|f| f.claimed.delivery_id.as_str()).collect();
        let attempts: Vec<i32> = items.iter().map(|f| f.claimed.attempt).collect();
        let states: Vec<&str> = results.iter().map(|(_, n)| n.state.as_str()).collect();
        let next_ats: Vec<DateTime<Utc>> = results.iter().map(|(_, n)| n.at).collect();
        let codes: Vec<Option<i32>> = items.iter().map(|f| f.outcome.status_code.map(i32::from)).collect();
        let errs: Vec<Option<&str>> = items.iter().map(|f| f.outcome.detail.as_deref()).collect();
        let urls: Vec<&str> = items.iter().map(|f| f.claimed.url.as_str()).collect();
        let a_ids: Vec<&str> = items.iter().map(|f| f.attempt_id.as_str()).collect();
        let a_evt: Vec<&str> = items.iter().map(|f| f.claimed.event_id.as_str()).collect();
        let a_start: Vec<DateTime<Utc>> = items.iter().map(|f| f.outcome.started_at).collect();
        let a_ms: Vec<i32> =
            items.iter().map(|f| f.outcome.duration.as_millis().min(i32::MAX as u128) as i32).collect();
        let a_err: Vec<Option<&str>> = items.iter().map(|f| f.outcome.error).collect();
        let a_excerpt: Vec<Option<&str>> = items.iter().map(|f| f.outcome.excerpt.as_deref()).collect();
        let a_endpoint: Vec<Option<&str>> =
            items.iter().map(|f| f.claimed.endpoint_id.as_ref().map(|e| e.as_str())).collect();
        Ok(db
            .query(
                statement,
                &[
                    &tenant,
                    &ids,
                    &now,
                    &attempts,
                    &states,
                    &next_ats,
                    &codes,
                    &errs,
                    &self.config.worker_id,
                    &urls,
                    &a_ids,
                    &a_evt,
                    &a_start,
                    &a_ms,
                    &a_err,
                    &a_excerpt,
                    &a_endpoint,
                ],
            )
            .await?
            .iter()
            .filter_map(|r| r.try_get(0).ok())
            .collect())
    }

    /// Moves an endpoint's health and publishes its `endpoint.*` event, if it was not there yet;
    /// then leaves a notice for each of the tenant's notice channels that is on (email, Slack:
    /// `herald_core::policy::enqueue_notices`), which the outbox-poller sends later. In this
    /// transaction, so one change makes at most one notice per channel, and a tenant without
    /// channels costs one read of its row; nothing here waits for a mail server or Slack.
    async fn transition(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        tenant: &TenantId,
        endpoint: &EndpointId,
        transition: retry::Transition,
        f: &Finished,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let c = &f.claimed;
        let (kind, reason) = match transition {
            retry::Transition::Recovered => ("recovered", None),
            retry::Transition::Disabled => ("disabled", Some("the receiver answered 410 Gone")),
            retry::Transition::Failing => ("failing", None),
        };
        let (row, event_type, mut data) = match transition {
            retry::Transition::Recovered => (
                tx.query_opt(sql::ENDPOINT_TO_HEALTHY, &[&tenant, &endpoint, &now]).await?,
                "endpoint.recovered",
                json!({"endpoint_id": endpoint}),
            ),
            retry::Transition::Disabled => (
                tx.query_opt(sql::ENDPOINT_TO_DISABLED, &[&tenant, &endpoint, &now, &reason]).await?,
                "endpoint.disabled",
                json!({"endpoint_id": endpoint, "reason": reason}),
            ),
            retry::Transition::Failing => (
                tx.query_opt(sql::ENDPOINT_TO_FAILING, &[&tenant, &endpoint, &now]).await?,
                "endpoint.failing",
                json!({"endpoint_id": endpoint, "event_id": c.event_id, "delivery_id": c.delivery_id,
                       "last_error": f.outcome.detail}),
            ),
        };
        if let Some(row) = row {
            let url = row.try_get::<_, String>(0).unwrap_or_default();
            data["url"] = json!(url);
            tx.query_one(sql::PUBLISH, &[&tenant, &event_type, &data, &now]).await?;
            // What the notice's text says: the attempt that made the change, whatever the kind.
            let detail = json!({"url": url, "event_id": c.event_id, "delivery_id": c.delivery_id,
                                "last_error": f.outcome.detail, "status_code": f.outcome.status_code,
                                "reason": reason});
            let notices = herald_core::policy::enqueue_notices(&**tx, tenant, endpoint, kind, &detail, now).await?;
            tracing::info!(%tenant, %endpoint, event_type, notices, "endpoint status changed");
        }
        Ok(())
    }

    /// Gives leases back untouched, so another worker may take them at once.
    pub async fn give_back(&self, claimed: &[Claimed], now: DateTime<Utc>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        for c in claimed {
            client
                .execute(
                    deliveries::GIVE_BACK,
                    &[&c.tenant_id, &c.delivery_id, &self.config.worker_id, &now, &c.attempt],
                )
                .await?;
        }
        Ok(())
    }
}

/// ±20 % around `base`: pollers of many workers do not line up.
pub fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::rng().random_range(0.8..=1.2))
}
