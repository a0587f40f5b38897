//! Herald as a user runs it: the released binary with its default settings, against a fresh
//! database of the benchmark's PostgreSQL, as `herald all` or split into one producer, one
//! poller and two workers. And what those processes and PostgreSQL cost, read from /proc and
//! from PostgreSQL itself.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use crate::receiver::Receiver;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    All,
    Split,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::All => "all",
            Topology::Split => "split",
        }
    }
}

pub struct Stack {
    pub db_url: String,
    /// The API's base URL.
    pub api: String,
    /// The first tenant's token.
    pub token: String,
    /// Every tenant's token, in the order they were made.
    pub tokens: Vec<String>,
    pub http: reqwest::Client,
    procs: Vec<(String, Child)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Stack {
    /// A fresh database `name` on the cluster at `admin_url`, migrated, with a tenant `bench`,
    /// and Herald running against it.
    pub async fn start(bin: &str, admin_url: &str, name: &str, topology: Topology) -> anyhow::Result<Self> {
        let (admin, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let db_url = admin_url.rsplit_once('/').map(|(base, _)| format!("{base}/{name}")).context("a URL")?;
        Self::start_on(bin, &db_url, topology, &["bench".to_string()], false).await
    }

    /// Herald against the database at `db_url` as it is: migrated (with `citus`, distributed
    /// on Citus too), with `tenants`, each with its token in [`Stack::tokens`].
    pub async fn start_on(
        bin: &str,
        db_url: &str,
        topology: Topology,
        tenants: &[String],
        citus: bool,
    ) -> anyhow::Result<Self> {
        let db_url = db_url.to_string();
        let run = |args: &[&str]| -> anyhow::Result<String> {
            let out = Command::new(bin).args(args).env("HERALD_DATABASE_URL", &db_url).output()?;
            if !out.status.success() {
                bail!("herald {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        run(if citus { &["migrate", "--citus"] } else { &["migrate"] })?;
        let tokens = tenants.iter().map(|t| run(&["tenant", "create", t])).collect::<anyhow::Result<Vec<_>>>()?;
        let roles: &[&str] = match topology {
            Topology::All => &["all"],
            Topology::Split => &["producer", "poller", "worker", "worker"],
        };
        let mut procs = Vec::new();
        let mut api = String::new();
        let mut ready = Vec::new();
        for role in roles {
            let listen = format!("127.0.0.1:{}", free_port());
            let child = Command::new(bin)
                .arg(role)
                .env("HERALD_DATABASE_URL", &db_url)
                .env("HERALD_LISTEN", &listen)
                // The receiver is on 127.0.0.1; nothing else differs from the defaults.
                .env("HERALD_ALLOW_PRIVATE_TARGETS", "127.0.0.0/8")
                .env("HERALD_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("starting herald {role}"))?;
            if matches!(*role, "all" | "producer") {
                api = format!("http://{listen}");
            }
            ready.push(format!("http://{listen}/readyz"));
            procs.push((role.to_string(), child));
        }
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        for url in ready {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                if std::time::Instant::now() > deadline {
                    bail!("{url} not ready within 60 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(Self { db_url, api, token: tokens[0].clone(), tokens, http, procs })
    }

    /// Creates an endpoint for every event type at `rx`'s `path`.
    pub async fn endpoint(&self, rx: &Receiver, path: &str) -> anyhow::Result<String> {
        self.endpoint_of(0, rx, path).await
    }

    /// [`Stack::endpoint`], for the tenant of `self.tokens[tenant]`.
    pub async fn endpoint_of(&self, tenant: usize, rx: &Receiver, path: &str) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}/v1/endpoints", self.api))
            .bearer_auth(&self.tokens[tenant])
            .json(&json!({"url": rx.url(path)}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("endpoint: {} {}", r.status(), r.text().await?);
        }
        let v: serde_json::Value = r.json().await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    pub async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|(_, c)| c.id()).collect()
    }

    /// Peak resident memory of each process so far, in MiB, by role.
    pub fn peak_rss_mib(&self) -> Vec<(String, f64)> {
        self.procs
            .iter()
            .map(|(role, c)| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", c.id())).unwrap_or_default();
                let kib: f64 = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    .unwrap_or(0.0);
                (role.clone(), kib / 1024.0)
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU seconds a process and, with `children`, its reaped children have used.
fn cpu_seconds(pid: u32, children: bool, tick: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    let field = |n: usize| f.get(n - 3).copied().unwrap_or(0.0);
    let mut t = field(14) + field(15);
    if children {
        t += field(16) + field(17);
    }
    t / tick
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// What the work between two snapshots cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub herald_cpu: f64,
    pub pg_cpu: f64,
    pub wal_bytes: f64,
    pub statements: f64,
}

pub struct Meter {
    postmaster: u32,
    tick: f64,
}

impl Meter {
    pub fn new(postmaster: u32) -> Self {
        let tick = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Self { postmaster, tick }
    }

    /// PostgreSQL's CPU: the postmaster, the backends it reaped, and those still running.
    fn pg_cpu(&self) -> f64 {
        let mut t = cpu_seconds(self.postmaster, true, self.tick);
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                    if parent_of(pid) == Some(self.postmaster) {
                        t += cpu_seconds(pid, false, self.tick);
                    }
                }
            }
        }
        t
    }

    pub async fn snapshot(&self, stack: &Stack, db: &tokio_postgres::Client) -> anyhow::Result<Snapshot> {
        let row = db
            .query_one(
                "SELECT (pg_current_wal_lsn() - '0/0')::float8, \
                        (SELECT coalesce(sum(calls), 0)::float8 FROM pg_stat_statements \
                          WHERE query NOT LIKE '%pg_current_wal_lsn%' AND query NOT LIKE '%pg_stat_statements%')",
                &[],
            )
            .await?;
        Ok(Snapshot {
            herald_cpu: stack.pids().into_iter().map(|p| cpu_seconds(p, false, self.tick)).sum(),
            pg_cpu: self.pg_cpu(),
            wal_bytes: row.get(0),
            statements: row.get(1),
        })
    }
}

impl std::ops::Sub for Snapshot {
    type Output = Snapshot;
    fn sub(self, o: Snapshot) -> Snapshot {
        Snapshot {
            herald_cpu: self.herald_cpu - o.herald_cpu,
            pg_cpu: self.pg_cpu - o.pg_cpu,
            wal_bytes: self.wal_bytes - o.wal_bytes,
            statements: self.statements - o.statements,
        }
    }
}

impl Snapshot {
    /// Per delivery: CPU ms of Herald, of PostgreSQL, WAL bytes, statements.
    pub fn per(&self, deliveries: usize) -> serde_json::Value {
        let n = deliveries.max(1) as f64;
        json!({
            "herald_cpu_ms": self.herald_cpu * 1e3 / n,
            "pg_cpu_ms": self.pg_cpu * 1e3 / n,
            "cpu_ms": (self.herald_cpu + self.pg_cpu) * 1e3 / n,
            "wal_bytes": self.wal_bytes / n,
            "statements": self.statements / n,
        })
    }
}
