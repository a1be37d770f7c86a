//! The config files this tool writes that hold a given key's token: found by scanning every
//! client's file (the user's, and the project's in the current directory) for a token with
//! the key's prefix, and rewritten in place with a new token after `keys rotate`.

use std::path::PathBuf;

use super::clients::{Client, ClientArg, Scope};
use super::merge;
use crate::token::PlainToken;

/// Files larger than this are no client's MCP config: not read.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// A client's config file that holds a key's token.
#[derive(Debug)]
pub struct Held {
    pub client: ClientArg,
    pub scope: Scope,
    /// The file as the client names it (a link stays a link).
    pub path: PathBuf,
    /// The token found there (never printed).
    token: PlainToken,
}

impl Held {
    /// The client's name for people (`Cursor`).
    pub fn client_name(&self) -> &'static str {
        self.client.name()
    }
}

/// Every client config file, of either scope, that holds a token of the key with `prefix`
/// (its displayed prefix, `cst_` and 8 characters). Files that cannot be read are skipped.
pub fn files_holding(prefix: &str) -> Vec<Held> {
    let mut found: Vec<Held> = Vec::new();
    for client in ClientArg::choices() {
        for scope in [Scope::User, Scope::Project] {
            let Ok(path) = Client::from(client).path(scope) else { continue };
            let target = merge::resolve(&path);
            if found.iter().any(|held| merge::resolve(&held.path) == target) {
                continue;
            }
            // Only a regular file (a FIFO would block the read) of a config's size.
            let regular = std::fs::metadata(&target)
                .is_ok_and(|meta| meta.is_file() && meta.len() <= MAX_CONFIG_BYTES);
            if !regular {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&target) else { continue };
            if let Some(token) = token_in(&text, prefix) {
                found.push(Held { client, scope, path, token });
            }
        }
    }
    found
}

/// The first whole, valid MCP token in `text` that starts with `prefix`.
fn token_in(text: &str, prefix: &str) -> Option<PlainToken> {
    text.match_indices(prefix).find_map(|(at, _)| {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let rest = &text[at..];
        let end = rest.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(rest.len());
        PlainToken::parse(&rest[..end]).ok()
    })
}

/// Puts `new` where `held` has the old token (every occurrence; nothing else changes), the
/// previous version kept as `<file>.bak`. Returns the backup's path.
pub fn rewrite(held: &Held, new: &PlainToken) -> anyhow::Result<Option<PathBuf>> {
    // The file already held a token: its mode is kept; a link found holding it is followed.
    let (target, mode) = merge::check_target(&held.path, true)?;
    let previous = merge::read(&target)?.unwrap_or_default();
    let updated = previous.replace(held.token.expose(), new.expose());
    merge::write(&target, Some(&previous), &updated, mode)
}

#[cfg(test)]
mod tests {
    use crate::token::{PlainToken, TokenKind};

    #[test]
    fn a_token_is_found_whole_by_its_prefix() {
        let token = PlainToken::generate(TokenKind::Mcp);
        let prefix = token.display_prefix();
        let text = format!(r#"{{"headers": {{"Authorization": "Bearer {}"}}}}"#, token.expose());
        assert_eq!(
            super::token_in(&text, &prefix).map(|t| t.expose().to_owned()).as_deref(),
            Some(token.expose())
        );
        let other = PlainToken::generate(TokenKind::Mcp);
        assert!(super::token_in(&text, &other.display_prefix()).is_none());
        // Cut short, it is no token.
        let cut = &token.expose()[..30];
        assert!(super::token_in(&format!("\"{cut}\""), &prefix).is_none());
    }
}
