//! `custory-mcp export` and `custory-mcp import`: a workspace as one JSON document
//! (`custory-workspace/1`, see `docs/WORKSPACE_FORMAT.md`), through the admin API; `import`
//! also takes a spreadsheet's rows (CSV), which become one journey. Files are streamed both
//! ways: the CLI never holds a whole export or import in memory.

use std::path::PathBuf;

use serde_json::json;

use super::{GlobalArgs, shared};
use crate::client::{AdminClient, ImportQuery};
use crate::client::{Rows, WorkspacesQuery, pages};
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp export --output acme.json
  custory-mcp --workspace acme export > acme.json
  custory-mcp export --all --output backups/")]
pub struct ExportArgs {
    /// Write to this file (with --all: this directory, one SLUG.json per workspace) instead of
    /// stdout
    #[arg(short, long, value_name = "PATH", value_hint = clap::ValueHint::AnyPath)]
    pub output: Option<PathBuf>,
    /// Export every workspace of the server (a backup); needs --output DIR
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "\
A CSV file has a header row naming its columns, in any order: stage, step, kind, title
(required), description, status, owner, priority, impact, effort. Each row is one item; the rows
become one new journey. `custory-mcp import --help` describes both formats in full.

Examples:
  custory-mcp import acme.json
  custory-mcp import acme.json --new \"Acme copy\" --slug acme-copy
  custory-mcp import roadmap.csv --journey \"Roadmap\" --dry-run",
    after_long_help = "\
The two formats (all or nothing: every problem is reported, with where it is, and nothing is
written until the whole file is valid; --dry-run checks it and writes nothing):

A workspace document (JSON, `custory-workspace/1`), as `custory-mcp export` writes it:
  {\"format\": \"custory-workspace/1\", \"workspace\": {\"name\": …, \"slug\": …},
   \"journeys\": [{\"slug\", \"name\", \"description\", \"stages\": [{\"name\", \"steps\":
     [{\"name\", \"items\": [{\"id\", \"kind\", \"title\", \"description\", \"status\", \"owner\",
       \"priority\", \"impact\", \"effort\", \"fields\", \"comments\"}]}]}]}],
   \"links\": [{\"from\": ITEM_ID, \"to\": ITEM_ID}], \"personas\": [{\"name\", \"role\", …}]}
  - Order is meaning: journeys, stages, steps and items keep the document's order.
  - An item's id only has to be unique in the document (links name items by it); the import
    gives every item a new id. Unknown members are refused, so a typo is not dropped.
  - Without --new, the workspace is created with the document's name and slug; --workspace SLUG
    imports into an existing workspace only while it holds no journeys and no personas. The
    same file imported twice is refused, not merged.

Items from a spreadsheet (CSV, a file named *.csv or --format csv; stdin needs --journey):
  stage,step,kind,title,description,status,owner,priority,impact,effort
  Discover,Compares tools,touchpoint,G2 comparison page,\"Visitors land from G2, then leave\",validated,Maya,P1,high,low
  Discover,Compares tools,insight,Pricing is unclear,,draft,,P0,high,
  - The header row is required and names the columns, in any order: stage, step, kind and title
    are required; description, status, owner, priority, impact and effort optional. Any other
    column is refused by its name. UTF-8; a cell holding a comma, a quote or a line break is
    quoted (\"a, b\"), as spreadsheets write them.
  - Each row is one item. The rows become one new journey (named by --journey, else the file's
    name without .csv), added to the workspace commands act on (--workspace, the default set
    with `custory-mcp workspaces use`, or the only one), or to a new one with --new.
  - Values: kind is one of touchpoint, insight, opportunity, solution, metric; status one of
    the kind's statuses (empty: its default); priority P0 (most urgent) to P3; impact and effort
    low, medium or high. Titles and names up to 200 characters, descriptions up to 10,000; at
    most 30 stages in a journey and 30 steps in a stage.
  - The same file imported twice is refused (the journey's slug is taken): pass another
    --journey NAME to import it again.

Examples:
  custory-mcp import acme.json
  custory-mcp import acme.json --new \"Acme copy\" --slug acme-copy
  custory-mcp import roadmap.csv --journey \"Roadmap\" --dry-run"
)]
pub struct ImportArgs {
    /// The workspace document (JSON) or the items (CSV) to import (`-` reads stdin)
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub file: PathBuf,
    /// Import into a new workspace with this name [default: JSON: the document's name and
    /// slug, or the existing, empty workspace that --workspace names; CSV: the existing
    /// workspace that --workspace names]
    #[arg(long, value_name = "NAME")]
    pub new: Option<String>,
    /// The new workspace's slug [default: made from its name]
    #[arg(long, requires = "new")]
    pub slug: Option<String>,
    /// CSV: the name of the journey the rows become; its slug is made from it [default: the
    /// file's name without .csv]
    #[arg(long, value_name = "NAME")]
    pub journey: Option<String>,
    /// The file's format [default: csv for a file named *.csv, else json]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ImportFormat>,
    /// Check everything and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// What `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// A workspace document (`custory-workspace/1`), as `export` writes it
    Json,
    /// A spreadsheet's rows, one item each: one new journey
    Csv,
}

pub fn export(
    args: ExportArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let client = AdminClient::connect(&global.server)?;
    if args.all {
        let Some(dir) = args.output else {
            return Err(CliError::usage("--all writes one file per workspace")
                .hint("pass --output DIR (a directory, made when missing)")
                .into());
        };
        crate::fsutil::create_private_dir(&dir).map_err(|error| {
            CliError::failure(format!("could not create {}: {error}", dir.display()))
        })?;
        let mut written = Vec::new();
        let filter = WorkspacesQuery::default();
        let every = pages(Rows::All, |page| client.workspaces(&filter, page), |_| {})?;
        for workspace in every.workspaces {
            let path = dir.join(format!("{}.json", workspace.slug));
            let bytes = client.export(&workspace.slug, &path)?;
            printer.info(&format!("{}: {bytes} bytes to {}", workspace.slug, path.display()));
            written.push(json!({"workspace": workspace.slug, "path": path, "bytes": bytes}));
        }
        if printer.json {
            printer.json(&json!({"exported": written}))?;
        }
        return Ok(ExitStatus::Success);
    }
    let asked = shared::workspace_asked(global)?;
    let (workspace, _) = shared::choose_workspace(&client, asked)?;
    match args.output {
        Some(file) => {
            let bytes = client.export(&workspace.slug, &file)?;
            if printer.json {
                printer
                    .json(&json!({"workspace": workspace.slug, "path": file, "bytes": bytes}))?;
            } else {
                let path = file.display().to_string();
                printer.info(&format!(
                    "Exported {:?} ({bytes} bytes) to {}. Import it into another server with \
                     `custory-mcp --server URL import {}`.",
                    workspace.name,
                    file.display(),
                    shared::shell_quote(&path)
                ));
            }
        }
        None => {
            client.export_to(&workspace.slug, &mut std::io::stdout().lock())?;
        }
    }
    Ok(ExitStatus::Success)
}

pub fn import(
    args: ImportArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let format = args.format.unwrap_or_else(|| {
        let csv = args.file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if csv { ImportFormat::Csv } else { ImportFormat::Json }
    });
    let journey = match (format, &args.journey) {
        (ImportFormat::Json, None) => None,
        (ImportFormat::Json, Some(_)) => {
            return Err(CliError::usage(
                "--journey names the journey a CSV file becomes; a JSON document names its own",
            )
            .hint("pass --format csv if the file is CSV")
            .into());
        }
        (ImportFormat::Csv, Some(name)) => Some(name.clone()),
        (ImportFormat::Csv, None) => {
            let stem = (args.file.as_os_str() != "-")
                .then(|| args.file.file_stem())
                .flatten()
                .map(|stem| stem.to_string_lossy().into_owned());
            let Some(stem) = stem else {
                return Err(CliError::usage("a CSV read from stdin needs a journey name")
                    .hint("pass --journey NAME")
                    .into());
            };
            Some(stem)
        }
    };
    let client = AdminClient::connect(&global.server)?;
    let workspace = match (&args.new, &global.workspace) {
        (Some(_), _) => None,
        (None, Some(slug)) => Some(slug.clone()),
        // A journey goes into a workspace: the server's only one, when it has one.
        (None, None) if journey.is_some() => {
            let asked = shared::workspace_asked(global)?;
            Some(shared::choose_workspace(&client, asked)?.0.slug)
        }
        (None, None) => None,
    };
    let target = ImportQuery {
        workspace,
        new: args.new.clone(),
        slug: args.slug.clone(),
        journey: journey.clone(),
        dry_run: args.dry_run,
    };
    let size = if args.file.as_os_str() == "-" {
        None
    } else {
        let meta = std::fs::metadata(&args.file).map_err(|error| {
            CliError::failure(format!("could not read {}: {error}", args.file.display()))
        })?;
        Some(meta.len())
    };
    if let Some(size) = size.filter(|&s| s > 1 << 20) {
        printer.info(&format!("Sending {} ({:.1} MB)…", args.file.display(), size as f64 / 1e6));
    }
    let content_type = match format {
        ImportFormat::Json => "application/json",
        ImportFormat::Csv => "text/csv; charset=utf-8",
    };
    let answer = client.import(&target, &args.file, content_type)?;
    if printer.json {
        printer.json(&answer)?;
        return Ok(ExitStatus::Success);
    }
    let c = &answer.counts;
    if let Some(journey) = &answer.journey {
        let what = shared::counted(&[(c.stages, "stage"), (c.steps, "step"), (c.items, "item")]);
        if answer.dry_run {
            printer.info(&format!(
                "The CSV is valid: importing it would add the journey {journey:?} ({what}) to \
                 {:?}. Nothing was written (--dry-run).",
                answer.workspace
            ));
        } else {
            printer.data(&answer.workspace);
            let next = if args.new.is_some() {
                format!(
                    " Create a key for it with `{}`.",
                    shared::command_line(
                        global,
                        &[&["--workspace", answer.workspace.as_str()], &shared::CREATE_KEY[..]]
                            .concat()
                    )
                )
            } else {
                String::new()
            };
            printer.info(&format!(
                "Imported the journey {journey:?} ({what}) into {:?}.{next}",
                answer.workspace
            ));
        }
        return Ok(ExitStatus::Success);
    }
    let what = shared::holds(c);
    if answer.dry_run {
        printer.info(&format!(
            "The document is valid: importing it would write {what} into {:?}. Nothing was \
             written (--dry-run).",
            answer.workspace
        ));
    } else {
        printer.data(&answer.workspace);
        printer.info(&format!(
            "Imported {what} into {:?}. Create a key for it with `{}`.",
            answer.workspace,
            shared::command_line(
                global,
                &[&["--workspace", answer.workspace.as_str()], &shared::CREATE_KEY[..]].concat()
            )
        ));
    }
    Ok(ExitStatus::Success)
}
