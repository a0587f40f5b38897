//! `POST /v1/events`, `GET /v1/events` and `GET /v1/events/{id}`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_core::config::RetrySchedule;
use herald_core::data::EventData;
use herald_core::dialect::PayloadFormat;
use herald_core::id::{EventId, TenantId};
use herald_core::trace::{self, TraceContext};
use herald_core::validate::{self, Invalid};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tracing::Instrument;

use super::error::{ApiError, Col};
use super::extract::{ApiJson, ApiPath, ApiQuery, Tenant};
use super::page::{self, Listed, Page};
use super::AppState;
use crate::{sql, NewEvent};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    id: Option<String>,
    #[serde(rename = "type")]
    event_type: String,
    /// Kept as sent: checked by `EventData`, never re-serialised.
    data: Box<RawValue>,
    callback_url: Option<String>,
    callback_secret: Option<String>,
    retry_schedule: Option<Vec<String>>,
    /// RFC 3339; nothing is sent before it.
    deliver_at: Option<String>,
    callback_payload_format: Option<String>,
    /// The customer it is for (only that consumer's endpoints, and the tenant's own, get it).
    consumer: Option<String>,
}

/// `deliver_at` as RFC 3339.
fn deliver_at(v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, Invalid> {
    use chrono::Datelike;
    v.map(|s| {
        let bad = || {
            Invalid::new(
                "invalid_deliver_at",
                format!(
                    "deliver_at {s:?} is not an RFC 3339 time from the year 1 on: write it like 2026-12-24T09:00:00Z"
                ),
            )
        };
        // A year before 1 in UTC could not be written back in RFC 3339.
        chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).ok().filter(|t| t.year() >= 1).ok_or_else(bad)
    })
    .transpose()
}

/// A header as text, if it is there; one that is not visible ASCII is refused.
fn text_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, Invalid> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_string())
                .map_err(|_| Invalid::new("invalid_header", format!("the {name} header must be visible ASCII")))
        })
        .transpose()
}

/// The request's W3C trace context; a malformed header is ignored, as the specification asks
/// (and a `tracestate` without a `traceparent` means nothing).
fn trace_context(headers: &HeaderMap) -> TraceContext {
    // Several tracestate fields are one list (W3C): joined with commas.
    let header = |name: &str, valid: fn(&str) -> bool| {
        let fields: Option<Vec<&str>> = headers.get_all(name).iter().map(|v| v.to_str().ok().map(str::trim)).collect();
        let v = fields?.join(",");
        (!v.is_empty() && valid(&v)).then_some(v)
    };
    let traceparent = header("traceparent", validate::traceparent);
    let tracestate = traceparent.as_ref().and_then(|_| header("tracestate", validate::tracestate));
    TraceContext::new(traceparent, tracestate)
}

/// The span of a publish, continuing the publisher's trace; the event keeps its context, so
/// that fan-out and attempts continue it in turn.
fn publish_span(tenant: &TenantId, from: &TraceContext) -> tracing::Span {
    if !trace::on() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("herald.publish", otel.kind = "server", herald.tenant = %tenant,
        herald.event_type = tracing::field::Empty, herald.event_id = tracing::field::Empty,
        otel.status_code = tracing::field::Empty, error.type = tracing::field::Empty);
    from.parent_of(&span);
    span
}

pub async fn publish(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let from = trace_context(&headers);
    let span = publish_span(&tenant, &from);
    let answer = publish_in(state, tenant, &headers, body, from.from_within(&span)).instrument(span.clone()).await;
    if let Err(e) = &answer {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", e.code);
    }
    answer
}

async fn publish_in(
    state: AppState,
    tenant: TenantId,
    headers: &HeaderMap,
    body: PublishBody,
    trace: TraceContext,
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
    let id = id.as_deref().map(EventId::parse).transpose()?;
    // Agent platforms send a run's callback in headers: taken when the body names none.
    let callback_url = match body.callback_url {
        Some(url) => Some(url),
        None => text_header(headers, "x-callback-url")?,
    };
    let callback_secret = match body.callback_secret {
        Some(s) => Some(s),
        None => text_header(headers, "x-callback-secret")?,
    };
    if let Some(url) = &callback_url {
        let parsed = validate::target_url("callback_url", url, &state.allow)?;
        state.check_url(&tenant, "callback_url", &parsed).await?;
    }
    let callback_secret = callback_secret.as_deref().map(|s| validate::secret("callback_secret", s)).transpose()?;
    let deliver_at = deliver_at(body.deliver_at.as_deref())?;
    crate::publish::check_deliver_at(deliver_at, state.clock.now())?;
    let retry_schedule = body.retry_schedule.as_deref().map(RetrySchedule::parse).transpose()?;
    let event = NewEvent {
        id,
        event_type: body.event_type,
        data: EventData::from_raw(body.data)?,
        callback_url,
        callback_secret,
        retry_schedule,
        traceparent: trace.traceparent,
        tracestate: trace.tracestate,
        deliver_at,
        callback_payload_format: body.callback_payload_format.as_deref().map(PayloadFormat::parse).transpose()?,
        consumer: body.consumer,
    };
    event.check()?;
    tracing::Span::current().record("herald.event_type", event.event_type.as_str());
    let published = state.publisher.publish(&tenant, event, state.clock.now()).await?;
    tracing::Span::current().record("herald.event_id", published.id.as_str());
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
    ApiPath(id): ApiPath<EventId>,
) -> Result<Json<EventAnswer>, ApiError> {
    let client = state.pool.get().await?;
    let Some(event) = client.query_opt(sql::GET_EVENT, &[&tenant, &id]).await? else {
        return Err(ApiError::not_found("event", &id));
    };
    let mut deliveries = Vec::new();
    for d in client.query(herald_core::deliveries::FOR_EVENT, &[&tenant, &id, &state.clock.now()]).await? {
        deliveries.push(super::deliveries::delivery_json(&d)?);
    }
    // The data goes out as the text that was stored: a serde_json::Value would rewrite numbers.
    let data = RawValue::from_string(event.col("data")?).map_err(ApiError::internal)?;
    Ok(Json(EventAnswer {
        id: event.col("event_id")?,
        event_type: event.col("event_type")?,
        created_at: event.col("created_at")?,
        data,
        callback_url: event.col("callback_url")?,
        deliver_at: event.col("deliver_at")?,
        consumer: event.col("consumer")?,
        deliveries,
        fan_out_error: event.col("fan_out_error")?,
    }))
}

/// An event as `GET /v1/events/{id}` answers it.
#[derive(Debug, Serialize)]
pub struct EventAnswer {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created_at: chrono::DateTime<chrono::Utc>,
    data: Box<RawValue>,
    callback_url: Option<String>,
    /// When its deliveries are due from, if it was published for later.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The consumer it was published for; absent for the tenant's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<String>,
    deliveries: Vec<Value>,
    /// Why the outbox-poller set the event aside without deliveries; absent when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    fan_out_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    failed: Option<String>,
    with_data: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    before: Option<String>,
}

/// A `true`/`false` query parameter.
fn query_bool(name: &str, v: Option<&str>) -> Result<Option<bool>, ApiError> {
    match v {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::unprocessable(
            "invalid_query",
            format!("{name} {v:?} is not a boolean: use true or false, or leave it out"),
        )),
    }
}

/// A `type` filter: an exact type, or a `prefix.*` pattern as in `event_types` (exact, prefix).
fn type_filter(v: Option<&str>) -> Result<(Option<String>, Option<String>), ApiError> {
    let Some(t) = v else { return Ok((None, None)) };
    validate::event_type_patterns(&[t.to_string()]).map_err(|_| {
        ApiError::unprocessable(
            "invalid_event_type",
            format!(
                "type {t:?} is not an event type or a `prefix.*` pattern: use an exact type (1 to 128 characters of A-Z a-z 0-9 _ - .) or a prefix ending in `.*` like `meeting.*`"
            ),
        )
    })?;
    Ok(match t.strip_suffix('*') {
        Some(prefix) => (None, Some(prefix.to_string())),
        None => (Some(t.to_string()), None),
    })
}

/// An event as `GET /v1/events` lists it: as `GET /v1/events/{id}` answers it, with its
/// deliveries counted instead of listed.
#[derive(Debug, Serialize)]
pub struct EventItem {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// Absent when the request said `with_data=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
    callback_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fan_out_error: Option<String>,
    delivery_counts: DeliveryCounts,
}

/// An event's deliveries by state; `failing` are those `pending` after a failed attempt.
#[derive(Debug, Serialize)]
pub struct DeliveryCounts {
    total: i64,
    pending: i64,
    delivered: i64,
    failed: i64,
    cancelled: i64,
    failing: i64,
}

/// `GET /v1/events`: the tenant's events, newest first, by type, time window and whether a
/// delivery failed.
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Listed<EventItem>>, ApiError> {
    let failed = query_bool("failed", q.failed.as_deref())?;
    let with_data = query_bool("with_data", q.with_data.as_deref())?.unwrap_or(true);
    let (exact, prefix) = type_filter(q.event_type.as_deref())?;
    let (since, until) = super::deliveries::query_window(q.since.as_deref(), q.until.as_deref())?;
    let page = Page { limit: q.limit, cursor: q.cursor, before: q.before }.request(&page::EVENTS)?;
    let low = since.map_or(i64::MIN, super::deliveries::seq_floor);
    let high = until.map_or(i64::MAX, super::deliveries::seq_floor);
    let mut conn = state.pool.get().await?;
    let tx = page::bounded(&mut conn, state.list_timeout).await?;
    let client = tx.client();
    let (tenant, low, high, exact, prefix, failed, with_data) =
        (&tenant, &low, &high, &exact, &prefix, &failed, &with_data);
    page.answer(
        |r| async move {
            r.rows(client, &sql::list_events(&r), &[tenant, low, high, exact, prefix, failed, with_data]).await
        },
        |e| {
            let data =
                e.col::<Option<String>>("data")?.map(RawValue::from_string).transpose().map_err(ApiError::internal)?;
            Ok(EventItem {
                id: e.col("event_id")?,
                event_type: e.col("event_type")?,
                created_at: e.col("created_at")?,
                data,
                callback_url: e.col("callback_url")?,
                deliver_at: e.col("deliver_at")?,
                consumer: e.col("consumer")?,
                fan_out_error: e.col("fan_out_error")?,
                delivery_counts: DeliveryCounts {
                    total: e.col("total")?,
                    pending: e.col("pending")?,
                    delivered: e.col("delivered")?,
                    failed: e.col("failed")?,
                    cancelled: e.col("cancelled")?,
                    failing: e.col("failing")?,
                },
            })
        },
    )
    .await
}
