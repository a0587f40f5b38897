//! Load held: a fixed publish rate for a while against `producer`, `poller` and two `worker`
//! processes, sampling each process's RSS, the backlog and the database connections. And one
//! tenant's flood beside another tenant's trickle. Figures are printed; the assertions are
//! loose bounds that only a leak, a growing backlog or a starved tenant would break.
//! `HERALD_SOAK_SECS` (20 here, 300 under `make soak`) sets the soak's length.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use herald_testkit::{eventually, Behaviour, Receiver, TestDb};
use serde_json::json;
use support::{fast_with, Api, Herald};

const WAIT: Duration = Duration::from_secs(300);

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss: [u64; 4],
    backlog: i64,
    connections: i64,
}

async fn sample(db: &TestDb, procs: &[&Herald; 4]) -> Sample {
    let c = db.client().await;
    let backlog: i64 =
        c.query_one("SELECT count(*) FROM herald.deliveries WHERE state = 'pending'", &[]).await.unwrap().get(0);
    let connections: i64 = c
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()", &[])
        .await
        .unwrap()
        .get(0);
    Sample { rss: procs.map(|p| rss_kib(p.pid())), backlog, connections }
}

#[tokio::test]
async fn a_steady_rate_holds_flat() {
    let secs: u64 = std::env::var("HERALD_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let rate = 100u64;
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let pool_size = 10;
    let pool_setting = pool_size.to_string();
    let env = fast_with(&[("HERALD_DATABASE_POOL_SIZE", &pool_setting)]);
    let producer = Herald::start(&db, "producer", &env).await;
    let poller = Herald::start(&db, "poller", &env).await;
    let w1 = Herald::start(&db, "worker", &env).await;
    let w2 = Herald::start(&db, "worker", &env).await;
    let api = Api::new(&producer.base, &token);
    let rx = Receiver::start().await;
    rx.set("/b", Behaviour::Slow(Duration::from_millis(20)));
    api.endpoint(json!({"url": rx.url("/a")})).await;
    api.endpoint(json!({"url": rx.url("/b")})).await;
    let procs = [&producer, &poller, &w1, &w2];

    let start = tokio::time::Instant::now();
    let total = rate * secs;
    let mut samples = Vec::new();
    let mut next_sample = start;
    let mut sent = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if at >= next_sample {
            samples.push(sample(&db, &procs).await);
            next_sample += Duration::from_secs(1);
        }
        tokio::time::sleep_until(at).await;
        let api = api.clone();
        sent.spawn(
            async move { api.publish(json!({"id": format!("soak_{i:06}"), "type": "t", "data": {"i": i}})).await },
        );
    }
    while let Some(r) = sent.join_next().await {
        r.unwrap();
    }
    samples.push(sample(&db, &procs).await);
    eventually("every delivery made", WAIT, || async {
        (rx.requests("/a").len() as u64 >= total && rx.requests("/b").len() as u64 >= total).then_some(())
    })
    .await;

    // After a quarter of the run (pools filled, caches warm) against the end.
    let warm = samples[samples.len() / 4];
    let end = *samples.last().unwrap();
    let max_backlog = samples.iter().map(|s| s.backlog).max().unwrap();
    let max_connections = samples.iter().map(|s| s.connections).max().unwrap();
    eprintln!(
        "soak: {total} events at {rate}/s for {secs} s, 2 endpoints; RSS KiB producer/poller/worker/worker after warm-up {:?}, at the end {:?}; backlog at most {max_backlog}, at the end {}; connections after warm-up {}, at most {max_connections}, at the end {}",
        warm.rss, end.rss, end.backlog, warm.connections, end.connections
    );
    for (k, name) in ["producer", "poller", "worker 1", "worker 2"].iter().enumerate() {
        assert!(
            end.rss[k] <= warm.rss[k] * 2 + 16 * 1024,
            "{name}'s RSS grew from {} to {} KiB",
            warm.rss[k],
            end.rss[k]
        );
    }
    assert!(end.backlog <= (rate as i64) * 5, "the backlog grew to {}: delivery fell behind", end.backlog);
    // Pools grow with load (a slow machine holds connections longer) but are capped: more
    // than every process's pool, its listener and the test's own pool is a connection opened
    // outside a pool and never closed.
    let cap = procs.len() as i64 * (pool_size + 1) + herald_testkit::POOL_SIZE as i64;
    assert!(
        max_connections <= cap,
        "connections grew from {} to {max_connections}, past what the pools allow ({cap})",
        warm.connections
    );
}

/// Latency in ms from each of `ids`' publish to its first arrival at `path`.
fn latencies(rx: &Receiver, path: &str, sent: &HashMap<String, Instant>) -> Vec<f64> {
    let mut out: Vec<f64> = rx
        .requests(path)
        .iter()
        .filter_map(|r| {
            let at = sent.get(r.header("webhook-id")?)?;
            Some(r.at.saturating_duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

fn p99(v: &[f64]) -> f64 {
    v.get(((v.len() as f64 - 1.0) * 0.99).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Tenant `flood` queues thousands of deliveries to a slow endpoint; tenant `quiet` publishes one
/// event at a time. Claims share a worker's free slots between tenants, so the quiet tenant's
/// events are delivered while the flood's backlog is still there, not after it.
#[tokio::test]
async fn a_flood_from_one_tenant_does_not_starve_another() {
    let db = TestDb::new().await;
    let flood_token = db.tenant("flood").await;
    let quiet_token = db.tenant("quiet").await;
    let herald = Herald::start(&db, "all", &fast_with(&[])).await;
    let flood = Api::new(&herald.base, &flood_token);
    let quiet = Api::new(&herald.base, &quiet_token);
    let rx = Receiver::start().await;
    // 200 ms an answer: at 64 attempts at once the flood takes about 10 s to drain, the quiet
    // tenant's run about 2.
    rx.set("/flood", Behaviour::Slow(Duration::from_millis(200)));
    flood.endpoint(json!({"url": rx.url("/flood")})).await;
    quiet.endpoint(json!({"url": rx.url("/quiet")})).await;

    let run = |n: usize, prefix: &'static str| {
        let (quiet, rx) = (quiet.clone(), &rx);
        async move {
            let mut sent = HashMap::new();
            for i in 0..n {
                let id = format!("{prefix}_{i:03}");
                sent.insert(id.clone(), Instant::now());
                quiet.publish(json!({"id": id, "type": "t", "data": i})).await;
                rx.wait_for("/quiet", sent.len(), WAIT).await;
            }
            latencies(rx, "/quiet", &sent)
        }
    };
    let alone = run(50, "alone").await;

    // The flood: its backlog outlasts the quiet tenant's run by far.
    let backlog: i32 = 3_000;
    let published = db
        .client()
        .await
        .query_one(
            "SELECT count(herald.publish('flood', 't', jsonb_build_object('i', g), id => 'flood_' || g)) FROM generate_series(1, $1::int) g",
            &[&backlog],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(published, backlog as i64);
    rx.wait_for("/flood", 100, WAIT).await;
    let beside = run(50, "beside").await;
    let flood_done = rx.requests("/flood").len();
    let beside_p99 = p99(&beside);
    eprintln!(
        "fairness: the quiet tenant's 50 events, one at a time: p99 {:.1} ms alone, {beside_p99:.1} ms beside a {backlog}-delivery flood ({flood_done} of its deliveries made meanwhile)",
        p99(&alone)
    );
    assert!((flood_done as i32) < backlog, "the flood drained first: the quiet tenant waited behind it");
}
