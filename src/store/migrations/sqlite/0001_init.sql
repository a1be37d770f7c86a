-- 0001: the first schema, for SQLite (migrations/postgres/0001_init.sql is the same for
-- PostgreSQL). Never edit a migration that has shipped: add a new one, to both lists.
-- Times are INTEGER unix seconds (UTC). Ids exposed to clients are TEXT with a type prefix.

CREATE TABLE workspaces (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Owner credentials of this server (admin API). Only the hash and display prefix are kept.
CREATE TABLE owner_credentials (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Workspace-scoped MCP keys. Rows are never deleted: revocation keeps the history auditable.
CREATE TABLE mcp_keys (
    id                TEXT PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces(id),
    name              TEXT NOT NULL,
    prefix            TEXT NOT NULL,
    token_hash        BLOB NOT NULL UNIQUE,
    access            TEXT NOT NULL CHECK (access IN ('read-write', 'read-only')),
    expires           TEXT NOT NULL CHECK (expires IN ('30d', '90d', 'never')),
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER,
    last_used_at      INTEGER,
    last_used_client  TEXT,
    last_used_ip      TEXT,
    revoked_at        INTEGER
);
CREATE INDEX mcp_keys_workspace ON mcp_keys (workspace_id, created_at);

CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    at            INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    key_id        TEXT,
    key_prefix    TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id);
CREATE INDEX audit_events_key ON audit_events (key_id, id);

-- The customer-journey domain: workspace -> journey -> stage -> step -> item.
CREATE TABLE journeys (
    id            TEXT PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    slug          TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    position      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, slug)
);

CREATE TABLE stages (
    id            TEXT PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    journey_id    TEXT NOT NULL REFERENCES journeys(id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    position      INTEGER NOT NULL
);
CREATE INDEX stages_journey ON stages (journey_id, position);

CREATE TABLE steps (
    id            TEXT PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    stage_id      TEXT NOT NULL REFERENCES stages(id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    position      INTEGER NOT NULL
);
CREATE INDEX steps_stage ON steps (stage_id, position);

-- kind-specific fields live in `fields` (a JSON object), validated by the application.
CREATE TABLE items (
    id            TEXT PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    step_id       TEXT NOT NULL REFERENCES steps(id),
    kind          TEXT NOT NULL CHECK (kind IN ('touchpoint', 'insight', 'opportunity', 'solution', 'metric')),
    title         TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL,
    owner         TEXT,
    fields        TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX items_workspace ON items (workspace_id, kind);
CREATE INDEX items_step ON items (step_id);

CREATE TABLE item_links (
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    from_item     TEXT NOT NULL REFERENCES items(id),
    to_item       TEXT NOT NULL REFERENCES items(id),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (from_item, to_item)
);
CREATE INDEX item_links_to ON item_links (to_item);

CREATE TABLE comments (
    id            TEXT PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    item_id       TEXT NOT NULL REFERENCES items(id),
    author        TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX comments_item ON comments (item_id, created_at);

CREATE TABLE personas (
    id                TEXT PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces(id),
    name              TEXT NOT NULL,
    role              TEXT NOT NULL DEFAULT '',
    bio               TEXT NOT NULL DEFAULT '',
    job_to_be_done    TEXT NOT NULL DEFAULT '',
    goals             TEXT NOT NULL DEFAULT '[]',
    frustrations      TEXT NOT NULL DEFAULT '[]',
    created_at        INTEGER NOT NULL
);
CREATE INDEX personas_workspace ON personas (workspace_id);
