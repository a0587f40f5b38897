//! Human-in-the-loop operations (contract section 6): approvals and human contacts, named by
//! `call_id`. Creating publishes `*_requested`, answering `*_completed`, expiry `*_expired`;
//! each in the same transaction as the state change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Datelike, Utc};
use herald_core::config::RetrySchedule;
use herald_core::dialect::PayloadFormat;
use herald_core::id::CallId;
use herald_core::signing::Secret;
use herald_core::validate::{self, Invalid};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, Link, Tenant};
use super::AppState;
use crate::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Approval,
    HumanContact,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Approval => "approval",
            Kind::HumanContact => "human_contact",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Approval => "approval",
            Kind::HumanContact => "human contact",
        }
    }
}

const MAX_TEXT: usize = 16 * 1024;

/// What both kinds share on creation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApproval {
    call_id: Option<String>,
    run_id: Option<String>,
    #[serde(rename = "fn")]
    function: String,
    kwargs: Value,
    state: Option<Value>,
    expires_at: Option<DateTime<Utc>>,
    callback_url: Option<String>,
    callback_secret: Option<String>,
    retry_schedule: Option<Vec<String>>,
    callback_payload_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHumanContact {
    call_id: Option<String>,
    run_id: Option<String>,
    msg: String,
    subject: Option<String>,
    state: Option<Value>,
    expires_at: Option<DateTime<Utc>>,
    callback_url: Option<String>,
    callback_secret: Option<String>,
    retry_schedule: Option<Vec<String>>,
    callback_payload_format: Option<String>,
}

struct NewOperation {
    kind: Kind,
    call_id: Option<String>,
    run_id: Option<String>,
    spec: Value,
    state: Option<Value>,
    expires_at: Option<DateTime<Utc>>,
    callback_url: Option<String>,
    callback_secret: Option<String>,
    retry_schedule: Option<Vec<String>>,
    callback_payload_format: Option<String>,
}

fn check_text(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.chars().count() > max || s.contains('\0') {
        return Err(Invalid::new(
            "invalid_field",
            format!("{field} is longer than {max} characters or holds a NUL; shorten it"),
        ));
    }
    Ok(())
}

pub async fn create_approval(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(b): ApiJson<CreateApproval>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if b.function.is_empty() || b.function.chars().count() > 200 || b.function.chars().any(char::is_control) {
        return Err(Invalid::new(
            "invalid_fn",
            "fn is the name of the function to approve: 1 to 200 characters, no control characters",
        )
        .into());
    }
    let op = NewOperation {
        kind: Kind::Approval,
        call_id: b.call_id,
        run_id: b.run_id,
        spec: json!({"fn": b.function, "kwargs": b.kwargs}),
        state: b.state,
        expires_at: b.expires_at,
        callback_url: b.callback_url,
        callback_secret: b.callback_secret,
        retry_schedule: b.retry_schedule,
        callback_payload_format: b.callback_payload_format,
    };
    create(state, tenant, op).await
}

pub async fn create_human_contact(
    State(state): State<AppState>,
    tenant: Tenant,
    ApiJson(b): ApiJson<CreateHumanContact>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if b.msg.trim().is_empty() {
        return Err(Invalid::new("invalid_msg", "msg is the question for the human: give some text").into());
    }
    check_text("msg", &b.msg, MAX_TEXT)?;
    if let Some(s) = &b.subject {
        check_text("subject", s, 500)?;
    }
    let op = NewOperation {
        kind: Kind::HumanContact,
        call_id: b.call_id,
        run_id: b.run_id,
        spec: json!({"msg": b.msg, "subject": b.subject}),
        state: b.state,
        expires_at: b.expires_at,
        callback_url: b.callback_url,
        callback_secret: b.callback_secret,
        retry_schedule: b.retry_schedule,
        callback_payload_format: b.callback_payload_format,
    };
    create(state, tenant, op).await
}

async fn create(
    state: AppState,
    Tenant(tenant): Tenant,
    op: NewOperation,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = state.clock.now();
    let call_id = op.call_id.as_deref().map(CallId::parse).transpose()?;
    if let Some(r) = &op.run_id {
        check_text("run_id", r, 200)?;
    }
    // Stored as parsed (lower-case scheme and host, percent-encoded), as endpoint URLs are.
    let callback_url =
        op.callback_url.as_deref().map(|u| validate::target_url("callback_url", u, &state.allow)).transpose()?;
    if let Some(u) = &callback_url {
        state.check_url(&tenant, "callback_url", u).await?;
    }
    let callback_url: Option<String> = callback_url.map(|u| u.to_string());
    validate::callback_fields(
        callback_url.is_some(),
        op.callback_secret.is_some() || op.callback_payload_format.is_some(),
        op.retry_schedule.is_some(),
        "operation",
    )?;
    let callback_format = op.callback_payload_format.as_deref().map(PayloadFormat::parse).transpose()?;
    if let Some(s) = &op.callback_secret {
        validate::secret("callback_secret", s)?;
    }
    let schedule_ms: Option<Vec<i64>> =
        op.retry_schedule.as_deref().map(RetrySchedule::parse).transpose()?.as_ref().map(RetrySchedule::stored);
    if op.expires_at.is_some_and(|t| t.year() > 9999) {
        return Err(Invalid::new(
            "invalid_expires_at",
            "expires_at is after the year 9999: give a time Herald can write back in RFC 3339",
        )
        .into());
    }
    // An expires_at in the past is refused, except for a retry of a create that succeeded
    // (its answer lost): that one reads the operation back below.
    let expired_request = op.expires_at.is_some_and(|t| t <= now);
    // What makes two creates "the same": every field the caller gave.
    let request = json!({
        "kind": op.kind.as_str(), "run_id": op.run_id, "spec": op.spec, "state": op.state,
        "expires_at": op.expires_at, "callback_url": callback_url, "callback_secret": op.callback_secret,
        "retry_schedule": schedule_ms,
    });
    let mut request = request;
    if let Some(f) = callback_format {
        request["callback_payload_format"] = Value::from(f.name());
    }
    let hash = format!("{:x}", Sha256::digest(request.to_string().as_bytes()));
    // A callback is always signed: without a secret from the caller, Herald makes one and
    // answers it once, on creation.
    let generated = (callback_url.is_some() && op.callback_secret.is_none()).then(Secret::generate);
    let secret = op.callback_secret.clone().or_else(|| generated.as_ref().map(|s| s.expose().to_string()));
    let call_id = call_id.unwrap_or_else(|| CallId::generate(now));

    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let inserted: Option<Value> = if expired_request {
        None
    } else {
        tx.query_one(
            sql::CREATE_OPERATION,
            &[
                &tenant,
                &call_id,
                &op.kind.as_str(),
                &op.run_id,
                &op.spec,
                &op.state,
                &now,
                &op.expires_at,
                &callback_url,
                &secret,
                &schedule_ms,
                &hash,
            ],
        )
        .await?
        .get(0)
    };
    if let Some(mut answer) = inserted {
        if let Some(format) = callback_format {
            tx.execute(sql::SET_OPERATION_CALLBACK_FORMAT, &[&tenant, &call_id, &format.name()]).await?;
        }
        tx.commit().await?;
        state.metrics.published("http");
        if let Some(g) = generated {
            answer["callback_secret"] = Value::String(g.expose().to_string());
        }
        return Ok((StatusCode::CREATED, Json(answer)));
    }
    let Some(existing) = tx.query_opt(sql::EXISTING_OPERATION, &[&tenant, &call_id]).await? else {
        return Err(Invalid::new(
            "invalid_expires_at",
            "expires_at is in the past: give a future RFC 3339 time, or leave it out",
        )
        .into());
    };
    let (kind, existing_hash): (String, String) = (existing.get(0), existing.get(1));
    if kind == op.kind.as_str() && existing_hash == hash {
        let mut answer: Value = existing.get(2);
        if callback_url.is_some() && op.callback_secret.is_none() {
            // The same create again, most likely because the first answer was lost: the secret
            // Herald made for the callback is answered again, to the tenant that asked for it.
            answer["callback_secret"] = json!(existing.get::<_, Option<String>>(3));
        }
        return Ok((StatusCode::OK, Json(answer)));
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "call_id_conflict",
        format!(
            "call_id {call_id:?} already names a{} {} created with another body; use a new call_id, or send the same body to read it back",
            if kind == "approval" { "n" } else { "" },
            kind.replace('_', " ")
        ),
    ))
}

pub async fn get_approval(s: State<AppState>, t: Tenant, l: Link, p: ApiPath<CallId>) -> Result<Json<Value>, ApiError> {
    get_one(s, t, l, p, Kind::Approval).await
}

pub async fn get_human_contact(
    s: State<AppState>,
    t: Tenant,
    l: Link,
    p: ApiPath<CallId>,
) -> Result<Json<Value>, ApiError> {
    get_one(s, t, l, p, Kind::HumanContact).await
}

/// The run a link's session is narrowed to, if any.
fn run_of(link: &Option<super::extract::LinkScope>) -> Option<&str> {
    link.as_ref().and_then(|l| l.run_id.as_deref())
}

async fn get_one(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Link(link): Link,
    ApiPath(call_id): ApiPath<CallId>,
    kind: Kind,
) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    match client.query_opt(sql::GET_OPERATION, &[&tenant, &call_id, &kind.as_str(), &run_of(&link)]).await? {
        Some(row) => Ok(Json(row.get(0))),
        None => Err(ApiError::not_found(kind.noun(), &call_id)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    order: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    before: Option<String>,
}

type Listed = Json<super::page::Listed<Value>>;

pub async fn list_approvals(
    s: State<AppState>,
    t: Tenant,
    l: Link,
    q: ApiQuery<ListQuery>,
) -> Result<Listed, ApiError> {
    list(s, t, l, q, Kind::Approval).await
}

pub async fn list_human_contacts(
    s: State<AppState>,
    t: Tenant,
    l: Link,
    q: ApiQuery<ListQuery>,
) -> Result<Listed, ApiError> {
    list(s, t, l, q, Kind::HumanContact).await
}

async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Link(link): Link,
    ApiQuery(q): ApiQuery<ListQuery>,
    kind: Kind,
) -> Result<Listed, ApiError> {
    const STATES: [&str; 5] = ["pending", "approved", "rejected", "answered", "expired"];
    if let Some(s) = &q.status {
        if !STATES.contains(&s.as_str()) {
            return Err(ApiError::unprocessable(
                "invalid_status",
                format!("status {s:?} is unknown: use one of pending, approved, rejected, answered, expired"),
            ));
        }
    }
    let settled = match q.order.as_deref() {
        None | Some("call_id") => false,
        Some("settled") => true,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_order",
                format!("order {other:?} is unknown: use call_id (the default) or settled (answered and expired ones, last settled first)"),
            ))
        }
    };
    let list = match (kind, settled) {
        (Kind::Approval, false) => &super::page::APPROVALS,
        (Kind::HumanContact, false) => &super::page::HUMAN_CONTACTS,
        (Kind::Approval, true) => &super::page::APPROVALS_SETTLED,
        (Kind::HumanContact, true) => &super::page::HUMAN_CONTACTS_SETTLED,
    };
    let page = super::page::Page { limit: q.limit, cursor: q.cursor, before: q.before }.request(list)?;
    let client = state.pool.get().await?;
    let run = run_of(&link);
    let (client, tenant, kind, status, run) = (&client, &tenant, &kind.as_str(), &q.status, &run);
    page.answer(
        |r| async move { r.rows(client, &sql::list_operations(&r, settled), &[tenant, kind, status, run]).await },
        |r| Ok(r.get(1)),
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    approved: bool,
    comment: Option<String>,
    responder: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanContactAnswer {
    response: String,
    responder: Option<String>,
}

pub async fn respond_approval(
    s: State<AppState>,
    t: Tenant,
    l: Link,
    p: ApiPath<CallId>,
    ApiJson(b): ApiJson<ApprovalAnswer>,
) -> Result<Json<Value>, ApiError> {
    if let Some(c) = &b.comment {
        check_text("comment", c, MAX_TEXT)?;
    }
    let status = if b.approved { "approved" } else { "rejected" };
    respond(
        s,
        t,
        l,
        p,
        Kind::Approval,
        Answer { status, approved: Some(b.approved), comment: b.comment, response: None, responder: b.responder },
    )
    .await
}

pub async fn respond_human_contact(
    s: State<AppState>,
    t: Tenant,
    l: Link,
    p: ApiPath<CallId>,
    ApiJson(b): ApiJson<HumanContactAnswer>,
) -> Result<Json<Value>, ApiError> {
    check_text("response", &b.response, MAX_TEXT)?;
    respond(
        s,
        t,
        l,
        p,
        Kind::HumanContact,
        Answer {
            status: "answered",
            approved: None,
            comment: None,
            response: Some(b.response),
            responder: b.responder,
        },
    )
    .await
}

struct Answer {
    status: &'static str,
    approved: Option<bool>,
    comment: Option<String>,
    response: Option<String>,
    responder: Option<String>,
}

async fn respond(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Link(link): Link,
    ApiPath(call_id): ApiPath<CallId>,
    kind: Kind,
    mut answer: Answer,
) -> Result<Json<Value>, ApiError> {
    if let Some(link) = &link {
        // Who answers through a link is the link's responder, whatever the page sends.
        answer.responder = link.responder.clone();
    }
    if let Some(r) = &answer.responder {
        check_text("responder", r, 200)?;
    }
    let now = state.clock.now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx.query_opt(sql::LOCK_OPERATION, &[&tenant, &call_id, &kind.as_str(), &run_of(&link)]).await?
    else {
        return Err(ApiError::not_found(kind.noun(), &call_id));
    };
    let status: String = row.get(0);
    let expires_at: Option<DateTime<Utc>> = row.get(1);
    if status == "pending" && expires_at.is_some_and(|t| t <= now) {
        // Its time is up: expire it (with its event) now, then refuse the late answer. Only this
        // one: the others are the poller's, and this transaction already holds this row's lock.
        tx.execute(sql::EXPIRE_OPERATION, &[&tenant, &now, &call_id]).await?;
        tx.commit().await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "operation_expired",
            format!(
                "the {} expired at {}; a late answer is not taken",
                kind.noun(),
                expires_at.unwrap_or(now).to_rfc3339()
            ),
        ));
    }
    if status != "pending" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            if status == "expired" { "operation_expired" } else { "already_answered" },
            format!("the {} is already {status}; a decision is final", kind.noun()),
        ));
    }
    let answered: Option<Value> = tx
        .query_one(
            sql::ANSWER_OPERATION,
            &[
                &tenant,
                &call_id,
                &kind.as_str(),
                &answer.status,
                &answer.approved,
                &answer.comment,
                &answer.response,
                &answer.responder,
                &now,
            ],
        )
        .await?
        .get(0);
    let Some(answered) = answered else {
        return Err(ApiError::internal("an operation locked as pending could not be answered"));
    };
    tx.commit().await?;
    state.metrics.published("http");
    Ok(Json(answered))
}
