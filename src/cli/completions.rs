//! `custory-mcp completions SHELL`: the shell completion script, generated from the command
//! tree itself. The scripts committed under `completions/` are this command's output (a test
//! keeps them current).

use clap::CommandFactory as _;

use crate::error::ExitStatus;
use crate::output::Printer;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp completions bash > ~/.local/share/bash-completion/completions/custory-mcp
  custory-mcp completions zsh > \"${fpath[1]}/_custory-mcp\"
  custory-mcp completions fish > ~/.config/fish/completions/custory-mcp.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

pub fn run(args: CompletionsArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let mut command = super::Cli::command();
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    let script = String::from_utf8(script)?;
    printer.data(script.strip_suffix('\n').unwrap_or(&script));
    Ok(ExitStatus::Success)
}
