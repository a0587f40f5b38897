//! `/v1/links` and `/v1/sessions`: a tenant hands a person one URL that reaches a page with a
//! narrow scope. An inbox link (`/inbox#hrldl_...`) answers operations, as its `responder`, only
//! those of its `run_id` when it has one. A portal link (`/portal#hrldl_...`) manages the
//! endpoints of its `consumer` (every endpoint when it has none). The page exchanges the
//! credential in the fragment for a session in an HttpOnly, SameSite=Strict cookie
//! (`POST /v1/sessions`); the session dies with its link (expiry, revocation). Only SHA-256
//! hashes are stored.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_core::id::{LinkId, TenantId};
use herald_core::token::{self, LinkKind, LINK_PREFIX, SESSION_PREFIX};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{session_cookie, ApiJson, ApiPath, ApiQuery, Tenant, SESSION_COOKIE};
use super::page::{self, Listed, Page, Request};
use super::AppState;

/// How long a link lasts when its request says nothing.
const DEFAULT_LIFE: chrono::Duration = chrono::Duration::hours(24);
/// The longest a link may last.
const MAX_LIFE: chrono::Duration = chrono::Duration::days(30);
/// Sessions a link keeps: the oldest end when another is made.
const MAX_SESSIONS: i64 = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    kind: String,
    responder: Option<String>,
    run_id: Option<String>,
    consumer: Option<String>,
    expires_in: Option<String>,
}

fn link_json(r: &tokio_postgres::Row) -> Value {
    json!({
        "id": r.get::<_, String>("link_id"),
        "kind": r.get::<_, String>("kind"),
        "responder": r.get::<_, Option<String>>("responder"),
        "run_id": r.get::<_, Option<String>>("run_id"),
        "consumer": r.get::<_, Option<String>>("consumer"),
        "created_at": r.get::<_, DateTime<Utc>>("created_at"),
        "expires_at": r.get::<_, DateTime<Utc>>("expires_at"),
        "revoked_at": r.get::<_, Option<DateTime<Utc>>>("revoked_at"),
    })
}

const COLUMNS: &str = "link_id, kind, responder, run_id, consumer, created_at, expires_at, revoked_at";

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(b): ApiJson<CreateLink>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let kind = LinkKind::parse(&b.kind).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_kind",
            format!(
                "kind {:?} is not one Herald makes: use \"inbox\" (a page that answers operations) or \"portal\" (a page that manages endpoints)",
                b.kind
            ),
        )
    })?;
    let responder = match kind {
        LinkKind::Inbox => Some(inbox_scope(&b)?),
        LinkKind::Portal => {
            portal_scope(&b)?;
            None
        }
    };
    let life = match b.expires_in.as_deref() {
        None => DEFAULT_LIFE,
        Some(s) => herald_core::config::parse_duration(s)
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .filter(|d| *d > chrono::Duration::zero() && *d <= MAX_LIFE)
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_expires_in",
                    format!("expires_in {s:?}: a duration like 30m, 24h or 7d, at most 30d (default 24h)"),
                )
            })?,
    };
    let now = state.clock.now();
    let id = LinkId::generate(now);
    let credential = token::generate_with(LINK_PREFIX, tenant.as_str());
    let client = state.pool.get().await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO herald.links (tenant_id, link_id, kind, credential_hash, responder, run_id, consumer, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
            ),
            &[
                &tenant,
                &id,
                &kind.as_str(),
                &token::hash(&credential),
                &responder,
                &b.run_id,
                &b.consumer,
                &now,
                &(now + life),
            ],
        )
        .await?;
    let mut v = link_json(&row);
    v["url"] = json!(format!("/{kind}#{credential}"));
    Ok((StatusCode::CREATED, Json(v)))
}

/// An inbox link's fields: who answers (required), and the run it is held to (optional).
fn inbox_scope(b: &CreateLink) -> Result<String, ApiError> {
    if b.consumer.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_consumer",
            "consumer belongs to portal links; an inbox link takes responder and, optionally, run_id",
        ));
    }
    let responder = b.responder.as_deref().map(str::trim).unwrap_or("");
    if responder.is_empty() || responder.chars().count() > 200 || responder.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_responder",
            "responder: the name of the person who answers through this link, 1 to 200 characters (it is recorded with each answer)",
        ));
    }
    if let Some(run) = &b.run_id {
        if run.is_empty() || run.chars().count() > 200 {
            return Err(ApiError::unprocessable(
                "invalid_run_id",
                "run_id: 1 to 200 characters, or leave it out for every run",
            ));
        }
    }
    Ok(responder.to_string())
}

/// A portal link's one field: the consumer whose endpoints it manages (none: every endpoint).
fn portal_scope(b: &CreateLink) -> Result<(), ApiError> {
    if b.responder.is_some() || b.run_id.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "responder and run_id belong to inbox links; a portal link takes consumer (leave it out for every endpoint)",
        ));
    }
    if let Some(c) = &b.consumer {
        herald_core::validate::consumer(c)?;
    }
    Ok(())
}

fn list_sql(page: &Request) -> String {
    format!("SELECT {COLUMNS} FROM herald.links WHERE tenant_id = $1{}", page.tail(2))
}

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Listed<Value>>, ApiError> {
    let page = page.request(&page::LINKS)?;
    let client = state.pool.get().await?;
    let (client, tenant) = (&client, &tenant);
    page.answer(|r| async move { r.rows(client, &list_sql(&r), &[tenant]).await }, |r| Ok(link_json(r))).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(id): ApiPath<LinkId>,
) -> Result<StatusCode, ApiError> {
    let client = state.pool.get().await?;
    let n = client
        .execute(
            "UPDATE herald.links SET revoked_at = $3 WHERE tenant_id = $1 AND link_id = $2 AND revoked_at IS NULL",
            &[&tenant, &id, &state.clock.now()],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::not_found("link", id.as_str()));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    credential: String,
}

/// `Secure` when the request came over https (Herald behind a TLS-terminating proxy says so in
/// `X-Forwarded-Proto`): a browser then never sends the cookie over plain http.
fn cookie(headers: &HeaderMap, value: &str, max_age: i64) -> String {
    let https =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if https { "; Secure" } else { "" }
    )
}

/// `POST /v1/sessions {"credential"}`: a link's credential for a session cookie. No token: the
/// credential is the proof.
pub async fn exchange(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Exchange>,
) -> Result<Response, ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this link is unknown, has expired or was revoked: ask whoever sent it for a new one",
        )
    };
    let tenant: TenantId =
        token::tenant_of_with(LINK_PREFIX, &b.credential).and_then(|t| t.parse().ok()).ok_or_else(refused)?;
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT l.link_id, l.kind, l.responder, l.run_id, l.consumer, l.expires_at \
               FROM herald.links l JOIN herald.tenants n ON n.tenant_id = l.tenant_id \
              WHERE l.tenant_id = $1 AND l.credential_hash = $2 AND l.revoked_at IS NULL AND l.expires_at > $3 \
                AND n.disabled_at IS NULL",
            &[&tenant, &token::hash(&b.credential), &now],
        )
        .await?
        .ok_or_else(refused)?;
    let session = token::generate_with(SESSION_PREFIX, tenant.as_str());
    let expires_at: DateTime<Utc> = row.get("expires_at");
    let link_id: String = row.get("link_id");
    tx.execute(
        "INSERT INTO herald.sessions (tenant_id, session_hash, link_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        &[&tenant, &token::hash(&session), &link_id, &now, &expires_at],
    )
    .await?;
    // A link keeps its newest sessions only: one person's browsers, not a script's thousands.
    tx.execute(
        "DELETE FROM herald.sessions WHERE tenant_id = $1 AND link_id = $2 AND session_hash IN ( \
           SELECT session_hash FROM herald.sessions WHERE tenant_id = $1 AND link_id = $2 \
            ORDER BY created_at DESC, session_hash OFFSET $3)",
        &[&tenant, &link_id, &MAX_SESSIONS],
    )
    .await?;
    tx.commit().await?;
    let max_age = (expires_at - now).num_seconds().max(1);
    let body = json!({
        "kind": row.get::<_, String>("kind"),
        "responder": row.get::<_, Option<String>>("responder"),
        "run_id": row.get::<_, Option<String>>("run_id"),
        "consumer": row.get::<_, Option<String>>("consumer"),
        "expires_at": expires_at,
    });
    Ok((StatusCode::CREATED, [(header::SET_COOKIE, cookie(&headers, &session, max_age))], Json(body)).into_response())
}

/// `GET /v1/sessions/current`: what the cookie's session may do.
pub async fn current(
    Tenant(_): Tenant,
    super::extract::Link(link): super::extract::Link,
) -> Result<Json<Value>, ApiError> {
    let Some(link) = link else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no session: open a link (or send a token, which has no session)",
        ));
    };
    Ok(Json(json!({
        "kind": link.kind.as_str(),
        "link_id": link.link_id,
        "responder": link.responder,
        "run_id": link.run_id,
        "consumer": link.consumer,
        "expires_at": link.expires_at,
    })))
}

/// `DELETE /v1/sessions/current`: ends the cookie's session (signing out), and clears the cookie.
pub async fn end(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(session) = session_cookie(&headers) {
        if let Some(tenant) = token::tenant_of_with(SESSION_PREFIX, session).and_then(|t| TenantId::parse(t).ok()) {
            let client = state.pool.get().await?;
            client
                .execute(
                    "DELETE FROM herald.sessions WHERE tenant_id = $1 AND session_hash = $2",
                    &[&tenant, &token::hash(session)],
                )
                .await?;
        }
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie(&headers, "", 0))]).into_response())
}
