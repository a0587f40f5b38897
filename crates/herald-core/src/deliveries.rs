//! herald.deliveries: every statement on it, in one place, and its states.
//!
//! A delivery is `pending` until it is `delivered`, `failed` or `cancelled`; replay and manual
//! retry make a finished one `pending` again. While a worker attempts it, it stays `pending`
//! with a live lease (`lease_until`, `lease_owner`, set by the claim without touching an indexed
//! column: a HOT update), and the API shows it as `delivering`.
//!
//! Writers: fan-out (the outbox-poller for `herald.publish`, the API for its own events) and
//! replay create deliveries through [`insert`]; the API retries and cancels; the worker claims,
//! records and gives back. Every statement names one tenant (shared/scale-out.md, rule 2) and
//! takes its time as a parameter (rule 4).

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use crate::id::{DeliveryId, EndpointId, EventId, TenantId};
use crate::trace::{self, TraceContext};
use crate::validate;

/// A delivery's state, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Delivered,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }
}

/// Endpoints that take new deliveries: healthy or failing, not disabled. FOR KEY SHARE: an
/// endpoint being deleted waits for this fan-out to commit (and then cancels the deliveries it
/// made), and this one does not see it after its delete.
const ENDPOINTS: &str = "SELECT endpoint_id, url, event_types, ordering = 'fifo', consumer FROM herald.endpoints \
     WHERE tenant_id = $1 AND status IN ('healthy', 'failing') ORDER BY endpoint_id FOR KEY SHARE";

/// The insert of new deliveries, due at `$6` or at their event's `deliver_at` (`u.due`) if
/// later, shared by fan-out and replay; a FIFO endpoint's carry their event's `seq`.
macro_rules! insert_deliveries {
    () => {
        "INSERT INTO herald.deliveries AS d (tenant_id, delivery_id, event_id, target, \
           endpoint_id, url, state, next_attempt_at, created_at, updated_at, seq) \
         SELECT $1, u.delivery_id, u.event_id, u.target, u.endpoint_id, u.url, 'pending', greatest($6, u.due), $6, $6, \
                u.seq \
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $7::text[], $8::timestamptz[], $9::bigint[]) \
                AS u(delivery_id, event_id, target, endpoint_id, url, due, seq)"
    };
}

/// Fan-out's: deliveries of events that have none yet (fan-out runs in the transaction that
/// inserted its events or took them off the outbox queue). A plain insert: an ON CONFLICT
/// clause would cost a speculative insertion, and its WAL record, for every row.
const INSERT: &str = insert_deliveries!();

/// Replay's: an (event, target) that has a delivery keeps it, and one that finished is made
/// pending again, as a new round of the retry schedule (one being attempted is left alone).
/// The update takes its time from the row it would have inserted (`EXCLUDED`), not from `$6`:
/// Citus runs this INSERT ... SELECT through intermediate results and sends the DO UPDATE to the
/// worker without the statement's parameters ("could not determine data type of parameter").
const INSERT_AGAIN: &str = concat!(
    insert_deliveries!(),
    " ON CONFLICT (tenant_id, event_id, target) DO UPDATE \
        SET state = 'pending', next_attempt_at = EXCLUDED.next_attempt_at, lease_owner = NULL, lease_until = NULL, \
            schedule_offset = d.attempt_count, url = EXCLUDED.url, updated_at = EXCLUDED.updated_at, \
            seq = EXCLUDED.seq \
      WHERE d.state IN ('delivered', 'failed', 'cancelled')"
);

/// Wakes delivery-workers; sent from this session, delivered at COMMIT (a hint, rule 6).
pub const NOTIFY_WORKERS: &str = "SELECT pg_notify('herald_deliveries', $1)";

/// Rows to insert, column by column.
#[derive(Debug, Default)]
pub struct New<'a> {
    pub ids: Vec<DeliveryId>,
    pub event_ids: Vec<&'a EventId>,
    /// The endpoint's id, or `callback` (see [`target_of`]).
    pub targets: Vec<&'a str>,
    pub endpoint_ids: Vec<Option<&'a EndpointId>>,
    pub urls: Vec<&'a str>,
    /// When each is due if later than now: its event's `deliver_at`.
    pub dues: Vec<Option<DateTime<Utc>>>,
    /// Its event's `seq`, for a FIFO endpoint's (their order); `None` for every other.
    pub seqs: Vec<Option<i64>>,
}

/// Whether an endpoint of `endpoint` (its consumer, if any) takes an event for `event`: an
/// endpoint of a consumer takes only that consumer's events; one of none (the tenant's own)
/// takes every event. What keeps one customer's events from another's endpoints (a portal link
/// hands a customer its endpoints), in fan-out and in replay alike.
pub fn reaches(endpoint: Option<&str>, event: Option<&str>) -> bool {
    endpoint.is_none() || endpoint == event
}

/// What a delivery is sent to, for claims and limits: its endpoint, or its event's callback.
pub fn target_of(endpoint: Option<&EndpointId>) -> &str {
    endpoint.map_or(CALLBACK, EndpointId::as_str)
}

/// The target of every callback delivery.
pub const CALLBACK: &str = "callback";

/// Inserts `rows` (see [`INSERT`]; `again` for replay) and wakes the workers at COMMIT.
/// Returns how many rows were inserted or made pending again.
pub async fn insert(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    rows: &New<'_>,
    now: DateTime<Utc>,
    again: bool,
) -> Result<u64, tokio_postgres::Error> {
    if rows.ids.is_empty() {
        return Ok(0);
    }
    let insert = tx.prepare_cached(if again { INSERT_AGAIN } else { INSERT }).await?;
    let n = tx
        .execute(
            &insert,
            &[
                &tenant,
                &rows.ids,
                &rows.event_ids,
                &rows.targets,
                &rows.endpoint_ids,
                &now,
                &rows.urls,
                &rows.dues,
                &rows.seqs,
            ],
        )
        .await?;
    if n > 0 {
        tx.execute(&tx.prepare_cached(NOTIFY_WORKERS).await?, &[&tenant]).await?;
    }
    Ok(n)
}

/// What fan-out needs of an event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub event_type: String,
    pub callback_url: Option<String>,
    /// The context its fan-out span continues (empty when Herald makes no spans).
    pub trace: TraceContext,
    /// Nothing is sent before it (delayed publish).
    pub deliver_at: Option<DateTime<Utc>>,
    /// Herald's time-ordered key: a FIFO endpoint's deliveries go in its order.
    pub seq: i64,
    /// The consumer it is for: only that consumer's endpoints and the tenant's own get it.
    pub consumer: Option<String>,
}

/// Creates the deliveries of `events` (all of `tenant`) in `tx`, and wakes the workers when
/// it commits. Returns how many deliveries it made.
pub async fn fan_out(
    tx: &Transaction<'_>,
    tenant: &TenantId,
    events: &[Event],
    now: DateTime<Utc>,
) -> Result<usize, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    // An endpoint row that cannot be read gets nothing (and says so); the others go on.
    type Endpoint = (EndpointId, String, Vec<String>, bool, Option<String>);
    let endpoints: Vec<Endpoint> = tx
        .query(&tx.prepare_cached(ENDPOINTS).await?, &[&tenant])
        .await?
        .iter()
        .filter_map(|r| match (r.try_get(0), r.try_get(1), r.try_get(2), r.try_get(3), r.try_get(4)) {
            (Ok(id), Ok(url), Ok(types), Ok(fifo), Ok(consumer)) => Some((id, url, types, fifo, consumer)),
            (id, _, _, _, _) => {
                tracing::error!(%tenant, endpoint = ?id.ok(), "an endpoint row cannot be read; it gets no deliveries");
                None
            }
        })
        .collect();
    let (mut ids, mut event_ids, mut targets, mut endpoint_ids, mut urls, mut dues, mut seqs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::<&str>::new(), Vec::new(), Vec::new());
    // One span per event, in its publisher's trace, over the writing of its deliveries.
    let mut spans = Vec::new();
    for event in events {
        let before = ids.len();
        for (endpoint_id, url, patterns, fifo, consumer) in &endpoints {
            if reaches(consumer.as_deref(), event.consumer.as_deref())
                && validate::type_matches(patterns, &event.event_type)
            {
                ids.push(DeliveryId::generate(now));
                event_ids.push(&event.id);
                targets.push(target_of(Some(endpoint_id)));
                endpoint_ids.push(Some(endpoint_id));
                urls.push(url.as_str());
                dues.push(event.deliver_at);
                seqs.push(fifo.then_some(event.seq));
            }
        }
        if let Some(url) = &event.callback_url {
            ids.push(DeliveryId::generate(now));
            event_ids.push(&event.id);
            targets.push(CALLBACK);
            endpoint_ids.push(None);
            urls.push(url.as_str());
            dues.push(event.deliver_at);
            seqs.push(None);
        }
        if trace::on() {
            let span = tracing::info_span!("herald.fan_out", herald.tenant = %tenant, herald.event_id = %event.id,
                herald.event_type = %event.event_type, herald.deliveries = ids.len() - before);
            event.trace.parent_of(&span);
            spans.push(span);
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let made = ids.len();
    insert(tx, tenant, &New { ids, event_ids, targets, endpoint_ids, urls, dues, seqs }, now, false).await?;
    Ok(made)
}

// What the API reads and changes.

/// A delivery's state as the API shows it: a pending one with a live lease is `delivering`
/// (being attempted; its next_attempt_at is then the lease's end). `$now` is the parameter.
macro_rules! shown_state {
    ($now:literal) => {
        concat!(
            "CASE WHEN state = 'pending' AND lease_until > ",
            $now,
            " THEN 'delivering' ELSE state END AS state, \
             CASE WHEN state = 'pending' AND lease_until > ",
            $now,
            " THEN lease_until ELSE next_attempt_at END \
               AS next_attempt_at"
        )
    };
}

pub const FOR_EVENT: &str = concat!(
    "SELECT delivery_id, endpoint_id, url, attempt_count, last_status_code, last_error, ",
    shown_state!("$3"),
    " FROM herald.deliveries WHERE tenant_id = $1 AND event_id = $2 ORDER BY delivery_id"
);

pub const GET_ONE: &str = concat!(
    "SELECT delivery_id, event_id, endpoint_id, url, attempt_count, last_status_code, last_error, \
            created_at, updated_at, ",
    shown_state!("$3"),
    " FROM herald.deliveries WHERE tenant_id = $1 AND delivery_id = $2"
);

/// A delivery's columns for the API's lists, as [`GET_ONE`] has them (`$3` is now); the list's
/// statement is herald-producer's.
pub const LIST_COLUMNS: &str = concat!(
    "delivery_id, event_id, endpoint_id, url, attempt_count, last_status_code, last_error, \
     created_at, updated_at, ",
    shown_state!("$3")
);

/// Deleting an endpoint cancels what it had not yet been sent.
pub const CANCEL_FOR_ENDPOINT: &str = "UPDATE herald.deliveries \
     SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, updated_at = $3 \
     WHERE tenant_id = $1 AND target = $2 AND state = 'pending'";

pub const STATE: &str =
    concat!("SELECT ", shown_state!("$3"), " FROM herald.deliveries WHERE tenant_id = $1 AND delivery_id = $2");

/// A manual retry: due now, and a new round of the retry schedule.
pub const RETRY: &str = "UPDATE herald.deliveries d \
        SET state = 'pending', next_attempt_at = $3, lease_owner = NULL, lease_until = NULL, \
            schedule_offset = attempt_count, updated_at = $3, \
            /* to a FIFO endpoint: in its place in the order (made before the endpoint was) */ \
            seq = CASE WHEN d.seq IS NULL AND EXISTS (SELECT 1 FROM herald.endpoints e WHERE e.tenant_id = $1 \
                          AND e.endpoint_id = d.endpoint_id AND e.ordering = 'fifo') \
                       THEN (SELECT ev.seq FROM herald.events ev WHERE ev.tenant_id = $1 AND ev.event_id = d.event_id) \
                       ELSE d.seq END \
      WHERE tenant_id = $1 AND delivery_id = $2 AND state IN ('pending', 'failed', 'delivered') \
        AND (state <> 'pending' OR lease_until IS NULL OR lease_until <= $3) \
     RETURNING delivery_id, endpoint_id, url, state, attempt_count, next_attempt_at, last_status_code, last_error";

// The worker's: due, claim, record, give back.

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
        AND (e.max_in_flight IS NOT NULL OR e.rate_limit_per_s IS NOT NULL OR e.ordering = 'fifo') \
        AND EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.tenant_id = $1 AND d.target = e.endpoint_id AND ",
    due!(),
    ") ORDER BY e.endpoint_id"
);

/// What a limited endpoint has in flight across all workers: live leases. A leased row was due
/// when it was claimed, so only the due part of the endpoint's range is counted. A statement of
/// its own, run after the lock is held: under READ COMMITTED it then sees every claim that the
/// previous holder of the lock committed.
pub const IN_FLIGHT: &str = "SELECT count(*) FROM herald.deliveries \
     WHERE tenant_id = $1 AND target = $2 AND state = 'pending' AND next_attempt_at <= $3 AND lease_until > $3";

/// The claim, in one statement: for each target in `targets` (rows of `target`, `room`, and
/// `after_at`, a little before where this worker's last claim of it ended), its oldest due
/// deliveries from there, at most `room` each and `$3` in all, locked with SKIP LOCKED and
/// leased to `$5` until `$4`; answered with what an attempt needs. A lease found expired counts
/// as lost (`lost_leases`). Parameters: $1 tenant, $2 now, $3 limit, $4 lease deadline,
/// $5 worker, then those of `targets`.
fn claim(targets: &str) -> String {
    claim_from(&format!(
        "WITH room AS ({targets}), \
         due AS ( \
           SELECT x.delivery_id FROM room r CROSS JOIN LATERAL ( \
             SELECT d.delivery_id FROM herald.deliveries d \
              WHERE d.tenant_id = $1 AND d.target = r.target AND {due} \
                AND d.next_attempt_at >= r.after_at \
              ORDER BY d.next_attempt_at, d.delivery_id \
              LIMIT greatest(r.room, 0) \
              FOR UPDATE OF d SKIP LOCKED) x \
           LIMIT $3)",
        due = due!()
    ))
}

/// A FIFO endpoint's head (`$6`), if it may go now: its oldest pending delivery in Herald's key
/// order, due, not leased, published before `$7` (the settle time: a publish still committing
/// may yet come before it), and with no older event of the tenant still in the outbox. The head
/// is locked and checked again as it is then (a result or a cancel may have just changed it).
/// `$3` is unused but kept for the shared parameters. Run under the endpoint row's lock.
pub fn claim_fifo() -> String {
    claim_from(
        "WITH head AS ( \
           SELECT d.delivery_id FROM herald.deliveries d \
            WHERE d.tenant_id = $1 AND d.target = $6 AND d.state = 'pending' AND d.seq IS NOT NULL \
            ORDER BY d.seq, d.delivery_id LIMIT 1), \
         due AS ( \
           SELECT d.delivery_id FROM herald.deliveries d JOIN head h ON h.delivery_id = d.delivery_id \
            WHERE d.tenant_id = $1 AND d.state = 'pending' AND d.next_attempt_at <= $2 \
              AND (d.lease_until IS NULL OR d.lease_until <= $2) AND d.seq <= $7 AND $3::bigint > 0 \
              AND NOT EXISTS (SELECT 1 FROM herald.pending_events p WHERE p.tenant_id = $1 AND p.seq < d.seq) \
            FOR UPDATE OF d)",
    )
}

/// The claim's lease and answer, after a `due` CTE of delivery ids.
fn claim_from(due_cte: &str) -> String {
    format!(
        "{due_cte}, \
         claimed AS ( \
           UPDATE herald.deliveries d \
              SET lease_until = $4, lease_owner = $5, attempt_count = d.attempt_count + 1, updated_at = $2, \
                  lost_leases = CASE WHEN d.lease_until IS NULL THEN 0 ELSE d.lost_leases + 1 END \
             FROM due \
            WHERE d.tenant_id = $1 AND d.delivery_id = due.delivery_id \
           RETURNING d.delivery_id, d.event_id, d.endpoint_id, d.url, d.attempt_count, d.schedule_offset, \
                     d.lost_leases, d.next_attempt_at) \
         SELECT c.delivery_id, c.event_id, c.endpoint_id, c.next_attempt_at, coalesce(e.url, c.url) AS url, \
                c.attempt_count, c.schedule_offset, c.lost_leases, ev.event_type, ev.created_at, ev.deliver_at, \
                ev.data::text AS data, ev.traceparent, ev.tracestate, \
                coalesce(e.signature_scheme, 'standard-webhooks') AS signature_scheme, \
                coalesce(e.secret, ev.callback_secret) AS secret, \
                CASE WHEN e.previous_secret_until > $2 THEN e.previous_secret END AS previous_secret, \
                CASE WHEN c.endpoint_id IS NULL THEN ev.retry_schedule_ms ELSE e.retry_schedule_ms END \
                  AS retry_schedule_ms, \
                e.status AS endpoint_status, e.signature_header, e.headers::text AS headers, e.timeout_ms, \
                coalesce(e.payload_format, ev.callback_payload_format, 'envelope') AS payload_format, coalesce(e.ordering = 'fifo', false) AS fifo \
           FROM claimed c \
           /* a delivery whose event is gone comes back with NULL event columns, and fails as \
              invalid_delivery when prepared, instead of staying leased for ever */ \
           LEFT JOIN herald.events ev ON ev.tenant_id = $1 AND ev.event_id = c.event_id \
           LEFT JOIN herald.endpoints e ON e.tenant_id = $1 AND e.endpoint_id = c.endpoint_id"
    )
}

/// The tenant's callbacks and its endpoints without limits, in an order rotated by `$9` (each
/// gets its turn to go first), each with room for `$6` less what this worker has in flight to
/// it (`$7` targets, `$8` counts), from where this worker's claims of it start (`$10`
/// targets, `$11` next_attempt_at).
pub fn claim_open() -> String {
    claim(
        "SELECT t.target, $6::int - coalesce(l.n, 0) AS room, \
                coalesce(m.at, '-infinity') AS after_at FROM ( \
            SELECT x.target, row_number() OVER (ORDER BY x.target) AS i, count(*) OVER () AS n FROM ( \
              SELECT e.endpoint_id AS target FROM herald.endpoints e \
               WHERE e.tenant_id = $1 AND e.status <> 'disabled' \
                 AND e.max_in_flight IS NULL AND e.rate_limit_per_s IS NULL AND e.ordering <> 'fifo' \
              UNION ALL SELECT 'callback') x) t \
          LEFT JOIN unnest($7::text[], $8::int[]) AS l(target, n) ON l.target = t.target \
          LEFT JOIN unnest($10::text[], $11::timestamptz[]) AS m(target, at) \
                 ON m.target = t.target \
          ORDER BY (t.i + $9) % t.n",
    )
}

/// One limited endpoint (`$6`), up to `$3`.
pub fn claim_one() -> String {
    claim("SELECT $6::text AS target, $3::bigint AS room, '-infinity'::timestamptz AS after_at")
}

/// Results of a batch, for one tenant, with their attempts, in one statement. Only a delivery
/// still leased to this worker for this attempt changes: a result that comes back after its
/// lease expired (and another worker took the delivery) is logged as an attempt but changes
/// nothing else. Answers the deliveries whose result landed. Each attempt names its endpoint
/// (`$17`, NULL for a callback), as the worker claimed it: the attempt lists and statistics by
/// endpoint go by it.
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
              duration_ms, status_code, error, response_excerpt, endpoint_id) \
       SELECT $1, * FROM unnest($11::text[], $2::text[], $12::text[], $4::int[], $13::timestamptz[], \
              $14::int[], $7::int[], $15::text[], $16::text[], $17::text[]) \
       ON CONFLICT DO NOTHING) \
     SELECT delivery_id FROM recorded";

/// Gives a lease back untouched (shutdown before the attempt completed): due again at once.
pub const GIVE_BACK: &str = "UPDATE herald.deliveries \
        SET lease_until = NULL, lease_owner = NULL, attempt_count = attempt_count - 1, \
            next_attempt_at = $4, updated_at = $4 \
      WHERE tenant_id = $1 AND delivery_id = $2 AND lease_owner = $3 AND attempt_count = $5 \
        AND state = 'pending'";
