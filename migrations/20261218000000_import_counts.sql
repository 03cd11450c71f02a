-- Bulk import at the machine's pace (issue 17): the row trigger that counts each new
-- subscription in `list_counts` cost ~6,500 instructions per row, a tenth of an import.
-- While `list_counts_paused` holds a row the insert trigger stands aside: the import writes
-- that row, inserts its batch's subscriptions, deletes the row and adds the batch's count
-- with one upsert, all in its one write transaction. No other transaction ever sees the row
-- (it is gone before the import commits, and a failed batch rolls it back with the rest),
-- so every other path and every reader keeps the counts exact.
--
-- The trigger's `WHEN` is still evaluated per row (about half the trigger's cost): SQLite
-- has no statement triggers, and a per-connection switch would need its C API.
CREATE TABLE list_counts_paused (
    paused INTEGER NOT NULL
);

DROP TRIGGER subscriptions_count_insert;

CREATE TRIGGER subscriptions_count_insert AFTER INSERT ON subscriptions
WHEN NOT EXISTS (SELECT 1 FROM list_counts_paused)
BEGIN
    INSERT INTO list_counts (list_id, status, n) VALUES (NEW.list_id, NEW.status, 1)
    ON CONFLICT (list_id, status) DO UPDATE SET n = list_counts.n + 1;
END;
