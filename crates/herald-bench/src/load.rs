//! The load generator: events over HTTP with a fixed number in flight (closed loop) or at a fixed
//! rate whatever the answers (open loop), and events by `herald.publish` in transactions.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::receiver::Receiver;
use crate::stack::Stack;
use crate::Ctx;

/// The payload of every benchmark event (the one pg_ceiling.sh writes).
fn event(id: &str) -> Value {
    json!({"id": id, "type": "approval_completed", "data": {"call_id": "c", "approved": true, "comment": "ok"}})
}

async fn publish(stack: &Stack, tenant: usize, id: &str) -> anyhow::Result<Instant> {
    let r = stack
        .http
        .post(format!("{}/v1/events", stack.api))
        .bearer_auth(&stack.tokens[tenant])
        .json(&event(id))
        .send()
        .await?;
    let answered = Instant::now();
    anyhow::ensure!(r.status() == 202, "publish {id}: {} {}", r.status(), r.text().await.unwrap_or_default());
    Ok(answered)
}

/// `n` events `<prefix>_<i>`, `in_flight` requests at a time.
pub async fn closed(stack: &Stack, prefix: &str, n: usize, in_flight: usize) -> anyhow::Result<()> {
    closed_across(stack, prefix, n, in_flight, 1).await
}

/// [`closed`], event `i` published by the tenant of `stack.tokens[i % tenants]`.
pub async fn closed_across(
    stack: &Stack,
    prefix: &str,
    n: usize,
    in_flight: usize,
    tenants: usize,
) -> anyhow::Result<()> {
    let mut answers = futures_util::stream::iter(0..n)
        .map(|i| async move { publish(stack, i % tenants, &format!("{prefix}_{i}")).await })
        .buffer_unordered(in_flight);
    while let Some(r) = answers.next().await {
        r?;
    }
    Ok(())
}

/// `n` events by `herald.publish`, `batch` per transaction, from `connections` connections.
pub async fn sql(stack: &Stack, n: usize, batch: usize, connections: usize) -> anyhow::Result<()> {
    sql_across(stack, &["bench".to_string()], n, batch, connections).await
}

/// [`sql`], transaction `b` (of one tenant, as a service publishing for one customer) by
/// `tenants[b % tenants.len()]`.
pub async fn sql_across(
    stack: &Stack,
    tenants: &[String],
    n: usize,
    batch: usize,
    connections: usize,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    let batches = n.div_ceil(batch);
    for c in 0..connections {
        let db = stack.db().await?;
        let tenants = tenants.to_vec();
        tasks.push(tokio::spawn(async move {
            for b in (c..batches).step_by(connections) {
                let size = batch.min(n - b * batch);
                let tenant = &tenants[b % tenants.len()];
                db.batch_execute(&format!(
                    "BEGIN; SELECT herald.publish('{tenant}', 'approval_completed', \
                     '{{\"call_id\":\"c\",\"approved\":true,\"comment\":\"ok\"}}'::jsonb, id => 'sql_{b}_' || g) \
                     FROM generate_series(1, {size}) g; COMMIT;"
                ))
                .await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Waits until `n` deliveries are recorded as delivered (the cost of recording counts too).
pub async fn recorded(stack: &Stack, n: usize) -> anyhow::Result<()> {
    let db = stack.db().await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 =
            db.query_one("SELECT count(*) FROM herald.deliveries WHERE state = 'delivered'", &[]).await?.get(0);
        if done as usize >= n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {done} of {n} deliveries recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// p50, p95, p99 and max of `ms`, with the samples for the histogram.
pub fn percentiles(ms: &mut [f64]) -> Value {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms.get(((ms.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    json!({"n": ms.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
           "max_ms": ms.last().copied().unwrap_or(f64::NAN), "samples_ms": ms})
}

/// Open loop: `rate` events a second for 30 s (a request goes out on time whether or not the
/// ones before were answered), after 5 s of warm-up at the same rate. Latency: from the
/// publish's answer to the first arrival of its webhook at `/hook`.
pub async fn open_loop(ctx: &Ctx, stack: &Stack, rx: &Receiver, rate: usize) -> anyhow::Result<Value> {
    let warm = ctx.n(rate * 5);
    let n = ctx.n(rate * 30);
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut handles = Vec::with_capacity(warm + n);
    let start = tokio::time::Instant::now();
    for i in 0..warm + n {
        tokio::time::sleep_until(start + period * i as u32).await;
        let (http, api, token) = (stack.http.clone(), stack.api.clone(), stack.token.clone());
        handles.push(tokio::spawn(async move {
            let id = format!("lat_{i}");
            let r = http.post(format!("{api}/v1/events")).bearer_auth(&token).json(&event(&id)).send().await;
            let answered = Instant::now();
            match r {
                Ok(r) if r.status() == 202 => Some((id, answered)),
                _ => None,
            }
        }));
    }
    let mut sent = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if let Some(x) = h.await? {
            if i >= warm {
                sent.push(x);
            }
        }
    }
    anyhow::ensure!(sent.len() == n, "{} of {n} publishes were refused or failed", n - sent.len());
    anyhow::ensure!(rx.wait(&["/hook".to_string()], warm + n, Duration::from_secs(120)).await, "not all delivered");
    let timed: Vec<(usize, f64)> = sent
        .iter()
        .enumerate()
        .filter_map(|(k, (id, answered))| {
            rx.first("/hook", id).map(|at| (k / rate, at.saturating_duration_since(*answered).as_secs_f64() * 1e3))
        })
        .collect();
    // When the slow ones came: the worst latency of each second of the run.
    let mut worst = vec![0.0f64; n.div_ceil(rate)];
    for &(sec, ms) in &timed {
        worst[sec] = worst[sec].max(ms);
    }
    let mut ms: Vec<f64> = timed.iter().map(|&(_, ms)| ms).collect();
    let mut out = percentiles(&mut ms);
    out["worst_by_second_ms"] = json!(worst);
    Ok(out)
}
