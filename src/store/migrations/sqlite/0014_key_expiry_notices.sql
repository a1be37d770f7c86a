-- Expiry warnings (issue 35): the smallest threshold, in days, a key's expiry was announced at
-- (30, 7, 1; 0: its expiry itself), so each goes out once, whichever replica or restart runs
-- the hourly check. Keys already expired when this runs are not announced late.
ALTER TABLE mcp_keys ADD COLUMN expiry_notice INTEGER;
UPDATE mcp_keys SET expiry_notice = 0
    WHERE expires_at IS NOT NULL AND expires_at <= CAST(strftime('%s', 'now') AS INTEGER);
CREATE INDEX mcp_keys_expiry ON mcp_keys (expires_at)
    WHERE expires_at IS NOT NULL AND revoked_at IS NULL;
