-- The delivery promise under restarts: leases that know their owner, one reader token per
-- subscription, transactional mail through the outbox, and compaction of old editions.

-- Every process that claims work registers here. A claim records its holder, so a sender that
-- finds work leased by a process that died on its own host takes it over at once instead of
-- waiting for the lease to run out; a live holder renews its leases with each heartbeat.
CREATE TABLE senders (
    id            INTEGER PRIMARY KEY,
    host          TEXT NOT NULL,          -- the machine's host name
    pid           INTEGER NOT NULL,
    started       TEXT NOT NULL,          -- what identifies this start of the process (boot id and start ticks on Linux)
    node          TEXT NOT NULL,          -- the name operators see (the host name unless configured)
    created_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);

-- senders.id of the holder of a 'sending' row. No foreign key: a sender's row is deleted when it
-- stops or is taken over, and the column is cleared whenever the row leaves 'sending'.
ALTER TABLE deliveries ADD COLUMN lease_owner INTEGER;
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE status = 'sending';

-- One reader token per subscription, reused by every message: its generation. NULL until the
-- first message needs one; `subscribers rotate-token` moves it on, which invalidates the old.
ALTER TABLE subscriptions ADD COLUMN token_gen INTEGER;

-- Installation-wide values made once (the key reader tokens are derived with).
CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);

-- Transactional mail (double opt-in confirmations, and any future welcome mail): queued rows
-- delivered by the same sender as editions, so they are signed, retried and survive restarts.
CREATE TABLE mail_queue (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('confirm')),
    subscription_id  INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    lease_until      TEXT,
    lease_owner      INTEGER,
    last_reply       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE INDEX mail_queue_pending ON mail_queue (id) WHERE status IN ('queued', 'sending');

-- Finished editions older than [retention] days keep their delivery counts here; their sent
-- and skipped delivery rows are deleted (failures are kept, for the record).
CREATE TABLE edition_counts (
    edition_id  INTEGER NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('sent', 'skipped')),
    count       INTEGER NOT NULL,
    PRIMARY KEY (edition_id, status)
);
ALTER TABLE editions ADD COLUMN compacted_at TEXT;
