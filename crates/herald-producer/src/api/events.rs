//! `POST /v1/events` and `GET /v1/events/{id}`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_core::validate::{self, Invalid};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Tenant};
use super::AppState;
use crate::{sql, NewEvent};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
    callback_url: Option<String>,
    callback_secret: Option<String>,
    retry_schedule: Option<Vec<String>>,
}

/// A W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`); anything else is ignored, as the
/// specification asks of a malformed header.
fn traceparent(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("traceparent")?.to_str().ok()?.trim();
    validate::traceparent(v).then(|| v.to_string())
}

pub async fn publish(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Invalid::new("invalid_event_id", "the Idempotency-Key header must be visible ASCII"))?
                .to_string(),
        ),
    };
    let id = match (body.id, key) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::unprocessable(
                "id_mismatch",
                "the body's `id` and the Idempotency-Key header differ: send one, or the same value in both",
            ))
        }
        (a, b) => a.or(b),
    };
    if let Some(url) = &body.callback_url {
        validate::target_url("callback_url", url, &state.allow)?;
    }
    let callback_secret =
        body.callback_secret.as_deref().map(|s| validate::secret("callback_secret", s)).transpose()?;
    let retry_schedule = body.retry_schedule.as_deref().map(validate::retry_schedule).transpose()?;
    let event = NewEvent {
        id,
        event_type: body.event_type,
        data: body.data,
        callback_url: body.callback_url,
        callback_secret,
        retry_schedule,
        traceparent: traceparent(&headers),
    };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let published = crate::publish(&tx, &tenant, &event, state.clock.now()).await?;
    tx.commit().await?;
    if !published.duplicate {
        state.metrics.events_published.inc();
    }
    let mut answer = json!({"id": published.id, "created_at": published.created_at, "duplicate": published.duplicate});
    if let Some(secret) = published.generated_callback_secret {
        answer["callback_secret"] = Value::String(secret);
    }
    let status = if published.duplicate { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(answer)))
}

pub async fn get_one(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath,
) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    let Some(event) = client.query_opt(sql::GET_EVENT, &[&tenant, &id]).await? else {
        return Err(ApiError::not_found("event", &id));
    };
    let deliveries: Vec<Value> = client
        .query(sql::EVENT_DELIVERIES, &[&tenant, &id])
        .await?
        .iter()
        .map(|d| {
            json!({
                "id": d.get::<_, String>("delivery_id"),
                "endpoint_id": d.get::<_, Option<String>>("endpoint_id"),
                "url": d.get::<_, String>("url"),
                "state": d.get::<_, String>("state"),
                "attempt_count": d.get::<_, i32>("attempt_count"),
                "next_attempt_at": match d.get::<_, String>("state").as_str() {
                    "pending" | "delivering" => json!(d.get::<_, chrono::DateTime<chrono::Utc>>("next_attempt_at")),
                    _ => Value::Null,
                },
                "last_status_code": d.get::<_, Option<i32>>("last_status_code"),
                "last_error": d.get::<_, Option<String>>("last_error"),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": event.get::<_, String>("event_id"),
        "type": event.get::<_, String>("event_type"),
        "created_at": event.get::<_, chrono::DateTime<chrono::Utc>>("created_at"),
        "data": event.get::<_, Value>("data"),
        "callback_url": event.get::<_, Option<String>>("callback_url"),
        "deliveries": deliveries,
    })))
}
