//! The endpoint routes of contract section 4.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_core::config::RetrySchedule;
use herald_core::id::{EndpointId, TenantId};
use herald_core::signing::Secret;
use herald_core::validate::{self, Invalid};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tokio_postgres::Row;

use super::error::ApiError;
use super::extract::{page_of, ApiJson, ApiPath, ApiQuery, Page, Tenant, Whole};
use super::AppState;
use crate::sql;

/// How long a rotated-out secret keeps signing (contract section 1).
const SECRET_OVERLAP: chrono::Duration = chrono::Duration::hours(24);
const MAX_DESCRIPTION: usize = 1024;
const SCHEMES: [&str; 2] = ["standard-webhooks", "hmac-sha256-hex"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    url: String,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    secret: Option<String>,
    signature_scheme: Option<String>,
    retry_schedule: Option<Vec<String>>,
    max_in_flight: Option<Whole>,
    rate_limit_per_s: Option<Whole>,
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
    signature_scheme: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    retry_schedule: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    max_in_flight: Option<Option<Whole>>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit_per_s: Option<Option<Whole>>,
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

fn check_scheme(s: &str) -> Result<(), Invalid> {
    if SCHEMES.contains(&s) {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_signature_scheme",
            format!(
                "signature_scheme {s:?} is unknown: use \"standard-webhooks\" (the default) or \"hmac-sha256-hex\""
            ),
        ))
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

/// The endpoint as the API answers it; the secret only where the contract shows it.
fn endpoint_json(row: &Row, with_secret: bool) -> Value {
    let schedule: Option<Vec<i64>> = row.get("retry_schedule_ms");
    let mut v = json!({
        "id": row.get::<_, String>("endpoint_id"),
        "url": row.get::<_, String>("url"),
        "description": row.get::<_, String>("description"),
        "event_types": row.get::<_, Vec<String>>("event_types"),
        "status": row.get::<_, String>("status"),
        "disabled_reason": row.get::<_, Option<String>>("disabled_reason"),
        "signature_scheme": row.get::<_, String>("signature_scheme"),
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

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let url = validate::target_url("url", &body.url, &state.allow)?;
    let event_types = body.event_types.unwrap_or_default();
    validate::event_type_patterns(&event_types)?;
    let description = body.description.unwrap_or_default();
    check_description(&description)?;
    let secret = match body.secret {
        Some(s) => validate::secret("secret", &s)?,
        None => Secret::generate(),
    };
    let scheme = body.signature_scheme.unwrap_or_else(|| SCHEMES[0].to_string());
    check_scheme(&scheme)?;
    let schedule = body.retry_schedule.as_deref().map(RetrySchedule::parse).transpose()?.map(|s| s.stored());
    let max_in_flight = body.max_in_flight.map(|v| check_limit("max_in_flight", v, 10_000)).transpose()?;
    let rate_limit_per_s = body.rate_limit_per_s.map(|v| check_limit("rate_limit_per_s", v, 100_000)).transpose()?;
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
                &scheme,
                &secret.expose(),
                &schedule,
                &max_in_flight,
                &rate_limit_per_s,
                &now,
            ],
        )
        .await?;
    Ok((StatusCode::CREATED, Json(endpoint_json(&row, true))))
}

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (limit, cursor) = page.checked()?;
    let client = state.pool.get().await?;
    let rows = client.query(&sql::list_endpoints(), &[&tenant, &cursor, &(limit + 1)]).await?;
    Ok(page_of(&rows, limit, "endpoint_id", |r| endpoint_json(r, false)))
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
    ApiPath(id): ApiPath<EndpointId>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let url = body.url.as_deref().map(|u| validate::target_url("url", u, &state.allow)).transpose()?;
    if let Some(t) = &body.event_types {
        validate::event_type_patterns(t)?;
    }
    if let Some(d) = &body.description {
        check_description(d)?;
    }
    if let Some(s) = &body.signature_scheme {
        check_scheme(s)?;
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
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &sql::update_endpoint(),
            &[
                &tenant,
                &id,
                &url.is_some(),
                &url.as_ref().map(|u| u.as_str()),
                &body.description.is_some(),
                &body.description,
                &body.event_types.is_some(),
                &body.event_types,
                &body.signature_scheme.is_some(),
                &body.signature_scheme,
                &schedule.is_some(),
                &schedule.flatten(),
                &max_in_flight.is_some(),
                &max_in_flight.flatten(),
                &rate_limit_per_s.is_some(),
                &rate_limit_per_s.flatten(),
                &state.clock.now(),
            ],
        )
        .await?;
    row.map(|r| Json(endpoint_json(&r, false))).ok_or_else(|| ApiError::not_found("endpoint", &id))
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
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    let secret = Secret::generate();
    let client = state.pool.get().await?;
    let row = client
        .query_opt(&sql::rotate_secret(), &[&tenant, &id, &secret.expose(), &(now + SECRET_OVERLAP), &now])
        .await?;
    row.map(|r| Json(endpoint_json(&r, true))).ok_or_else(|| ApiError::not_found("endpoint", &id))
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
