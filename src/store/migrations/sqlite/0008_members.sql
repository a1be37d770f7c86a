-- Team access: members (people with a role per workspace), their personal credentials, the
-- invitations that issue them, and who did what: each key records who created it, each audit
-- event its actor. What exists is attributed to the server administrator (the owner
-- credential); the write tool calls recorded so far were made by their key, and the events the
-- server itself noticed (a new origin, a rejected token) by the server.
CREATE TABLE members (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT,
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER
);
CREATE INDEX members_name ON members (name);
CREATE TABLE member_roles (
    member_id     TEXT NOT NULL REFERENCES members(id),
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    role          TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (member_id, workspace_id)
);
CREATE INDEX member_roles_workspace ON member_roles (workspace_id, role);
CREATE TABLE member_credentials (
    id          INTEGER PRIMARY KEY,
    member_id   TEXT NOT NULL REFERENCES members(id),
    token_hash  BLOB NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE TABLE invitations (
    id            INTEGER PRIMARY KEY,
    token_hash    BLOB NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    role          TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    name          TEXT NOT NULL,
    email         TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    created_by    TEXT NOT NULL,
    member_id     TEXT
);
ALTER TABLE mcp_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT 'administrator'
    CHECK (created_by IN ('administrator', 'member', 'consent'));
ALTER TABLE mcp_keys ADD COLUMN created_by_member TEXT;
ALTER TABLE mcp_keys ADD COLUMN created_by_name TEXT;
UPDATE mcp_keys SET created_by = 'consent' WHERE oauth_client_id IS NOT NULL;
CREATE INDEX mcp_keys_creator ON mcp_keys (workspace_id, created_by_member);
ALTER TABLE audit_events ADD COLUMN actor TEXT NOT NULL DEFAULT 'administrator';
ALTER TABLE audit_events ADD COLUMN actor_member TEXT;
ALTER TABLE audit_events ADD COLUMN actor_name TEXT;
UPDATE audit_events SET actor = 'key' WHERE kind = 'tool.called';
UPDATE audit_events SET actor = 'server' WHERE kind IN ('key.new_origin', 'auth.rejected');
CREATE INDEX audit_events_actor ON audit_events (workspace_id, actor_name, id);
-- OAuth consent signed in with a member's credential: the session and the code name the
-- member, and the key the code mints is attributed to them.
ALTER TABLE oauth_sessions ADD COLUMN member_id TEXT;
ALTER TABLE oauth_codes ADD COLUMN member_id TEXT;
ALTER TABLE oauth_codes ADD COLUMN member_name TEXT;
