-- The monthly attempt partitions, made by Citus's own time-partition management once Herald is
-- distributed on Citus (`herald migrate --citus`), as before otherwise.
--
-- On Citus, `create_time_partitions` makes each missing month (named its way, attempts_pYYYY_MM)
-- on every shard; it takes the existing months as its pivot. Times are UTC whatever the
-- session's time zone: a month added to a local midnight across a daylight-saving change is
-- not a month of UTC, and would overlap the next partition.
--
-- Without Citus, a month that another partition covers already (one Citus made, after a move
-- back to a single PostgreSQL) is left as it is.
CREATE OR REPLACE FUNCTION herald.ensure_partitions(at timestamptz, months_ahead integer DEFAULT 2)
RETURNS void LANGUAGE plpgsql SET timezone = 'UTC' AS $$
DECLARE
    m date := date_trunc('month', at)::date;
    name text;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid = 'herald.attempts'::regclass) THEN
            -- Only when a month is missing: create_time_partitions locks the table on every
            -- node, and every poller asks each hour.
            IF EXISTS (SELECT 1 FROM generate_series(0, months_ahead) i
                        WHERE NOT EXISTS (
                              SELECT 1 FROM pg_catalog.time_partitions tp
                               WHERE tp.parent_table = 'herald.attempts'::regclass AND tp.from_value <> ''
                                 AND tp.from_value::timestamptz <= m + i * interval '1 month'
                                 AND tp.to_value::timestamptz > m + i * interval '1 month')) THEN
                PERFORM create_time_partitions('herald.attempts', interval '1 month',
                                               (m + (months_ahead + 1) * interval '1 month')::timestamptz,
                                               m::timestamptz);
            END IF;
            RETURN;
        END IF;
    END IF;
    FOR i IN 0..months_ahead LOOP
        name := 'attempts_' || to_char(m, 'YYYY_MM');
        IF to_regclass('herald.' || name) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE herald.%I PARTITION OF herald.attempts FOR VALUES FROM (%L) TO (%L)',
                    name, m::timestamptz, (m + interval '1 month')::timestamptz);
            EXCEPTION WHEN invalid_object_definition THEN
                NULL; -- "would overlap partition ...": the month has one already
            END;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
END $$;
