//! `custory-mcp`: workspace-scoped MCP keys for Custory, the admin CLI that manages them, and
//! the local server (admin API + MCP endpoint) that serves a workspace's journey context.
//!
//! See `ARCHITECTURE.md` for the map.

pub mod api;
pub mod cli;
pub mod client;
pub mod error;
pub mod fsutil;
pub mod mcp;
pub mod output;
pub mod secrets;
pub mod server;
pub mod store;
pub mod token;
