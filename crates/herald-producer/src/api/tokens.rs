//! `/v1/tokens`: a tenant's API tokens, made (the token shown once), listed (never the token)
//! and revoked (refused at once by every API process).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::id::TokenId;
use herald_core::token::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Tenant};
use super::page::{self, Listed, Page, Request};
use super::AppState;
use crate::tenant::{self, Issued, NewToken, TenantError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    scope: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

impl CreateToken {
    /// The token to make, checked (`now`: its expiry must be later).
    pub fn checked(&self, now: DateTime<Utc>) -> Result<NewToken, ApiError> {
        let scope = Scope::parse(&self.scope).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_scope",
                format!(
                    "scope {:?} is not one Herald knows: use full, publish (publish and read events and operations), read (read only) or respond (answer operations)",
                    self.scope
                ),
            )
        })?;
        Ok(NewToken::checked(&self.name, scope, self.expires_at, now)?)
    }
}

/// A token as the API shows it: never the token itself, except once in `issued`.
pub fn token_json(
    id: &str,
    name: &str,
    scope: &str,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Value {
    json!({"id": id, "name": name, "scope": scope, "created_at": created_at, "expires_at": expires_at})
}

/// The answer to a token's creation: its row and, this once, the token.
pub fn issued(i: &Issued) -> Value {
    let mut v = token_json(i.id.as_str(), &i.new.name, i.new.scope.as_str(), i.created_at, i.new.expires_at);
    v["token"] = json!(i.token);
    v
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::Invalid(i) => i.into(),
            TenantError::Exists(t) => ApiError::new(
                StatusCode::CONFLICT,
                "tenant_exists",
                format!("tenant {t:?} exists already; POST /v1/admin/tenants/{t}/tokens issues it another token"),
            ),
            TenantError::Unknown(t) => ApiError::not_found("tenant", &t),
            other => ApiError::internal(other),
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    issue(&state, &tenant, body).await
}

/// Makes the token `body` asks for, for `tenant`: 201 with it, shown this once.
pub async fn issue(
    state: &AppState,
    tenant: &herald_core::id::TenantId,
    body: CreateToken,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = state.clock.now();
    let new = body.checked(now)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let made = tenant::issue_in(&tx, tenant, new, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued(&made))))
}

fn list_sql(page: &Request) -> String {
    format!(
        "SELECT token_id, name, scope, created_at, expires_at FROM herald.api_tokens \
          WHERE tenant_id = $1 AND revoked_at IS NULL{}",
        page.tail(2)
    )
}

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Listed<Value>>, ApiError> {
    let page = page.request(&page::TOKENS)?;
    let client = state.pool.get().await?;
    let (client, tenant) = (&client, &tenant);
    page.answer(
        |r| async move { r.rows(client, &list_sql(&r), &[tenant]).await },
        |r| Ok(token_json(r.get("token_id"), r.get("name"), r.get("scope"), r.get("created_at"), r.get("expires_at"))),
    )
    .await
}

const REVOKE: &str = "UPDATE herald.api_tokens SET revoked_at = $3 \
      WHERE tenant_id = $1 AND token_id = $2 AND revoked_at IS NULL";

pub async fn revoke(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<TokenId>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if tx.execute(REVOKE, &[&tenant, &id, &now]).await? == 0 {
        return Err(ApiError::not_found("token", id.as_str()));
    }
    tenant::announce(&tx, &tenant).await?;
    tx.commit().await?;
    // This process forgets at once, whether or not it listens.
    state.tokens.forget_all();
    Ok(StatusCode::NO_CONTENT)
}
