-- 0002 (SQLite; migrations/postgres/0002_search_and_order.sql is the same for PostgreSQL):
-- a full-text index over everything a search covers, the map order of steps and items (so
-- lists page along an index), and the indexes every filter and ordering needs.

-- One row per searchable thing, with the words it is indexed under: `title` and `body` the
-- folded words of the text, each prefixed by its workspace (42_onboarding), `scope` the filter
-- words (j<journey>, t<type>, k<kind>, s<status>). The FTS5 table below indexes them and holds
-- no copy (contentless) and no per-row sizes (columnsize=0: ranking reads no extra row per
-- hit, and, like PostgreSQL's ts_rank, does not weigh by length); a document leaves it by
-- being deleted with the words kept here. Both are kept in step with every write, in the
-- same transaction (store/search.rs).
CREATE TABLE search_docs (
    doc_id        INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    doc_type      TEXT NOT NULL,
    ref_id        TEXT NOT NULL UNIQUE,
    scope_words   TEXT NOT NULL,
    title_words   TEXT NOT NULL,
    body_words    TEXT NOT NULL
);
CREATE INDEX search_docs_workspace ON search_docs (workspace_id);

CREATE VIRTUAL TABLE search_fts USING fts5(
    scope, title, body,
    content = '', columnsize = 0,
    tokenize = "unicode61 remove_diacritics 0 tokenchars '_'"
);

-- What a workspace holds, counted as it is written (items in all and per kind, comments, the
-- bytes of their text), so that a summary costs no count and quotas cost one read.
CREATE TABLE workspace_counts (
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    counter       TEXT NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, counter)
);
INSERT INTO workspace_counts (workspace_id, counter, n)
SELECT workspace_id, 'item:' || kind, count(*) FROM items GROUP BY workspace_id, kind;
INSERT INTO workspace_counts (workspace_id, counter, n)
SELECT workspace_id, 'items', count(*) FROM items GROUP BY workspace_id;
INSERT INTO workspace_counts (workspace_id, counter, n)
SELECT workspace_id, 'comments', count(*) FROM comments GROUP BY workspace_id;
INSERT INTO workspace_counts (workspace_id, counter, n)
SELECT workspace_id, 'text_bytes', sum(n) FROM (
    SELECT workspace_id, length(CAST(title AS BLOB)) + length(CAST(description AS BLOB)) + length(CAST(fields AS BLOB)) AS n FROM items
    UNION ALL
    SELECT workspace_id, length(CAST(body AS BLOB)) + length(CAST(author AS BLOB)) FROM comments
) t GROUP BY workspace_id;

-- A step's place in its workspace's map (journeys, then stages, then steps, by position), and a
-- copy on each item: items list in map order along one index.
ALTER TABLE steps ADD COLUMN map_order INTEGER NOT NULL DEFAULT 0;
-- How many items a step holds, kept by every insert: a map's counts without counting.
ALTER TABLE steps ADD COLUMN item_count INTEGER NOT NULL DEFAULT 0;
UPDATE steps SET item_count = (SELECT count(*) FROM items WHERE items.step_id = steps.id);
ALTER TABLE items ADD COLUMN map_order INTEGER NOT NULL DEFAULT 0;

-- (Every SQLite index ends with the row's rowid, so these order by it too.)
DROP INDEX items_workspace;
DROP INDEX items_step;
CREATE INDEX items_map ON items (workspace_id, map_order);
CREATE INDEX items_kind ON items (workspace_id, kind, map_order);
CREATE INDEX items_status ON items (workspace_id, status, map_order);
CREATE INDEX items_owner ON items (workspace_id, lower(owner), map_order);
CREATE INDEX items_step ON items (step_id);
CREATE INDEX steps_map ON steps (workspace_id, map_order);
CREATE INDEX journeys_workspace ON journeys (workspace_id, position);
CREATE INDEX stages_workspace ON stages (workspace_id);
CREATE INDEX item_links_from ON item_links (workspace_id, from_item);
CREATE INDEX item_links_to_order ON item_links (workspace_id, to_item);
DROP INDEX item_links_to;
DROP INDEX comments_item;
CREATE INDEX comments_item ON comments (item_id);

-- Keys: found by name or prefix (CLI KEY arguments), listed newest first a page at a time.
DROP INDEX mcp_keys_workspace;
CREATE INDEX mcp_keys_workspace ON mcp_keys (workspace_id, created_at);
CREATE INDEX mcp_keys_name ON mcp_keys (workspace_id, name);
CREATE INDEX mcp_keys_prefix ON mcp_keys (workspace_id, prefix);
