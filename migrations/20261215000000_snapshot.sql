-- The recipient snapshot writes one deliveries row per reader; each index is written once per
-- row. deliveries_pending was replaced for claiming by deliveries_claim (see
-- 20261129000000_claim_index.sql) and no query needs it any more: PostgreSQL's schema never
-- had it. SQLite keeps its foreign keys (it checks them with one B-tree probe per row inside
-- the same statement; see the PostgreSQL migration of the same name for why that side differs).
DROP INDEX IF EXISTS deliveries_pending;
