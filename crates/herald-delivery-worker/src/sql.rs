//! Every statement of the delivery-worker, by name. Each names one tenant in every table it
//! touches, in the locking CTE and in the UPDATE (shared/scale-out.md, rules 2 and 3), and takes
//! "now" and the lease deadline as parameters (rule 4).

/// Whether tenant `$1` has a due delivery at `$2`, read without locks (rule 3: then claim per
/// tenant). Asked per tenant (see `herald_core::db::tenants_where`): one index probe each.
pub const TENANT_HAS_DUE: &str = "SELECT EXISTS (SELECT 1 FROM herald.deliveries d \
      WHERE d.tenant_id = $1 AND d.state IN ('pending', 'delivering') AND d.next_attempt_at <= $2)";

/// A tenant's endpoints that have due deliveries, read without locks, with their limits.
pub const DUE_ENDPOINTS: &str = "SELECT e.endpoint_id, e.max_in_flight, e.rate_limit_per_s FROM herald.endpoints e \
     WHERE e.tenant_id = $1 AND e.status <> 'disabled' \
       AND EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.tenant_id = $1 AND d.endpoint_id = e.endpoint_id \
          AND d.state IN ('pending', 'delivering') AND d.next_attempt_at <= $2) \
     ORDER BY e.endpoint_id";

/// A limited endpoint, locked while this transaction claims from it (skipped if another worker
/// is claiming from it right now).
pub const LOCK_LIMITED: &str = "SELECT e.max_in_flight, e.rate_limit_per_s, e.rate_tokens, e.rate_refilled_at \
     FROM herald.endpoints e \
     WHERE e.tenant_id = $1 AND e.endpoint_id = $2 AND e.status <> 'disabled' \
     FOR NO KEY UPDATE OF e SKIP LOCKED";

/// What a limited endpoint has in flight across all workers. A statement of its own, run after
/// the lock is held: under READ COMMITTED it then sees every claim that the previous holder of
/// the lock committed (a subquery of the locking statement would see its older snapshot).
pub const IN_FLIGHT: &str = "SELECT count(*) FROM herald.deliveries \
     WHERE tenant_id = $1 AND endpoint_id = $2 AND state = 'delivering' AND next_attempt_at > $3";

pub const UPDATE_BUCKET: &str = "UPDATE herald.endpoints SET rate_tokens = $3, rate_refilled_at = $4 \
     WHERE tenant_id = $1 AND endpoint_id = $2";

/// The claim: due deliveries (pending and due, or leased with an expired lease), locked with
/// SKIP LOCKED, leased to this worker until `$4`, in one statement. `filter` narrows it to one
/// endpoint (`$6`) or to the tenant's callbacks.
fn claim(filter: &str) -> String {
    format!(
        "WITH due AS ( \
           SELECT d.delivery_id, d.event_id, d.endpoint_id FROM herald.deliveries d \
           WHERE d.tenant_id = $1 AND {filter} \
             AND d.state IN ('pending', 'delivering') AND d.next_attempt_at <= $2 \
           ORDER BY d.next_attempt_at, d.delivery_id \
           LIMIT $3 \
           FOR UPDATE OF d SKIP LOCKED) \
         UPDATE herald.deliveries d \
            SET state = 'delivering', next_attempt_at = $4, lease_owner = $5, \
                attempt_count = d.attempt_count + 1, updated_at = $2, \
                lost_leases = CASE WHEN d.state = 'delivering' THEN d.lost_leases + 1 ELSE 0 END \
           FROM due \
           JOIN herald.events ev ON ev.tenant_id = $1 AND ev.event_id = due.event_id \
           LEFT JOIN herald.endpoints e ON e.tenant_id = $1 AND e.endpoint_id = due.endpoint_id \
          WHERE d.tenant_id = $1 AND d.delivery_id = due.delivery_id \
         RETURNING d.delivery_id, d.event_id, d.endpoint_id, coalesce(e.url, d.url) AS url, \
                   d.attempt_count, d.schedule_offset, d.lost_leases, ev.event_type, ev.created_at, ev.data::text AS data, ev.traceparent, \
                   coalesce(e.signature_scheme, 'standard-webhooks') AS signature_scheme, \
                   coalesce(e.secret, ev.callback_secret) AS secret, \
                   CASE WHEN e.previous_secret_until > $2 THEN e.previous_secret END AS previous_secret, \
                   CASE WHEN due.endpoint_id IS NULL THEN ev.retry_schedule_ms ELSE e.retry_schedule_ms END \
                     AS retry_schedule_ms"
    )
}

pub fn claim_endpoint() -> String {
    claim("d.endpoint_id = $6")
}

pub fn claim_callbacks() -> String {
    claim("d.endpoint_id IS NULL")
}

/// Results of a batch, for one tenant. Only a delivery still leased to this worker for this
/// attempt changes: a result that comes back after its lease expired (and another worker took
/// the delivery) is logged as an attempt but changes nothing else.
pub const RECORD_RESULTS: &str = "UPDATE herald.deliveries d \
        SET state = u.state, next_attempt_at = u.next_at, lease_owner = NULL, lost_leases = 0, \
            last_status_code = u.code, last_error = u.err, url = u.url, updated_at = $3 \
       FROM unnest($2::text[], $4::int[], $5::text[], $6::timestamptz[], $7::int[], $8::text[], $10::text[]) \
            AS u(delivery_id, attempt, state, next_at, code, err, url) \
      WHERE d.tenant_id = $1 AND d.delivery_id = u.delivery_id AND d.lease_owner = $9 \
        AND d.attempt_count = u.attempt AND d.state = 'delivering' \
     RETURNING d.delivery_id";

pub const INSERT_ATTEMPTS: &str = "INSERT INTO herald.attempts (tenant_id, attempt_id, delivery_id, event_id, \
        attempt, started_at, duration_ms, status_code, error, response_excerpt) \
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], \
        $7::int[], $8::int[], $9::text[], $10::text[]) \
     ON CONFLICT DO NOTHING";

/// Gives a lease back untouched (shutdown before the attempt completed).
pub const GIVE_BACK: &str = "UPDATE herald.deliveries \
        SET state = 'pending', next_attempt_at = $4, lease_owner = NULL, \
            attempt_count = attempt_count - 1, updated_at = $4 \
      WHERE tenant_id = $1 AND delivery_id = $2 AND lease_owner = $3 AND attempt_count = $5 \
        AND state = 'delivering'";

pub const ENDPOINT_TO_FAILING: &str = "UPDATE herald.endpoints SET status = 'failing', updated_at = $3 \
      WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'healthy' RETURNING url";

pub const ENDPOINT_TO_HEALTHY: &str = "UPDATE herald.endpoints SET status = 'healthy', updated_at = $3 \
      WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'failing' RETURNING url";

pub const ENDPOINT_TO_DISABLED: &str = "UPDATE herald.endpoints \
        SET status = 'disabled', disabled_reason = $4, updated_at = $3 \
      WHERE tenant_id = $1 AND endpoint_id = $2 AND status <> 'disabled' RETURNING url";

/// Herald's own operational events go through the same door as every other event.
pub const PUBLISH: &str =
    "SELECT event_id FROM herald.publish_event($1, $2, $3::jsonb, NULL, NULL, NULL, NULL, NULL, $4)";
