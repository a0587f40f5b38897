-- Links (docs/api.md, "Links"): a tenant hands a person one URL that reaches a page with a
-- narrow scope. The URL carries a credential in its fragment (never sent to a server with a
-- request, never in a Referer); the page exchanges it once per browser for a session, kept in
-- an HttpOnly cookie. Only SHA-256 hashes are stored. An inbox link answers operations (only
-- those of `run_id` when it is set), as `responder`. Revoking a link ends its sessions.
CREATE TABLE herald.links (
    tenant_id        text        NOT NULL REFERENCES herald.tenants (tenant_id),
    link_id          text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('inbox')),
    credential_hash  bytea       NOT NULL CHECK (length(credential_hash) = 32),
    responder        text        CHECK (length(responder) <= 200),
    run_id           text,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    PRIMARY KEY (tenant_id, link_id),
    UNIQUE (tenant_id, credential_hash)
);

CREATE TABLE herald.sessions (
    tenant_id     text        NOT NULL REFERENCES herald.tenants (tenant_id),
    session_hash  bytea       NOT NULL CHECK (length(session_hash) = 32),
    link_id       text        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    -- No foreign key to the link (Citus distributes the two tables one after the other, and
    -- refuses a key from a table not distributed yet): a session is looked up with its link, so
    -- one whose link is gone is no session.
    PRIMARY KEY (tenant_id, session_hash)
);
