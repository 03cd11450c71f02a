-- Web endpoints (/metrics): delivery counts per edition and status, and the retry sum, are
-- read from this covering index alone instead of visiting every delivery row on each scrape.
CREATE INDEX deliveries_edition_status ON deliveries (edition_id, status, attempts);
