//! The worker's statements on endpoints (limits, health) and its own `endpoint.*` events. Its
//! statements on deliveries (due, claim, record, give back) are with every other statement on
//! that table, in `herald_core::deliveries`. Each names one tenant (shared/scale-out.md, rule 2)
//! and takes its time as a parameter (rule 4).

/// A limited endpoint, locked while this transaction claims from it (skipped if another worker
/// is claiming from it right now).
pub const LOCK_LIMITED: &str = "SELECT e.max_in_flight, e.rate_limit_per_s, e.rate_tokens, e.rate_refilled_at, \
            e.ordering = 'fifo' AS fifo \
     FROM herald.endpoints e \
     WHERE e.tenant_id = $1 AND e.endpoint_id = $2 AND e.status <> 'disabled' \
     FOR NO KEY UPDATE OF e SKIP LOCKED";

pub const UPDATE_BUCKET: &str = "UPDATE herald.endpoints SET rate_tokens = $3, rate_refilled_at = $4 \
     WHERE tenant_id = $1 AND endpoint_id = $2";

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
