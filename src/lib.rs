//! `custory-mcp`: workspace-scoped MCP keys for Custory, the admin CLI that manages them, and
//! the local server (admin API + MCP endpoint) that serves a workspace's journey context.
//!
//! The binary calls [`cli::main`]. What else is public is what the integration tests drive:
//! the server seam ([`server::run`]), the store it runs on, the token types and the admin API's
//! wire types. See `ARCHITECTURE.md` for the map.

pub mod api;
pub mod cli;
mod client;
mod error;
mod fsutil;
mod mcp;
mod output;
pub mod period;
mod secrets;
pub mod server;
mod settings;
pub mod store;
mod text;
pub mod token;
