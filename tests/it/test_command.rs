//! `custory-mcp test` against real servers: every stage and failure it can show.
