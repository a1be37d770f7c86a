-- 0015 (PostgreSQL; migrations/sqlite/0015_ranked_search_and_key_lists.sql has the key lists'
-- part): a search ranks a bounded set of candidates, the documents with a query word in their
-- title first (store/content/search.rs), found through this index of the title words alone
-- (the words weighted A).
CREATE INDEX search_docs_titles ON search_docs USING GIN (ts_filter(words, '{a}'));

-- The keys list of a status other than active reads only the keys of that status: revoked
-- ones, and the keys that can expire, in list order (so a generic plan, made for any time,
-- still uses it), instead of every key of the workspace when few or none have that status.
CREATE INDEX mcp_keys_revoked ON mcp_keys (workspace_id, created_at, rowid)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX mcp_keys_expirable_listed ON mcp_keys (workspace_id, created_at, rowid)
    WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
