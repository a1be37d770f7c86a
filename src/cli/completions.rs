//! Shell completion, answered by the binary itself (clap_complete's dynamic completion).
//!
//! `custory-mcp completions SHELL` prints a short script (the files under `completions/` are its
//! output; a test keeps them current) that hands the words of each TAB back to the binary:
//! `CUSTORY_COMPLETE=SHELL custory-mcp -- WORDS…`. The binary answers from its own command tree
//! (subcommands, flags, the closed sets of values such as clients, expiries and statuses), and
//! for a KEY or `--workspace` from the server named by the words, `--server` or
//! `CUSTORY_SERVER`: the key names and workspace slugs.
//!
//! Asking the server never holds up a shell and never writes to its terminal: the answer gets
//! [`SERVER_WAIT`], and anything that goes wrong (no server, no credential saved, a workspace
//! to choose) offers nothing.

use std::ffi::{OsStr, OsString};
use std::sync::OnceLock;
use std::time::Duration;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{Bash, CompleteEnv, Elvish, EnvCompleter, Fish, Powershell, Shells, Zsh};

use crate::api::{Key, KeyStatus};
use crate::client::{AdminClient, KeysQuery, PageQuery, WorkspacesQuery};
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;

/// The environment variable that asks the binary for completions instead of running it.
const VAR: &str = "CUSTORY_COMPLETE";
/// The command completed, and the one the scripts call (found on `PATH`, so the committed
/// scripts name no path of this machine).
const BIN: &str = "custory-mcp";
/// How long a TAB waits for the server's key names or workspace slugs.
const SERVER_WAIT: Duration = Duration::from_millis(1500);
/// How many keys a TAB offers, newest first.
const KEYS_OFFERED: u32 = 100;
/// Workspace slugs offered at most (those starting with what was typed, one page).
const WORKSPACES_OFFERED: u32 = 100;

/// The shell asking, for how it wants a value with spaces quoted.
static SHELL: OnceLock<String> = OnceLock::new();

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples (a line for the shell's startup file):
  source <(custory-mcp completions bash)     # in ~/.bashrc
  source <(custory-mcp completions zsh)      # in ~/.zshrc, after compinit
  custory-mcp completions fish | source      # in ~/.config/fish/config.fish

At each TAB the script asks custory-mcp itself, which also offers the server's key names (KEY,
--key) and workspace slugs (--workspace); the server gets 1.5 seconds to answer.")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `completions SHELL`: the script that hands each TAB to the binary.
pub fn run(args: CompletionsArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let name = args.shell.to_string();
    let shell = SHELLS.completer(&name).ok_or_else(|| {
        CliError::failure(format!("completion for {name} is not available in this build"))
    })?;
    let mut script = Vec::new();
    shell.write_registration(VAR, BIN, BIN, BIN, &mut script)?;
    printer.data(String::from_utf8(script)?.trim());
    Ok(ExitStatus::Success)
}

/// When a shell asks for completions (`CUSTORY_COMPLETE` set), answers on stdout and exits;
/// otherwise returns at once. Runs before anything else can print.
pub fn answer_if_asked() {
    let Some(shell) = std::env::var_os(VAR).filter(|s| !s.is_empty() && s != "0") else {
        return;
    };
    let _ = SHELL.set(shell.to_string_lossy().into_owned());
    // Nothing a completion does reaches the terminal, not even a panic's message.
    std::panic::set_hook(Box::new(|_| {}));
    CompleteEnv::with_factory(super::command)
        .var(VAR)
        .bin(BIN)
        .completer(BIN)
        .shells(SHELLS)
        .complete();
}

/// The shells clap_complete knows, two of their scripts adapted.
const SHELLS: Shells<'static> = Shells(&[
    &Adapted { shell: &Bash, adapt: bash_with_word },
    &Elvish,
    &Fish,
    &Powershell,
    &Adapted { shell: &Zsh, adapt: zsh_autoloadable },
]);

/// The environment variable that carries the word being completed as typed, quote included.
const WORD_VAR: &str = "_CUSTORY_COMPLETE_WORD";

/// One of clap_complete's shells, with its registration script adapted by `adapt`.
struct Adapted {
    shell: &'static dyn EnvCompleter,
    adapt: fn(&str) -> std::io::Result<String>,
}

impl EnvCompleter for Adapted {
    fn name(&self) -> &'static str {
        self.shell.name()
    }

    fn is(&self, name: &str) -> bool {
        self.shell.is(name)
    }

    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        let mut script = Vec::new();
        self.shell.write_registration(var, name, bin, completer, &mut script)?;
        buf.write_all((self.adapt)(&String::from_utf8_lossy(&script))?.as_bytes())
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&std::path::Path>,
        buf: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        self.shell.write_complete(cmd, args, current_dir, buf)
    }
}

/// bash hands a completion function the word without the quote it was begun with, yet inserts
/// what it gets back as is (and closes the quote): a name with spaces needs backslashes after
/// `Cl`, none after `'Cl`. The script passes the word as typed too.
fn bash_with_word(script: &str) -> std::io::Result<String> {
    // The line that starts the completer's environment gains one variable.
    let anchor = "_CLAP_IFS=\"$IFS\" \\\n";
    if !script.contains(anchor) {
        return Err(std::io::Error::other("clap_complete's bash script changed its form"));
    }
    let word = format!("{WORD_VAR}=\"${{COMP_WORDS[COMP_CWORD]}}\" \\\n");
    Ok(script.replacen(anchor, &format!("{anchor}        {word}"), 1))
}

/// zsh runs a file `_custory-mcp` found on `$fpath` as the completion function itself, at the
/// first TAB: the script then completes that TAB too, instead of only registering.
fn zsh_autoloadable(script: &str) -> std::io::Result<String> {
    let function = format!("_clap_dynamic_completer_{}", BIN.replace('-', "_"));
    if !script.contains(&format!("function {function}()")) {
        return Err(std::io::Error::other("clap_complete's zsh script changed its form"));
    }
    Ok(format!(
        "{}\n\nif [ \"$funcstack[1]\" = \"_{BIN}\" ]; then\n    {function} \"$@\"\nfi\n",
        script.trim_end()
    ))
}

/// KEY of a command that acts on an active key: the names of the workspace's active keys
/// (their prefixes once `cst_` is typed).
pub fn active_keys() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| keys(current, Some(KeyStatus::Active)))
}

/// KEY of a command that reads any key: the names of the workspace's keys, whatever their
/// status.
pub fn any_keys() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| keys(current, None))
}

/// `--workspace`: the server's workspace slugs.
pub fn workspaces() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let typed = unquoted(current);
        let (server, _) = context();
        let prefix = typed.clone();
        let listed = ask_server(move || {
            let filter = WorkspacesQuery { prefix: Some(prefix) };
            let page = PageQuery { limit: Some(WORKSPACES_OFFERED), cursor: None };
            Ok(AdminClient::connect(&server)?.workspaces(&filter, &page)?.workspaces)
        });
        listed
            .unwrap_or_default()
            .into_iter()
            .filter(|w| w.slug.starts_with(&typed))
            .map(|w| CompletionCandidate::new(w.slug).help(Some(w.name.into())))
            .collect()
    })
}

fn keys(current: &OsStr, status: Option<KeyStatus>) -> Vec<CompletionCandidate> {
    let typed = unquoted(current);
    let (server, workspace) = context();
    let listed = ask_server(move || {
        let client = AdminClient::connect(&server)?;
        let asked = match workspace {
            Some(slug) => Some((slug, super::shared::WorkspaceFrom::Flag)),
            None => crate::settings::for_server(&server)?
                .workspace
                .map(|slug| (slug, super::shared::WorkspaceFrom::Saved)),
        };
        let (workspace, _) = super::shared::choose_workspace(&client, asked)?;
        let filter = KeysQuery { status, ..KeysQuery::default() };
        let page = PageQuery { limit: Some(KEYS_OFFERED), cursor: None };
        Ok(client.keys(&workspace.slug, &filter, &page)?.keys)
    });
    let keys: Vec<Key> = listed.unwrap_or_default();
    let by_prefix = typed.starts_with("cst_");
    let mut seen = std::collections::HashSet::new();
    keys.into_iter()
        .filter_map(|key| {
            let (value, help) =
                if by_prefix { (key.prefix, key.name) } else { (key.name, key.prefix) };
            // Several revoked keys may share a name; the name is offered once.
            (value.starts_with(&typed) && seen.insert(value.clone())).then(|| {
                let help = match status {
                    Some(_) => help,
                    None => format!("{help}, {}", key.status.as_str()),
                };
                CompletionCandidate::new(quoted(&value)).help(Some(help.into()))
            })
        })
        .collect()
}

/// The server and workspace the words being completed name (`--server`, `--workspace`, their
/// environment variables, the server last logged in to, the default server), read by parsing those words as far as they go.
fn context() -> (String, Option<String>) {
    let words: Vec<OsString> = std::env::args_os().skip_while(|a| a != "--").skip(1).collect();
    let parsed = super::command().ignore_errors(true).try_get_matches_from(words).ok();
    // Global options given after a subcommand are in the innermost one's matches.
    let mut matches = parsed.as_ref();
    while let Some((_, sub)) = matches.and_then(clap::ArgMatches::subcommand) {
        matches = Some(sub);
    }
    let value = |id: &str| {
        matches.and_then(|m| m.try_get_one::<String>(id).ok().flatten()).filter(|v| !v.is_empty())
    };
    let server = value("server").cloned().unwrap_or_else(|| {
        std::env::var("CUSTORY_SERVER")
            .ok()
            .or_else(|| crate::settings::default_server().ok().flatten())
            .unwrap_or_else(|| super::DEFAULT_SERVER.to_owned())
    });
    (server, value("workspace").cloned())
}

/// What `ask` answers within [`SERVER_WAIT`], or nothing. A server that does not answer is
/// left behind: the process ends as soon as the completions are written.
fn ask_server<T: Send + 'static>(
    ask: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(ask());
    });
    rx.recv_timeout(SERVER_WAIT).ok()?.ok()
}

/// The word being completed as the program will see it: without the quote it opens with and
/// without backslash escapes.
fn unquoted(current: &OsStr) -> String {
    let text = current.to_string_lossy();
    match text.strip_prefix(['\'', '"']) {
        Some(rest) => rest.to_owned(),
        None => {
            let mut out = String::with_capacity(text.len());
            let mut chars = text.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
            }
            out
        }
    }
}

/// `value` as the shell must insert it. zsh and fish quote what they insert themselves; bash
/// inserts it as given, closing a quote the word was begun with: inside quotes it goes as it
/// is, outside with backslashes.
fn quoted(value: &str) -> String {
    if SHELL.get().map(String::as_str) != Some("bash") {
        return value.to_owned();
    }
    let typed = std::env::var(WORD_VAR).unwrap_or_default();
    if typed.starts_with(['\'', '"']) {
        return value.to_owned();
    }
    let safe = |c: char| !c.is_ascii() || c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if !safe(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn the_word_being_completed_is_read_as_the_program_reads_it() {
        assert_eq!(super::unquoted(OsStr::new(r"Old\ la")), "Old la");
        assert_eq!(super::unquoted(OsStr::new("'Old la")), "Old la");
        assert_eq!(super::unquoted(OsStr::new("\"Old la")), "Old la");
        assert_eq!(super::unquoted(OsStr::new("cst_ab")), "cst_ab");
    }
}
