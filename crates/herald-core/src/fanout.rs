//! Fan-out: one delivery per endpoint that subscribes to an event and is not disabled, and one
//! for the event's own callback URL, written in the caller's transaction. The outbox-poller
//! fans out what `herald.publish` queued; the HTTP API fans out what it publishes, in the same
//! transaction (no outbox hop). Both come here, so the rule is written once.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use crate::{id, validate};

/// Endpoints that take new deliveries: healthy or failing, not disabled. FOR KEY SHARE: an
/// endpoint being deleted waits for this fan-out to commit (and then cancels the deliveries it
/// made), and this one does not see it after its delete.
const ENDPOINTS: &str = "SELECT endpoint_id, url, event_types FROM herald.endpoints \
     WHERE tenant_id = $1 AND status IN ('healthy', 'failing') ORDER BY endpoint_id FOR KEY SHARE";

/// New deliveries, due at `$6`; an (event, target) that has one already keeps it.
const INSERT: &str = "INSERT INTO herald.deliveries (tenant_id, delivery_id, event_id, target, \
       endpoint_id, url, state, next_attempt_at, created_at, updated_at) \
     SELECT $1, u.delivery_id, u.event_id, u.target, u.endpoint_id, u.url, 'pending', $6, $6, $6 \
       FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $7::text[]) \
            AS u(delivery_id, event_id, target, endpoint_id, url) \
     ON CONFLICT (tenant_id, event_id, target) DO NOTHING";

/// Wakes delivery-workers; sent from this session, delivered at COMMIT (a hint, rule 6).
const NOTIFY_WORKERS: &str = "SELECT pg_notify('herald_deliveries', $1)";

/// What fan-out needs of an event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub callback_url: Option<String>,
}

/// Creates the deliveries of `events` (all of `tenant`) in `tx`, and wakes the workers when
/// it commits. Returns how many deliveries it made.
pub async fn fan_out(
    tx: &Transaction<'_>,
    tenant: &str,
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<usize, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    // An endpoint row that cannot be read gets nothing (and says so); the others go on.
    let endpoints: Vec<(String, String, Vec<String>)> = tx
        .query(&tx.prepare_cached(ENDPOINTS).await?, &[&tenant])
        .await?
        .iter()
        .filter_map(|r| match (r.try_get(0), r.try_get(1), r.try_get(2)) {
            (Ok(id), Ok(url), Ok(types)) => Some((id, url, types)),
            (id, _, _) => {
                tracing::error!(tenant, endpoint = ?id.ok(), "an endpoint row cannot be read; it gets no deliveries");
                None
            }
        })
        .collect();
    let (mut ids, mut event_ids, mut targets, mut endpoint_ids, mut urls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for event in events {
        for (endpoint_id, url, patterns) in &endpoints {
            if validate::type_matches(patterns, &event.event_type) {
                ids.push(id::new_id(id::DELIVERY, now));
                event_ids.push(event.id.as_str());
                targets.push(endpoint_id.as_str());
                endpoint_ids.push(Some(endpoint_id.as_str()));
                urls.push(url.as_str());
            }
        }
        if let Some(url) = &event.callback_url {
            ids.push(id::new_id(id::DELIVERY, now));
            event_ids.push(event.id.as_str());
            targets.push("callback");
            endpoint_ids.push(None);
            urls.push(url.as_str());
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let insert = tx.prepare_cached(INSERT).await?;
    tx.execute(&insert, &[&tenant, &ids, &event_ids, &targets, &endpoint_ids, &now, &urls]).await?;
    tx.execute(&tx.prepare_cached(NOTIFY_WORKERS).await?, &[&tenant]).await?;
    Ok(ids.len())
}
