-- Jobs that one node at a time should run, whatever the number of nodes sharing the database
-- (retention compaction; feed and SQL-source polling): a named lease with its holder and
-- expiry. The holder renews it while it works; another node takes it once it has run out.
CREATE TABLE leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   TEXT NOT NULL
);
