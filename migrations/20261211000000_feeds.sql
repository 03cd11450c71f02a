-- Feeds polled by the daemon (issue 12): what each poll found, for `feeds list`, `/metrics`
-- and conditional GET. Keyed by the URL as configured; a feed removed from the config keeps
-- its row (and its history) until it is added again.
CREATE TABLE feeds (
    url                 TEXT PRIMARY KEY,
    etag                TEXT,                -- the last 200's ETag, sent as If-None-Match
    last_modified       TEXT,                -- the last 200's Last-Modified, sent as If-Modified-Since
    last_poll_at        TEXT,
    last_success_at     TEXT,                -- a 200 that parsed, or a 304
    next_poll_at        TEXT,
    failures            INTEGER NOT NULL DEFAULT 0,  -- in a row; drives the backoff
    last_error          TEXT,                -- NULL once a poll succeeds again
    items_stored        INTEGER NOT NULL DEFAULT 0,  -- new articles, over all polls
    polls_ok            INTEGER NOT NULL DEFAULT 0,
    polls_not_modified  INTEGER NOT NULL DEFAULT 0,
    polls_failed        INTEGER NOT NULL DEFAULT 0
);

