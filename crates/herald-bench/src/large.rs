//! `large-backlog` (`make bench-large`): what one claim of 100 costs with 10,000 and with
//! 1,000,000 due deliveries, through the worker's own `Store` (claim, then record as delivered,
//! fifty times over, so that the claim also meets what recording leaves behind).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use herald_core::metrics::Metrics;
use herald_delivery_worker::{AttemptOutcome, Store, WorkerConfig};
use serde_json::json;

use crate::Ctx;

pub async fn run(ctx: &Ctx) -> anyhow::Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for (key, n) in [("claim_ms_10k", 10_000usize), ("claim_ms_1m", 1_000_000)] {
        eprintln!("bench: large-backlog, {n} due");
        out.insert(key.into(), json!(claim_ms(ctx, n).await?));
    }
    let ratio = out["claim_ms_1m"].as_f64().unwrap_or(0.0) / out["claim_ms_10k"].as_f64().unwrap_or(1.0);
    out.insert("ratio".into(), json!(ratio));
    Ok(serde_json::Value::Object(out))
}

/// The median time of a claim of 100 with `n` due deliveries of one endpoint.
async fn claim_ms(ctx: &Ctx, n: usize) -> anyhow::Result<f64> {
    let name = format!("b_large_{n}");
    ctx.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    ctx.admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let url = ctx.pg.url.rsplit_once('/').map(|(b, _)| format!("{b}/{name}")).unwrap();
    herald_core::db::migrate(&url, &herald_core::clock::system(), false).await?;
    let pool = herald_core::db::pool(&url, 4)?;
    let db = pool.get().await?;
    db.batch_execute(&format!(
        "INSERT INTO herald.tenants VALUES ('bench', now());
         INSERT INTO herald.endpoints (tenant_id, endpoint_id, url, secret, created_at, updated_at)
              VALUES ('bench', 'ep_1', 'http://127.0.0.1:9/x', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now());
         INSERT INTO herald.events (tenant_id, event_id, seq, event_type, data, created_at)
              SELECT 'bench', 'e' || g, g, 'approval_completed', '{{\"call_id\":\"c\"}}', now()
                FROM generate_series(1, {n}) g;
         INSERT INTO herald.deliveries (tenant_id, delivery_id, event_id, target, endpoint_id, url, state,
                                        next_attempt_at, created_at, updated_at)
              SELECT 'bench', 'dlv_' || lpad(g::text, 9, '0'), 'e' || g, 'ep_1', 'ep_1', 'http://127.0.0.1:9/x',
                     'pending', now() - interval '1 hour' + g * interval '1 microsecond', now(), now()
                FROM generate_series(1, {n}) g;"
    ))
    .await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    let store = Store::new(pool.clone(), WorkerConfig::new("bench".into()), Metrics::new());
    let clock = herald_core::clock::system();
    let mut took = Vec::new();
    for _ in 0..50 {
        let t0 = Instant::now();
        let claim = store.claim(&"bench".parse()?, 100, clock.now(), &HashMap::new(), 0).await?;
        took.push(t0.elapsed().as_secs_f64() * 1e3);
        let done: Vec<_> = claim
            .ready
            .into_iter()
            .map(|c| {
                let outcome = AttemptOutcome {
                    started_at: clock.now(),
                    duration: Duration::from_millis(1),
                    status_code: Some(200),
                    error: None,
                    detail: None,
                    excerpt: Some(String::new()),
                    retry_after: None,
                };
                herald_delivery_worker::store_finished(c, outcome)
            })
            .collect();
        store.record(&done, clock.now()).await?;
    }
    drop(db);
    ctx.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    took.sort_by(f64::total_cmp);
    Ok(took[took.len() / 2])
}
