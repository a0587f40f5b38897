-- Herald's first schema. Every rule of shared/scale-out.md holds here: tenant_id leads every key,
-- order comes from Herald's own time-ordered key (`seq`, ids), never from a database sequence,
-- and nothing in this file sends NOTIFY from a trigger.

CREATE SCHEMA IF NOT EXISTS herald;

-- Tenants and their API tokens. Small, read on every request: reference tables under Citus.
CREATE TABLE herald.tenants (
    tenant_id   text        NOT NULL PRIMARY KEY
                CHECK (tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at  timestamptz NOT NULL
);

-- Only the SHA-256 of a token is stored; the token itself is printed once and never again.
CREATE TABLE herald.api_tokens (
    tenant_id   text        NOT NULL REFERENCES herald.tenants (tenant_id),
    token_hash  bytea       NOT NULL CHECK (length(token_hash) = 32),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, token_hash)
);

CREATE TABLE herald.endpoints (
    tenant_id              text        NOT NULL REFERENCES herald.tenants (tenant_id),
    endpoint_id            text        NOT NULL,
    url                    text        NOT NULL CHECK (length(url) <= 2048),
    description            text        NOT NULL DEFAULT '',
    -- Exact types or `prefix.*` patterns; empty means every type.
    event_types            text[]      NOT NULL DEFAULT '{}',
    status                 text        NOT NULL DEFAULT 'healthy'
                           CHECK (status IN ('healthy', 'failing', 'disabled')),
    disabled_reason        text,
    signature_scheme       text        NOT NULL DEFAULT 'standard-webhooks'
                           CHECK (signature_scheme IN ('standard-webhooks', 'hmac-sha256-hex')),
    secret                 text        NOT NULL,
    -- After rotate-secret the old secret keeps signing until previous_secret_until.
    previous_secret        text,
    previous_secret_until  timestamptz,
    -- Delays between attempts in milliseconds; NULL means the global HERALD_RETRY_SCHEDULE.
    retry_schedule_ms      bigint[],
    max_in_flight          integer     CHECK (max_in_flight > 0),
    rate_limit_per_s       integer     CHECK (rate_limit_per_s > 0),
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, endpoint_id)
);

-- The outbox: append-only. A row is never updated or deleted by Herald's code paths (retention
-- aside); its id is unique per tenant, which is what makes publishing idempotent.
CREATE TABLE herald.events (
    tenant_id          text        NOT NULL REFERENCES herald.tenants (tenant_id),
    event_id           text        NOT NULL CHECK (event_id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    -- Herald's time-ordered key: microseconds since the epoch * 1024 + 10 random bits.
    seq                bigint      NOT NULL,
    event_type         text        NOT NULL CHECK (event_type ~ '^[A-Za-z0-9_.-]{1,128}$'),
    data               jsonb       NOT NULL,
    created_at         timestamptz NOT NULL,
    callback_url       text        CHECK (length(callback_url) <= 2048),
    callback_secret    text,
    retry_schedule_ms  bigint[],
    traceparent        text,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX events_by_seq ON herald.events (tenant_id, seq);

-- Events not yet fanned out. publish inserts, the outbox-poller deletes in the same transaction
-- that creates the deliveries. Kept apart from herald.events so that the outbox itself stays
-- append-only and this queue stays small.
CREATE TABLE herald.pending_events (
    tenant_id  text   NOT NULL,
    seq        bigint NOT NULL,
    event_id   text   NOT NULL,
    PRIMARY KEY (tenant_id, seq, event_id)
);

-- One delivery per event and target (an endpoint id, or 'callback' for the event's own URL).
-- While a worker holds a lease, state is 'delivering' and next_attempt_at is the lease deadline:
-- one index then answers "due, or leased and the lease has expired".
CREATE TABLE herald.deliveries (
    tenant_id          text        NOT NULL,
    delivery_id        text        NOT NULL,
    event_id           text        NOT NULL,
    target             text        NOT NULL,
    endpoint_id        text,
    url                text        NOT NULL,
    state              text        NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'delivering', 'delivered', 'failed', 'cancelled')),
    attempt_count      integer     NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL,
    lease_owner        text,
    last_status_code   integer,
    last_error         text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id),
    UNIQUE (tenant_id, event_id, target),
    FOREIGN KEY (tenant_id, event_id) REFERENCES herald.events (tenant_id, event_id)
) WITH (fillfactor = 70);
CREATE INDEX deliveries_due ON herald.deliveries (tenant_id, next_attempt_at)
    WHERE state IN ('pending', 'delivering');
CREATE INDEX deliveries_open_by_endpoint ON herald.deliveries (tenant_id, endpoint_id)
    WHERE state IN ('pending', 'delivering');

-- Every attempt, append-only, partitioned by month so that retention drops whole partitions.
CREATE TABLE herald.attempts (
    tenant_id         text        NOT NULL,
    attempt_id        text        NOT NULL,
    delivery_id       text        NOT NULL,
    event_id          text        NOT NULL,
    attempt           integer     NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       integer     NOT NULL,
    status_code       integer,
    error             text,
    response_excerpt  text,
    PRIMARY KEY (tenant_id, attempt_id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX attempts_by_event ON herald.attempts (tenant_id, event_id, attempt_id);
-- Catches any row whose month has no partition yet; herald.ensure_partitions makes the months.
CREATE TABLE herald.attempts_default PARTITION OF herald.attempts DEFAULT;

-- Creates the monthly attempt partitions from the month of `at` to `months_ahead` months later.
CREATE FUNCTION herald.ensure_partitions(at timestamptz, months_ahead integer DEFAULT 2)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', at AT TIME ZONE 'UTC')::date;
    name text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        name := 'attempts_' || to_char(m, 'YYYY_MM');
        IF to_regclass('herald.' || name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE herald.%I PARTITION OF herald.attempts FOR VALUES FROM (%L) TO (%L)',
                name, (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
END $$;

-- A time-ordered id, `prefix` + ULID (Crockford base32): sorts as text in creation order.
-- The Rust side makes the same shape (herald_core::id).
CREATE FUNCTION herald.new_id(prefix text, at timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    ms bigint := floor(extract(epoch FROM at) * 1000);
    stamp text := '';
    tail text := '';
BEGIN
    FOR i IN 1..10 LOOP
        stamp := substr(alphabet, (ms % 32)::int + 1, 1) || stamp;
        ms := ms / 32;
    END LOOP;
    FOR i IN 1..16 LOOP
        tail := tail || substr(alphabet, floor(random() * 32)::int + 1, 1);
    END LOOP;
    RETURN prefix || stamp || tail;
END $$;

-- The one place where an event enters the outbox. Both herald.publish (SQL callers) and the
-- Rust crate herald-producer call it, so the rules below hold for every way in.
-- It runs in the caller's transaction: nothing is visible, and no NOTIFY is sent, until COMMIT.
CREATE FUNCTION herald.publish_event(
    p_tenant          text,
    p_type            text,
    p_data            jsonb,
    p_id              text,
    p_callback_url    text,
    p_callback_secret text,
    p_retry_schedule  interval[],
    p_traceparent     text,
    p_at              timestamptz
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
BEGIN
    IF p_tenant IS NULL OR NOT EXISTS (SELECT 1 FROM herald.tenants t WHERE t.tenant_id = p_tenant) THEN
        RAISE EXCEPTION 'herald.publish: unknown tenant %', coalesce(quote_literal(p_tenant), 'NULL')
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'create it with `herald tenant create NAME`';
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
            USING ERRCODE = 'not_null_violation', HINT = 'pass ''null''::jsonb for a JSON null';
    END IF;
    IF p_callback_url IS NOT NULL AND (p_callback_url !~* '^https?://[^/@?#[:space:]]+([/?#][^[:space:]]*)?$' OR length(p_callback_url) > 2048) THEN
        RAISE EXCEPTION 'herald.publish: invalid callback_url %', quote_literal(p_callback_url)
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
    IF p_callback_url IS NOT NULL AND p_callback_secret IS NULL THEN
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

    INSERT INTO herald.events AS e (tenant_id, event_id, seq, event_type, data, created_at,
                                    callback_url, callback_secret, retry_schedule_ms, traceparent)
    VALUES (p_tenant, v_id, v_seq, p_type, p_data, v_at,
            p_callback_url, v_secret, v_ms, p_traceparent)
    ON CONFLICT ON CONSTRAINT events_pkey DO NOTHING
    RETURNING e.created_at INTO v_created;

    IF FOUND THEN
        INSERT INTO herald.pending_events (tenant_id, seq, event_id) VALUES (p_tenant, v_seq, v_id);
        -- A wake-up hint for the outbox-poller, delivered at COMMIT (and dropped on ROLLBACK).
        -- Sent from this plain function on the session that publishes, never from a trigger.
        -- NOTIFY serialises committing transactions (one queue lock), which costs a publisher
        -- that commits one event at a time from many connections (make bench measures it): such
        -- a publisher may `SET herald.notify = off` and be picked up by the poller's poll.
        IF coalesce(current_setting('herald.notify', true), 'on') <> 'off' THEN
            PERFORM pg_notify('herald_outbox', p_tenant);
        END IF;
        RETURN QUERY SELECT v_id, v_created, false, v_generated;
    ELSE
        RETURN QUERY SELECT e.event_id, e.created_at, true, NULL::text FROM herald.events e
                      WHERE e.tenant_id = p_tenant AND e.event_id = v_id;
    END IF;
END $$;

-- The contract's SQL entry point (contract section 5). Returns the event id.
CREATE FUNCTION herald.publish(
    tenant          text,
    type            text,
    data            jsonb,
    id              text DEFAULT NULL,
    callback_url    text DEFAULT NULL,
    callback_secret text DEFAULT NULL,
    retry_schedule  interval[] DEFAULT NULL,
    traceparent     text DEFAULT NULL
) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT p.event_id FROM herald.publish_event(tenant, type, data, id, callback_url,
                                                callback_secret, retry_schedule, traceparent, NULL) p
$$;
