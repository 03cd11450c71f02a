-- `subscribers.email` loses its UNIQUE: `email_key` (the lower-cased address, UNIQUE) already
-- makes every live address unique, so the second index only doubled the index work of each
-- imported row (no query looks a subscriber up by `email`). The constraint has PostgreSQL's
-- default name for a column's UNIQUE (table_column_key).
ALTER TABLE subscribers DROP CONSTRAINT subscribers_email_key;
