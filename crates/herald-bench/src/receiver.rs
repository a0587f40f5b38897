//! The receiving end: a minimal HTTP/1.1 server on 127.0.0.1 that answers 200 at once and notes
//! when each `webhook-id` first arrived at each path. `/hang` accepts and never answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;

#[derive(Default)]
struct Seen {
    /// (path, webhook-id) -> first arrival.
    first: HashMap<(String, String), Instant>,
    /// Every request, duplicates included, in arrival order.
    all: Vec<(String, Instant)>,
}

impl Seen {
    /// Distinct webhook ids received, all paths together.
    fn distinct(&self) -> usize {
        self.first.len()
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    seen: Arc<Mutex<Seen>>,
    pub base: String,
}

async fn hook(State(rx): State<Receiver>, uri: Uri, headers: HeaderMap) -> StatusCode {
    let path = uri.path().to_string();
    if path == "/hang" {
        std::future::pending::<()>().await;
    }
    let now = Instant::now();
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut seen = rx.seen.lock().unwrap();
    seen.all.push((path.clone(), now));
    seen.first.entry((path, id)).or_insert(now);
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx = Receiver { base: format!("http://{}", listener.local_addr().unwrap()), ..Default::default() };
        let app = Router::new().fallback(hook).with_state(rx.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        rx
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Requests received at `path`, duplicates included.
    pub fn count(&self, path: &str) -> usize {
        self.seen.lock().unwrap().all.iter().filter(|(p, _)| p == path).count()
    }

    /// Distinct webhook ids received at `path`.
    pub fn distinct(&self, path: &str) -> usize {
        self.seen.lock().unwrap().first.keys().filter(|(p, _)| p == path).count()
    }

    pub fn first(&self, path: &str, id: &str) -> Option<Instant> {
        self.seen.lock().unwrap().first.get(&(path.to_string(), id.to_string())).copied()
    }

    /// First arrivals at `path`, oldest first.
    pub fn arrivals(&self, path: &str) -> Vec<Instant> {
        let mut v: Vec<Instant> =
            self.seen.lock().unwrap().first.iter().filter(|((p, _), _)| p == path).map(|(_, t)| *t).collect();
        v.sort();
        v
    }

    /// Waits until `n` distinct ids arrived, all paths together; false on timeout.
    pub async fn wait_total(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.seen.lock().unwrap().distinct() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Waits until `n` distinct ids arrived at each of `paths`; false on timeout.
    pub async fn wait(&self, paths: &[String], n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if paths.iter().all(|p| self.distinct(p) >= n) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
