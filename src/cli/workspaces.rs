//! `custory-mcp workspaces list|create`.

use chrono::Utc;
use serde_json::json;

use super::GlobalArgs;
use crate::api::{CreateWorkspace, WorkspaceResponse, WorkspacesResponse};
use crate::client::AdminClient;
use crate::error::ExitStatus;
use crate::output::{Printer, relative, table};

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
            let WorkspacesResponse { workspaces } = client.get("/workspaces")?;
            if printer.json {
                printer.json(&json!({"workspaces": workspaces}))?;
            } else {
                let now = Utc::now();
                let rows = workspaces
                    .into_iter()
                    .map(|w| vec![w.slug, w.name, relative(w.created_at, now)])
                    .collect();
                printer.data(&table(&["Slug", "Name", "Created"], rows));
            }
        }
        WorkspacesCommand::Create { name, slug } => {
            let body = CreateWorkspace { name, slug };
            let WorkspaceResponse { workspace } = client.post("/workspaces", Some(&body))?;
            if printer.json {
                printer.json(&json!({"workspace": workspace}))?;
            } else {
                printer.data(&workspace.slug);
                printer.info(&format!(
                    "Created workspace {:?}. Create a key in it with `custory-mcp --workspace {} keys create`.",
                    workspace.name, workspace.slug
                ));
            }
        }
    }
    Ok(ExitStatus::Success)
}
