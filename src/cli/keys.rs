//! `custory-mcp keys …`: create, list, show, revoke and rotate MCP keys.

use super::GlobalArgs;
use crate::token::PlainToken;

/// The token of a key saved with `keys create --save`, found by KEY (id, name or prefix).
pub fn saved_token(global: &GlobalArgs, key: &str) -> anyhow::Result<PlainToken> {
    let _ = (global, key);
    anyhow::bail!("not implemented yet")
}
