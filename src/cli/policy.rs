//! `custory-mcp policy show|set`: the workspace's key policy, the rules every key made there
//! keeps (owners change it; every member reads it).

use chrono::Utc;

use super::GlobalArgs;
use super::shared::{JourneyNames, WorkspaceClient, command_line};
use crate::api::{Access, ExpiryPolicy, PolicyRule, SetPolicy, UnusedPeriod};
use crate::error::{CliError, ExitStatus};
use crate::output::{Printer, count, relative};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Show the workspace's key policy, rule by rule
    #[command(
        after_help = "Examples:\n  custory-mcp policy show\n  custory-mcp policy show --json"
    )]
    Show,
    /// Set or clear rules (owners); prints what changed, and the keys it now blocks
    Set(SetArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Rules not named stay as they are. A key made later must keep the policy (what `keys create`
leaves out comes from it); a key made before that breaks it is blocked (its calls get 403)
until it is rotated (`keys rotate` makes a key that keeps it) or the policy changes back.

Examples:
  custory-mcp policy set --max-expiry 90d --default-expiry 30d
  custory-mcp policy set --access read-only --tools read,comments
  custory-mcp policy set --allow-ip 10.0.0.0/8 --revoke-unused-after 90d
  custory-mcp policy set --clear tools,addresses")]
pub struct SetArgs {
    /// The longest expiry a key may have (no `never` key unless this is never)
    #[arg(long, value_enum, value_name = "EXPIRY")]
    pub max_expiry: Option<ExpiryPolicy>,
    /// The expiry a key gets when `keys create` names none
    #[arg(long, value_enum, value_name = "EXPIRY")]
    pub default_expiry: Option<ExpiryPolicy>,
    /// The most access a key may have: read-only makes every new key read-only
    #[arg(long, value_enum)]
    pub access: Option<Access>,
    /// Keys may use only these tools, by name or group (read, map, items, comments,
    /// personas), comma-separated
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Keys must be confined to these journeys (slugs or ids, comma-separated), or some of them
    #[arg(long, value_name = "SLUGS", value_delimiter = ',')]
    pub journeys: Option<Vec<String>>,
    /// Keys must be limited to addresses within these networks (CIDRs, comma-separated)
    #[arg(long = "allow-ip", value_name = "CIDRS", value_delimiter = ',')]
    pub allow_ip: Option<Vec<String>>,
    /// The server revokes keys unused this long (since their last use, or their creation)
    #[arg(long, value_enum, value_name = "PERIOD")]
    pub revoke_unused_after: Option<UnusedPeriod>,
    /// Take these rules away (comma-separated)
    #[arg(long, value_enum, value_name = "RULES", value_delimiter = ',')]
    pub clear: Vec<PolicyRule>,
}

pub fn run(
    command: PolicyCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let admin = WorkspaceClient::connect_for_key(global, None)?;
    let ws = admin.workspace.slug.clone();
    match command {
        PolicyCommand::Show => {
            let found = admin.client.policy(&ws)?;
            if printer.json {
                printer.json(&found)?;
            } else if found.policy.is_empty() {
                printer.info(&format!(
                    "{ws} has no key policy: any key may be made there. Set one with `{}`.",
                    command_line(global, &["policy", "set", "--max-expiry", "90d"])
                ));
            } else {
                let rows: Vec<(&str, String)> = PolicyRule::ALL
                    .iter()
                    .map(|rule| (rule.as_str(), found.policy.describe(*rule)))
                    .collect();
                printer.data(&named_rows(&admin.client, &ws, rows));
                if let (Some(at), Some(by)) = (found.updated_at, &found.updated_by) {
                    printer.info(&format!(
                        "Changed {} by {}.",
                        relative(at, Utc::now()),
                        by.label()
                    ));
                }
            }
        }
        PolicyCommand::Set(args) => {
            let change = SetPolicy {
                max_expiry: args.max_expiry,
                default_expiry: args.default_expiry,
                access: args.access,
                tools: args.tools,
                journeys: args.journeys,
                allow_ip: args.allow_ip,
                revoke_unused_after: args.revoke_unused_after,
                clear: args.clear,
            };
            let nothing = SetPolicy { clear: Vec::new(), ..SetPolicy::default() };
            if change.clear.is_empty()
                && serde_json::to_value(&change)? == serde_json::to_value(&nothing)?
            {
                return Err(CliError::usage("nothing to set: name a rule, or --clear RULE")
                    .hint(format!(
                        "e.g. `{}`; `custory-mcp policy set --help` lists the rules",
                        command_line(global, &["policy", "set", "--max-expiry", "90d"])
                    ))
                    .into());
            }
            let done = admin.client.set_policy(&ws, &change)?;
            if printer.json {
                printer.json(&done)?;
                return Ok(ExitStatus::Success);
            }
            if done.changes.is_empty() {
                printer.info(&format!("Nothing changed: the key policy of {ws} already says so."));
                return Ok(ExitStatus::Success);
            }
            let rows: Vec<(&str, String)> = done
                .changes
                .iter()
                .map(|c| (c.rule.as_str(), format!("{} → {}", c.from, c.to)))
                .collect();
            printer.data(&named_rows(&admin.client, &ws, rows));
            printer.info(&format!("Changed the key policy of {ws}."));
            if !done.blocked.is_empty() {
                let listed: Vec<String> = done
                    .blocked
                    .iter()
                    .map(|key| {
                        let rule = key.blocked.as_ref().map_or("", |b| b.rule.as_str());
                        let rotate = command_line(
                            global,
                            &["--workspace", &ws, "keys", "rotate", &key.prefix],
                        );
                        // The command on a line of its own, to be copied whole.
                        format!(
                            "  {:?} ({}) breaks {rule}; rotate it:\n    {rotate}",
                            key.name, key.prefix
                        )
                    })
                    .collect();
                let total = done.blocked_total.max(done.blocked.len());
                let mut listed = listed.join("\n");
                if total > done.blocked.len() {
                    let review = command_line(global, &["--workspace", &ws, "keys", "review"]);
                    listed.push_str(&format!(
                        "\n  … and {} more: `{review}` lists every one",
                        total - done.blocked.len()
                    ));
                }
                printer.warn(&format!(
                    "{} now blocked (its calls are refused) until rotated, or until the \
                     policy changes back:\n{listed}",
                    count(total, "active key is", "active keys are"),
                ));
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// One line per rule, its value wrapped under itself on a narrow terminal, with journeys by
/// their slugs.
fn named_rows(client: &crate::client::AdminClient, ws: &str, rows: Vec<(&str, String)>) -> String {
    let values: Vec<&str> = rows.iter().map(|(_, value)| value.as_str()).collect();
    let names = JourneyNames::fetch(client, ws, &values);
    let rows: Vec<(&str, String)> =
        rows.iter().map(|(rule, value)| (*rule, names.name(value))).collect();
    let widest = PolicyRule::ALL.iter().map(|rule| rule.as_str().len()).max().unwrap_or(0);
    crate::output::fields_aligned(&rows, widest)
}
