//! `custory-mcp workspaces list|create`.

use chrono::Utc;
use serde_json::json;

use super::{GlobalArgs, shared};
use crate::api::{CreateWorkspace, Template, WorkspaceResponse};
use crate::client::AdminClient;
use crate::error::ExitStatus;
use crate::output::{Column, Printer, relative, table};

#[derive(Debug, clap::Subcommand)]
pub enum WorkspacesCommand {
    /// List the server's workspaces
    List,
    /// Create a workspace
    Create {
        /// The workspace's name
        name: String,
        /// Its URL slug [default: made from the name]
        #[arg(long)]
        slug: Option<String>,
        /// What it starts with: nothing, or a journey with a persona and example items
        #[arg(long, value_enum, default_value_t = Template::Blank)]
        template: Template,
    },
}

pub fn run(
    command: WorkspacesCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let client = AdminClient::connect(&global.server)?;
    match command {
        WorkspacesCommand::List => {
            let workspaces = client.workspaces()?;
            if printer.json {
                printer.json(&json!({"workspaces": workspaces}))?;
            } else {
                let now = Utc::now();
                let rows = workspaces
                    .into_iter()
                    .map(|w| vec![w.slug, w.name, relative(w.created_at, now)])
                    .collect();
                let columns =
                    [Column::keep("Slug"), Column::keep("Name"), Column::optional("Created", 1)];
                printer.data(&table(&columns, rows));
            }
        }
        WorkspacesCommand::Create { name, slug, template } => {
            let body = CreateWorkspace { name, slug, template: Some(template) };
            let created = client.create_workspace(&body)?;
            if printer.json {
                printer.json(&created)?;
            } else {
                let WorkspaceResponse { workspace, template, contents } = created;
                printer.data(&workspace.slug);
                let from = match template {
                    Template::Blank => String::new(),
                    _ => format!(" from the {template} template: {}", shared::holds(&contents)),
                };
                let create = shared::command_line(
                    global,
                    &[&["--workspace", workspace.slug.as_str()], &shared::CREATE_KEY[..]].concat(),
                );
                printer.info(&format!(
                    "Created workspace {:?}{from}. Create a key in it with `{create}`.",
                    workspace.name
                ));
            }
        }
    }
    Ok(ExitStatus::Success)
}
