//! Every statement of herald-producer, by name. Each names one tenant (shared/scale-out.md,
//! rule 2) and takes its time as a parameter (rule 4).

/// `$7` is the callback's retry schedule in milliseconds, as the function's `interval[]`; `$11`
/// the door the outbox-poller counts it under (`rust`), or NULL when it was counted already.
pub const PUBLISH_EVENT: &str =
    "SELECT event_id, created_at, duplicate, generated_secret FROM herald.publish_event_json(\
     $1, $2, $3::text::json, $4, $5, $6, \
     (SELECT array_agg(ms * interval '1 millisecond' ORDER BY n) FROM unnest($7::int8[]) WITH ORDINALITY s(ms, n)), \
     $8, $9, $10, $11, $12)";

/// An event's callback format, beside herald.publish (which takes none).
pub const SET_CALLBACK_FORMAT: &str =
    "UPDATE herald.events SET callback_payload_format = $3 WHERE tenant_id = $1 AND event_id = $2";

/// An operation's callback format, beside herald.create_operation (which takes none).
pub const SET_OPERATION_CALLBACK_FORMAT: &str =
    "UPDATE herald.operations SET callback_payload_format = $3 WHERE tenant_id = $1 AND call_id = $2";

/// A tenant token by its hash, with what decides whether it may be used.
pub const TOKEN_LOOKUP: &str = "SELECT t.scope, t.expires_at, t.revoked_at, n.disabled_at \
       FROM herald.api_tokens t JOIN herald.tenants n ON n.tenant_id = t.tenant_id \
      WHERE t.tenant_id = $1 AND t.token_hash = $2";

pub const OPERATOR_TOKEN_LOOKUP: &str =
    "SELECT expires_at, revoked_at FROM herald.operator_tokens WHERE token_hash = $1";

pub const CREATE_TENANT: &str =
    "INSERT INTO herald.tenants (tenant_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// `$1` tenant, `$2` hash, `$3` now, `$4` token id, `$5` name, `$6` scope, `$7` expiry.
pub const CREATE_TOKEN: &str = "INSERT INTO herald.api_tokens \
       (tenant_id, token_hash, created_at, token_id, name, scope, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The data as text: it is answered as the publisher sent it, never parsed.
pub const GET_EVENT: &str = "SELECT ev.event_id, ev.event_type, ev.created_at, ev.data::text AS data, \
            ev.callback_url, ev.deliver_at, f.error AS fan_out_error \
       FROM herald.events ev \
       LEFT JOIN herald.fanout_failures f ON f.tenant_id = $1 AND f.event_id = ev.event_id \
      WHERE ev.tenant_id = $1 AND ev.event_id = $2";

const ENDPOINT_COLUMNS: &str = "endpoint_id, url, description, event_types, status, disabled_reason, \
     signature_scheme, retry_schedule_ms, max_in_flight, rate_limit_per_s, created_at, updated_at, secret, \
     signature_header, headers::text AS headers, timeout_ms, payload_format, ordering";

pub fn insert_endpoint() -> String {
    format!(
        "INSERT INTO herald.endpoints (tenant_id, endpoint_id, url, description, event_types, \
         signature_scheme, secret, retry_schedule_ms, max_in_flight, rate_limit_per_s, created_at, updated_at, \
         signature_header, headers, timeout_ms, payload_format, ordering) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13::text::jsonb, $14, $15, $16) \
         RETURNING {ENDPOINT_COLUMNS}"
    )
}

/// The endpoint, locked for a PATCH or a rotation that must see it whole (NO KEY UPDATE: fan-out's
/// FOR KEY SHARE of it goes on meanwhile).
pub fn lock_endpoint() -> String {
    format!(
        "SELECT {ENDPOINT_COLUMNS} FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id = $2 FOR NO KEY UPDATE"
    )
}

/// The endpoint for a replay, held against a PATCH (one that makes it FIFO waits for the
/// replay's deliveries, and orders them), not against fan-out.
pub fn share_endpoint() -> String {
    format!("SELECT {ENDPOINT_COLUMNS} FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id = $2 FOR SHARE")
}

/// Before an endpoint is made FIFO: waits for every fan-out that holds it (FOR KEY SHARE) to
/// commit, so that the backfill after it sees their deliveries, and fan-outs after it see FIFO.
pub const LOCK_ENDPOINT_FULLY: &str =
    "SELECT 1 FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id = $2 FOR UPDATE";

pub fn get_endpoint() -> String {
    format!("SELECT {ENDPOINT_COLUMNS} FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id = $2")
}

pub fn list_endpoints() -> String {
    format!(
        "SELECT {ENDPOINT_COLUMNS} FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id > $2 \
         ORDER BY endpoint_id LIMIT $3"
    )
}

/// PATCH, on the row [`lock_endpoint`] holds: every settable column as the request and the row
/// together make it. A new secret (`$15` not NULL) is a rotation: the old one keeps signing
/// until `$16`. A new scheme ends any overlap: a secret of the old scheme cannot sign in the
/// new one.
pub fn update_endpoint() -> String {
    format!(
        "UPDATE herald.endpoints SET url = $3, description = $4, event_types = $5, signature_scheme = $6, \
           retry_schedule_ms = $7, max_in_flight = $8, rate_limit_per_s = $9, signature_header = $10, \
           headers = $11::text::jsonb, timeout_ms = $12, payload_format = $13, updated_at = $14, \
           previous_secret = CASE WHEN signature_scheme <> $6 THEN NULL \
                                  WHEN $15::text IS NULL THEN previous_secret ELSE secret END, \
           previous_secret_until = CASE WHEN signature_scheme <> $6 THEN NULL \
                                        WHEN $15::text IS NULL THEN previous_secret_until ELSE $16 END, \
           secret = coalesce($15, secret), ordering = $17 \
         WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING {ENDPOINT_COLUMNS}"
    )
}

/// An endpoint made FIFO: its open deliveries get their event's key, which orders them.
pub const FIFO_BACKFILL: &str = "UPDATE herald.deliveries d SET seq = ev.seq FROM herald.events ev \
     WHERE d.tenant_id = $1 AND d.target = $2 AND d.state = 'pending' AND d.seq IS NULL \
       AND ev.tenant_id = $1 AND ev.event_id = d.event_id";

pub fn rotate_secret() -> String {
    format!(
        "UPDATE herald.endpoints SET previous_secret = secret, previous_secret_until = $4, \
           secret = $3, updated_at = $5 \
         WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING {ENDPOINT_COLUMNS}"
    )
}

pub fn set_status() -> String {
    format!(
        "UPDATE herald.endpoints SET status = $3, disabled_reason = $4, updated_at = $5 \
         WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING {ENDPOINT_COLUMNS}"
    )
}

/// The endpoint a test event goes to, held as fan-out holds it.
pub const TEST_TARGET: &str = "SELECT url, status, ordering = 'fifo' FROM herald.endpoints \
     WHERE tenant_id = $1 AND endpoint_id = $2 FOR KEY SHARE";

/// A `herald.test` event: stored like any other, but never in the outbox (it goes to one endpoint).
pub const INSERT_TEST_EVENT: &str =
    "INSERT INTO herald.events (tenant_id, event_id, seq, event_type, data, created_at) \
     VALUES ($1, $2, $3, 'herald.test', $4::text::json, $5)";

pub const DELETE_ENDPOINT: &str = "DELETE FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id = $2";

pub const EVENT_EXISTS: &str = "SELECT 1 FROM herald.events WHERE tenant_id = $1 AND event_id = $2";

pub const EVENT_ATTEMPTS: &str = "SELECT attempt_id, delivery_id, attempt, started_at, duration_ms, status_code, \
       error, response_excerpt \
     FROM herald.attempts WHERE tenant_id = $1 AND event_id = $2 AND attempt_id > $3 \
     ORDER BY attempt_id LIMIT $4";

/// Events in a replay window, by Herald's time-ordered key: those fanned out already. An event
/// still waiting in the outbox (or set aside there) gets its deliveries from the outbox-poller,
/// whose insert expects none to exist yet.
pub const EVENTS_IN_WINDOW: &str = "SELECT e.event_id, e.event_type, e.seq, e.deliver_at FROM herald.events e \
      WHERE e.tenant_id = $1 AND e.seq >= $2 AND e.seq < $3 AND e.event_type <> 'herald.test' \
        AND NOT EXISTS (SELECT 1 FROM herald.pending_events p WHERE p.tenant_id = $1 AND p.seq = e.seq AND p.event_id = e.event_id) \
        AND NOT EXISTS (SELECT 1 FROM herald.fanout_failures f WHERE f.tenant_id = $1 AND f.event_id = e.event_id) \
      ORDER BY e.seq, e.event_id LIMIT $4";

pub const CREATE_OPERATION: &str = "SELECT herald.create_operation($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub const EXISTING_OPERATION: &str =
    "SELECT o.kind, o.request_hash, herald.operation_json(to_jsonb(o)), o.callback_secret \
     FROM herald.operations o WHERE o.tenant_id = $1 AND o.call_id = $2";

pub const GET_OPERATION: &str = "SELECT herald.operation_json(to_jsonb(o)) FROM herald.operations o \
     WHERE o.tenant_id = $1 AND o.call_id = $2 AND o.kind = $3";

pub const LIST_OPERATIONS: &str = "SELECT o.call_id, herald.operation_json(to_jsonb(o)) FROM herald.operations o \
     WHERE o.tenant_id = $1 AND o.kind = $2 AND ($3::text IS NULL OR o.status = $3) AND o.call_id > $4 \
     ORDER BY o.call_id LIMIT $5";

/// Locks the operation for its answer.
pub const LOCK_OPERATION: &str = "SELECT o.status, o.expires_at FROM herald.operations o \
     WHERE o.tenant_id = $1 AND o.call_id = $2 AND o.kind = $3 FOR UPDATE";

/// Expires this one operation (its time is up), with its `*_expired` event.
pub const EXPIRE_OPERATION: &str = "SELECT herald.expire_operations($1, $2, $3)";

/// The answer and its `*_completed` event, in the caller's transaction.
pub const ANSWER_OPERATION: &str = "SELECT herald.answer_operation($1, $2, $3, $4, $5, $6, $7, $8, $9)";
