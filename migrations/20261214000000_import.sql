-- no-transaction
-- `subscribers.email` loses its UNIQUE: `email_key` (the lower-cased address, UNIQUE) already
-- makes every live address unique, so the second index only doubled the B-tree work of each
-- imported row (no query looks a subscriber up by `email`). SQLite drops a column constraint
-- only by rebuilding the table, its documented way (https://sqlite.org/lang_altertable.html
-- §7): foreign keys off, so dropping the old table does not cascade to the subscriptions,
-- deliveries and bounce events that point at it (the rows are copied as they are, ids
-- included, so every reference still holds). A pragma
-- cannot change inside a transaction, hence `no-transaction` and the explicit BEGIN.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE subscribers_rebuilt (
    id              INTEGER PRIMARY KEY,
    email           TEXT,                 -- NULL once erased
    email_key       TEXT NOT NULL UNIQUE, -- lower-cased address while present, sha256 of it once erased
    name            TEXT,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'bounced', 'erased')),
    hard_bounces    INTEGER NOT NULL DEFAULT 0,
    consent_source  TEXT,                 -- 'cli', 'import:FILE', 'web'
    consent_at      TEXT,
    consent_ip      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    bounce_reset_at TEXT
);
INSERT INTO subscribers_rebuilt (id, email, email_key, name, status, hard_bounces, consent_source,
                                 consent_at, consent_ip, created_at, updated_at, bounce_reset_at)
    SELECT id, email, email_key, name, status, hard_bounces, consent_source,
           consent_at, consent_ip, created_at, updated_at, bounce_reset_at
    FROM subscribers;
DROP TABLE subscribers;
ALTER TABLE subscribers_rebuilt RENAME TO subscribers;
COMMIT;
PRAGMA foreign_keys = ON;
