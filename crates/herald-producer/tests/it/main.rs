//! herald-producer against a real PostgreSQL: a fresh database per test (see herald-testkit).

mod api;
mod bad_input;
mod consumers;
mod group_commit;
mod links;
mod lists;
mod operations;
mod publish;
mod replay;
mod scopes;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use herald_core::clock;
use herald_core::targets::AllowList;
use herald_producer::api::{router, AppState};
use herald_testkit::TestDb;
use serde_json::Value;
use tower::ServiceExt;

pub struct App {
    pub db: TestDb,
    pub router: axum::Router,
}

impl App {
    pub async fn new() -> Self {
        Self::with_allow(AllowList::none()).await
    }

    pub async fn with_allow(allow: AllowList) -> Self {
        let db = TestDb::new().await;
        let state = AppState::new(db.pool.clone(), clock::system(), allow, 4096, herald_core::metrics::Metrics::new());
        Self { router: router(state), db }
    }

    /// Sends a request; `body` is sent as JSON when it is `Some`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }
}

/// A request without a body to `router` (another API process than an [`App`]'s).
pub async fn call_router(
    router: &axum::Router,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
