-- 0003 (SQLite; migrations/postgres/0003_model.sql is the same for PostgreSQL): the whole
-- model. Journeys, stages, steps and items can be archived (they leave every read unless asked
-- for, and come back with restore); items carry priority, impact and effort as properties of
-- their own (they were kind-specific fields of opportunities and solutions); journeys name
-- their personas.

-- When the thing itself was archived (NULL: it is not).
ALTER TABLE journeys ADD COLUMN archived_at INTEGER;
ALTER TABLE stages ADD COLUMN archived_at INTEGER;
ALTER TABLE steps ADD COLUMN archived_at INTEGER;
ALTER TABLE items ADD COLUMN archived_at INTEGER;
-- Whether a step or item is out of the reads: it, or something it sits in, is archived. Kept
-- by archive and restore for the whole subtree, so reads filter on one column.
ALTER TABLE steps ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;

-- The `archived` status becomes the archive: such items are archived, with their kind's first
-- status.
UPDATE items SET archived_at = updated_at, hidden = 1,
    status = CASE kind WHEN 'opportunity' THEN 'open' WHEN 'solution' THEN 'idea'
                       WHEN 'metric' THEN 'tracking' ELSE 'draft' END
WHERE status = 'archived';
-- `item_count` counts a step's items that are not archived.
UPDATE steps SET item_count = (SELECT count(*) FROM items
                               WHERE items.step_id = steps.id AND items.archived_at IS NULL);

ALTER TABLE items ADD COLUMN priority TEXT CHECK (priority IN ('P0', 'P1', 'P2', 'P3'));
ALTER TABLE items ADD COLUMN impact TEXT CHECK (impact IN ('low', 'medium', 'high'));
ALTER TABLE items ADD COLUMN effort TEXT CHECK (effort IN ('low', 'medium', 'high'));
UPDATE items SET
    priority = CASE WHEN upper(json_extract(fields, '$.priority')) IN ('P0', 'P1', 'P2', 'P3')
                    THEN upper(json_extract(fields, '$.priority')) END,
    impact = CASE WHEN lower(json_extract(fields, '$.impact')) IN ('low', 'medium', 'high')
                  THEN lower(json_extract(fields, '$.impact')) END,
    effort = CASE WHEN lower(json_extract(fields, '$.effort')) IN ('low', 'medium', 'high')
                  THEN lower(json_extract(fields, '$.effort')) END
WHERE kind IN ('opportunity', 'solution');
-- A value moved out of the fields leaves them; one that is not a known value stays, so nothing
-- is lost.
UPDATE items SET fields = json_remove(fields, '$.priority') WHERE priority IS NOT NULL;
UPDATE items SET fields = json_remove(fields, '$.impact') WHERE impact IS NOT NULL;
UPDATE items SET fields = json_remove(fields, '$.effort') WHERE effort IS NOT NULL;
-- The fields shrank: count the text again.
DELETE FROM workspace_counts WHERE counter = 'text_bytes';
INSERT INTO workspace_counts (workspace_id, counter, n)
SELECT workspace_id, 'text_bytes', sum(n) FROM (
    SELECT workspace_id, length(CAST(title AS BLOB)) + length(CAST(description AS BLOB)) + length(CAST(fields AS BLOB)) AS n FROM items
    UNION ALL
    SELECT workspace_id, length(CAST(body AS BLOB)) + length(CAST(author AS BLOB)) FROM comments
) t GROUP BY workspace_id;

-- The personas a journey is about.
CREATE TABLE journey_personas (
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    journey_id    TEXT NOT NULL REFERENCES journeys(id),
    persona_id    TEXT NOT NULL REFERENCES personas(id),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (journey_id, persona_id)
);
CREATE INDEX journey_personas_persona ON journey_personas (persona_id);

-- The search documents of what is hidden (archived, or in something archived): a search leaves
-- them out unless asked. A set of its own, so archive and restore change rows here instead of
-- rewriting the full-text index of everything they hide.
CREATE TABLE hidden_docs (
    doc_id        INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id)
);
CREATE INDEX hidden_docs_workspace ON hidden_docs (workspace_id);
