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

CREATE FUNCTION herald.rfc3339(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- An operation as the API answers it and as every one of its events carries it in `data`.
CREATE FUNCTION herald.operation_json(o herald.operations) RETURNS jsonb LANGUAGE sql STABLE AS $$
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

-- Creating, answering and expiring are plain functions that write the operation and then
-- publish its event, all in the caller's transaction (never a volatile function in a RETURNING
-- clause: Citus refuses those, and would push them down to a shard; scale-out.md rules 4, 6, 8).

-- Creates an operation and publishes `<kind>_requested`. NULL when the call_id exists already.
CREATE FUNCTION herald.create_operation(
    p_tenant text, p_call_id text, p_kind text, p_run_id text, p_spec jsonb, p_state jsonb,
    p_at timestamptz, p_expires_at timestamptz, p_callback_url text, p_callback_secret text,
    p_retry_schedule_ms bigint[], p_request_hash text
) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    o herald.operations%ROWTYPE;
BEGIN
    INSERT INTO herald.operations (tenant_id, call_id, kind, run_id, spec, state, requested_at, expires_at,
                                   callback_url, callback_secret, retry_schedule_ms, request_hash)
    VALUES (p_tenant, p_call_id, p_kind, p_run_id, p_spec, p_state, p_at, p_expires_at,
            p_callback_url, p_callback_secret, p_retry_schedule_ms, p_request_hash)
    ON CONFLICT (tenant_id, call_id) DO NOTHING
    RETURNING * INTO o;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM herald.publish_operation(o, 'requested', p_at);
    RETURN herald.operation_json(o);
END $$;

-- Records the answer to a pending operation and publishes `<kind>_completed`. NULL when the
-- operation is not pending (the caller holds its row lock and knows why).
CREATE FUNCTION herald.answer_operation(
    p_tenant text, p_call_id text, p_kind text, p_status text, p_approved boolean, p_comment text,
    p_response text, p_responder text, p_at timestamptz
) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    o herald.operations%ROWTYPE;
BEGIN
    UPDATE herald.operations
       SET status = p_status, approved = p_approved, comment = p_comment, response = p_response,
           responder = p_responder, responded_at = p_at
     WHERE tenant_id = p_tenant AND call_id = p_call_id AND kind = p_kind AND status = 'pending'
    RETURNING * INTO o;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM herald.publish_operation(o, 'completed', p_at);
    RETURN herald.operation_json(o);
END $$;

-- Expires a tenant's pending operations whose time is up at p_now (only p_call_id when it is
-- given), each with its `*_expired` event in this same transaction; at most p_limit, skipping
-- rows another transaction holds. Returns how many.
CREATE FUNCTION herald.expire_operations(p_tenant text, p_now timestamptz, p_call_id text DEFAULT NULL,
                                         p_limit integer DEFAULT 500) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    o herald.operations%ROWTYPE;
    n integer := 0;
BEGIN
    FOR o IN
        WITH due AS (
            SELECT call_id FROM herald.operations
             WHERE tenant_id = p_tenant AND status = 'pending' AND expires_at <= p_now
               AND (p_call_id IS NULL OR call_id = p_call_id)
             ORDER BY expires_at LIMIT p_limit
             FOR UPDATE SKIP LOCKED)
        UPDATE herald.operations op SET status = 'expired'
          FROM due
         WHERE op.tenant_id = p_tenant AND op.call_id = due.call_id
        RETURNING op.*
    LOOP
        PERFORM herald.publish_operation(o, 'expired', p_now);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
