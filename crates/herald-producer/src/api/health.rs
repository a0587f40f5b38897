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
    metrics.watch_pool(&pool);
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

/// OpenMetrics for a client that asks for it (Prometheus does), else the Prometheus text
/// format (curl, promtool): the same metrics either way.
async fn render_metrics(
    State((_, metrics)): State<(Pool, Arc<Metrics>)>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let open = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
    if open {
        ([(header::CONTENT_TYPE, herald_core::metrics::CONTENT_TYPE)], metrics.render())
    } else {
        ([(header::CONTENT_TYPE, herald_core::metrics::TEXT_CONTENT_TYPE)], metrics.render_text())
    }
}
