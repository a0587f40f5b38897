-- Claims that write no index entries. A lease is now `lease_until` (with `lease_owner`), set on
-- a row that stays `pending`: the claim changes no indexed column, so PostgreSQL updates the row
-- in place on its page (a HOT update, helped by the table's fillfactor of 70) and writes nothing
-- to any index. Before, a claim moved `state` and `next_attempt_at`, which wrote a new entry in
-- every index and left a dead one behind, for every delivery, twice.
--
-- A delivery is due when it is pending, next_attempt_at has come, and it holds no lease or only
-- an expired one. Leased rows stay in the claim index among the due ones: a claim steps over
-- them (as many as are in flight, never the backlog).
--
-- `delivering` is no longer written: the API shows a pending delivery with a live lease as
-- `delivering`. Stop the workers of earlier versions before migrating (they would write it).
ALTER TABLE herald.deliveries ADD COLUMN lease_until timestamptz;

UPDATE herald.deliveries SET state = 'pending', lease_until = next_attempt_at WHERE state = 'delivering';

-- Nothing writes `delivering` any more; a worker of an earlier version that tried would leave a
-- row that no claim, result or retry of this one takes: refused loudly instead.
ALTER TABLE herald.deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE herald.deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled'));

-- One index answers "does this target (an endpoint id, or 'callback') have due work" and "its
-- oldest due deliveries", for endpoints and callbacks alike (callbacks had no range of their own
-- and were found by scanning every due delivery of the tenant).
DROP INDEX herald.deliveries_due;
DROP INDEX herald.deliveries_due_by_endpoint;
CREATE INDEX deliveries_claim ON herald.deliveries (tenant_id, target, next_attempt_at, delivery_id)
    WHERE state = 'pending';

-- A delivery's event is always there: fan-out writes deliveries only for events it read or
-- inserted in the same transaction, and events are never deleted before their deliveries. The
-- foreign key checked that again for every delivery, and locked (and so rewrote) the event's row
-- to do it: a lookup, a tuple lock and its WAL per delivery, for nothing.
ALTER TABLE herald.deliveries DROP CONSTRAINT deliveries_tenant_id_event_id_fkey;
