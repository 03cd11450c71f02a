-- no-transaction
-- Bulk import at the machine's pace (issue 17): the `status IN (…)` CHECK of `subscribers` and
-- of `subscriptions` cost an imported row ~3,000 instructions. SQLite codes an `IN` over more
-- than two constants as a lookup in a temporary B-tree, and inside a CHECK constraint it
-- rebuilds that B-tree for every row it checks (three inserts, a lookup and a clear, per row
-- and per table, seen in callgrind). The same rule written as equalities joined by `OR` is a
-- few comparisons. Nothing else changes: the same columns in the same order, the same
-- indexes and triggers, the rows copied as they are, ids included.
--
-- SQLite changes a constraint only by rebuilding the table, its documented way
-- (https://sqlite.org/lang_altertable.html §7): foreign keys off, so dropping the old tables
-- does not cascade to the rows that point at them (every reference still holds: the ids are
-- kept). A pragma cannot change inside a transaction, hence `no-transaction` and the explicit
-- BEGIN. Dropping `subscriptions` drops its index and its count triggers: they are created
-- again below as migrations 20261128000000 and 20261216000000 left them.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE subscribers_rebuilt (
    id              INTEGER PRIMARY KEY,
    email           TEXT,                 -- NULL once erased
    email_key       TEXT NOT NULL UNIQUE, -- lower-cased address while present, sha256 of it once erased
    name            TEXT,
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status = 'active' OR status = 'bounced' OR status = 'erased'),
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

CREATE TABLE subscriptions_rebuilt (
    id                 INTEGER PRIMARY KEY,
    subscriber_id      INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    list_id            INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    status             TEXT NOT NULL
                       CHECK (status = 'pending' OR status = 'active' OR status = 'unsubscribed'),
    categories         TEXT,              -- canonical 'A;B', NULL = all the list carries
    created_at         TEXT NOT NULL,
    confirmed_at       TEXT,
    confirm_ip         TEXT,
    unsubscribed_at    TEXT,
    token_gen          INTEGER,
    unsubscribe_reason TEXT,
    UNIQUE (subscriber_id, list_id)
);
INSERT INTO subscriptions_rebuilt (id, subscriber_id, list_id, status, categories, created_at,
                                   confirmed_at, confirm_ip, unsubscribed_at, token_gen,
                                   unsubscribe_reason)
    SELECT id, subscriber_id, list_id, status, categories, created_at,
           confirmed_at, confirm_ip, unsubscribed_at, token_gen, unsubscribe_reason
    FROM subscriptions;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_rebuilt RENAME TO subscriptions;

CREATE INDEX subscriptions_list_status ON subscriptions (list_id, status);

-- Foreign-key cascades (a deleted list or subscriber) fire these too, as if by a DELETE. The
-- insert trigger is 20261216000000's again, without 20261218000000's `WHEN`: an import's
-- batch now goes without the trigger altogether (see `store::subscribers`), so nothing writes
-- `list_counts_paused` any more and the `WHEN` only cost every other insert its look at it.
-- The table stays, empty, as on PostgreSQL. An import drops this trigger and creates it again
-- from the text stored here inside its own transaction: keep it one statement.
CREATE TRIGGER subscriptions_count_insert AFTER INSERT ON subscriptions
BEGIN
    INSERT INTO list_counts (list_id, status, n) VALUES (NEW.list_id, NEW.status, 1)
    ON CONFLICT (list_id, status) DO UPDATE SET n = list_counts.n + 1;
END;

CREATE TRIGGER subscriptions_count_delete AFTER DELETE ON subscriptions
BEGIN
    UPDATE list_counts SET n = n - 1 WHERE list_id = OLD.list_id AND status = OLD.status;
END;

CREATE TRIGGER subscriptions_count_update AFTER UPDATE OF status, list_id ON subscriptions
WHEN OLD.status IS NOT NEW.status OR OLD.list_id IS NOT NEW.list_id
BEGIN
    UPDATE list_counts SET n = n - 1 WHERE list_id = OLD.list_id AND status = OLD.status;
    INSERT INTO list_counts (list_id, status, n) VALUES (NEW.list_id, NEW.status, 1)
    ON CONFLICT (list_id, status) DO UPDATE SET n = list_counts.n + 1;
END;

COMMIT;
PRAGMA foreign_keys = ON;
