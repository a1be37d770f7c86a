-- An owner can withdraw an invitation before it is redeemed; the pending invitations of a
-- workspace are listed by when they expire.
ALTER TABLE invitations ADD COLUMN withdrawn_at INTEGER;
CREATE INDEX invitations_workspace ON invitations (workspace_id, expires_at);
