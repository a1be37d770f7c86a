//! `custory-mcp workspaces list|create|use`.

use chrono::Utc;
use serde_json::json;

use super::{GlobalArgs, shared};
use crate::api::{CreateWorkspace, Template, WorkspaceResponse, WorkspacesResponse};
use crate::client::{AdminClient, PageQuery, Rows, WorkspacesQuery, pages};
use crate::error::{CliError, ExitStatus};
use crate::output::{Column, Printer, relative, table};
use crate::settings;

#[derive(Debug, clap::Subcommand)]
pub enum WorkspacesCommand {
    /// List the server's workspaces (yours, with a member's credential), by slug
    #[command(after_help = "\
Examples:
  custory-mcp workspaces list
  custory-mcp workspaces list --all --json
  custory-mcp workspaces list --limit 20 --cursor CURSOR")]
    List {
        /// Show at most this many workspaces
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Show every workspace, however many pages that takes
        #[arg(long, conflicts_with_all = ["limit", "cursor"])]
        all: bool,
        /// Start after the page that gave this next_cursor
        #[arg(long)]
        cursor: Option<String>,
    },
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
        WorkspacesCommand::List { limit, all, cursor } => {
            let rows = if all { Rows::All } else { Rows::First(limit) };
            let filter = WorkspacesQuery::default();
            let listed = pages(
                rows,
                |page| {
                    // The first page starts at --cursor when given.
                    let page = PageQuery {
                        limit: page.limit,
                        cursor: page.cursor.clone().or_else(|| cursor.clone()),
                    };
                    client.workspaces(&filter, &page)
                },
                |read| {
                    if read.is_multiple_of(10_000) {
                        printer.info(&format!("{read} workspaces so far…"));
                    }
                },
            )?;
            let WorkspacesResponse { workspaces, next_cursor } = listed;
            let default = settings::for_server(client.server())?.workspace;
            if printer.json {
                let mut answer = json!({"workspaces": workspaces, "default": default});
                if let Some(cursor) = &next_cursor {
                    answer["next_cursor"] = json!(cursor);
                }
                printer.json(&answer)?;
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
                if let Some(cursor) = next_cursor {
                    let next = shared::command_line(
                        global,
                        &["workspaces", "list", "--limit", &limit.to_string(), "--cursor", &cursor],
                    );
                    printer.info(&format!(
                        "Showing {limit}; there are more: pass --all for every workspace, or \
                         `{next}` for the next page."
                    ));
                }
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
    let (workspace, _) = shared::choose_workspace(&client, asked).map_err(|error| {
        match error.downcast::<CliError>() {
            Ok(cli) => cli.hint("`custory-mcp workspaces list` shows them").into(),
            Err(other) => other,
        }
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
