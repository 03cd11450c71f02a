-- API keys for the CMS HTTP API (issue 12); the console's users (issue 13) share the roles.
-- Only the SHA-256 of a key is stored. A revoked key keeps its row (who had access, until
-- when); a name is unique among the keys not revoked, so it can be reused after a revoke.
CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('editor', 'admin')),
    key_hash    BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
