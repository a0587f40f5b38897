//! The fault suite's ledger: two tenants, endpoints with type filters, events published over
//! HTTP (by a client that retries with the same id on a connection error or a 5xx) and by
//! `herald.publish` in the caller's transaction, while a scenario injects its fault. Once the
//! fault stops: every acknowledged event is stored once and reaches every endpoint its type
//! selects, signed; nothing else arrives; duplicates are counted with their cause; the healthy
//! endpoints' p99 during the run is printed. `HERALD_CHAOS_EVENTS` sets how many events
//! (400 here; `make chaos` runs thousands, repeatedly).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use herald_testkit::{eventually, Receiver, TestDb};
use rand::Rng;
use serde_json::json;
use support::{fast_with, Herald};

const WAIT: Duration = Duration::from_secs(300);
const TENANTS: [&str; 2] = ["acme", "globex"];

struct Endpoint {
    path: String,
    /// Takes `a.*` only, or every type.
    only_a: bool,
    secret: String,
}

/// One event Herald acknowledged: its tenant, id, type, and when the acknowledgement came.
#[derive(Clone)]
struct Acked {
    tenant: &'static str,
    id: String,
    kind: &'static str,
    at: Instant,
}

struct Suite {
    db: TestDb,
    env: Vec<(&'static str, &'static str)>,
    tokens: HashMap<&'static str, String>,
    rx: Receiver,
    endpoints: Vec<(&'static str, Endpoint)>,
    /// Where the API is now: a restarted API process has a new address.
    base: Arc<RwLock<String>>,
    procs: Vec<(&'static str, Herald)>,
}

impl Suite {
    /// `commands`: the processes to run (`all`, or `producer`, `poller`, `worker`...).
    async fn start(commands: &[&'static str], extra: &[(&'static str, &'static str)]) -> Self {
        let db = TestDb::new().await;
        let env = fast_with(extra);
        let mut tokens = HashMap::new();
        for t in TENANTS {
            tokens.insert(t, db.tenant(t).await);
        }
        let mut procs = Vec::new();
        for c in commands {
            procs.push((*c, Herald::start(&db, c, &env).await));
        }
        let base = procs.iter().find(|(c, _)| *c == "all" || *c == "producer").unwrap().1.base.clone();
        let rx = Receiver::start().await;
        let mut suite = Suite { db, env, tokens, rx, endpoints: Vec::new(), base: Arc::new(RwLock::new(base)), procs };
        for t in TENANTS {
            for only_a in [false, true] {
                let path = format!("/{t}/{}", if only_a { "a" } else { "all" });
                let mut body = json!({"url": suite.rx.url(&path)});
                if only_a {
                    body["event_types"] = json!(["a.*"]);
                }
                let r = suite.post(t, "/v1/endpoints", body).await;
                suite.endpoints.push((t, Endpoint { path, only_a, secret: r["secret"].as_str().unwrap().into() }));
            }
        }
        suite
    }

    async fn post(&self, tenant: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}{path}", self.base.read().unwrap());
        let r = reqwest::Client::new().post(url).bearer_auth(&self.tokens[tenant]).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Publishes `n` events in the background, half over HTTP, half by SQL; answers the ledger.
    fn publish(&self, n: usize) -> tokio::task::JoinHandle<Vec<Acked>> {
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        for lane in 0..4 {
            let (base, acked, tokens) = (self.base.clone(), acked.clone(), self.tokens.clone());
            tasks.spawn(async move {
                let http = reqwest::Client::new();
                for i in (lane..n / 2).step_by(4) {
                    let tenant = TENANTS[i % 2];
                    let (id, kind) = (format!("http_{i:05}"), if i % 3 == 0 { "a.x" } else { "b.y" });
                    let body = json!({"id": id, "type": kind, "data": {"i": i}});
                    let deadline = Instant::now() + WAIT;
                    loop {
                        let url = format!("{}/v1/events", base.read().unwrap());
                        let r = http
                            .post(url)
                            .bearer_auth(&tokens[tenant])
                            .json(&body)
                            .timeout(Duration::from_secs(5))
                            .send()
                            .await;
                        match r.map(|r| r.status().as_u16()) {
                            Ok(200 | 202) => break,
                            Ok(s) if s < 500 => panic!("{id} refused with {s}"),
                            _ => {
                                assert!(Instant::now() < deadline, "{id} never accepted");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    acked.lock().unwrap().push(Acked { tenant, id, kind, at: Instant::now() });
                }
            });
        }
        let (pool, acked2) = (self.db.pool.clone(), acked.clone());
        tasks.spawn(async move {
            for chunk in (0..n / 2).collect::<Vec<_>>().chunks(10) {
                let deadline = Instant::now() + WAIT;
                loop {
                    // The database may be away: the whole transaction again, as a service would.
                    let attempt = async {
                        let mut client = pool.get().await.map_err(|e| e.to_string())?;
                        let tx = client.transaction().await.map_err(|e| e.to_string())?;
                        let mut ids = Vec::new();
                        for &i in chunk {
                            let tenant = TENANTS[i % 2];
                            let (id, kind) = (format!("sql_{i:05}"), if i % 3 == 0 { "a.z" } else { "b.z" });
                            tx.execute(
                                "SELECT herald.publish($1, $2, $3::jsonb, id => $4)",
                                &[&tenant, &kind, &json!({"i": i}), &id],
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                            ids.push(Acked { tenant, id, kind, at: Instant::now() });
                        }
                        tx.commit().await.map_err(|e| e.to_string())?;
                        Ok::<_, String>(ids)
                    };
                    match attempt.await {
                        Ok(ids) => {
                            let now = Instant::now();
                            acked2.lock().unwrap().extend(ids.into_iter().map(|a| Acked { at: now, ..a }));
                            break;
                        }
                        Err(e) => {
                            assert!(Instant::now() < deadline, "SQL publish never committed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(r) = tasks.join_next().await {
                r.expect("a publisher failed");
            }
            let v = acked.lock().unwrap().clone();
            v
        })
    }

    /// Kills process `command` with SIGKILL and starts another in its place.
    async fn kill_and_restart(&mut self, command: &'static str) {
        let k = self.procs.iter().position(|(c, _)| *c == command).expect("no such process");
        let (_, mut old) = self.procs.remove(k);
        old.signal("KILL");
        old.wait_exit(Duration::from_secs(10)).await;
        let new = Herald::start(&self.db, command, &self.env).await;
        if command == "all" || command == "producer" {
            *self.base.write().unwrap() = new.base.clone();
        }
        self.procs.push((command, new));
    }

    /// The ledger check; answers (duplicates, requests). `faulty`: endpoint paths the fault hit,
    /// left out of the healthy p99.
    async fn check(&self, scenario: &str, acked: &[Acked], faulty: &[&str]) -> (usize, usize) {
        let mut want: HashSet<(String, String)> = HashSet::new();
        let mut sent_at: HashMap<String, Instant> = HashMap::new();
        for a in acked {
            sent_at.insert(a.id.clone(), a.at);
            for (t, e) in &self.endpoints {
                if *t == a.tenant && (!e.only_a || a.kind.starts_with("a.")) {
                    want.insert((e.path.clone(), a.id.clone()));
                }
            }
        }
        let got = || -> Vec<(String, String)> {
            self.endpoints
                .iter()
                .flat_map(|(_, e)| {
                    self.rx
                        .requests(&e.path)
                        .into_iter()
                        .map(|r| (r.path.clone(), r.header("webhook-id").unwrap().to_string()))
                })
                .collect()
        };
        eventually(&format!("{scenario}: every acknowledged event at every endpoint it selects"), WAIT, || async {
            let seen: HashSet<_> = got().into_iter().collect();
            want.is_subset(&seen).then_some(())
        })
        .await;
        eventually(&format!("{scenario}: every delivery recorded, no lease left"), WAIT, || async {
            let row = self
                .db
                .client()
                .await
                .query_one(
                    "SELECT count(*) FILTER (WHERE state <> 'delivered' OR lease_until IS NOT NULL), count(*) FROM herald.deliveries",
                    &[],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0) == 0 && row.get::<_, i64>(1) as usize == want.len()).then_some(())
        })
        .await;
        let stored: i64 =
            self.db.client().await.query_one("SELECT count(*) FROM herald.events", &[]).await.unwrap().get(0);
        assert_eq!(stored as usize, acked.len(), "{scenario}: every acknowledged event stored, once");
        let mut healthy = Vec::new();
        for (_, e) in &self.endpoints {
            let wh = standardwebhooks::Webhook::new(&e.secret).unwrap();
            for r in self.rx.requests(&e.path) {
                wh.verify(&r.body, &r.headers).expect("every webhook verifies");
                if !faulty.contains(&e.path.as_str()) {
                    if let Some(at) = r.header("webhook-id").and_then(|id| sent_at.get(id)) {
                        healthy.push(r.at.saturating_duration_since(*at).as_secs_f64() * 1e3);
                    }
                }
            }
        }
        healthy.sort_by(f64::total_cmp);
        let p99 = healthy.get(((healthy.len() as f64 - 1.0) * 0.99).round() as usize).copied().unwrap_or(f64::NAN);
        let all = got();
        let seen: HashSet<_> = all.iter().cloned().collect();
        let unexpected: Vec<_> = seen.difference(&want).collect();
        assert!(unexpected.is_empty(), "{scenario}: arrived but never published: {unexpected:?}");
        let duplicates = all.len() - seen.len();
        eprintln!(
            "{scenario}: {} events, {} deliveries, {} requests, lost 0, duplicates {duplicates}, healthy endpoints' p99 {p99:.0} ms",
            acked.len(),
            want.len(),
            all.len()
        );
        (duplicates, all.len())
    }
}

fn events() -> usize {
    std::env::var("HERALD_CHAOS_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
}

/// Kills `victim` three times at random moments of the publishing, starting another each time.
async fn killed_three_times(commands: &[&'static str], victim: &'static str) -> (Suite, usize) {
    // A short lease where a killed worker's deliveries must be taken over; elsewhere one that
    // no attempt outlasts even on a loaded machine, so that any duplicate is a fault.
    let lease = if matches!(victim, "worker" | "all") { "3s" } else { "60s" };
    let mut suite = Suite::start(commands, &[("HERALD_LEASE", lease)]).await;
    let n = events();
    let publishing = suite.publish(n);
    for _ in 0..3 {
        let wait = rand::rng().random_range(50..400);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        suite.kill_and_restart(victim).await;
    }
    let acked = publishing.await.unwrap();
    let (duplicates, _) = suite.check(&format!("kill -9 of {victim}, 3 times"), &acked, &[]).await;
    (suite, duplicates)
}

#[tokio::test]
async fn kill_9_of_a_worker_three_times() {
    let (_, _duplicates) = killed_three_times(&["producer", "poller", "worker", "worker"], "worker").await;
}

#[tokio::test]
async fn kill_9_of_the_poller_three_times() {
    let (_, duplicates) = killed_three_times(&["producer", "poller", "worker", "worker"], "poller").await;
    assert_eq!(duplicates, 0, "no worker was killed: no lease expired");
}

#[tokio::test]
async fn kill_9_of_the_api_three_times() {
    let (_, duplicates) = killed_three_times(&["producer", "poller", "worker", "worker"], "producer").await;
    assert_eq!(duplicates, 0, "no worker was killed: no lease expired");
}

#[tokio::test]
async fn kill_9_of_herald_all_three_times() {
    killed_three_times(&["all"], "all").await;
}
