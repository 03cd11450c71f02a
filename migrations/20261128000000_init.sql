-- dispatch schema. Timestamps are TEXT in one fixed form, 'YYYY-MM-DDTHH:MM:SSZ' (UTC), so that
-- string comparison orders them and a CMS writing articles directly has one format to follow.
-- SQL stays portable to PostgreSQL: no INSERT OR IGNORE, $1 placeholders in queries.

CREATE TABLE lists (
    id              INTEGER PRIMARY KEY,
    slug            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    schedule        TEXT,                 -- 5-field crontab line, NULL = no schedule
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    categories      TEXT,                 -- canonical 'A;B;C', NULL = every category
    sends_breaking  INTEGER NOT NULL DEFAULT 0,
    send_empty      INTEGER NOT NULL DEFAULT 0,
    double_opt_in   INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE articles (
    id            INTEGER PRIMARY KEY,
    external_id   TEXT NOT NULL UNIQUE,   -- CMS id, feed GUID or URL
    url           TEXT NOT NULL,
    title         TEXT NOT NULL,
    summary       TEXT NOT NULL DEFAULT '',
    author        TEXT,
    category      TEXT NOT NULL,
    language      TEXT,
    image_url     TEXT,
    published_at  TEXT NOT NULL CHECK (published_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z'),
    breaking      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
CREATE INDEX articles_published ON articles (published_at);
CREATE INDEX articles_breaking ON articles (id) WHERE breaking = 1;

CREATE TABLE subscribers (
    id              INTEGER PRIMARY KEY,
    email           TEXT UNIQUE,          -- NULL once erased
    email_key       TEXT NOT NULL UNIQUE, -- lower-cased address while present, sha256 of it once erased
    name            TEXT,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'bounced', 'erased')),
    hard_bounces    INTEGER NOT NULL DEFAULT 0,
    consent_source  TEXT,                 -- 'cli', 'import:FILE', 'web'
    consent_at      TEXT,
    consent_ip      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE subscriptions (
    id               INTEGER PRIMARY KEY,
    subscriber_id    INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    list_id          INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'active', 'unsubscribed')),
    categories       TEXT,                -- canonical 'A;B', NULL = all the list carries
    created_at       TEXT NOT NULL,
    confirmed_at     TEXT,
    confirm_ip       TEXT,
    unsubscribed_at  TEXT,
    UNIQUE (subscriber_id, list_id)
);
CREATE INDEX subscriptions_list_status ON subscriptions (list_id, status);

-- Secrets handed to readers (unsubscribe, confirm, preferences). Only a SHA-256 of the token is
-- stored; lookups are by that hash.
CREATE TABLE tokens (
    hash             BLOB PRIMARY KEY,
    purpose          TEXT NOT NULL CHECK (purpose IN ('unsubscribe', 'confirm', 'preferences')),
    subscription_id  INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    created_at       TEXT NOT NULL,
    expires_at       TEXT
);
CREATE INDEX tokens_subscription ON tokens (subscription_id);

CREATE TABLE editions (
    id                   INTEGER PRIMARY KEY,
    list_id              INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    kind                 TEXT NOT NULL CHECK (kind IN ('digest', 'breaking')),
    slot                 TEXT,            -- the scheduled slot (UTC) this digest was for
    breaking_article_id  INTEGER REFERENCES articles (id),
    window_start         TEXT NOT NULL,
    window_end           TEXT NOT NULL,
    subject              TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('sending', 'paused', 'sent', 'skipped', 'cancelled')),
    status_reason        TEXT,
    article_count        INTEGER NOT NULL DEFAULT 0,
    recipient_count      INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    finished_at          TEXT,
    UNIQUE (list_id, slot),
    UNIQUE (list_id, breaking_article_id)
);
CREATE INDEX editions_list_kind ON editions (list_id, kind, window_end);

CREATE TABLE edition_articles (
    edition_id   INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    article_id   INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    was_breaking INTEGER NOT NULL DEFAULT 0,  -- already sent to this list as breaking news
    PRIMARY KEY (edition_id, article_id)
);

-- The outbox: one row per recipient, written with the edition in one transaction.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    edition_id       INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    subscriber_id    INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    categories       TEXT,                -- the subscriber's choice when the edition was made
    status           TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,                -- NULL = now
    lease_until      TEXT,
    last_reply       TEXT,
    message_id       TEXT,
    sent_at          TEXT,
    UNIQUE (edition_id, subscriber_id)
);
-- Only unfinished rows are indexed for claiming, so the index shrinks as an edition is sent.
CREATE INDEX deliveries_pending ON deliveries (edition_id, status, next_attempt_at)
    WHERE status IN ('queued', 'sending');
CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id);
