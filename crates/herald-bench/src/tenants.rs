//! `tenants` (`make bench-citus`): 20 tenants, each with one endpoint, on the benchmark's single
//! PostgreSQL and, with `BENCH_CITUS_URL` (a Citus coordinator with two workers, started by
//! scripts/bench-citus.sh on this same machine), on Citus. Herald split as in production (one
//! API, one poller, two workers), default settings. Three load shapes, each on fresh tables:
//!
//! - `even`: 10,000 events over HTTP, 64 in flight, spread evenly over the 20 tenants;
//! - `one-tenant`: the same, all from one tenant (on Citus, one node does its work);
//! - `sql-backlog`: 20,000 events by `herald.publish`, 500 per transaction of one tenant, from
//!   two connections, then drained.
//!
//! And how busy the machine was meanwhile (all of it: Herald, every PostgreSQL, the load).

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::receiver::Receiver;
use crate::stack::{Stack, Topology};
use crate::{load, secs, Ctx};

pub const TENANTS: usize = 20;
pub const SHAPES: &[&str] = &["even", "one-tenant", "sql-backlog"];

pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let mut out = Map::new();
    out.insert("single".into(), on(ctx, None).await?);
    match std::env::var("BENCH_CITUS_URL") {
        Ok(url) => {
            out.insert("citus".into(), on(ctx, Some(&url)).await?);
        }
        Err(_) => eprintln!("bench: tenants on Citus skipped (no BENCH_CITUS_URL; make bench-citus sets it)"),
    }
    Ok(Value::Object(out))
}

async fn on(ctx: &Ctx, citus: Option<&str>) -> anyhow::Result<Value> {
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("t{i:02}")).collect();
    let mut out = Map::new();
    for shape in SHAPES {
        eprintln!("bench: tenants {shape} ({})", if citus.is_some() { "citus" } else { "single" });
        let stack = match citus {
            Some(url) => {
                // Fresh tables: the coordinator's one database, Herald's schema made again.
                let (admin, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                admin.batch_execute("DROP SCHEMA IF EXISTS herald CASCADE").await?;
                Stack::start_on(&ctx.bin, url, Topology::Split, &tenants, true).await?
            }
            None => {
                let name = format!("b_tenants_{}", shape.replace('-', "_"));
                let (admin, conn) = tokio_postgres::connect(&ctx.pg.url, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
                let url = ctx.pg.url.rsplit_once('/').map(|(base, _)| format!("{base}/{name}")).unwrap();
                Stack::start_on(&ctx.bin, &url, Topology::Split, &tenants, false).await?
            }
        };
        let mut r = measure(ctx, &stack, &tenants, shape, citus).await?;
        if citus.is_none() {
            // Where the single PostgreSQL's time went (pg_stat_statements, since the warm-up).
            r["top_statements"] = ctx.top_statements(&format!("b_tenants_{}", shape.replace('-', "_"))).await?;
        }
        out.insert(shape.to_string(), r);
    }
    Ok(Value::Object(out))
}

async fn measure(
    ctx: &Ctx,
    stack: &Stack,
    tenants: &[String],
    shape: &str,
    citus: Option<&str>,
) -> anyhow::Result<Value> {
    let rx = Receiver::start().await;
    let paths: Vec<String> = tenants.iter().map(|t| format!("/{t}")).collect();
    for (i, p) in paths.iter().enumerate() {
        stack.endpoint_of(i, &rx, p).await?;
    }
    // Warm-up: every tenant, every process, every node has seen work.
    let warm = ctx.n(1_000);
    load::closed_across(stack, "warm", warm, 64, TENANTS).await?;
    anyhow::ensure!(rx.wait_total(warm, Duration::from_secs(300)).await, "warm-up not delivered");
    if citus.is_none() {
        ctx.window(stack).await?;
    }
    let busy = Busy::now();
    let t0 = Instant::now();
    let n = match shape {
        "even" => {
            let n = ctx.n(10_000);
            load::closed_across(stack, "m", n, 64, TENANTS).await?;
            n
        }
        "one-tenant" => {
            let n = ctx.n(10_000);
            load::closed_across(stack, "m", n, 64, 1).await?;
            n
        }
        _ => {
            let n = ctx.n(20_000).max(TENANTS * 500);
            load::sql_across(stack, tenants, n, 500, 2).await?;
            n
        }
    };
    let published = Instant::now();
    anyhow::ensure!(rx.wait_total(warm + n, Duration::from_secs(900)).await, "not every event was delivered ({shape})");
    let last = paths.iter().filter_map(|p| rx.arrivals(p).last().copied()).max().unwrap();
    let cpu = busy.since();
    let duplicates: usize = paths.iter().map(|p| rx.count(p) - rx.distinct(p)).sum();
    Ok(json!({
        "events": n,
        "published_per_s": n as f64 / secs(t0, published),
        "deliveries_per_s": n as f64 / secs(t0, last),
        "last_delivery_after_last_publish_ms": last.saturating_duration_since(published).as_secs_f64() * 1e3,
        "machine_cpu_busy": cpu,
        "duplicates": duplicates,
    }))
}

/// The share of the machine's CPU time that was busy between two readings of /proc/stat.
struct Busy(Option<(f64, f64)>);

impl Busy {
    fn read() -> Option<(f64, f64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let f: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let total: f64 = f.iter().take(8).sum();
        let idle = f.get(3)? + f.get(4)?;
        Some((total - idle, total))
    }

    fn now() -> Self {
        Self(Self::read())
    }

    fn since(&self) -> Option<f64> {
        let ((b0, t0), (b1, t1)) = (self.0?, Self::read()?);
        Some((b1 - b0) / (t1 - t0).max(1.0))
    }
}

/// The rows of the table `make bench-citus` prints.
pub fn print(results: &Value) {
    println!("{:<52}{:>12}{:>12}{:>10}", "20 tenants, split topology", "single", "citus", "citus/1");
    for shape in SHAPES {
        for (key, label) in [
            ("deliveries_per_s", "deliveries/s"),
            ("published_per_s", "published/s"),
            ("last_delivery_after_last_publish_ms", "last delivery after publish (ms)"),
            ("machine_cpu_busy", "machine CPU busy (share of all cores)"),
        ] {
            let get = |place: &str| {
                results.get(place).and_then(|p| p.get(*shape)).and_then(|s| s.get(key)).and_then(Value::as_f64)
            };
            let (a, b) = (get("single"), get("citus"));
            let show = |v: Option<f64>| match v {
                Some(v) if v.abs() >= 100.0 => format!("{v:>12.0}"),
                Some(v) => format!("{v:>12.2}"),
                None => format!("{:>12}", "-"),
            };
            let ratio = a.zip(b).map(|(a, b)| format!("{:>10.2}", b / a)).unwrap_or_else(|| format!("{:>10}", "-"));
            println!("{:<52}{}{}{ratio}", format!("{shape}: {label}"), show(a), show(b));
        }
    }
}
