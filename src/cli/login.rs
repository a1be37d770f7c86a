//! `custory-mcp login` / `logout`: store or forget the owner credential for `--server`.

use std::io::{BufRead as _, IsTerminal as _};

use super::{GlobalArgs, prompt};
use crate::client::AdminClient;
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;
use crate::secrets::{self, CredentialStore};
use crate::token::{PlainToken, TokenKind};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp login --server https://mcp.example.com
  printf %s \"$OWNER_TOKEN\" | custory-mcp login --server https://mcp.example.com --token-stdin")]
pub struct LoginArgs {
    /// Read the credential from standard input instead of prompting for it
    #[arg(long)]
    pub token_stdin: bool,
}

pub fn login(args: LoginArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    // A server that is not there is said before anything is asked.
    crate::client::probe(&global.server)?;
    let raw = if args.token_stdin {
        if std::io::stdin().is_terminal() {
            return Err(CliError::usage("--token-stdin reads a piped credential, but stdin is a terminal")
                .hint("pipe it in: `printf %s \"$TOKEN\" | custory-mcp login --token-stdin`, or drop --token-stdin to be prompted")
                .into());
        }
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    } else if prompt::interactive() {
        printer.info(&format!(
            "Paste the owner credential (csa_…) of {}; `custory-mcp serve` printed it on its first start.",
            global.server
        ));
        prompt::password("Owner credential")?
    } else {
        return Err(prompt::missing("the owner credential", "--token-stdin and pipe it in"));
    };
    let token = PlainToken::parse(&raw).map_err(|error| {
        CliError::failure(format!("that is not an owner credential: {error}"))
            .hint("copy the whole csa_… credential again")
    })?;
    if token.kind() != TokenKind::Owner {
        return Err(CliError::failure(
            "that is an MCP key (cst_…), not the owner credential (csa_…)",
        )
        .hint(
            "MCP keys go into MCP clients (`custory-mcp config`); log in with the csa_… credential",
        )
        .into());
    }
    // Check it against the server before saving it.
    let client = AdminClient::with_token(&global.server, token.clone())?;
    let workspaces = client.workspaces()?;
    let saved = CredentialStore::open()?.set(&secrets::owner_account(client.server()), &token)?;
    printer.info(&format!(
        "Logged in to {} ({} workspace{}). Credential saved to {saved}.",
        client.server(),
        workspaces.len(),
        if workspaces.len() == 1 { "" } else { "s" }
    ));
    Ok(ExitStatus::Success)
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
    Ok(ExitStatus::Success)
}
