//! `custory-mcp keys …`: create, list, show, revoke and rotate MCP keys.

use chrono::Utc;
use serde_json::json;

use super::shared::{WorkspaceClient, command_line, list_keys, resolve_key};
use super::{GlobalArgs, completions, config, hygiene, prompt};
use crate::api::{
    self, Access, CreateKey, CreatedKeyResponse, ExpiryPolicy, Key, KeyFlag, KeyOrigin, KeyStatus,
    KeyUsageTotals, OriginKind, PolicyRule, Workspace,
};
use crate::client::{AdminClient, AuditQuery, KeysQuery, PageQuery, Rows, UsageQuery};
use crate::error::{CliError, ExitStatus};
use crate::output::{Column, Printer, count, relative, table};
use crate::period::Period;
use crate::secrets::{self, CredentialStore};
use crate::text::size_text;
use crate::token::PlainToken;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints its token once
    Create(CreateArgs),
    /// List the workspace's keys
    List(ListArgs),
    /// Show one key in full, with its recent activity
    Show(ShowArgs),
    /// Revoke a key: its very next request is refused
    Revoke(RevokeArgs),
    /// Replace a key with a new one of the same name and access; the old one is revoked
    Rotate(RotateArgs),
    /// Narrow a key's access, tools, journeys or addresses (never widen: make a new key)
    Narrow(NarrowArgs),
    /// What needs a decision, per workspace: shared, stale, never-used and expiring keys, and
    /// read-write keys that only read; with the command that settles each
    #[command(after_help = "\
Examples:
  custory-mcp keys review
  custory-mcp --workspace acme keys review --json")]
    Review,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp keys create
  custory-mcp keys create --name \"Cursor on MacBook\" --expires 90d --save
  custory-mcp keys create --name \"CI reader\" --expires 30d --read-only \\
      --no-save > token.txt")]
pub struct CreateArgs {
    /// A name that says where the key is used, e.g. "Cursor on MacBook"
    #[arg(long)]
    pub name: Option<String>,
    /// When the key expires [default: the workspace policy's default expiry, if it has one]
    #[arg(long, value_enum)]
    pub expires: Option<ExpiryPolicy>,
    /// Only read tools: the key can read journey context but change nothing
    #[arg(long)]
    pub read_only: bool,
    /// Only these tools, by name or group (read, map, items, comments, personas),
    /// comma-separated: tools/list shows only them, any other is unknown to the key
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Only these journeys (slugs or ids, comma-separated): everything outside them is as if it
    /// did not exist for the key
    #[arg(long, value_name = "SLUGS", value_delimiter = ',')]
    pub journeys: Option<Vec<String>>,
    /// Only from these client addresses (CIDRs or addresses, IPv4 or IPv6, comma-separated):
    /// elsewhere its calls are refused (403)
    #[arg(long = "allow-ip", value_name = "CIDRS", value_delimiter = ',')]
    pub allow_ip: Option<Vec<String>>,
    /// Keep the token in the OS keyring (or a 0600 file) for `config --key` and `test --key`
    #[arg(long)]
    pub save: bool,
    /// Do not offer to store the token (on a terminal, `keys create` offers to write it into a
    /// client's config or the keyring)
    #[arg(long, conflicts_with = "save")]
    pub no_save: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
A table shows the active keys unless --status says otherwise, and says how many others there are; \
--json lists every key unless --status says otherwise.

Examples:
  custory-mcp keys list
  custory-mcp keys list --status all
  custory-mcp keys list --json --status revoked")]
pub struct ListArgs {
    /// Show only keys with this status, or every key (`all`) [default: active; with --json: all]
    #[arg(long, value_enum, value_name = "STATUS")]
    pub status: Option<StatusFilter>,
    /// Show at most this many keys, newest first
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Show every key, however many pages that takes
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Only keys used by more than one client, or from more than one address, in the last 7
    /// days (one key per client or machine)
    #[arg(long)]
    pub shared: bool,
    /// Only the keys you created (with the owner credential: the administrator's)
    #[arg(long)]
    pub mine: bool,
    /// Only active keys that expire within 7 days (rotate them: `keys rotate KEY`)
    #[arg(long)]
    pub expiring: bool,
}

/// `keys list --status`: one status, or every key. (`--all` already means every page.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    Active,
    Expired,
    Revoked,
    All,
}

impl StatusFilter {
    /// The status the admin API filters on (none for `all`).
    fn status(self) -> Option<KeyStatus> {
        match self {
            Self::Active => Some(KeyStatus::Active),
            Self::Expired => Some(KeyStatus::Expired),
            Self::Revoked => Some(KeyStatus::Revoked),
            Self::All => None,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp keys show
  custory-mcp keys show \"Cursor on MacBook\"
  custory-mcp keys show cst_7fQ2kd9X --json")]
pub struct ShowArgs {
    /// The key: its id, name or prefix (on a terminal, omit it to pick from the newest keys)
    #[arg(add = completions::any_keys())]
    pub key: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp keys revoke
  custory-mcp keys revoke \"Old laptop\" --yes
  custory-mcp keys revoke --unused-for 90d --dry-run
  pbpaste | custory-mcp keys revoke --token-stdin")]
pub struct RevokeArgs {
    /// The key: its id, name or prefix (on a terminal, omit it to pick from the active keys)
    #[arg(conflicts_with_all = ["token_stdin", "unused_for", "never_used"], add = completions::active_keys())]
    pub key: Option<String>,
    /// Revoke the key a found token belongs to, in whichever workspace it is: the token is
    /// read from stdin (a leak: you have the token, not the key's name)
    #[arg(long, conflicts_with_all = ["unused_for", "never_used"])]
    pub token_stdin: bool,
    /// Revoke, in bulk, every active key not used for this long (24h, 30d, 90d…; a key never
    /// used counts from its creation); the list is shown and confirmed first
    #[arg(long, value_name = "PERIOD")]
    pub unused_for: Option<Period>,
    /// Only keys never used (created more than --unused-for ago, 7 days by default)
    #[arg(long)]
    pub never_used: bool,
    /// With --unused-for or --never-used: show what would be revoked, revoke nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp keys rotate
  custory-mcp keys rotate \"Cursor on MacBook\" --yes")]
pub struct RotateArgs {
    /// The key: its id, name or prefix (on a terminal, omit it to pick from the active keys)
    #[arg(add = completions::active_keys())]
    pub key: Option<String>,
    /// Keep the new token in the OS keyring (or a 0600 file) for `config --key` and `test
    /// --key` (a token saved for the old key moves to the new one anyway)
    #[arg(long)]
    pub save: bool,
    /// Put the new token in the client config files (yours, and the project's in this
    /// directory) that hold the old one, without asking
    #[arg(long, conflicts_with = "no_rewrite_configs")]
    pub rewrite_configs: bool,
    /// Leave the config files that hold the old token as they are (they are listed)
    #[arg(long)]
    pub no_rewrite_configs: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
What is not given stays as it is; each limit given must lie within the key's own.

Examples:
  custory-mcp keys narrow \"Cursor on MacBook\" --read-only
  custory-mcp keys narrow CI --tools read --journeys trial-to-paid")]
pub struct NarrowArgs {
    /// The key: its id, name or prefix
    #[arg(add = completions::active_keys())]
    pub key: String,
    /// Take the write tools away
    #[arg(long)]
    pub read_only: bool,
    /// Only these tools (names or groups, comma-separated), among the key's
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Only these journeys (slugs or ids, comma-separated), among the key's
    #[arg(long, value_name = "SLUGS", value_delimiter = ',')]
    pub journeys: Option<Vec<String>>,
    /// Only from these networks (CIDRs, comma-separated), inside the key's
    #[arg(long = "allow-ip", value_name = "CIDRS", value_delimiter = ',')]
    pub allow_ip: Option<Vec<String>>,
}

/// How many of the newest keys a picker offers.
const PICKER_KEYS: u32 = 100;
/// How many revoked (and expired) keys `keys list` counts to say how many it leaves out: one
/// page, so the count costs a request however many there are.
const HIDDEN_COUNTED: u32 = 100;

pub fn run(
    command: KeysCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    // A found token names its own workspace.
    if let KeysCommand::Revoke(RevokeArgs { token_stdin: true, .. }) = command {
        // Checked on this machine first: a mistyped token needs no server.
        let token = found_token()?;
        return revoke_token(&AdminClient::connect(&global.server)?, &token, global, printer);
    }
    if let KeysCommand::Review = command {
        return hygiene::review(global, printer);
    }
    let reference = match &command {
        KeysCommand::Show(args) => args.key.as_deref(),
        KeysCommand::Revoke(args) => args.key.as_deref(),
        KeysCommand::Rotate(args) => args.key.as_deref(),
        KeysCommand::Narrow(args) => Some(args.key.as_str()),
        _ => None,
    };
    let admin = WorkspaceClient::connect_for_key(global, reference)?;
    let ctx =
        Ctx { client: &admin.client, workspace: &admin.workspace, admin: &admin, printer, global };
    match command {
        KeysCommand::Create(args) => ctx.create(args),
        KeysCommand::List(args) => ctx.list(args),
        KeysCommand::Show(args) => ctx.show(args.key.as_deref()),
        KeysCommand::Revoke(args) if args.unused_for.is_some() || args.never_used => {
            hygiene::revoke_unused(
                &admin,
                args.unused_for,
                args.never_used,
                args.dry_run,
                args.yes,
                global,
                printer,
            )
        }
        KeysCommand::Revoke(args) if args.dry_run => {
            Err(CliError::usage("--dry-run goes with --unused-for or --never-used (a bulk revoke)")
                .hint("to see one key first: custory-mcp keys show KEY")
                .into())
        }
        KeysCommand::Revoke(args) => ctx.revoke(args),
        KeysCommand::Rotate(args) => ctx.rotate(args),
        KeysCommand::Narrow(args) => ctx.narrow(args),
        KeysCommand::Review => unreachable!("answered above"),
    }
}

struct Ctx<'a> {
    client: &'a AdminClient,
    workspace: &'a Workspace,
    admin: &'a WorkspaceClient,
    printer: Printer,
    global: &'a GlobalArgs,
}

impl Ctx<'_> {
    /// `text` with the journey ids it holds shown as their slugs.
    fn named(&self, text: &str) -> String {
        super::shared::JourneyNames::fetch(self.client, &self.workspace.slug, &[text]).name(text)
    }

    /// On a terminal, the key a person picks among `keys` (only the active ones when
    /// `active_only`); elsewhere, the error that says KEY (`what`) is needed.
    fn pick(
        &self,
        keys: &[Key],
        question: &str,
        what: &str,
        active_only: bool,
    ) -> anyhow::Result<Key> {
        if !prompt::interactive() {
            return Err(prompt::missing(what, "the key's name, id or prefix"));
        }
        let offered: Vec<&Key> =
            keys.iter().filter(|k| !active_only || k.status == KeyStatus::Active).collect();
        if offered.is_empty() {
            let which = if active_only { "active keys" } else { "keys" };
            return Err(CliError::failure(format!("{} has no {which}", self.workspace.slug))
                .hint(format!("create one with `{}`", self.command(&super::shared::CREATE_KEY)))
                .into());
        }
        let now = Utc::now();
        let items: Vec<String> = offered
            .iter()
            .map(|k| {
                let status =
                    if active_only { String::new() } else { format!("  {}", k.status.as_str()) };
                prompt::entry(
                    &k.name,
                    &format!("  {}{status}  last used {}", k.prefix, last_used(k, now)),
                )
            })
            .collect();
        Ok(offered[prompt::select(question, &items, 0)?].clone())
    }

    /// `custory-mcp ARGS…` as a person runs it next (see [`command_line`]).
    fn command(&self, args: &[&str]) -> String {
        command_line(self.global, args)
    }

    /// The newest keys, up to a page: for pickers.
    fn keys(&self) -> anyhow::Result<Vec<Key>> {
        let (keys, _) = list_keys(
            self.client,
            &self.workspace.slug,
            &KeysQuery::default(),
            Rows::First(PICKER_KEYS),
            self.printer,
        )?;
        Ok(keys)
    }

    /// `limit` keys, or every key with `all`, of `status`; and where the rest start, if some
    /// were left.
    fn listed(
        &self,
        args: &ListArgs,
        status: Option<KeyStatus>,
    ) -> anyhow::Result<(Vec<Key>, Option<String>)> {
        let filter = KeysQuery {
            status,
            shared: args.shared,
            mine: args.mine,
            expiring: args.expiring,
            ..KeysQuery::default()
        };
        let rows = if args.all { Rows::All } else { Rows::First(args.limit) };
        list_keys(self.client, &self.workspace.slug, &filter, rows, self.printer)
    }

    /// What the table of active keys leaves out, e.g. `2 revoked keys and 1 expired key`;
    /// `None` when nothing is. Each status is counted up to [`HIDDEN_COUNTED`] (`100+`).
    fn hidden(&self, args: &ListArgs) -> anyhow::Result<Option<String>> {
        let mut parts = Vec::new();
        for status in [KeyStatus::Revoked, KeyStatus::Expired] {
            let filter = KeysQuery {
                status: Some(status),
                shared: args.shared,
                mine: args.mine,
                ..KeysQuery::default()
            };
            if args.expiring {
                // Only active keys expire soon: none is left out.
                continue;
            }
            let page = PageQuery { limit: Some(HIDDEN_COUNTED), cursor: None };
            let found = self.client.keys(&self.workspace.slug, &filter, &page)?;
            let n = found.keys.len();
            let (one, many) = match status {
                KeyStatus::Revoked => ("revoked key", "revoked keys"),
                _ => ("expired key", "expired keys"),
            };
            match (n, found.next_cursor) {
                (0, _) => {}
                (n, Some(_)) => parts.push(format!("{n}+ {many}")),
                (n, None) => parts.push(count(n, one, many)),
            }
        }
        Ok((!parts.is_empty()).then(|| parts.join(" and ")))
    }

    fn create(&self, args: CreateArgs) -> anyhow::Result<ExitStatus> {
        let name = match args.name {
            Some(name) => api::validate_name(&name)
                .map_err(|m| {
                    CliError::usage(m).hint("pass a name like --name \"Cursor on MacBook\"")
                })?
                .to_owned(),
            None if prompt::interactive() => {
                self.printer.info("Name the key after where it is used: one key per client or machine, e.g. \"Cursor on MacBook\".");
                prompt::text("Key name", |v| api::validate_name(v).map(drop))?.trim().to_owned()
            }
            None => return Err(prompt::missing("a key name", "--name \"Cursor on MacBook\"")),
        };
        // What is left out comes from the workspace policy (read only when something is).
        let policy = if args.expires.is_none() { self.policy() } else { None };
        let expires = match args.expires {
            Some(expiry) => Some(expiry),
            None if prompt::interactive() => {
                let allowed =
                    policy.as_ref().map_or(ExpiryPolicy::ALL.to_vec(), |p| p.allowed_expiries());
                let choices: Vec<String> = allowed.iter().map(|e| e.lifetime()).collect();
                // The policy's default, else 90 days, unless the person picks another.
                let wanted =
                    policy.as_ref().and_then(|p| p.default_expiry).unwrap_or(ExpiryPolicy::Days90);
                let default = allowed.iter().position(|&p| p == wanted).unwrap_or(0);
                Some(allowed[prompt::select("Expires after", &choices, default)?])
            }
            // The server gives the policy's default.
            None if policy
                .as_ref()
                .is_some_and(|p| p.fill(None, None, Default::default()).0.is_some()) =>
            {
                None
            }
            None => {
                let flag = format!("--expires {}", ExpiryPolicy::NAMES.join("|"));
                return Err(prompt::missing("an expiry", &flag));
            }
        };
        let access = args.read_only.then_some(Access::ReadOnly);
        let body = CreateKey {
            name,
            expires,
            access,
            tools: args.tools,
            journeys: args.journeys,
            allow_ip: args.allow_ip,
        };
        let created = match self.client.create_key(&self.workspace.slug, &body) {
            Ok(created) => created,
            Err(error) => return Err(self.refused(error, &body)),
        };
        let saved = if args.save { Some(self.save(&created)?) } else { None };
        self.show_new_token(&created, saved.as_ref())?;
        // The one moment the token can be stored: on a terminal, offer to do it (unless -q or
        // --no-save says not to ask).
        let offer = !(args.save || args.no_save || self.printer.json || self.printer.quiet);
        if offer && prompt::interactive() {
            hygiene::offer_to_store(
                &created.key,
                || self.save(&created),
                self.global,
                self.printer,
            )?;
        }
        Ok(ExitStatus::Success)
    }

    /// The workspace's key policy, if it can be read (`None`: as if there were none).
    fn policy(&self) -> Option<api::Policy> {
        self.client.policy(&self.workspace.slug).ok().map(|found| found.policy)
    }

    /// A create the workspace policy refused: the same error, with the command that makes a
    /// key the policy allows (each value it refused replaced by what it allows).
    fn refused(&self, error: anyhow::Error, asked: &CreateKey) -> anyhow::Error {
        let Some(failure) = error.downcast_ref::<CliError>() else { return error };
        if !failure.message.starts_with("the workspace policy") {
            return error;
        }
        let Some(policy) = self.policy() else { return error };
        let mut words: Vec<String> = vec!["keys".into(), "create".into(), "--name".into()];
        words.push(asked.name.clone());
        // The expiry asked if allowed, else the longest allowed (the nearest to it); none
        // asked: the policy's default.
        let allowed = policy.allowed_expiries();
        let expires = match asked.expires {
            Some(asked) if allowed.contains(&asked) => Some(asked),
            Some(_) => allowed.last().copied(),
            None => policy.default_expiry.or(allowed.last().copied()),
        };
        if let Some(expires) = expires {
            words.extend(["--expires".into(), expires.as_str().into()]);
        }
        if asked.access == Some(Access::ReadOnly) || policy.access == Some(Access::ReadOnly) {
            words.push("--read-only".into());
        }
        let tools = asked.tools.as_ref().map(|tools| {
            let asked = crate::mcp::expand_tool_names(tools).unwrap_or_default();
            match &policy.tools {
                Some(allowed) => {
                    let kept: Vec<String> =
                        asked.into_iter().filter(|t| allowed.contains(t)).collect();
                    if kept.is_empty() { allowed.clone() } else { kept }
                }
                None => asked,
            }
        });
        // Journeys are given as slugs and checked as ids by the server: replaced only when the
        // refusal was about them (so were addresses, which it normalizes).
        let about = |rule: PolicyRule| failure.message.contains(&format!(" {}", rule.as_str()));
        let journeys = match &policy.journeys {
            Some(allowed) if about(PolicyRule::Journeys) => Some(allowed.clone()),
            _ => asked.journeys.clone(),
        };
        let allow_ip = match &policy.allow_ip {
            Some(allowed) if about(PolicyRule::Addresses) => Some(allowed.clone()),
            _ => asked.allow_ip.clone(),
        };
        for (flag, list) in [("--tools", tools), ("--journeys", journeys), ("--allow-ip", allow_ip)]
        {
            if let Some(list) = list {
                words.extend([flag.into(), list.join(",")]);
            }
        }
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let hint = format!(
            "the workspace policy allows: {} (`{}` shows it)",
            self.command(&words),
            self.command(&["policy", "show"])
        );
        CliError::failure(failure.message.clone()).hint(hint).into()
    }

    /// Keeps a new token in the credential store under the key's id.
    fn save(&self, created: &CreatedKeyResponse) -> anyhow::Result<secrets::Saved> {
        let token = PlainToken::parse(&created.token)?;
        let account = secrets::key_account(self.client.server(), &created.key.id);
        CredentialStore::open()?.set(&account, &token)
    }

    /// The token on stdout (alone, so `TOKEN=$(…)` works); the rest on stderr.
    fn show_new_token(
        &self,
        created: &CreatedKeyResponse,
        saved: Option<&secrets::Saved>,
    ) -> anyhow::Result<()> {
        if self.printer.json {
            return self.printer.json(&json!({"key": created.key, "token": created.token}));
        }
        let key = &created.key;
        let now = Utc::now();
        let expiry = key.expires_at.map_or_else(
            || "never expires".to_owned(),
            |at| format!("expires {} ({})", relative(at, now), at.format("%Y-%m-%d")),
        );
        self.printer.info(&format!(
            "Created key {:?} ({}, {}, {expiry}) in {}.",
            key.name,
            key.prefix,
            key.access.as_str(),
            self.workspace.slug
        ));
        if !key.scopes.is_unlimited() {
            self.printer.info(&format!("Limited to {}.", self.named(&key.scopes.describe())));
        }
        self.printer.data(&created.token);
        let on_screen = std::io::IsTerminal::is_terminal(&std::io::stdout());
        if saved.is_none() && on_screen {
            self.printer.warn("this token is shown only once and cannot be recovered; store it now (if it is lost, create a new key)");
        } else if saved.is_none() {
            self.printer.info(
                "The token went to standard output, and only there: it cannot be shown again.",
            );
        }
        match saved {
            Some(saved) => {
                let config = self.command(&["config", "cursor", "--key", &key.name]);
                let test = self.command(&["test", "--key", &key.name]);
                self.printer.info(&format!("Saved to {saved}."));
                self.printer.info(&format!("Next: {config}   # or claude-code, vscode, codex, …"));
                self.printer.info(&format!("      {test}"));
            }
            None => {
                let config = self.command(&["config", "cursor"]);
                let test = self.command(&["test"]);
                self.printer.info("Next: export CUSTORY_MCP_TOKEN=<the token>, then");
                self.printer.info(&format!("      {config}   # or claude-code, vscode, codex, …"));
                self.printer.info(&format!("      {test}"));
            }
        }
        Ok(())
    }

    fn list(&self, args: ListArgs) -> anyhow::Result<ExitStatus> {
        // A person's table shows what is in use; a script's JSON, everything (as it always has).
        let filter = args.status.unwrap_or(if self.printer.json {
            StatusFilter::All
        } else {
            StatusFilter::Active
        });
        let (keys, next_cursor) = self.listed(&args, filter.status())?;
        if self.printer.json {
            match &next_cursor {
                Some(cursor) => self.printer.json(&json!({"keys": keys, "next_cursor": cursor}))?,
                None => self.printer.json(&json!({"keys": keys}))?,
            }
            return Ok(ExitStatus::Success);
        }
        if keys.is_empty() && args.shared {
            self.printer.info(&format!(
                "No key of {} was used by more than one client or address in the last 7 days.",
                self.workspace.slug
            ));
            return Ok(ExitStatus::Success);
        }
        // Without --status, the table says what it leaves out and how to see it.
        let hidden = match args.status {
            None => self.hidden(&args)?,
            Some(_) => None,
        };
        let all = self.command(&["keys", "list", "--status", "all"]);
        let hidden_line = |hidden: &str| format!("Not shown: {hidden} (`{all}` shows every key).");
        if keys.is_empty() {
            let which = filter.status().map_or(String::new(), |s| format!("{s} "));
            let slug = &self.workspace.slug;
            let create = self.command(
                &[&["--workspace", slug.as_str()], &super::shared::CREATE_KEY[..]].concat(),
            );
            self.printer.info(&format!("No {which}keys in {slug}. Create one with `{create}`."));
            if let Some(hidden) = &hidden {
                self.printer.info(&hidden_line(hidden));
            }
            return Ok(ExitStatus::Success);
        }
        let now = Utc::now();
        let rows = keys
            .iter()
            .map(|key| {
                vec![
                    key.name.clone(),
                    key.prefix.clone(),
                    // A limited key says so; `keys show` says how.
                    if key.scopes.is_unlimited() {
                        key.access.as_str().to_owned()
                    } else {
                        format!("{}, limited", key.access.as_str())
                    },
                    match &key.oauth_client {
                        Some(client) => {
                            format!("{}, via OAuth: {}", relative(key.created_at, now), client.name)
                        }
                        None => relative(key.created_at, now),
                    } + &made_by(key),
                    last_used(key, now),
                    key.expires_at.map_or_else(|| "never".to_owned(), |at| relative(at, now)),
                    status_text(key, now),
                ]
            })
            .collect();
        // At 80 columns and less, the creation time and the access go first: a name, a prefix
        // and a status are never cut.
        let columns = [
            Column::keep("Name"),
            Column::keep("Prefix"),
            Column::optional("Access", 2),
            Column::text("Created", 1),
            Column::text("Last used", 3),
            Column::optional("Expires", 4),
            Column::text("Status", 5),
        ];
        self.printer.data(&table(&columns, rows));
        if next_cursor.is_some() {
            self.printer.info(&format!(
                "Showing the newest {}; there are more: pass --all for every key, or --limit N.",
                count(keys.len(), "key", "keys")
            ));
        }
        if let Some(hidden) = &hidden {
            self.printer.info(&hidden_line(hidden));
        }
        Ok(ExitStatus::Success)
    }

    fn show(&self, reference: Option<&str>) -> anyhow::Result<ExitStatus> {
        let key = match reference {
            Some(reference) => self.admin.find_key(reference)?,
            None => self.pick(&self.keys()?, "Show which key?", "the KEY to show", false)?,
        };
        let ws = &self.workspace.slug;
        let recent = AuditQuery { key: Some(key.id.clone()), calls: true, by: None };
        let events =
            self.client.audit(ws, &recent, &PageQuery { limit: Some(10), cursor: None })?;
        // The last 30 days (the server's default period): totals and where it was used from.
        let one_hour = PageQuery { limit: Some(1), cursor: None };
        let usage = self.client.key_usage(ws, &key.id, &UsageQuery::default(), &one_hour)?;
        if self.printer.json {
            let usage =
                json!({"since": usage.since, "totals": usage.totals, "origins": usage.origins});
            self.printer.json(&json!({"key": key, "usage": usage, "events": events.events}))?;
            return Ok(ExitStatus::Success);
        }
        let now = Utc::now();
        let when = |at: Option<chrono::DateTime<Utc>>, none: &str| {
            at.map_or_else(
                || none.to_owned(),
                |at| {
                    format!(
                        "{} ({})",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        relative(at, now)
                    )
                },
            )
        };
        let fields = [
            ("Name", key.name.clone()),
            ("Id", key.id.clone()),
            ("Prefix", key.prefix.clone()),
            ("Workspace", self.workspace.slug.clone()),
            ("Access", key.access.as_str().to_owned()),
            ("Limited to", self.named(&key.scopes.describe())),
            ("Status", status_text(&key, now)),
            ("Created", when(Some(key.created_at), "")),
            ("Created by", key.created_by.label()),
            (
                "Created via",
                key.oauth_client.as_ref().map_or_else(
                    || "the admin API (keys create)".to_owned(),
                    |c| format!("OAuth: {} ({})", c.name, c.client_id),
                ),
            ),
            ("Expires", when(key.expires_at, "never")),
            ("Revoked", when(key.revoked_at, "no")),
            ("Last used", when(key.last_used_at, "never")),
            ("Last client", key.last_used_client.clone().unwrap_or_else(|| "-".into())),
            ("Last address", key.last_used_ip.clone().unwrap_or_else(|| "-".into())),
            ("Use, 30 days", usage_text(&usage.totals)),
            ("Addresses", origins_text(&usage.origins, OriginKind::Address, now)),
            ("Clients", origins_text(&usage.origins, OriginKind::Client, now)),
        ];
        let shared = key.shared.as_ref().map(|seen| {
            format!(
                "used by {} and from {} in 7 days; one key per client or machine: \
                 `{}` for each, then `{}`",
                count(seen.clients.len().max(1), "client", "clients"),
                count(seen.addresses.len().max(1), "address", "addresses"),
                self.command(&["keys", "create", "--name", "NAME", "--expires", "90d", "--save"]),
                self.command(&["keys", "revoke", &key.prefix]),
            )
        });
        let blocked = key.blocked.as_ref().map(|b| {
            format!(
                "by the workspace policy's {} rule: {}; `{}` makes a key that keeps it",
                b.rule,
                b.message,
                self.command(&["keys", "rotate", &key.prefix])
            )
        });
        // Values come from the server: nothing in them reaches the terminal as a control
        // sequence.
        let fields: Vec<(&str, String)> = fields
            .into_iter()
            .chain(shared.map(|text| ("Shared", text)))
            .chain(blocked.map(|text| ("Blocked", text)))
            .map(|(label, value)| (label, api::displayable(&value)))
            .collect();
        self.printer.data(&crate::output::fields(&fields));
        if !events.events.is_empty() {
            let rows = events
                .events
                .iter()
                .map(|e| vec![relative(e.at, now), e.kind.to_string(), e.detail.clone()])
                .collect();
            self.printer.data("");
            let columns = [Column::keep("When"), Column::keep("Event"), Column::text("Detail", 1)];
            self.printer.data(&table(&columns, rows));
        }
        Ok(ExitStatus::Success)
    }

    fn revoke(&self, args: RevokeArgs) -> anyhow::Result<ExitStatus> {
        let keys = self.keys()?;
        let key = match args.key {
            Some(reference) => resolve_key(&keys, &reference)?,
            None => self.pick(&keys, "Revoke which key?", "the KEY to revoke", true)?,
        };
        // Revoking twice is done twice: the second time says so, and succeeds.
        if key.status == KeyStatus::Revoked {
            if self.printer.json {
                self.printer.json(&json!({"key": key, "already_revoked": true}))?;
            } else {
                let when = key.revoked_at.map_or_else(String::new, |at| {
                    format!(" {} ({})", relative(at, Utc::now()), at.format("%Y-%m-%d %H:%M UTC"))
                });
                self.printer.info(&format!(
                    "{:?} ({}) was already revoked{when}; nothing to do.",
                    key.name, key.prefix
                ));
            }
            return Ok(ExitStatus::Success);
        }
        prompt::confirm_or_yes(
            args.yes,
            &prompt::question(&format!("Revoke {:?}", key.name), &format!(" ({})?", key.prefix)),
            Some("Clients using it stop working at once."),
        )?;
        let revoked = self.client.revoke_key(&self.workspace.slug, &key.id)?;
        self.forget_saved(&key);
        if self.printer.json {
            self.printer.json(&revoked)?;
        } else {
            self.printer.info(&format!(
                "Revoked {:?} ({}): its next request is refused.",
                key.name, key.prefix
            ));
        }
        Ok(ExitStatus::Success)
    }

    fn narrow(&self, args: NarrowArgs) -> anyhow::Result<ExitStatus> {
        let key = self.admin.find_key(&args.key)?;
        let body = api::NarrowKey {
            access: args.read_only.then_some(Access::ReadOnly),
            tools: args.tools,
            journeys: args.journeys,
            allow_ip: args.allow_ip,
        };
        if body.access.is_none()
            && body.tools.is_none()
            && body.journeys.is_none()
            && body.allow_ip.is_none()
        {
            return Err(CliError::usage("nothing to narrow")
                .hint("give --read-only, --tools, --journeys or --allow-ip")
                .into());
        }
        let narrowed = self.client.narrow_key(&self.workspace.slug, &key.id, &body)?.key;
        if self.printer.json {
            self.printer.json(&json!({"key": narrowed}))?;
            return Ok(ExitStatus::Success);
        }
        if narrowed.access == key.access
            && narrowed.scopes.within(&key.scopes).is_ok()
            && key.scopes.within(&narrowed.scopes).is_ok()
        {
            self.printer.info(&format!(
                "Nothing changed: {:?} ({}) is already {}, limited to {}.",
                narrowed.name,
                narrowed.prefix,
                narrowed.access.as_str(),
                self.named(&narrowed.scopes.describe())
            ));
            return Ok(ExitStatus::Success);
        }
        self.printer.info(&format!(
            "Narrowed {:?} ({}): {}, limited to {}.",
            narrowed.name,
            narrowed.prefix,
            narrowed.access.as_str(),
            self.named(&narrowed.scopes.describe())
        ));
        Ok(ExitStatus::Success)
    }

    fn rotate(&self, args: RotateArgs) -> anyhow::Result<ExitStatus> {
        let key = match &args.key {
            Some(reference) => self.admin.find_key(reference)?,
            None => self.pick(&self.keys()?, "Rotate which key?", "the KEY to rotate", true)?,
        };
        prompt::confirm_or_yes(
            args.yes,
            &prompt::question(&format!("Rotate {:?}", key.name), &format!(" ({})?", key.prefix)),
            Some("The old token stops working at once; a new one is shown once."),
        )?;
        // The config files that hold the old token, found before it stops working.
        let held = config::files_holding(&key.prefix);
        let created = self.client.rotate_key(&self.workspace.slug, &key.id)?;
        // A saved token moves to the new key, so `config --key` and `test --key` keep working.
        let had_saved = self.forget_saved(&key);
        let saved = if had_saved || args.save { Some(self.save(&created)?) } else { None };
        self.printer.info(&format!("Revoked the old token of {:?} ({}).", key.name, key.prefix));
        if let Some(narrowed) = key.terms_changed(&created.key) {
            self.printer.info(&format!(
                "The new key keeps the workspace policy, so it differs from the old one: \
                 {} (`{}` shows the policy).",
                self.named(&narrowed),
                self.command(&["policy", "show"])
            ));
        }
        self.show_new_token(&created, saved.as_ref())?;
        self.rewrite_configs(&args, &held, &created, saved.is_some())?;
        Ok(ExitStatus::Success)
    }

    /// After a rotation: the config files that held the old token get the new one (with
    /// `--rewrite-configs`, or when the person says so on a terminal); otherwise they are
    /// listed with the command that updates each.
    fn rewrite_configs(
        &self,
        args: &RotateArgs,
        held: &[config::Held],
        created: &CreatedKeyResponse,
        saved: bool,
    ) -> anyhow::Result<()> {
        if held.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> =
            held.iter().map(|h| format!("  {} ({})", h.path.display(), h.client_name())).collect();
        let rewrite = if args.rewrite_configs {
            true
        } else if args.no_rewrite_configs || self.printer.json || !prompt::interactive() {
            false
        } else {
            crate::output::note(&format!(
                "The old token is in {}:\n{}",
                count(held.len(), "config file", "config files"),
                listed.join("\n")
            ));
            prompt::confirm("Put the new token in place of the old one there?")?
        };
        if rewrite {
            let token = PlainToken::parse(&created.token)?;
            for file in held {
                let backup = config::rewrite(file, &token)?;
                let kept = backup
                    .map(|b| format!(" (the previous version is in {})", b.display()))
                    .unwrap_or_default();
                self.printer.info(&format!(
                    "Put the new token in {}{kept}; restart {} (or reload its MCP servers).",
                    file.path.display(),
                    file.client_name()
                ));
            }
            return Ok(());
        }
        self.printer.warn(&format!(
            "the old token, which no longer works, is still in {}:\n{}",
            count(held.len(), "config file", "config files"),
            listed.join("\n")
        ));
        // Each file updated by the command that wrote it, with the new token.
        let key = &created.key.name;
        for file in held {
            let client = file.client.id();
            let mut words = vec!["config", client.as_str()];
            if file.scope == config::Scope::Project {
                words.extend(["--scope", "project"]);
            }
            let command = if saved {
                words.extend(["--key", key, "--write", "--yes"]);
                command_line(self.global, &words)
            } else {
                words.extend(["--inline-token", "--write", "--yes"]);
                format!("printf '%s\\n' \"$TOKEN\" | {}", command_line(self.global, &words))
            };
            self.printer.info(&format!("  update it: {command}"));
        }
        if !saved {
            self.printer.info("  (with TOKEN set to the new token printed above)");
        }
        Ok(())
    }

    /// Removes a key's saved token, if there is one. Returns whether there was.
    fn forget_saved(&self, key: &Key) -> bool {
        let account = secrets::key_account(self.client.server(), &key.id);
        match CredentialStore::open().and_then(|store| store.delete(&account)) {
            Ok(found) => found,
            Err(error) => {
                self.printer.warn(&format!(
                    "could not remove the saved token of {:?}: {error:#}",
                    key.name
                ));
                false
            }
        }
    }
}

fn last_used(key: &Key, now: chrono::DateTime<Utc>) -> String {
    match (key.last_used_at, &key.last_used_client) {
        (None, _) => "never".to_owned(),
        (Some(at), Some(client)) => format!("{} ({client})", relative(at, now)),
        (Some(at), None) => relative(at, now),
    }
}

fn status_text(key: &Key, now: chrono::DateTime<Utc>) -> String {
    // A never-used key is also stale: "never used" says more.
    let flags: Vec<String> = key
        .flags
        .iter()
        .filter(|f| !(**f == KeyFlag::Stale && key.flags.contains(&KeyFlag::NeverUsed)))
        .map(|f| match (f, &key.blocked, key.expires_at) {
            (KeyFlag::Blocked, Some(breach), _) => format!("blocked: {}", breach.rule),
            (KeyFlag::ExpiresSoon, _, Some(at)) => expires_in(at, now),
            _ => f.as_str().to_owned(),
        })
        .collect();
    if flags.is_empty() {
        key.status.as_str().to_owned()
    } else {
        format!("{} ({})", key.status.as_str(), flags.join(", "))
    }
}

/// A key that expires soon, short enough for the status column: `expires in 6 d`,
/// `expires in 5 h` (by this machine's clock; `expires soon` if it says the time has passed).
fn expires_in(at: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    match seconds {
        ..=0 => KeyFlag::ExpiresSoon.as_str().to_owned(),
        1..3600 => "expires in < 1 h".to_owned(),
        3600..86_400 => format!("expires in {} h", seconds / 3600),
        _ => format!("expires in {} d", seconds / 86_400),
    }
}

/// `keys revoke --token-stdin`: no confirmation, since whoever holds the token can use it.
/// The token `--token-stdin` reads, checked (prefix, length, checksum).
fn found_token() -> anyhow::Result<crate::token::PlainToken> {
    use std::io::{BufRead as _, IsTerminal as _, Read as _};
    if std::io::stdin().is_terminal() {
        return Err(CliError::usage("--token-stdin reads a piped token, but stdin is a terminal")
            .hint("pipe it in: `printf %s \"$FOUND\" | custory-mcp keys revoke --token-stdin`")
            .into());
    }
    let mut line = String::new();
    std::io::stdin().lock().take(4096).read_line(&mut line)?;
    if line.trim().is_empty() {
        return Err(CliError::failure("--token-stdin found no token on standard input (it was empty)")
            .hint("pipe one line with the token: `printf %s \"$FOUND\" | custory-mcp keys revoke --token-stdin`")
            .into());
    }
    Ok(crate::token::PlainToken::parse(&line)
        .map_err(|error| CliError::failure(format!("that is not an MCP key's token: {error}")))?)
}

fn revoke_token(
    client: &AdminClient,
    token: &crate::token::PlainToken,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let revoked = client.revoke_token(token)?;
    if printer.json {
        printer.json(&revoked)?;
    } else if revoked.already_revoked {
        let when = revoked.key.revoked_at.map_or_else(String::new, |at| {
            format!(" {} ({})", relative(at, Utc::now()), at.format("%Y-%m-%d %H:%M UTC"))
        });
        printer.info(&format!(
            "{:?} ({}) in {} was already revoked{when}; nothing to do.",
            api::displayable(&revoked.key.name),
            revoked.key.prefix,
            api::displayable(&revoked.workspace),
        ));
    } else {
        let audit = command_line(
            global,
            &["--workspace", &revoked.workspace, "audit", "--key", &revoked.key.prefix],
        );
        printer.info(&format!(
            "Revoked {:?} ({}) in {}: its next request is refused. `{}` shows what it did.",
            api::displayable(&revoked.key.name),
            revoked.key.prefix,
            api::displayable(&revoked.workspace),
            api::displayable(&audit),
        ));
    }
    Ok(ExitStatus::Success)
}

/// `1,234 calls, 12 errors, 3.4 MB sent; search_items 800, get_item 300, +4 more`.
fn usage_text(totals: &KeyUsageTotals) -> String {
    if totals.calls == 0 {
        return "no calls (tools, resources or prompts)".to_owned();
    }
    format!(
        "{}, {}, {} sent; {}",
        count(totals.calls, "call", "calls"),
        count(totals.errors, "error", "errors"),
        size_text(totals.bytes),
        super::audit::tools_text(&totals.tools, 3)
    )
}

/// The addresses (or clients) a key was used from, most recent first.
fn origins_text(origins: &[KeyOrigin], kind: OriginKind, now: chrono::DateTime<Utc>) -> String {
    let seen: Vec<String> = origins
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| format!("{} (last {})", o.value, relative(o.last_seen, now)))
        .collect();
    match seen.len() {
        0 => "-".to_owned(),
        n if n > 5 => format!("{}, … ({n} in all)", seen[..5].join(", ")),
        _ => seen.join(", "),
    }
}

/// `, by NAME` after a key's creation time when a member made it (unmarked: the
/// administrator's, or a consent the OAuth client already names).
fn made_by(key: &Key) -> String {
    key.created_by.name.as_ref().map_or_else(String::new, |name| format!(", by {name}"))
}
