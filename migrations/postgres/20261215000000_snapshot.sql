-- The recipient snapshot (`Store::create_edition`) writes one deliveries row per reader in
-- one INSERT … SELECT. PostgreSQL checks a foreign key with one trigger call per inserted row
-- (a lookup that also locks the referenced row): for 1,000,000 readers those two checks were
-- more than half the snapshot's time, and every index written per row is another share.
--
-- The foreign keys of deliveries go; what they promised stays, set by set:
-- * edition_id: a delivery is only ever written in the transaction that wrote its edition
--   (or copied from an SQLite database that checked it), so it names a real edition; when
--   editions are deleted (a list's deletion cascades to them), one statement-level trigger
--   deletes their deliveries.
-- * subscriber_id: the snapshot reads the subscribers it names in the same statement; an
--   erasure that deletes a subscriber deletes their deliveries in one statement-level
--   trigger. That trigger first takes advisory lock (5, 0) (`Lock::SnapshotAudience`)
--   exclusively, which every snapshot holds shared: a subscriber deleted while a snapshot is
--   being written loses the rows that snapshot wrote once it commits, never leaving a
--   delivery that names nobody.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_edition_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_subscriber_id_fkey;

-- One index instead of two: (subscriber, edition) is unique as (edition, subscriber) was,
-- and serves the lookups by subscriber (erasure, bounces) that deliveries_subscriber did.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_edition_id_subscriber_id_key;
DROP INDEX deliveries_subscriber;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_subscriber_edition UNIQUE (subscriber_id, edition_id);

CREATE FUNCTION deliveries_of_deleted_editions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries d USING gone g WHERE d.edition_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER editions_delete_deliveries AFTER DELETE ON editions
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_of_deleted_editions();

CREATE FUNCTION deliveries_of_deleted_subscribers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Waits for snapshots being written (they hold this lock shared); the DELETE below then
    -- reads a fresh snapshot (read committed, a new statement) that includes their rows.
    PERFORM pg_advisory_xact_lock(5, 0);
    DELETE FROM deliveries d USING gone g WHERE d.subscriber_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER subscribers_delete_deliveries AFTER DELETE ON subscribers
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_of_deleted_subscribers();
