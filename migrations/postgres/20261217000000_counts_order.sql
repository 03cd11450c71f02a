-- Mends two faults of 20261216000000_console_admin.sql on PostgreSQL (a migration a database
-- has applied cannot change: sqlx refuses a changed checksum).

-- 1. The update trigger decremented with one statement and incremented with another, so a
-- transaction moving readers out of a status locked (list, old status) and then (list, new
-- status), and one moving readers back locked them the other way round: an unsubscribe and a
-- re-subscribe on the same list could deadlock. One statement in key order now does both; a
-- decremented row always exists (the subscription was counted in it), so its upsert is an
-- update.
CREATE OR REPLACE FUNCTION list_counts_of_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO list_counts (list_id, status, n)
    SELECT list_id, status, CAST(SUM(k) AS BIGINT)
    FROM (SELECT list_id, status, -1 AS k FROM old_rows
          UNION ALL SELECT list_id, status, 1 FROM new_rows) x
    GROUP BY list_id, status HAVING SUM(k) <> 0 ORDER BY list_id, status
    ON CONFLICT (list_id, status) DO UPDATE SET n = list_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

-- 2. The counts were taken before the triggers existed and without a lock: a node still on
-- the previous binary that changed a subscription in between was never counted. Count again,
-- with subscriptions held still until this migration commits (SHARE lets readers on).
LOCK TABLE subscriptions IN SHARE MODE;
DELETE FROM list_counts;
INSERT INTO list_counts (list_id, status, n)
SELECT list_id, status, COUNT(*) FROM subscriptions GROUP BY list_id, status;
