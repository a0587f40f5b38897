//! The HTTP API (contract section 4): JSON in and out, under `/v1`, one tenant per token.

mod admin;
mod deliveries;
mod endpoints;
pub mod error;
mod events;
pub mod extract;
mod health;
mod inbox;
mod links;
mod operations;
pub mod page;
mod pages;
mod portal;
pub mod tenant;
mod tokens;

use std::panic::AssertUnwindSafe;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use deadpool_postgres::Pool;
use futures_util::FutureExt;
use std::sync::Arc;

use herald_core::clock::SharedClock;
use herald_core::metrics::Metrics;
use herald_core::targets::AllowList;

pub use error::ApiError;
use health::ops_router;

/// `/healthz`, `/readyz` and `/metrics` alone, for processes that serve no `/v1` (poller, worker).
pub fn ops_only(pool: Pool, metrics: Arc<Metrics>) -> Router {
    ops_router(pool, metrics.clone())
        .route_layer(axum::middleware::from_fn(mark_route))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(metrics, catch_panic))
}

/// The route pattern a request matched, handed from routing to [`observe`] in the response.
#[derive(Clone)]
struct Route(String);

async fn mark_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_string());
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Counts and times every request by route pattern (`unmatched` for none), method and status,
/// and logs it at debug level (the access log: no query string, no headers, no body). The
/// server puts it outermost, outside the request timeout, so that a 408 is counted too.
pub async fn observe(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    use axum::http::Method;
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            req.method().as_str().to_string()
        }
        _ => "other".to_string(),
    };
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let took = started.elapsed();
    let route = response.extensions().get::<Route>().map_or("unmatched", |r| r.0.as_str());
    let status = response.status().as_u16();
    metrics.http_request(route, &method, status, took);
    tracing::debug!(%method, route, status, ms = took.as_secs_f64() * 1e3, "http request");
    response
}

/// A handler that panics answers a 500 in the contract's shape, where hyper would drop the
/// connection without an answer; the panic is logged with the route and counted.
async fn catch_panic(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = format!("{} {}", req.method(), req.uri().path());
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(payload) => {
            metrics.panicked("api");
            let said = herald_core::panic::message(&*payload);
            ApiError::internal(format!("a panic while answering {route}: {said}")).into_response()
        }
    }
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: Pool,
    pub clock: SharedClock,
    /// Non-public target addresses that endpoints may use (HERALD_ALLOW_PRIVATE_TARGETS).
    pub allow: AllowList,
    /// Largest request body accepted (HERALD_MAX_PAYLOAD_BYTES).
    pub max_payload_bytes: usize,
    pub metrics: Arc<Metrics>,
    /// `POST /v1/events` goes through it: group commit.
    pub publisher: crate::Publisher,
    /// Tokens seen lately (see [`extract::TokenCache`]).
    pub tokens: Arc<extract::TokenCache>,
    /// How long a list's statements may run (HERALD_LIST_TIMEOUT; [`page::bounded`]).
    pub list_timeout: std::time::Duration,
}

impl AppState {
    /// Whether `tenant`'s URL policy lets `url` be set as an endpoint or a callback.
    pub async fn check_url(
        &self,
        tenant: &herald_core::id::TenantId,
        field: &str,
        url: &url::Url,
    ) -> Result<(), ApiError> {
        let client = self.pool.get().await?;
        let settings = herald_core::policy::TenantSettings::load(&client, tenant).await?.unwrap_or_default();
        settings.permits(field, url)?;
        Ok(())
    }

    /// Listens for revoked tokens and disabled tenants, so that the token cache may be used
    /// (until this runs, every request looks its token up).
    pub fn watch_tokens(
        &self,
        url: String,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (cache, metrics) = (self.tokens.clone(), self.metrics.clone());
        async move {
            let Some(wake) = cache.wake() else { return };
            let channels = vec![extract::TokenCache::CHANNEL.to_string()];
            let listen = herald_core::listen::listen(url, channels, wake, metrics, shutdown.clone());
            tokio::join!(listen, cache.watch(shutdown));
        }
    }

    /// The state of an API process; starts its publisher's writers.
    pub fn new(
        pool: Pool,
        clock: SharedClock,
        allow: AllowList,
        max_payload_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let publisher = crate::Publisher::start(pool.clone(), clock.clone(), metrics.clone());
        let tokens = Arc::new(extract::TokenCache::listening(herald_core::listen::Wake::new()));
        Self { pool, clock, allow, max_payload_bytes, metrics, publisher, tokens, list_timeout: page::LIST_TIMEOUT }
    }
}

/// `/v1` and the operator routes (`/healthz`, `/readyz`, `/metrics`).
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/tenant", get(tenant::get).patch(tenant::patch))
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/links", post(links::create).get(links::list))
        .route("/links/{id}", axum::routing::delete(links::revoke))
        .route("/sessions", post(links::exchange))
        .route("/sessions/current", get(links::current).delete(links::end))
        .route("/admin/tenants", post(admin::create).get(admin::list))
        .route("/admin/tenants/{id}", get(admin::get_one))
        .route("/admin/tenants/{id}/disable", post(admin::disable))
        .route("/admin/tenants/{id}/enable", post(admin::enable))
        .route("/admin/tenants/{id}/tokens", post(admin::issue_token))
        .route("/events", post(events::publish).get(events::list))
        .route("/events/{id}", get(events::get_one))
        .route("/events/{id}/attempts", get(deliveries::attempts))
        .route("/deliveries/{id}", get(deliveries::get_one))
        .route("/deliveries/{id}/attempts", get(deliveries::delivery_attempts))
        .route("/deliveries/{id}/retry", post(deliveries::retry))
        .route("/endpoints/{id}/replay", post(deliveries::replay))
        .route("/endpoints/{id}/deliveries", get(deliveries::endpoint_deliveries))
        .route("/endpoints/{id}/attempts", get(deliveries::endpoint_attempts))
        .route("/endpoints/{id}/stats", get(endpoints::stats))
        .route("/replays", get(deliveries::list_replays))
        .route("/replays/{id}", get(deliveries::get_replay))
        .route("/endpoints", post(endpoints::create).get(endpoints::list))
        .route("/endpoints/{id}", get(endpoints::get_one).patch(endpoints::update).delete(endpoints::delete))
        .route("/approvals", post(operations::create_approval).get(operations::list_approvals))
        .route("/approvals/{call_id}", get(operations::get_approval))
        .route("/approvals/{call_id}/respond", post(operations::respond_approval))
        .route("/human_contacts", post(operations::create_human_contact).get(operations::list_human_contacts))
        .route("/human_contacts/{call_id}", get(operations::get_human_contact))
        .route("/human_contacts/{call_id}/respond", post(operations::respond_human_contact))
        .route("/endpoints/{id}/rotate-secret", post(endpoints::rotate_secret))
        .route("/endpoints/{id}/test", post(endpoints::test))
        .route("/endpoints/{id}/enable", post(endpoints::enable))
        .route("/endpoints/{id}/disable", post(endpoints::disable))
        .route_layer(axum::middleware::from_fn(mark_route))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method);
    Router::new()
        .nest("/v1", v1)
        .layer(DefaultBodyLimit::max(state.max_payload_bytes))
        .with_state(state.clone())
        .merge(pages::router().route_layer(axum::middleware::from_fn(mark_route)))
        .merge(ops_router(state.pool, state.metrics.clone()).route_layer(axum::middleware::from_fn(mark_route)))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(state.metrics, catch_panic))
}
