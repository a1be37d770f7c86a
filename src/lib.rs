//! `custory-mcp`: workspace-scoped MCP keys for Custory, the admin CLI that manages them, and
//! the local server (admin API + MCP endpoint) that serves a workspace's journey context.
//!
//! See `ARCHITECTURE.md` for the map.

pub mod api;
pub mod mcp;
pub mod store;
pub mod token;
