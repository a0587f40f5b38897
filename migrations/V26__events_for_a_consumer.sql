-- An event for one consumer (docs/api.md, "Consumers"): only that consumer's endpoints, and the
-- tenant's own (of no consumer), get it; an endpoint of a consumer gets that consumer's events
-- only. What lets a tenant hand a customer a portal link to its endpoints without handing it
-- the other customers' events. No CHECK here (every door checks it, and one on this table would
-- read every row of its history); NULL: the tenant's own event.
ALTER TABLE herald.events ADD COLUMN consumer text;

-- The SQL door takes it too: made again with it, as V15 did for deliver_at (a new parameter
-- cannot be added in place, and a second form beside would make calls ambiguous). Set in the
-- publishing transaction, before the outbox-poller can see the event.
DROP FUNCTION herald.publish(text, text, jsonb, text, text, text, interval[], text, timestamptz);
DROP FUNCTION herald.publish_json(text, text, json, text, text, text, interval[], text, timestamptz);

CREATE FUNCTION herald.event_for_consumer(p_tenant text, p_event_id text, p_duplicate boolean, p_consumer text)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_consumer IS NOT NULL AND NOT p_duplicate THEN
        UPDATE herald.events e SET consumer = p_consumer WHERE e.tenant_id = p_tenant AND e.event_id = p_event_id;
    END IF;
    RETURN p_event_id;
END $$;

CREATE FUNCTION herald.check_consumer(p_consumer text) RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_consumer IS NOT NULL AND p_consumer !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
        RAISE EXCEPTION 'herald.publish: invalid consumer %', quote_literal(p_consumer)
            USING ERRCODE = 'check_violation',
                  HINT = 'a consumer is 1 to 100 characters of A-Z a-z 0-9 _ . : -';
    END IF;
END $$;

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
    SELECT herald.check_consumer(consumer);
    SELECT herald.event_for_consumer(tenant, p.event_id, p.duplicate, consumer)
      FROM herald.publish_event_json(tenant, type, data, id, callback_url, callback_secret,
                                     retry_schedule, traceparent, NULL, NULL, 'sql', deliver_at) p
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
