//! `custory-mcp login` / `logout`: store or forget the admin credential for `--server`: the
//! owner credential, or a member's own (`login --invite`: redeemed from an invitation code).

use std::io::{BufRead as _, IsTerminal as _, Read as _};

use super::{GlobalArgs, prompt};
use crate::client::{AdminClient, DEFAULT_SERVER};
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;
use crate::secrets::{self, CredentialStore};
use crate::token::{PlainToken, TokenKind};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp login --server https://mcp.example.com
  printf %s \"$OWNER_TOKEN\" | \\
      custory-mcp login --server https://mcp.example.com --token-stdin
  custory-mcp login --server https://mcp.example.com --invite")]
pub struct LoginArgs {
    /// Read the credential from standard input instead of prompting for it
    #[arg(long, conflicts_with_all = ["invite", "invite_stdin"])]
    pub token_stdin: bool,
    /// Join with an invitation code (`members invite` printed it): asks for it on a terminal,
    /// and saves your own credential
    #[arg(long, conflicts_with = "invite_stdin")]
    pub invite: bool,
    /// Join with an invitation code read from standard input
    #[arg(long)]
    pub invite_stdin: bool,
}

/// How `login` asks for a secret: `flag` reads it piped into stdin, else a terminal prompt.
struct Secret<'a> {
    flag: &'a str,
    what: &'a str,
    stdin_hint: &'a str,
    ask: &'a str,
    label: &'a str,
}

/// The secret piped into stdin (`from_stdin`), or typed at a hidden prompt on a terminal;
/// elsewhere the error that names the flag.
fn read_secret(from_stdin: bool, secret: Secret<'_>, printer: Printer) -> anyhow::Result<String> {
    if from_stdin {
        if std::io::stdin().is_terminal() {
            return Err(CliError::usage(format!(
                "{} reads a piped {}, but stdin is a terminal",
                secret.flag, secret.what
            ))
            .hint(secret.stdin_hint)
            .into());
        }
        let mut line = String::new();
        // A secret is one short line; anything much longer is not one.
        std::io::stdin().lock().take(4096).read_line(&mut line)?;
        if line.trim().is_empty() {
            return Err(CliError::failure(format!(
                "{} found no {} on standard input (it was empty)",
                secret.flag, secret.what
            ))
            .hint(format!("pipe one line with the {}, e.g. `printenv VAR | …`", secret.what))
            .into());
        }
        Ok(line)
    } else if prompt::interactive() {
        printer.info(secret.ask);
        Ok(prompt::password(secret.label)?)
    } else {
        Err(prompt::missing(
            &format!("the {}", secret.what),
            &format!("{} and pipe it in", secret.flag),
        ))
    }
}

/// The code of `login --invite` / `--invite-stdin`, redeemed for the member's own credential,
/// which is saved where the owner credential would be.
fn join(args: &LoginArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let raw = read_secret(
        args.invite_stdin,
        Secret {
            flag: "--invite-stdin",
            what: "invitation code",
            stdin_hint: "drop --invite-stdin and use --invite to be asked for it",
            ask: &format!(
                "Paste the invitation code (csi_…) to {} that you were sent.",
                global.server
            ),
            label: "Invitation code",
        },
        printer,
    )?;
    let code = PlainToken::parse(&raw)
        .ok()
        .filter(|code| code.kind() == TokenKind::Invitation)
        .ok_or_else(|| {
            CliError::failure("that is not an invitation code (csi_ followed by 38 characters)")
                .hint("copy the whole csi_… code again")
        })?;
    let redeemed = AdminClient::redeem_invitation(&global.server, &code)?;
    let credential = PlainToken::parse(&redeemed.credential).map_err(|error| {
        CliError::failure(format!("the server sent no valid credential: {error}"))
    })?;
    let server = global.server.trim_end_matches('/');
    let saved = CredentialStore::open()?.set(&secrets::owner_account(server), &credential)?;
    remember_server(server, printer)?;
    if printer.json {
        // Never the credential: it is saved, not shown.
        printer.json(&serde_json::json!({
            "member": redeemed.member,
            "workspace": redeemed.workspace,
            "saved_to": saved.to_string(),
        }))?;
    } else {
        printer.info(&format!(
            "Welcome, {}: you are {} of {} on {server}, and may {}. Your own credential is \
             saved to {saved}; `{}` shows what you may do.",
            redeemed.member.name,
            match redeemed.member.role {
                crate::api::Role::Owner => "an owner",
                crate::api::Role::Editor => "an editor",
                crate::api::Role::Viewer => "a viewer",
            },
            redeemed.workspace,
            redeemed.member.role.may(),
            super::shared::command_line(global, &["whoami"]),
        ));
    }
    Ok(ExitStatus::Success)
}

/// How many workspaces a login counts at most: one page, never the whole list.
const WORKSPACES_COUNTED: u32 = 100;

pub fn login(args: LoginArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    // A server that is not there is said before anything is asked.
    crate::client::probe(&global.server)?;
    if args.invite || args.invite_stdin {
        return join(&args, global, printer);
    }
    let raw = read_secret(
        args.token_stdin,
        Secret {
            flag: "--token-stdin",
            what: "owner credential",
            stdin_hint: "pipe it in: `printf %s \"$TOKEN\" | custory-mcp login --token-stdin`, or \
                         drop --token-stdin to be prompted",
            ask: &format!(
                "Paste the owner credential (csa_…) of {}; `custory-mcp serve` printed it on its \
                 first start.",
                global.server
            ),
            label: "Owner credential",
        },
        printer,
    )?;
    let token = PlainToken::parse(&raw).map_err(|error| {
        CliError::failure(format!("that is not an owner credential: {error}"))
            .hint("copy the whole csa_… credential again")
    })?;
    match token.kind() {
        TokenKind::Owner | TokenKind::Member => {}
        TokenKind::Mcp => {
            return Err(CliError::failure(
                "that is an MCP key (cst_…), not the owner credential (csa_…)",
            )
            .hint(
                "MCP keys go into MCP clients (`custory-mcp config`); log in with the csa_… \
                 credential",
            )
            .into());
        }
        TokenKind::Invitation => {
            return Err(CliError::failure("that is an invitation code (csi_…), not a credential")
                .hint("redeem it with `custory-mcp login --invite-stdin` (or --invite)")
                .into());
        }
    }
    // Check it against the server before saving it.
    let client = AdminClient::with_token(&global.server, token.clone())?;
    let page = crate::client::PageQuery { limit: Some(WORKSPACES_COUNTED), cursor: None };
    let listed = client.workspaces(&crate::client::WorkspacesQuery::default(), &page)?;
    let saved = CredentialStore::open()?.set(&secrets::owner_account(client.server()), &token)?;
    let n = listed.workspaces.len();
    let counted = match listed.next_cursor {
        Some(_) => format!("over {n} workspaces"),
        None => crate::output::count(n, "workspace", "workspaces"),
    };
    printer.info(&format!(
        "Logged in to {} ({counted}). Credential saved to {saved}.",
        client.server()
    ));
    remember_server(client.server(), printer)?;
    Ok(ExitStatus::Success)
}

/// The server just logged in to becomes the one commands go to without `--server` (the
/// built-in default needs no saving); says so when that changed.
fn remember_server(server: &str, printer: Printer) -> anyhow::Result<()> {
    let server = server.trim_end_matches('/');
    let saved = (server != DEFAULT_SERVER).then_some(server);
    if crate::settings::set_default_server(saved)? {
        printer.info(&format!(
            "Commands without --server now go to {server} (CUSTORY_SERVER or --server still \
             choose another)."
        ));
    }
    Ok(())
}

pub fn logout(global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let server = global.server.trim_end_matches('/');
    if CredentialStore::open()?.delete(&secrets::owner_account(server))? {
        printer.info(&format!(
            "Logged out of {server}: its owner credential is no longer saved here."
        ));
    } else {
        printer.info(&format!("No owner credential was saved for {server}; nothing to do."));
    }
    if crate::settings::default_server()?.as_deref() == Some(server) {
        crate::settings::set_default_server(None)?;
        printer.info(&format!("Commands without --server go to {DEFAULT_SERVER} again."));
    }
    Ok(ExitStatus::Success)
}
