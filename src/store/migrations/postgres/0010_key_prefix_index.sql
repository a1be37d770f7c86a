-- 0010: as migrations/sqlite/0010_key_prefix_index.sql. A key found by its displayed prefix on
-- the whole server (the CLI's KEY names its own workspace), one index lookup however many
-- workspaces there are.
CREATE INDEX mcp_keys_prefix_any ON mcp_keys (prefix);
