-- The SQLite migration of this version rewrites two `status IN (…)` CHECK constraints as
-- equalities joined by `OR`, because SQLite rebuilt a temporary B-tree per checked row for
-- the `IN` list. PostgreSQL evaluates the `IN` list directly and needs nothing. The version
-- exists on both backends so that `dispatch db check` and `db copy` see the same migrations.
SELECT 1;
