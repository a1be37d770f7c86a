//! `custory-mcp workspaces list|create|use`.

use chrono::Utc;
use serde_json::json;

use super::{GlobalArgs, shared};
use crate::api::{CreateWorkspace, Template, WorkspaceResponse};
use crate::client::AdminClient;
use crate::error::{CliError, ExitStatus};
use crate::output::{Column, Printer, relative, table};
use crate::settings;

#[derive(Debug, clap::Subcommand)]
pub enum WorkspacesCommand {
    /// List the server's workspaces
    #[command(
        after_help = "Examples:\n  custory-mcp workspaces list\n  custory-mcp workspaces list --json"
    )]
    List,
    /// Create a workspace
    #[command(after_help = "\
Examples:
  custory-mcp workspaces create \"Beta Team\"
  custory-mcp workspaces create \"Onboarding lab\" --slug lab \\
      --template onboarding")]
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
    /// Make a workspace the default for --server: commands act on it when neither
    /// --workspace nor CUSTORY_WORKSPACE names one
    #[command(after_help = "\
The default is saved per server, in settings.json in the configuration directory.

Examples:
  custory-mcp workspaces use beta-team
  custory-mcp workspaces use --clear")]
    Use {
        /// The workspace's slug (`custory-mcp workspaces list` shows them)
        #[arg(required_unless_present = "clear", add = super::completions::workspaces())]
        slug: Option<String>,
        /// Forget the default instead
        #[arg(long, conflicts_with = "slug")]
        clear: bool,
    },
}

pub fn run(
    command: WorkspacesCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    if let WorkspacesCommand::Use { slug, clear } = command {
        return use_workspace(slug, clear, global, printer);
    }
    let client = AdminClient::connect(&global.server)?;
    match command {
        WorkspacesCommand::List => {
            let workspaces = client.workspaces()?;
            let default = settings::for_server(client.server())?.workspace;
            if printer.json {
                printer.json(&json!({"workspaces": workspaces, "default": default}))?;
            } else {
                let now = Utc::now();
                let rows = workspaces
                    .into_iter()
                    .map(|w| {
                        let slug = if default.as_deref() == Some(w.slug.as_str()) {
                            format!("{} (default)", w.slug)
                        } else {
                            w.slug
                        };
                        vec![slug, w.name, relative(w.created_at, now)]
                    })
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
                let use_it = shared::command_line(global, &["workspaces", "use", &workspace.slug]);
                printer.info(&format!(
                    "Created workspace {:?}{from}. Create a key in it with `{create}`, or make it \
                     the default with `{use_it}`.",
                    workspace.name
                ));
            }
        }
        WorkspacesCommand::Use { .. } => unreachable!("answered above"),
    }
    Ok(ExitStatus::Success)
}

/// `workspaces use SLUG`: checks that the server has it, then saves it as the default for
/// `--server` (`--clear` forgets it).
fn use_workspace(
    slug: Option<String>,
    clear: bool,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let mut saved = settings::for_server(&global.server)?;
    let slug = match slug.filter(|_| !clear) {
        None => {
            let was = saved.workspace.take();
            settings::save(&global.server, saved)?;
            if printer.json {
                printer.json(&json!({"server": global.server, "default": null}))?;
            }
            printer.info(&match was {
                Some(was) => format!(
                    "{} has no default workspace now (it was {was}); commands need --workspace \
                     when it has several.",
                    global.server
                ),
                None => format!("{} had no default workspace; nothing to do.", global.server),
            });
            return Ok(ExitStatus::Success);
        }
        Some(slug) => slug,
    };
    let client = AdminClient::connect(&global.server)?;
    let asked = Some((slug, shared::WorkspaceFrom::Flag));
    let (workspace, _) = shared::choose_workspace(client.server(), client.workspaces()?, asked)
        .map_err(|error| match error.downcast::<CliError>() {
            Ok(cli) => cli.hint("`custory-mcp workspaces list` shows them").into(),
            Err(other) => other,
        })?;
    saved.workspace = Some(workspace.slug.clone());
    let file = settings::save(client.server(), saved)?;
    if printer.json {
        printer.json(&json!({"server": client.server(), "default": workspace.slug}))?;
    }
    printer.info(&format!(
        "Commands on {} now act on {:?} ({}) unless --workspace says otherwise. Saved in {}.",
        client.server(),
        workspace.name,
        workspace.slug,
        file.display()
    ));
    Ok(ExitStatus::Success)
}
