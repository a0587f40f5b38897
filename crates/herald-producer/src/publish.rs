//! Publishing an event into the outbox inside the caller's transaction.

use chrono::{DateTime, Utc};
use herald_core::config::RetrySchedule;
use herald_core::data::EventData;
use herald_core::dialect::PayloadFormat;
use herald_core::id::{EventId, TenantId};
use herald_core::signing::Secret;
use herald_core::trace::TraceContext;
use herald_core::validate::{self, Invalid};
use tokio_postgres::Transaction;

use crate::sql;

/// An event to publish. `id: None` lets Herald generate a time-ordered `evt_` id.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub id: Option<EventId>,
    pub event_type: String,
    /// Delivered as this text: `EventData::parse` checks text from outside, and a
    /// `serde_json::Value` converts with `.into()`.
    pub data: EventData,
    pub callback_url: Option<String>,
    pub callback_secret: Option<Secret>,
    pub retry_schedule: Option<RetrySchedule>,
    pub traceparent: Option<String>,
    /// W3C `tracestate`, passed on with `traceparent` (ignored without one).
    pub tracestate: Option<String>,
    /// Nothing is sent before this time (at most 30 days after publishing; a time past is now).
    pub deliver_at: Option<DateTime<Utc>>,
    /// The body the callback gets (the envelope when `None`).
    pub callback_payload_format: Option<PayloadFormat>,
    /// The customer it is for: only that consumer's endpoints (and the tenant's own, of no
    /// consumer) get it. `None`: the tenant's own endpoints only.
    pub consumer: Option<String>,
}

impl NewEvent {
    /// Its trace context, when Herald makes spans (fan-out continues it); none otherwise.
    pub fn trace_context(&self) -> TraceContext {
        if !herald_core::trace::on() {
            return TraceContext::default();
        }
        TraceContext::new(self.traceparent.clone(), self.tracestate.clone())
    }

    /// The rules every door applies (contract section 8); returns the callback URL as it is
    /// stored (parsed: lower-case scheme and host, percent-encoded, as endpoint URLs are).
    pub fn check(&self) -> Result<Option<String>, Invalid> {
        validate::event_type(&self.event_type)?;
        if let Some(c) = &self.consumer {
            validate::consumer(c)?;
        }
        let callback_url = match &self.callback_url {
            Some(url) => {
                Some(validate::target_url("callback_url", url, &herald_core::targets::AllowList::all())?.to_string())
            }
            None => None,
        };
        validate::callback_fields(
            callback_url.is_some(),
            self.callback_secret.is_some() || self.callback_payload_format.is_some(),
            self.retry_schedule.is_some(),
            "event",
        )?;
        if self.traceparent.as_deref().is_some_and(|t| !validate::traceparent(t)) {
            return Err(Invalid::new(
                "invalid_traceparent",
                "traceparent must be a W3C trace context: 00-<32 hex>-<16 hex>-<2 hex>",
            ));
        }
        if self.tracestate.as_deref().is_some_and(|t| !validate::tracestate(t)) {
            return Err(Invalid::new(
                "invalid_tracestate",
                "tracestate must be a W3C tracestate: at most 512 characters of visible ASCII, commas and spaces",
            ));
        }
        Ok(callback_url)
    }
}

/// The furthest ahead an event may be scheduled.
pub const MAX_DELAY: chrono::Duration = chrono::Duration::days(30);

/// `deliver_at` at most 30 days after `at`.
pub fn check_deliver_at(deliver_at: Option<DateTime<Utc>>, at: DateTime<Utc>) -> Result<(), Invalid> {
    match deliver_at {
        Some(t) if t > at + MAX_DELAY => Err(Invalid::new(
            "invalid_deliver_at",
            format!("deliver_at {} is more than 30 days ahead; schedule it at most 30 days ahead", t.to_rfc3339()),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    pub created_at: DateTime<Utc>,
    /// The tenant had already published this id: nothing new was stored.
    pub duplicate: bool,
    /// The callback secret Herald made, when the event has a callback_url and no
    /// callback_secret was given: shown this once.
    pub generated_callback_secret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("unknown tenant {0:?}: create it with `herald tenant create NAME`")]
    UnknownTenant(String),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(deadpool_postgres::PoolError),
    #[error("the publisher stopped before answering")]
    Stopped,
    /// The database could not be reached while writing a batch this event was part of.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// Publishes `event` for `tenant` in the caller's transaction: it is stored, and the
/// outbox-poller woken, when the transaction commits; a rollback publishes nothing. Publishing
/// an id the tenant already published stores nothing new and answers `duplicate: true`.
///
/// Callback URLs are checked for shape here; whether their address is allowed is checked at
/// delivery, on the address actually connected to.
pub async fn publish(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    event: &NewEvent,
    at: DateTime<Utc>,
) -> Result<Published, PublishError> {
    publish_as(tx, tenant, event, at, Some("rust")).await
}

/// [`publish`], counted in `herald_events_published_total` under `door` by the outbox-poller,
/// or not at all (`None`: the API counted it).
pub(crate) async fn publish_as(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    event: &NewEvent,
    at: DateTime<Utc>,
    door: Option<&str>,
) -> Result<Published, PublishError> {
    let callback_url = event.check()?;
    check_deliver_at(event.deliver_at, at)?;
    let schedule_ms = event.retry_schedule.as_ref().map(RetrySchedule::stored);
    let row = tx
        .query_one(
            sql::PUBLISH_EVENT,
            &[
                &tenant,
                &event.event_type,
                &event.data.as_str(),
                &event.id,
                &callback_url,
                &event.callback_secret.as_ref().map(Secret::expose),
                &schedule_ms,
                &event.traceparent,
                &at,
                &event.traceparent.as_ref().and(event.tracestate.as_ref()),
                &door,
                &event.deliver_at,
                &event.consumer,
            ],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
                PublishError::UnknownTenant(tenant.to_string())
            } else if e.code() == Some(&tokio_postgres::error::SqlState::UNTRANSLATABLE_CHARACTER)
                || e.code() == Some(&tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE)
            {
                // The database's encoding cannot hold a character of a text field.
                Invalid::new(
                    "invalid_data",
                    "a value holds a character the database's encoding cannot store; remove it or encode the value",
                )
                .into()
            } else {
                PublishError::Database(e)
            }
        })?;
    let published = Published {
        id: row.get(0),
        created_at: row.get(1),
        duplicate: row.get(2),
        generated_callback_secret: row.get(3),
    };
    if let (Some(format), false) = (event.callback_payload_format, published.duplicate) {
        tx.execute(sql::SET_CALLBACK_FORMAT, &[tenant, &published.id, &format.name()]).await?;
    }
    Ok(published)
}
