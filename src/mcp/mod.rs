//! MCP: what the endpoint says, with no HTTP in it. `protocol.rs` is the wire format (versions,
//! JSON-RPC messages, the methods' parameters and results), `dispatch.rs` answers the messages
//! of one request body for one authenticated key in either era of the protocol, `tools.rs`
//! defines and runs the tools, `schema.rs` turns their argument and result types into the JSON
//! Schemas clients see, `resources.rs`, `prompts.rs` and `complete.rs` serve resources,
//! prompts and argument completion, `render.rs` writes the Markdown they show, and
//! `confine.rs` keeps a key limited to some journeys inside them. `app.rs` is the journey
//! map's MCP App (the `io.modelcontextprotocol/ui` extension): its view, declared and served.
//!
//! The HTTP side — admission (Origin, Host, bearer token, media types, protocol version), the
//! body limit, status codes — is `server/mcp.rs`. See ARCHITECTURE.md for why the transport is
//! written here rather than with rmcp's server.

mod app;
mod complete;
mod confine;
mod dispatch;
mod prompts;
pub mod protocol;
mod render;
mod resources;
mod schema;
mod tools;

pub use dispatch::{Answer, Session};
pub use tools::{access_with as access_with_tools, expand_names as expand_tool_names};
