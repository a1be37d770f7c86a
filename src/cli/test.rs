//! `custory-mcp test`: check an MCP connection end to end, stage by stage.

use super::GlobalArgs;
use crate::error::ExitStatus;
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct TestArgs {}

pub fn run(args: TestArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let _ = (args, global, printer);
    anyhow::bail!("not implemented yet")
}
