-- A list's language ("en", "ur"): every fixed word of its emails and reader pages. NULL means
-- the configured [publication] language, so changing that setting moves the lists that never
-- chose one.
ALTER TABLE lists ADD COLUMN language TEXT;
