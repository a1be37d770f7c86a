//! `custory-mcp whoami`: whose credential this machine uses for --server, and what it may do.

use super::GlobalArgs;
use crate::api::AuthorKind;
use crate::client::AdminClient;
use crate::error::ExitStatus;
use crate::output::{Column, Printer, table};

pub fn run(global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let client = AdminClient::connect(&global.server)?;
    let me = client.whoami()?;
    if printer.json {
        printer.json(&me)?;
        return Ok(ExitStatus::Success);
    }
    match (me.kind, &me.name) {
        (AuthorKind::Member, Some(name)) => {
            printer.info(&format!("You are {name}, a member on {}.", client.server()));
            if me.roles.is_empty() {
                printer.info("You have no role in any workspace.");
            } else {
                let rows = me
                    .roles
                    .iter()
                    .map(|r| vec![r.workspace.clone(), r.role.to_string(), r.role.may().to_owned()])
                    .collect();
                let columns =
                    [Column::keep("Workspace"), Column::keep("Role"), Column::text("May", 1)];
                printer.data(&table(&columns, rows));
            }
        }
        _ => printer.data(&format!(
            "You are the administrator of {} (its owner credential): every workspace, its \
             members and keys.",
            client.server()
        )),
    }
    Ok(ExitStatus::Success)
}
