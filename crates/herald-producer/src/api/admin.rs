//! `/v1/admin`: the operator's routes, reached with an operator token (`herald admin token
//! create`): tenants made, listed, shown, disabled and enabled, and tokens issued for them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::id::TenantId;
use herald_core::policy::TenantSettings;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Operator};
use super::page::{self, Listed, Page, Request};
use super::tokens::{issued, CreateToken};
use super::AppState;
use crate::tenant;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    id: String,
}

const GET: &str = "SELECT tenant_id, created_at, disabled_at FROM herald.tenants WHERE tenant_id = $1";
const SET_DISABLED: &str = "UPDATE herald.tenants SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, $3) END \
      WHERE tenant_id = $1";

fn summary(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, String>("tenant_id"),
        "created_at": r.get::<_, DateTime<Utc>>("created_at"),
        "disabled_at": r.get::<_, Option<DateTime<Utc>>>("disabled_at"),
    })
}

/// A tenant in full: its summary and its settings.
async fn tenant_json(client: &tokio_postgres::Client, id: &TenantId) -> Result<Value, ApiError> {
    let row = client.query_opt(GET, &[id]).await?.ok_or_else(|| ApiError::not_found("tenant", id.as_str()))?;
    let settings = TenantSettings::load(client, id).await?.unwrap_or_default();
    let mut v = super::tenant::answer(id.as_str(), &settings);
    let s = summary(&row);
    v["created_at"] = s["created_at"].clone();
    v["disabled_at"] = s["disabled_at"].clone();
    Ok(v)
}

pub async fn create(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = TenantId::parse(&body.id).map_err(|e| {
        ApiError::unprocessable(
            "invalid_tenant_id",
            format!("{}: a tenant id is 1 to 63 of a-z 0-9 _ -, starting with a letter or digit", e.message),
        )
    })?;
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let first = tenant::create_in(&tx, &id, now).await?;
    tx.commit().await?;
    let mut v = tenant_json(&client, &id).await?;
    v["token"] = issued(&first);
    Ok((StatusCode::CREATED, Json(v)))
}

fn list_sql(page: &Request) -> String {
    format!("SELECT tenant_id, created_at, disabled_at FROM herald.tenants WHERE true{}", page.tail(1))
}

pub async fn list(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Listed<Value>>, ApiError> {
    let page = page.request(&page::TENANTS)?;
    let client = state.pool.get().await?;
    let client = &client;
    page.answer(|r| async move { r.rows(client, &list_sql(&r), &[]).await }, |r| Ok(summary(r))).await
}

pub async fn get_one(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    Ok(Json(tenant_json(&client, &id).await?))
}

async fn set_disabled(state: &AppState, id: &TenantId, disabled: bool) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if tx.execute(SET_DISABLED, &[id, &disabled, &now]).await? == 0 {
        return Err(ApiError::not_found("tenant", id.as_str()));
    }
    tenant::announce(&tx, id).await?;
    tx.commit().await?;
    state.tokens.forget_all();
    Ok(Json(tenant_json(&client, id).await?))
}

pub async fn disable(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(&state, &id, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(&state, &id, false).await
}

pub async fn issue_token(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<TenantId>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::tokens::issue(&state, &id, body).await
}
