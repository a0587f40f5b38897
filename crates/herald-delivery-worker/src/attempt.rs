//! An attempt: what a worker holds while a delivery's lease lasts ([`Claimed`]), what the
//! attempt came to ([`AttemptOutcome`], data, never an error), and the two together on their
//! way to the database ([`Finished`]). Shared by the claim, the sender and the recorder, so
//! that none of them depends on another for its types.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_core::config::RetrySchedule;
use herald_core::deliveries;
use herald_core::dialect::{Headers, PayloadFormat};
use herald_core::id::{self, DeliveryId, EndpointId, EventId, TenantId};
use herald_core::signing::Secret;
use herald_core::trace::TraceContext;

impl Claimed {
    /// What a worker counts its attempts in flight under: the tenant and the target (the
    /// endpoint, or the tenant's callbacks together: a callback has no endpoint row to hold a
    /// limit). See [`target_key`].
    pub fn target_key(&self) -> String {
        target_key(&self.tenant_id, deliveries::target_of(self.endpoint_id.as_ref()))
    }
}

/// The key of `tenant`'s `target` among a worker's attempts in flight (a tenant name has no
/// `/`), so that one tenant's targets are found by their prefix.
pub fn target_key(tenant: &TenantId, target: &str) -> String {
    format!("{tenant}/{target}")
}

/// The class of an attempt refused before sending because the delivery cannot be prepared.
pub const INVALID_DELIVERY: &str = "invalid_delivery";
/// The class of an attempt not made because the tenant's URL policy refuses its URL.
pub const URL_POLICY: &str = "url_policy";
/// The class of an attempt refused because earlier ones never came back.
pub const ABANDONED: &str = "abandoned";

/// The class of an attempt during which Herald itself failed (a panic): retried on the schedule.
pub const INTERNAL: &str = "internal";

/// A delivery as the worker holds it while its lease lasts.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub tenant_id: TenantId,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub endpoint_id: Option<EndpointId>,
    pub url: String,
    /// The attempt number of this attempt, from 1, counted over the delivery's life.
    pub attempt: i32,
    /// Where this attempt stands in the current round of the retry schedule, from 1.
    pub round_attempt: i32,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    /// When the event was scheduled to go, if it was (delayed publish).
    pub deliver_at: Option<DateTime<Utc>>,
    /// The event's data as stored: valid JSON text, sent as it is.
    pub data: String,
    /// The event's trace context: the attempt's span continues it.
    pub trace: TraceContext,
    pub signature_scheme: String,
    pub secret: Option<Secret>,
    pub previous_secret: Option<Secret>,
    pub retry_schedule: Option<RetrySchedule>,
    /// The endpoint was `failing` when this was claimed (a success then means it recovered).
    pub endpoint_failing: bool,
    /// The hex scheme's header (`x-webhook-signature` when the endpoint names none).
    pub signature_header: Option<String>,
    /// Headers of the receiver's own, sent with every attempt; values are secrets.
    pub headers: Headers,
    /// The endpoint's own attempt timeout, if it has one.
    pub timeout: Option<Duration>,
    pub payload_format: PayloadFormat,
    /// To a FIFO endpoint: when its result is recorded, the next one may go.
    pub fifo: bool,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub status_code: Option<u16>,
    /// The error class (`timeout`, `connect`, `blocked_target`, `tls`, `http_status`, `request`).
    pub error: Option<&'static str>,
    /// A sentence for the delivery's `last_error`.
    pub detail: Option<String>,
    pub excerpt: Option<String>,
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    /// An attempt refused before anything was sent.
    pub fn refused(now: DateTime<Utc>, class: &'static str, why: String) -> Self {
        Self {
            started_at: now,
            duration: Duration::ZERO,
            status_code: None,
            error: Some(class),
            detail: Some(format!("{class}: {why}")),
            excerpt: None,
            retry_after: None,
        }
    }

    /// Whether trying again can help: not for a delivery that cannot be prepared, nor for one
    /// whose attempts are spent.
    pub fn final_failure(&self) -> bool {
        self.gone() || matches!(self.error, Some(INVALID_DELIVERY | ABANDONED))
    }

    /// Whether the outcome says anything about the endpoint's health (a refusal before
    /// sending, or a panic in Herald, says nothing about the receiver).
    pub fn reached_endpoint(&self) -> bool {
        !matches!(self.error, Some(INVALID_DELIVERY | ABANDONED | INTERNAL))
    }

    pub fn delivered(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }

    pub fn gone(&self) -> bool {
        self.status_code == Some(410)
    }
}

/// A finished attempt, on its way to the database.
#[derive(Debug, Clone)]
pub struct Finished {
    pub claimed: Claimed,
    pub outcome: AttemptOutcome,
    /// Made once, so that a batch written twice (a COMMIT whose answer was lost) logs it once.
    pub attempt_id: String,
}

impl Finished {
    pub fn new(claimed: Claimed, outcome: AttemptOutcome) -> Self {
        let attempt_id = id::new_id(id::ATTEMPT, outcome.started_at);
        Self { claimed, outcome, attempt_id }
    }
}
