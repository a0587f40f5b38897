-- Portal links (docs/api.md, "Links"): a page at /portal where the owner of a receiving system
-- manages its endpoints. A portal link is scoped to one `consumer` (the endpoints tagged with
-- it, V23), or to every endpoint of the tenant when `consumer` is NULL. An inbox link has none.
-- One subcommand per ALTER TABLE, every constraint named: Citus refuses an unnamed constraint
-- in ADD COLUMN, and ADD CONSTRAINT beside other subcommands, on a distributed table.
ALTER TABLE herald.links DROP CONSTRAINT links_kind_check;
ALTER TABLE herald.links ADD CONSTRAINT links_kind_check CHECK (kind IN ('inbox', 'portal'));
ALTER TABLE herald.links ADD COLUMN consumer text;
ALTER TABLE herald.links ADD CONSTRAINT links_consumer_check CHECK (consumer ~ '^[A-Za-z0-9_.:-]{1,100}$');
ALTER TABLE herald.links ADD CONSTRAINT links_consumer_portal_only CHECK (consumer IS NULL OR kind = 'portal');
