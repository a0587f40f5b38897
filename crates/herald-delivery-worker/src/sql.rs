//! Every statement of the delivery-worker, by name. Each names one tenant in every table it
//! touches, in the locking CTE and in the UPDATE (shared/scale-out.md, rules 2 and 3), and takes
//! "now" and the lease deadline as parameters (rule 4).
//!
//! A lease is `lease_until` and `lease_owner` on a row that stays `pending` (migration V5): a
//! claim changes no indexed column, so it is a HOT update that writes no index entry.

/// "Due": pending, its time has come, and no live lease. (`d` is herald.deliveries, `$2` now.)
macro_rules! due {
    () => {
        "d.state = 'pending' AND d.next_attempt_at <= $2 AND (d.lease_until IS NULL OR d.lease_until <= $2)"
    };
}

/// Whether tenant `$1` has a due delivery at `$2`, read without locks (rule 3: then claim per
/// tenant): for its callbacks, or one of its endpoints that is not disabled. Asked per tenant
/// (see `herald_core::db::tenants_where`): a few index probes each.
pub const TENANT_HAS_DUE: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.tenant_id = $1 AND d.target = 'callback' AND ",
    due!(),
    ") OR EXISTS (SELECT 1 FROM herald.endpoints e WHERE e.tenant_id = $1 AND e.status <> 'disabled' \
       AND EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.tenant_id = $1 AND d.target = e.endpoint_id AND ",
    due!(),
    "))"
);

/// A tenant's limited endpoints (`max_in_flight` or `rate_limit_per_s`) that have due
/// deliveries, read without locks. Usually none: then this is one probe of the tenant's endpoints.
pub const DUE_LIMITED: &str = concat!(
    "SELECT e.endpoint_id FROM herald.endpoints e \
      WHERE e.tenant_id = $1 AND e.status <> 'disabled' \
        AND (e.max_in_flight IS NOT NULL OR e.rate_limit_per_s IS NOT NULL) \
        AND EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.tenant_id = $1 AND d.target = e.endpoint_id AND ",
    due!(),
    ") ORDER BY e.endpoint_id"
);

/// A limited endpoint, locked while this transaction claims from it (skipped if another worker
/// is claiming from it right now).
pub const LOCK_LIMITED: &str = "SELECT e.max_in_flight, e.rate_limit_per_s, e.rate_tokens, e.rate_refilled_at \
     FROM herald.endpoints e \
     WHERE e.tenant_id = $1 AND e.endpoint_id = $2 AND e.status <> 'disabled' \
     FOR NO KEY UPDATE OF e SKIP LOCKED";

/// What a limited endpoint has in flight across all workers: live leases. A leased row was due
/// when it was claimed, so only the due part of the endpoint's range is counted. A statement of
/// its own, run after the lock is held: under READ COMMITTED it then sees every claim that the
/// previous holder of the lock committed.
pub const IN_FLIGHT: &str = "SELECT count(*) FROM herald.deliveries \
     WHERE tenant_id = $1 AND target = $2 AND state = 'pending' AND next_attempt_at <= $3 AND lease_until > $3";

pub const UPDATE_BUCKET: &str = "UPDATE herald.endpoints SET rate_tokens = $3, rate_refilled_at = $4 \
     WHERE tenant_id = $1 AND endpoint_id = $2";

/// The claim, in one statement: for each target in `targets` (rows of `target`, `room`, and
/// the `after_at`, `after_id` where this worker's last claim of it ended), its oldest due
/// deliveries after that mark, at most `room` each and `$3` in all, locked with SKIP LOCKED and
/// leased to `$5` until `$4`; answered with what an attempt needs. A lease found expired counts
/// as lost (`lost_leases`). Parameters: $1 tenant, $2 now, $3 limit, $4 lease deadline,
/// $5 worker, then those of `targets`.
fn claim(targets: &str) -> String {
    format!(
        "WITH room AS ({targets}), \
         due AS ( \
           SELECT x.delivery_id FROM room r CROSS JOIN LATERAL ( \
             SELECT d.delivery_id FROM herald.deliveries d \
              WHERE d.tenant_id = $1 AND d.target = r.target AND {due} \
                AND (d.next_attempt_at, d.delivery_id) > (r.after_at, r.after_id) \
              ORDER BY d.next_attempt_at, d.delivery_id \
              LIMIT greatest(r.room, 0) \
              FOR UPDATE OF d SKIP LOCKED) x \
           LIMIT $3), \
         claimed AS ( \
           UPDATE herald.deliveries d \
              SET lease_until = $4, lease_owner = $5, attempt_count = d.attempt_count + 1, updated_at = $2, \
                  lost_leases = CASE WHEN d.lease_until IS NULL THEN 0 ELSE d.lost_leases + 1 END \
             FROM due \
            WHERE d.tenant_id = $1 AND d.delivery_id = due.delivery_id \
           RETURNING d.delivery_id, d.event_id, d.endpoint_id, d.url, d.attempt_count, d.schedule_offset, \
                     d.lost_leases, d.next_attempt_at) \
         SELECT c.delivery_id, c.event_id, c.endpoint_id, c.next_attempt_at, coalesce(e.url, c.url) AS url, \
                c.attempt_count, c.schedule_offset, c.lost_leases, ev.event_type, ev.created_at, \
                ev.data::text AS data, ev.traceparent, \
                coalesce(e.signature_scheme, 'standard-webhooks') AS signature_scheme, \
                coalesce(e.secret, ev.callback_secret) AS secret, \
                CASE WHEN e.previous_secret_until > $2 THEN e.previous_secret END AS previous_secret, \
                CASE WHEN c.endpoint_id IS NULL THEN ev.retry_schedule_ms ELSE e.retry_schedule_ms END \
                  AS retry_schedule_ms, \
                e.status AS endpoint_status \
           FROM claimed c \
           JOIN herald.events ev ON ev.tenant_id = $1 AND ev.event_id = c.event_id \
           LEFT JOIN herald.endpoints e ON e.tenant_id = $1 AND e.endpoint_id = c.endpoint_id",
        due = due!()
    )
}

/// The tenant's callbacks and its endpoints without limits, in an order rotated by `$9` (each
/// gets its turn to go first), each with room for `$6` less what this worker has in flight to
/// it (`$7` targets, `$8` counts), after this worker's mark on it (`$10` targets, `$11`
/// next_attempt_at, `$12` delivery id).
pub fn claim_open() -> String {
    claim(
        "SELECT t.target, $6::int - coalesce(l.n, 0) AS room, \
                coalesce(m.at, '-infinity') AS after_at, coalesce(m.id, '') AS after_id FROM ( \
            SELECT x.target, row_number() OVER (ORDER BY x.target) AS i, count(*) OVER () AS n FROM ( \
              SELECT e.endpoint_id AS target FROM herald.endpoints e \
               WHERE e.tenant_id = $1 AND e.status <> 'disabled' \
                 AND e.max_in_flight IS NULL AND e.rate_limit_per_s IS NULL \
              UNION ALL SELECT 'callback') x) t \
          LEFT JOIN unnest($7::text[], $8::int[]) AS l(target, n) ON l.target = t.target \
          LEFT JOIN unnest($10::text[], $11::timestamptz[], $12::text[]) AS m(target, at, id) \
                 ON m.target = t.target \
          ORDER BY (t.i + $9) % t.n",
    )
}

/// One limited endpoint (`$6`), up to `$3`.
pub fn claim_one() -> String {
    claim("SELECT $6::text AS target, $3::bigint AS room, '-infinity'::timestamptz AS after_at, ''::text AS after_id")
}

/// Results of a batch, for one tenant, with their attempts, in one statement. Only a delivery
/// still leased to this worker for this attempt changes: a result that comes back after its
/// lease expired (and another worker took the delivery) is logged as an attempt but changes
/// nothing else. Answers the deliveries whose result landed.
pub const RECORD: &str = "WITH recorded AS ( \
       UPDATE herald.deliveries d \
          SET state = u.state, next_attempt_at = u.next_at, lease_until = NULL, lease_owner = NULL, \
              lost_leases = 0, last_status_code = u.code, last_error = u.err, url = u.url, updated_at = $3 \
         FROM unnest($2::text[], $4::int[], $5::text[], $6::timestamptz[], $7::int[], $8::text[], $10::text[]) \
              AS u(delivery_id, attempt, state, next_at, code, err, url) \
        WHERE d.tenant_id = $1 AND d.delivery_id = u.delivery_id AND d.lease_owner = $9 \
          AND d.attempt_count = u.attempt AND d.state = 'pending' \
       RETURNING d.delivery_id), \
     logged AS ( \
       INSERT INTO herald.attempts (tenant_id, attempt_id, delivery_id, event_id, attempt, started_at, \
              duration_ms, status_code, error, response_excerpt) \
       SELECT $1, * FROM unnest($11::text[], $2::text[], $12::text[], $4::int[], $13::timestamptz[], \
              $14::int[], $7::int[], $15::text[], $16::text[]) \
       ON CONFLICT DO NOTHING) \
     SELECT delivery_id FROM recorded";

/// Gives a lease back untouched (shutdown before the attempt completed): due again at once.
pub const GIVE_BACK: &str = "UPDATE herald.deliveries \
        SET lease_until = NULL, lease_owner = NULL, attempt_count = attempt_count - 1, updated_at = $4 \
      WHERE tenant_id = $1 AND delivery_id = $2 AND lease_owner = $3 AND attempt_count = $5 \
        AND state = 'pending'";

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
