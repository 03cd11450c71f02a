-- An edition's audience not yet written as deliveries rows (issue 16): a large edition
-- records its queued readers here, a thousand subscriber ids to a row, and a claim turns one
-- row into deliveries when the sender gets to it (`store::audience`). Writing 1,000,000
-- deliveries with their indexes in the edition's transaction took 8 s here and 10.8 s on
-- PostgreSQL; recording them here takes a fraction of that, and the rest is paid while
-- sending, a thousandth at a time.
CREATE TABLE edition_audience (
    edition_id      INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    -- Claims take the rows in this order: readers by id, as the snapshot reads them.
    seq             INTEGER NOT NULL,
    -- The readers' stored category choice (NULL = all), the same for every reader of a row.
    categories      TEXT,
    -- How many readers `subscriber_ids` names.
    readers         INTEGER NOT NULL,
    -- Their subscriber ids, comma-separated ("1,2,3").
    subscriber_ids  TEXT NOT NULL,
    PRIMARY KEY (edition_id, seq)
);
