//! The MCP endpoint (`POST /api/mcp`): Streamable HTTP, stateless, JSON responses.

pub mod tools;
