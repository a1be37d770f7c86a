-- 0007 (PostgreSQL; migrations/sqlite/0007_staged_imports.sql is the same for SQLite): an
-- import writes its workspace in short slices while the workspace is hidden, then shows it in
-- one step. `importing`: 0 visible, 1 a new workspace an import is filling, 2 an existing
-- (empty) one an import is filling; `importing_since`: when the import last wrote a slice, so
-- the leftovers of an interrupted import can be told from one under way.
ALTER TABLE workspaces ADD COLUMN importing BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN importing_since BIGINT;
