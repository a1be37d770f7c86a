-- Fine-grained keys: what a key is confined to beyond its access, fixed at creation (a key may
-- later be narrowed, never widened). Each is a space-separated list; NULL means no limit.
--   scope_tools      the tool names it may list and call (groups already expanded)
--   scope_journeys   the journey ids (jrn_…) it may read and write in
--   scope_addresses  the client networks (CIDRs) it may be used from
ALTER TABLE mcp_keys ADD COLUMN scope_tools TEXT;
ALTER TABLE mcp_keys ADD COLUMN scope_journeys TEXT;
ALTER TABLE mcp_keys ADD COLUMN scope_addresses TEXT;
