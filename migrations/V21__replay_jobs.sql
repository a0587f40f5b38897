-- V21 (issue 13, part 2): replay as a background job, and what the lists by endpoint and an
-- endpoint's statistics read. Every rule of shared/scale-out.md holds: tenant_id leads each key,
-- order is Herald's own time-ordered key, and nothing here sends NOTIFY from a trigger.

-- A replay job. `POST /v1/endpoints/{id}/replay` inserts one, `running`; a runner in the
-- processes that run the outbox-poller takes it with a lease (lease_owner, lease_until: the
-- claim is FOR UPDATE SKIP LOCKED, and each batch locks the row again and checks the lease is
-- still its own) and walks the window in batches, each batch one transaction that makes its
-- deliveries and moves `after_seq`/`after_event_id` (the last event done, in Herald's key order)
-- with them: a runner that dies resumes, after its lease, where the last commit left the job.
-- It ends `done`, or `failed` with `error`. No foreign key to the endpoint: deleting one must
-- not wait for its replays (the runner fails a job whose endpoint is gone).
CREATE TABLE herald.replays (
    tenant_id           text        NOT NULL REFERENCES herald.tenants (tenant_id),
    replay_id           text        NOT NULL,
    endpoint_id         text        NOT NULL,
    since               timestamptz NOT NULL,
    until               timestamptz NOT NULL,
    state               text        NOT NULL DEFAULT 'running'
                        CHECK (state IN ('running', 'done', 'failed')),
    after_seq           bigint,
    after_event_id      text,
    events_scanned      bigint      NOT NULL DEFAULT 0,
    events_matched      bigint      NOT NULL DEFAULT 0,
    deliveries_created  bigint      NOT NULL DEFAULT 0,
    error               text,
    lease_owner         text,
    lease_until         timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    PRIMARY KEY (tenant_id, replay_id),
    CHECK (since < until)
);
-- What a runner looks for: a tenant's running jobs (a handful; finished ones are not in it).
CREATE INDEX replays_running ON herald.replays (tenant_id, replay_id) WHERE state = 'running';

-- Attempts by endpoint (`GET /v1/endpoints/{id}/attempts` and `/stats`), newest first by when
-- they started (Herald's clock; the attempt id breaks ties): the attempt log names its
-- endpoint, taken by the recorder's statement from the delivery row it updates anyway. One more
-- index entry per attempt to an endpoint (none for callbacks). With status_code in it, the
-- statistics count an endpoint's last day from the index alone (attempts are append-only, so
-- their pages are all-visible once vacuumed). Attempts of the last two days logged before this
-- migration get their endpoint here, once (what the statistics read; a bounded rewrite, only
-- the latest partition or two); older ones stay in their event's attempt log
-- (`GET /v1/events/{id}/attempts`) and are not listed by endpoint.
ALTER TABLE herald.attempts ADD COLUMN endpoint_id text;
UPDATE herald.attempts a SET endpoint_id = d.endpoint_id
  FROM herald.deliveries d
 WHERE d.tenant_id = a.tenant_id AND d.delivery_id = a.delivery_id AND d.endpoint_id IS NOT NULL
   AND a.started_at > now() - interval '2 days';
CREATE INDEX attempts_by_endpoint ON herald.attempts (tenant_id, endpoint_id, started_at, attempt_id)
    INCLUDE (status_code) WHERE endpoint_id IS NOT NULL;

-- Finished deliveries by target, newest first (`GET /v1/endpoints/{id}/deliveries`); pending
-- ones are in deliveries_claim already. An entry is written only when a delivery finishes (a
-- row that changes state is never a HOT update anyway); a claim still changes no indexed column.
CREATE INDEX deliveries_finished ON herald.deliveries (tenant_id, target, delivery_id)
    WHERE state IN ('delivered', 'failed', 'cancelled');
