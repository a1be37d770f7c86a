-- What each key did, reads included: every tool call, resource read and prompt (kept for
-- `serve --audit-retention`), hourly totals per key and tool (kept for `--usage-retention`), and
-- the addresses and clients each key has been used from (for `key.new_origin`).
CREATE TABLE key_calls (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    key_id        TEXT NOT NULL,
    at            INTEGER NOT NULL,
    what          TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'refused')),
    bytes         INTEGER NOT NULL,
    ids           TEXT NOT NULL,
    ip            TEXT
);
CREATE INDEX key_calls_key ON key_calls (key_id, id);
CREATE INDEX key_calls_at ON key_calls (at);
CREATE TABLE key_usage_hours (
    key_id        TEXT NOT NULL,
    hour          INTEGER NOT NULL,
    what          TEXT NOT NULL,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    calls         INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    PRIMARY KEY (key_id, hour, what)
);
CREATE INDEX key_usage_hours_workspace ON key_usage_hours (workspace_id, hour);
CREATE INDEX key_usage_hours_hour ON key_usage_hours (hour);
CREATE TABLE key_origins (
    key_id      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('address', 'client')),
    value       TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (key_id, kind, value)
);
