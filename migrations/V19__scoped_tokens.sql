-- Scoped, named, expiring and revocable API tokens, and operator tokens (docs/api.md, "Tokens").
--
-- A tenant's token gets an id (`tok_` and 26 characters, made in Rust, time-ordered), a name, a
-- scope (what it may do), an optional expiry and a revocation time. Tokens made before this
-- migration keep working with scope `full`; their id is taken from their hash (deterministic,
-- so that this statement runs the same on a distributed table: shared/scale-out.md, rule 4).
ALTER TABLE herald.api_tokens
    ADD COLUMN token_id   text,
    ADD COLUMN name       text        NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    ADD COLUMN scope      text        NOT NULL DEFAULT 'full'
               CHECK (scope IN ('full', 'publish', 'read', 'respond')),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN revoked_at timestamptz;

UPDATE herald.api_tokens SET token_id = 'tok_' || upper(substr(encode(token_hash, 'hex'), 1, 26))
 WHERE token_id IS NULL;

ALTER TABLE herald.api_tokens ALTER COLUMN token_id SET NOT NULL;

CREATE UNIQUE INDEX api_tokens_by_id ON herald.api_tokens (tenant_id, token_id);

-- A disabled tenant's tokens are refused (403 tenant_disabled); nothing else of it changes.
ALTER TABLE herald.tenants ADD COLUMN disabled_at timestamptz;

-- Operator tokens reach /v1/admin (tenants) and nothing else. They belong to no tenant: under
-- Citus this is a reference table, like herald.tenants. Only the SHA-256 is kept.
CREATE TABLE herald.operator_tokens (
    token_id    text        NOT NULL PRIMARY KEY,
    token_hash  bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    name        text        NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz
);
