-- V7: an operation as JSON from its row given as jsonb (`to_jsonb(o)`), the same answer as
-- herald.operation_json(herald.operations). A statement that reads operations can then run
-- where their rows are: on Citus a router query runs whole on a worker, where a row of a shard
-- is not of type herald.operations and the V3 function does not apply. `herald migrate --citus`
-- makes this function and herald.rfc3339 known to the workers.
CREATE FUNCTION herald.operation_json(o jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'call_id', o->'call_id',
        'run_id', o->'run_id',
        'kind', o->'kind',
        'spec', o->'spec',
        'state', o->'state',
        'requested_at', herald.rfc3339((o->>'requested_at')::timestamptz),
        'expires_at', herald.rfc3339((o->>'expires_at')::timestamptz),
        'status', jsonb_strip_nulls(jsonb_build_object(
            'state', o->'status',
            'approved', o->'approved',
            'comment', o->'comment',
            'response', o->'response',
            'responder', o->'responder',
            'responded_at', herald.rfc3339((o->>'responded_at')::timestamptz))))
$$;
