-- Ordered delivery, opt-in per endpoint (docs/api.md, "Ordering"): one delivery at a time, in
-- Herald's publish order. A FIFO endpoint's deliveries carry their event's `seq` (Herald's
-- time-ordered key; NULL for every other delivery, so the index below holds FIFO rows only).
ALTER TABLE herald.endpoints ADD COLUMN ordering text NOT NULL DEFAULT 'none'
    CHECK (ordering IN ('none', 'fifo'));
ALTER TABLE herald.deliveries ADD COLUMN seq bigint;
CREATE INDEX deliveries_fifo ON herald.deliveries (tenant_id, target, seq, delivery_id)
    WHERE state = 'pending' AND seq IS NOT NULL;
