//! `custory-mcp config CLIENT`: the ready-to-paste (or merged) MCP config for each client.
//!
//! stdout carries exactly what goes in the client's file, as a new file would hold it; stderr
//! says where the file is and how the token reaches the client. With `--write` the entry is
//! merged into the real file instead: diff shown, confirmation asked (unless `--yes`), the
//! previous version kept as `<file>.bak`, the new one written atomically and readable only by
//! its owner.
//!
//! By default no secret is written anywhere: the snippet references `$CUSTORY_MCP_TOKEN` in
//! the client's own syntax. Where a client cannot read the environment (Claude Desktop, Zed,
//! Cline) it holds a `<token>` placeholder until the person asks for the token itself with
//! `--inline-token` (or `--key`).

mod clients;
mod held;
mod merge;

use std::io::{BufRead as _, IsTerminal as _, Read as _};
use std::path::Path;

use serde::Serialize;

use self::clients::{Auth, Client, Note, Plan};
pub use self::clients::{ClientArg, Scope};
pub use self::held::{Held, files_holding, rewrite};
use self::merge::Syntax;
use super::GlobalArgs;
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;
use crate::token::{PlainToken, TokenKind};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
By default the token is referenced through $CUSTORY_MCP_TOKEN, in the client's own syntax, so \
no secret lands in the file. Claude Desktop, Zed and Cline cannot read the environment: their \
snippet holds a <token> placeholder unless --inline-token is given.

Examples:
  custory-mcp config cursor
  custory-mcp config claude-code --scope project --write
  custory-mcp config zed --key laptop --write
  printenv CUSTORY_MCP_TOKEN | \\
      custory-mcp config claude-desktop --inline-token")]
pub struct ConfigArgs {
    /// The MCP client to configure (`claude` is Claude Code)
    #[arg(value_enum, value_name = "CLIENT")]
    pub client: ClientArg,
    /// Embed the token saved for KEY (id, name or prefix) with `keys create --save`; implies
    /// --inline-token
    #[arg(long, value_name = "KEY", conflicts_with = "token_env", add = super::completions::active_keys())]
    pub key: Option<String>,
    /// Reference the token through this environment variable [default: CUSTORY_MCP_TOKEN]
    #[arg(long, value_name = "VAR", conflicts_with = "inline_token", value_parser = super::env_var_name)]
    pub token_env: Option<String>,
    /// Embed the token itself: the one saved for --key, else one line read from stdin
    #[arg(long)]
    pub inline_token: bool,
    /// The MCP endpoint [default: <server>/api/mcp]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Merge the entry into the client's config file (diff shown, backup kept, 0600)
    #[arg(long)]
    pub write: bool,
    /// Whose config file: the user's, or the project's in the current directory
    #[arg(long, value_enum, default_value_t = Scope::User, value_name = "SCOPE")]
    pub scope: Scope,
    /// Write without asking for confirmation
    #[arg(long, short = 'y', requires = "write")]
    pub yes: bool,
    /// When the config file is a symbolic link, write the file it points at (otherwise a link
    /// is refused)
    #[arg(long, requires = "write")]
    pub follow_symlink: bool,
    /// Narrow the client to these tools (names and groups, comma-separated: read, map, items,
    /// comments, personas): written as an `X-MCP-Tools` header, which the server honours
    /// within the key's own tools, never beyond
    #[arg(long, value_name = "NAMES", value_delimiter = ',', conflicts_with = "oauth")]
    pub tools: Option<Vec<String>>,
    /// Narrow the client to reading: written as an `X-MCP-Readonly: true` header
    #[arg(long, conflicts_with = "oauth")]
    pub read_only: bool,
    /// No token at all: the client signs in in a browser on first use (the server must run
    /// with `serve --oauth`), and the owner's consent creates its key
    #[arg(long, conflicts_with_all = ["key", "token_env", "inline_token"])]
    pub oauth: bool,
}

/// `--json`.
#[derive(Debug, Serialize)]
struct Output<'a> {
    client: String,
    path: String,
    format: &'static str,
    content: &'a str,
    /// The client's own command for the same entry (Claude Code, Codex).
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    /// With `--write`: whether the file changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    written: Option<bool>,
    /// With `--write`: where the previous version was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
}

pub fn run(args: ConfigArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let client = Client::from(args.client);
    if args.client == ClientArg::Claude {
        printer.info(
            "note: `claude` is Claude Code, the CLI; for the Claude desktop app run \
             `custory-mcp config claude-desktop`",
        );
    }
    let url = endpoint(args.url.as_deref(), &global.server)?;
    let path = client.path(args.scope)?;
    let auth = if args.oauth { None } else { Some(auth(&args, global)?) };
    let plan = match &auth {
        Some(auth) => clients::plan(client, &url, auth, args.scope, &narrowing(&args)?)?,
        None => clients::plan_oauth(client, &url, args.scope),
    };
    let syntax = syntax(client);
    let content = merge::merge(&plan.entry, syntax, None, &path)?;

    if args.write {
        return write(&args, &plan, &path, &content, auth.as_ref(), global, printer);
    }

    if printer.json {
        printer.json(&output(&plan, &path, &content))?;
    } else {
        printer.data(content.strip_suffix('\n').unwrap_or(&content));
    }
    printer.info(&format!("Goes in {} {}.", path.display(), client.location()));
    printer.info(&format!("To merge it in: {}", merge_again(&args, &plan, global)));
    if let Some(command) = &plan.command {
        printer.info(&format!("Or let {} add it: {command}", client.name()));
    }
    notes(&plan, printer);
    Ok(ExitStatus::Success)
}

fn write(
    args: &ConfigArgs,
    plan: &Plan,
    path: &Path,
    content: &str,
    auth: Option<&Auth>,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let client = plan.client;
    let syntax = syntax(client);
    if plan.placeholder {
        return Err(CliError::usage(format!(
            "{} cannot read the token from the environment, so --write needs the token itself",
            client.name()
        ))
        .hint(
            "add --inline-token (with --key KEY, or the token on stdin), or leave out --write \
             to print the snippet",
        )
        .into());
    }
    // A user's own config files may be links (dotfile managers make them); a project's are
    // written only as plain files: a repository could otherwise point one anywhere (say, at
    // a file of the user's that a token must not land in).
    if args.scope == Scope::Project
        && let Some(link) = merge::linked(path)
    {
        return Err(CliError::failure(format!(
            "{} is a symbolic link, and a project's config file is written only as a plain file",
            link.display()
        ))
        .hint("remove the link (or write the entry by hand), then run this again")
        .into());
    }
    let (target, mode) = merge::check_target(path, args.follow_symlink)?;
    let previous = merge::read(&target)?;
    let merged = merge::merge(&plan.entry, syntax, previous.as_deref(), &target)?;
    if previous.as_deref() == Some(merged.as_str()) {
        if printer.json {
            printer.json(&Output { written: Some(false), ..output(plan, &target, content) })?;
        }
        printer.info(&format!("{} already has this entry; nothing to write.", target.display()));
        return Ok(ExitStatus::Success);
    }

    // Both sides: a removed line may hold an old token as live as the new one.
    for line in merge::diff(&target, previous.as_deref(), &merged) {
        let line = redact_secrets(&line);
        let painted = match line.chars().next() {
            Some('+') if !line.starts_with("+++") => printer.paint(&line, "32"),
            Some('-') if !line.starts_with("---") => printer.paint(&line, "31"),
            Some('@') => printer.paint(&line, "36"),
            _ => line,
        };
        printer.info(&painted);
    }
    super::prompt::confirm_or_yes(args.yes, &format!("Write {}?", target.display()), None)?;

    // A token in a file others may read: the file becomes the owner's alone, and says so.
    let holds_token = matches!(auth, Some(Auth::Inline(_)));
    let new_mode = match mode {
        Some(mode) if holds_token && mode & 0o077 != 0 => Some(0o600),
        mode => mode,
    };
    let backup = merge::write(&target, previous.as_deref(), &merged, new_mode)?;
    if target != path {
        printer.info(&format!("{} is a link: wrote the file it points at.", path.display()));
    }
    if let (Some(was), Some(now)) = (mode, new_mode)
        && was != now
    {
        printer.info(&format!(
            "{} was mode {was:04o}, readable by others; it now holds a token, so it is {now:04o} \
             (readable only by you).",
            target.display()
        ));
    }
    if printer.json {
        printer.json(&Output {
            written: Some(true),
            backup: backup.as_ref().map(|b| b.display().to_string()),
            ..output(plan, &target, content)
        })?;
    }
    match &backup {
        Some(backup) => printer.info(&format!(
            "Wrote {} (the previous version is in {}).",
            target.display(),
            backup.display()
        )),
        None => printer.info(&format!("Wrote {}.", target.display())),
    }
    notes(plan, printer);
    printer.info(&format!(
        "Restart {} (or reload its MCP servers), then {}",
        client.name(),
        next_test(args, auth, global)
    ));
    if let Some(approval) = client.approval(args.scope) {
        printer.info(&format!("On its next start: {approval}."));
    }
    Ok(ExitStatus::Success)
}

/// The headers that narrow every request of the client (`--tools`, `--read-only`), checked
/// here so a typo is said now rather than by the server on the client's first call.
fn narrowing(args: &ConfigArgs) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut headers = Vec::new();
    if let Some(tools) = &args.tools {
        crate::mcp::expand_tool_names(tools)
            .map_err(|message| CliError::usage(format!("--tools: {message}")))?;
        let names: Vec<&str> = tools.iter().map(|t| t.trim()).collect();
        headers.push(("X-MCP-Tools", names.join(",")));
    }
    if args.read_only {
        headers.push(("X-MCP-Readonly", "true".to_owned()));
    }
    Ok(headers)
}

/// The command that merges this entry into the client's file, runnable as printed: with
/// `--write`, and where the client cannot read the environment, the token itself (`--key`).
fn merge_again(args: &ConfigArgs, plan: &Plan, global: &GlobalArgs) -> String {
    let id = plan.client.id();
    let mut words: Vec<&str> = vec!["config", &id];
    if plan.placeholder {
        words.extend(["--key", "KEY"]);
    } else if let Some(key) = &args.key {
        words.extend(["--key", key]);
    } else if args.inline_token {
        words.push("--inline-token");
    } else if let Some(var) = &args.token_env {
        words.extend(["--token-env", var]);
    }
    if let Some(url) = &args.url {
        words.extend(["--url", url]);
    }
    let tools = args.tools.as_ref().map(|tools| tools.join(","));
    if let Some(tools) = &tools {
        words.extend(["--tools", tools]);
    }
    if args.read_only {
        words.push("--read-only");
    }
    if args.scope == Scope::Project {
        words.extend(["--scope", "project"]);
    }
    if args.oauth {
        words.push("--oauth");
    }
    words.push("--write");
    let command = super::shared::command_line(global, &words);
    if plan.placeholder {
        format!(
            "{command}   # KEY: a key saved with `keys create --save`; or --inline-token --write \
             with the token on stdin (the file is then readable only by you)"
        )
    } else if args.key.is_some() {
        format!("{command}   # the file is then readable only by you")
    } else if args.inline_token {
        format!("{command}   # with the token on stdin; the file is then readable only by you")
    } else {
        command
    }
}

/// After `--write`: how to check the connection the client will make, as a command that runs
/// as printed (with the token the client was given).
fn next_test(args: &ConfigArgs, auth: Option<&Auth>, global: &GlobalArgs) -> String {
    let url: Vec<&str> = args.url.as_deref().map_or_else(Vec::new, |url| vec!["--url", url]);
    let test =
        |more: &[&str]| super::shared::command_line(global, &[&["test"], &url[..], more].concat());
    match (auth, &args.key) {
        (None, _) => format!(
            "sign in from the client; its key then shows in `{}`",
            super::shared::command_line(global, &["keys", "list"])
        ),
        (Some(_), Some(key)) => format!("check the connection: {}", test(&["--key", key])),
        (Some(Auth::Env { var, .. }), None) => {
            let flag: Vec<&str> = match var.as_str() {
                super::DEFAULT_TOKEN_ENV => vec![],
                var => vec!["--token-env", var],
            };
            if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
                format!("check the connection: {}", test(&flag))
            } else {
                format!(
                    "set {var} to the key's token (where the client runs too), and check the \
                     connection: {}",
                    test(&flag)
                )
            }
        }
        (Some(Auth::Inline(_)), None) => format!(
            "check the connection with the same token in {}: {}",
            super::DEFAULT_TOKEN_ENV,
            test(&[])
        ),
    }
}

/// `line` with every secret it may hold cut to what identifies it: tokens of this tool
/// (`cst_`/`csa_`, shown by their displayed prefix) and any other `Bearer` credential (shown
/// by its first 4 characters). Environment references (`${env:VAR}`, `$VAR`) stay as they are.
fn redact_secrets(line: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let ours = ["cst_", "csa_"].iter().filter_map(|p| rest.find(p)).min();
        let bearer = rest.find("Bearer ").map(|at| at + "Bearer ".len());
        let Some(at) = [ours, bearer].into_iter().flatten().min() else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let len = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        let secret = &tail[..len];
        // What is shown, and the length below which it is no secret (a prefix already shown,
        // a word).
        let (kept, shortest) = if secret.starts_with("cst_") || secret.starts_with("csa_") {
            (crate::token::DISPLAY_PREFIX_LEN, crate::token::DISPLAY_PREFIX_LEN + 8)
        } else {
            (4, 12)
        };
        if secret.len() < shortest {
            out.push_str(secret);
        } else {
            out.push_str(&secret[..kept]);
            out.push_str("…[redacted]");
        }
        if len == 0 {
            // Nothing matched after `Bearer `: step over one character.
            let step = tail.chars().next().map_or(0, char::len_utf8);
            out.push_str(&tail[..step]);
            rest = &tail[step..];
        } else {
            rest = &tail[len..];
        }
    }
    out
}

fn output<'a>(plan: &'a Plan, path: &Path, content: &'a str) -> Output<'a> {
    Output {
        client: plan.client.id(),
        path: path.display().to_string(),
        format: plan.entry.format(),
        content,
        command: plan.command.as_deref(),
        written: None,
        backup: None,
    }
}

fn notes(plan: &Plan, printer: Printer) {
    for note in &plan.notes {
        match note {
            Note::Info(text) => printer.info(text),
            Note::Warn(text) => printer.warn(text),
        }
    }
}

/// Which extensions of JSON the client itself reads (so a file it reads is never refused, and
/// a file it could not read is not called fine).
fn syntax(client: Client) -> Syntax {
    match client {
        Client::Codex => Syntax::Toml,
        Client::Continue => Syntax::Yaml,
        Client::Vscode
        | Client::Zed
        | Client::Gemini
        | Client::Qwen
        | Client::Opencode
        | Client::Kilo => Syntax::Jsonc,
        Client::Cursor
        | Client::ClaudeCode
        | Client::ClaudeDesktop
        | Client::Windsurf
        | Client::Copilot
        | Client::Crush
        | Client::Cline => Syntax::Json,
    }
}

/// `--url`, or the server's MCP endpoint.
fn endpoint(url: Option<&str>, server: &str) -> anyhow::Result<String> {
    let (url, flag) = match url {
        Some(url) => (url.trim().to_owned(), "--url"),
        None => (format!("{}/api/mcp", server.trim().trim_end_matches('/')), "--server"),
    };
    let valid = reqwest::Url::parse(&url)
        .ok()
        .is_some_and(|parsed| matches!(parsed.scheme(), "http" | "https") && parsed.has_host());
    if !valid {
        return Err(CliError::usage(format!("{url:?} is not an http(s) URL"))
            .hint(format!("pass {flag} with a URL like https://HOST/api/mcp"))
            .into());
    }
    Ok(url)
}

/// How the token reaches the client, from `--key`, `--token-env`, `--inline-token`.
fn auth(args: &ConfigArgs, global: &GlobalArgs) -> anyhow::Result<Auth> {
    if let Some(key) = &args.key {
        let token = super::shared::WorkspaceClient::connect_for_key(global, Some(key))?
            .saved_token(key, global)?;
        return Ok(Auth::Inline(mcp_key(token, "the saved token")?));
    }
    if args.inline_token {
        return Ok(Auth::Inline(token_from_stdin()?));
    }
    match &args.token_env {
        Some(var) => Ok(Auth::Env { var: var.clone(), explicit: true }),
        None => Ok(Auth::Env { var: super::DEFAULT_TOKEN_ENV.to_owned(), explicit: false }),
    }
}

/// One line from stdin, checked to be an MCP key.
fn token_from_stdin() -> anyhow::Result<PlainToken> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::usage(
            "--inline-token reads the token from standard input, which is a terminal here",
        )
        .hint(
            "pipe it in (printenv CUSTORY_MCP_TOKEN | custory-mcp config … --inline-token), or \
             pass --key KEY for a key saved with `keys create --save`",
        )
        .into());
    }
    let mut line = String::new();
    // A token is 42 characters; anything much longer is not one line with a token.
    stdin.lock().take(4096).read_line(&mut line)?;
    if line.trim().is_empty() {
        return Err(CliError::failure("--inline-token found no token on standard input")
            .hint("pipe one line with the token (cst_…), or pass --key KEY")
            .into());
    }
    let token = PlainToken::parse(&line).map_err(|error| {
        CliError::failure(format!("the token on standard input is not valid: {error}"))
            .hint("pipe the full token (cst_…) as `keys create` printed it")
    })?;
    mcp_key(token, "the token on standard input")
}

/// Refuses an owner credential: MCP clients need an MCP key.
fn mcp_key(token: PlainToken, what: &str) -> anyhow::Result<PlainToken> {
    if token.kind() == TokenKind::Owner {
        return Err(CliError::failure(format!(
            "{what} is the owner credential (csa_…), which the MCP endpoint refuses"
        ))
        .hint("create an MCP key for the client: custory-mcp keys create --save")
        .into());
    }
    if token.kind() != TokenKind::Mcp {
        return Err(CliError::failure(format!(
            "{what} is a member credential or an invitation code, which the MCP endpoint refuses"
        ))
        .hint("create an MCP key for the client: custory-mcp keys create --save")
        .into());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use crate::token::{PlainToken, TokenKind};

    #[test]
    fn secrets_are_cut_on_every_line_and_references_kept() {
        let token = PlainToken::generate(TokenKind::Mcp);
        let prefix = token.display_prefix();
        let line = format!(r#"-        "Authorization": "Bearer {}""#, token.expose());
        let redacted = super::redact_secrets(&line);
        assert_eq!(redacted, format!(r#"-        "Authorization": "Bearer {prefix}…[redacted]""#));
        let other = r#"+  "Authorization": "Bearer ghp_0123456789abcdefghij", "x": 1"#;
        assert_eq!(
            super::redact_secrets(other),
            r#"+  "Authorization": "Bearer ghp_…[redacted]", "x": 1"#
        );
        for kept in [
            r#"+  "Authorization": "Bearer ${env:CUSTORY_MCP_TOKEN}""#,
            "  bearer_token_env_var = \"CUSTORY_MCP_TOKEN\"",
            "the key cst_abcdefgh was rotated",
        ] {
            assert_eq!(super::redact_secrets(kept), kept);
        }
        let bare = format!("token = \"{}\"", token.expose());
        assert!(!super::redact_secrets(&bare).contains(token.expose()));
    }
}
