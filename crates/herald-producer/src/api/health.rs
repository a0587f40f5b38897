//! `/healthz`, `/readyz` and `/metrics`: served by every Herald process, with or without `/v1`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

use deadpool_postgres::Pool;
use herald_core::metrics::Metrics;
use serde_json::json;

/// The operator routes alone, for processes that serve no `/v1` (poller, worker).
pub fn ops_router(pool: Pool, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state((pool, metrics))
}

async fn readyz(State((pool, _)): State<(Pool, Arc<Metrics>)>) -> impl IntoResponse {
    let not_ready =
        |why: String| (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": {"code": "not_ready", "message": why}})));
    let client = match pool.get().await {
        Ok(c) => c,
        Err(e) => return not_ready(format!("database unreachable: {e}")),
    };
    match herald_core::db::migrations_current(&client).await {
        Ok(true) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(false) => not_ready("database migrations are not current: run `herald migrate`".into()),
        Err(e) => not_ready(format!("database check failed: {e}")),
    }
}

async fn render_metrics(State((pool, metrics)): State<(Pool, Arc<Metrics>)>) -> impl IntoResponse {
    let status = pool.status();
    let mut body = format!(
        "# HELP herald_build_info Herald's version.\n# TYPE herald_build_info gauge\nherald_build_info{{version=\"{}\"}} 1\n\
         # HELP herald_db_pool_connections Database connections open in this process's pool.\n# TYPE herald_db_pool_connections gauge\nherald_db_pool_connections {}\n\
         # HELP herald_db_pool_available Idle database connections in this process's pool.\n# TYPE herald_db_pool_available gauge\nherald_db_pool_available {}\n",
        env!("CARGO_PKG_VERSION"),
        status.size,
        status.available,
    );
    body.push_str(&metrics.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
