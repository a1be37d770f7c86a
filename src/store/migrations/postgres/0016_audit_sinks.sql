-- The audit stream (`serve --audit-sink URL`, issue 35): how far each collector has been sent
-- the audit trail and the record of calls. The database is the stream's queue: a row is sent
-- after its id (`events_after`, `calls_after`), in id order, and the cursor moves only once
-- the collector has accepted a batch (at least once). A sink is named by the SHA-256 of its
-- URL (which may hold a collector's token) and shown by its host and path. Of several
-- replicas sending to one sink, the one holding the lease sends. `dropped` counts call
-- records pruned (past the audit retention) before they were sent.
CREATE TABLE audit_sinks (
    sink          TEXT COLLATE "C" PRIMARY KEY,
    label         TEXT NOT NULL,
    events_after  BIGINT NOT NULL,
    calls_after   BIGINT NOT NULL,
    dropped       BIGINT NOT NULL DEFAULT 0,
    sent          BIGINT NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_until   BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);
