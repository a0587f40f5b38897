-- Retention of the attempt log: whole monthly partitions dropped once their last day is older
-- than `older_than` (herald-outbox-poller's retention calls it; events and deliveries are
-- deleted in small batches there). On Citus, by Citus's own drop_old_time_partitions. Rows in
-- the default partition (a month that had no partition of its own) are deleted by time.
--
-- Dropping a partition locks the attempt table for a moment: never waited for longer than a
-- second (a long transaction on the table would otherwise queue every attempt's insert behind
-- the DROP); a partition not dropped now is dropped at the next run. Returns the partitions
-- dropped.
CREATE FUNCTION herald.drop_old_attempts(older_than timestamptz) RETURNS integer
LANGUAGE plpgsql SET timezone = 'UTC' AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid = 'herald.attempts'::regclass) THEN
            SELECT count(*) INTO n FROM pg_catalog.time_partitions tp
             WHERE tp.parent_table = 'herald.attempts'::regclass AND tp.to_value <> ''
               AND tp.to_value::timestamptz <= older_than;
            PERFORM set_config('lock_timeout', '1s', true);
            CALL drop_old_time_partitions('herald.attempts', older_than);
            DELETE FROM herald.attempts_default WHERE started_at < older_than;
            RETURN n;
        END IF;
    END IF;
    FOR r IN
        SELECT c.oid::regclass AS part,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'herald.attempts'::regclass
    LOOP
        IF r.upper IS NOT NULL AND r.upper <= older_than THEN
            BEGIN
                PERFORM set_config('lock_timeout', '1s', true);
                EXECUTE format('DROP TABLE %s', r.part);
                n := n + 1;
            EXCEPTION WHEN lock_not_available THEN
                RAISE NOTICE 'herald.drop_old_attempts: % is in use; dropped at the next run', r.part;
            END;
        END IF;
    END LOOP;
    DELETE FROM herald.attempts_default WHERE started_at < older_than;
    RETURN n;
END $$;
