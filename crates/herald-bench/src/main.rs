//! `make bench`: Herald as released (`target/release/herald`, default settings) under the load
//! shapes users bring, on a throwaway PostgreSQL with fsync and synchronous_commit on (the server
//! settings of `shared/bench/pg_ceiling.sh`), beside PostgreSQL's own ceiling for the same row
//! work. A minimal receiver on 127.0.0.1 answers 200 at once; the load comes from this process,
//! not Herald's. Every phase gets a fresh database and fresh Herald processes, as `herald all`
//! and split (one producer, one poller, two workers). Prints one table, writes
//! `target/bench/results.json`; `scripts/bench-plot.py` draws the PNGs from it.
//!
//! Figures, never assertions: targets are printed beside them.
//!
//! Settings (environment): `BENCH_PHASES` (comma-separated; default every phase but
//! `large-backlog`, which `make bench-large` runs, and `tenants`, which `make bench-citus` runs:
//! see tenants.rs), `BENCH_TOPOLOGIES` (`all,split`),
//! `HERALD_BIN` (`target/release/herald`), `SHARED` (where `bench/pg_ceiling.sh` is),
//! `BENCH_SCALE` (a factor on event counts and durations, for a quick look; 1 is the issue's).

mod large;
mod load;
mod receiver;
mod stack;
mod tenants;

use std::time::{Duration, Instant};

use anyhow::Context;
use herald_testkit::PrivateCluster;
use serde_json::{json, Map, Value};

use receiver::Receiver;
use stack::{Meter, Snapshot, Stack, Topology};

pub struct Ctx {
    pub bin: String,
    pub pg: PrivateCluster,
    pub admin: tokio_postgres::Client,
    pub meter: Meter,
    pub scale: f64,
}

impl Ctx {
    pub fn n(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }

    async fn snapshot(&self, stack: &Stack) -> anyhow::Result<Snapshot> {
        self.meter.snapshot(stack, &self.admin).await
    }

    /// The database's WAL position now, for [`Ctx::wal_stats`].
    async fn lsn(&self) -> anyhow::Result<String> {
        Ok(self.admin.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get(0))
    }

    /// With `BENCH_WAL_STATS=1`, prints what the WAL written since `from` is made of
    /// (`pg_waldump --stats=record`): which record types, full-page images, how many bytes.
    async fn wal_stats(&self, from: &str, phase: &str) -> anyhow::Result<()> {
        if std::env::var_os("BENCH_WAL_STATS").is_none() {
            return Ok(());
        }
        let to = self.lsn().await?;
        self.admin.batch_execute("SELECT pg_switch_wal()").await?;
        let wal = self.pg.data_dir().join("pg_wal");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(concat!(
                ". '",
                env!("CARGO_MANIFEST_DIR"),
                "/../../scripts/pg.sh' && pg_find_bin && \"$PG_BIN/pg_waldump\" --stats=record -p \"$1\" -s \"$2\" -e \"$3\""
            ))
            .arg("bash")
            .arg(&wal)
            .arg(from)
            .arg(&to)
            .output()?;
        eprintln!(
            "WAL of {phase}, {from} to {to}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Starts a measured window: statement counts from zero.
    async fn window(&self, stack: &Stack) -> anyhow::Result<Snapshot> {
        self.admin.batch_execute("SELECT pg_stat_statements_reset()").await?;
        self.snapshot(stack).await
    }

    /// Where the database's time went in the window: the statements that took most.
    async fn top_statements(&self, database: &str) -> anyhow::Result<Value> {
        let rows = self
            .admin
            .query(
                "SELECT round(s.total_exec_time::numeric, 1)::float8, s.calls, s.rows, \
                        round((s.total_exec_time / greatest(s.calls, 1))::numeric, 3)::float8, \
                        left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) \
                   FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
                  WHERE d.datname = $1 ORDER BY s.total_exec_time DESC LIMIT 10",
                &[&database],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({"total_ms": r.get::<_, f64>(0), "calls": r.get::<_, i64>(1), "rows": r.get::<_, i64>(2),
                       "ms_per_call": r.get::<_, f64>(3), "query": r.get::<_, String>(4)})
            })
            .collect())
    }
}

/// Rows live and dead in Herald's busiest tables once a phase is over (every delivery made,
/// sent and recorded): whether autovacuum keeps up with the churn of claims and results.
async fn tables(stack: &Stack) -> anyhow::Result<Value> {
    let db = stack.db().await?;
    // The statistics of the last second's writes reach the views when each backend flushes them.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    db.batch_execute("SELECT pg_stat_clear_snapshot()").await?;
    let rows = db
        .query(
            "SELECT relname::text, n_live_tup, n_dead_tup, coalesce(autovacuum_count, 0), \
                    pg_total_relation_size(relid) \
               FROM pg_stat_user_tables \
              WHERE schemaname = 'herald' AND relname IN ('deliveries', 'events', 'pending_events') \
              ORDER BY relname",
            &[],
        )
        .await?;
    let pending: i64 =
        db.query_one("SELECT count(*) FROM herald.deliveries WHERE state = 'pending'", &[]).await?.get(0);
    let mut out = Map::new();
    for r in rows {
        out.insert(
            r.get::<_, String>(0),
            json!({"live": r.get::<_, i64>(1), "dead": r.get::<_, i64>(2), "autovacuums": r.get::<_, i64>(3),
                   "mib": r.get::<_, i64>(4) as f64 / 1048576.0}),
        );
    }
    out.insert("pending_deliveries".into(), json!(pending));
    Ok(Value::Object(out))
}

const PHASES: &[&str] = &["http-1", "http-10", "sql-backlog", "latency", "noisy-neighbour", "agent", "ceiling"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let phases: Vec<String> = std::env::var("BENCH_PHASES")
        .map(|v| v.split(',').map(str::trim).map(String::from).collect())
        .unwrap_or_else(|_| PHASES.iter().map(|s| s.to_string()).collect());
    let topologies: Vec<Topology> = std::env::var("BENCH_TOPOLOGIES")
        .unwrap_or_else(|_| "all,split".into())
        .split(',')
        .filter_map(|t| match t.trim() {
            "all" => Some(Topology::All),
            "split" => Some(Topology::Split),
            _ => None,
        })
        .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let bin = std::env::var("HERALD_BIN").unwrap_or_else(|_| format!("{root}/target/release/herald"));
    anyhow::ensure!(
        std::path::Path::new(&bin).exists(),
        "{bin} not found: build it with `cargo build --release -p herald`"
    );
    let scale: f64 = std::env::var("BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let pg = PrivateCluster::start_with(
        "-c shared_buffers=512MB -c max_wal_size=4GB -c max_connections=300 \
         -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
    );
    let (admin, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await?;
    let meter = Meter::new(pg.postmaster_pid().context("the benchmark PostgreSQL's postmaster pid")?);
    let ctx = Ctx { bin, pg, admin, meter, scale };
    let started = Instant::now();

    let mut results = Map::new();
    for phase in &phases {
        let mut per_topology = Map::new();
        if phase == "ceiling" {
            per_topology.insert("-".into(), ceiling(root).await.unwrap_or_else(|e| json!({"error": e.to_string()})));
        } else {
            for &t in &topologies {
                eprintln!("bench: {phase} ({})", t.name());
                let r = match phase.as_str() {
                    "http-1" => http_1(&ctx, t).await,
                    "http-10" => http_10(&ctx, t).await,
                    "sql-backlog" => sql_backlog(&ctx, t).await,
                    "latency" => latency_phase(&ctx, t).await,
                    "noisy-neighbour" => noisy(&ctx, t).await,
                    "agent" => agent(&ctx, t).await,
                    "large-backlog" => large::run(&ctx).await,
                    "tenants" => tenants::run(&ctx).await,
                    other => Err(anyhow::anyhow!("no phase {other:?}; phases: {PHASES:?}, large-backlog and tenants")),
                };
                per_topology.insert(t.name().into(), r.unwrap_or_else(|e| json!({"error": format!("{e:#}")})));
                if phase == "large-backlog" || phase == "tenants" {
                    break; // a property of the claim; tenants runs the split topology itself
                }
            }
        }
        results.insert(phase.clone(), Value::Object(per_topology));
    }
    results.insert("seconds".into(), json!(started.elapsed().as_secs()));
    let out = format!("{root}/target/bench");
    std::fs::create_dir_all(&out)?;
    // `make bench-large` writes results-large.json, so that it never replaces make bench's.
    let file = std::env::var("BENCH_RESULTS").unwrap_or_else(|_| "results.json".into());
    std::fs::write(format!("{out}/{file}"), serde_json::to_string_pretty(&results)?)?;
    print_table(&results, &topologies);
    if let Some(t) = results.get("tenants").and_then(|t| t.get("all").or_else(|| t.get("split"))) {
        tenants::print(t);
    }
    println!("(written to target/bench/{file} in {} s)", started.elapsed().as_secs());
    Ok(())
}

fn secs(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64().max(1e-9)
}

/// `http-1`: 1,000 warm-up then 10,000 events over HTTP to one endpoint, 64 requests in flight.
async fn http_1(ctx: &Ctx, t: Topology) -> anyhow::Result<Value> {
    let stack = Stack::start(&ctx.bin, &ctx.pg.url, &format!("b_http1_{}", t.name()), t).await?;
    let rx = Receiver::start().await;
    stack.endpoint(&rx, "/hook").await?;
    let paths = ["/hook".to_string()];
    let (warm, n) = (ctx.n(1_000), ctx.n(10_000));
    load::closed(&stack, "warm", warm, 64).await?;
    anyhow::ensure!(rx.wait(&paths, warm, Duration::from_secs(300)).await, "warm-up not delivered");
    load::recorded(&stack, warm).await?;
    let before = ctx.window(&stack).await?;
    let lsn = ctx.lsn().await?;
    let t0 = Instant::now();
    load::closed(&stack, "m", n, 64).await?;
    let accepted = Instant::now();
    anyhow::ensure!(rx.wait(&paths, warm + n, Duration::from_secs(600)).await, "not every event was delivered");
    let last = *rx.arrivals("/hook").last().unwrap();
    load::recorded(&stack, warm + n).await?;
    let cost = (ctx.snapshot(&stack).await? - before).per(n);
    ctx.wal_stats(&lsn, "http-1").await?;
    Ok(json!({
        "top_statements": ctx.top_statements(&format!("b_http1_{}", t.name())).await?,
        "accepted_per_s": n as f64 / secs(t0, accepted),
        "deliveries_per_s": n as f64 / secs(t0, last),
        "last_delivery_after_last_202_ms": last.saturating_duration_since(accepted).as_secs_f64() * 1e3,
        "duplicates": rx.count("/hook") - rx.distinct("/hook"),
        "cost": cost,
        "peak_rss_mib": rss(&stack),
        "tables": tables(&stack).await?,
    }))
}

fn rss(stack: &Stack) -> Value {
    stack.peak_rss_mib().into_iter().map(|(role, mib)| json!({"process": role, "mib": mib})).collect()
}

/// `http-10`: 3,000 events to 10 endpoints (30,000 deliveries), 64 requests in flight.
async fn http_10(ctx: &Ctx, t: Topology) -> anyhow::Result<Value> {
    let stack = Stack::start(&ctx.bin, &ctx.pg.url, &format!("b_http10_{}", t.name()), t).await?;
    let rx = Receiver::start().await;
    let paths: Vec<String> = (0..10).map(|i| format!("/ep{i}")).collect();
    for p in &paths {
        stack.endpoint(&rx, p).await?;
    }
    let (warm, n) = (ctx.n(300), ctx.n(3_000));
    load::closed(&stack, "warm", warm, 64).await?;
    anyhow::ensure!(rx.wait(&paths, warm, Duration::from_secs(300)).await, "warm-up not delivered");
    let t0 = Instant::now();
    load::closed(&stack, "m", n, 64).await?;
    let accepted = Instant::now();
    anyhow::ensure!(rx.wait(&paths, warm + n, Duration::from_secs(600)).await, "not every event was delivered");
    let last = paths.iter().filter_map(|p| rx.arrivals(p).last().copied()).max().unwrap();
    Ok(json!({
        "accepted_per_s": n as f64 / secs(t0, accepted),
        "deliveries_per_s": (n * 10) as f64 / secs(t0, last),
        "peak_rss_mib": rss(&stack),
    }))
}

/// `sql-backlog`: 50,000 events by `herald.publish`, 500 per transaction, from 2 connections.
async fn sql_backlog(ctx: &Ctx, t: Topology) -> anyhow::Result<Value> {
    let stack = Stack::start(&ctx.bin, &ctx.pg.url, &format!("b_sql_{}", t.name()), t).await?;
    let rx = Receiver::start().await;
    stack.endpoint(&rx, "/hook").await?;
    let n = ctx.n(50_000).max(1_000);
    let before = ctx.window(&stack).await?;
    let lsn = ctx.lsn().await?;
    let t0 = Instant::now();
    load::sql(&stack, n, 500, 2).await?;
    let published = Instant::now();
    anyhow::ensure!(
        rx.wait(&["/hook".to_string()], n, Duration::from_secs(900)).await,
        "not every event was delivered (got {})",
        rx.distinct("/hook")
    );
    load::recorded(&stack, n).await?;
    let cost = (ctx.snapshot(&stack).await? - before).per(n);
    ctx.wal_stats(&lsn, "sql-backlog").await?;
    let arrivals = rx.arrivals("/hook");
    let tenth = n / 5;
    let first = tenth as f64 / secs(t0, arrivals[tenth - 1]);
    let last = tenth as f64 / secs(arrivals[n - tenth - 1], arrivals[n - 1]);
    // Deliveries per half second, for the plot.
    let mut timeline = vec![0u32; (secs(t0, arrivals[n - 1]) / 0.5) as usize + 1];
    for a in &arrivals {
        timeline[(secs(t0, *a) / 0.5) as usize] += 1;
    }
    Ok(json!({
        "top_statements": ctx.top_statements(&format!("b_sql_{}", t.name())).await?,
        "events": n,
        "published_in_s": secs(t0, published),
        "deliveries_per_s": n as f64 / secs(t0, arrivals[n - 1]),
        "first_fifth_per_s": first,
        "last_fifth_per_s": last,
        "last_over_first": last / first,
        "duplicates": rx.count("/hook") - rx.distinct("/hook"),
        "cost": cost,
        "peak_rss_mib": rss(&stack),
        "timeline_per_half_second": timeline,
        "tables": tables(&stack).await?,
    }))
}

/// `latency`: open loop at 200 and at 500 events/s, 30 s each.
async fn latency_phase(ctx: &Ctx, t: Topology) -> anyhow::Result<Value> {
    let mut out = Map::new();
    for rate in [200, 500] {
        let stack = Stack::start(&ctx.bin, &ctx.pg.url, &format!("b_lat{rate}_{}", t.name()), t).await?;
        let rx = Receiver::start().await;
        stack.endpoint(&rx, "/hook").await?;
        out.insert(format!("{rate}_per_s"), load::open_loop(ctx, &stack, &rx, rate).await?);
    }
    Ok(Value::Object(out))
}

/// `noisy-neighbour`: the 500/s run again, with one more endpoint that accepts connections and
/// never answers, subscribed to every event. Beside it, the control: the same run with the
/// second endpoint answering at once, which is the same work for the database (two deliveries
/// an event) without the hang, so that what the hang itself costs can be told apart.
async fn noisy(ctx: &Ctx, t: Topology) -> anyhow::Result<Value> {
    let run = |second: &'static str| async move {
        let stack = Stack::start(&ctx.bin, &ctx.pg.url, &format!("b_noisy{}_{}", &second[1..], t.name()), t).await?;
        let rx = Receiver::start().await;
        stack.endpoint(&rx, "/hook").await?;
        stack.endpoint(&rx, second).await?;
        load::open_loop(ctx, &stack, &rx, 500).await
    };
    let mut hang = run("/hang").await?;
    hang["control"] = run("/other").await?;
    Ok(hang)
}

/// `agent`: 200 approvals one at a time, `respond` → the callback received.
async fn agent(ctx: &Ctx, t: Topology) -> anyhow::Result<Value> {
    let stack = Stack::start(&ctx.bin, &ctx.pg.url, &format!("b_agent_{}", t.name()), t).await?;
    let rx = Receiver::start().await;
    let n = ctx.n(200).max(20);
    let mut took = Vec::new();
    for i in 0..n {
        let call_id = format!("bench_call_{i}");
        let r = stack
            .http
            .post(format!("{}/v1/approvals", stack.api))
            .bearer_auth(&stack.token)
            .json(&json!({"call_id": call_id, "fn": "send_email", "kwargs": {"to": "a@example.com"},
                          "state": {"thread": i}, "callback_url": rx.url("/agent"),
                          "callback_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "create approval: {}", r.status());
        let t0 = Instant::now();
        let r = stack
            .http
            .post(format!("{}/v1/approvals/{call_id}/respond", stack.api))
            .bearer_auth(&stack.token)
            .json(&json!({"approved": true}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "respond: {}", r.status());
        anyhow::ensure!(rx.wait(&["/agent".to_string()], i + 1, Duration::from_secs(30)).await, "callback");
        took.push(rx.arrivals("/agent")[i].saturating_duration_since(t0).as_secs_f64() * 1e3);
    }
    Ok(load::percentiles(&mut took))
}

/// `ceiling`: PostgreSQL alone doing a delivery's row work (`shared/bench/pg_ceiling.sh`).
async fn ceiling(root: &str) -> anyhow::Result<Value> {
    let shared = std::env::var("SHARED").unwrap_or_else(|_| format!("{root}/../shared"));
    let script = format!("{shared}/bench/pg_ceiling.sh");
    anyhow::ensure!(std::path::Path::new(&script).exists(), "{script} not found (set SHARED)");
    eprintln!("bench: ceiling ({script})");
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("bash").arg(&script).output()).await??;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let per_s: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("db ceiling deliveries/s:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("pg_ceiling.sh printed no figure: {text}{}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(json!({"deliveries_per_s": per_s, "output": text.trim()}))
}

fn fig(v: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(v, |v, k| v.get(k)).and_then(Value::as_f64)
}

fn print_table(results: &Map<String, Value>, topologies: &[Topology]) {
    let ceiling = results.get("ceiling").and_then(|c| fig(c, "-.deliveries_per_s"));
    #[rustfmt::skip]
    let rows: &[(&str, &str, &str, &str)] = &[
        ("http-1", "accepted_per_s", "http-1 accepted/s", ">= 2500"),
        ("http-1", "deliveries_per_s", "http-1 deliveries/s", ""),
        ("http-1", "last_delivery_after_last_202_ms", "http-1 last delivery after last 202 (ms)", "<= 1000"),
        ("http-1", "cost.cpu_ms", "http-1 CPU per delivery, Herald + PG (ms)", "<= 0.35"),
        ("http-1", "cost.herald_cpu_ms", "  of which Herald (ms)", ""),
        ("http-1", "cost.wal_bytes", "http-1 WAL per delivery (bytes)", "<= 1536"),
        ("http-1", "cost.statements", "http-1 statements per delivery", "<= 3"),
        ("http-10", "deliveries_per_s", "http-10 deliveries/s", ">= 10000"),
        ("sql-backlog", "deliveries_per_s", "sql-backlog deliveries/s", ""),
        ("sql-backlog", "ratio_to_ceiling", "sql-backlog / ceiling", ">= 0.60"),
        ("sql-backlog", "first_fifth_per_s", "sql-backlog first 10,000 /s", ""),
        ("sql-backlog", "last_fifth_per_s", "sql-backlog last 10,000 /s", ""),
        ("sql-backlog", "last_over_first", "sql-backlog last / first", ">= 0.90"),
        ("sql-backlog", "cost.cpu_ms", "sql-backlog CPU per delivery (ms)", "<= 0.35"),
        ("sql-backlog", "cost.wal_bytes", "sql-backlog WAL per delivery (bytes)", "<= 1536"),
        ("sql-backlog", "cost.statements", "sql-backlog statements per delivery", "<= 3"),
        ("large-backlog", "claim_ms_10k", "claim of 100, 10,000 due (ms)", ""),
        ("large-backlog", "claim_ms_1m", "claim of 100, 1,000,000 due (ms)", ""),
        ("large-backlog", "ratio", "large-backlog 1M / 10k", "<= 2"),
        ("latency", "200_per_s.p50_ms", "latency 200/s p50 (ms)", ""),
        ("latency", "200_per_s.p99_ms", "latency 200/s p99 (ms)", ""),
        ("latency", "500_per_s.p50_ms", "latency 500/s p50 (ms)", ""),
        ("latency", "500_per_s.p95_ms", "latency 500/s p95 (ms)", ""),
        ("latency", "500_per_s.p99_ms", "latency 500/s p99 (ms)", "<= 10"),
        ("latency", "500_per_s.max_ms", "latency 500/s max (ms)", ""),
        ("noisy-neighbour", "p99_ms", "noisy-neighbour 500/s p99 (ms)", "<= plain + 1"),
        ("noisy-neighbour", "control.p99_ms", "  control, both endpoints answer: p99 (ms)", ""),
        ("agent", "p50_ms", "agent respond -> callback p50 (ms)", ""),
        ("agent", "p99_ms", "agent respond -> callback p99 (ms)", "<= 15"),
    ];
    let cols: Vec<&str> = topologies.iter().map(|t| t.name()).collect();
    print!("{:<46}", "figure");
    for c in &cols {
        print!("{c:>12}");
    }
    println!("{:>14}", "target");
    for (phase, key, label, target) in rows {
        let Some(p) = results.get(*phase) else { continue };
        print!("{label:<46}");
        for c in &cols {
            let v = if *key == "ratio_to_ceiling" {
                fig(p, &format!("{c}.deliveries_per_s")).zip(ceiling).map(|(a, b)| a / b)
            } else {
                fig(p, &format!("{c}.{key}"))
                    .or_else(|| fig(p, &format!("all.{key}")).filter(|_| *phase == "large-backlog"))
            };
            match v {
                Some(v) if v.abs() >= 100.0 => print!("{v:>12.0}"),
                Some(v) => print!("{v:>12.2}"),
                None => print!("{:>12}", p.get(*c).and_then(|x| x.get("error")).map_or("-", |_| "error")),
            }
        }
        println!("{target:>14}");
    }
    for (phase, p) in results {
        if let Some(obj) = p.as_object() {
            for (c, v) in obj {
                if let Some(e) = v.get("error") {
                    println!("{phase} ({c}) failed: {e}");
                }
            }
        }
        if phase == "http-1" || phase == "sql-backlog" {
            for c in &cols {
                if let Some(t) = p.get(*c).and_then(|v| v.get("tables")).and_then(Value::as_object) {
                    let shown: Vec<String> = t
                        .iter()
                        .filter(|(_, v)| v.is_object())
                        .map(|(name, v)| {
                            format!(
                                "{name} {} live / {} dead ({:.1} MiB, {} autovacuums)",
                                v["live"],
                                v["dead"],
                                v["mib"].as_f64().unwrap_or(0.0),
                                v["autovacuums"]
                            )
                        })
                        .collect();
                    println!(
                        "{phase} ({c}) tables after: {}; pending deliveries {}",
                        shown.join(", "),
                        t.get("pending_deliveries").unwrap_or(&Value::Null)
                    );
                }
                if let Some(list) = p.get(*c).and_then(|v| v.get("peak_rss_mib")).and_then(Value::as_array) {
                    let shown: Vec<String> = list
                        .iter()
                        .map(|x| {
                            format!("{} {:.0}", x["process"].as_str().unwrap_or("?"), x["mib"].as_f64().unwrap_or(0.0))
                        })
                        .collect();
                    println!("{phase} ({c}) peak RSS MiB (target <= 64 each): {}", shown.join(", "));
                }
            }
        }
    }
    if let Some(c) = ceiling {
        println!("ceiling (pg_ceiling.sh, PostgreSQL alone): {c:.0} deliveries/s");
    }
}
