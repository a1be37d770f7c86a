//! `custory-mcp test`: check an MCP connection end to end, stage by stage.
//!
//! The stages run in the order a real client meets them: the token's format and checksum
//! (local), the connection (DNS, TCP, TLS, timeout), OAuth discovery (which must *not* answer),
//! `initialize` (HTTP status, JSON-RPC, protocol version, server name) and `tools/list`. Each
//! stage is one line on stderr with a mark and, when it fails, a cause and the next step.
//! `--json` puts the same report on stdout; `--curl` prints the equivalent `curl` command.

mod checks;
mod diagnose;
mod http;
mod report;

use anyhow::Context as _;
use reqwest::Url;
use serde_json::json;

use self::checks::TokenSource;
use self::http::{MCP_PATH, initialize_request};
use self::report::Checklist;
use super::GlobalArgs;
use super::shared::shell_quote;
use crate::error::{CliError, ExitStatus};
use crate::mcp::protocol::ACCEPT_BOTH;
use crate::output::Printer;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp test --key \"Cursor on MacBook\"
  CUSTORY_MCP_TOKEN=cst_… custory-mcp test
  custory-mcp test --url https://mcp.example.com/api/mcp --token-env MY_TOKEN
  custory-mcp test --key \"Cursor on MacBook\" --curl")]
pub struct TestArgs {
    /// The MCP endpoint to check [default: <server>/api/mcp]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Use the token of a key saved with `keys create --save` (id, name or prefix)
    #[arg(long, value_name = "KEY", conflicts_with = "token_env", add = super::completions::active_keys())]
    pub key: Option<String>,
    /// Read the token from this environment variable
    #[arg(long, value_name = "VAR", default_value = super::DEFAULT_TOKEN_ENV, value_parser = super::env_var_name)]
    pub token_env: String,
    /// Print the equivalent curl command (token read from the environment) instead of checking
    #[arg(long)]
    pub curl: bool,
    /// Seconds to wait for each request
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub timeout: u64,
}

pub fn run(args: TestArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let url = endpoint(&args, global)?;
    if args.curl {
        return print_curl(&args, &url, printer);
    }
    let (token, source) = read_token(&args, global)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let mut checklist = Checklist::new(url.clone(), printer);
    checklist.intro();
    let check =
        checks::run(&mut checklist, &url, &token, &source, args.timeout, args.key.as_deref());
    runtime.block_on(check)?;
    checklist.finish()
}

/// `--url`, or the MCP endpoint of `--server`.
fn endpoint(args: &TestArgs, global: &GlobalArgs) -> anyhow::Result<Url> {
    let (text, flag) = match &args.url {
        Some(url) => (url.clone(), "--url"),
        None => (format!("{}{MCP_PATH}", global.server.trim_end_matches('/')), "--server"),
    };
    let bad = |why: String| {
        CliError::usage(format!("{flag} {text:?} is not a usable URL: {why}"))
            .hint("pass the MCP endpoint, e.g. --url http://127.0.0.1:8787/api/mcp")
    };
    let url = Url::parse(&text).map_err(|error| bad(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("the scheme must be http or https, not {}", url.scheme())).into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host".into()).into());
    }
    Ok(url)
}

/// The token as given (not yet checked: checking it is the first stage).
fn read_token(args: &TestArgs, global: &GlobalArgs) -> anyhow::Result<(String, TokenSource)> {
    if let Some(key) = &args.key {
        let token =
            super::shared::WorkspaceClient::connect_for_key(global, Some(key))?.saved_token(key)?;
        return Ok((token.expose().to_owned(), TokenSource::Saved(key.clone())));
    }
    let var = &args.token_env;
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Ok((value, TokenSource::Env(var.clone()))),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(CliError::usage(format!("${var} does not hold a token (it is not valid text)"))
                .hint(format!("set {var} to the MCP key's token (cst_…), or pass --key KEY"))
                .into())
        }
        _ => Err(CliError::usage(format!("no token to test with: {var} is not set"))
            .hint(format!(
                "pass --key KEY for a key saved with `custory-mcp keys create --save`, set {var} \
                 to an MCP key's token, or name another variable with --token-env VAR"
            ))
            .into()),
    }
}

// ---------------------------------------------------------------------------------------------
// `--curl`

fn print_curl(args: &TestArgs, url: &Url, printer: Printer) -> anyhow::Result<ExitStatus> {
    let var = &args.token_env;
    let body = initialize_request();
    // The token goes to curl on its standard input (`-H @-`), through the shell's own printf:
    // it is in no process's argument list, which `ps` would show anyone on the machine.
    let command = [
        format!("printf 'Authorization: Bearer %s\\n' \"${var}\" |"),
        format!("curl -sS --max-time {} {}", args.timeout, shell_quote(url.as_str())),
        "-H @-".to_owned(),
        format!("-H {}", shell_quote("Content-Type: application/json")),
        format!("-H {}", shell_quote(&format!("Accept: {ACCEPT_BOTH}"))),
        format!("--data {}", shell_quote(&body)),
    ]
    .join(" \\\n  ");
    if printer.json {
        printer.json(&json!({"url": url.as_str(), "curl": command}))?;
    } else {
        printer.data(&command);
    }
    if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
        printer.info(&format!(
            "note: {var} is not set in this shell; set it to the key's token before running the \
             command (the token is shown once, by `custory-mcp keys create`)"
        ));
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_names_are_checked() {
        use crate::cli::env_var_name;
        for good in ["CUSTORY_MCP_TOKEN", "_x1"] {
            assert!(env_var_name(good).is_ok(), "{good}");
        }
        for bad in ["1X", "A-B", "A$(rm)", ""] {
            assert!(env_var_name(bad).is_err(), "{bad}");
        }
    }
}
