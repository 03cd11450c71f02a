-- Feeds polled by the daemon (issue 12); see migrations/20261211000000_feeds.sql for what
-- each column holds.
CREATE TABLE feeds (
    url                 TEXT COLLATE "C" PRIMARY KEY,
    etag                TEXT COLLATE "C",
    last_modified       TEXT COLLATE "C",
    last_poll_at        TEXT COLLATE "C",
    last_success_at     TEXT COLLATE "C",
    next_poll_at        TEXT COLLATE "C",
    failures            BIGINT NOT NULL DEFAULT 0,
    last_error          TEXT COLLATE "C",
    items_stored        BIGINT NOT NULL DEFAULT 0,
    polls_ok            BIGINT NOT NULL DEFAULT 0,
    polls_not_modified  BIGINT NOT NULL DEFAULT 0,
    polls_failed        BIGINT NOT NULL DEFAULT 0
);
