//! A real HTTP receiver on 127.0.0.1 whose answers a test can change while it runs: succeed,
//! fail with a status (optionally with Retry-After), hang, or answer slowly. It records every
//! request it gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with a small body.
    Ok,
    /// This status, with an optional Retry-After value.
    Status(u16, Option<String>),
    /// Never answers (until the client gives up).
    Hang,
    /// Answers 200 after this long.
    Slow(Duration),
    /// This status and body, byte for byte.
    Raw(u16, &'static [u8]),
    /// 302 to this location.
    Redirect(String),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// The query string as it arrived (without `?`), or empty.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// `webhook-id type` of a request, for failure messages.
    pub fn describe(&self) -> String {
        let kind = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string))
            .unwrap_or_default();
        format!("{} {kind}", self.header("webhook-id").unwrap_or("-"))
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Received>>,
    behaviour: Mutex<HashMap<String, Behaviour>>,
    in_flight: Mutex<HashMap<String, (usize, usize)>>, // path -> (now, max)
}

pub struct Receiver {
    pub base: String,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    shared.requests.lock().unwrap().push(Received { path: path.clone(), query, headers, body, at: Instant::now() });
    let behaviour = shared.behaviour.lock().unwrap().get(&path).cloned().unwrap_or(Behaviour::Ok);
    {
        let mut f = shared.in_flight.lock().unwrap();
        let e = f.entry(path.clone()).or_default();
        e.0 += 1;
        e.1 = e.1.max(e.0);
    }
    let response = match behaviour {
        Behaviour::Ok => (StatusCode::OK, "ok").into_response(),
        Behaviour::Status(code, retry_after) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), format!("answered {code} on purpose")).into_response();
            if let Some(v) = retry_after {
                r.headers_mut().insert("retry-after", v.parse().unwrap());
            }
            r
        }
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Behaviour::Raw(code, body) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
        Behaviour::Redirect(to) => (StatusCode::FOUND, [("location", to)], "moved").into_response(),
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "ok, slowly").into_response()
        }
    };
    shared.in_flight.lock().unwrap().entry(path).or_default().0 -= 1;
    response
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, shared, _server: server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn set(&self, path: &str, behaviour: Behaviour) {
        self.shared.behaviour.lock().unwrap().insert(path.to_string(), behaviour);
    }

    pub fn requests(&self, path: &str) -> Vec<Received> {
        self.shared.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.shared.requests.lock().unwrap().iter().filter(|r| r.path == path).count()
    }

    /// The most requests to `path` that were being answered at the same time.
    pub fn max_concurrent(&self, path: &str) -> usize {
        self.shared.in_flight.lock().unwrap().get(path).map(|e| e.1).unwrap_or(0)
    }

    /// Waits until `path` has had at least `n` requests; returns them. On timeout the panic
    /// names what did come (each request's `webhook-id` and `type`), so a failure says which
    /// one is missing.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.requests(path);
            if r.len() >= n {
                return r;
            }
            if Instant::now() > deadline {
                let came: Vec<String> = r.iter().map(Received::describe).collect();
                panic!("timed out after {timeout:?} waiting for {n} requests to {path}; {} came: {came:?}", r.len());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
