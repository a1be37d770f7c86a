//! `custory-mcp members invite|invitations|withdraw|list|role|remove`: the people of a workspace,
//! their roles, and the invitations waiting for them.

use chrono::Utc;
use serde_json::json;

use super::shared::{WorkspaceClient, shell_quote};
use super::{GlobalArgs, prompt};
use crate::api::{CreateInvitation, Role};
use crate::error::{CliError, ExitStatus};
use crate::output::{Column, Printer, count, relative, table};
use crate::period::Period;

#[derive(Debug, clap::Subcommand)]
pub enum MembersCommand {
    /// Invite a person: prints a one-time code for them to redeem with `login --invite`
    #[command(after_help = "\
Examples:
  custory-mcp members invite \"Ada Lovelace\" --role editor
  custory-mcp members invite Grace --role viewer --expires 48h \\
      --email grace@example.com")]
    Invite(InviteArgs),
    /// List the invitations waiting to be redeemed (never their codes)
    #[command(after_help = "\
Examples:
  custory-mcp members invitations
  custory-mcp members invitations --json")]
    Invitations,
    /// Withdraw an invitation before it is redeemed: its code stops working
    #[command(after_help = "\
Examples:
  custory-mcp members withdraw csi_AbCd1234
  custory-mcp members withdraw \"Ada Lovelace\"")]
    Withdraw {
        /// The invitation's prefix (see `members invitations`), or the name it was issued to
        invitation: String,
    },
    /// List the workspace's members and their roles
    #[command(
        after_help = "Examples:\n  custory-mcp members list\n  custory-mcp members list --json"
    )]
    List,
    /// Give a member another role
    #[command(after_help = "Examples:\n  custory-mcp members role \"Ada Lovelace\" owner")]
    Role {
        /// The member's name
        name: String,
        /// Their new role
        #[arg(value_enum)]
        role: Role,
    },
    /// Take a member out of the workspace
    #[command(after_help = "\
On a terminal, asks what happens to the keys they created; otherwise pass --revoke-keys or
--keep-keys.

Examples:
  custory-mcp members remove \"Ada Lovelace\"
  custory-mcp members remove Grace --keep-keys")]
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct InviteArgs {
    /// The person's name, as tables and `audit --by` will show it
    pub name: String,
    /// What they may do: owner (members, every key), editor (creates keys; rotates and revokes
    /// their own), viewer (reads keys and the audit)
    #[arg(long, value_enum)]
    pub role: Role,
    /// How long the code may be redeemed (at most 30d)
    #[arg(long, default_value_t = Period::days(7), value_name = "PERIOD")]
    pub expires: Period,
    /// Their email address, kept with their name
    #[arg(long)]
    pub email: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The member's name
    pub name: String,
    /// Revoke the active keys they created in the workspace
    #[arg(long, conflicts_with = "keep_keys")]
    pub revoke_keys: bool,
    /// Keep the keys they created working
    #[arg(long)]
    pub keep_keys: bool,
}

pub fn run(
    command: MembersCommand,
    global: &GlobalArgs,
    printer: Printer,
) -> anyhow::Result<ExitStatus> {
    let admin = WorkspaceClient::connect_for_key(global, None)?;
    let ws = admin.workspace.slug.clone();
    match command {
        MembersCommand::Invite(args) => {
            let body = CreateInvitation {
                name: args.name,
                role: args.role,
                expires: Some(args.expires.to_string()),
                email: args.email,
            };
            let created = admin.client.invite(&ws, &body)?;
            if printer.json {
                printer.json(&created)?;
                return Ok(ExitStatus::Success);
            }
            let invitation = &created.invitation;
            // The code alone on stdout, so `| pbcopy` or a variable takes just it.
            printer.data(&created.code);
            printer.info(&format!(
                "Invited {} to {ws} as {}. This code is shown once and works once, until {}.\n\
                 Send it to them privately; they run:\n  custory-mcp login --server {} --invite\n\
                 and paste it (their own credential is then saved on their machine, never shown \
                 to you).",
                invitation.name,
                invitation.role,
                invitation.expires_at.format("%Y-%m-%d %H:%M UTC"),
                shell_quote(admin.client.server()),
            ));
        }
        MembersCommand::Invitations => {
            let invitations = admin.client.invitations(&ws)?.invitations;
            if printer.json {
                printer.json(&json!({"invitations": invitations}))?;
            } else if invitations.is_empty() {
                printer.info(&format!(
                    "{ws} has no invitations waiting. Invite someone with `custory-mcp \
                     --workspace {} members invite NAME --role editor`.",
                    shell_quote(&ws)
                ));
            } else {
                let now = Utc::now();
                let rows = invitations
                    .iter()
                    .map(|i| {
                        vec![
                            i.name.clone(),
                            i.role.to_string(),
                            i.prefix.clone(),
                            relative(i.expires_at, now),
                            i.invited_by.clone(),
                        ]
                    })
                    .collect();
                let columns = [
                    Column::keep("Name"),
                    Column::keep("Role"),
                    Column::keep("Prefix"),
                    Column::optional("Expires", 2),
                    Column::text("Invited by", 1),
                ];
                printer.data(&table(&columns, rows));
            }
        }
        MembersCommand::Withdraw { invitation } => {
            let withdrawn = admin.client.withdraw_invitation(&ws, &invitation)?;
            if printer.json {
                printer.json(&withdrawn)?;
                return Ok(ExitStatus::Success);
            }
            let i = &withdrawn.invitation;
            if withdrawn.already_withdrawn {
                printer.info(&format!(
                    "The invitation {} for {} was already withdrawn; nothing changed.",
                    i.prefix, i.name
                ));
            } else {
                printer.info(&format!(
                    "Withdrew the invitation {} for {} ({}): its code no longer works.",
                    i.prefix, i.name, i.role
                ));
            }
        }
        MembersCommand::List => {
            let members = admin.client.members(&ws)?.members;
            if printer.json {
                printer.json(&json!({"members": members}))?;
            } else if members.is_empty() {
                printer.info(&format!(
                    "{ws} has no members yet. Invite one with `custory-mcp --workspace {ws} \
                     members invite NAME --role editor`."
                ));
            } else {
                let now = Utc::now();
                let rows = members
                    .iter()
                    .map(|m| {
                        vec![
                            m.name.clone(),
                            m.role.to_string(),
                            m.email.clone().unwrap_or_else(|| "-".to_owned()),
                            relative(m.created_at, now),
                        ]
                    })
                    .collect();
                let columns = [
                    Column::keep("Name"),
                    Column::keep("Role"),
                    Column::text("Email", 2),
                    Column::text("Joined", 1),
                ];
                printer.data(&table(&columns, rows));
            }
        }
        MembersCommand::Role { name, role } => {
            let member = admin.client.change_role(&ws, &name, role)?.member;
            if printer.json {
                printer.json(&json!({"member": member}))?;
            } else {
                printer.info(&format!(
                    "{} is now {} of {ws}: they may {}.",
                    member.name,
                    match member.role {
                        Role::Owner => "an owner",
                        Role::Editor => "an editor",
                        Role::Viewer => "a viewer",
                    },
                    member.role.may()
                ));
            }
        }
        MembersCommand::Remove(args) => {
            let revoke_keys = if args.revoke_keys {
                true
            } else if args.keep_keys {
                false
            } else if prompt::interactive() {
                let choices = [
                    "Revoke the keys they created here (their clients stop at once)".to_owned(),
                    "Keep their keys working".to_owned(),
                ];
                let question = format!("{} leaves {ws}. Their keys?", args.name);
                prompt::select(&question, &choices, 0)? == 0
            } else {
                return Err(CliError::usage(
                    "say what happens to the keys they created: --revoke-keys or --keep-keys",
                )
                .hint(format!(
                    "custory-mcp --workspace {ws} members remove {} --revoke-keys",
                    shell_quote(&args.name)
                ))
                .into());
            };
            let removed = admin.client.remove_member(&ws, &args.name, revoke_keys)?;
            if printer.json {
                printer.json(&removed)?;
                return Ok(ExitStatus::Success);
            }
            let keys = if revoke_keys {
                format!("{} revoked", count(removed.revoked_keys.len(), "key", "keys"))
            } else {
                "their keys kept".to_owned()
            };
            let credential = if removed.credential_revoked {
                "; their credential no longer works"
            } else {
                "; they remain a member of other workspaces"
            };
            printer
                .info(&format!("Removed {} from {ws} ({keys}{credential}).", removed.member.name));
        }
    }
    Ok(ExitStatus::Success)
}
