//! Test support for Herald's own tests: a fresh database per test, cloned from a migrated
//! template on the PostgreSQL that `make test` starts (or `HERALD_TEST_DATABASE_URL`).
//!
//! Must not: be a dependency of anything but tests.

mod cluster;
pub mod otlp;
mod receiver;

use std::time::{Duration, Instant};

pub use cluster::PrivateCluster;
pub use receiver::{Behaviour, Received, Receiver};

use deadpool_postgres::Pool;
use herald_core::{clock, db};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;

const TEMPLATE_LOCK: i64 = 0x0074_656d_706c; // "templ"

/// A free port on 127.0.0.1 for a process to bind later (the listener is closed first). Picked
/// below the kernel's ephemeral range (32768 and up), where every receiver and client of the
/// tests gets its port: one of those can then never take the port before the process binds it.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000 on 127.0.0.1")
}

/// How many connections a [`TestDb`]'s own pool opens at most.
pub const POOL_SIZE: usize = 8;

/// A database of its own for one test, migrated.
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub pool: Pool,
}

fn admin_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "HERALD_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts a throwaway PostgreSQL"
        )
    })
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut config: tokio_postgres::Config = url.parse().expect("HERALD_TEST_DATABASE_URL parses");
    config.dbname(name);
    // Rebuild as key=value so that any URL form works.
    let mut parts = Vec::new();
    for host in config.get_hosts() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
            tokio_postgres::config::Host::Unix(p) => parts.push(format!("host={}", p.display())),
        }
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(pw) = config.get_password() {
        parts.push(format!("password={}", String::from_utf8_lossy(pw)));
    }
    parts.push(format!("dbname={name}"));
    parts.join(" ")
}

/// The template's name carries a hash of the migrations, so a changed migration makes a new one.
fn template_name() -> String {
    let mut h = Sha256::new();
    for m in db::migrations::runner().get_migrations() {
        h.update(m.to_string());
        h.update(m.checksum().to_string());
    }
    let digest = h.finalize();
    format!("herald_tpl_{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3])
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), NoTls).await.expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client
}

impl TestDb {
    pub async fn new() -> Self {
        let template = template_name();
        let admin = admin().await;
        admin.execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK]).await.unwrap();
        let exists =
            admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template]).await.unwrap().is_some();
        if !exists {
            let building = format!("{template}_building");
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building}")).await.unwrap();
            admin.batch_execute(&format!("CREATE DATABASE {building}")).await.unwrap();
            db::migrate(&with_database(&admin_url(), &building), &clock::system(), false)
                .await
                .expect("migrate the template");
            admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}")).await.unwrap();
        }
        let name =
            format!("herald_test_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        // CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template; the
        // advisory lock keeps the template's builder and the cloners apart.
        admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await.unwrap();
        admin.execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK]).await.unwrap();
        let url = with_database(&admin_url(), &name);
        let pool = db::pool(&url, POOL_SIZE).expect("pool");
        Self { url, name, pool }
    }

    pub async fn client(&self) -> deadpool_postgres::Object {
        self.pool.get().await.expect("a pooled connection")
    }

    /// Creates a tenant and returns an API token for it.
    pub async fn tenant(&self, name: &str) -> String {
        let token = herald_core::token::generate(name);
        let c = self.client().await;
        c.execute("INSERT INTO herald.tenants (tenant_id, created_at) VALUES ($1, now())", &[&name]).await.unwrap();
        c.execute(
            "INSERT INTO herald.api_tokens (tenant_id, token_hash, created_at, token_id, name) VALUES ($1, $2, now(), $3, 'test')",
            &[&name, &herald_core::token::hash(&token), &herald_core::id::TokenId::generate(chrono::Utc::now())],
        )
        .await
        .unwrap();
        token
    }

    /// Row counts of every Herald table, to show that a refused request wrote nothing.
    pub async fn row_counts(&self) -> Vec<(String, i64)> {
        let c = self.client().await;
        let mut out = Vec::new();
        for t in
            ["tenants", "api_tokens", "endpoints", "events", "pending_events", "deliveries", "attempts", "operations"]
        {
            let n: i64 = c.query_one(&format!("SELECT count(*) FROM herald.{t}"), &[]).await.unwrap().get(0);
            out.push((t.to_string(), n));
        }
        out
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub use chrono;
pub use serde_json;
