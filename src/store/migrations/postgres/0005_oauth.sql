-- OAuth (serve --oauth): the clients that registered, the owner's browser sessions, the codes
-- consent issues (each redeemed once for a new MCP key), and which client a key was minted for.
CREATE TABLE oauth_clients (
    id             TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_ip     TEXT,
    used_at        BIGINT
);
CREATE INDEX oauth_clients_created ON oauth_clients (created_at);
CREATE TABLE oauth_sessions (
    token_hash  BYTEA PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE TABLE oauth_codes (
    code_hash       BYTEA PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients(id),
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    resource        TEXT NOT NULL,
    workspace_id    BIGINT NOT NULL REFERENCES workspaces(id),
    key_name        TEXT NOT NULL,
    access          TEXT NOT NULL CHECK (access IN ('read-write', 'read-only')),
    expires         TEXT NOT NULL CHECK (expires IN ('30d', '90d', 'never')),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    key_id          TEXT
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);
ALTER TABLE mcp_keys ADD COLUMN oauth_client_id TEXT;
ALTER TABLE mcp_keys ADD COLUMN oauth_client_name TEXT;
