//! What several commands share: the admin API client bound to the workspace a command acts
//! on, finding a key by what a person calls it, the tokens saved with `keys create --save`,
//! and shell quoting for the commands this CLI prints.

use crate::api::{ImportCounts, Key, KeyStatus, Workspace};
use crate::client::{AdminClient, KeysQuery, PageQuery, Rows, pages};
use crate::error::CliError;
use crate::output::Printer;
use crate::secrets::{self, CredentialStore};
use crate::token::PlainToken;

use super::{Given, GlobalArgs};

/// Where the workspace a command acts on was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceFrom {
    /// `--workspace`.
    Flag,
    /// `CUSTORY_WORKSPACE`.
    Env,
    /// The default `workspaces use` saved for the server.
    Saved,
    /// The server has only this one.
    Only,
}

impl WorkspaceFrom {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Flag => "--workspace",
            Self::Env => "CUSTORY_WORKSPACE",
            Self::Saved => "the default set with `custory-mcp workspaces use`",
            Self::Only => "the server's only workspace",
        }
    }
}

/// The workspace asked for before the server is asked: `--workspace`, `CUSTORY_WORKSPACE`,
/// else the default `workspaces use` saved for `--server`.
pub fn workspace_asked(global: &GlobalArgs) -> anyhow::Result<Option<(String, WorkspaceFrom)>> {
    if let Some(slug) = &global.workspace {
        let from = if global.workspace_from == Given::Env {
            WorkspaceFrom::Env
        } else {
            WorkspaceFrom::Flag
        };
        return Ok(Some((slug.clone(), from)));
    }
    Ok(crate::settings::for_server(&global.server)?
        .workspace
        .map(|slug| (slug, WorkspaceFrom::Saved)))
}

/// The workspace to act on among `workspaces` (the server's): the one `asked` (see
/// [`workspace_asked`]), else the only one. Several and none asked: an error naming the
/// command that sets a default, with a real slug.
pub fn choose_workspace(
    server: &str,
    workspaces: Vec<Workspace>,
    asked: Option<(String, WorkspaceFrom)>,
) -> anyhow::Result<(Workspace, WorkspaceFrom)> {
    let slugs: Vec<String> = workspaces.iter().map(|w| w.slug.clone()).collect();
    if let Some((slug, from)) = asked {
        if let Some(found) = workspaces.into_iter().find(|w| w.slug == slug) {
            return Ok((found, from));
        }
        let error = CliError::failure(format!(
            "no workspace {slug:?} on {server}; its workspaces are: {}",
            slugs.join(", ")
        ));
        return Err(match (from, slugs.first()) {
            (WorkspaceFrom::Saved, Some(first)) => CliError::failure(format!(
                "the default workspace {slug:?} (set with `custory-mcp workspaces use`) is no \
                 longer on {server}; its workspaces are: {}",
                slugs.join(", ")
            ))
            .hint(format!("choose another: `custory-mcp workspaces use {first}`")),
            _ => error.hint("pass one of them with --workspace (or set CUSTORY_WORKSPACE)"),
        }
        .into());
    }
    match <[Workspace; 1]>::try_from(workspaces) {
        Ok([only]) => Ok((only, WorkspaceFrom::Only)),
        Err(workspaces) if workspaces.is_empty() => {
            Err(CliError::failure(format!("the server at {server} has no workspaces"))
                .hint("create one with `custory-mcp workspaces create NAME`")
                .into())
        }
        Err(_) => Err(CliError::usage(format!(
            "the server has several workspaces ({}) and no default is set",
            slugs.join(", ")
        ))
        .hint(format!(
            "pass --workspace {first} for this command, or make one the default: \
             `custory-mcp workspaces use {first}`",
            first = slugs[0]
        ))
        .into()),
    }
}

/// Whether KEY is a key's id or displayed prefix, which name one key on the whole server.
fn names_its_workspace(reference: &str) -> bool {
    let reference = reference.trim();
    reference.starts_with("key_") || reference.starts_with("cst_")
}

/// The admin API client and the workspace a command acts on ([`choose_workspace`]).
pub struct WorkspaceClient {
    pub client: AdminClient,
    pub workspace: Workspace,
}

impl WorkspaceClient {
    /// The client and the workspace ([`choose_workspace`]); for a command about KEY (when
    /// `reference` is one), a key id or prefix names its workspace, so unless `--workspace` (or `CUSTORY_WORKSPACE`) says otherwise the key is looked for in
    /// every workspace, and its own is the one acted on.
    pub fn connect_for_key(global: &GlobalArgs, reference: Option<&str>) -> anyhow::Result<Self> {
        let client = AdminClient::connect(&global.server)?;
        let workspaces = client.workspaces()?;
        if let Some(reference) = reference.filter(|r| names_its_workspace(r))
            && global.workspace.is_none()
            && workspaces.len() > 1
        {
            let query =
                KeysQuery { reference: Some(reference.trim().to_owned()), ..KeysQuery::default() };
            let mut holders = Vec::new();
            for workspace in &workspaces {
                let found = client.keys(&workspace.slug, &query, &PageQuery::default())?;
                if resolve_key(&found.keys, reference).is_ok() {
                    holders.push(workspace.clone());
                }
            }
            if let Ok([workspace]) = <[Workspace; 1]>::try_from(holders) {
                return Ok(Self { client, workspace });
            }
        }
        let (workspace, _) =
            choose_workspace(client.server(), workspaces, workspace_asked(global)?)?;
        Ok(Self { client, workspace })
    }

    /// The key a person means by KEY: its id, name or displayed prefix.
    pub fn find_key(&self, reference: &str) -> anyhow::Result<Key> {
        let query =
            KeysQuery { reference: Some(reference.trim().to_owned()), ..KeysQuery::default() };
        let found = self.client.keys(&self.workspace.slug, &query, &PageQuery::default())?;
        resolve_key(&found.keys, reference)
    }

    /// The token of a key saved with `keys create --save`, found by KEY.
    pub fn saved_token(&self, reference: &str) -> anyhow::Result<PlainToken> {
        let key = self.find_key(reference)?;
        let account = secrets::key_account(self.client.server(), &key.id);
        CredentialStore::open()?.get(&account)?.ok_or_else(|| {
            CliError::failure(format!(
                "the token of {:?} ({}) is not saved on this machine",
                key.name, key.prefix
            ))
            .hint(
                "tokens are shown only once; create a key with `custory-mcp keys create --save`, \
                 or pass the token through an environment variable with --token-env",
            )
            .into()
        })
    }
}

/// `rows` of the keys of `workspace` that `filter` selects, newest first; and where the rest
/// start, if some were left. Reading thousands says how far it got.
pub fn list_keys(
    client: &AdminClient,
    workspace: &str,
    filter: &KeysQuery,
    rows: Rows,
    printer: Printer,
) -> anyhow::Result<(Vec<Key>, Option<String>)> {
    let listed = pages(
        rows,
        |page| client.keys(workspace, filter, page),
        |read| {
            if read.is_multiple_of(10_000) {
                printer.info(&format!("{read} keys so far…"));
            }
        },
    )?;
    Ok((listed.keys, listed.next_cursor))
}

/// Finds KEY among `keys` by id, name or displayed prefix. Several matches are narrowed to the
/// one active key among them; otherwise the error lists the candidates.
pub fn resolve_key(keys: &[Key], reference: &str) -> anyhow::Result<Key> {
    let reference = reference.trim();
    if let Some(key) = keys.iter().find(|k| k.id == reference) {
        return Ok(key.clone());
    }
    let matches: Vec<&Key> =
        keys.iter().filter(|k| k.name == reference || k.prefix == reference).collect();
    let active: Vec<&Key> =
        matches.iter().copied().filter(|k| k.status == KeyStatus::Active).collect();
    match (matches.as_slice(), active.as_slice()) {
        ([only], _) | (_, [only]) => Ok((*only).clone()),
        ([], _) => {
            Err(CliError::failure(format!("no key matches {reference:?} (by id, name or prefix)"))
                .hint("`custory-mcp keys list` shows the workspace's keys")
                .into())
        }
        (several, _) => {
            let lines: Vec<String> = several
                .iter()
                .map(|k| format!("  {}  {}  {}  {}", k.id, k.prefix, k.status.as_str(), k.name))
                .collect();
            Err(CliError::failure(format!(
                "{reference:?} matches {} keys:\n{}",
                several.len(),
                lines.join("\n")
            ))
            .hint("pass the key's id instead")
            .into())
        }
    }
}

/// `text` as one POSIX shell word: bare when it is safe, else in single quotes (so that
/// `${VAR}` reaches the program unexpanded).
pub fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if safe { text.to_owned() } else { format!("'{}'", text.replace('\'', r"'\''")) }
}

/// What an import wrote: `1 journey, 4 stages, 12 steps, 9 items, 7 links, 1 persona` (no
/// comments said when there are none).
pub fn holds(contents: &ImportCounts) -> String {
    let mut parts = vec![
        (contents.journeys, "journey"),
        (contents.stages, "stage"),
        (contents.steps, "step"),
        (contents.items, "item"),
        (contents.links, "link"),
    ];
    if contents.comments > 0 {
        parts.push((contents.comments, "comment"));
    }
    parts.push((contents.personas, "persona"));
    counted(&parts)
}

/// `n thing` or `n things`, joined with commas.
pub fn counted(parts: &[(u64, &str)]) -> String {
    parts
        .iter()
        .map(|&(n, one)| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words_keep_variables_for_the_program() {
        assert_eq!(shell_quote("https://h/api/mcp"), "https://h/api/mcp");
        assert_eq!(shell_quote("http://127.0.0.1:8787/api/mcp"), "http://127.0.0.1:8787/api/mcp");
        assert_eq!(shell_quote("Authorization: Bearer ${X}"), "'Authorization: Bearer ${X}'");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
