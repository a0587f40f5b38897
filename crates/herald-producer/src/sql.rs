//! Every statement of herald-producer, by name. Each names one tenant (shared/scale-out.md,
//! rule 2) and takes its time as a parameter (rule 4). A list's statement is a function of its
//! page request (`api/page.rs`), which adds the bound on its key, its order and its limit.

use crate::api::page::Request;

/// `$7` is the callback's retry schedule in milliseconds, as the function's `interval[]`; `$11`
/// the door the outbox-poller counts it under (`rust`), or NULL when it was counted already;
/// `$13` the consumer it is for.
pub const PUBLISH_EVENT: &str =
    "SELECT event_id, created_at, duplicate, generated_secret FROM herald.publish_event_json(\
     $1, $2, $3::text::json, $4, $5, $6, \
     (SELECT array_agg(ms * interval '1 millisecond' ORDER BY n) FROM unnest($7::int8[]) WITH ORDINALITY s(ms, n)), \
     $8, $9, $10, $11, $12, $13)";

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

/// A link's session with its link and tenant; it ends with the earlier of the two expiries.
pub const SESSION_LOOKUP: &str = "SELECT l.link_id, l.kind, l.responder, l.run_id, l.consumer, l.revoked_at, \
            least(s.expires_at, l.expires_at) AS expires_at, n.disabled_at \
       FROM herald.sessions s \
       JOIN herald.links l ON l.tenant_id = s.tenant_id AND l.link_id = s.link_id \
       JOIN herald.tenants n ON n.tenant_id = s.tenant_id \
      WHERE s.tenant_id = $1 AND s.session_hash = $2";

/// Whether an endpoint (`$2`), a delivery or a replay belongs to consumer `$3` (NULL: to any
/// endpoint of the tenant): what a portal session may reach (`api/extract.rs`). Always through an
/// endpoint, so a delivery to an event's or operation's callback URL is no portal's. `$2` is the
/// path's text, unchecked: an id of the wrong shape matches nothing.
pub const ENDPOINT_OF_CONSUMER: &str = "SELECT 1 FROM herald.endpoints \
      WHERE tenant_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR consumer = $3)";
pub const DELIVERY_OF_CONSUMER: &str = "SELECT 1 FROM herald.deliveries d \
       JOIN herald.endpoints e ON e.tenant_id = d.tenant_id AND e.endpoint_id = d.endpoint_id \
      WHERE d.tenant_id = $1 AND d.delivery_id = $2 AND ($3::text IS NULL OR e.consumer = $3)";
pub const REPLAY_OF_CONSUMER: &str = "SELECT 1 FROM herald.replays r \
       JOIN herald.endpoints e ON e.tenant_id = r.tenant_id AND e.endpoint_id = r.endpoint_id \
      WHERE r.tenant_id = $1 AND r.replay_id = $2 AND ($3::text IS NULL OR e.consumer = $3)";

pub const OPERATOR_TOKEN_LOOKUP: &str =
    "SELECT expires_at, revoked_at FROM herald.operator_tokens WHERE token_hash = $1";

pub const CREATE_TENANT: &str =
    "INSERT INTO herald.tenants (tenant_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// `$1` tenant, `$2` hash, `$3` now, `$4` token id, `$5` name, `$6` scope, `$7` expiry.
pub const CREATE_TOKEN: &str = "INSERT INTO herald.api_tokens \
       (tenant_id, token_hash, created_at, token_id, name, scope, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The data as text: it is answered as the publisher sent it, never parsed.
pub const GET_EVENT: &str = "SELECT ev.event_id, ev.event_type, ev.created_at, ev.data::text AS data, \
            ev.callback_url, ev.deliver_at, ev.consumer, f.error AS fan_out_error \
       FROM herald.events ev \
       LEFT JOIN herald.fanout_failures f ON f.tenant_id = $1 AND f.event_id = ev.event_id \
      WHERE ev.tenant_id = $1 AND ev.event_id = $2";

const ENDPOINT_COLUMNS: &str = "endpoint_id, url, description, event_types, status, disabled_reason, \
     signature_scheme, retry_schedule_ms, max_in_flight, rate_limit_per_s, created_at, updated_at, secret, \
     signature_header, headers::text AS headers, timeout_ms, payload_format, ordering, consumer";

pub fn insert_endpoint() -> String {
    format!(
        "INSERT INTO herald.endpoints (tenant_id, endpoint_id, url, description, event_types, \
         signature_scheme, secret, retry_schedule_ms, max_in_flight, rate_limit_per_s, created_at, updated_at, \
         signature_header, headers, timeout_ms, payload_format, ordering, consumer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13::text::jsonb, $14, $15, $16, $17) \
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

/// Before an endpoint is made FIFO: waits for every fan-out that holds it (FOR KEY SHARE) to
/// commit, so that the backfill after it sees their deliveries, and fan-outs after it see FIFO.
pub const LOCK_ENDPOINT_FULLY: &str =
    "SELECT 1 FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id = $2 FOR UPDATE";

pub fn get_endpoint() -> String {
    format!("SELECT {ENDPOINT_COLUMNS} FROM herald.endpoints WHERE tenant_id = $1 AND endpoint_id = $2")
}

/// A page of the tenant's endpoints (`$1`), of consumer `$2` if given; the page's key from `$3`.
pub fn list_endpoints(page: &Request) -> String {
    format!(
        "SELECT {ENDPOINT_COLUMNS} FROM herald.endpoints WHERE tenant_id = $1 \
            AND ($2::text IS NULL OR consumer = $2){}",
        page.tail(3)
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
           secret = coalesce($15, secret), ordering = $17, consumer = $18 \
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

const ATTEMPT_COLUMNS: &str = "attempt_id, delivery_id, event_id, attempt, started_at, duration_ms, status_code, \
     error, response_excerpt";

/// A page of an event's (`$2`) attempts; the page's key from `$3`.
/// A delivery's event: where its attempts are found (`attempts_by_event`).
pub const DELIVERY_EVENT: &str = "SELECT event_id FROM herald.deliveries WHERE tenant_id = $1 AND delivery_id = $2";

/// `$2` the delivery's event, `$3` the delivery: a probe of `attempts_by_event`.
pub fn delivery_attempts(page: &Request) -> String {
    format!(
        "SELECT {ATTEMPT_COLUMNS} FROM herald.attempts WHERE tenant_id = $1 AND event_id = $2 AND delivery_id = $3{}",
        page.tail(4)
    )
}

pub fn event_attempts(page: &Request) -> String {
    format!("SELECT {ATTEMPT_COLUMNS} FROM herald.attempts WHERE tenant_id = $1 AND event_id = $2{}", page.tail(3))
}

/// A page of the tenant's events, newest first by Herald's key (`seq`, walked on
/// events_by_seq), in `[$2, $3)` of `seq`; of type `$4` (exact) or starting with `$5` (a
/// `prefix.*` filter's `prefix.`), if given; `$6`: only those with (true) or without (false) a
/// delivery that failed or is failing (pending after a failed attempt); `$7`: with their data.
/// Each with its deliveries counted by state (a probe of deliveries' (event, target) key). The
/// page's key from `$8`.
pub fn list_events(page: &Request) -> String {
    format!(
        "SELECT e.seq, e.event_id, e.event_type, e.created_at, CASE WHEN $7 THEN e.data::text END AS data, \
                e.callback_url, e.deliver_at, e.consumer, f.error AS fan_out_error, c.* \
           FROM herald.events e \
           LEFT JOIN herald.fanout_failures f ON f.tenant_id = $1 AND f.event_id = e.event_id \
           CROSS JOIN LATERAL ( \
             SELECT count(*) AS total, \
                    count(*) FILTER (WHERE d.state = 'pending') AS pending, \
                    count(*) FILTER (WHERE d.state = 'delivered') AS delivered, \
                    count(*) FILTER (WHERE d.state = 'failed') AS failed, \
                    count(*) FILTER (WHERE d.state = 'cancelled') AS cancelled, \
                    count(*) FILTER (WHERE d.state = 'pending' AND d.last_error IS NOT NULL) AS failing \
               FROM herald.deliveries d WHERE d.tenant_id = $1 AND d.event_id = e.event_id) c \
          WHERE e.tenant_id = $1 AND e.seq >= $2 AND e.seq < $3 \
            AND ($4::text IS NULL OR e.event_type = $4) AND ($5::text IS NULL OR starts_with(e.event_type, $5)) \
            AND ($6::boolean IS NULL OR (c.failed + c.failing > 0) = $6){}",
        page.tail(8)
    )
}

/// A page of an endpoint's deliveries (target `$2`, `$3` now), newest first: its pending ones
/// if `$4` (those leased now, shown `delivering`, if `$5` is true, the others if false, both if
/// NULL), walked on deliveries_claim, and its finished ones in the states `$6`, walked on
/// deliveries_finished; each side bounded and limited, then merged. The page's key from `$7`.
pub fn endpoint_deliveries(page: &Request) -> String {
    let cols = herald_core::deliveries::LIST_COLUMNS;
    let (bound, order, limit) = (page.bound(7), page.order(), page.limit_at(7));
    format!(
        "SELECT * FROM ( \
           (SELECT {cols} FROM herald.deliveries \
             WHERE tenant_id = $1 AND target = $2 AND state = 'pending' AND $4::boolean \
               AND ($5::boolean IS NULL OR coalesce(lease_until > $3, false) = $5){bound}{order}{limit}) \
           UNION ALL \
           (SELECT {cols} FROM herald.deliveries \
             WHERE tenant_id = $1 AND target = $2 AND state IN ('delivered', 'failed', 'cancelled') \
               AND state = ANY($6::text[]){bound}{order}{limit})) d{}{limit}",
        page.order_by_name()
    )
}

/// A page of an endpoint's (`$2`) attempts, newest first, on attempts_by_endpoint: started in
/// `[$3, $4)` (either may be NULL), with status code `$5` or one from `$6` to `$7`, and error
/// class `$8`, each if given. The page's key from `$9`.
pub fn endpoint_attempts(page: &Request) -> String {
    format!(
        "SELECT {ATTEMPT_COLUMNS} FROM herald.attempts \
          WHERE tenant_id = $1 AND endpoint_id = $2 \
            AND ($3::timestamptz IS NULL OR started_at >= $3) AND ($4::timestamptz IS NULL OR started_at < $4) \
            AND ($5::int IS NULL OR status_code = $5) \
            AND ($6::int IS NULL OR status_code BETWEEN $6 AND $7) \
            AND ($8::text IS NULL OR error = $8){}",
        page.tail(9)
    )
}

/// An endpoint's (`$2`) attempts counted over the day before `$3` and the hour before `$4`,
/// from attempts_by_endpoint alone (status_code is in it): a success is a 2xx answer.
pub const ENDPOINT_COUNTS: &str = "SELECT count(*) AS day, \
            count(*) FILTER (WHERE status_code BETWEEN 200 AND 299) AS day_ok, \
            count(*) FILTER (WHERE started_at >= $4) AS hour, \
            count(*) FILTER (WHERE started_at >= $4 AND status_code BETWEEN 200 AND 299) AS hour_ok \
       FROM herald.attempts WHERE tenant_id = $1 AND endpoint_id = $2 AND started_at >= $3";

/// An endpoint's (`$2`) latest success (`$3`) or failure (not `$3`) among its latest `$4`
/// attempts: a bounded walk down attempts_by_endpoint (index only), then the one row found.
pub const ENDPOINT_LAST: &str = "SELECT a.started_at, a.status_code, a.error FROM ( \
         SELECT started_at, attempt_id FROM ( \
           SELECT started_at, attempt_id, status_code FROM herald.attempts \
            WHERE tenant_id = $1 AND endpoint_id = $2 ORDER BY started_at DESC, attempt_id DESC LIMIT $4) l \
          WHERE coalesce(l.status_code BETWEEN 200 AND 299, false) = $3 \
          ORDER BY started_at DESC, attempt_id DESC LIMIT 1) x \
       JOIN herald.attempts a ON a.tenant_id = $1 AND a.endpoint_id = $2 \
        AND a.started_at = x.started_at AND a.attempt_id = x.attempt_id";

/// A new replay job, running, and a wake-up for the runners (a hint: they poll too).
pub const CREATE_REPLAY: &str = "INSERT INTO herald.replays (tenant_id, replay_id, endpoint_id, since, until, \
       created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *";
pub const NOTIFY_REPLAYS: &str = "SELECT pg_notify('herald_replays', $1)";

/// The endpoint's replay still running, if any (a probe of `replays_running`).
pub const RUNNING_REPLAY: &str =
    "SELECT replay_id FROM herald.replays WHERE tenant_id = $1 AND state = 'running' AND endpoint_id = $2 LIMIT 1";

pub const GET_REPLAY: &str = "SELECT * FROM herald.replays WHERE tenant_id = $1 AND replay_id = $2";

/// A page of the tenant's replays, newest first, of endpoint `$2` and in state `$3` if given;
/// the page's key from `$5`.
/// `$4`: only the replays of that consumer's endpoints (a portal session's), or NULL.
pub fn list_replays(page: &Request) -> String {
    format!(
        "SELECT * FROM herald.replays WHERE tenant_id = $1 \
            AND ($2::text IS NULL OR endpoint_id = $2) AND ($3::text IS NULL OR state = $3) \
            AND ($4::text IS NULL OR endpoint_id IN ( \
                 SELECT endpoint_id FROM herald.endpoints WHERE tenant_id = $1 AND consumer = $4)){}",
        page.tail(5)
    )
}

pub const CREATE_OPERATION: &str = "SELECT herald.create_operation($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub const EXISTING_OPERATION: &str =
    "SELECT o.kind, o.request_hash, herald.operation_json(to_jsonb(o)), o.callback_secret \
     FROM herald.operations o WHERE o.tenant_id = $1 AND o.call_id = $2";

/// `$4`: only of that run (a link's), or NULL.
pub const GET_OPERATION: &str = "SELECT herald.operation_json(to_jsonb(o)) FROM herald.operations o \
     WHERE o.tenant_id = $1 AND o.call_id = $2 AND o.kind = $3 AND ($4::text IS NULL OR o.run_id = $4)";

/// A page of the tenant's operations of kind `$2` (in status `$3` if given, of run `$4` if
/// given); the page's key from `$5`.
/// `settled`: only operations no longer pending (for the list ordered by when they settled).
pub fn list_operations(page: &Request, settled: bool) -> String {
    format!(
        "SELECT o.call_id, herald.operation_json(to_jsonb(o)), \
                coalesce(o.responded_at, o.expires_at) AS settled_at FROM herald.operations o \
          WHERE o.tenant_id = $1 AND o.kind = $2 AND ($3::text IS NULL OR o.status = $3) \
            AND ($4::text IS NULL OR o.run_id = $4){}{}",
        if settled { " AND o.status <> 'pending'" } else { "" },
        page.tail(5)
    )
}

/// Locks the operation for its answer.
pub const LOCK_OPERATION: &str = "SELECT o.status, o.expires_at FROM herald.operations o \
     WHERE o.tenant_id = $1 AND o.call_id = $2 AND o.kind = $3 AND ($4::text IS NULL OR o.run_id = $4) FOR UPDATE";

/// Expires this one operation (its time is up), with its `*_expired` event.
pub const EXPIRE_OPERATION: &str = "SELECT herald.expire_operations($1, $2, $3)";

/// The answer and its `*_completed` event, in the caller's transaction.
pub const ANSWER_OPERATION: &str = "SELECT herald.answer_operation($1, $2, $3, $4, $5, $6, $7, $8, $9)";
