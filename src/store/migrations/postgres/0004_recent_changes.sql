-- What changed in a workspace lately, newest first (the summarise_changes prompt): items by when
-- they last changed, comments by when they were added.
CREATE INDEX items_updated ON items (workspace_id, updated_at);
CREATE INDEX comments_created ON comments (workspace_id, created_at);
