-- 0003 (PostgreSQL; migrations/sqlite/0003_model.sql is the same for SQLite): the whole model.
-- Journeys, stages, steps and items can be archived (they leave every read unless asked for,
-- and come back with restore); items carry priority, impact and effort as properties of their
-- own (they were kind-specific fields of opportunities and solutions); journeys name their
-- personas.

-- When the thing itself was archived (NULL: it is not).
ALTER TABLE journeys ADD COLUMN archived_at BIGINT;
ALTER TABLE stages ADD COLUMN archived_at BIGINT;
ALTER TABLE steps ADD COLUMN archived_at BIGINT;
ALTER TABLE items ADD COLUMN archived_at BIGINT;
-- Whether a step or item is out of the reads: it, or something it sits in, is archived. Kept
-- by archive and restore for the whole subtree, so reads filter on one column.
ALTER TABLE steps ADD COLUMN hidden BIGINT NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN hidden BIGINT NOT NULL DEFAULT 0;

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
    priority = CASE WHEN upper(fields::jsonb ->> 'priority') IN ('P0', 'P1', 'P2', 'P3')
                    THEN upper(fields::jsonb ->> 'priority') END,
    impact = CASE WHEN lower(fields::jsonb ->> 'impact') IN ('low', 'medium', 'high')
                  THEN lower(fields::jsonb ->> 'impact') END,
    effort = CASE WHEN lower(fields::jsonb ->> 'effort') IN ('low', 'medium', 'high')
                  THEN lower(fields::jsonb ->> 'effort') END
WHERE kind IN ('opportunity', 'solution');
-- A value moved out of the fields leaves them; one that is not a known value stays, so nothing
-- is lost.
UPDATE items SET fields = (fields::jsonb - 'priority')::text WHERE priority IS NOT NULL;
UPDATE items SET fields = (fields::jsonb - 'impact')::text WHERE impact IS NOT NULL;
UPDATE items SET fields = (fields::jsonb - 'effort')::text WHERE effort IS NOT NULL;
-- The fields shrank: count the text again.
DELETE FROM workspace_counts WHERE counter = 'text_bytes';
INSERT INTO workspace_counts (workspace_id, counter, n)
SELECT workspace_id, 'text_bytes', sum(n) FROM (
    SELECT workspace_id, octet_length(title) + octet_length(description) + octet_length(fields) AS n FROM items
    UNION ALL
    SELECT workspace_id, octet_length(body) + octet_length(author) FROM comments
) t GROUP BY workspace_id;

-- The personas a journey is about.
CREATE TABLE journey_personas (
    rowid         BIGINT GENERATED ALWAYS AS IDENTITY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces(id),
    journey_id    TEXT COLLATE "C" NOT NULL REFERENCES journeys(id),
    persona_id    TEXT COLLATE "C" NOT NULL REFERENCES personas(id),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (journey_id, persona_id)
);
CREATE INDEX journey_personas_persona ON journey_personas (persona_id);

-- The search documents of what is hidden (archived, or in something archived): a search leaves
-- them out unless asked. A set of its own, so archive and restore change rows here instead of
-- rewriting the full-text index of everything they hide.
CREATE TABLE hidden_docs (
    doc_id        BIGINT PRIMARY KEY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces(id)
);
CREATE INDEX hidden_docs_workspace ON hidden_docs (workspace_id);
