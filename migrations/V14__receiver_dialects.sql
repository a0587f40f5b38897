-- What receivers that already exist expect (docs/receiving.md), per endpoint: the header the
-- hex scheme's signature goes in (NULL: x-webhook-signature), headers of the receiver's own (an
-- API key, a routing header; values are secrets), an attempt timeout of its own (NULL: the
-- global HERALD_ATTEMPT_TIMEOUT), and the body's shape.
ALTER TABLE herald.endpoints
    ADD COLUMN signature_header text CHECK (signature_header ~ '^[a-z0-9!#$%&''*+.^_`|~-]{1,64}$'),
    ADD COLUMN headers jsonb CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object'),
    ADD COLUMN timeout_ms integer CHECK (timeout_ms BETWEEN 1000 AND 60000),
    ADD COLUMN payload_format text NOT NULL DEFAULT 'envelope'
        CHECK (payload_format IN ('envelope', 'humanlayer'));
