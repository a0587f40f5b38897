//! `GET /v1/tenant`: the calling tenant's settings, which its operator sets with
//! `herald tenant set`.

use axum::extract::State;
use axum::Json;
use herald_core::policy::TenantSettings;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::Tenant;
use super::AppState;

pub async fn get(State(state): State<AppState>, Tenant(tenant): Tenant) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    let settings = TenantSettings::load(&client, &tenant).await?.unwrap_or_default();
    Ok(Json(answer(tenant.as_str(), &settings)))
}

/// A tenant's settings as the API and `herald tenant set` show them.
pub fn answer(tenant: &str, s: &TenantSettings) -> Value {
    json!({
        "id": tenant,
        "require_https": s.require_https,
        "allowed_domains": s.allowed_domains,
        "unsigned_callbacks": s.unsigned_callbacks,
    })
}
