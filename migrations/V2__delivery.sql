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
