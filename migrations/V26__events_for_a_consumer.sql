-- An event for one consumer (docs/api.md, "Consumers"): only that consumer's endpoints, and the
-- tenant's own (of no consumer), get it; an endpoint of a consumer gets that consumer's events
-- only. What lets a tenant hand a customer a portal link to its endpoints without handing it
-- the other customers' events. No CHECK on the table (every door checks it, and one here would
-- read every row of its history); NULL: the tenant's own event.
ALTER TABLE herald.events ADD COLUMN consumer text;

-- V18's publish_event_json, with the consumer stored by its INSERT (a parameter cannot be added
-- in place: a second form, and the first made to call it).
CREATE FUNCTION herald.publish_event_json(
    p_tenant          text,
    p_type            text,
    p_data            json,
    p_id              text,
    p_callback_url    text,
    p_callback_secret text,
    p_retry_schedule  interval[],
    p_traceparent     text,
    p_at              timestamptz,
    p_tracestate      text,
    p_door            text,
    p_deliver_at      timestamptz,
    p_consumer        text
) RETURNS TABLE (event_id text, created_at timestamptz, duplicate boolean, generated_secret text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_at   timestamptz := coalesce(p_at, clock_timestamp());
    v_id   text := coalesce(p_id, herald.new_id('evt_', v_at));
    v_seq  bigint := floor(extract(epoch FROM v_at) * 1000000)::bigint * 1024 + floor(random() * 1024)::bigint;
    v_ms   bigint[];
    v_key  bytea;
    v_created timestamptz;
    v_secret text := p_callback_secret;
    v_generated text;
    v_tenant boolean;
    v_unsigned boolean;
BEGIN
    IF p_tenant IS NULL THEN
        RAISE EXCEPTION 'herald.publish: unknown tenant NULL'
            USING ERRCODE = 'foreign_key_violation', HINT = 'create it with `herald tenant create NAME`';
    END IF;
    IF v_id !~ '^[A-Za-z0-9_.:-]{1,128}$' THEN
        RAISE EXCEPTION 'herald.publish: invalid event id %', quote_literal(v_id)
            USING ERRCODE = 'check_violation',
                  HINT = 'an id is 1 to 128 characters of A-Z a-z 0-9 _ - . :';
    END IF;
    IF p_type IS NULL OR p_type !~ '^[A-Za-z0-9_.-]{1,128}$' THEN
        RAISE EXCEPTION 'herald.publish: invalid event type %', coalesce(quote_literal(p_type), 'NULL')
            USING ERRCODE = 'check_violation',
                  HINT = 'a type is 1 to 128 characters of A-Z a-z 0-9 _ - .';
    END IF;
    IF p_data IS NULL THEN
        RAISE EXCEPTION 'herald.publish: data is required'
            USING ERRCODE = 'not_null_violation', HINT = 'pass ''null''::json for a JSON null';
    END IF;
    IF p_callback_url IS NOT NULL AND (p_callback_url !~* '^https?://[^/@?#[:space:]]+([/?#][^[:space:]]*)?$' OR length(p_callback_url) > 2048) THEN
        RAISE EXCEPTION 'herald.publish: invalid callback_url %',
            quote_literal(split_part(split_part(p_callback_url, '?', 1), '#', 1))
            USING ERRCODE = 'check_violation',
                  HINT = 'an http or https URL with a host, no user or password, at most 2048 characters';
    END IF;
    IF p_callback_secret IS NOT NULL THEN
        BEGIN
            v_key := decode(substr(p_callback_secret, 7), 'base64');
        EXCEPTION WHEN OTHERS THEN
            v_key := NULL;
        END;
        IF left(p_callback_secret, 6) <> 'whsec_' OR v_key IS NULL OR length(v_key) NOT BETWEEN 24 AND 64 THEN
            RAISE EXCEPTION 'herald.publish: invalid callback_secret'
                USING ERRCODE = 'check_violation',
                      HINT = 'a secret is whsec_ followed by the base64 of 24 to 64 random bytes';
        END IF;
    END IF;
    IF p_callback_url IS NULL AND (p_callback_secret IS NOT NULL OR p_retry_schedule IS NOT NULL) THEN
        RAISE EXCEPTION 'herald.publish: callback_secret and retry_schedule need a callback_url'
            USING ERRCODE = 'check_violation',
                  HINT = 'give callback_url too, or leave them out';
    END IF;
    IF p_deliver_at IS NOT NULL AND p_deliver_at > v_at + interval '30 days' THEN
        RAISE EXCEPTION 'herald.publish: deliver_at % is more than 30 days ahead', p_deliver_at
            USING ERRCODE = 'check_violation',
                  HINT = 'schedule at most 30 days ahead; a time in the past delivers at once';
    END IF;
    IF p_consumer IS NOT NULL AND p_consumer !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
        RAISE EXCEPTION 'herald.publish: invalid consumer %', quote_literal(p_consumer)
            USING ERRCODE = 'check_violation',
                  HINT = 'a consumer is 1 to 100 characters of A-Z a-z 0-9 _ . : -';
    END IF;
    IF p_callback_url IS NOT NULL AND p_callback_secret IS NULL THEN
        SELECT t.unsigned_callbacks INTO v_unsigned FROM herald.tenants t WHERE t.tenant_id = p_tenant;
    END IF;
    IF p_callback_url IS NOT NULL AND p_callback_secret IS NULL AND v_unsigned IS NOT TRUE THEN
        -- A callback is always signed: without a secret from the caller, Herald makes one
        -- (32 bytes from two v4 UUIDs, 244 of them random) and answers it once.
        v_generated := 'whsec_' || encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64');
        v_secret := v_generated;
    END IF;
    IF p_traceparent IS NOT NULL AND p_traceparent !~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' THEN
        RAISE EXCEPTION 'herald.publish: invalid traceparent %', quote_literal(p_traceparent)
            USING ERRCODE = 'check_violation',
                  HINT = 'a W3C trace context: 00-<32 hex>-<16 hex>-<2 hex>, lowercase';
    END IF;
    IF p_tracestate IS NOT NULL AND (p_traceparent IS NULL OR length(p_tracestate) > 512
                                     OR p_tracestate ~ '[^\x20-\x7e]') THEN
        RAISE EXCEPTION 'herald.publish: invalid tracestate %', quote_literal(p_tracestate)
            USING ERRCODE = 'check_violation',
                  HINT = 'a W3C tracestate, with a traceparent: at most 512 characters of visible ASCII';
    END IF;
    IF p_retry_schedule IS NOT NULL THEN
        SELECT array_agg((extract(epoch FROM d) * 1000)::bigint ORDER BY n)
          INTO v_ms FROM unnest(p_retry_schedule) WITH ORDINALITY AS s(d, n);
        IF EXISTS (SELECT 1 FROM unnest(v_ms) x WHERE x IS NULL OR x <= 0 OR x > 7 * 86400000)
           OR coalesce(array_length(v_ms, 1), 0) NOT BETWEEN 1 AND 20 THEN
            RAISE EXCEPTION 'herald.publish: invalid retry_schedule'
                USING ERRCODE = 'check_violation',
                      HINT = '1 to 20 steps, each at least 1 millisecond and at most 7 days';
        END IF;
    END IF;

    -- On Citus (`herald migrate --citus` sets herald.citus for the database), one statement on
    -- the tenant's node each: a single statement of these writes was a plan over every node
    -- with a two-phase commit. On a single PostgreSQL, one statement (V4's), a third of the work.
    IF current_setting('herald.citus', true) = 'on' THEN
        -- The tenant (a reference table on Citus: read where it runs), then the event and its
        -- place in the outbox queue, each one statement on the tenant's node. (One statement for
        -- all three was, on Citus, a plan over every node with a two-phase commit.)
        PERFORM FROM herald.tenants t WHERE t.tenant_id = p_tenant;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'herald.publish: unknown tenant %', quote_literal(p_tenant)
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'create it with `herald tenant create NAME`';
        END IF;
        INSERT INTO herald.events AS e (tenant_id, event_id, seq, event_type, data, created_at,
                                        callback_url, callback_secret, retry_schedule_ms, traceparent,
                                        tracestate, door, deliver_at, consumer)
        VALUES (p_tenant, v_id, v_seq, p_type, p_data, v_at, p_callback_url, v_secret, v_ms, p_traceparent,
                p_tracestate, p_door, p_deliver_at, p_consumer)
        ON CONFLICT ON CONSTRAINT events_pkey DO NOTHING
        RETURNING e.created_at INTO v_created;
        IF v_created IS NOT NULL THEN
            INSERT INTO herald.pending_events (tenant_id, seq, event_id) VALUES (p_tenant, v_seq, v_id);
        END IF;
    ELSE
        -- One statement: the event (if its tenant exists and its id is new) and its place in the
        -- outbox queue, and whether the tenant exists.
        WITH tenant AS (SELECT 1 FROM herald.tenants t WHERE t.tenant_id = p_tenant),
        stored AS (
            INSERT INTO herald.events AS e (tenant_id, event_id, seq, event_type, data, created_at,
                                            callback_url, callback_secret, retry_schedule_ms, traceparent,
                                            tracestate, door, deliver_at, consumer)
            SELECT p_tenant, v_id, v_seq, p_type, p_data, v_at, p_callback_url, v_secret, v_ms, p_traceparent,
                   p_tracestate, p_door, p_deliver_at, p_consumer
              FROM tenant
            ON CONFLICT ON CONSTRAINT events_pkey DO NOTHING
            RETURNING e.created_at),
        queued AS (
            INSERT INTO herald.pending_events (tenant_id, seq, event_id)
            SELECT p_tenant, v_seq, v_id FROM stored)
        SELECT (SELECT s.created_at FROM stored s), EXISTS (SELECT 1 FROM tenant) INTO v_created, v_tenant;

        IF NOT v_tenant THEN
            RAISE EXCEPTION 'herald.publish: unknown tenant %', quote_literal(p_tenant)
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'create it with `herald tenant create NAME`';
        END IF;
    END IF;

    IF v_created IS NOT NULL THEN
        -- A wake-up hint for the outbox-poller, delivered at COMMIT (and dropped on ROLLBACK),
        -- once per transaction however many events it publishes (the setting is local to it).
        -- Sent from this plain function on the session that publishes, never from a trigger.
        -- NOTIFY serialises committing transactions (one queue lock), which costs a publisher
        -- that commits one event at a time from many connections: such a publisher may
        -- `SET herald.notify = off` and be picked up by the poller's poll.
        IF coalesce(current_setting('herald.notify', true), 'on') <> 'off'
           AND current_setting('herald.notified', true) IS DISTINCT FROM p_tenant THEN
            PERFORM pg_notify('herald_outbox', p_tenant), set_config('herald.notified', p_tenant, true);
        END IF;
        event_id := v_id;
        created_at := v_created;
        duplicate := false;
        generated_secret := v_generated;
    ELSE
        SELECT e.event_id, e.created_at INTO event_id, created_at
          FROM herald.events e WHERE e.tenant_id = p_tenant AND e.event_id = v_id;
        duplicate := true;
        generated_secret := NULL;
    END IF;
    RETURN NEXT;
END $$;

CREATE OR REPLACE FUNCTION herald.publish_event_json(
    p_tenant          text,
    p_type            text,
    p_data            json,
    p_id              text,
    p_callback_url    text,
    p_callback_secret text,
    p_retry_schedule  interval[],
    p_traceparent     text,
    p_at              timestamptz,
    p_tracestate      text,
    p_door            text,
    p_deliver_at      timestamptz
) RETURNS TABLE (event_id text, created_at timestamptz, duplicate boolean, generated_secret text)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM herald.publish_event_json(p_tenant, p_type, p_data, p_id, p_callback_url, p_callback_secret,
                                            p_retry_schedule, p_traceparent, p_at, p_tracestate, p_door,
                                            p_deliver_at, NULL)
$$;

-- The SQL door takes it too: made again with it, as V15 did for deliver_at (a second form beside
-- would make calls ambiguous).
DROP FUNCTION herald.publish(text, text, jsonb, text, text, text, interval[], text, timestamptz);
DROP FUNCTION herald.publish_json(text, text, json, text, text, text, interval[], text, timestamptz);

CREATE FUNCTION herald.publish_json(
    tenant          text,
    type            text,
    data            json,
    id              text DEFAULT NULL,
    callback_url    text DEFAULT NULL,
    callback_secret text DEFAULT NULL,
    retry_schedule  interval[] DEFAULT NULL,
    traceparent     text DEFAULT NULL,
    deliver_at      timestamptz DEFAULT NULL,
    consumer        text DEFAULT NULL
) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT p.event_id FROM herald.publish_event_json(tenant, type, data, id, callback_url, callback_secret,
                                                     retry_schedule, traceparent, NULL, NULL, 'sql',
                                                     deliver_at, consumer) p
$$;

-- `herald.publish_json` with the data as jsonb (rewritten by jsonb already: see V4).
CREATE FUNCTION herald.publish(
    tenant          text,
    type            text,
    data            jsonb,
    id              text DEFAULT NULL,
    callback_url    text DEFAULT NULL,
    callback_secret text DEFAULT NULL,
    retry_schedule  interval[] DEFAULT NULL,
    traceparent     text DEFAULT NULL,
    deliver_at      timestamptz DEFAULT NULL,
    consumer        text DEFAULT NULL
) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT herald.publish_json(tenant, type, data::json, id, callback_url, callback_secret, retry_schedule,
                               traceparent, deliver_at, consumer)
$$;
