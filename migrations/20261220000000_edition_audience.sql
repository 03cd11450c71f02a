-- An edition's audience not yet written as deliveries rows (issue 16). On PostgreSQL a large
-- edition records its queued readers here, a thousand to a row, and a claim turns one row
-- into deliveries when the sender gets to it (`Store::claim_deliveries`): writing 1,000,000
-- rows with their four indexes in the edition's transaction took 10.8 s, recording them here
-- takes about two. SQLite writes every delivery at once (its snapshot of 1,000,000 readers
-- takes about a second), so this table stays empty there; it exists so that both schemas,
-- and every count that adds it, are the same.
CREATE TABLE edition_audience (
    edition_id      INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    -- Claims take the rows in this order: readers by id, as the eager snapshot's rows were.
    seq             INTEGER NOT NULL,
    -- The readers' stored category choice (NULL = all), the same for every reader of a row.
    categories      TEXT,
    -- How many readers `subscriber_ids` names.
    readers         INTEGER NOT NULL,
    -- Their subscriber ids, comma-separated.
    subscriber_ids  TEXT NOT NULL,
    PRIMARY KEY (edition_id, seq)
);
