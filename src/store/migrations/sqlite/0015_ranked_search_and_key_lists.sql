-- 0015 (SQLite; see migrations/postgres/0015_ranked_search_and_key_lists.sql, whose search
-- index FTS5 needs no counterpart of): the keys list of a status other than active reads only
-- the keys of that status: revoked ones, and the keys that can expire, in list order, instead of
-- every key of the workspace when few or none have that status.
CREATE INDEX mcp_keys_revoked ON mcp_keys (workspace_id, created_at)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX mcp_keys_expirable_listed ON mcp_keys (workspace_id, created_at)
    WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
