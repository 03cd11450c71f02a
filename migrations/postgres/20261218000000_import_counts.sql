-- The SQLite migration of this version lets a bulk import count its batch once instead of
-- once per row. PostgreSQL's count triggers already run once per statement, from their
-- transition tables, and never look at `list_counts_paused`: the table exists so that both
-- backends have the same tables (tests/schema_parity.rs, `dispatch db copy`).
CREATE TABLE list_counts_paused (
    paused BIGINT NOT NULL
);
