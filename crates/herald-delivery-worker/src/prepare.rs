//! From a claimed row to an attempt ready to send, or to a failed attempt that needs no send.
//!
//! Runs after the claim committed, so nothing here can roll a claim back: a delivery that
//! cannot be prepared (a column that does not decode, a URL that no longer parses, a secret
//! that is unusable) is recorded as a failed attempt of class `invalid_delivery` and failed at
//! once, and one whose last [`MAX_LOST_LEASES`] leases expired with no result (a worker
//! crashed or hung while holding it) as `abandoned`. A panic while preparing one row fails
//! that row alone (class `internal`, retried on the schedule). None stops the rest of the claim.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::config::RetrySchedule;
use herald_core::dialect::{self, PayloadFormat};
use herald_core::id::{DeliveryId, TenantId};
use herald_core::signing::{Scheme, Secret};
use herald_core::trace::TraceContext;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::attempt::{AttemptOutcome, Claimed, Finished, ABANDONED, INTERNAL, INVALID_DELIVERY};

/// Leases in a row that may expire with no result before a delivery is abandoned: a worker
/// that dies on a delivery (a crash, the out-of-memory killer) stops dying on it after this
/// many tries, while a delivery that merely met one worker's crash is tried again.
pub const MAX_LOST_LEASES: i16 = 3;

/// A claimed row as an attempt to send, or as a finished (failed) attempt to record.
/// `None` when not even the delivery's id and attempt number can be read (it would take a
/// column of another type): nothing can be recorded, and it is logged each time its lease expires.
pub fn prepare(tenant: &TenantId, row: &Row, now: DateTime<Utc>) -> Option<Result<Claimed, Finished>> {
    let (delivery_id, attempt): (DeliveryId, i32) = match (row.try_get("delivery_id"), row.try_get("attempt_count")) {
        (Ok(d), Ok(a)) => (d, a),
        (d, _) => {
            tracing::error!(%tenant, delivery = ?d.ok(), "a claimed row without a readable id or attempt number; its lease will expire");
            return None;
        }
    };
    let mut shell = Claimed {
        tenant_id: tenant.clone(),
        delivery_id,
        event_id: row.try_get("event_id").unwrap_or_default(),
        endpoint_id: row.try_get("endpoint_id").unwrap_or_default(),
        url: row.try_get("url").unwrap_or_default(),
        attempt,
        round_attempt: attempt,
        event_type: String::new(),
        created_at: now,
        deliver_at: None,
        data: String::new(),
        trace: TraceContext::default(),
        signature_scheme: String::new(),
        secret: None,
        previous_secret: None,
        retry_schedule: None,
        endpoint_failing: false,
        signature_header: None,
        headers: Default::default(),
        timeout: None,
        payload_format: PayloadFormat::Envelope,
        fifo: row.try_get("fifo").unwrap_or(false),
    };
    let refuse = |c: Claimed, class: &'static str, why: String| {
        tracing::warn!(%tenant, delivery = %c.delivery_id, class, why, "a delivery that cannot be sent is failed");
        Some(Err(Finished::new(c, AttemptOutcome::refused(now, class, why))))
    };
    let lost: i16 = row.try_get("lost_leases").unwrap_or(0);
    if lost >= MAX_LOST_LEASES {
        let why = format!(
            "its last {lost} leases expired with no result (a worker crashed or hung while holding it); not tried again"
        );
        return refuse(shell, ABANDONED, why);
    }
    // One row's trouble, even a panic, is that row's alone.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fill(&mut shell, row))) {
        Ok(Ok(())) => Some(Ok(shell)),
        Ok(Err(why)) => refuse(shell, INVALID_DELIVERY, why),
        Err(panic) => {
            let said = herald_core::panic::message(&*panic);
            let why = format!("Herald failed while preparing this attempt ({said}); it is retried on the schedule");
            refuse(shell, INTERNAL, why)
        }
    }
}

fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, String> {
    row.try_get(name).map_err(|e| format!("its stored {name} cannot be read ({e})"))
}

/// Reads every column, and checks what the attempt will need: the URL and the secrets.
fn fill(c: &mut Claimed, row: &Row) -> Result<(), String> {
    c.event_id = col(row, "event_id")?;
    c.endpoint_id = col(row, "endpoint_id")?;
    c.url = col(row, "url")?;
    c.round_attempt = c.attempt - col::<i32>(row, "schedule_offset")?;
    c.event_type = col(row, "event_type")?;
    c.created_at = col(row, "created_at")?;
    c.deliver_at = col(row, "deliver_at")?;
    c.data = col(row, "data")?;
    c.trace = TraceContext::new(col(row, "traceparent")?, col(row, "tracestate")?);
    c.signature_scheme = col(row, "signature_scheme")?;
    c.endpoint_failing = col::<Option<String>>(row, "endpoint_status")?.as_deref() == Some("failing");
    let schedule: Option<Vec<i64>> = col(row, "retry_schedule_ms")?;
    c.retry_schedule = schedule.as_deref().map(RetrySchedule::from_stored);
    match url::Url::parse(&c.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
        Ok(u) => return Err(format!("its URL is not an http or https URL with a host (scheme {:?})", u.scheme())),
        Err(e) => return Err(format!("its URL no longer parses ({e})")),
    }
    let scheme = Scheme::parse(&c.signature_scheme)
        .ok_or_else(|| format!("its signature scheme {:?} is unknown", c.signature_scheme))?;
    let secret = |name: &str| -> Result<Option<Secret>, String> {
        col::<Option<String>>(row, name)?
            .map(|s| scheme.secret(&s).map_err(|why| format!("its {} is unusable: {why}", name.replace('_', " "))))
            .transpose()
    };
    c.signature_header = col(row, "signature_header")?;
    if let Some(text) = col::<Option<String>>(row, "headers")? {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| format!("its headers are not a JSON object ({e})"))?;
        c.headers = dialect::headers(&object, c.signature_header.as_deref())
            .map_err(|e| format!("its headers are unusable: {}", e.message))?;
    }
    c.timeout = col::<Option<i32>>(row, "timeout_ms")?.map(|ms| Duration::from_millis(ms.max(1) as u64));
    c.payload_format = PayloadFormat::parse(&col::<String>(row, "payload_format")?).map_err(|e| e.message)?;
    c.secret = secret("secret")?;
    // A rotated-out secret that cannot sign in this scheme (rotated out before the scheme
    // changed) is left out: the current one signs.
    c.previous_secret = secret("previous_secret").ok().flatten();
    // A callback without a secret goes unsigned: stored so only where its tenant allows it.
    if c.secret.is_none() && c.endpoint_id.is_some() {
        return Err("it has no signing secret".to_string());
    }
    crate::fault::at(crate::fault::Fault::AbortClaim, &c.event_type);
    Ok(())
}
