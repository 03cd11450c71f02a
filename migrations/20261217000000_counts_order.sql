-- The PostgreSQL migration of this version mends its list count triggers (lock order) and
-- recounts. SQLite needs neither: its triggers run under the one writer, which
-- 20261216000000_console_admin.sql held from its first statement to its commit, so nothing
-- could change subscriptions between its count and its triggers. The version exists on both
-- backends so that `dispatch db check` and `db copy` see the same migrations.
SELECT 1;
