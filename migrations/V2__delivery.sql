-- What the delivery-worker needs beyond V1.

-- A token bucket per rate-limited endpoint, shared by every worker: the bucket is refilled and
-- spent by the worker that holds the endpoint row's lock while it claims (never during an HTTP
-- call), so a limit of 10/s holds across all workers together.
ALTER TABLE herald.endpoints
    ADD COLUMN rate_tokens      double precision,
    ADD COLUMN rate_refilled_at timestamptz;

-- A manual retry or a replay starts a new round of the retry schedule without renumbering the
-- attempts: the schedule step of an attempt is attempt_count - schedule_offset.
ALTER TABLE herald.deliveries
    ADD COLUMN schedule_offset integer NOT NULL DEFAULT 0;

-- Replay windows are read by created_at through seq (time-ordered); index exists (events_by_seq).

-- Claims go endpoint by endpoint (so that one endpoint's backlog or a hanging receiver never
-- takes every slot): "does this endpoint have due work" and "its oldest due deliveries" are
-- both one probe of this index. delivery_id is in it because the claim orders by
-- (next_attempt_at, delivery_id): without it every claim would sort the whole backlog.
DROP INDEX herald.deliveries_open_by_endpoint;
CREATE INDEX deliveries_due_by_endpoint ON herald.deliveries (tenant_id, endpoint_id, next_attempt_at, delivery_id)
    WHERE state IN ('pending', 'delivering');
