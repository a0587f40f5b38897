//! The endpoint routes of contract section 4.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_core::config::RetrySchedule;
use herald_core::deliveries;
use herald_core::dialect::{self, PayloadFormat};
use herald_core::id::{DeliveryId, EndpointId, EventId, TenantId};
use herald_core::signing::{Scheme, Secret};
use herald_core::validate::{self, Invalid};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio_postgres::Row;

use super::error::{ApiError, Col};
use super::extract::{ApiJson, ApiPath, ApiQuery, Link, LinkScope, MaybeJson, Tenant, Whole};
use super::page::{self, Listed, Page};
use super::AppState;
use crate::sql;

/// How long a rotated-out secret keeps signing (contract section 1).
const SECRET_OVERLAP: chrono::Duration = chrono::Duration::hours(24);
const MAX_DESCRIPTION: usize = 1024;
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    url: String,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    secret: Option<String>,
    signature_scheme: Option<String>,
    signature_header: Option<String>,
    headers: Option<Map<String, Value>>,
    timeout: Option<String>,
    payload_format: Option<String>,
    ordering: Option<String>,
    retry_schedule: Option<Vec<String>>,
    max_in_flight: Option<Whole>,
    rate_limit_per_s: Option<Whole>,
    consumer: Option<String>,
}

/// The consumer a request names, under a portal session held to one (`held`): that one when the
/// request names none, 403 when it names another. Without such a session, what it names.
fn consumer_for(held: Option<&str>, named: Option<&str>) -> Result<Option<String>, ApiError> {
    match (held, named) {
        (Some(held), Some(named)) if held != named => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("this portal link manages the endpoints of consumer {held:?} only: leave consumer out, or set it to {held:?}"),
        )),
        (Some(held), _) => Ok(Some(held.to_string())),
        (None, named) => Ok(named.map(str::to_string)),
    }
}

/// The tenant's URL policy for an endpoint's `url`. Under a link's session the refusal does not
/// list the tenant's allowed domains: they name its other customers.
async fn check_url(
    state: &AppState,
    tenant: &TenantId,
    link: &Option<LinkScope>,
    url: &url::Url,
) -> Result<(), ApiError> {
    match state.check_url(tenant, "url", url).await {
        Err(e) if link.is_some() && e.code == "url_not_allowed" => Err(ApiError::unprocessable(
            "url_not_allowed",
            "url: this URL is not allowed for this tenant; ask whoever sent your link where endpoints may point",
        )),
        checked => checked,
    }
}

/// `ordering`: `none` (the default) or `fifo`, as stored.
fn check_ordering(o: &str) -> Result<&'static str, Invalid> {
    match o {
        "none" => Ok("none"),
        "fifo" => Ok("fifo"),
        _ => Err(Invalid::new(
            "invalid_ordering",
            format!(
                "ordering {o:?} is unknown: use \"none\" (the default) or \"fifo\" (one at a time, in publish order)"
            ),
        )),
    }
}

/// Distinguishes a field that is absent (`None`) from one set to null (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    /// A new secret: a rotation, as `rotate-secret` with a body.
    secret: Option<String>,
    signature_scheme: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    signature_header: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    headers: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    timeout: Option<Option<String>>,
    payload_format: Option<String>,
    ordering: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    retry_schedule: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    max_in_flight: Option<Option<Whole>>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit_per_s: Option<Option<Whole>>,
    #[serde(default, deserialize_with = "nullable")]
    consumer: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    secret: Option<String>,
}

fn check_description(d: &str) -> Result<(), Invalid> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(Invalid::new(
            "invalid_description",
            format!("description is longer than {MAX_DESCRIPTION} characters; shorten it"),
        ));
    }
    Ok(())
}

fn check_scheme(s: &str) -> Result<Scheme, Invalid> {
    Scheme::parse(s).ok_or_else(|| {
        Invalid::new(
            "invalid_signature_scheme",
            format!(
                "signature_scheme {s:?} is unknown: use \"standard-webhooks\" (the default) or \"hmac-sha256-hex\""
            ),
        )
    })
}

/// A client-given secret, for the endpoint's scheme.
fn check_secret(scheme: Scheme, s: &str) -> Result<Secret, Invalid> {
    scheme.secret(s).map_err(|m| Invalid::new("invalid_secret", format!("secret: {m}")))
}

/// The hex scheme's header: only for that scheme.
fn check_signature_header(scheme: Scheme, header: Option<&str>) -> Result<Option<String>, Invalid> {
    match (scheme, header) {
        (_, None) => Ok(None),
        (Scheme::HmacSha256Hex, Some(h)) => dialect::header_name("signature_header", h).map(Some),
        (Scheme::StandardWebhooks, Some(_)) => Err(Invalid::new(
            "invalid_signature_header",
            "signature_header is for signature_scheme \"hmac-sha256-hex\"; Standard Webhooks signs in webhook-signature",
        )),
    }
}

/// A limit from 1 to `max`, as it is stored.
fn check_limit(field: &'static str, Whole(v): Whole, max: i32) -> Result<i32, Invalid> {
    if (1..=i64::from(max)).contains(&v) {
        Ok(v as i32)
    } else {
        Err(Invalid::new("invalid_limit", format!("{field} {v} is out of range: use 1 to {max}, or null for no limit")))
    }
}

/// Headers as stored: a JSON object's text, or NULL for none.
fn stored_headers(h: &dialect::Headers) -> Option<String> {
    (!h.0.is_empty())
        .then(|| Value::Object(h.0.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect()).to_string())
}

/// The headers a row holds (checked when they were set).
fn row_headers(row: &Row) -> Map<String, Value> {
    row.get::<_, Option<String>>("headers").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// The endpoint as the API answers it; the secret only where the contract shows it, header
/// values never (masked).
fn endpoint_json(row: &Row, with_secret: bool) -> Value {
    let schedule: Option<Vec<i64>> = row.get("retry_schedule_ms");
    let scheme: String = row.get("signature_scheme");
    let signature_header = (scheme == Scheme::HmacSha256Hex.name()).then(|| {
        row.get::<_, Option<String>>("signature_header").unwrap_or_else(|| dialect::SIGNATURE_HEADER.to_string())
    });
    let headers: Map<String, Value> =
        row_headers(row).into_iter().map(|(k, v)| (k, Value::from(dialect::mask(v.as_str().unwrap_or(""))))).collect();
    let timeout =
        row.get::<_, Option<i32>>("timeout_ms").map(|ms| validate::format_duration(Duration::from_millis(ms as u64)));
    let mut v = json!({
        "id": row.get::<_, String>("endpoint_id"),
        "url": row.get::<_, String>("url"),
        "description": row.get::<_, String>("description"),
        "event_types": row.get::<_, Vec<String>>("event_types"),
        "status": row.get::<_, String>("status"),
        "disabled_reason": row.get::<_, Option<String>>("disabled_reason"),
        "signature_scheme": scheme,
        "signature_header": signature_header,
        "headers": headers,
        "timeout": timeout,
        "payload_format": row.get::<_, String>("payload_format"),
        "ordering": row.get::<_, String>("ordering"),
        "consumer": row.get::<_, Option<String>>("consumer"),
        "retry_schedule": schedule.map(|ms| RetrySchedule::from_stored(&ms).written()),
        "max_in_flight": row.get::<_, Option<i32>>("max_in_flight"),
        "rate_limit_per_s": row.get::<_, Option<i32>>("rate_limit_per_s"),
        "created_at": row.get::<_, chrono::DateTime<chrono::Utc>>("created_at"),
        "updated_at": row.get::<_, chrono::DateTime<chrono::Utc>>("updated_at"),
    });
    if with_secret {
        v["secret"] = Value::String(row.get("secret"));
    }
    v
}

fn timeout_ms(t: &str) -> Result<i32, Invalid> {
    Ok(dialect::timeout(t)?.as_millis() as i32)
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Link(link): Link,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let url = validate::target_url("url", &body.url, &state.allow)?;
    check_url(&state, &tenant, &link, &url).await?;
    let event_types = body.event_types.unwrap_or_default();
    validate::event_type_patterns(&event_types)?;
    let description = body.description.unwrap_or_default();
    check_description(&description)?;
    let scheme = check_scheme(body.signature_scheme.as_deref().unwrap_or(Scheme::NAMES[0]))?;
    let secret = match body.secret {
        Some(s) => check_secret(scheme, &s)?,
        None => Secret::generate(),
    };
    let signature_header = check_signature_header(scheme, body.signature_header.as_deref())?;
    let headers = match &body.headers {
        Some(h) => dialect::headers(h, Some(signature_header.as_deref().unwrap_or(dialect::SIGNATURE_HEADER)))?,
        None => dialect::Headers::default(),
    };
    let timeout = body.timeout.as_deref().map(timeout_ms).transpose()?;
    let payload_format = PayloadFormat::parse(body.payload_format.as_deref().unwrap_or("envelope"))?;
    let ordering = check_ordering(body.ordering.as_deref().unwrap_or("none"))?;
    let schedule = body.retry_schedule.as_deref().map(RetrySchedule::parse).transpose()?.map(|s| s.stored());
    let max_in_flight = body.max_in_flight.map(|v| check_limit("max_in_flight", v, 10_000)).transpose()?;
    let rate_limit_per_s = body.rate_limit_per_s.map(|v| check_limit("rate_limit_per_s", v, 100_000)).transpose()?;
    if let Some(c) = &body.consumer {
        validate::consumer(c)?;
    }
    let consumer = consumer_for(LinkScope::consumer(&link), body.consumer.as_deref())?;
    let now = state.clock.now();
    let id = EndpointId::generate(now);
    let client = state.pool.get().await?;
    let row = client
        .query_one(
            &sql::insert_endpoint(),
            &[
                &tenant,
                &id,
                &url.as_str(),
                &description,
                &event_types,
                &scheme.name(),
                &secret.expose(),
                &schedule,
                &max_in_flight,
                &rate_limit_per_s,
                &now,
                &signature_header,
                &stored_headers(&headers),
                &timeout,
                &payload_format.name(),
                &ordering,
                &consumer,
            ],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(endpoint_json(&row, true))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    consumer: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    before: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Link(link): Link,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Listed<Value>>, ApiError> {
    if let Some(c) = &q.consumer {
        validate::consumer(c)?;
    }
    let page = Page { limit: q.limit, cursor: q.cursor, before: q.before }.request(&page::ENDPOINTS)?;
    let client = state.pool.get().await?;
    let consumer = consumer_for(LinkScope::consumer(&link), q.consumer.as_deref())?;
    let (client, tenant, consumer) = (&client, &tenant, &consumer);
    page.answer(
        |r| async move { r.rows(client, &sql::list_endpoints(&r), &[tenant, consumer]).await },
        |row| Ok(endpoint_json(row, false)),
    )
    .await
}

pub async fn get_one(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    match client.query_opt(&sql::get_endpoint(), &[&tenant, &id]).await? {
        Some(row) => Ok(Json(endpoint_json(&row, false))),
        None => Err(ApiError::not_found("endpoint", &id)),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Link(link): Link,
    ApiPath(id): ApiPath<EndpointId>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let url = body.url.as_deref().map(|u| validate::target_url("url", u, &state.allow)).transpose()?;
    if let Some(u) = &url {
        check_url(&state, &tenant, &link, u).await?;
    }
    if let Some(t) = &body.event_types {
        validate::event_type_patterns(t)?;
    }
    if let Some(d) = &body.description {
        check_description(d)?;
    }
    let new_scheme = body.signature_scheme.as_deref().map(check_scheme).transpose()?;
    let timeout = match &body.timeout {
        Some(Some(t)) => Some(Some(timeout_ms(t)?)),
        Some(None) => Some(None),
        None => None,
    };
    let payload_format = body.payload_format.as_deref().map(PayloadFormat::parse).transpose()?;
    let ordering = body.ordering.as_deref().map(check_ordering).transpose()?;
    if let Some(Some(c)) = &body.consumer {
        validate::consumer(c)?;
    }
    if let (Some(held), Some(named)) = (LinkScope::consumer(&link), &body.consumer) {
        // Clearing it (null) is naming another too.
        consumer_for(Some(held), Some(named.as_deref().unwrap_or("")))?;
    }
    let schedule = match &body.retry_schedule {
        Some(Some(steps)) => Some(Some(RetrySchedule::parse(steps)?.stored())),
        Some(None) => Some(None),
        None => None,
    };
    let max_in_flight =
        body.max_in_flight.map(|v| v.map(|v| check_limit("max_in_flight", v, 10_000)).transpose()).transpose()?;
    let rate_limit_per_s = body
        .rate_limit_per_s
        .map(|v| v.map(|v| check_limit("rate_limit_per_s", v, 100_000)).transpose())
        .transpose()?;
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx.query_opt(&sql::lock_endpoint(), &[&tenant, &id]).await? else {
        return Err(ApiError::not_found("endpoint", &id));
    };
    // An endpoint's consumer is fixed when it is made: its deliveries (and what its receiver
    // answered) belong to the customer they were sent for, and a later owner must not read or
    // retry them. Repeating it is fine.
    let current: Option<String> = row.get("consumer");
    if let Some(asked) = body.consumer.as_ref().filter(|asked| **asked != current) {
        return Err(ApiError::unprocessable(
            "invalid_consumer",
            format!(
                "an endpoint's consumer is set when it is made and never changes (this one's is {}, not {}): make a new endpoint for another customer",
                current.as_deref().map_or("none".to_string(), |c| format!("{c:?}")),
                asked.as_deref().map_or("none".to_string(), |c| format!("{c:?}")),
            ),
        ));
    }
    // What the request and the row make together, checked as a whole: a scheme and a secret,
    // a signature header and the other headers, must go together.
    let scheme = match new_scheme {
        Some(s) => s,
        None => check_scheme(&row.get::<_, String>("signature_scheme"))?,
    };
    let secret = body.secret.as_deref().map(|s| check_secret(scheme, s)).transpose()?;
    if secret.is_none() && new_scheme.is_some() {
        scheme.secret(&row.get::<_, String>("secret")).map_err(|_| {
            Invalid::new(
                "invalid_secret",
                format!(
                    "the endpoint's secret is not one {} can use: give a `secret` for it in the same request",
                    scheme.name()
                ),
            )
        })?;
    }
    let signature_header = match (&body.signature_header, scheme) {
        (Some(h), _) => check_signature_header(scheme, h.as_deref())?,
        (None, Scheme::HmacSha256Hex) => row.get("signature_header"),
        (None, Scheme::StandardWebhooks) => None,
    };
    let headers_in = match &body.headers {
        Some(h) => h.clone().unwrap_or_default(),
        None => row_headers(&row),
    };
    let headers =
        dialect::headers(&headers_in, Some(signature_header.as_deref().unwrap_or(dialect::SIGNATURE_HEADER)))?;
    let to_fifo = ordering == Some("fifo") && row.get::<_, String>("ordering") != "fifo";
    if to_fifo {
        tx.execute(sql::LOCK_ENDPOINT_FULLY, &[&tenant, &id]).await?;
    }
    let row = tx
        .query_one(
            &sql::update_endpoint(),
            &[
                &tenant,
                &id,
                &url.as_ref().map_or_else(|| row.get::<_, String>("url"), |u| u.to_string()),
                &body.description.clone().unwrap_or_else(|| row.get("description")),
                &body.event_types.clone().unwrap_or_else(|| row.get("event_types")),
                &scheme.name(),
                &schedule.unwrap_or_else(|| row.get("retry_schedule_ms")),
                &max_in_flight.unwrap_or_else(|| row.get("max_in_flight")),
                &rate_limit_per_s.unwrap_or_else(|| row.get("rate_limit_per_s")),
                &signature_header,
                &stored_headers(&headers),
                &timeout.unwrap_or_else(|| row.get("timeout_ms")),
                &payload_format.map_or_else(|| row.get::<_, String>("payload_format"), |p| p.name().to_string()),
                &now,
                &secret.as_ref().map(Secret::expose),
                &(now + SECRET_OVERLAP),
                &ordering.map_or_else(|| row.get::<_, String>("ordering"), str::to_string),
                &current,
            ],
        )
        .await?;
    // Made FIFO: its open deliveries take their place in publish order.
    if to_fifo {
        tx.execute(sql::FIFO_BACKFILL, &[&tenant, &id]).await?;
    }
    tx.commit().await?;
    Ok(Json(endpoint_json(&row, secret.is_some())))
}

pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<StatusCode, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // Deliveries first, then the endpoint: the order the recorder locks them in.
    tx.execute(herald_core::deliveries::CANCEL_FOR_ENDPOINT, &[&tenant, &id, &state.clock.now()]).await?;
    let deleted = tx.execute(sql::DELETE_ENDPOINT, &[&tenant, &id]).await?;
    if deleted == 0 {
        return Err(ApiError::not_found("endpoint", &id));
    }
    // The DELETE waited for any fan-out that held the endpoint (FOR KEY SHARE) to commit; the
    // first cancel could not see what it made. This one does (READ COMMITTED: a new snapshot).
    tx.execute(herald_core::deliveries::CANCEL_FOR_ENDPOINT, &[&tenant, &id, &state.clock.now()]).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
    MaybeJson(body): MaybeJson<RotateBody>,
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx.query_opt(&sql::lock_endpoint(), &[&tenant, &id]).await? else {
        return Err(ApiError::not_found("endpoint", &id));
    };
    let secret = match body.and_then(|b| b.secret) {
        Some(s) => check_secret(check_scheme(&row.get::<_, String>("signature_scheme"))?, &s)?,
        None => Secret::generate(),
    };
    let row =
        tx.query_one(&sql::rotate_secret(), &[&tenant, &id, &secret.expose(), &(now + SECRET_OVERLAP), &now]).await?;
    tx.commit().await?;
    Ok(Json(endpoint_json(&row, true)))
}

async fn set_status(
    state: AppState,
    tenant: TenantId,
    id: EndpointId,
    status: &str,
    reason: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    let row = client.query_opt(&sql::set_status(), &[&tenant, &id, &status, &reason, &state.clock.now()]).await?;
    row.map(|r| Json(endpoint_json(&r, false))).ok_or_else(|| ApiError::not_found("endpoint", &id))
}

pub async fn enable(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Json<Value>, ApiError> {
    set_status(state, tenant, id, "healthy", None).await
}

pub async fn disable(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Json<Value>, ApiError> {
    set_status(state, tenant, id, "disabled", Some("disabled through the API")).await
}

/// `POST /v1/endpoints/{id}/test`: a signed `herald.test` event, delivered to this endpoint alone
/// (whatever its `event_types`), like any other: retried, in the attempt log.
pub async fn test(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(ep) = tx.query_opt(sql::TEST_TARGET, &[&tenant, &id]).await? else {
        return Err(ApiError::not_found("endpoint", &id));
    };
    let (url, status, fifo): (String, String, bool) = (ep.get(0), ep.get(1), ep.get(2));
    if status == "disabled" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "endpoint_disabled",
            "the endpoint is disabled: enable it (POST /v1/endpoints/{id}/enable), then test it",
        ));
    }
    let event_id = EventId::generate(now);
    let seq = herald_core::id::seq_at(now);
    let data = json!({"endpoint_id": id, "message": "A test event from Herald"}).to_string();
    tx.execute(sql::INSERT_TEST_EVENT, &[&tenant, &event_id, &seq, &data, &now]).await?;
    let delivery_id = DeliveryId::generate(now);
    let one = deliveries::New {
        ids: vec![delivery_id.clone()],
        event_ids: vec![&event_id],
        targets: vec![deliveries::target_of(Some(&id))],
        endpoint_ids: vec![Some(&id)],
        urls: vec![url.as_str()],
        dues: vec![None],
        seqs: vec![fifo.then_some(seq)],
    };
    deliveries::insert(&tx, &tenant, &one, now, false).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"event_id": event_id, "delivery_id": delivery_id}))))
}

/// How far back `GET /v1/endpoints/{id}/stats` looks for the last success and the last failure:
/// the endpoint's latest attempts, so that the walk is bounded whatever its history.
const LAST_LOOK_BACK: i64 = 100_000;

/// One window of an endpoint's statistics.
fn window(attempts: i64, successes: i64) -> Value {
    let rate = (attempts > 0).then(|| (successes as f64 / attempts as f64 * 10_000.0).round() / 10_000.0);
    json!({"attempts": attempts, "successes": successes, "failures": attempts - successes, "success_rate": rate})
}

/// `GET /v1/endpoints/{id}/stats`: its attempts over the last hour and the last day (a success is
/// a 2xx answer, anything else a failure), and its last success and last failure. Read from
/// attempts_by_endpoint: one index range over the day, and a bounded walk for the last two.
pub async fn stats(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let tx = super::page::bounded(&mut conn, state.list_timeout).await?;
    let client = tx.client();
    if client.query_opt(&sql::get_endpoint(), &[&tenant, &id]).await?.is_none() {
        return Err(ApiError::not_found("endpoint", &id));
    }
    let (day, hour) = (now - chrono::Duration::days(1), now - chrono::Duration::hours(1));
    let counts = client.query_one(sql::ENDPOINT_COUNTS, &[&tenant, &id, &day, &hour]).await?;
    let count = |name: &str| counts.col::<i64>(name);
    let mut last = Vec::new();
    for success in [true, false] {
        let row = client.query_opt(sql::ENDPOINT_LAST, &[&tenant, &id, &success, &LAST_LOOK_BACK]).await?;
        last.push(match row {
            None => Value::Null,
            Some(r) => {
                let mut v = json!({
                    "at": r.col::<chrono::DateTime<chrono::Utc>>("started_at")?,
                    "status_code": r.col::<Option<i32>>("status_code")?,
                });
                if !success {
                    v["error"] = json!(r.col::<Option<String>>("error")?);
                }
                v
            }
        });
    }
    Ok(Json(json!({
        "endpoint_id": id,
        "at": now,
        "last_hour": window(count("hour")?, count("hour_ok")?),
        "last_day": window(count("day")?, count("day_ok")?),
        "last_success": last[0],
        "last_failure": last[1],
    })))
}
