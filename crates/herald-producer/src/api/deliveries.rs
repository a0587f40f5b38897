//! Operator routes over deliveries: the attempt log, a manual retry, a replay.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::id::{DeliveryId, EndpointId, EventId};
use herald_core::validate::type_matches;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, Col};
use super::extract::{page_of, ApiJson, ApiPath, ApiQuery, Page, Tenant};
use super::AppState;
use crate::sql;

/// A replay covers at most this many events; a larger window is refused with a hint.
const MAX_REPLAY: i64 = 10_000;

pub async fn attempts(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EventId>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (limit, cursor) = page.checked()?;
    let client = state.pool.get().await?;
    if client.query_opt(sql::EVENT_EXISTS, &[&tenant, &id]).await?.is_none() {
        return Err(ApiError::not_found("event", &id));
    }
    let rows = client.query(sql::EVENT_ATTEMPTS, &[&tenant, &id, &cursor, &(limit + 1)]).await?;
    Ok(page_of(&rows, limit, "attempt_id", |r| {
        json!({
                "id": r.get::<_, String>("attempt_id"),
                "delivery_id": r.get::<_, String>("delivery_id"),
                "attempt": r.get::<_, i32>("attempt"),
                "started_at": r.get::<_, DateTime<Utc>>("started_at"),
                "duration_ms": r.get::<_, i32>("duration_ms"),
                "status_code": r.get::<_, Option<i32>>("status_code"),
                "error": r.get::<_, Option<String>>("error"),
                "response_excerpt": r.get::<_, Option<String>>("response_excerpt"),
        })
    }))
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
    let mut answer = delivery_json(&d)?;
    answer["event_id"] = json!(d.col::<String>("event_id")?);
    answer["created_at"] = json!(d.col::<DateTime<Utc>>("created_at")?);
    answer["updated_at"] = json!(d.col::<DateTime<Utc>>("updated_at")?);
    Ok(Json(answer))
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

/// The lowest `seq` of an instant (see `herald_core::id::seq_at`).
fn seq_floor(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros().saturating_mul(1024)
}

pub async fn replay(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(endpoint): ApiPath<EndpointId>,
    ApiJson(body): ApiJson<ReplayBody>,
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    let until = body.until.unwrap_or(now);
    if body.since >= until {
        return Err(ApiError::unprocessable(
            "invalid_window",
            "`since` must be before `until` (RFC 3339 times, e.g. 2026-11-22T10:00:00Z; `until` defaults to now)",
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(ep) = tx.query_opt(&sql::share_endpoint(), &[&tenant, &endpoint]).await? else {
        return Err(ApiError::not_found("endpoint", &endpoint));
    };
    let patterns: Vec<String> = ep.get("event_types");
    let url: String = ep.get("url");
    let rows = tx
        .query(sql::EVENTS_IN_WINDOW, &[&tenant, &seq_floor(body.since), &seq_floor(until), &(MAX_REPLAY + 1)])
        .await?;
    if rows.len() as i64 > MAX_REPLAY {
        return Err(ApiError::unprocessable(
            "window_too_large",
            format!("the window holds more than {MAX_REPLAY} events; replay it in smaller windows"),
        ));
    }
    let fifo = ep.get::<_, String>("ordering") == "fifo";
    type Replayed = (EventId, i64, Option<chrono::DateTime<chrono::Utc>>);
    let events: Vec<Replayed> = rows
        .iter()
        .filter(|r| r.try_get::<_, String>(1).is_ok_and(|t| type_matches(&patterns, &t)))
        .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(2).ok()?, r.try_get(3).ok()?)))
        .collect();
    // Fan-out's own insert: new deliveries, and finished ones made pending again.
    let again = herald_core::deliveries::New {
        ids: events.iter().map(|_| DeliveryId::generate(now)).collect(),
        event_ids: events.iter().map(|(id, _, _)| id).collect(),
        targets: vec![herald_core::deliveries::target_of(Some(&endpoint)); events.len()],
        endpoint_ids: vec![Some(&endpoint); events.len()],
        urls: vec![url.as_str(); events.len()],
        // A scheduled event is not sent before its time, replayed or not.
        dues: events.iter().map(|(_, _, due)| *due).collect(),
        seqs: events.iter().map(|(_, seq, _)| fifo.then_some(*seq)).collect(),
    };
    let scheduled = herald_core::deliveries::insert(&tx, &tenant, &again, now, true).await?;
    tx.commit().await?;
    Ok(Json(json!({"scheduled": scheduled})))
}
