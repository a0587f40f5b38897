-- An endpoint's consumer (docs/api.md, "The endpoint fields"): the tenant's own name for the
-- customer whose system it is, e.g. "acme". Endpoints are listed by it
-- (`GET /v1/endpoints?consumer=acme`), and a portal link (later) is scoped to one consumer.
-- Optional; endpoint writes are rare, so the index costs nothing on the delivery path.
ALTER TABLE herald.endpoints
    ADD COLUMN consumer text CHECK (consumer ~ '^[A-Za-z0-9_.:-]{1,100}$');

CREATE INDEX endpoints_by_consumer ON herald.endpoints (tenant_id, consumer, endpoint_id)
    WHERE consumer IS NOT NULL;
