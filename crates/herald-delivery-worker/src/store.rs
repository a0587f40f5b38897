//! The worker's database work: claim, record, give back. Each call is one short transaction;
//! none is open while an HTTP request is.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use herald_core::id;
use herald_core::signing::Secret;
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
}

fn claimed_from(tenant: &str, row: &tokio_postgres::Row) -> Claimed {
    let attempt: i32 = row.get("attempt_count");
    let offset: i32 = row.get("schedule_offset");
    let schedule: Option<Vec<i64>> = row.get("retry_schedule_ms");
    Claimed {
        tenant_id: tenant.to_string(),
        delivery_id: row.get("delivery_id"),
        event_id: row.get("event_id"),
        endpoint_id: row.get("endpoint_id"),
        url: row.get("url"),
        attempt,
        round_attempt: attempt - offset,
        event_type: row.get("event_type"),
        created_at: row.get("created_at"),
        data: row.get("data"),
        traceparent: row.get("traceparent"),
        signature_scheme: row.get("signature_scheme"),
        secret: row.get::<_, Option<String>>("secret").map(Secret::from_stored),
        previous_secret: row.get::<_, Option<String>>("previous_secret").map(Secret::from_stored),
        retry_schedule: schedule.map(|s| s.into_iter().map(|ms| Duration::from_millis(ms.max(0) as u64)).collect()),
    }
}

impl Store {
    /// Tenants with due deliveries, in a rotated order so that each gets its turn first.
    pub async fn due_tenants(&self, now: DateTime<Utc>, rotate: usize) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let mut tenants: Vec<String> =
            client.query(sql::DUE_TENANTS, &[&now]).await?.iter().map(|r| r.get(0)).collect();
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
    pub async fn claim(
        &self,
        tenant: &str,
        limit: usize,
        now: DateTime<Utc>,
        local: &HashMap<String, usize>,
        rotate: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_until = now + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(60));
        let worker = &self.config.worker_id;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut out = Vec::new();
        let mut endpoints = tx.query(sql::DUE_ENDPOINTS, &[&tenant, &now]).await?;
        if !endpoints.is_empty() {
            let k = rotate % endpoints.len();
            endpoints.rotate_left(k);
        }
        for row in endpoints {
            if out.len() >= limit {
                break;
            }
            let endpoint: String = row.get("endpoint_id");
            let in_flight_here = local.get(&endpoint).copied().unwrap_or(0);
            let mut budget =
                (limit - out.len()).min(self.config.endpoint_concurrency.saturating_sub(in_flight_here)) as i64;
            if budget <= 0 {
                continue;
            }
            let limited = row.get::<_, Option<i32>>("max_in_flight").is_some()
                || row.get::<_, Option<i32>>("rate_limit_per_s").is_some();
            let mut bucket = None;
            if limited {
                // Under the endpoint row's lock: what every worker together may still send.
                let Some(l) = tx.query_opt(sql::LOCK_LIMITED, &[&tenant, &endpoint]).await? else { continue };
                if let Some(m) = l.get::<_, Option<i32>>("max_in_flight") {
                    let in_flight: i64 = tx.query_one(sql::IN_FLIGHT, &[&tenant, &endpoint, &now]).await?.get(0);
                    budget = budget.min(i64::from(m) - in_flight);
                }
                if let Some(rate) = l.get::<_, Option<i32>>("rate_limit_per_s") {
                    let rate = f64::from(rate);
                    let stored: Option<f64> = l.get("rate_tokens");
                    let at: Option<DateTime<Utc>> = l.get("rate_refilled_at");
                    let elapsed =
                        at.map_or(f64::MAX, |a| (now - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
                    // The bucket holds at most one second's worth: a burst never exceeds the rate.
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
            out.extend(claimed.iter().map(|r| claimed_from(tenant, r)));
        }
        let rest = (limit - out.len()) as i64;
        if rest > 0 {
            let rows = tx.query(&sql::claim_callbacks(), &[&tenant, &now, &rest, &lease_until, worker]).await?;
            out.extend(rows.iter().map(|r| claimed_from(tenant, r)));
        }
        tx.commit().await?;
        self.metrics.claims.inc();
        self.metrics.claimed.inc_by(out.len() as u64);
        Ok(out)
    }

    /// Records a batch of finished attempts in one transaction: the attempt log, each delivery's
    /// new state and next attempt time, and endpoint health with its `endpoint.*` events.
    pub async fn record(&self, batch: &[Finished], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut by_tenant: HashMap<&str, Vec<&Finished>> = HashMap::new();
        for f in batch {
            by_tenant.entry(f.claimed.tenant_id.as_str()).or_default().push(f);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut rng = rand::rngs::StdRng::from_os_rng();
        for (tenant, items) in by_tenant {
            let mut ids = Vec::new();
            let mut attempts = Vec::new();
            let mut states = Vec::new();
            let mut next_ats = Vec::new();
            let mut codes = Vec::new();
            let mut errs = Vec::new();
            let mut urls = Vec::new();
            // Endpoint transitions wanted, applied only for deliveries whose update landed.
            let mut transitions: HashMap<String, (&'static str, &Finished)> = HashMap::new();
            for f in &items {
                let (c, o) = (&f.claimed, &f.outcome);
                let ended = o.started_at + chrono::Duration::from_std(o.duration).unwrap_or_default();
                let schedule = c.retry_schedule.as_deref().unwrap_or(&self.config.retry_schedule.0);
                let (state, next_at) = if o.delivered() {
                    ("delivered", now)
                } else if o.gone() {
                    ("failed", now)
                } else {
                    match retry::next_attempt_at(
                        schedule,
                        c.round_attempt.max(0) as u32,
                        ended,
                        o.retry_after,
                        &mut rng,
                    ) {
                        Some(at) => ("pending", at),
                        None => ("failed", now),
                    }
                };
                ids.push(c.delivery_id.clone());
                attempts.push(c.attempt);
                states.push(state);
                next_ats.push(next_at);
                codes.push(o.status_code.map(i32::from));
                errs.push(o.detail.clone());
                urls.push(c.url.clone());
                if c.endpoint_id.is_some() {
                    let t = match state {
                        "delivered" => Some("recovered"),
                        "failed" if o.gone() => Some("disabled"),
                        "failed" => Some("failing"),
                        _ => None,
                    };
                    if let Some(t) = t {
                        transitions.insert(c.delivery_id.clone(), (t, f));
                    }
                }
            }
            let landed: Vec<String> = tx
                .query(
                    sql::RECORD_RESULTS,
                    &[&tenant, &ids, &now, &attempts, &states, &next_ats, &codes, &errs, &self.config.worker_id, &urls],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for (i, f) in items.iter().enumerate() {
                if !landed.contains(&f.claimed.delivery_id) {
                    continue;
                }
                match states[i] {
                    "delivered" => {
                        self.metrics.finished("delivered");
                        let lag = (f.outcome.started_at - f.claimed.created_at).num_milliseconds().max(0) as f64 / 1e3;
                        self.metrics.delivery_lag_seconds.observe(lag + f.outcome.duration.as_secs_f64());
                    }
                    "failed" => self.metrics.finished("failed"),
                    _ => {}
                }
            }

            // The attempt log keeps every attempt, also one whose lease had expired.
            let mut a_ids = Vec::new();
            let mut a_dlv = Vec::new();
            let mut a_evt = Vec::new();
            let mut a_no = Vec::new();
            let mut a_start = Vec::new();
            let mut a_ms = Vec::new();
            let mut a_code = Vec::new();
            let mut a_err = Vec::new();
            let mut a_excerpt = Vec::new();
            for f in &items {
                a_ids.push(id::new_id(id::ATTEMPT, f.outcome.started_at));
                a_dlv.push(f.claimed.delivery_id.clone());
                a_evt.push(f.claimed.event_id.clone());
                a_no.push(f.claimed.attempt);
                a_start.push(f.outcome.started_at);
                a_ms.push(f.outcome.duration.as_millis().min(i32::MAX as u128) as i32);
                a_code.push(f.outcome.status_code.map(i32::from));
                a_err.push(f.outcome.error.map(str::to_string));
                a_excerpt.push(f.outcome.excerpt.clone());
            }
            tx.execute(
                sql::INSERT_ATTEMPTS,
                &[&tenant, &a_ids, &a_dlv, &a_evt, &a_no, &a_start, &a_ms, &a_code, &a_err, &a_excerpt],
            )
            .await?;

            for delivery in &landed {
                let Some((transition, f)) = transitions.get(delivery) else { continue };
                let c = &f.claimed;
                let endpoint = c.endpoint_id.as_deref().unwrap_or_default();
                let (statement, event_type, data) = match *transition {
                    "recovered" => (sql::ENDPOINT_TO_HEALTHY, "endpoint.recovered", json!({"endpoint_id": endpoint})),
                    "disabled" => (
                        sql::ENDPOINT_TO_DISABLED,
                        "endpoint.disabled",
                        json!({"endpoint_id": endpoint, "reason": "the receiver answered 410 Gone"}),
                    ),
                    _ => (
                        sql::ENDPOINT_TO_FAILING,
                        "endpoint.failing",
                        json!({"endpoint_id": endpoint, "event_id": c.event_id, "delivery_id": c.delivery_id,
                               "last_error": f.outcome.detail}),
                    ),
                };
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = if *transition == "disabled" {
                    vec![&tenant, &endpoint, &now, &"the receiver answered 410 Gone"]
                } else {
                    vec![&tenant, &endpoint, &now]
                };
                if let Some(row) = tx.query_opt(statement, &params).await? {
                    let mut data = data;
                    data["url"] = json!(row.get::<_, String>(0));
                    tx.query_one(sql::PUBLISH, &[&tenant, &event_type, &data, &now]).await?;
                    tracing::info!(tenant, endpoint, event_type, "endpoint status changed");
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives leases back untouched, so another worker may take them at once.
    pub async fn give_back(&self, claimed: &[Claimed], now: DateTime<Utc>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        for c in claimed {
            client.execute(sql::GIVE_BACK, &[&c.tenant_id, &c.delivery_id, &self.config.worker_id, &now]).await?;
        }
        Ok(())
    }
}

/// ±20 % around `base`: pollers of many workers do not line up.
pub fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::rng().random_range(0.8..=1.2))
}
