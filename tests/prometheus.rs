//! A real Prometheus (Debian's `prometheus` package; scripts/prometheus-deps.sh installs it)
//! scrapes a running Herald, as an SRE's would: the OpenMetrics it serves is ingested with its
//! types, a delivery counter is read back through Prometheus's HTTP API, the queue's gauges
//! are there, and the Prometheus text format that curl gets passes `promtool check metrics`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_testkit::{eventually, Receiver};
use serde_json::{json, Value};
use support::{fast_with, free_port, herald_all};

const WAIT: Duration = Duration::from_secs(60);

fn tool(name: &str) -> String {
    let var = format!("HERALD_{}", name.to_uppercase());
    std::env::var(&var).unwrap_or_else(|_| {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
        let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
        assert!(
            !path.is_empty(),
            "{name} not found: run scripts/prometheus-deps.sh (apt-get install prometheus), or set {var}"
        );
        path
    })
}

/// The Prometheus process and its directory under target/, both gone when dropped.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_herald() {
    let (_db, herald, api) = herald_all(&fast_with(&[("HERALD_METRICS_INTERVAL", "200ms")])).await;
    let rx = Receiver::start().await;
    let (endpoint, _) = api.endpoint(json!({"url": rx.url("/hook")})).await;
    let id = api.publish(json!({"type": "run.finished", "data": {"ok": true}})).await;
    api.wait_delivery(&id, Some(&endpoint), "delivered", WAIT).await;

    // What curl gets: the Prometheus text format, which promtool lints.
    let text = api.http.get(format!("{}/metrics", herald.base)).send().await.unwrap().text().await.unwrap();
    let mut lint = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(lint.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = lint.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{text}");

    // A real Prometheus, scraping every second.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = herald.base.trim_start_matches("http://");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{RULES}']\n\
             scrape_configs:\n  - job_name: herald\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    let _prometheus = Prometheus { child, dir: dir.clone() };
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(format!("http://127.0.0.1:{port}{path}")).send().await.ok()?;
            r.json::<Value>().await.ok()
        }
    };
    let query = |q: &str| get(format!("/api/v1/query?query={}", urlencode(q)));
    let delivered = eventually("Prometheus to have scraped a delivery", WAIT, || async {
        let v = query("herald_deliveries_finished_total{state=\"delivered\"}").await?;
        v["data"]["result"][0]["value"][1].as_str().map(String::from)
    })
    .await;
    assert_eq!(delivered, "1");
    // Ingested as OpenMetrics, with the types and help Herald declared.
    let meta = get("/api/v1/metadata?metric=herald_deliveries_finished".into()).await.unwrap();
    let meta = &meta["data"]["herald_deliveries_finished"][0];
    assert_eq!(meta["type"], "counter", "{meta}");
    let up = query("up{job=\"herald\"}").await.unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    // The queue's gauges, from the one process that counts them.
    let due = eventually("the queue's gauges", WAIT, || async {
        let v = query("herald_deliveries_due").await?;
        v["data"]["result"][0]["value"][1].as_str().map(String::from)
    })
    .await;
    assert_eq!(due, "0", "nothing is due once the delivery is made");
    let endpoints = query("herald_endpoints{status=\"healthy\"}").await.unwrap();
    assert_eq!(endpoints["data"]["result"][0]["value"][1], "1", "{endpoints}");

    // The shipped alert rules: valid, about metrics Herald exports, and evaluated without error.
    let out = Command::new(tool("promtool")).args(["check", "rules", RULES]).output().unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: std::collections::HashSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let rules = std::fs::read_to_string(RULES).unwrap();
    for used in metric_names(&rules) {
        assert!(exported.contains(used.as_str()), "the rules use {used}, which Herald does not export");
    }
    // The shipped Grafana dashboard: every query about metrics Herald exports, and one this
    // Prometheus runs without error.
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        for used in metric_names(expr) {
            let name = used.trim_end_matches("_bucket");
            assert!(exported.contains(name), "the dashboard uses {used}, which Herald does not export");
        }
        let v = query(&expr.replace("$__rate_interval", "1m")).await.unwrap();
        assert_eq!(v["status"], "success", "{expr}: {v}");
    }
    eventually("the rules evaluated", WAIT, || async {
        let v = get("/api/v1/rules".into()).await?;
        let rules: Vec<&Value> =
            v["data"]["groups"].as_array()?.iter().flat_map(|g| g["rules"].as_array().unwrap().iter()).collect();
        let bad: Vec<&Value> = rules.iter().copied().filter(|r| r["health"] != "ok").collect();
        assert!(bad.is_empty(), "rules that failed: {bad:?}");
        (rules.len() >= 9 && rules.iter().all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001"))))
            .then_some(())
    })
    .await;
}

/// The shipped rule file and dashboard, from the repository's root.
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus/herald-rules.yml");
const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/herald-dashboard.json");

/// Every `herald_...` metric name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("herald_") {
        let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The queue's gauges as one Herald process's `/metrics` shows them, or None if it shows none.
async fn queue_gauges(http: &reqwest::Client, base: &str) -> Option<(i64, i64, f64)> {
    let text = http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse::<f64>().ok()))
    };
    Some((
        value("herald_deliveries_due")? as i64,
        value("herald_outbox_depth")? as i64,
        value("herald_outbox_oldest_age_seconds")?,
    ))
}

#[tokio::test]
async fn one_process_counts_the_queue_and_another_takes_over_when_it_dies() {
    // Two API processes and nothing that delivers or fans out: what is published waits.
    let db = herald_testkit::TestDb::new().await;
    let token = db.tenant("acme").await;
    let env = fast_with(&[("HERALD_METRICS_INTERVAL", "200ms")]);
    let first = support::Herald::start(&db, "producer", &env).await;
    let second = support::Herald::start(&db, "producer", &env).await;
    let api = support::Api::new(&second.base, &token);
    api.endpoint(json!({"url": "http://127.0.0.1:9/never"})).await;
    for i in 0..3 {
        api.publish(json!({"id": format!("h{i}"), "type": "t", "data": i})).await;
    }
    let client = db.client().await;
    client
        .batch_execute("SELECT herald.publish('acme', 't', '1'::jsonb, id => 's' || g) FROM generate_series(1, 2) g")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let (a, b) = eventually("one process to count 3 due deliveries and 2 events in the outbox", WAIT, || async {
        let (a, b) = (queue_gauges(&http, &first.base).await, queue_gauges(&http, &second.base).await);
        let counted = [a, b].iter().flatten().any(|(due, depth, _)| (*due, *depth) == (3, 2));
        counted.then_some((a, b))
    })
    .await;
    assert!(a.is_none() || b.is_none(), "one process exports the queue's gauges, not both: {a:?} {b:?}");
    let (_, _, age) = a.or(b).unwrap();
    assert!((0.0..60.0).contains(&age), "the oldest event in the outbox is {age} s old");
    // The counting one dies: the other takes the lock over.
    let (mut leader, other) = if a.is_some() { (first, second) } else { (second, first) };
    leader.signal("KILL");
    leader.wait_exit(Duration::from_secs(10)).await;
    eventually("the other process to count the queue", WAIT, || async {
        queue_gauges(&http, &other.base).await.filter(|(due, _, _)| *due == 3)
    })
    .await;
}

/// `herald_events_published_total` by door: the API counts what it accepts; what SQL and the
/// Rust crate publish in their own transactions is counted by the poller as it fans it out, and a
/// rolled-back publish is not counted at all.
#[tokio::test]
async fn events_are_counted_by_the_door_they_came_in() {
    let (db, herald, api) = herald_all(&fast_with(&[])).await;
    api.endpoint(json!({"url": "http://127.0.0.1:9/never"})).await;
    api.publish(json!({"type": "t", "data": 1})).await;
    api.publish(json!({"type": "t", "data": 2, "callback_url": "http://127.0.0.1:9/cb"})).await;
    let mut client = db.client().await;
    client.batch_execute("SELECT herald.publish('acme', 't', '1'::jsonb)").await.unwrap();
    client.batch_execute("SELECT herald.publish_json('acme', 't', '2')").await.unwrap();
    let tx = client.transaction().await.unwrap();
    client_publish(&tx, "r1").await;
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    client_publish(&tx, "r2").await;
    tx.rollback().await.unwrap();

    let want = [("http", 2.0), ("sql", 2.0), ("rust", 1.0)];
    let got = eventually("events counted by door", WAIT, || async {
        let text = api.http.get(format!("{}/metrics", herald.base)).send().await.ok()?.text().await.ok()?;
        let got: Vec<f64> = want
            .iter()
            .map(|(door, _)| {
                let line = format!("herald_events_published_total{{door=\"{door}\"}} ");
                text.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse().ok()).unwrap_or(-1.0)
            })
            .collect();
        (got[1] + got[2] >= 3.0).then_some(got)
    })
    .await;
    assert_eq!(got, want.iter().map(|(_, n)| *n).collect::<Vec<_>>(), "{want:?}");
}

async fn client_publish(tx: &tokio_postgres::Transaction<'_>, id: &str) {
    let event = herald_producer::NewEvent {
        id: Some(herald_core::id::EventId::parse(id).unwrap()),
        event_type: "t".into(),
        data: json!({"r": id}).into(),
        ..Default::default()
    };
    let tenant = herald_core::id::TenantId::parse("acme").unwrap();
    herald_producer::publish(tx, &tenant, &event, chrono::Utc::now()).await.unwrap();
}
