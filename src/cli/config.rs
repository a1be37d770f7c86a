//! `custory-mcp config CLIENT`: the ready-to-paste (or merged) MCP config for each client.

use super::GlobalArgs;
use crate::error::ExitStatus;
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {}

pub fn run(args: ConfigArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let _ = (args, global, printer);
    anyhow::bail!("not implemented yet")
}
