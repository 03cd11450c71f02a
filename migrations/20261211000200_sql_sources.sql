-- A CMS's own SQLite database read as a source (issue 12): where each [[sql_sources]] got to.
-- `cursor` is the greatest cursor value seen, as the CMS returned it, with its SQLite type so
-- that `:since` is bound as the same type (SQLite orders every number before every text).
CREATE TABLE sql_sources (
    path             TEXT PRIMARY KEY,
    cursor           TEXT,
    cursor_kind      TEXT CHECK (cursor_kind IN ('integer', 'real', 'text')),
    last_poll_at     TEXT,
    last_success_at  TEXT,
    next_poll_at     TEXT,
    failures         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    items_stored     INTEGER NOT NULL DEFAULT 0,  -- new articles, over all polls
    items_updated    INTEGER NOT NULL DEFAULT 0,
    polls_ok         INTEGER NOT NULL DEFAULT 0,
    polls_failed     INTEGER NOT NULL DEFAULT 0
);
