-- V6: fewer index entries and WAL records per delivery (issue 8; `BENCH_WAL_STATS=1 make bench`
-- shows what the WAL of a phase is made of).
--
-- Deliveries keep more room on their pages: a claim (lease_until, lease_owner, attempt_count)
-- is a HOT update only if the new row version fits on the page, and a delivery makes two new
-- versions (the claim, then the result) within moments of its insert, before VACUUM or pruning
-- can free the old ones. At fillfactor 70 a page kept room for the claims of about a third of
-- its rows: the other claims were not HOT, and each wrote a new entry in all three indexes.
ALTER TABLE herald.deliveries SET (fillfactor = 40);

-- The attempt log had two indexes: the primary key, which nothing looks up, and the one the API
-- lists an event's attempts by. One unique index now does both: it lists by (event, attempt id)
-- and is the arbiter of the recorder's ON CONFLICT DO NOTHING, which keeps a result written
-- again after a lost COMMIT answer from logging its attempt twice. (A unique index on a
-- partitioned table must hold the partition key, started_at.)
ALTER TABLE herald.attempts DROP CONSTRAINT attempts_pkey;
DROP INDEX herald.attempts_by_event;
CREATE UNIQUE INDEX attempts_by_event ON herald.attempts (tenant_id, event_id, attempt_id, started_at);
