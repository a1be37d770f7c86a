//! `custory-mcp webhooks add|list|remove|test|deliveries`: a workspace's signed webhooks
//! (Standard Webhooks) and how their deliveries went.

use chrono::Utc;
use serde_json::json;

use super::GlobalArgs;
use super::shared::{WorkspaceClient, command_line};
use crate::api::{WebhookDelivery, WebhookEvent, WebhookFormat};
use crate::error::{CliError, ExitStatus};
use crate::output::{Column, Printer, relative, table};

#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Send the workspace's key and member events to URL, signed: prints the signing secret
    /// once, on stdout
    #[command(after_help = "\
Examples:
  custory-mcp webhooks add https://hooks.example.com/custory
  custory-mcp webhooks add https://hooks.example.com/keys \\
      --events key.created,key.revoked
  custory-mcp webhooks add https://hooks.slack.com/services/X --format slack")]
    Add {
        /// Where to POST each event (https; private addresses need `serve
        /// --allow-private-webhooks`)
        url: String,
        /// Only these events (comma-separated); every event when absent
        #[arg(long, value_enum, value_delimiter = ',')]
        events: Vec<WebhookEvent>,
        /// How each event is sent
        #[arg(long, value_enum, default_value = "standard")]
        format: WebhookFormat,
    },
    /// List the workspace's webhooks (never their secrets)
    #[command(
        after_help = "Examples:\n  custory-mcp webhooks list\n  custory-mcp webhooks list --json"
    )]
    List,
    /// Stop sending to a webhook
    #[command(after_help = "Examples:\n  custory-mcp webhooks remove whk_AbCd123456")]
    Remove {
        /// The webhook's id (see `webhooks list`)
        id: String,
    },
    /// Send a signed webhook.test event now and show how the receiver answered
    #[command(after_help = "Examples:\n  custory-mcp webhooks test whk_AbCd123456")]
    Test {
        /// The webhook's id (see `webhooks list`)
        id: String,
    },
    /// Recent deliveries: their state, attempts, last answer and next retry
    #[command(after_help = "\
Examples:
  custory-mcp webhooks deliveries
  custory-mcp webhooks deliveries whk_AbCd123456 --limit 100
  custory-mcp webhooks deliveries --json --cursor CURSOR")]
    Deliveries {
        /// Only this webhook's
        id: Option<String>,
        /// How many, the most recent first (at most 200)
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Where the page starts: the `next_cursor` of the previous one (the command for the
        /// next page is printed)
        #[arg(long)]
        cursor: Option<String>,
    },
}

pub fn run(
    command: WebhooksCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let admin = WorkspaceClient::connect_for_key(global, None)?;
    let ws = admin.workspace.slug.clone();
    match command {
        WebhooksCommand::Add { url, events, format } => {
            let created = admin.client.add_webhook(&ws, &url, &events, format)?;
            if printer.json {
                printer.json(&created)?;
                return Ok(ExitStatus::Success);
            }
            if format == WebhookFormat::Slack {
                printer.info(&format!(
                    "Added webhook {} for {ws}: each event goes as a readable message, not \
                     signed (keep the URL secret). Try it with `custory-mcp webhooks test {}`.",
                    created.webhook.id, created.webhook.id
                ));
                return Ok(ExitStatus::Success);
            }
            // The secret alone on stdout, so a variable or a secret store takes just it.
            printer.data(&created.secret.0);
            printer.info(&format!(
                "Added webhook {} for {ws}. The signing secret above is shown once: give it to \
                 the receiver, which verifies each delivery with a Standard Webhooks library. \
                 Try it with `custory-mcp webhooks test {}`.",
                created.webhook.id, created.webhook.id
            ));
        }
        WebhooksCommand::List => {
            let webhooks = admin.client.webhooks(&ws)?.webhooks;
            if printer.json {
                printer.json(&json!({"webhooks": webhooks}))?;
            } else if webhooks.is_empty() {
                printer.info(&format!(
                    "{ws} has no webhooks. Add one with `custory-mcp webhooks add URL`."
                ));
            } else {
                let now = Utc::now();
                let rows = webhooks
                    .iter()
                    .map(|w| {
                        let events = if w.events.is_empty() {
                            "all".to_owned()
                        } else {
                            w.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
                        };
                        // Dropped: given up unsent past the outbox's cap for one endpoint.
                        let pending = match w.dropped {
                            0 => w.pending.to_string(),
                            dropped => format!("{}, {dropped} dropped", w.pending),
                        };
                        vec![
                            w.id.clone(),
                            w.url.clone(),
                            events,
                            pending,
                            relative(w.created_at, now),
                        ]
                    })
                    .collect();
                let columns = [
                    Column::keep("Id"),
                    Column::text("URL", 2),
                    Column::text("Events", 1),
                    Column::keep("Pending"),
                    Column::optional("Added", 3),
                ];
                printer.data(&table(&columns, rows));
            }
        }
        WebhooksCommand::Remove { id } => {
            let removed = admin.client.remove_webhook(&ws, &id)?;
            if printer.json {
                printer.json(&removed)?;
            } else {
                printer.info(&format!("Removed webhook {id}: nothing more is sent to it."));
            }
        }
        WebhooksCommand::Test { id } => {
            let delivery = admin.client.test_webhook(&ws, &id)?;
            let delivered = delivery.state == "delivered";
            if printer.json {
                printer.json(&delivery)?;
            } else if delivered {
                printer.info(&format!(
                    "Delivered webhook.test {} to {id}: the receiver answered {}.",
                    delivery.event_id,
                    delivery.last_status.map_or("-".to_owned(), |s| s.to_string())
                ));
            }
            if !delivered {
                // A failed check is an error (exit 1), said as one, with what to run next.
                return Err(CliError::failure(format!(
                    "webhook.test {} to {id} was not delivered: {}",
                    delivery.event_id,
                    delivery.last_error.as_deref().unwrap_or("no answer")
                ))
                .hint(format!(
                    "make the receiver answer 2xx, then `{}` again; `{}` shows every attempt",
                    command_line(global, &["webhooks", "test", &id]),
                    command_line(global, &["webhooks", "deliveries", &id])
                ))
                .into());
            }
        }
        WebhooksCommand::Deliveries { id, limit, cursor } => {
            let page =
                admin.client.webhook_deliveries(&ws, id.as_deref(), limit, cursor.as_deref())?;
            let deliveries = page.deliveries;
            // The next page's command, runnable as printed.
            let next = page.next_cursor.as_deref().map(|next| {
                let limit = limit.to_string();
                let mut args = vec!["webhooks", "deliveries"];
                args.extend(id.as_deref());
                if printer.json {
                    args.push("--json");
                }
                args.extend(["--limit", &limit, "--cursor", next]);
                super::shared::command_line(global, &args)
            });
            if printer.json {
                printer.json(&page_json(&deliveries, page.next_cursor.as_deref()))?;
                if let Some(next) = &next {
                    printer.info(&format!("More: `{next}`"));
                }
            } else if deliveries.is_empty() {
                printer.info("No deliveries yet.");
            } else {
                let now = Utc::now();
                let rows = deliveries.iter().map(|d| delivery_row(d, now)).collect();
                let columns = [
                    Column::keep("Event"),
                    Column::keep("State"),
                    Column::keep("Tries"),
                    Column::optional("Last", 2),
                    Column::optional("Next retry", 1),
                    Column::optional("Id", 3),
                ];
                printer.data(&table(&columns, rows));
                if let Some(next) = &next {
                    printer.info(&format!("Showing {}; the next page: `{next}`", deliveries.len()));
                }
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// `deliveries --json`: the page, and `next_cursor` when there is more.
fn page_json(deliveries: &[WebhookDelivery], next_cursor: Option<&str>) -> serde_json::Value {
    match next_cursor {
        Some(cursor) => json!({"deliveries": deliveries, "next_cursor": cursor}),
        None => json!({"deliveries": deliveries}),
    }
}

fn delivery_row(d: &WebhookDelivery, now: chrono::DateTime<Utc>) -> Vec<String> {
    let last = match (d.last_status, d.last_error.as_deref()) {
        // Given up unsent, past the outbox's cap for one endpoint (`--json` says why).
        (_, Some(error)) if error.starts_with("dropped:") => "dropped".to_owned(),
        (Some(status), _) => status.to_string(),
        (None, Some(_)) => "no answer".to_owned(),
        (None, None) => "-".to_owned(),
    };
    vec![
        d.event_type.clone(),
        d.state.clone(),
        d.attempts.to_string(),
        last,
        d.next_attempt_at.map_or("-".to_owned(), |at| relative(at, now)),
        d.event_id.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_dropped_past_the_cap_says_dropped_where_an_answer_would_be() {
        let now = Utc::now();
        let delivery = WebhookDelivery {
            id: 1,
            webhook_id: "whk_a".into(),
            event_id: "msg_a".into(),
            event_type: "key.created".into(),
            created_at: now,
            attempts: 0,
            state: "failed".into(),
            next_attempt_at: None,
            last_status: None,
            last_error: Some(crate::store::access::webhook_dropped_error()),
            delivered_at: None,
        };
        assert_eq!(delivery_row(&delivery, now)[3], "dropped");
        // Dropped after failed attempts: still dropped, not the last answer.
        let retried = WebhookDelivery { attempts: 3, last_status: Some(503), ..delivery.clone() };
        assert_eq!(delivery_row(&retried, now)[3], "dropped");
        let refused = WebhookDelivery {
            last_error: Some("could not connect to the receiver".into()),
            ..delivery
        };
        assert_eq!(delivery_row(&refused, now)[3], "no answer");
    }
}
