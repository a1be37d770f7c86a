//! `custory-mcp export` and `custory-mcp import`: a workspace as one JSON document
//! (`custory-workspace/1`, see `docs/WORKSPACE_FORMAT.md`), through the admin API. Files are
//! streamed both ways: the CLI never holds a whole export or import in memory.

use std::path::PathBuf;

use serde_json::json;

use super::GlobalArgs;
use crate::api::{ImportResponse, WorkspacesResponse};
use crate::client::AdminClient;
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to this file (with --all: this directory, one SLUG.json per workspace) instead of
    /// stdout
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Export every workspace of the server (a backup); needs --output DIR
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The workspace document to import (`-` reads stdin)
    pub file: PathBuf,
    /// Import as a new workspace with this name [default: the document's name and slug; or
    /// into the existing, empty workspace that --workspace names]
    #[arg(long, value_name = "NAME")]
    pub new: Option<String>,
    /// The new workspace's slug [default: made from its name]
    #[arg(long, requires = "new")]
    pub slug: Option<String>,
    /// Check everything and write nothing
    #[arg(long)]
    pub dry_run: bool,
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
        let WorkspacesResponse { workspaces } = client.get("/workspaces")?;
        let mut written = Vec::new();
        for workspace in workspaces {
            let path = dir.join(format!("{}.json", workspace.slug));
            let bytes =
                client.download(&format!("/workspaces/{}/export", workspace.slug), &path)?;
            printer.info(&format!("{}: {bytes} bytes to {}", workspace.slug, path.display()));
            written.push(json!({"workspace": workspace.slug, "path": path, "bytes": bytes}));
        }
        if printer.json {
            printer.json(&json!({"exported": written}))?;
        }
        return Ok(ExitStatus::Success);
    }
    let workspace = client.workspace(global.workspace.as_deref())?;
    let path = format!("/workspaces/{}/export", workspace.slug);
    match args.output {
        Some(file) => {
            let bytes = client.download(&path, &file)?;
            if printer.json {
                printer
                    .json(&json!({"workspace": workspace.slug, "path": file, "bytes": bytes}))?;
            } else {
                printer.info(&format!(
                    "Exported {:?} ({bytes} bytes) to {}. Import it elsewhere with `custory-mcp \
                     import {}`.",
                    workspace.name,
                    file.display(),
                    file.display()
                ));
            }
        }
        None => {
            client.download_to(&path, &mut std::io::stdout().lock())?;
        }
    }
    Ok(ExitStatus::Success)
}

pub fn import(
    args: ImportArgs,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let client = AdminClient::connect(&global.server)?;
    let mut query = Vec::new();
    match (&args.new, &global.workspace) {
        (Some(name), _) => {
            query.push(("new", name.clone()));
            if let Some(slug) = &args.slug {
                query.push(("slug", slug.clone()));
            }
        }
        (None, Some(slug)) => query.push(("workspace", slug.clone())),
        (None, None) => {}
    }
    if args.dry_run {
        query.push(("dry_run", "true".to_owned()));
    }
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
    let answer: ImportResponse = client.upload("/imports", &query, &args.file)?;
    if printer.json {
        printer.json(&answer)?;
        return Ok(ExitStatus::Success);
    }
    let c = &answer.counts;
    let what = format!(
        "{} journeys, {} stages, {} steps, {} items, {} links, {} comments, {} personas",
        c.journeys, c.stages, c.steps, c.items, c.links, c.comments, c.personas
    );
    if answer.dry_run {
        printer.info(&format!(
            "The document is valid: importing it would write {what} into {:?}. Nothing was \
             written (--dry-run).",
            answer.workspace
        ));
    } else {
        printer.data(&answer.workspace);
        printer.info(&format!(
            "Imported {what} into {:?}. Create a key for it with `custory-mcp --workspace {} keys \
             create`.",
            answer.workspace, answer.workspace
        ));
    }
    Ok(ExitStatus::Success)
}
