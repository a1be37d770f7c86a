//! `custory-mcp audit`: the workspace's key and MCP activity, newest first.

use chrono::Utc;
use serde_json::json;

use super::GlobalArgs;
use super::shared::WorkspaceClient;
use crate::api::EventsResponse;
use crate::error::ExitStatus;
use crate::output::{Printer, relative, table};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only the events of this key (id, name or prefix)
    #[arg(long)]
    pub key: Option<String>,
    /// How many events to show (1-1000)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

pub fn run(args: AuditArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let admin = WorkspaceClient::connect(global)?;
    let mut path = admin.path(&format!("/audit?limit={}", args.limit));
    if let Some(reference) = &args.key {
        path.push_str(&format!("&key={}", admin.find_key(reference)?.id));
    }
    let EventsResponse { events } = admin.client.get(&path)?;
    if printer.json {
        printer.json(&json!({"events": events}))?;
    } else if events.is_empty() {
        printer.info("No activity recorded yet.");
    } else {
        let now = Utc::now();
        let rows = events
            .into_iter()
            .map(|e| {
                let at = format!("{} ({})", e.at.format("%Y-%m-%d %H:%M"), relative(e.at, now));
                vec![at, e.kind, e.key_prefix.unwrap_or_else(|| "-".into()), e.detail]
            })
            .collect();
        printer.data(&table(&["When", "Event", "Key", "Detail"], rows));
    }
    Ok(ExitStatus::Success)
}
