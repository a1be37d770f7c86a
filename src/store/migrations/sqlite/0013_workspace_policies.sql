-- A workspace's key policy (issue 34): the rules every key made there must keep, as the JSON
-- of `api::Policy` (each rule absent means none), with who changed it last. `revision` grows
-- by one at each change: a replica that holds an older one reads it again.
CREATE TABLE workspace_policies (
    workspace_id  INTEGER PRIMARY KEY REFERENCES workspaces(id),
    rules         TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT NOT NULL,
    updated_by_member  TEXT,
    updated_by_name    TEXT
);
