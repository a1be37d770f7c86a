//! `custory-mcp audit`: the workspace's key and MCP activity, newest first.

use chrono::Utc;
use serde_json::json;

use super::GlobalArgs;
use super::shared::{WorkspaceClient, encode};
use crate::api::EventsResponse;
use crate::error::ExitStatus;
use crate::output::{Printer, relative, table};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only the events of this key (id, name or prefix)
    #[arg(long)]
    pub key: Option<String>,
    /// How many events to show, newest first (1-1000)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Show every event, however many pages that takes
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
}

pub fn run(args: AuditArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let admin = WorkspaceClient::connect(global)?;
    let limit = if args.all { 1000 } else { args.limit };
    let mut path = admin.path(&format!("/audit?limit={limit}"));
    if let Some(reference) = &args.key {
        path.push_str(&format!("&key={}", admin.find_key(reference)?.id));
    }
    let EventsResponse { mut events, mut next_cursor } = admin.client.get(&path)?;
    while args.all
        && let Some(cursor) = next_cursor.take()
    {
        let page: EventsResponse =
            admin.client.get(&format!("{path}&cursor={}", encode(&cursor)))?;
        events.extend(page.events);
        next_cursor = page.next_cursor;
    }
    if printer.json {
        match &next_cursor {
            Some(cursor) => printer.json(&json!({"events": events, "next_cursor": cursor}))?,
            None => printer.json(&json!({"events": events}))?,
        }
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
        if next_cursor.is_some() {
            printer.info(&format!(
                "Showing the newest {limit} events; there are more: pass --all for every one, or \
                 --limit N."
            ));
        }
    }
    Ok(ExitStatus::Success)
}
