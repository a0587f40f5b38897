-- The inbox's history (docs/api.md, `GET /v1/approvals?order=settled`): answered and expired
-- operations, last settled first, paged by (when it settled, call_id). One probe of this index
-- per page, however long the history.
CREATE INDEX operations_settled ON herald.operations
    (tenant_id, kind, (coalesce(responded_at, expires_at)) DESC, call_id DESC)
    WHERE status <> 'pending';
