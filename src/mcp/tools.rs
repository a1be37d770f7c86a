//! The MCP tools: definitions (schemas, annotations) and their execution against the store.

use serde_json::Value;

use crate::api::Access;
use crate::store::Store;

/// Who is calling: the authenticated key and its workspace.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub workspace_id: i64,
    pub workspace_slug: String,
    pub key_id: String,
    pub key_prefix: String,
    pub access: Access,
}

/// A `tools/call` that cannot even start: answered as a JSON-RPC error (-32602).
#[derive(Debug, thiserror::Error)]
pub enum ToolCallError {
    #[error("unknown tool: {0}")]
    UnknownTool(String),
}

/// The `tools` array of `tools/list` for a key with `access`.
pub fn definitions(access: Access) -> Vec<Value> {
    let _ = access;
    Vec::new()
}

/// Runs a tool and returns the `tools/call` result object
/// (`{"content":[…],"structuredContent":{…},"isError":bool}`).
pub fn call(store: &Store, ctx: &ToolContext, name: &str, arguments: Value) -> Result<Value, ToolCallError> {
    let _ = (store, ctx, arguments);
    Err(ToolCallError::UnknownTool(name.to_owned()))
}
