//! The worker's database work: claim, record, give back. Each call is one short transaction;
//! none is open while an HTTP request is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use herald_core::id;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::config::WorkerConfig;
use crate::retry;
use crate::send::{AttemptOutcome, Claimed};
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
}

/// A finished attempt, on its way to the database.
#[derive(Debug, Clone)]
pub struct Finished {
    pub claimed: Claimed,
    pub outcome: AttemptOutcome,
    /// Made once, so that a batch written twice (a COMMIT whose answer was lost) logs it once.
    pub attempt_id: String,
}

impl Finished {
    pub fn new(claimed: Claimed, outcome: AttemptOutcome) -> Self {
        let attempt_id = id::new_id(id::ATTEMPT, outcome.started_at);
        Self { claimed, outcome, attempt_id }
    }
}

/// What one claim leased: attempts to send, attempts already failed (deliveries that cannot
/// be prepared, see [`crate::prepare`]), and whether more may be due right now.
#[derive(Debug, Default)]
pub struct Claim {
    pub ready: Vec<Claimed>,
    pub refused: Vec<Finished>,
    pub more: bool,
}

impl Claim {
    pub fn len(&self) -> usize {
        self.ready.len() + self.refused.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the rows of a committed claim, each prepared on its own.
    fn take(&mut self, tenant: &str, rows: Vec<tokio_postgres::Row>, now: DateTime<Utc>) {
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
    /// Tenants with due deliveries, in a rotated order so that each gets its turn first.
    pub async fn due_tenants(&self, now: DateTime<Utc>, rotate: usize) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let mut tenants = herald_core::db::tenants_where(&client, sql::TENANT_HAS_DUE, &[&now]).await?;
        if !tenants.is_empty() {
            let k = rotate % tenants.len();
            tenants.rotate_left(k);
        }
        Ok(tenants)
    }

    /// Claims up to `limit` due deliveries of `tenant`, leased to this worker, and commits.
    ///
    /// Endpoint by endpoint, in an order rotated by `rotate`: each endpoint gets at most what
    /// this worker has room for (`endpoint_concurrency` less `local` in flight), and a limited
    /// endpoint at most what its `max_in_flight` and token bucket allow across all workers, so
    /// one endpoint's backlog or a hanging receiver never takes every slot. Callbacks last.
    ///
    /// Also answers whether more may be due right now (a claim that got all it asked for, or an
    /// endpoint skipped for want of this worker's room), so the worker claims again as its
    /// attempts finish instead of waiting for the next poll.
    pub async fn claim(
        &self,
        tenant: &str,
        limit: usize,
        now: DateTime<Utc>,
        local: &HashMap<String, usize>,
        rotate: usize,
    ) -> Result<Claim, StoreError> {
        if limit == 0 {
            return Ok(Claim::default());
        }
        let mut more = false;
        let lease_until = now + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(60));
        let worker = &self.config.worker_id;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Rows are read only after COMMIT: nothing in them can roll the claim back.
        let mut out: Vec<tokio_postgres::Row> = Vec::new();
        let mut endpoints = tx.query(sql::DUE_ENDPOINTS, &[&tenant, &now]).await?;
        if !endpoints.is_empty() {
            let k = rotate % endpoints.len();
            endpoints.rotate_left(k);
        }
        for row in endpoints {
            if out.len() >= limit {
                more = true;
                break;
            }
            // An endpoint row that cannot be read holds up its own deliveries only.
            let skip = |e: tokio_postgres::Error| {
                tracing::error!(tenant, error = %herald_core::db::describe(&e), "an endpoint row cannot be read; its deliveries wait");
            };
            let (endpoint, limited) = match (|| {
                let endpoint: String = row.try_get("endpoint_id")?;
                let limited = row.try_get::<_, Option<i32>>("max_in_flight")?.is_some()
                    || row.try_get::<_, Option<i32>>("rate_limit_per_s")?.is_some();
                Ok::<_, tokio_postgres::Error>((endpoint, limited))
            })() {
                Ok(x) => x,
                Err(e) => {
                    skip(e);
                    continue;
                }
            };
            let in_flight_here = local.get(&endpoint).copied().unwrap_or(0);
            let mut budget =
                (limit - out.len()).min(self.config.endpoint_concurrency.saturating_sub(in_flight_here)) as i64;
            if budget <= 0 {
                more = true;
                continue;
            }
            let mut bucket = None;
            if limited {
                // Under the endpoint row's lock: what every worker together may still send.
                let Some(l) = tx.query_opt(sql::LOCK_LIMITED, &[&tenant, &endpoint]).await? else { continue };
                type Limits = (Option<i32>, Option<i32>, Option<f64>, Option<DateTime<Utc>>);
                let read = || -> Result<Limits, tokio_postgres::Error> {
                    Ok((
                        l.try_get("max_in_flight")?,
                        l.try_get("rate_limit_per_s")?,
                        l.try_get("rate_tokens")?,
                        l.try_get("rate_refilled_at")?,
                    ))
                };
                let (max_in_flight, rate_limit, stored, at) = match read() {
                    Ok(x) => x,
                    Err(e) => {
                        skip(e);
                        continue;
                    }
                };
                if let Some(m) = max_in_flight {
                    let in_flight: i64 = tx.query_one(sql::IN_FLIGHT, &[&tenant, &endpoint, &now]).await?.try_get(0)?;
                    budget = budget.min(i64::from(m) - in_flight);
                }
                if let Some(rate) = rate_limit {
                    let rate = f64::from(rate);
                    let elapsed =
                        at.map_or(f64::MAX, |a| (now - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
                    // The bucket holds at most one second's worth: in any one second at most twice the
                    // rate (a full bucket and its refill), over longer spans the rate itself.
                    let tokens = (stored.unwrap_or(rate) + elapsed.max(0.0) * rate).min(rate);
                    budget = budget.min(tokens.floor() as i64);
                    bucket = Some(tokens);
                }
            }
            let claimed = if budget > 0 {
                tx.query(&sql::claim_endpoint(), &[&tenant, &now, &budget, &lease_until, worker, &endpoint]).await?
            } else {
                Vec::new()
            };
            if let Some(tokens) = bucket {
                let left = tokens - claimed.len() as f64;
                tx.execute(sql::UPDATE_BUCKET, &[&tenant, &endpoint, &left, &now]).await?;
            }
            more |= budget > 0 && claimed.len() as i64 == budget;
            out.extend(claimed);
        }
        // Callbacks count together against this worker's per-target room.
        let room =
            self.config.endpoint_concurrency.saturating_sub(local.get(crate::worker::CALLBACKS).copied().unwrap_or(0));
        let rest = (limit - out.len()).min(room) as i64;
        if rest > 0 {
            let rows = tx.query(&sql::claim_callbacks(), &[&tenant, &now, &rest, &lease_until, worker]).await?;
            more |= rows.len() as i64 == rest;
            out.extend(rows);
        }
        tx.commit().await?;
        self.metrics.claims.inc();
        self.metrics.claimed.inc_by(out.len() as u64);
        let mut claim = Claim { more, ..Claim::default() };
        claim.take(tenant, out, now);
        Ok(claim)
    }

    /// Records a batch of finished attempts in one transaction: the attempt log, each delivery's
    /// new state and next attempt time, and endpoint health with its `endpoint.*` events.
    /// Tenants and endpoints are taken in a fixed order, so that two recorders never deadlock.
    pub async fn record(&self, batch: &[Finished], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut by_tenant: BTreeMap<&str, Vec<&Finished>> = BTreeMap::new();
        for f in batch {
            by_tenant.entry(f.claimed.tenant_id.as_str()).or_default().push(f);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let mut finished: Vec<(&'static str, f64)> = Vec::new();
        for (tenant, items) in by_tenant {
            let mut states = Vec::with_capacity(items.len());
            let mut next_ats = Vec::with_capacity(items.len());
            for f in &items {
                let (c, o) = (&f.claimed, &f.outcome);
                let ended = o.started_at + chrono::Duration::from_std(o.duration).unwrap_or_default();
                let schedule = c.retry_schedule.as_deref().unwrap_or(&self.config.retry_schedule.0);
                let (state, next_at) = if o.delivered() {
                    ("delivered", now)
                } else if o.final_failure() {
                    ("failed", now)
                } else {
                    let round = c.round_attempt.max(0) as u32;
                    match retry::next_attempt_at(schedule, round, ended, o.retry_after, &mut rng) {
                        Some(at) => ("pending", at),
                        None => ("failed", now),
                    }
                };
                states.push(state);
                next_ats.push(next_at);
            }
            let ids: Vec<&str> = items.iter().map(|f| f.claimed.delivery_id.as_str()).collect();
            let attempts: Vec<i32> = items.iter().map(|f| f.claimed.attempt).collect();
            let codes: Vec<Option<i32>> = items.iter().map(|f| f.outcome.status_code.map(i32::from)).collect();
            let errs: Vec<Option<&str>> = items.iter().map(|f| f.outcome.detail.as_deref()).collect();
            let urls: Vec<&str> = items.iter().map(|f| f.claimed.url.as_str()).collect();
            let landed: HashSet<String> = tx
                .query(
                    sql::RECORD_RESULTS,
                    &[&tenant, &ids, &now, &attempts, &states, &next_ats, &codes, &errs, &self.config.worker_id, &urls],
                )
                .await?
                .iter()
                .filter_map(|r| r.try_get(0).ok())
                .collect();

            // The attempt log keeps every attempt, also one whose lease had expired.
            let a_ids: Vec<&str> = items.iter().map(|f| f.attempt_id.as_str()).collect();
            let a_evt: Vec<&str> = items.iter().map(|f| f.claimed.event_id.as_str()).collect();
            let a_start: Vec<DateTime<Utc>> = items.iter().map(|f| f.outcome.started_at).collect();
            let a_ms: Vec<i32> =
                items.iter().map(|f| f.outcome.duration.as_millis().min(i32::MAX as u128) as i32).collect();
            let a_err: Vec<Option<&str>> = items.iter().map(|f| f.outcome.error).collect();
            let a_excerpt: Vec<Option<&str>> = items.iter().map(|f| f.outcome.excerpt.as_deref()).collect();
            tx.execute(
                sql::INSERT_ATTEMPTS,
                &[&tenant, &a_ids, &ids, &a_evt, &attempts, &a_start, &a_ms, &codes, &a_err, &a_excerpt],
            )
            .await?;

            // Endpoint health, for deliveries whose result landed, one endpoint at a time in order.
            let mut transitions: BTreeMap<&str, (&'static str, &Finished)> = BTreeMap::new();
            for (i, f) in items.iter().enumerate() {
                if !landed.contains(&f.claimed.delivery_id) {
                    continue;
                }
                let lag = (f.outcome.started_at - f.claimed.created_at).num_milliseconds().max(0) as f64 / 1e3;
                if states[i] != "pending" {
                    finished.push((states[i], lag + f.outcome.duration.as_secs_f64()));
                }
                let Some(endpoint) = f.claimed.endpoint_id.as_deref() else { continue };
                if !f.outcome.reached_endpoint() {
                    continue;
                }
                let t = match states[i] {
                    "delivered" => "recovered",
                    "failed" if f.outcome.gone() => "disabled",
                    "failed" => "failing",
                    _ => continue,
                };
                // The strongest change wins: disabled over failing over recovered.
                let rank = |t: &str| match t {
                    "disabled" => 2,
                    "failing" => 1,
                    _ => 0,
                };
                let e = transitions.entry(endpoint).or_insert((t, f));
                if rank(t) > rank(e.0) {
                    *e = (t, f);
                }
            }
            for (endpoint, (transition, f)) in transitions {
                let c = &f.claimed;
                let (row, event_type, mut data) = match transition {
                    "recovered" => (
                        tx.query_opt(sql::ENDPOINT_TO_HEALTHY, &[&tenant, &endpoint, &now]).await?,
                        "endpoint.recovered",
                        json!({"endpoint_id": endpoint}),
                    ),
                    "disabled" => {
                        let reason = "the receiver answered 410 Gone";
                        (
                            tx.query_opt(sql::ENDPOINT_TO_DISABLED, &[&tenant, &endpoint, &now, &reason]).await?,
                            "endpoint.disabled",
                            json!({"endpoint_id": endpoint, "reason": reason}),
                        )
                    }
                    _ => (
                        tx.query_opt(sql::ENDPOINT_TO_FAILING, &[&tenant, &endpoint, &now]).await?,
                        "endpoint.failing",
                        json!({"endpoint_id": endpoint, "event_id": c.event_id, "delivery_id": c.delivery_id,
                               "last_error": f.outcome.detail}),
                    ),
                };
                if let Some(row) = row {
                    data["url"] = json!(row.try_get::<_, String>(0).unwrap_or_default());
                    tx.query_one(sql::PUBLISH, &[&tenant, &event_type, &data, &now]).await?;
                    tracing::info!(tenant, endpoint, event_type, "endpoint status changed");
                }
            }
        }
        tx.commit().await?;
        for (state, lag) in finished {
            self.metrics.finished(state);
            if state == "delivered" {
                self.metrics.delivery_lag_seconds.observe(lag);
            }
        }
        Ok(())
    }

    /// Gives leases back untouched, so another worker may take them at once.
    pub async fn give_back(&self, claimed: &[Claimed], now: DateTime<Utc>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        for c in claimed {
            client
                .execute(sql::GIVE_BACK, &[&c.tenant_id, &c.delivery_id, &self.config.worker_id, &now, &c.attempt])
                .await?;
        }
        Ok(())
    }
}

/// ±20 % around `base`: pollers of many workers do not line up.
pub fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::rng().random_range(0.8..=1.2))
}
