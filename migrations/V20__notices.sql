-- Failing-endpoint notices by email and Slack (docs/operations.md, "Failing-endpoint notices").
--
-- A tenant's channels, set by its operator (`herald tenant set --notify-email ...`) or by the
-- tenant itself (`PATCH /v1/tenant`): an email address, and a Slack-compatible incoming-webhook
-- URL. NULL: that channel is off.
ALTER TABLE herald.tenants
    ADD COLUMN notify_email text,
    ADD COLUMN notify_slack_url text;

-- One row per endpoint health change and channel, written by the delivery-worker in the
-- transaction that changes the endpoint's status (so at most one per change), only when the
-- tenant has that channel on. The outbox-poller's notice sender, each channel on its own, claims
-- a tenant's oldest pending notice (FOR UPDATE SKIP LOCKED, a lease like a delivery's), sends
-- with no transaction open, and records the result: `sent`, or the next attempt on its retry
-- schedule (HERALD_NOTICE_RETRY_SCHEDULE), or `failed` once the schedule's total has passed
-- since created_at or the server refused it for good, or `dropped` when the channel was turned
-- off before it went, when a newer notice of the same endpoint and channel supersedes it (only
-- the latest change is sent), or, for email, when the poller has no mail server. Nothing else
-- reads it on the delivery path. notice_id is Herald's time-ordered id (`ntc_...`): the order
-- notices of one channel go in, and what retention deletes by (there is no index on
-- created_at). The address is read from herald.tenants when the notice is sent.
CREATE TABLE herald.notices (
    tenant_id       text        NOT NULL REFERENCES herald.tenants (tenant_id),
    notice_id       text        NOT NULL,
    endpoint_id     text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('failing', 'disabled', 'recovered')),
    channel         text        NOT NULL CHECK (channel IN ('email', 'slack')),
    -- What the text says: the endpoint's URL, the event, delivery and last error, the reason.
    detail          jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed', 'dropped')),
    -- Claims so far (each claim counts one, and names the claim its result must match).
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    PRIMARY KEY (tenant_id, notice_id)
);

-- The sender's probe, claim and supersede: a tenant's pending notices, per channel, oldest first.
CREATE INDEX notices_pending ON herald.notices (tenant_id, channel, notice_id) WHERE state = 'pending';
