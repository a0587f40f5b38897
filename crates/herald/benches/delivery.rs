//! `make bench`: what Herald does on this machine, printed as figures (never asserted).
//!
//! 1. Throughput: events published by SQL in batches, fanned out and delivered by one
//!    `herald all` to a receiver on 127.0.0.1; deliveries per second, end to end. Compare it
//!    with `../shared/bench/pg_ceiling.sh` (PostgreSQL alone doing a delivery's row work), which
//!    runs with the same server settings.
//! 2. Latency: one event at a time over the HTTP API, from the publish's answer to the
//!    receiver's arrival; p50, p99, max.
//! 3. A waiting agent: from `POST /v1/approvals/{call_id}/respond` to the `approval_completed`
//!    webhook at the agent's callback; p50, p99, max.
//! 4. The cost of NOTIFY under heavy publishing: `herald.publish` in single-event transactions
//!    from 4 connections, with its `pg_notify` and with `SET herald.notify = off`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use herald_testkit::{eventually, PrivateCluster, Receiver};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let events = env_or("BENCH_EVENTS", 20_000);
    let latency_n = env_or("BENCH_LATENCY_EVENTS", 300);
    let notify_secs = env_or("BENCH_NOTIFY_SECS", 5) as u64;
    // The settings pg_ceiling.sh uses: fsync on, as in production.
    let profile = std::env::var_os("BENCH_PROFILE").is_some();
    let pg = PrivateCluster::start_with(&format!(
        "-c shared_buffers=512MB -c max_wal_size=4GB -c max_connections=200{}",
        if profile { " -c shared_preload_libraries=pg_stat_statements" } else { "" }
    ));
    let port = crate_free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut herald = std::process::Command::new(BIN)
        .arg("all")
        .env("HERALD_DATABASE_URL", &pg.url)
        .env("HERALD_LISTEN", &listen)
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8")
        .env("HERALD_WORKER_CONCURRENCY", env_or("BENCH_CONCURRENCY", 256).to_string())
        .env("HERALD_ENDPOINT_CONCURRENCY", env_or("BENCH_CONCURRENCY", 256).to_string())
        .env("HERALD_DATABASE_POOL_SIZE", "16")
        .env("HERALD_LOG", "warn")
        .spawn()
        .expect("start herald");
    let base = format!("http://{listen}");
    eventually("herald to be ready", Duration::from_secs(60), || async {
        reqwest::get(format!("{base}/readyz")).await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
    let out = std::process::Command::new(BIN)
        .args(["tenant", "create", "bench"])
        .env("HERALD_DATABASE_URL", &pg.url)
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rx = Receiver::start().await;
    let http = reqwest::Client::new();
    let ep = http
        .post(format!("{base}/v1/endpoints"))
        .bearer_auth(&token)
        .json(&json!({"url": rx.url("/hook")}))
        .send()
        .await
        .unwrap();
    assert_eq!(ep.status(), 201);
    let (db, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    if profile {
        db.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();")
            .await
            .unwrap();
    }

    // 1. Throughput.
    let batch = 500;
    let started = Instant::now();
    for b in 0..events.div_ceil(batch) {
        db.batch_execute(&format!(
            "BEGIN; SELECT herald.publish('bench', 'approval_completed', jsonb_build_object('call_id', 'c' || g, 'approved', true, 'comment', 'ok'), id => 'evt_{b}_' || g) FROM generate_series(1, {}) g; COMMIT;",
            batch.min(events - b * batch)
        ))
        .await
        .unwrap();
    }
    let published = started.elapsed();
    // Watch the receiver (in memory) first, so that polling the database does not load it.
    eventually("every event to arrive", Duration::from_secs(600), || async {
        (rx.count("/hook") >= events).then_some(())
    })
    .await;
    let arrived = started.elapsed();
    eventually("every delivery to be recorded", Duration::from_secs(600), || async {
        let n: i64 =
            db.query_one("SELECT count(*) FROM herald.deliveries WHERE state = 'delivered'", &[]).await.unwrap().get(0);
        (n as usize >= events).then_some(())
    })
    .await;
    let took = started.elapsed();
    if profile {
        // Where the database's time went (BENCH_PROFILE=1): the statements that took most.
        for r in db
            .query(
                "SELECT round(total_exec_time)::bigint, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) \
                 FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12",
                &[],
            )
            .await
            .unwrap()
        {
            println!("  {:>7} ms {:>7} calls  {}", r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, String>(2));
        }
    }
    let received = rx.count("/hook");
    println!("throughput: {events} events published by SQL in batches of {batch} in {published:.2?}; all received in {arrived:.2?}, recorded in {took:.2?}");
    println!(
        "herald deliveries/s (end to end, fsync on): {:.0}   requests received: {received} (duplicates: {})",
        events as f64 / took.as_secs_f64(),
        received.saturating_sub(events)
    );

    // 2. Latency, one event at a time.
    let mut sent_at = HashMap::new();
    for i in 0..latency_n {
        let id = format!("lat_{i}");
        let r = http
            .post(format!("{base}/v1/events"))
            .bearer_auth(&token)
            .json(&json!({"id": id, "type": "approval_completed", "data": {"call_id": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        sent_at.insert(id.clone(), Instant::now());
        let want = received + i + 1;
        eventually("the event to arrive", Duration::from_secs(30), || async {
            (rx.count("/hook") >= want).then_some(())
        })
        .await;
    }
    let mut lat: Vec<Duration> = rx
        .requests("/hook")
        .iter()
        .filter_map(|r| {
            let id = r.header("webhook-id")?;
            sent_at.get(id).map(|t| r.at.saturating_duration_since(*t))
        })
        .collect();
    lat.sort();
    println!(
        "latency publish answered -> webhook received ({} events, one at a time): p50 {:.1?}  p99 {:.1?}  max {:.1?}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().unwrap()
    );

    // 3. A waiting agent: from a human's answer (POST .../respond sent) to the approval_completed
    //    webhook arriving at the agent's callback. One approval at a time.
    let approvals = env_or("BENCH_APPROVALS", 200);
    let mut resume = Vec::new();
    for i in 0..approvals {
        let call_id = format!("bench_call_{i}");
        let r = http
            .post(format!("{base}/v1/approvals"))
            .bearer_auth(&token)
            .json(&json!({"call_id": call_id, "fn": "send_email", "kwargs": {"to": "a@example.com"},
                          "state": {"thread": i}, "callback_url": rx.url("/agent"),
                          "callback_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let before = rx.count("/agent");
        let t0 = Instant::now();
        let r = http
            .post(format!("{base}/v1/approvals/{call_id}/respond"))
            .bearer_auth(&token)
            .json(&json!({"approved": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let arrived = eventually("the agent's webhook", Duration::from_secs(30), || async {
            let got = rx.requests("/agent");
            (got.len() > before).then(|| got[before].at)
        })
        .await;
        resume.push(arrived.saturating_duration_since(t0));
    }
    resume.sort();
    println!(
        "respond -> agent's webhook received ({approvals} approvals, one at a time): p50 {:.1?}  p99 {:.1?}  max {:.1?}",
        percentile(&resume, 0.5),
        percentile(&resume, 0.99),
        resume.last().unwrap()
    );

    // 4. What NOTIFY costs a publisher.
    // The poller and worker keep running, as in production, so both runs pay for fan-out too.
    let mut rates = Vec::new();
    for (name, notify) in [("with NOTIFY", "on"), ("with SET herald.notify = off", "off")] {
        let deadline = Instant::now() + Duration::from_secs(notify_secs);
        let mut tasks = Vec::new();
        for c in 0..4 {
            let url = pg.url.clone();
            let notify = notify.to_string();
            tasks.push(tokio::spawn(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(&format!("SET herald.notify = {notify}")).await.unwrap();
                let stmt = client
                    .prepare("SELECT herald.publish('bench', 'run.finished', '{}'::jsonb, id => $1)")
                    .await
                    .unwrap();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    client.query_one(&stmt, &[&format!("n_{notify}_{c}_{n}")]).await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let rate = total as f64 / notify_secs as f64;
        println!("single-event publish transactions/s, 4 connections, {name}: {rate:.0}");
        rates.push(rate);
    }
    println!("NOTIFY cost per publish transaction: {:.1} %", (1.0 - rates[0] / rates[1]) * 100.0);
    let _ = herald.kill();
    let _ = herald.wait();
}

fn crate_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
