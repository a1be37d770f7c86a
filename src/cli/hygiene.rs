//! Key hygiene, the three setup mistakes caught by the tool: `keys review` (what needs a
//! decision, and the command that settles it), `keys revoke --unused-for` (stale keys in bulk)
//! and the offer after `keys create` to store the token that is shown only once.

use chrono::Utc;
use serde_json::json;

use super::config::{ClientArg, ConfigArgs, Scope};
use super::shared::{WorkspaceClient, command_line, list_keys};
use super::{GlobalArgs, prompt, shared};
use crate::api::{self, Key, KeyFlag, KeyStatus, Workspace};
use crate::client::{AdminClient, KeysQuery, Rows, WorkspacesQuery, pages};
use crate::error::{CliError, ExitStatus};
use crate::output::{Column, Printer, count, relative, shorten, table, width, width_of};
use crate::period::Period;
use dialoguer::console::Term;

/// `keys revoke --unused-for P [--never-used] [--dry-run] [--yes]`.
pub fn revoke_unused(
    admin: &WorkspaceClient,
    unused_for: Option<Period>,
    never_used: bool,
    dry_run: bool,
    yes: bool,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    // Never used and past the week's grace, unless a period says otherwise.
    let period = unused_for.unwrap_or(Period::days(7));
    let filter = KeysQuery {
        status: Some(KeyStatus::Active),
        unused_for: Some(period),
        never_used,
        ..KeysQuery::default()
    };
    let slug = &admin.workspace.slug;
    let (keys, _) = list_keys(&admin.client, slug, &filter, Rows::All, printer)?;
    let which = if never_used {
        format!("never used, created more than {period} ago")
    } else {
        format!("unused for {period} or more")
    };
    if keys.is_empty() {
        if printer.json {
            printer.json(&json!({"dry_run": dry_run, "revoked": [], "would_revoke": []}))?;
        }
        printer.info(&format!("No active key in {slug} is {which}; nothing to revoke."));
        return Ok(ExitStatus::Success);
    }
    if !printer.json {
        printer.data(&keys_table(&keys));
    }
    if dry_run {
        if printer.json {
            printer.json(&json!({"dry_run": true, "would_revoke": keys, "revoked": []}))?;
        }
        printer.info(&format!(
            "Dry run: {} active {} in {slug} {which}; nothing was revoked. Run again without \
             --dry-run to revoke {}.",
            keys.len(),
            if keys.len() == 1 { "key" } else { "keys" },
            if keys.len() == 1 { "it" } else { "them" },
        ));
        return Ok(ExitStatus::Success);
    }
    let these =
        if keys.len() == 1 { "this key".to_owned() } else { format!("these {} keys", keys.len()) };
    prompt::confirm_or_yes(
        yes,
        &format!("Revoke {these}?"),
        Some(&format!(
            "{} {which}. Clients using {} stop working at once.",
            if keys.len() == 1 { "It is" } else { "They are" },
            if keys.len() == 1 { "it" } else { "them" }
        )),
    )?;
    let mut revoked = Vec::with_capacity(keys.len());
    for (n, key) in keys.iter().enumerate() {
        if n > 0 && n.is_multiple_of(500) {
            printer.info(&format!("{n} of {} revoked…", keys.len()));
        }
        revoked.push(admin.client.revoke_key(slug, &key.id)?.key);
    }
    if printer.json {
        printer.json(&json!({"dry_run": false, "revoked": revoked, "would_revoke": []}))?;
    }
    printer.info(&format!(
        "Revoked {} in {slug}; each is an audit event ({}).",
        count(revoked.len(), "key", "keys"),
        command_line(global, &["--workspace", slug, "audit"])
    ));
    Ok(ExitStatus::Success)
}

fn keys_table(keys: &[Key]) -> String {
    let now = Utc::now();
    let rows = keys
        .iter()
        .map(|key| {
            vec![
                key.name.clone(),
                key.prefix.clone(),
                relative(key.created_at, now),
                key.last_used_at.map_or_else(|| "never".to_owned(), |at| relative(at, now)),
            ]
        })
        .collect();
    let columns = [
        Column::keep("Name"),
        Column::keep("Prefix"),
        Column::optional("Created", 1),
        Column::optional("Last used", 2),
    ];
    table(&columns, rows)
}

/// One thing `keys review` asks a decision about.
struct Finding<'a> {
    key: &'a Key,
    flag: KeyFlag,
    why: String,
    /// The commands that settle it, in order, each with a note on how to run it.
    steps: Vec<(String, Option<&'static str>)>,
}

impl Finding<'_> {
    /// The steps in one sentence (`--json`'s `fix`).
    fn fix(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(command, note)| match note {
                Some(note) => format!("{command}, {note}"),
                None => command.clone(),
            })
            .collect();
        steps.join(", then ")
    }

    /// The finding for a person: the key and why on one line (the why cut to `width`), then
    /// each command on its own line, whole, as it can be pasted into a shell.
    fn lines(&self, width: Option<usize>) -> Vec<String> {
        let key = format!("{} ({})", self.key.name, self.key.prefix);
        // "never used: never used; …", "expires soon: expires …": said once.
        let first = |text: &str| text.split(' ').next().unwrap_or_default().to_owned();
        let why = if first(&self.why) == first(self.flag.as_str()) {
            self.why.clone()
        } else {
            format!("{}: {}", self.flag.as_str(), self.why)
        };
        let why = match width {
            Some(width) => shorten(&why, width.saturating_sub(width_of(&key) + 2).max(20)),
            None => why,
        };
        let mut lines = vec![format!("{key}  {why}")];
        for (command, note) in &self.steps {
            lines.push(match note {
                Some(note) => format!("  {command}   # {note}"),
                None => format!("  {command}"),
            });
        }
        lines
    }
}

/// `keys review`: per workspace (every one, unless `--workspace` names one), what needs a
/// decision and the command that settles each.
pub fn review(global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let client = AdminClient::connect(&global.server)?;
    let workspaces: Vec<Workspace> = match &global.workspace {
        Some(slug) => {
            let asked = Some((slug.clone(), shared::WorkspaceFrom::Flag));
            vec![shared::choose_workspace(&client, asked)?.0]
        }
        // Every workspace is reviewed, so every one is read, a page at a time.
        None => {
            let filter = WorkspacesQuery::default();
            pages(Rows::All, |page| client.workspaces(&filter, page), |_| {})?.workspaces
        }
    };
    let mut report = Vec::new();
    let mut total = 0;
    // With several workspaces, each fix names its own.
    let several = workspaces.len() > 1;
    for workspace in workspaces {
        let slug = &workspace.slug;
        let active = KeysQuery { status: Some(KeyStatus::Active), ..KeysQuery::default() };
        let (keys, _) = list_keys(&client, slug, &active, Rows::All, printer)?;
        let command = |args: &[&str]| match several {
            true => command_line(global, &[&["--workspace", slug.as_str()], args].concat()),
            false => command_line(global, args),
        };
        let findings = findings(&keys, command);
        total += findings.len();
        if printer.json {
            let items: Vec<_> = findings
                .iter()
                .map(|f| json!({"key": f.key, "flag": f.flag, "why": f.why, "fix": f.fix()}))
                .collect();
            report.push(json!({"workspace": slug, "active_keys": keys.len(),
                               "findings": items}));
            continue;
        }
        if findings.is_empty() {
            let active = count(keys.len(), "active key", "active keys");
            printer.data(&format!("{slug}: {active}, nothing to decide."));
            printer.data("");
            continue;
        }
        printer.data(&format!(
            "{slug}: {}, {} to decide about",
            count(keys.len(), "active key", "active keys"),
            findings.len()
        ));
        // Not a table: the commands are shown whole, each on a line of its own.
        let width = width(&Term::stdout());
        // Names and clients come from the server: nothing in them steers the terminal.
        let lines: Vec<String> =
            findings.iter().flat_map(|f| f.lines(width)).map(|l| api::displayable(&l)).collect();
        printer.data(&lines.join("\n"));
        printer.data("");
    }
    if printer.json {
        printer.json(&json!({"workspaces": report}))?;
    } else if total > 0 {
        printer.info(
            "One key per client or machine; revoke what is old, unclear, unused, or on a machine \
             you no longer control. `custory-mcp keys revoke --unused-for 30d --dry-run` lists \
             the stale ones at once.",
        );
    }
    Ok(ExitStatus::Success)
}

/// A date, not a time relative to this machine's clock: the server's decides the flags.
fn day(at: chrono::DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// What `keys review` finds in `keys`, each with the commands (made by `command`) that settle
/// it.
fn findings<'a>(keys: &'a [Key], command: impl Fn(&[&str]) -> String) -> Vec<Finding<'a>> {
    let mut found = Vec::new();
    for key in keys {
        let revoke = command(&["keys", "revoke", &key.prefix]);
        for &flag in &key.flags {
            // A never-used key is also stale: one line, the more precise.
            if flag == KeyFlag::Stale && key.flags.contains(&KeyFlag::NeverUsed) {
                continue;
            }
            let (why, steps) = match flag {
                KeyFlag::Shared => {
                    let seen = key.shared.clone().unwrap_or_default();
                    let mut parts = Vec::new();
                    if seen.clients.len() > 1 {
                        parts.push(format!("clients {}", seen.clients.join(", ")));
                    }
                    if seen.addresses.len() > 1 {
                        parts.push(format!("addresses {}", seen.addresses.join(", ")));
                    }
                    // A key of its own for each client seen (one per machine when only
                    // addresses differ), then the shared one revoked.
                    let mut steps: Vec<(String, Option<&'static str>)> = Vec::new();
                    let expires = key.expires.as_str();
                    if seen.clients.len() > 1 {
                        for client in seen.clients.iter().take(5) {
                            let name = own_name(&key.name, client);
                            let create = ["keys", "create", "--name", &name, "--expires", expires];
                            steps.push((command(&[&create[..], &["--save"]].concat()), None));
                        }
                    } else {
                        let name = own_name(&key.name, "2");
                        let create = ["keys", "create", "--name", &name, "--expires", expires];
                        steps.push((
                            command(&[&create[..], &["--save"]].concat()),
                            Some("once per machine, each named after it"),
                        ));
                    }
                    steps.push((revoke.clone(), None));
                    (format!("used by {} in 7 days", parts.join(" and ")), steps)
                }
                KeyFlag::Blocked => (
                    key.blocked.as_ref().map_or_else(
                        || "blocked by the workspace policy".to_owned(),
                        |b| format!("blocked by the workspace policy's {} rule", b.rule),
                    ),
                    vec![(
                        command(&["keys", "rotate", &key.prefix]),
                        Some("makes a key that keeps the policy"),
                    )],
                ),
                KeyFlag::NeverUsed => (
                    format!("never used; created {}", day(key.created_at)),
                    vec![(revoke.clone(), None)],
                ),
                KeyFlag::Stale => (
                    format!(
                        "unused for 30 days; last used {}",
                        key.last_used_at.map_or_else(|| "never".into(), day)
                    ),
                    vec![(revoke.clone(), None)],
                ),
                KeyFlag::ExpiresSoon => (
                    format!("expires {}", key.expires_at.map_or_else(|| "never".into(), day)),
                    vec![(command(&["keys", "rotate", &key.prefix]), None)],
                ),
                KeyFlag::NeverWrote => (
                    "read-write, but it has only ever read".to_owned(),
                    vec![
                        (
                            command(&[
                                "keys",
                                "create",
                                "--name",
                                &own_name(&key.name, "read-only"),
                                "--expires",
                                key.expires.as_str(),
                                "--read-only",
                                "--save",
                            ]),
                            None,
                        ),
                        (revoke.clone(), None),
                    ],
                ),
            };
            found.push(Finding { key, flag, why, steps });
        }
    }
    found
}

/// `NAME (what)`, within the 100 characters a name may have.
fn own_name(name: &str, what: &str) -> String {
    let what: String = what.chars().take(40).collect();
    let keep = 100usize.saturating_sub(what.chars().count() + 3);
    let name: String = name.chars().take(keep).collect();
    format!("{} ({what})", name.trim_end())
}

/// After `keys create` on a terminal without `--save`: the one moment to store the token,
/// handled by the tool. Returns whether it was saved.
pub fn offer_to_store(
    key: &Key,
    save: impl Fn() -> anyhow::Result<crate::secrets::Saved>,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<()> {
    let choices = [
        "Write it into an MCP client's config now".to_owned(),
        "Save it in the keyring (then: custory-mcp config CLIENT --key …)".to_owned(),
        "No: I have stored it myself".to_owned(),
    ];
    let choice =
        prompt::select("Store the token now? (next time: --save or --no-save)", &choices, 0)?;
    if choice == 2 {
        return Ok(());
    }
    let saved = save()?;
    printer.info(&format!("Saved to {saved}."));
    if choice == 1 {
        let config = command_line(global, &["config", "cursor", "--key", &key.name]);
        let test = command_line(global, &["test", "--key", &key.name]);
        printer.info(&format!("Next: {config}   # or claude-code, vscode, codex, …"));
        printer.info(&format!("      {test}"));
        return Ok(());
    }
    let clients: Vec<ClientArg> = ClientArg::choices().collect();
    let names: Vec<String> = clients.iter().map(|client| client.name().to_owned()).collect();
    let client = clients[prompt::select("Which client?", &names, 0)?];
    let args = ConfigArgs {
        client,
        key: Some(key.id.clone()),
        token_env: None,
        inline_token: false,
        url: None,
        write: true,
        scope: Scope::User,
        yes: false,
        follow_symlink: false,
        oauth: false,
        tools: None,
        read_only: false,
    };
    match super::config::run(args, global, printer) {
        Ok(_) => Ok(()),
        Err(error) => Err(CliError::failure(format!(
            "the token is saved, but its config was not written: {error:#}"
        ))
        .hint(format!(
            "run `{}` to try again",
            command_line(global, &["config", &client.id(), "--key", &key.name, "--write"])
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_never_used_key_is_one_finding_not_two() {
        let key: crate::api::Key = serde_json::from_value(serde_json::json!({
            "id": "key_1", "name": "Old", "prefix": "cst_abcdefgh", "access": "read-write",
            "expires": "never", "created_at": "2026-01-01T00:00:00Z", "expires_at": null,
            "last_used_at": null, "last_used_client": null, "last_used_ip": null,
            "revoked_at": null, "status": "active", "flags": ["stale", "never-used"]
        }))
        .expect("key");
        let keys = [key];
        let found = super::findings(&keys, |args: &[&str]| {
            let words = [&["custory-mcp", "--workspace", "acme"], args].concat();
            words.iter().map(|w| super::super::shared::shell_quote(w)).collect::<Vec<_>>().join(" ")
        });
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].fix(), "custory-mcp --workspace acme keys revoke cst_abcdefgh");
    }
}
