-- Signed webhooks (issue 35): each workspace's endpoints, and the outbox of what each must be
-- sent, written in the same transaction as the audit event it mirrors. The secret signs the
-- deliveries, so it is kept as it is (unlike tokens); it is shown once, at creation.
CREATE TABLE webhook_endpoints (
    id            TEXT PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    events        TEXT NOT NULL,
    format        TEXT NOT NULL DEFAULT 'standard' CHECK (format IN ('standard', 'slack')),
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    removed_at    INTEGER
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id, removed_at);
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id         TEXT NOT NULL UNIQUE,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    last_attempt_at  INTEGER,
    delivered_at     INTEGER,
    failed_at        INTEGER
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, delivered_at, failed_at, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries(id),
    endpoint_id  TEXT NOT NULL,
    at           INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    millis       INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
