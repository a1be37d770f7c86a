//! The command line: global options, the command tree, and dispatch. One file per command.

mod audit;
mod completions;
mod config;
mod hygiene;
mod keys;
mod login;
mod members;
mod prompt;
mod serve;
mod shared;
mod test;
mod transfer;
mod whoami;
mod workspaces;

use clap::{Parser, Subcommand};

use crate::error::{CliError, ExitStatus};
use crate::output::{ColorChoice, Printer};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8787";
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
#[command(name = "custory-mcp", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The Custory server to manage
    #[arg(long, global = true, env = "CUSTORY_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// The workspace to act on (may be omitted when the server has one workspace)
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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local Custory server (admin API and MCP endpoint)
    Serve(Box<serve::ServeArgs>),
    /// Store the owner credential for --server
    Login(login::LoginArgs),
    /// Forget the owner credential for --server
    Logout,
    /// Manage workspaces
    #[command(subcommand)]
    Workspaces(workspaces::WorkspacesCommand),
    /// Manage a workspace's members: invite, list, change a role, remove
    #[command(subcommand)]
    Members(members::MembersCommand),
    /// Show whose credential this machine uses for --server, and what it may do
    Whoami,
    /// Manage MCP keys: create, list, show, revoke, rotate
    #[command(subcommand)]
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
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

fn run(cli: Cli, printer: Printer) -> anyhow::Result<ExitStatus> {
    if let Some(path) = &cli.global.ca_cert {
        crate::client::trust_ca_file(path)?;
    }
    match cli.command {
        Command::Serve(args) => serve::run(*args, &cli.global, printer),
        Command::Login(args) => login::login(args, &cli.global, printer),
        Command::Logout => login::logout(&cli.global, printer),
        Command::Workspaces(command) => workspaces::run(command, &cli.global, printer),
        Command::Members(command) => members::run(command, &cli.global, printer),
        Command::Whoami => whoami::run(&cli.global, printer),
        Command::Keys(command) => keys::run(command, &cli.global, printer),
        Command::Audit(args) => audit::run(args, &cli.global, printer),
        Command::Config(args) => config::run(args, &cli.global, printer),
        Command::Completions(args) => completions::run(args, printer),
        Command::Test(args) => test::run(args, &cli.global, printer),
        Command::Export(args) => transfer::export(args, &cli.global, printer),
        Command::Import(args) => transfer::import(args, &cli.global, printer),
    }
}
