-- A CMS's own SQLite database read as a source (issue 12); see
-- migrations/20261211000200_sql_sources.sql for what each column holds.
CREATE TABLE sql_sources (
    path             TEXT COLLATE "C" PRIMARY KEY,
    cursor           TEXT COLLATE "C",
    cursor_kind      TEXT COLLATE "C" CHECK (cursor_kind IN ('integer', 'real', 'text')),
    last_poll_at     TEXT COLLATE "C",
    last_success_at  TEXT COLLATE "C",
    next_poll_at     TEXT COLLATE "C",
    failures         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT COLLATE "C",
    items_stored     BIGINT NOT NULL DEFAULT 0,
    items_updated    BIGINT NOT NULL DEFAULT 0,
    polls_ok         BIGINT NOT NULL DEFAULT 0,
    polls_failed     BIGINT NOT NULL DEFAULT 0
);
