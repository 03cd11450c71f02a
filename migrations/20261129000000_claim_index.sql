-- Claiming walks an edition's unfinished deliveries in id order and stops after one batch.
-- deliveries_pending is ordered by status first, so the claim query (ORDER BY id LIMIT n) read
-- and sorted every delivery of the edition on each claim: quadratic in the edition's size
-- (dispatch-bench: 783 messages/s at 100,000 recipients against 2,300/s at 20,000). This index
-- holds only unfinished rows, in (edition, id) order, so a claim reads one batch's worth.
CREATE INDEX deliveries_claim ON deliveries (edition_id) WHERE status IN ('queued', 'sending');
