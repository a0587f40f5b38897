//! An example agent server that asks a human before it acts, through Herald.
//!
//! A thread is a conversation kept in PostgreSQL. When the (deterministic, stand-in) model wants
//! to call the `send_email` tool, the agent asks Herald for an approval with the tool call's id
//! as `call_id` and `{"thread_id"}` as `state`, answers its own caller `202` and stops: nothing
//! waits in memory. When the human answers, Herald's `approval_completed` webhook arrives; the
//! agent verifies it, dedupes it by `webhook-id` in the same transaction as the thread's change,
//! finds the thread by `state.thread_id` and `call_id`, appends the answer as the tool's result
//! (a rejection's comment is what the model reads), and runs the model on to its final answer.
//!
//! Routes: `POST /threads {"message", "to", "expires_in_s"?}` (202), `GET /threads/{id}`,
//! `POST /webhooks/herald` (Herald's callback).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::Pool;
use herald_receiver::{OpState, Verifier};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub herald_url: String,
    pub herald_token: String,
    /// Where Herald reaches this agent (its callback URL is `{public_url}/webhooks/herald`).
    pub public_url: String,
    /// The `whsec_` secret this agent gives Herald for its callbacks.
    pub webhook_secret: String,
}

struct Agent {
    pool: Pool,
    http: reqwest::Client,
    verifier: Verifier,
    config: Config,
}

type Shared = Arc<Agent>;

const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS agent;
CREATE TABLE IF NOT EXISTS agent.threads (
    thread_id       text PRIMARY KEY,
    status          text NOT NULL,
    waiting_call_id text,
    messages        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Herald delivers at least once: a webhook-id seen before changes nothing.
CREATE TABLE IF NOT EXISTS agent.processed_webhooks (
    webhook_id  text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
-- The tool's side effect, to show it happens once per approval.
CREATE TABLE IF NOT EXISTS agent.sent_emails (
    call_id text PRIMARY KEY,
    to_addr text NOT NULL,
    body    text NOT NULL
);";

/// Builds the agent's router, creating its tables if needed.
pub async fn app(config: Config) -> anyhow::Result<Router> {
    let pg: tokio_postgres::Config = config.database_url.parse()?;
    let manager = deadpool_postgres::Manager::new(pg, tokio_postgres::NoTls);
    let pool = Pool::builder(manager).max_size(8).build()?;
    pool.get().await?.batch_execute(SCHEMA).await?;
    let verifier = Verifier::new(&[config.webhook_secret.as_str()])?;
    let agent = Arc::new(Agent { pool, http: reqwest::Client::new(), verifier, config });
    Ok(Router::new()
        .route("/threads", post(start_thread))
        .route("/threads/{id}", get(get_thread))
        .route("/webhooks/herald", post(herald_webhook))
        .with_state(agent))
}

/// The model, standing in for an LLM: deterministic, no network. Given the conversation, the
/// next assistant message: a tool call, or a final answer that reads the tool's result.
fn model(messages: &[Value], thread_id: &str) -> Value {
    let last = messages.last().cloned().unwrap_or(Value::Null);
    match last["role"].as_str() {
        Some("user") => json!({
            "role": "assistant",
            "tool_call": {
                "id": format!("call_{thread_id}_{}", messages.len()),
                "name": "send_email",
                "arguments": {"to": last["to"], "body": last["content"]},
            }
        }),
        Some("tool") => {
            let text = match last["outcome"].as_str() {
                Some("approved") => format!("Done: the email to {} was sent.", last["to"].as_str().unwrap_or("?")),
                Some("rejected") => format!(
                    "I did not send the email. The reviewer said: {}",
                    last["comment"].as_str().unwrap_or("(no comment)")
                ),
                _ => "No one answered in time, so I did not send the email.".to_string(),
            };
            json!({"role": "assistant", "content": text})
        }
        _ => json!({"role": "assistant", "content": "Nothing to do."}),
    }
}

#[derive(Deserialize)]
struct StartThread {
    message: String,
    to: String,
    expires_in_s: Option<i64>,
}

fn internal(e: impl std::fmt::Display) -> (StatusCode, String) {
    tracing::error!(error = %e, "agent error");
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn start_thread(
    State(agent): State<Shared>,
    Json(req): Json<StartThread>,
) -> Result<(StatusCode, Json<Value>), (StatusCode, String)> {
    let thread_id = format!("th_{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let mut messages = vec![json!({"role": "user", "content": req.message, "to": req.to})];
    let step = model(&messages, &thread_id);
    let call = step["tool_call"].clone();
    messages.push(step);
    let call_id = call["id"].as_str().unwrap_or_default().to_string();
    // The thread is saved, waiting, before Herald is asked: a webhook can never find no thread.
    // (An example keeps it short: a production agent would also re-send the same approval request
    // for threads left waiting by a crash here; Herald answers the same create with 200.)
    let client = agent.pool.get().await.map_err(internal)?;
    client
        .execute(
            "INSERT INTO agent.threads (thread_id, status, waiting_call_id, messages) VALUES ($1, 'waiting_for_approval', $2, $3)",
            &[&thread_id, &call_id, &Value::Array(messages)],
        )
        .await
        .map_err(internal)?;
    let mut approval = json!({
        "call_id": call_id,
        "run_id": thread_id,
        "fn": call["name"],
        "kwargs": call["arguments"],
        "state": {"thread_id": thread_id},
        "callback_url": format!("{}/webhooks/herald", agent.config.public_url),
        "callback_secret": agent.config.webhook_secret,
    });
    if let Some(s) = req.expires_in_s {
        let at = chrono::Duration::try_seconds(s)
            .and_then(|d| chrono::Utc::now().checked_add_signed(d))
            .ok_or((StatusCode::UNPROCESSABLE_ENTITY, "expires_in_s is out of range".to_string()))?;
        approval["expires_at"] = json!(at);
    }
    let res = agent
        .http
        .post(format!("{}/v1/approvals", agent.config.herald_url))
        .bearer_auth(&agent.config.herald_token)
        .json(&approval)
        .send()
        .await
        .map_err(internal)?;
    if !res.status().is_success() {
        let why = res.text().await.unwrap_or_default();
        client
            .execute(
                "UPDATE agent.threads SET status = 'failed', waiting_call_id = NULL, updated_at = now() WHERE thread_id = $1",
                &[&thread_id],
            )
            .await
            .map_err(internal)?;
        return Err((StatusCode::BAD_GATEWAY, format!("Herald refused the approval: {why}")));
    }
    // The agent stops here; the webhook resumes it.
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"thread_id": thread_id, "status": "waiting_for_approval", "call_id": call_id})),
    ))
}

async fn get_thread(State(agent): State<Shared>, Path(id): Path<String>) -> Result<Json<Value>, (StatusCode, String)> {
    let client = agent.pool.get().await.map_err(internal)?;
    let row = client
        .query_opt("SELECT status, waiting_call_id, messages FROM agent.threads WHERE thread_id = $1", &[&id])
        .await
        .map_err(internal)?
        .ok_or((StatusCode::NOT_FOUND, "no such thread".to_string()))?;
    Ok(Json(
        json!({"thread_id": id, "status": row.get::<_, String>(0), "waiting_call_id": row.get::<_, Option<String>>(1), "messages": row.get::<_, Value>(2)}),
    ))
}

async fn herald_webhook(
    State(agent): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, &'static str), (StatusCode, String)> {
    let webhook = agent.verifier.verify(&headers, &body).map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    if !matches!(webhook.event.event_type.as_str(), "approval_completed" | "approval_expired") {
        return Ok((StatusCode::NO_CONTENT, "not for this agent"));
    }
    let op = webhook.event.operation().map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let mut client = agent.pool.get().await.map_err(internal)?;
    let tx = client.transaction().await.map_err(internal)?;
    // Dedupe in the same transaction as the thread's change: both happen, or neither.
    let first = tx
        .execute("INSERT INTO agent.processed_webhooks (webhook_id) VALUES ($1) ON CONFLICT DO NOTHING", &[&webhook.id])
        .await
        .map_err(internal)?
        == 1;
    if !first {
        return Ok((StatusCode::OK, "duplicate"));
    }
    let thread_id = op.state["thread_id"].as_str().unwrap_or_default().to_string();
    let Some(row) = tx
        .query_opt(
            "SELECT status, waiting_call_id, messages FROM agent.threads WHERE thread_id = $1 FOR UPDATE",
            &[&thread_id],
        )
        .await
        .map_err(internal)?
    else {
        tx.commit().await.map_err(internal)?;
        return Ok((StatusCode::OK, "unknown thread"));
    };
    let status: String = row.get(0);
    let waiting: Option<String> = row.get(1);
    if status != "waiting_for_approval" || waiting.as_deref() != Some(op.call_id.as_str()) {
        tx.commit().await.map_err(internal)?;
        return Ok((StatusCode::OK, "not waiting for this call"));
    }
    let mut messages: Vec<Value> = serde_json::from_value(row.get(2)).map_err(internal)?;
    let args =
        messages.iter().rev().find_map(|m| m.get("tool_call")).map(|c| c["arguments"].clone()).unwrap_or(Value::Null);
    let outcome = match op.status.state {
        OpState::Approved => "approved",
        OpState::Rejected => "rejected",
        _ => "expired",
    };
    if outcome == "approved" {
        // The tool runs only now, once: its "side effect" is a row in this same transaction,
        // keyed by the call id. A real tool (an email provider) would take the call id as its
        // idempotency key, or go through an outbox of its own.
        tx.execute(
            "INSERT INTO agent.sent_emails (call_id, to_addr, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&op.call_id, &args["to"].as_str().unwrap_or_default(), &args["body"].as_str().unwrap_or_default()],
        )
        .await
        .map_err(internal)?;
    }
    messages.push(json!({
        "role": "tool", "tool_call_id": op.call_id, "outcome": outcome,
        "comment": op.status.comment, "responder": op.status.responder, "to": args["to"],
    }));
    let answer = model(&messages, &thread_id);
    messages.push(answer);
    tx.execute(
        "UPDATE agent.threads SET status = $2, waiting_call_id = NULL, messages = $3, updated_at = now() WHERE thread_id = $1",
        &[&thread_id, &if outcome == "expired" { "expired" } else { "done" }, &Value::Array(messages)],
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok((StatusCode::OK, "resumed"))
}
