-- Jobs that one node at a time should run (see migrations/20261210000100_leases.sql).
CREATE TABLE leases (
    name    TEXT COLLATE "C" PRIMARY KEY,
    holder  TEXT COLLATE "C" NOT NULL,
    until   TEXT COLLATE "C" NOT NULL
);
