//! Operator routes over deliveries: the attempt logs, an endpoint's deliveries, a manual retry,
//! and replays (a job that a runner in the outbox-poller's processes carries out).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::id::{DeliveryId, EndpointId, EventId, Id};
use herald_core::validate::Invalid;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Row;

use super::error::{ApiError, Col};
use super::extract::{ApiJson, ApiPath, ApiQuery, Link, LinkScope, Tenant};
use super::page::{self, Listed, Page};
use super::AppState;
use crate::sql;

/// The prefix of a replay's id.
pub const REPLAY: &str = "rpl_";

/// The error classes an attempt is recorded with (herald-delivery-worker's `AttemptOutcome`):
/// what `GET /v1/endpoints/{id}/attempts?error=` takes.
pub const ERROR_CLASSES: [&str; 10] = [
    "http_status",
    "timeout",
    "connect",
    "tls",
    "request",
    "blocked_target",
    "url_policy",
    "invalid_delivery",
    "abandoned",
    "internal",
];

pub async fn attempts(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EventId>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Listed<Value>>, ApiError> {
    let page = page.request(&page::EVENT_ATTEMPTS)?;
    let client = state.pool.get().await?;
    if client.query_opt(sql::EVENT_EXISTS, &[&tenant, &id]).await?.is_none() {
        return Err(ApiError::not_found("event", &id));
    }
    let (client, tenant, id) = (&client, &tenant, &id);
    page.answer(|r| async move { r.rows(client, &sql::event_attempts(&r), &[tenant, id]).await }, attempt_json).await
}

/// `GET /v1/deliveries/{id}/attempts`: one delivery's attempts, oldest first.
pub async fn delivery_attempts(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<DeliveryId>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Listed<Value>>, ApiError> {
    let page = page.request(&page::DELIVERY_ATTEMPTS)?;
    let client = state.pool.get().await?;
    let Some(delivery) = client.query_opt(sql::DELIVERY_EVENT, &[&tenant, &id]).await? else {
        return Err(ApiError::not_found("delivery", &id));
    };
    let event: String = delivery.get("event_id");
    let (client, tenant, id, event) = (&client, &tenant, &id, &event);
    page.answer(
        |r| async move { r.rows(client, &sql::delivery_attempts(&r), &[tenant, event, id]).await },
        attempt_json,
    )
    .await
}

/// An attempt as the API shows it.
fn attempt_json(r: &Row) -> Result<Value, ApiError> {
    Ok(json!({
        "id": r.col::<String>("attempt_id")?,
        "delivery_id": r.col::<String>("delivery_id")?,
        "event_id": r.col::<String>("event_id")?,
        "attempt": r.col::<i32>("attempt")?,
        "started_at": r.col::<DateTime<Utc>>("started_at")?,
        "duration_ms": r.col::<i32>("duration_ms")?,
        "status_code": r.col::<Option<i32>>("status_code")?,
        "error": r.col::<Option<String>>("error")?,
        "response_excerpt": r.col::<Option<String>>("response_excerpt")?,
    }))
}

/// A time in a query string (`since`, `until`), as RFC 3339.
pub(super) fn query_time(name: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.map(|s| {
            DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).map_err(|_| {
                ApiError::unprocessable(
                    "invalid_time",
                    format!(
                        "{name} {s:?} is not an RFC 3339 time: write it like 2026-11-22T10:00:00Z (in a query string, an offset's + is written %2B)"
                    ),
                )
            })
        })
        .transpose()
}

/// A list's time window, `[since, until)`, either end open.
pub(super) type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `since` and `until` of a list, checked together.
pub(super) fn query_window(since: Option<&str>, until: Option<&str>) -> Result<Window, ApiError> {
    let (since, until) = (query_time("since", since)?, query_time("until", until)?);
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return Err(ApiError::unprocessable(
                "invalid_window",
                "`since` must be before `until` (the window is [since, until))",
            ));
        }
    }
    Ok((since, until))
}

/// The endpoint, if the tenant has it (a 404 otherwise).
async fn endpoint_exists(
    client: &tokio_postgres::Client,
    tenant: &herald_core::id::TenantId,
    id: &EndpointId,
) -> Result<(), ApiError> {
    match client.query_opt(&sql::get_endpoint(), &[tenant, id]).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("endpoint", id)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    state: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    before: Option<String>,
}

/// `GET /v1/endpoints/{id}/deliveries`: newest first, in one shown state if `state` says.
pub async fn endpoint_deliveries(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Listed<Value>>, ApiError> {
    const FINISHED: [&str; 3] = ["delivered", "failed", "cancelled"];
    // (its pending ones, which of those by lease, its finished ones)
    let (pending, leased, finished): (bool, Option<bool>, Vec<&str>) = match q.state.as_deref() {
        None => (true, None, FINISHED.to_vec()),
        Some("pending") => (true, Some(false), vec![]),
        Some("delivering") => (true, Some(true), vec![]),
        Some(s) if FINISHED.contains(&s) => (false, None, vec![s]),
        Some(s) => {
            return Err(ApiError::unprocessable(
                "invalid_state",
                format!("state {s:?} is unknown: use one of pending, delivering, delivered, failed, cancelled"),
            ))
        }
    };
    let page = Page { limit: q.limit, cursor: q.cursor, before: q.before }.request(&page::ENDPOINT_DELIVERIES)?;
    let mut conn = state.pool.get().await?;
    let tx = page::bounded(&mut conn, state.list_timeout).await?;
    let client = tx.client();
    endpoint_exists(client, &tenant, &id).await?;
    let now = state.clock.now();
    let (tenant, id, now, finished) = (&tenant, &id, &now, &finished);
    page.answer(
        |r| async move {
            r.rows(client, &sql::endpoint_deliveries(&r), &[tenant, id, now, &pending, &leased, finished]).await
        },
        delivery_full_json,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptsQuery {
    status_code: Option<String>,
    error: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    before: Option<String>,
}

/// A `status_code` filter: one code (`503`), or a class (`5xx`) as its lowest and highest code.
enum StatusFilter {
    Code(i32),
    Range(i32, i32),
}

fn status_filter(v: &str) -> Result<StatusFilter, ApiError> {
    let bad = || {
        ApiError::unprocessable(
            "invalid_status_code",
            format!(
                "status_code {v:?} is not a status code: use a number from 100 to 599 (503) or a class, 1xx to 5xx"
            ),
        )
    };
    let lower = v.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let c: i32 = class.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&c) || class.len() != 1 {
            return Err(bad());
        }
        return Ok(StatusFilter::Range(c * 100, c * 100 + 99));
    }
    let code: i32 = v.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&code) || v.len() != 3 {
        return Err(bad());
    }
    Ok(StatusFilter::Code(code))
}

/// `GET /v1/endpoints/{id}/attempts`: newest first, by status code or class, error class and
/// time window.
pub async fn endpoint_attempts(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
    ApiQuery(q): ApiQuery<AttemptsQuery>,
) -> Result<Json<Listed<Value>>, ApiError> {
    let (code, low, high) = match q.status_code.as_deref().map(status_filter).transpose()? {
        None => (None, None, None),
        Some(StatusFilter::Code(c)) => (Some(c), None, None),
        Some(StatusFilter::Range(l, h)) => (None, Some(l), Some(h)),
    };
    let error = q.error;
    if let Some(e) = &error {
        if !ERROR_CLASSES.contains(&e.as_str()) {
            return Err(ApiError::unprocessable(
                "invalid_error_class",
                format!("error {e:?} is not an error class: use one of {}", ERROR_CLASSES.join(", ")),
            ));
        }
    }
    let (since, until) = query_window(q.since.as_deref(), q.until.as_deref())?;
    let page = Page { limit: q.limit, cursor: q.cursor, before: q.before }.request(&page::ENDPOINT_ATTEMPTS)?;
    let mut conn = state.pool.get().await?;
    let tx = page::bounded(&mut conn, state.list_timeout).await?;
    let client = tx.client();
    endpoint_exists(client, &tenant, &id).await?;
    let (tenant, id, error) = (&tenant, &id, &error);
    let (since, until, code, low, high) = (&since, &until, &code, &low, &high);
    page.answer(
        |r| async move {
            r.rows(client, &sql::endpoint_attempts(&r), &[tenant, id, since, until, code, low, high, error]).await
        },
        attempt_json,
    )
    .await
}

pub async fn retry(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // Each statement sees the row as it is when it runs: an attempt that ends between the two
    // (in flight for the first, pending, delivered or failed for the second) is retried again,
    // so that the answer never names a state the delivery was not refused for.
    let mut tries = 0;
    let row = loop {
        if let Some(row) = tx.query_opt(herald_core::deliveries::RETRY, &[&tenant, &id, &now]).await? {
            break row;
        }
        let current: Option<String> =
            tx.query_opt(herald_core::deliveries::STATE, &[&tenant, &id, &now]).await?.map(|r| r.get("state"));
        tries += 1;
        return Err(match current.as_deref() {
            None => ApiError::not_found("delivery", &id),
            Some("pending" | "failed" | "delivered") if tries < 3 => continue,
            Some("cancelled") => ApiError::new(
                StatusCode::CONFLICT,
                "delivery_not_retryable",
                "the delivery is cancelled (its endpoint was deleted); it cannot be retried",
            ),
            Some(_) => ApiError::new(
                StatusCode::CONFLICT,
                "delivery_in_flight",
                "the delivery is being attempted right now; wait for the attempt to finish, then retry",
            ),
        });
    };
    tx.execute(herald_core::deliveries::NOTIFY_WORKERS, &[&tenant]).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": row.get::<_, String>("delivery_id"),
            "endpoint_id": row.get::<_, Option<String>>("endpoint_id"),
            "url": row.get::<_, String>("url"),
            "state": row.get::<_, String>("state"),
            "attempt_count": row.get::<_, i32>("attempt_count"),
            "next_attempt_at": row.get::<_, DateTime<Utc>>("next_attempt_at"),
            "last_status_code": row.get::<_, Option<i32>>("last_status_code"),
            "last_error": row.get::<_, Option<String>>("last_error"),
        })),
    ))
}

/// `GET /v1/deliveries/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    let Some(d) = client.query_opt(herald_core::deliveries::GET_ONE, &[&tenant, &id, &state.clock.now()]).await? else {
        return Err(ApiError::not_found("delivery", &id));
    };
    Ok(Json(delivery_full_json(&d)?))
}

/// A delivery with its event and its times, as `GET /v1/deliveries/{id}` and the lists answer it.
fn delivery_full_json(d: &Row) -> Result<Value, ApiError> {
    let mut answer = delivery_json(d)?;
    answer["event_id"] = json!(d.col::<String>("event_id")?);
    answer["created_at"] = json!(d.col::<DateTime<Utc>>("created_at")?);
    answer["updated_at"] = json!(d.col::<DateTime<Utc>>("updated_at")?);
    Ok(answer)
}

/// A delivery as the API shows it, from a row with `shown_state!`'s columns: its next attempt's
/// time only while it is `pending` or `delivering`.
pub(super) fn delivery_json(d: &tokio_postgres::Row) -> Result<Value, ApiError> {
    let shown: String = d.col("state")?;
    let next_attempt_at = match shown.as_str() {
        "pending" | "delivering" => json!(d.col::<DateTime<Utc>>("next_attempt_at")?),
        _ => Value::Null,
    };
    Ok(json!({
        "id": d.col::<String>("delivery_id")?,
        "endpoint_id": d.col::<Option<String>>("endpoint_id")?,
        "url": d.col::<String>("url")?,
        "state": shown,
        "attempt_count": d.col::<i32>("attempt_count")?,
        "next_attempt_at": next_attempt_at,
        "last_status_code": d.col::<Option<i32>>("last_status_code")?,
        "last_error": d.col::<Option<String>>("last_error")?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

/// A replay's id: `rpl_` and a ULID, always made by Herald.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayId(String);

impl Id for ReplayId {
    const KIND: &'static str = "replay";
    fn parse(s: &str) -> Result<Self, Invalid> {
        if page::issued(REPLAY, s) {
            Ok(Self(s.to_string()))
        } else {
            let shown: String = s.chars().take(64).collect();
            Err(Invalid::new(
                "not_found",
                format!("no replay {shown:?}: replay ids are `{REPLAY}` and 26 characters, as Herald gave them"),
            ))
        }
    }
    fn as_str(&self) -> &str {
        &self.0
    }
}

/// The lowest `seq` of an instant (see `herald_core::id::seq_at`).
pub(super) fn seq_floor(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().saturating_mul(1024)
}

/// The instant of a `seq`.
fn seq_time(seq: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(seq.div_euclid(1024))
}

/// A replay as the API shows it. `reached`: the events published before it are done (with
/// `since` and `until`, a progress bar); `until` once the job is done.
fn replay_json(r: &Row) -> Result<Value, ApiError> {
    let state: String = r.col("state")?;
    let (since, until): (DateTime<Utc>, DateTime<Utc>) = (r.col("since")?, r.col("until")?);
    let reached = match state.as_str() {
        "done" => until,
        _ => r.col::<Option<i64>>("after_seq")?.and_then(seq_time).map_or(since, |t| t.clamp(since, until)),
    };
    Ok(json!({
        "id": r.col::<String>("replay_id")?,
        "endpoint_id": r.col::<String>("endpoint_id")?,
        "since": since,
        "until": until,
        "state": state,
        "reached": reached,
        "events_scanned": r.col::<i64>("events_scanned")?,
        "events_matched": r.col::<i64>("events_matched")?,
        "deliveries_created": r.col::<i64>("deliveries_created")?,
        "error": r.col::<Option<String>>("error")?,
        "created_at": r.col::<DateTime<Utc>>("created_at")?,
        "updated_at": r.col::<DateTime<Utc>>("updated_at")?,
        "finished_at": r.col::<Option<DateTime<Utc>>>("finished_at")?,
    }))
}

/// `POST /v1/endpoints/{id}/replay`: a replay job, answered `running` at once; a runner of the
/// outbox-poller's processes carries it out in batches (herald-outbox-poller's `replay.rs`).
pub async fn replay(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(endpoint): ApiPath<EndpointId>,
    ApiJson(body): ApiJson<ReplayBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = state.clock.now();
    // A window reaching past now ends now: events published after the request are not replayed
    // (their deliveries are new anyway, and a replay that chased them might never end).
    let until = body.until.map_or(now, |u| u.min(now));
    if body.since >= until {
        return Err(ApiError::unprocessable(
            "invalid_window",
            "`since` must be before `until` (RFC 3339 times, e.g. 2026-11-22T10:00:00Z; `until` defaults to now)",
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // Locked: of two requests at once, the second sees the first's job.
    if tx.query_opt(&sql::lock_endpoint(), &[&tenant, &endpoint]).await?.is_none() {
        return Err(ApiError::not_found("endpoint", &endpoint));
    }
    // One at a time per endpoint: two would send the same events twice over.
    if let Some(running) = tx.query_opt(sql::RUNNING_REPLAY, &[&tenant, &endpoint]).await? {
        let running: String = running.get(0);
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replay_running",
            format!("replay {running} of this endpoint is still running: follow it with GET /v1/replays/{running}, and ask for another once it is done"),
        ));
    }
    let id = herald_core::id::new_id(REPLAY, now);
    let row = tx.query_one(sql::CREATE_REPLAY, &[&tenant, &id, &endpoint, &body.since, &until, &now]).await?;
    tx.execute(sql::NOTIFY_REPLAYS, &[&tenant]).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(replay_json(&row)?)))
}

/// `GET /v1/replays/{id}`.
pub async fn get_replay(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<ReplayId>,
) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    match client.query_opt(sql::GET_REPLAY, &[&tenant, &id.as_str()]).await? {
        Some(row) => Ok(Json(replay_json(&row)?)),
        None => Err(ApiError::not_found("replay", id.as_str())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaysQuery {
    endpoint_id: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    before: Option<String>,
}

/// `GET /v1/replays`: newest first.
pub async fn list_replays(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Link(link): Link,
    ApiQuery(q): ApiQuery<ReplaysQuery>,
) -> Result<Json<Listed<Value>>, ApiError> {
    // An id that is no endpoint's names none of this tenant's: an empty list, as for another's.
    let endpoint = q.endpoint_id;
    let state_filter = q.state;
    if let Some(s) = &state_filter {
        if !["running", "done", "failed"].contains(&s.as_str()) {
            return Err(ApiError::unprocessable(
                "invalid_state",
                format!("state {s:?} is unknown: use one of running, done, failed"),
            ));
        }
    }
    let page = Page { limit: q.limit, cursor: q.cursor, before: q.before }.request(&page::REPLAYS)?;
    let client = state.pool.get().await?;
    // A portal session held to one consumer sees the replays of that consumer's endpoints.
    let consumer = LinkScope::consumer(&link);
    let (client, tenant, endpoint, state_filter) = (&client, &tenant, &endpoint, &state_filter);
    page.answer(
        |r| async move { r.rows(client, &sql::list_replays(&r), &[tenant, endpoint, state_filter, &consumer]).await },
        replay_json,
    )
    .await
}
