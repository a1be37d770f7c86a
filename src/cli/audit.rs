//! `custory-mcp audit`: the workspace's key and MCP activity, newest first; with `--usage`,
//! each key's calls over a period.

use chrono::Utc;
use serde_json::json;

use super::GlobalArgs;
use super::shared::WorkspaceClient;
use crate::api::{AuthorKind, EventsResponse, ToolCount};
use crate::client::{AuditQuery, Rows, UsageQuery, pages};
use crate::error::ExitStatus;
use crate::output::{Column, Printer, count, relative, table};
use crate::period::Period;
use crate::text::size_text;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp audit
  custory-mcp audit --calls
  custory-mcp audit --key \"Cursor on MacBook\"
  custory-mcp audit --usage --since 7d")]
pub struct AuditArgs {
    /// Only the events of this key (id, name or prefix), with every call it made, reads
    /// included
    #[arg(long, add = super::completions::any_keys())]
    pub key: Option<String>,
    /// Include the calls keys made (tools, resources, prompts), not only lifecycle and writes
    #[arg(long, conflicts_with = "usage")]
    pub calls: bool,
    /// Only what this member did (their name), or `administrator`, `key`, `consent`,
    /// `leak-report`, `server`
    #[arg(long, value_name = "NAME", conflicts_with = "usage")]
    pub by: Option<String>,
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
    let admin = WorkspaceClient::connect_for_key(global, args.key.as_deref())?;
    if args.usage {
        return usage(&admin, &args, printer);
    }
    let key = args.key.as_deref().map(|reference| admin.find_key(reference)).transpose()?;
    let filter = AuditQuery {
        key: key.map(|k| k.id),
        calls: args.calls || args.key.is_some(),
        by: args.by.clone(),
    };
    let ws = &admin.workspace.slug;
    let EventsResponse { events, next_cursor } =
        pages(rows(&args), |page| admin.client.audit(ws, &filter, page), |_| {})?;
    if printer.json {
        match &next_cursor {
            Some(cursor) => printer.json(&json!({"events": events, "next_cursor": cursor}))?,
            None => printer.json(&json!({"events": events}))?,
        }
    } else if events.is_empty() {
        printer.info("No activity recorded yet.");
    } else {
        let now = Utc::now();
        let shown = events.len();
        // A scoped key's events name its journeys by id (a rename does not change it): shown
        // by their slugs now.
        let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        let journeys = super::shared::JourneyNames::fetch(&admin.client, ws, &details);
        let rows = events
            .into_iter()
            .map(|mut e| {
                e.detail = journeys.name(&e.detail);
                let at = e.at.format("%Y-%m-%d %H:%M").to_string();
                let ago = relative(e.at, now);
                let detail = match (&e.actor.name, e.actor.kind) {
                    (Some(_), _) | (None, AuthorKind::Consent | AuthorKind::LeakReport) => {
                        format!("{} (by {})", e.detail, e.actor.label())
                    }
                    // The administrator's, a key's and the server's own: as before.
                    (None, _) => e.detail,
                };
                let key = e.key_prefix.unwrap_or_else(|| "-".into());
                vec![at, ago, e.kind.to_string(), key, detail]
            })
            .collect();
        // The detail is wrapped, never cut; below 30 columns of it, "3 hours ago" gives way.
        let columns = [
            Column::keep("When"),
            Column::optional("Ago", 2),
            Column::keep("Event"),
            Column::keep("Key"),
            Column::wrap("Detail", 1),
        ];
        printer.data(&table(&columns, rows));
        if next_cursor.is_some() {
            printer.info(&format!(
                "Showing the newest {}; there are more: pass --all for every one, or --limit N.",
                count(shown, "event", "events")
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
    let period = UsageQuery { since: Some(args.since) };
    let ws = &admin.workspace.slug;
    let now = Utc::now();
    if let Some(reference) = &args.key {
        let key = admin.find_key(reference)?;
        let usage =
            pages(rows(args), |page| admin.client.key_usage(ws, &key.id, &period, page), |_| {})?;
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
        let columns = [
            Column::keep("Hour (UTC)"),
            Column::keep("Calls"),
            Column::optional("Errors", 2),
            Column::optional("Sent", 3),
            Column::text("Tools", 1),
        ];
        printer.data(&table(&columns, rows));
        if usage.next_cursor.is_some() {
            printer.info(&format!(
                "Showing the newest {}; there are more: pass --all, or --limit N.",
                count(usage.hours.len(), "hour", "hours")
            ));
        }
        return Ok(ExitStatus::Success);
    }
    let usage = pages(rows(args), |page| admin.client.usage(ws, &period, page), |_| {})?;
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
        let columns = [
            Column::keep("Key"),
            Column::keep("Calls"),
            Column::optional("Errors", 4),
            Column::optional("Sent", 3),
            Column::optional("Last hour (UTC)", 1),
            Column::text("Busiest", 2),
        ];
        printer.data(&table(&columns, rows));
        if usage.next_cursor.is_some() {
            let busiest = match usage.keys.len() {
                1 => "busiest key".to_owned(),
                n => format!("{n} busiest keys"),
            };
            printer
                .info(&format!("Showing the {busiest}; there are more: pass --all, or --limit N."));
        }
    }
    Ok(ExitStatus::Success)
}

/// The rows `--limit` or `--all` asks for.
fn rows(args: &AuditArgs) -> Rows {
    if args.all { Rows::All } else { Rows::First(args.limit) }
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
