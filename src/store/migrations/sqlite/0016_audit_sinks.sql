-- The audit stream (`serve --audit-sink URL`, issue 35): how far each collector has been sent
-- the audit trail and the record of calls. The database is the stream's queue: a row is sent
-- after its id (`events_after`, `calls_after`), in id order, and the cursor moves only once
-- the collector has accepted a batch (at least once). A sink is named by the SHA-256 of its
-- URL (which may hold a collector's token) and shown by its host and path. Of several
-- replicas sending to one sink, the one holding the lease sends. `dropped` counts call
-- records pruned (past the audit retention) before they were sent.
CREATE TABLE audit_sinks (
    sink          TEXT PRIMARY KEY,
    label         TEXT NOT NULL,
    events_after  INTEGER NOT NULL,
    calls_after   INTEGER NOT NULL,
    dropped       INTEGER NOT NULL DEFAULT 0,
    sent          INTEGER NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_until   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- A sink's cursor is an id: SQLite must never hand a call's id out twice. Without
-- AUTOINCREMENT it gives the largest id + 1, which after a prune that deleted the newest rows
-- is an id already sent. The table is rebuilt once with AUTOINCREMENT (its rows are at most
-- --audit-retention old). Audit events are never deleted, so their ids never go back.
CREATE TABLE key_calls_rebuilt (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    key_id        TEXT NOT NULL,
    at            INTEGER NOT NULL,
    what          TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'refused')),
    bytes         INTEGER NOT NULL,
    ids           TEXT NOT NULL,
    ip            TEXT
);
INSERT INTO key_calls_rebuilt (id, workspace_id, key_id, at, what, outcome, bytes, ids, ip)
    SELECT id, workspace_id, key_id, at, what, outcome, bytes, ids, ip FROM key_calls;
DROP TABLE key_calls;
ALTER TABLE key_calls_rebuilt RENAME TO key_calls;
CREATE INDEX key_calls_key ON key_calls (key_id, id);
CREATE INDEX key_calls_at ON key_calls (at);
