-- Human-in-the-loop operations (contract section 6): an agent asks a human for an approval or an
-- answer, pauses, and is resumed by the webhook that the answer publishes. The state change and
-- its event are always written in one transaction.

CREATE TABLE herald.operations (
    tenant_id          text        NOT NULL REFERENCES herald.tenants (tenant_id),
    call_id            text        NOT NULL CHECK (call_id ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    kind               text        NOT NULL CHECK (kind IN ('approval', 'human_contact')),
    run_id             text,
    -- {fn, kwargs} for an approval, {msg, subject} for a human contact.
    spec               jsonb       NOT NULL,
    -- The agent's own JSON, returned untouched.
    state              jsonb,
    requested_at       timestamptz NOT NULL,
    expires_at         timestamptz,
    callback_url       text        CHECK (length(callback_url) <= 2048),
    callback_secret    text,
    retry_schedule_ms  bigint[],
    -- SHA-256 of the create request: the same call_id again is idempotent only with the same body.
    request_hash       text        NOT NULL,
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'approved', 'rejected', 'answered', 'expired')),
    approved           boolean,
    comment            text,
    response           text,
    responder          text,
    responded_at       timestamptz,
    PRIMARY KEY (tenant_id, call_id)
);
CREATE INDEX operations_pending ON herald.operations (tenant_id, kind, call_id) WHERE status = 'pending';
CREATE INDEX operations_expiring ON herald.operations (tenant_id, expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

CREATE FUNCTION herald.rfc3339(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- An operation as the API answers it and as every one of its events carries it in `data`.
CREATE FUNCTION herald.operation_json(o herald.operations) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'call_id', o.call_id,
        'run_id', o.run_id,
        'kind', o.kind,
        'spec', o.spec,
        'state', coalesce(o.state, 'null'::jsonb),
        'requested_at', herald.rfc3339(o.requested_at),
        'expires_at', herald.rfc3339(o.expires_at),
        'status', jsonb_strip_nulls(jsonb_build_object(
            'state', o.status,
            'approved', o.approved,
            'comment', o.comment,
            'response', o.response,
            'responder', o.responder,
            'responded_at', herald.rfc3339(o.responded_at))))
$$;

-- Publishes `<kind>_<what>` for an operation, to the tenant's subscribed endpoints and, for
-- completed and expired, to the operation's own callback URL.
CREATE FUNCTION herald.publish_operation(o herald.operations, what text, at timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    to_callback boolean := what <> 'requested' AND o.callback_url IS NOT NULL;
BEGIN
    RETURN (SELECT p.event_id FROM herald.publish_event(
        o.tenant_id, o.kind || '_' || what, herald.operation_json(o), NULL,
        CASE WHEN to_callback THEN o.callback_url END,
        CASE WHEN to_callback THEN o.callback_secret END,
        CASE WHEN to_callback THEN (SELECT array_agg(make_interval(secs => x / 1000.0) ORDER BY n)
                                      FROM unnest(o.retry_schedule_ms) WITH ORDINALITY AS s(x, n)) END,
        NULL, at) p);
END $$;

-- Expires a tenant's pending operations whose time is up, each with its `*_expired` event in
-- this same transaction. Returns how many.
CREATE FUNCTION herald.expire_operations(p_tenant text, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    o herald.operations%ROWTYPE;
    n integer := 0;
BEGIN
    FOR o IN
        UPDATE herald.operations SET status = 'expired'
         WHERE tenant_id = p_tenant AND status = 'pending' AND expires_at <= p_now
        RETURNING *
    LOOP
        PERFORM herald.publish_operation(o, 'expired', p_now);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
