//! What several commands share: the admin API client bound to the workspace a command acts
//! on, finding a key by what a person calls it, the tokens saved with `keys create --save`,
//! and shell quoting for the commands this CLI prints.

use crate::api::{ImportCounts, Key, KeyStatus, Workspace};
use crate::client::{AdminClient, KeysQuery, PageQuery, Rows, WorkspacesQuery, pages};
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

/// How many workspaces a message that names some shows at most.
const WORKSPACES_NAMED: u32 = 3;

/// The workspace to act on: the one `asked` (see [`workspace_asked`]), looked up by its slug,
/// else the server's only one (read from the first page of the list, never all of it). Several
/// and none asked: an error naming the command that sets a default, with a real slug. An
/// unknown slug: an error naming at most a few close ones and how to list them.
pub fn choose_workspace(
    client: &AdminClient,
    asked: Option<(String, WorkspaceFrom)>,
) -> anyhow::Result<(Workspace, WorkspaceFrom)> {
    let server = client.server();
    if let Some((slug, from)) = asked {
        if let Some(found) = client.workspace(&slug)? {
            return Ok((found, from));
        }
        let close = close_workspaces(client, &slug);
        let close = match close.as_slice() {
            [] => String::new(),
            [only] => format!("; did you mean {only}?"),
            several => format!("; close ones: {}", several.join(", ")),
        };
        return Err(match from {
            WorkspaceFrom::Saved => CliError::failure(format!(
                "the default workspace {slug:?} (set with `custory-mcp workspaces use`) is no \
                 longer on {server}{close}"
            ))
            .hint(
                "`custory-mcp workspaces list` shows them; choose another with `custory-mcp \
                 workspaces use SLUG`",
            ),
            _ => CliError::failure(format!("no workspace {slug:?} on {server}{close}")).hint(
                "`custory-mcp workspaces list` shows them; pass one with --workspace (or set \
                 CUSTORY_WORKSPACE)",
            ),
        }
        .into());
    }
    let page = PageQuery { limit: Some(WORKSPACES_NAMED + 1), cursor: None };
    let listed = client.workspaces(&WorkspacesQuery::default(), &page)?;
    let more = listed.next_cursor.is_some() || listed.workspaces.len() > WORKSPACES_NAMED as usize;
    let mut slugs: Vec<String> =
        listed.workspaces.iter().take(WORKSPACES_NAMED as usize).map(|w| w.slug.clone()).collect();
    match <[Workspace; 1]>::try_from(listed.workspaces) {
        Ok([only]) => Ok((only, WorkspaceFrom::Only)),
        Err(workspaces) if workspaces.is_empty() => {
            Err(CliError::failure(format!("the server at {server} has no workspaces"))
                .hint("create one with `custory-mcp workspaces create NAME`")
                .into())
        }
        Err(_) => {
            let first = slugs[0].clone();
            if more {
                slugs.push("…".to_owned());
            }
            Err(CliError::usage(format!(
                "the server has several workspaces ({}) and no default is set",
                slugs.join(", ")
            ))
            .hint(format!(
                "pass --workspace {first} for this command, or make one the default: \
                 `custory-mcp workspaces use {first}`"
            ))
            .into())
        }
    }
}

/// At most [`WORKSPACES_NAMED`] slugs close to `slug` (within two edits, among those sharing
/// its first letter): one bounded page, never the whole list. Nothing when that cannot be read.
fn close_workspaces(client: &AdminClient, slug: &str) -> Vec<String> {
    let Some(first) = slug.chars().next() else { return Vec::new() };
    let filter = WorkspacesQuery { prefix: Some(first.to_string()) };
    let page = PageQuery { limit: Some(200), cursor: None };
    let Ok(listed) = client.workspaces(&filter, &page) else { return Vec::new() };
    let mut close: Vec<(usize, String)> = listed
        .workspaces
        .into_iter()
        .map(|w| (strsim::levenshtein(&w.slug, slug), w.slug))
        .filter(|(distance, _)| *distance <= 2)
        .collect();
    close.sort();
    close.into_iter().take(WORKSPACES_NAMED as usize).map(|(_, slug)| slug).collect()
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
        if let Some(reference) = reference.filter(|r| names_its_workspace(r))
            && global.workspace.is_none()
        {
            // One lookup on the whole server, however many workspaces it has.
            let found = client.find_keys(reference.trim())?;
            let keys: Vec<Key> = found.keys.iter().map(|found| found.key.clone()).collect();
            if let Ok(key) = resolve_key(&keys, reference)
                && let Some(holder) = found.keys.into_iter().find(|found| found.key.id == key.id)
            {
                return Ok(Self { client, workspace: holder.workspace });
            }
        }
        let (workspace, _) = choose_workspace(&client, workspace_asked(global)?)?;
        Ok(Self { client, workspace })
    }

    /// The key a person means by KEY: its id, name or displayed prefix (a name in any case).
    pub fn find_key(&self, reference: &str) -> anyhow::Result<Key> {
        // A token is not sent anywhere as a key's name (it would land in the server's logs).
        not_a_token(reference)?;
        let query =
            KeysQuery { reference: Some(reference.trim().to_owned()), ..KeysQuery::default() };
        let found = self.client.keys(&self.workspace.slug, &query, &PageQuery::default())?;
        if !found.keys.is_empty() {
            return resolve_key(&found.keys, reference);
        }
        // No exact match: the newest keys, for a name in another case or a near miss.
        let (keys, _) = list_keys(
            &self.client,
            &self.workspace.slug,
            &KeysQuery::default(),
            Rows::First(NEAR_MATCH_KEYS),
            Printer::new(false, true, crate::output::ColorChoice::Never),
        )?;
        resolve_key(&keys, reference)
    }

    /// The token of a key saved with `keys create --save`, found by KEY. A revoked key's was
    /// removed when it was revoked: the error says so, when, and what to run instead.
    pub fn saved_token(&self, reference: &str, global: &GlobalArgs) -> anyhow::Result<PlainToken> {
        let key = self.find_key(reference)?;
        // A new key of the same name and expiry, saved: what replaces a revoked or lost one.
        let create = || {
            command_line(
                global,
                &[
                    "keys",
                    "create",
                    "--name",
                    &key.name,
                    "--expires",
                    key.expires.as_str(),
                    "--save",
                ],
            )
        };
        if key.status == KeyStatus::Revoked {
            let when = key.revoked_at.map_or_else(String::new, |at| {
                format!(
                    " {} ({})",
                    crate::output::relative(at, chrono::Utc::now()),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            });
            return Err(CliError::failure(format!(
                "{:?} ({}) was revoked{when}: its token no longer works, and revoking removed \
                 it from this machine",
                key.name, key.prefix
            ))
            .hint(format!(
                "a revoked key cannot be brought back; create a new one: `{}`, then give its \
                 token to the client (`{}`)",
                create(),
                command_line(global, &["config", "cursor", "--key", &key.name, "--write"])
            ))
            .into());
        }
        let account = secrets::key_account(self.client.server(), &key.id);
        CredentialStore::open()?.get(&account)?.ok_or_else(|| {
            CliError::failure(format!(
                "the token of {:?} ({}) is not saved on this machine",
                key.name, key.prefix
            ))
            .hint(format!(
                "tokens are shown only once: pass the token through an environment variable \
                 with --token-env VAR, or replace the key with one saved here: `{}` (it replaces \
                 the old token)",
                command_line(global, &["keys", "rotate", &key.name, "--save"])
            ))
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
    not_a_token(reference)?;
    let reference = reference.trim();
    if let Some(key) = keys.iter().find(|k| k.id == reference) {
        return Ok(key.clone());
    }
    let mut matches: Vec<&Key> =
        keys.iter().filter(|k| k.name == reference || k.prefix == reference).collect();
    // Names are matched in any case when none matches as typed.
    if matches.is_empty() {
        let lower = reference.to_lowercase();
        matches = keys.iter().filter(|k| k.name.to_lowercase() == lower).collect();
    }
    let active: Vec<&Key> =
        matches.iter().copied().filter(|k| k.status == KeyStatus::Active).collect();
    match (matches.as_slice(), active.as_slice()) {
        ([only], _) | (_, [only]) => Ok((*only).clone()),
        ([], _) => {
            let hint = match near_match(keys, reference) {
                // In single quotes, as a shell word: it can be pasted back as KEY.
                Some(near) => format!("did you mean '{}'?", near.name.replace('\'', r"'\''")),
                None => {
                    "`custory-mcp keys list --status all` shows the workspace's keys".to_owned()
                }
            };
            Err(CliError::failure(format!("no key matches {reference:?} (by id, name or prefix)"))
                .hint(hint)
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

/// How many of the newest keys a name that matches no key exactly is compared with.
const NEAR_MATCH_KEYS: u32 = 200;

/// Refuses a token given where a key's id, name or prefix goes: it is not echoed back, nor
/// sent to the server, and the message says what to do with it.
fn not_a_token(reference: &str) -> anyhow::Result<()> {
    let text = reference.trim().trim_start_matches("Bearer ").trim_matches(['"', '\'']);
    let looks = (text.starts_with("cst_") || text.starts_with("csa_"))
        && text.len() > crate::token::DISPLAY_PREFIX_LEN;
    if !looks {
        return Ok(());
    }
    let prefix: String = text.chars().take(crate::token::DISPLAY_PREFIX_LEN).collect();
    Err(CliError::usage(format!(
        "that looks like a whole token ({prefix}…), not a key's id, name or prefix; it is not \
         shown here, and was not sent anywhere"
    ))
    .hint(format!(
        "name the key by its prefix ({prefix}); to revoke the key a token belongs to, pipe the \
         token in: `printf %s \"$TOKEN\" | custory-mcp keys revoke --token-stdin`"
    ))
    .into())
}

/// The one key whose name is within two edits of `reference` (in any case), if just one is.
fn near_match<'a>(keys: &'a [Key], reference: &str) -> Option<&'a Key> {
    let lower = reference.to_lowercase();
    let near: Vec<&Key> =
        keys.iter().filter(|k| strsim::levenshtein(&k.name.to_lowercase(), &lower) <= 2).collect();
    let mut names: Vec<&str> = near.iter().map(|k| k.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [_] => near.first().copied(),
        _ => None,
    }
}

pub use crate::text::shell_quote;

/// `keys create` as the next step after a workspace is made: complete, so it runs as printed
/// (on a terminal or not), with an example name to change.
pub const CREATE_KEY: [&str; 7] =
    ["keys", "create", "--name", "Cursor on MacBook", "--expires", "90d", "--save"];

/// A command this CLI prints for a person to run, runnable exactly as printed: `custory-mcp`,
/// then the global options of this run that the next one needs and would not otherwise get
/// (`--server`, `--workspace`, `--ca-cert` given on the command line, not inherited from the
/// environment), then `args`, each quoted as one POSIX shell word. `args` that name
/// `--workspace` themselves keep theirs.
pub fn command_line(global: &GlobalArgs, args: &[&str]) -> String {
    use super::Given;
    let mut words: Vec<String> = vec!["custory-mcp".to_owned()];
    if global.server_from == Given::Flag {
        words.extend(["--server".to_owned(), global.server.clone()]);
    }
    if let Some(path) = &global.ca_cert {
        let path = path.display().to_string();
        if !std::env::var("CUSTORY_CA_CERT").is_ok_and(|v| v == path) {
            words.extend(["--ca-cert".to_owned(), path]);
        }
    }
    if let Some(slug) = &global.workspace
        && global.workspace_from == Given::Flag
        && !args.contains(&"--workspace")
    {
        words.extend(["--workspace".to_owned(), slug.clone()]);
    }
    words.extend(args.iter().map(|&arg| arg.to_owned()));
    words.iter().map(|word| shell_quote(word)).collect::<Vec<_>>().join(" ")
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
    use super::{command_line, shell_quote};
    use crate::cli::Given;

    #[test]
    fn printed_commands_are_one_word_per_argument_with_the_options_they_need() {
        let global = |server: &str, workspace: Option<&str>| crate::cli::GlobalArgs {
            server: server.to_owned(),
            workspace: workspace.map(str::to_owned),
            json: false,
            color: crate::output::ColorChoice::Never,
            quiet: false,
            verbose: 0,
            ca_cert: None,
            server_from: if server == crate::cli::DEFAULT_SERVER {
                Given::Default
            } else {
                Given::Flag
            },
            workspace_from: if workspace.is_some() { Given::Flag } else { Given::Default },
        };
        let plain = global(crate::cli::DEFAULT_SERVER, None);
        assert_eq!(
            command_line(&plain, &["keys", "rotate", "Bob's \"old\" laptop"]),
            r#"custory-mcp keys rotate 'Bob'\''s "old" laptop'"#
        );
        let elsewhere = global("http://127.0.0.1:9999", Some("acme"));
        assert_eq!(
            command_line(&elsewhere, &["test", "--key", "Old laptop"]),
            "custory-mcp --server http://127.0.0.1:9999 --workspace acme test --key 'Old laptop'"
        );
        // A command naming its workspace keeps it, and names it once.
        assert_eq!(
            command_line(&elsewhere, &["--workspace", "beta", "audit"]),
            "custory-mcp --server http://127.0.0.1:9999 --workspace beta audit"
        );
    }

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

/// Journey ids (`jrn_…`, what keys and the policy store) shown as the slugs people type.
#[derive(Debug, Default)]
pub struct JourneyNames(std::collections::HashMap<String, String>);

impl JourneyNames {
    /// The workspace's journeys, read only when one of `texts` holds an id (a few pages at
    /// most); none when they cannot be read: the ids are shown then, which are right too.
    pub fn fetch(client: &AdminClient, workspace: &str, texts: &[&str]) -> Self {
        let mut names = std::collections::HashMap::new();
        if !texts.iter().any(|text| text.contains("jrn_")) {
            return Self(names);
        }
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let Ok(page) = client.journeys(workspace, cursor.as_deref()) else { break };
            names.extend(page.journeys.into_iter().map(|j| (j.id, j.slug)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Self(names)
    }

    /// `text` with each journey id it holds replaced by that journey's slug.
    pub fn name(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (id, slug) in &self.0 {
            out = out.replace(id.as_str(), slug);
        }
        out
    }
}
