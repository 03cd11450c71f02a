-- The newsroom console (issue 13): its users, their sessions, and the audit log of every
-- action that sends, stops or changes something. Roles are the API keys' roles.
-- A user's password is an Argon2id PHC string; until one is set, `setup_hash` holds the
-- SHA-256 of the one-time set-password link's token, valid until `setup_expires_at`.
CREATE TABLE console_users (
    id                INTEGER PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    role              TEXT NOT NULL CHECK (role IN ('editor', 'admin')),
    password_hash     TEXT,
    setup_hash        BLOB UNIQUE,
    setup_expires_at  TEXT,
    created_at        TEXT NOT NULL,
    disabled_at       TEXT
);
-- Sessions are found by the SHA-256 of the cookie's random id; the CSRF token is per session.
CREATE TABLE console_sessions (
    id_hash       BLOB PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
-- Who (a console user's address, an API key's name, or "cli"), what, when, from which IP.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL,
    ip       TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject ON audit_log (subject);
