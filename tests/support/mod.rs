//! Drives the real `herald` binary: a process per test against its own database.

#![allow(dead_code)] // each test file uses a different part of this module

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_testkit::{eventually, TestDb};

pub const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// A free port for a Herald process (see `herald_testkit::free_port`).
pub fn free_port() -> u16 {
    herald_testkit::free_port()
}

/// A running `herald <command>` process, killed when dropped.
pub struct Herald {
    pub child: Child,
    pub base: String,
}

impl Herald {
    pub async fn start(db: &TestDb, command: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with(db, command, env, true).await
    }

    /// Starts `herald <command>`; `allow_loopback` sets HERALD_ALLOW_PRIVATE_TARGETS for 127.0.0.0/8.
    pub async fn start_with(db: &TestDb, command: &str, env: &[(&str, &str)], allow_loopback: bool) -> Self {
        Self::start_url(&db.url, command, env, allow_loopback).await
    }

    pub async fn start_url(db_url: &str, command: &str, env: &[(&str, &str)], allow_loopback: bool) -> Self {
        Self::spawn(db_url, command, env, allow_loopback, None).await
    }

    /// Starts `herald <command>` with its standard output and error written to `log`.
    pub async fn start_logged(db: &TestDb, command: &str, env: &[(&str, &str)], log: &std::path::Path) -> Self {
        Self::spawn(&db.url, command, env, true, Some(log)).await
    }

    async fn spawn(
        db_url: &str,
        command: &str,
        env: &[(&str, &str)],
        allow_loopback: bool,
        log: Option<&std::path::Path>,
    ) -> Self {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg(command)
            .env("HERALD_DATABASE_URL", db_url)
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_ALLOW_PRIVATE_TARGETS", if allow_loopback { "127.0.0.0/8,::1/128" } else { "" })
            .env("HERALD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("HERALD_TEST_SHOW_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() });
        // HERALD_TEST_LOG_DIR (set by make test-citus): every process's log kept there, for
        // the script to show when the run fails.
        let kept = std::env::var_os("HERALD_TEST_LOG_DIR")
            .map(|dir| std::path::PathBuf::from(dir).join(format!("{command}-{port}.log")));
        if let Some(path) = log.or(kept.as_deref()) {
            let file = std::fs::File::create(path).expect("create the log file");
            cmd.stdout(file.try_clone().unwrap()).stderr(file);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start herald");
        let herald = Self { child, base: format!("http://127.0.0.1:{port}") };
        let url = format!("{}/readyz", herald.base);
        eventually("herald to be ready", Duration::from_secs(60), || {
            let url = url.clone();
            async move { reqwest::get(&url).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        herald
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "herald did not exit within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `herald` to completion and returns its standard output.
pub fn herald_output(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).env("HERALD_DATABASE_URL", &db.url).output().expect("run herald");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A tenant's view of a running Herald's API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self { base: base.to_string(), token: token.to_string(), http: reqwest::Client::new() }
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r =
            self.http.patch(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Creates an endpoint and returns (id, secret).
    pub async fn endpoint(&self, body: serde_json::Value) -> (String, String) {
        let (s, v) = self.post("/v1/endpoints", body).await;
        assert_eq!(s, 201, "{v}");
        (v["id"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string())
    }

    /// Publishes `body` again and again until Herald accepts it (after a fault: the same id is
    /// stored once); answers the event's id.
    pub async fn publish_when_accepted(&self, body: serde_json::Value, timeout: Duration) -> String {
        eventually("the publish to be accepted", timeout, || async {
            let (s, v) = self.post("/v1/events", body.clone()).await;
            (s == 202 || s == 200).then(|| v["id"].as_str().unwrap().to_string())
        })
        .await
    }

    pub async fn publish(&self, body: serde_json::Value) -> String {
        let (s, v) = self.post("/v1/events", body).await;
        assert!(s == 202 || s == 200, "{s}: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Makes a link (`POST /v1/links`); answers its id and its URL (`/inbox#hrldl_...` or
    /// `/portal#hrldl_...`), which starts with `/{kind}#hrldl_`.
    pub async fn link(&self, body: serde_json::Value) -> (String, String) {
        let (s, v) = self.post("/v1/links", body).await;
        assert_eq!(s, 201, "{v}");
        let url = v["url"].as_str().unwrap().to_string();
        assert!(url.starts_with(&format!("/{}#hrldl_", v["kind"].as_str().unwrap())), "{url}");
        (v["id"].as_str().unwrap().to_string(), url)
    }

    /// What `POST /v1/sessions` answers for a link's credential (the fragment of its URL).
    pub async fn exchange(&self, url: &str) -> u16 {
        let credential = url.split_once('#').unwrap().1;
        let body = serde_json::json!({ "credential": credential });
        let r = self.http.post(format!("{}/v1/sessions", self.base)).json(&body).send().await.unwrap();
        r.status().as_u16()
    }

    /// Waits until the event's delivery to `endpoint_id` (None: the callback) is in `state`.
    pub async fn wait_delivery(
        &self,
        event: &str,
        endpoint_id: Option<&str>,
        state: &str,
        timeout: Duration,
    ) -> serde_json::Value {
        eventually(&format!("event {event} delivery to {endpoint_id:?} to be {state}"), timeout, || async {
            let (_, v) = self.get(&format!("/v1/events/{event}")).await;
            v["deliveries"].as_array().and_then(|ds| {
                ds.iter().find(|d| d["endpoint_id"].as_str() == endpoint_id && d["state"] == state).cloned()
            })
        })
        .await
    }
}

/// The Chromium the page tests drive (scripts/browser-deps.sh installs what is missing: Debian's
/// chromium, and playwright-core and axe-core from npm).
pub fn chromium() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let deps =
        std::process::Command::new("bash").arg(format!("{root}/scripts/browser-deps.sh")).output().expect("bash");
    assert!(deps.status.success(), "browser dependencies: {}", String::from_utf8_lossy(&deps.stderr));
    String::from_utf8_lossy(&deps.stdout).lines().last().unwrap_or_default().trim().to_string()
}

/// A tenant `acme` on its own database, `herald all`, and acme's view of the API.
pub async fn herald_all(env: &[(&str, &str)]) -> (TestDb, Herald, Api) {
    let db = TestDb::new().await;
    let token = db.tenant("acme").await;
    let herald = Herald::start(&db, "all", env).await;
    let api = Api::new(&herald.base, &token);
    (db, herald, api)
}

/// Reads one HTTP/1.1 request from a raw receiver's connection: its head, then as many body
/// bytes as its `content-length` says (or until the peer stops sending).
pub async fn read_request(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = s.read(&mut buf).await {
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if got.len() >= end + 4 + len {
            break;
        }
    }
    got
}

/// Short times for tests: the contract's defaults are checked in their own test.
pub const FAST: &[(&str, &str)] = &[
    ("HERALD_RETRY_SCHEDULE", "200ms,400ms"),
    ("HERALD_ATTEMPT_TIMEOUT", "1s"),
    ("HERALD_CONNECT_TIMEOUT", "1s"),
    ("HERALD_LEASE", "3s"),
    ("HERALD_POLL_INTERVAL", "100ms"),
    ("HERALD_SHUTDOWN_GRACE", "5s"),
];

/// `FAST` with some settings replaced or added.
pub fn fast_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<(&str, &str)> = FAST.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).cloned().collect();
    v.extend_from_slice(extra);
    v
}
