-- Queries now test flags bare (`WHERE breaking`), the one spelling SQLite and PostgreSQL both
-- accept for a boolean. SQLite uses a partial index only when the query names its condition
-- as written, so the breaking-news index is declared the same way (the PostgreSQL set has it
-- so already; no table or column changes).
DROP INDEX articles_breaking;
CREATE INDEX articles_breaking ON articles (id) WHERE breaking;
