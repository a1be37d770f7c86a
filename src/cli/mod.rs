//! The command line: global options, the command tree, and dispatch. One file per command.

mod audit;
mod completions;
mod config;
mod hygiene;
mod keys;
mod login;
mod members;
mod policy;
mod prompt;
mod serve;
pub(crate) mod shared;
mod status;
mod test;
mod transfer;
mod webhooks;
mod whoami;
mod workspaces;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::error::{CliError, ExitStatus};
use crate::output::{ColorChoice, Printer};

pub use crate::client::DEFAULT_SERVER;
/// The environment variable configs and `test` read the MCP token from by default.
pub const DEFAULT_TOKEN_ENV: &str = "CUSTORY_MCP_TOKEN";

/// `--token-env`: a portable environment variable name, safe to put in `"$NAME"` in a shell
/// command or a config file.
pub fn env_var_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?} is not an environment variable name: use letters, digits and _, not \
             starting with a digit (e.g. CUSTORY_MCP_TOKEN)"
        ))
    }
}

/// Workspace-scoped MCP keys for Custory, and the local server that serves them.
#[derive(Debug, Parser)]
#[command(
    name = "custory-mcp",
    version,
    about,
    max_term_width = 100,
    after_help = "\
Start here (a local server on SQLite, no configuration):
  custory-mcp serve        # in a terminal of its own; keep it running
  custory-mcp keys create --name \"Cursor on MacBook\" --expires 90d --save
  custory-mcp config cursor --key \"Cursor on MacBook\" --write
  custory-mcp test --key \"Cursor on MacBook\"
  custory-mcp status       # what the commands use, and whether it works

`custory-mcp COMMAND --help` shows each command's options and examples."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// With no command, the help above is printed (exit 0).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The options only the admin client uses: `serve` accepts them (they are global) but its
/// help does not list them.
const CLIENT_ONLY: [&str; 3] = ["server", "workspace", "ca_cert"];

/// The command line as parsed and as `--help` shows it: [`Cli`], with the client's options
/// left out of `serve --help`.
pub fn command() -> clap::Command {
    let command = Cli::command();
    // `serve` gets hidden copies of them before clap propagates the global options, which
    // skips an option a subcommand already has.
    let hidden: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| CLIENT_ONLY.contains(&arg.get_id().as_str()))
        .map(|arg| arg.clone().hide(true))
        .collect();
    command.mut_subcommand("serve", |serve| serve.args(hidden))
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The Custory server to manage [default: the one last logged in to, else
    /// http://127.0.0.1:8787]
    #[arg(long, global = true, env = "CUSTORY_SERVER", default_value = DEFAULT_SERVER, hide_default_value = true, value_name = "URL")]
    pub server: String,
    /// The workspace to act on [default: the one `workspaces use` set for --server, else the
    /// server's only one]
    #[arg(long, global = true, env = "CUSTORY_WORKSPACE", value_name = "SLUG", add = completions::workspaces())]
    pub workspace: Option<String>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// When to use colors (NO_COLOR is respected)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print only data and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Show each request to the server and its answer on stderr (serve: log more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Trust the CA certificates in this PEM file too, for an https --server with a private CA
    #[arg(long, global = true, env = "CUSTORY_CA_CERT", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Where --server's value came from.
    #[arg(skip)]
    pub server_from: Given,
    /// Where --workspace's value came from (when it has one).
    #[arg(skip)]
    pub workspace_from: Given,
}

/// Where a global option's value came from: the command line, its environment variable, or
/// its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Given {
    Flag,
    Env,
    /// Saved in the settings (`--server`: by the last `login`).
    Saved,
    #[default]
    Default,
}

impl Given {
    /// How `status` names where `--server` came from.
    pub fn describe_server(self) -> &'static str {
        match self {
            Self::Flag => "--server",
            Self::Env => "CUSTORY_SERVER",
            Self::Saved => "the last login",
            Self::Default => "the default",
        }
    }

    /// Where the value of `id` in the innermost subcommand's matches (where global options
    /// given after a subcommand land) came from.
    fn of(matches: &clap::ArgMatches, id: &str) -> Self {
        let mut innermost = matches;
        while let Some((_, sub)) = innermost.subcommand() {
            innermost = sub;
        }
        match innermost.value_source(id).or_else(|| matches.value_source(id)) {
            Some(clap::parser::ValueSource::CommandLine) => Self::Flag,
            Some(clap::parser::ValueSource::EnvVariable) => Self::Env,
            _ => Self::Default,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local Custory server (admin API and MCP endpoint)
    Serve(Box<serve::ServeArgs>),
    /// Store the owner credential for --server
    Login(login::LoginArgs),
    /// Forget the owner credential for --server
    #[command(
        after_help = "Examples:\n  custory-mcp logout\n  custory-mcp logout --server https://mcp.example.com"
    )]
    Logout,
    /// Show the server, the owner credential and the workspace commands use, and whether they work
    #[command(after_help = "\
Exits 1, saying what to run, when commands could not work with what is there.

Examples:
  custory-mcp status
  custory-mcp --server https://mcp.example.com status --json")]
    Status,
    /// Manage workspaces
    #[command(
        subcommand,
        after_help = "\
Examples:
  custory-mcp workspaces list
  custory-mcp workspaces create \"Beta Team\"
  custory-mcp workspaces use beta-team"
    )]
    Workspaces(workspaces::WorkspacesCommand),
    /// Manage a workspace's members: invite (and withdraw), list, change a role, remove
    #[command(
        subcommand,
        after_help = "\
Roles: owner (members and every key), editor (creates keys; rotates and revokes their own),
viewer (reads keys and the audit). The last owner of a workspace stays one.

Examples:
  custory-mcp members invite \"Ada Lovelace\" --role editor
  custory-mcp members list
  custory-mcp members remove \"Ada Lovelace\" --revoke-keys"
    )]
    Members(members::MembersCommand),
    /// Send key and member events to a URL, signed (Standard Webhooks): add, list, remove,
    /// test, deliveries
    #[command(
        subcommand,
        after_help = "\
Each delivery carries webhook-id, webhook-timestamp and webhook-signature headers; verify them
with the secret `webhooks add` prints once. Retried with backoff, in order per webhook.

Examples:
  custory-mcp webhooks add https://hooks.example.com/custory
  custory-mcp webhooks deliveries"
    )]
    Webhooks(webhooks::WebhooksCommand),
    /// The workspace's key policy: the longest expiry, the most a key may have, revocation of
    /// unused keys (owners set it)
    #[command(
        subcommand,
        after_help = "\
A key that breaks a newer policy is blocked (its calls get 403) until `keys rotate` replaces it
with one that keeps the policy, or the policy changes back.

Examples:
  custory-mcp policy show
  custory-mcp policy set --max-expiry 90d --tools read,comments"
    )]
    Policy(policy::PolicyCommand),
    /// Show whose credential this machine uses for --server, and what it may do
    #[command(after_help = "Examples:\n  custory-mcp whoami\n  custory-mcp whoami --json")]
    Whoami,
    /// Manage MCP keys: create, list, show, revoke, rotate, narrow, review
    #[command(
        subcommand,
        after_help = "\
KEY, wherever a command takes one, is a key's name, id (key_…) or displayed prefix (cst_…); an
id or prefix finds the key in whichever workspace it is. On a terminal, leave KEY out to pick.

Examples:
  custory-mcp keys create --name \"Cursor on MacBook\" --expires 90d --save
  custory-mcp keys list
  custory-mcp keys revoke \"Old laptop\""
    )]
    Keys(keys::KeysCommand),
    /// Show the workspace's key and MCP activity, newest first
    Audit(audit::AuditArgs),
    /// Print or write the MCP config for a client (Cursor, Claude Code, VS Code, …)
    Config(config::ConfigArgs),
    /// Check a connection to the MCP endpoint, stage by stage
    Test(test::TestArgs),
    /// Write a workspace (or, with --all, every workspace) as a JSON document
    Export(transfer::ExportArgs),
    /// Import a workspace that `export` wrote, or a journey from a CSV file (all or nothing)
    Import(transfer::ImportArgs),
    /// Print the shell completion script
    Completions(completions::CompletionsArgs),
}

/// Runs the command line and returns the process exit status.
pub fn main() -> std::process::ExitCode {
    // A shell asking for completions gets them and nothing else.
    completions::answer_if_asked();
    let parsed = command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            cli.global.server_from = Given::of(&matches, "server");
            cli.global.workspace_from = Given::of(&matches, "workspace");
            cli
        }
        Err(error) => {
            let status = if error.use_stderr() { ExitStatus::Usage } else { ExitStatus::Success };
            let _ = error.print();
            return status.into();
        }
    };
    let printer = Printer::new(cli.global.json, cli.global.quiet, cli.global.color);
    crate::output::set_verbose(cli.global.verbose > 0);
    match run(cli, printer) {
        Ok(status) => status.into(),
        Err(error) => {
            printer.error(&error);
            error.downcast_ref::<CliError>().map_or(ExitStatus::Failure, |e| e.status).into()
        }
    }
}

fn run(mut cli: Cli, printer: Printer) -> anyhow::Result<ExitStatus> {
    // --server is checked before anything else happens, credentials included; `serve` does
    // not use it, so a CUSTORY_SERVER the client would refuse does not stop a server.
    if !matches!(cli.command, Some(Command::Serve(_) | Command::Completions(_)) | None) {
        // Neither --server nor CUSTORY_SERVER: the server last logged in to, if any.
        if cli.global.server_from == Given::Default
            && let Some(saved) = crate::settings::default_server()?
        {
            cli.global.server = saved;
            cli.global.server_from = Given::Saved;
        }
        let given = &cli.global.server;
        cli.global.server = crate::client::server_url(given).map_err(|why| {
            let flag = match cli.global.server_from {
                Given::Env => "CUSTORY_SERVER",
                Given::Saved => "saved server (the last `login --server`)",
                Given::Flag | Given::Default => "--server",
            };
            CliError::usage(format!("invalid {flag} {given:?}: {why}")).hint(format!(
                "--server is the base URL `custory-mcp serve` prints when it starts, e.g. {}",
                DEFAULT_SERVER
            ))
        })?;
    }
    if let Some(path) = &cli.global.ca_cert {
        crate::client::trust_ca_file(path)?;
    }
    let Some(command) = cli.command else {
        // Bare `custory-mcp`: the overview, as `--help` prints it, and success.
        self::command().print_help()?;
        return Ok(ExitStatus::Success);
    };
    match command {
        Command::Serve(args) => serve::run(*args, &cli.global, printer),
        Command::Login(args) => login::login(args, &cli.global, printer),
        Command::Logout => login::logout(&cli.global, printer),
        Command::Workspaces(command) => workspaces::run(command, &cli.global, printer),
        Command::Members(command) => members::run(command, &cli.global, printer),
        Command::Webhooks(command) => webhooks::run(command, &cli.global, printer),
        Command::Policy(command) => policy::run(command, &cli.global, printer),
        Command::Whoami => whoami::run(&cli.global, printer),
        Command::Keys(command) => keys::run(command, &cli.global, printer),
        Command::Audit(args) => audit::run(args, &cli.global, printer),
        Command::Config(args) => config::run(args, &cli.global, printer),
        Command::Completions(args) => completions::run(args, printer),
        Command::Test(args) => test::run(args, &cli.global, printer),
        Command::Export(args) => transfer::export(args, &cli.global, printer),
        Command::Import(args) => transfer::import(args, &cli.global, printer),
        Command::Status => status::run(&cli.global, printer),
    }
}
