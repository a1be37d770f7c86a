//! `custory-mcp completions SHELL`: the shell completion script.

use crate::error::ExitStatus;
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {}

pub fn run(args: CompletionsArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let _ = (args, printer);
    anyhow::bail!("not implemented yet")
}
