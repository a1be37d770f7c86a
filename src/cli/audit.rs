//! `custory-mcp audit`: the workspace's key and MCP activity, newest first; with `--usage`,
//! each key's calls over a period.

use chrono::Utc;
use serde_json::json;

use super::GlobalArgs;
use super::shared::{WorkspaceClient, encode};
use crate::api::{EventsResponse, KeyUsageResponse, ToolCount, WorkspaceUsageResponse, size_text};
use crate::error::ExitStatus;
use crate::output::{Printer, count, relative, table};
use crate::period::Period;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only the events of this key (id, name or prefix), with every call it made, reads
    /// included
    #[arg(long)]
    pub key: Option<String>,
    /// Include the calls keys made (tools, resources, prompts), not only lifecycle and writes
    #[arg(long, conflicts_with = "usage")]
    pub calls: bool,
    /// Totals instead of events: each key's calls, errors and bytes sent (with --key, that
    /// key's hour by hour)
    #[arg(long)]
    pub usage: bool,
    /// With --usage: how far back (24h, 7d, 30d…; hourly totals are kept for
    /// `serve --usage-retention`)
    #[arg(long, default_value_t = Period::days(30), value_name = "PERIOD", requires = "usage")]
    pub since: Period,
    /// How many rows to show, newest (or busiest) first (1-1000)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Show every row, however many pages that takes
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
}

pub fn run(args: AuditArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let admin = WorkspaceClient::connect(global)?;
    if args.usage {
        return usage(&admin, &args, printer);
    }
    let limit = if args.all { 1000 } else { args.limit };
    let mut path = admin.path(&format!("/audit?limit={limit}"));
    if let Some(reference) = &args.key {
        path.push_str(&format!("&key={}", admin.find_key(reference)?.id));
    }
    if args.calls || args.key.is_some() {
        path.push_str("&calls=true");
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

/// `audit --usage`: per key, or with `--key` per hour of that key.
fn usage(
    admin: &WorkspaceClient,
    args: &AuditArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let limit = if args.all { 1000 } else { args.limit };
    let query = format!("?since={}&limit={limit}", args.since);
    let now = Utc::now();
    if let Some(reference) = &args.key {
        let key = admin.find_key(reference)?;
        let path = admin.path(&format!("/mcp-keys/{}/usage{query}", key.id));
        let mut usage: KeyUsageResponse = admin.client.get(&path)?;
        while args.all
            && let Some(cursor) = usage.next_cursor.take()
        {
            let page: KeyUsageResponse =
                admin.client.get(&format!("{path}&cursor={}", encode(&cursor)))?;
            usage.hours.extend(page.hours);
            usage.next_cursor = page.next_cursor;
        }
        if printer.json {
            printer.json(&usage)?;
            return Ok(ExitStatus::Success);
        }
        let t = &usage.totals;
        printer.info(&format!(
            "{} ({}) in the last {}: {}, {}, {} sent{}",
            key.name,
            key.prefix,
            args.since,
            count(t.calls, "call", "calls"),
            count(t.errors, "error", "errors"),
            size_text(t.bytes),
            if t.tools.is_empty() {
                String::new()
            } else {
                format!("; {}", tools_text(&t.tools, 5))
            }
        ));
        if usage.hours.is_empty() {
            printer.info("No calls in that period.");
            return Ok(ExitStatus::Success);
        }
        let rows = usage
            .hours
            .iter()
            .map(|h| {
                vec![
                    format!("{} ({})", h.hour.format("%Y-%m-%d %H:00"), relative(h.hour, now)),
                    h.calls.to_string(),
                    h.errors.to_string(),
                    size_text(h.bytes),
                    tools_text(&h.tools, 4),
                ]
            })
            .collect();
        printer.data(&table(&["Hour (UTC)", "Calls", "Errors", "Sent", "Tools"], rows));
        if usage.next_cursor.is_some() {
            printer.info(&format!(
                "Showing the newest {limit} hours; there are more: pass --all, or --limit N."
            ));
        }
        return Ok(ExitStatus::Success);
    }
    let path = admin.path(&format!("/usage{query}"));
    let mut usage: WorkspaceUsageResponse = admin.client.get(&path)?;
    while args.all
        && let Some(cursor) = usage.next_cursor.take()
    {
        let page: WorkspaceUsageResponse =
            admin.client.get(&format!("{path}&cursor={}", encode(&cursor)))?;
        usage.keys.extend(page.keys);
        usage.next_cursor = page.next_cursor;
    }
    if printer.json {
        printer.json(&usage)?;
    } else if usage.keys.is_empty() {
        printer.info(&format!("No key made a call in the last {}.", args.since));
    } else {
        let rows = usage
            .keys
            .iter()
            .map(|k| {
                vec![
                    format!("{} ({})", k.key_name, k.key_prefix),
                    k.calls.to_string(),
                    k.errors.to_string(),
                    size_text(k.bytes),
                    k.last_hour.format("%Y-%m-%d %H:00").to_string(),
                    tools_text(&k.tools, 3),
                ]
            })
            .collect();
        printer
            .data(&table(&["Key", "Calls", "Errors", "Sent", "Last hour (UTC)", "Busiest"], rows));
        if usage.next_cursor.is_some() {
            printer.info(&format!(
                "Showing the {limit} busiest keys; there are more: pass --all, or --limit N."
            ));
        }
    }
    Ok(ExitStatus::Success)
}

/// `search_items 40, get_item 12, +3 more`.
pub fn tools_text(tools: &[ToolCount], shown: usize) -> String {
    let mut text =
        tools.iter().take(shown).map(|t| format!("{} {}", t.what, t.calls)).collect::<Vec<_>>();
    if tools.len() > shown {
        text.push(format!("+{} more", tools.len() - shown));
    }
    text.join(", ")
}
