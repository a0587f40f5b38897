-- The body a callback gets (docs/api.md): NULL or `envelope`, or `humanlayer` for an agent
-- server in that style, per event and per operation.
ALTER TABLE herald.events ADD COLUMN callback_payload_format text
    CHECK (callback_payload_format IN ('envelope', 'humanlayer'));
ALTER TABLE herald.operations ADD COLUMN callback_payload_format text
    CHECK (callback_payload_format IN ('envelope', 'humanlayer'));

-- As V3's, and an operation's answer or expiry goes to its callback in the operation's format.
CREATE OR REPLACE FUNCTION herald.publish_operation(o herald.operations, what text, at timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    to_callback boolean := what <> 'requested' AND o.callback_url IS NOT NULL;
    v_id text;
BEGIN
    v_id := (SELECT p.event_id FROM herald.publish_event(
        o.tenant_id, o.kind || '_' || what, herald.operation_json(o), NULL,
        CASE WHEN to_callback THEN o.callback_url END,
        CASE WHEN to_callback THEN o.callback_secret END,
        CASE WHEN to_callback THEN (SELECT array_agg(make_interval(secs => x / 1000.0) ORDER BY n)
                                      FROM unnest(o.retry_schedule_ms) WITH ORDINALITY AS s(x, n)) END,
        NULL, at) p);
    IF to_callback AND o.callback_payload_format IS NOT NULL THEN
        UPDATE herald.events SET callback_payload_format = o.callback_payload_format
         WHERE tenant_id = o.tenant_id AND event_id = v_id;
    END IF;
    RETURN v_id;
END $$;
