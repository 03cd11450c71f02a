-- An edition's audience not yet written as deliveries rows (issue 16): see the SQLite
-- migration of the same name and `store::audience`. Written by one statement per edition and
-- read one row per claim batch, so its foreign key costs nothing that matters; deleting an
-- edition (a list's deletion) takes its unwritten audience with it.
CREATE TABLE edition_audience (
    edition_id      BIGINT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    categories      TEXT COLLATE "C",
    readers         BIGINT NOT NULL,
    subscriber_ids  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (edition_id, seq)
);
