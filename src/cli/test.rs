//! `custory-mcp test`: check an MCP connection end to end, stage by stage.
//!
//! The stages run in the order a real client meets them: the token's format and checksum
//! (local), the connection (DNS, TCP, TLS, timeout), OAuth discovery (which must *not* answer),
//! `initialize` (HTTP status, JSON-RPC, protocol version, server name) and `tools/list`. Each
//! stage is one line on stderr with a mark and, when it fails, a cause and the next step.
//! `--json` puts the same report on stdout; `--curl` prints the equivalent `curl` command.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::{Value, json};

use super::GlobalArgs;
use crate::error::{CliError, ExitStatus};
use crate::mcp::protocol::{LATEST_VERSION, SERVER_NAME, SUPPORTED_VERSIONS};
use crate::output::Printer;
use crate::token::{PlainToken, TokenKind};

const MCP_PATH: &str = "/api/mcp";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// Largest response body read from the server (anything larger is cut off).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Longest piece of a server's answer quoted in a stage's detail.
const EXCERPT_CHARS: usize = 200;
/// Pages of `tools/list` followed before giving up on a server that never ends.
const MAX_TOOL_PAGES: usize = 20;
/// Width of the stage-name column.
const NAME_WIDTH: usize = 16;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The MCP endpoint to check [default: <server>/api/mcp]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Use the token of a key saved with `keys create --save` (id, name or prefix)
    #[arg(long, value_name = "KEY", conflicts_with = "token_env")]
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
    runtime.block_on(check(&mut checklist, &url, &token, &source, &args))?;
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

/// Where the token came from, for the report (never the token itself).
#[derive(Debug)]
enum TokenSource {
    Env(String),
    Saved(String),
}

impl TokenSource {
    /// `$VAR` or `saved key KEY`.
    fn name(&self) -> String {
        match self {
            TokenSource::Env(var) => format!("${var}"),
            TokenSource::Saved(key) => format!("saved key {key}"),
        }
    }
}

/// The token as given (not yet checked: checking it is the first stage).
fn read_token(args: &TestArgs, global: &GlobalArgs) -> anyhow::Result<(String, TokenSource)> {
    if let Some(key) = &args.key {
        let token = super::keys::saved_token(global, key)?;
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
// The report

#[derive(Debug, Serialize)]
struct Stage {
    name: &'static str,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    /// A failure that does not stop a client from working with this server (shown as `!`).
    #[serde(skip)]
    warning: bool,
}

impl Stage {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, ok: true, detail: detail.into(), hint: None, warning: false }
    }

    fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { name, ok: false, detail: detail.into(), hint: Some(hint.into()), warning: false }
    }

    fn warn(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { warning: true, ..Self::fail(name, detail, hint) }
    }
}

#[derive(Debug, Serialize)]
struct ServerInfo {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct RoundTrip {
    #[serde(skip_serializing_if = "Option::is_none")]
    initialize: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools_list: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    ok: bool,
    stages: Vec<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    round_trip_ms: Option<RoundTrip>,
}

/// Collects the stages, printing each one as it completes (text mode), and the report.
struct Checklist {
    printer: Printer,
    report: Report,
    round_trip: RoundTrip,
    stopped: bool,
}

impl Checklist {
    fn new(url: Url, printer: Printer) -> Self {
        Self {
            printer,
            report: Report {
                url: url.to_string(),
                ok: true,
                stages: Vec::new(),
                server: None,
                protocol_version: None,
                tools: None,
                round_trip_ms: None,
            },
            round_trip: RoundTrip::default(),
            stopped: false,
        }
    }

    fn intro(&self) {
        if !self.printer.json {
            self.printer.info(&format!("Testing {}", self.report.url));
        }
    }

    /// Records a stage (and prints it, in text mode).
    fn record(&mut self, stage: Stage) {
        if !self.printer.json {
            self.print(&stage);
        }
        self.report.ok &= stage.ok;
        self.report.stages.push(stage);
    }

    /// Records a failed stage after which nothing else can be checked.
    fn stop(&mut self, stage: Stage) {
        self.record(stage);
        self.stopped = true;
    }

    fn print(&self, stage: &Stage) {
        let p = self.printer;
        let mark = match (stage.ok, stage.warning) {
            (true, _) => p.paint("✓", "32"),
            (false, false) => p.paint("✗", "31"),
            (false, true) => p.paint("!", "33"),
        };
        let line = format!("{mark} {:<NAME_WIDTH$}  {}", stage.name, stage.detail);
        // Failures are shown even with -q: they are what the command is for.
        let loud = if stage.ok { p } else { Printer { quiet: false, ..p } };
        loud.info(&line);
        if let Some(hint) = &stage.hint {
            let indent = " ".repeat(NAME_WIDTH + 4);
            loud.info(&format!("{indent}{}: {hint}", p.paint("hint", "36")));
        }
    }

    fn finish(mut self) -> anyhow::Result<ExitStatus> {
        if self.round_trip.initialize.is_some() {
            self.report.round_trip_ms = Some(std::mem::take(&mut self.round_trip));
        }
        let status = if self.report.ok { ExitStatus::Success } else { ExitStatus::Failure };
        if self.printer.json {
            self.printer.json(&self.report)?;
            return Ok(status);
        }
        let total = self.report.stages.len();
        let failed = self.report.stages.iter().filter(|s| !s.ok).count();
        if failed == 0 {
            self.printer.info(&format!("\nAll {total} checks passed."));
        } else {
            let rest = if self.stopped { "; the checks after it could not run" } else { "" };
            let checks = if total == 1 { "check" } else { "checks" };
            Printer { quiet: false, ..self.printer }
                .info(&format!("\n{failed} of {total} {checks} failed{rest}."));
        }
        Ok(status)
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

/// What the MCP endpoint answered to one POST (raw: quote it only through [`clean`]).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    elapsed: Duration,
}

struct Target<'a> {
    url: &'a Url,
    client: reqwest::Client,
    token: PlainToken,
    timeout: u64,
}

async fn check(
    list: &mut Checklist,
    url: &Url,
    raw_token: &str,
    source: &TokenSource,
    args: &TestArgs,
) -> anyhow::Result<()> {
    let Some(token) = check_token(list, raw_token, source) else {
        return Ok(());
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(args.timeout))
        .connect_timeout(Duration::from_secs(args.timeout))
        .user_agent(concat!("custory-mcp-test/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("could not set up the HTTP client")?;
    let target = Target { url, client, token, timeout: args.timeout };

    if !check_connect_and_discovery(list, &target).await {
        return Ok(());
    }
    let Some(version) = check_initialize(list, &target, args.key.as_deref()).await else {
        return Ok(());
    };
    check_tools(list, &target, &version).await;
    Ok(())
}

/// Stage "token format": prefix, length, characters and checksum, without any network.
fn check_token(list: &mut Checklist, raw: &str, source: &TokenSource) -> Option<PlainToken> {
    const NAME: &str = "token format";
    let token = match PlainToken::parse(raw) {
        Ok(token) => token,
        Err(error) => {
            list.stop(Stage::fail(
                NAME,
                format!("{} holds no valid MCP key: {error}", source.name()),
                "copy the whole token again, or create a new key with \
                 `custory-mcp keys create --save` (a token is shown only once)",
            ));
            return None;
        }
    };
    if token.kind() == TokenKind::Owner {
        list.stop(Stage::fail(
            NAME,
            format!(
                "{} holds the owner credential (csa_…), which the MCP endpoint refuses",
                source.name()
            ),
            "give MCP clients an MCP key (cst_…): `custory-mcp keys create --save`",
        ));
        return None;
    }
    list.record(Stage::pass(
        NAME,
        format!("{}… from {}, checksum ok", token.display_prefix(), source.name()),
    ));
    Some(token)
}

/// Stages "connect" and "OAuth discovery". The first discovery request doubles as the
/// connection check: it is the first thing many clients fetch, and it needs no token.
async fn check_connect_and_discovery(list: &mut Checklist, target: &Target<'_>) -> bool {
    let mut paths = Vec::new();
    let mcp_path = target.url.path().trim_end_matches('/');
    if !mcp_path.is_empty() {
        paths.push(format!("/.well-known/oauth-protected-resource{mcp_path}"));
    }
    paths.push("/.well-known/oauth-protected-resource".to_owned());
    paths.push("/.well-known/oauth-authorization-server".to_owned());

    let mut answers = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let mut url = target.url.clone();
        url.set_path(path);
        url.set_query(None);
        let started = Instant::now();
        match target.client.get(url).header(header::ACCEPT, "application/json").send().await {
            Ok(response) => {
                if index == 0 {
                    let elapsed = started.elapsed();
                    let over = if target.url.scheme() == "https" { " over TLS" } else { "" };
                    list.record(Stage::pass(
                        "connect",
                        format!("{} answered{over} in {}", host_port(target.url), show_ms(elapsed)),
                    ));
                }
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(|l| clean(l, &target.token));
                let content_type = content_type(response.headers());
                answers.push((path.clone(), response.status(), content_type, location));
            }
            Err(error) => {
                let stage = if index == 0 { "connect" } else { "OAuth discovery" };
                let (detail, hint) = network_cause(&error, target);
                list.stop(Stage::fail(stage, detail, hint));
                return false;
            }
        }
    }

    const NAME: &str = "OAuth discovery";
    let consequence = "clients such as Claude Code, Cursor and mcp-remote then ignore the \
                       configured Authorization header and start an OAuth flow";
    let offending =
        answers.iter().find(|(_, status, _, _)| status.is_success() || status.is_redirection());
    match offending {
        None => {
            let mut statuses: Vec<u16> =
                answers.iter().map(|(_, status, _, _)| status.as_u16()).collect();
            statuses.sort_unstable();
            statuses.dedup();
            let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
            list.record(Stage::pass(
                NAME,
                format!(
                    "not offered ({}), so clients use the configured Authorization header",
                    statuses.join(", ")
                ),
            ));
        }
        Some((path, status, _, location)) if status.is_redirection() => {
            let to = location.as_deref().unwrap_or("somewhere else");
            list.record(Stage::fail(
                NAME,
                format!(
                    "{path} redirects ({}) to {to} instead of answering 404: {consequence}",
                    status.as_u16()
                ),
                "make every /.well-known/oauth-* path answer 404 (a catch-all redirect in a \
                 proxy is the usual cause)",
            ));
        }
        Some((path, status, content_type, _)) => {
            let what = content_type.as_deref().unwrap_or("a body");
            list.record(Stage::fail(
                NAME,
                format!("{path} answers {} with {what}: {consequence}", status_text(*status)),
                "make every /.well-known/oauth-* path answer 404 (a catch-all route or proxy \
                 rule that answers 200 is the usual cause)",
            ));
        }
    }
    true
}

/// Stages "initialize", "protocol version" and "server". Returns the negotiated version when
/// the session can go on.
async fn check_initialize(
    list: &mut Checklist,
    target: &Target<'_>,
    key: Option<&str>,
) -> Option<String> {
    const NAME: &str = "initialize";
    let answer = match post(target, initialize_request(), None).await {
        Ok(answer) => answer,
        Err(error) => {
            let (detail, hint) = network_cause(&error, target);
            list.stop(Stage::fail(NAME, detail, hint));
            return None;
        }
    };
    list.round_trip.initialize = Some(millis(answer.elapsed));
    if let Some(stage) = http_failure(&answer, target, key) {
        list.stop(stage);
        return None;
    }
    let result = match rpc_result(&answer, 1, target) {
        Ok(result) => result,
        Err((detail, hint)) => {
            list.stop(Stage::fail(NAME, detail, hint));
            return None;
        }
    };
    list.record(Stage::pass(
        NAME,
        format!("{} in {}", status_text(answer.status), show_ms(answer.elapsed)),
    ));

    let version =
        result.get("protocolVersion").and_then(Value::as_str).map(|v| clean(v, &target.token));
    let version = match version {
        Some(version) if SUPPORTED_VERSIONS.contains(&version.as_str()) => {
            let asked = if version == LATEST_VERSION {
                String::new()
            } else {
                format!(" (asked for {LATEST_VERSION})")
            };
            list.record(Stage::pass("protocol version", format!("{version}{asked}")));
            list.report.protocol_version = Some(version.clone());
            version
        }
        Some(version) => {
            list.report.protocol_version = Some(version.clone());
            list.stop(Stage::fail(
                "protocol version",
                format!(
                    "the server speaks {version}, which custory-mcp does not ({})",
                    SUPPORTED_VERSIONS.join(", ")
                ),
                "update whichever of the two is older",
            ));
            return None;
        }
        None => {
            list.stop(Stage::fail(
                "protocol version",
                "the initialize result has no protocolVersion",
                "this is not a conforming MCP server: check --url",
            ));
            return None;
        }
    };

    let info = result.get("serverInfo");
    let field = |name: &str| {
        info.and_then(|i| i.get(name)).and_then(Value::as_str).map(|v| clean(v, &target.token))
    };
    match field("name") {
        Some(name) => {
            let version_text = field("version").map(|v| format!(" {v}")).unwrap_or_default();
            let stage = if name == SERVER_NAME {
                Stage::pass("server", format!("{name}{version_text}"))
            } else {
                Stage::warn(
                    "server",
                    format!(
                        "this is not a custory-mcp server: it calls itself {name}{version_text}"
                    ),
                    "check --url: it should point at a server started with `custory-mcp serve`",
                )
            };
            list.record(stage);
            list.report.server =
                Some(ServerInfo { name, title: field("title"), version: field("version") });
        }
        None => {
            list.record(Stage::warn(
                "server",
                "the initialize result has no serverInfo.name",
                "check --url: it should point at a server started with `custory-mcp serve`",
            ));
        }
    }
    Some(version)
}

/// Stage "tools/list": at least one tool, following pages.
async fn check_tools(list: &mut Checklist, target: &Target<'_>, version: &str) {
    const NAME: &str = "tools/list";
    let mut count = 0;
    let mut elapsed = Duration::ZERO;
    let mut cursor: Option<String> = None;
    // initialize was id 1.
    let mut id: u64 = 1;
    for page in 1..=MAX_TOOL_PAGES {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params});
        let answer = match post(target, request.to_string(), Some(version)).await {
            Ok(answer) => answer,
            Err(error) => {
                let (detail, hint) = network_cause(&error, target);
                list.stop(Stage::fail(NAME, detail, hint));
                return;
            }
        };
        elapsed += answer.elapsed;
        if let Some(mut stage) = http_failure(&answer, target, None) {
            stage.name = NAME;
            list.stop(stage);
            return;
        }
        let result = match rpc_result(&answer, id, target) {
            Ok(result) => result,
            Err((detail, hint)) => {
                list.stop(Stage::fail(NAME, detail, hint));
                return;
            }
        };
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            list.stop(Stage::fail(
                NAME,
                "the result has no \"tools\" list",
                "this is not a conforming MCP server: check --url",
            ));
            return;
        };
        count += tools.len();
        cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
        if cursor.is_none() || page == MAX_TOOL_PAGES {
            break;
        }
    }
    list.round_trip.tools_list = Some(millis(elapsed));
    list.report.tools = Some(count);
    if count == 0 {
        list.record(Stage::fail(
            NAME,
            "the server lists no tools, so an agent can do nothing with it",
            "check the server's version and the key's workspace (`custory-mcp keys show KEY`)",
        ));
    } else {
        let tools = if count == 1 { "tool" } else { "tools" };
        list.record(Stage::pass(NAME, format!("{count} {tools} in {}", show_ms(elapsed))));
    }
}

/// The `initialize` request, as sent by the check and by the `--curl` command (keys in the
/// order people expect to read them).
fn initialize_request() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{LATEST_VERSION}","capabilities":{{}},"clientInfo":{{"name":"custory-mcp-test","version":"{}"}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// POSTs one JSON-RPC message the way a conforming client does and reads the whole answer.
async fn post(
    target: &Target<'_>,
    body: String,
    version: Option<&str>,
) -> Result<Answer, reqwest::Error> {
    let mut request = target
        .client
        .post(target.url.clone())
        .bearer_auth(target.token.expose())
        .header(header::ACCEPT, ACCEPT_BOTH)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(version) = version {
        request = request.header("MCP-Protocol-Version", version);
    }
    let started = Instant::now();
    let mut response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_BODY {
            body.truncate(MAX_BODY);
            break;
        }
    }
    Ok(Answer { status, headers, body, elapsed: started.elapsed() })
}

/// The stage for an HTTP status that is not a success, with the cause and the fix.
fn http_failure(answer: &Answer, target: &Target<'_>, key: Option<&str>) -> Option<Stage> {
    const NAME: &str = "initialize";
    let status = answer.status;
    if status.is_success() {
        return None;
    }
    let url = target.url;
    let said = server_message(answer, &target.token);
    let stage = match status.as_u16() {
        401 => unauthorized(answer, target, key),
        403 => Stage::fail(
            NAME,
            format!(
                "{}: {}",
                status_text(status),
                said.as_deref().unwrap_or("the server refused the request")
            ),
            "custory-mcp refuses browser Origins it was not told about: start it with \
             `custory-mcp serve --allow-origin ORIGIN`; behind a proxy or gateway, check its \
             access rules",
        ),
        404 if url.path() == MCP_PATH => Stage::fail(
            NAME,
            format!("{}: nothing answers at {MCP_PATH} here", status_text(status)),
            "check --url, and any proxy in front of the server: it must pass POST /api/mcp \
             through unchanged",
        ),
        404 => Stage::fail(
            NAME,
            format!(
                "{}: wrong path ({}); the MCP endpoint is {MCP_PATH}",
                status_text(status),
                url.path()
            ),
            format!("use --url {}", with_path(url, MCP_PATH)),
        ),
        _ if status.is_redirection() => {
            let to = answer
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| "another address".to_owned(), |l| clean(l, &target.token));
            Stage::fail(
                NAME,
                format!("{}: the server redirects to {to}", status_text(status)),
                "clients may not follow a redirected POST (301 and 302 turn it into a GET): \
                 point --url and the client's config at the final address",
            )
        }
        _ => {
            let excerpt = said.unwrap_or_else(|| excerpt(&answer.body, &target.token));
            let detail = if excerpt.is_empty() {
                status_text(status)
            } else {
                format!("{}: {excerpt}", status_text(status))
            };
            let hint = if status.is_server_error() {
                "the server failed: look at its log (`custory-mcp serve` prints it), then try again"
            } else {
                "is --url the MCP endpoint of a custory-mcp server? (it is POST /api/mcp)"
            };
            Stage::fail(NAME, detail, hint)
        }
    };
    Some(stage)
}

/// 401: unknown, revoked or expired key, from `WWW-Authenticate: … error_description="…"`.
fn unauthorized(answer: &Answer, target: &Target<'_>, key: Option<&str>) -> Stage {
    const NAME: &str = "initialize";
    let challenge = answer
        .headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let description = auth_param(&challenge, "error_description")
        .map(|d| clean(&d, &target.token))
        .or_else(|| server_message(answer, &target.token))
        .unwrap_or_default();
    let lower = description.to_ascii_lowercase();
    let key = key.unwrap_or("KEY");
    let oauth = if auth_param(&challenge, "resource_metadata").is_some() {
        " (the server also advertises OAuth metadata, so clients will start an OAuth flow)"
    } else {
        ""
    };
    let (detail, hint) = if lower.contains("revoked") {
        (
            "this MCP key was revoked".to_owned(),
            "a revoked key cannot be brought back: create a new one with \
             `custory-mcp keys create --save` and give its token to the client \
             (`custory-mcp config CLIENT`)"
                .to_owned(),
        )
    } else if lower.contains("expired") {
        (
            "this MCP key has expired".to_owned(),
            format!(
                "rotate it with `custory-mcp keys rotate {key}` (same name and access, new \
                 token) and give the new token to the client"
            ),
        )
    } else if lower.contains("unknown") {
        (
            "the server does not know this key: it was issued by another server, or this \
             server's database was replaced"
                .to_owned(),
            "check that --url points at the server that issued the key, or create a key on \
             this one with `custory-mcp keys create --save`"
                .to_owned(),
        )
    } else {
        let said =
            if description.is_empty() { "the token was refused".to_owned() } else { description };
        (said, "create a new key with `custory-mcp keys create --save`".to_owned())
    };
    Stage::fail(NAME, format!("401 Unauthorized: {detail}{oauth}"), hint)
}

/// The `result` of the JSON-RPC response with `id`, or the cause and fix of why there is none.
fn rpc_result(answer: &Answer, id: u64, target: &Target<'_>) -> Result<Value, (String, String)> {
    let not_rpc = |why: String| {
        (why, "is --url the MCP endpoint of a custory-mcp server? (it is POST /api/mcp)".to_owned())
    };
    let content_type = content_type(&answer.headers).unwrap_or_default();
    let messages: Vec<Value> = if content_type.eq_ignore_ascii_case("text/event-stream") {
        sse_messages(&answer.body)
    } else {
        match serde_json::from_slice::<Value>(&answer.body) {
            Ok(Value::Array(batch)) => batch,
            Ok(value) => vec![value],
            Err(_) => {
                let shown = if content_type.is_empty() {
                    "no Content-Type".to_owned()
                } else {
                    content_type
                };
                let body = excerpt(&answer.body, &target.token);
                return Err(not_rpc(format!("the answer is not JSON-RPC ({shown}): {body}")));
            }
        }
    };
    let Some(message) = messages.into_iter().find(|m| m.get("id") == Some(&json!(id))) else {
        return Err(not_rpc("the answer holds no JSON-RPC response to the request".to_owned()));
    };
    if let Some(error) = message.get("error") {
        let code = error.get("code").map(Value::to_string).unwrap_or_default();
        let text = error.get("message").and_then(Value::as_str).unwrap_or("(no message)");
        return Err((
            format!("the server answered JSON-RPC error {code}: {}", clean(text, &target.token)),
            "check the server's log; if it is not custory-mcp, check --url".to_owned(),
        ));
    }
    match message.get("result") {
        Some(result) if result.is_object() => Ok(result.clone()),
        _ => Err(not_rpc("the JSON-RPC response has no result object".to_owned())),
    }
}

/// The JSON messages in the `data:` lines of a `text/event-stream` body.
fn sse_messages(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body);
    let mut messages = Vec::new();
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if let Ok(value) = serde_json::from_str::<Value>(&data) {
                messages.push(value);
            }
            data.clear();
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    messages
}

/// What went wrong on the network, and what to do about it.
fn network_cause(error: &reqwest::Error, target: &Target<'_>) -> (String, String) {
    let url = target.url;
    let host = url.host_str().unwrap_or_default();
    let place = host_port(url);
    let mut chain = Vec::new();
    let mut refused = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push(error.to_string());
        source = error.source();
    }
    // Each layer often repeats its source's text: keep the innermost, most specific one.
    let innermost = chain.last().cloned().unwrap_or_default();
    let all = chain.join(": ").to_ascii_lowercase();

    if error.is_timeout() {
        return (
            format!("no answer from {place} within {}s", target.timeout),
            "check that the server is running and reachable from here (firewall, VPN, proxy), \
             or allow more time with --timeout SECS"
                .to_owned(),
        );
    }
    if refused {
        return (
            format!("nothing is listening at {place}"),
            "start it with `custory-mcp serve`, or check --url".to_owned(),
        );
    }
    if all.contains("dns error")
        || all.contains("failed to lookup address")
        || all.contains("name or service not known")
        || all.contains("no address associated")
    {
        return (
            format!("could not resolve {host}"),
            "check the host name in --url (or --server), and that this machine is on the \
             right network or VPN"
                .to_owned(),
        );
    }
    if all.contains("certificate")
        || all.contains("unknownissuer")
        || all.contains("notvalidforname")
    {
        let why = if all.contains("unknownissuer")
            || all.contains("unknown issuer")
            || all.contains("self-signed")
            || all.contains("self signed")
        {
            "it is self-signed or issued by an authority this machine does not trust".to_owned()
        } else if all.contains("expired") {
            "it has expired".to_owned()
        } else if all.contains("notvalidforname") || all.contains("not valid for name") {
            format!("it is not valid for the name {host}")
        } else {
            innermost
        };
        return (
            format!("TLS failed: the certificate of {place} is not trusted: {why}"),
            "give the server a certificate from an authority this machine trusts (or add its \
             CA to the system trust store); a local server is plain http://127.0.0.1:8787"
                .to_owned(),
        );
    }
    if all.contains("invalidcontenttype")
        || all.contains("corrupt message")
        || all.contains("wrong version number")
    {
        return (
            format!("TLS failed: {place} does not speak TLS"),
            "use http:// instead of https:// in --url".to_owned(),
        );
    }
    if all.contains("tls") || all.contains("handshake") || all.contains("alert") {
        return (
            format!("TLS failed with {place}: {innermost}"),
            "check the server's TLS setup, or that --url has the right scheme and port".to_owned(),
        );
    }
    (
        format!("could not reach {place}: {}", chain.join(": ")),
        "check --url, and that the server is running".to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// `--curl`

fn print_curl(args: &TestArgs, url: &Url, printer: Printer) -> anyhow::Result<ExitStatus> {
    let var = &args.token_env;
    let body = initialize_request();
    let command = [
        format!("curl -sS --max-time {} {}", args.timeout, shell_quote(url.as_str())),
        format!("-H {}", shell_quote("Content-Type: application/json")),
        format!("-H {}", shell_quote(&format!("Accept: {ACCEPT_BOTH}"))),
        format!("-H \"Authorization: Bearer ${var}\""),
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

/// `text` as one POSIX shell word.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain { text.to_owned() } else { format!("'{}'", text.replace('\'', r"'\''")) }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn with_path(url: &Url, path: &str) -> String {
    let mut url = url.clone();
    url.set_path(path);
    url.set_query(None);
    url.to_string()
}

/// Milliseconds, to a tenth.
fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}

/// `0.4 ms`, `12.3 ms`, `250 ms`.
fn show_ms(elapsed: Duration) -> String {
    let ms = millis(elapsed);
    if ms < 100.0 { format!("{ms:.1} ms") } else { format!("{ms:.0} ms") }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// The media type of `Content-Type`, without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The message of a JSON error body: JSON-RPC `{"error":{"message"}}` (MCP endpoint) or
/// `{"error":{"message"}}` (custory's API shape), if there is one.
fn server_message(answer: &Answer, token: &PlainToken) -> Option<String> {
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    let message = body.get("error")?.get("message")?.as_str()?;
    Some(clean(message, token))
}

/// One `name="value"` (or `name=value`) parameter of a `WWW-Authenticate` challenge.
fn auth_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(at) = rest.find(name) {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| c == ' ' || c == ',');
        let after = rest[at + name.len()..].trim_start();
        if let (true, Some(value)) = (before_ok, after.strip_prefix('=')) {
            let value = value.trim_start();
            if let Some(quoted) = value.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => return Some(out),
                        '\\' => out.extend(chars.next()),
                        c => out.push(c),
                    }
                }
                return Some(out);
            }
            let end = value.find([',', ' ']).unwrap_or(value.len());
            return Some(value[..end].to_owned());
        }
        rest = &rest[at + name.len()..];
    }
    None
}

/// The start of a body, on one line.
fn excerpt(body: &[u8], token: &PlainToken) -> String {
    clean(&String::from_utf8_lossy(body), token)
}

/// Server-supplied text made safe to show: the token scrubbed, no control characters (no
/// terminal escapes), one line, at most `EXCERPT_CHARS` characters.
fn clean(text: &str, token: &PlainToken) -> String {
    let scrubbed = text.replace(token.expose(), "[token]");
    let one_line: String =
        scrubbed.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect::<String>();
    let one_line = crate::api::displayable(&one_line);
    let words = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.chars().count() > EXCERPT_CHARS {
        let cut: String = words.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_params_are_read_from_a_challenge() {
        let challenge = r#"Bearer realm="custory", error="invalid_token", error_description="this MCP key was revoked: create a new one (custory-mcp keys create)""#;
        assert_eq!(auth_param(challenge, "error").as_deref(), Some("invalid_token"));
        assert_eq!(
            auth_param(challenge, "error_description").as_deref(),
            Some("this MCP key was revoked: create a new one (custory-mcp keys create)")
        );
        assert_eq!(auth_param(challenge, "resource_metadata"), None);
        assert_eq!(auth_param(r#"Bearer error=x, realm="a\"b""#, "realm").as_deref(), Some("a\"b"));
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("http://127.0.0.1:8787/api/mcp"), "http://127.0.0.1:8787/api/mcp");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

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

    #[test]
    fn server_text_is_scrubbed() {
        let token = PlainToken::generate(TokenKind::Mcp);
        let text = format!("echo: Bearer {}\n\x1b[31mred", token.expose());
        let cleaned = clean(&text, &token);
        assert!(!cleaned.contains(token.expose()));
        assert!(!cleaned.contains('\x1b'));
        assert_eq!(cleaned, "echo: Bearer [token] [31mred");
    }

    #[test]
    fn sse_bodies_yield_their_messages() {
        let body = b"id: 1\ndata:\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        let messages = sse_messages(body);
        assert_eq!(messages, vec![json!({"jsonrpc": "2.0", "id": 1, "result": {}})]);
    }
}
