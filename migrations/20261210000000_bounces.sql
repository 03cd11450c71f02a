-- Bounces, complaints and mailto: unsubscribes that come back (issue 14).

-- Every message that came back, one row per reader it names (a DSN may name several), and
-- every hard bounce refused during our own SMTP conversation. Of strangers' messages only
-- what a person needs to look at them is kept: From, Subject and a short diagnostic.
CREATE TABLE bounce_events (
    id             INTEGER PRIMARY KEY,
    received_at    TEXT NOT NULL,
    type           TEXT NOT NULL CHECK (type IN ('hard', 'soft', 'rejected', 'complaint', 'auto-reply', 'unsubscribe', 'other', 'unidentified')),
    source         TEXT NOT NULL CHECK (source IN ('smtp', 'pipe', 'imap')),
    subscriber_id  INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
    edition_id     INTEGER REFERENCES editions (id) ON DELETE SET NULL,
    list_id        INTEGER REFERENCES lists (id) ON DELETE SET NULL,
    matched_by     TEXT,                 -- verp, message-id, token, recipient+list-id; NULL: not matched
    status         TEXT,                 -- RFC 3463 code, e.g. 5.1.1
    diagnostic     TEXT,                 -- truncated; NULL once the reader is erased
    from_addr      TEXT,                 -- unidentified messages only
    subject        TEXT,                 -- unidentified messages only
    note           TEXT,                 -- why it was not matched (forged VERP MAC, reader erased)
    message_hash   BLOB,                 -- SHA-256 of the message as received; NULL at SMTP time
    part           INTEGER NOT NULL DEFAULT 0,  -- which reader of that message
    -- Ingesting the same message twice changes nothing.
    UNIQUE (message_hash, part)
);
CREATE INDEX bounce_events_subscriber ON bounce_events (subscriber_id, type);
CREATE INDEX bounce_events_edition ON bounce_events (edition_id, type);
CREATE INDEX bounce_events_type ON bounce_events (type, id);

-- Why a subscription ended when it was not the reader's own click: a spam complaint, a
-- mailto: unsubscribe. Part of the consent record.
ALTER TABLE subscriptions ADD COLUMN unsubscribe_reason TEXT;
-- Bounces before this time no longer count (`dispatch bounces reactivate`, a confirmation).
ALTER TABLE subscribers ADD COLUMN bounce_reset_at TEXT;
