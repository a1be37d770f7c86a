//! OAuth 2.1 with clients nobody here wrote, each starting from no token: the official
//! TypeScript SDK's `OAuthClientProvider` with its `StreamableHTTPClientTransport`, the official
//! Python SDK's `OAuthClientProvider` (httpx2 auth) and `mcp-remote`, all pinned. Each is
//! refused (401), discovers the authorization server, registers itself and sends a person to the
//! consent page, where node/consent.cjs (a headless Chromium driven by playwright-core) signs in
//! with the owner credential and approves. With its token the client lists the tools; the key
//! is then revoked with the CLI, the client's next request is refused, and the client goes back
//! to the consent page and lists the tools again.
//!
//! Chromium is Debian's `chromium`, installed when missing (as root, with apt-get). A missing
//! browser or a failed install fails these tests: they never skip.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use custory_mcp::server::ServerConfig;
use serde_json::{Value, json};
use tempfile::{NamedTempFile, TempDir};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::common::{TestEnv, TestServer, run_piped};
use crate::conformance::{TS_SDK_1, npm_packages, python_with_sdk};

/// Pinned: the browser driver and `mcp-remote` (beside the TypeScript SDK of the conformance
/// tests).
pub(crate) const PLAYWRIGHT: &str = "playwright-core@1.65.1";
const MCP_REMOTE: &str = "mcp-remote@0.15.1";
const CHROMIUM: &str = "/usr/bin/chromium";
const CONSENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/node/consent.cjs");

/// How long one awaited step may take, a browser's cold start included.
const STEP: Duration = Duration::from_secs(120);

/// Debian's Chromium, installed on first use when missing (as root, with apt-get).
pub(crate) fn chromium() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return path;
    }
    let succeeds = |program: &str, args: &[&str]| {
        std::process::Command::new(program).args(args).output().ok().filter(|o| o.status.success())
    };
    let root = succeeds("id", &["-u"]).is_some_and(|o| o.stdout.trim_ascii() == b"0");
    assert!(
        root && succeeds("apt-get", &["--version"]).is_some(),
        "the OAuth client tests need Chromium at {CHROMIUM}: install Debian's package \
         (apt-get install chromium)"
    );
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get")
    };
    let mut output = install();
    if !output.status.success() {
        // A machine that never fetched the package lists.
        let _ = succeeds("apt-get", &["update", "-qq"]);
        output = install();
    }
    assert!(
        output.status.success() && path.exists(),
        "apt-get install chromium failed (the OAuth client tests need Chromium at {CHROMIUM}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

/// What every test here needs, installed on first use: the npm packages (the TypeScript SDK,
/// playwright-core, mcp-remote) and Chromium.
struct Installed {
    modules: PathBuf,
    chromium: PathBuf,
}

async fn installed() -> Installed {
    tokio::task::spawn_blocking(|| Installed {
        modules: npm_packages(&[TS_SDK_1, PLAYWRIGHT, MCP_REMOTE], "the OAuth client tests"),
        chromium: chromium(),
    })
    .await
    .expect("install task")
}

async fn oauth_server() -> TestServer {
    TestServer::start_with(ServerConfig { oauth: true, ..ServerConfig::default() }).await
}

/// The person at the browser: what consent.cjs reads from its environment. The browser profile
/// lasts as long as the test, so a second sign-in finds the session the first one left.
struct Person {
    profile: TempDir,
    /// The access chosen on the consent page.
    access: &'static str,
    action: &'static str,
}

impl Person {
    fn approving(access: &'static str) -> Self {
        Self { profile: tempfile::tempdir().expect("profile"), access, action: "approve" }
    }

    fn denying() -> Self {
        Self { action: "deny", ..Self::approving("read-write") }
    }

    fn env(&self, server: &TestServer, installed: &Installed, command: &mut Command) {
        command
            .env("OWNER_CREDENTIAL", &server.owner_token)
            .env("MCP_MODULES", &installed.modules)
            .env("CHROMIUM", &installed.chromium)
            .env("USER_DATA_DIR", self.profile.path())
            .env("WORKSPACE", "acme")
            .env("ACCESS", self.access)
            .env("ACTION", self.action)
            .env("NO_PROXY", "*");
    }
}

/// A client driver (node/oauth_client.cjs, python/oauth_client.py): it reports what happens in
/// JSON lines on stdout and, once it has listed the tools, waits for a line on stdin.
struct Driver {
    who: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: NamedTempFile,
    events: Vec<Value>,
}

impl Driver {
    fn start(who: &'static str, mut command: Command) -> Self {
        let stderr = NamedTempFile::new().expect("stderr file");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("stderr file"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{who}: could not start: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { who, child, stdin, stdout, stderr, events: Vec::new() }
    }

    /// The events up to and including the next one named `name` (an "error" fails the test
    /// unless it is the one awaited).
    async fn until(&mut self, name: &str) -> Vec<Value> {
        let mut read = Vec::new();
        loop {
            let next = tokio::time::timeout(STEP, self.stdout.next_line()).await;
            let line = match next {
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) => self.fail(&format!("ended before {name:?}")),
                Ok(Err(error)) => self.fail(&format!("stdout: {error}")),
                Err(_) => self.fail(&format!("no {name:?} within {STEP:?}")),
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                self.fail(&format!("printed a line that is not JSON: {line}"))
            };
            self.events.push(event.clone());
            if event["event"] == name {
                read.push(event);
                return read;
            }
            if event["event"] == "error" {
                self.fail("failed");
            }
            read.push(event);
        }
    }

    /// Lets the driver go on past "waiting".
    async fn resume(&mut self) {
        self.stdin.write_all(b"go\n").await.expect("write to the driver");
        self.stdin.flush().await.expect("flush");
    }

    /// The events up to "done", and the driver's exit.
    async fn finish(mut self) -> Vec<Value> {
        let events = self.until("done").await;
        match tokio::time::timeout(STEP, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => events,
            other => self.fail(&format!("exit: {other:?}")),
        }
    }

    fn fail(&self, why: &str) -> ! {
        let stderr = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        let events: Vec<String> = self.events.iter().map(Value::to_string).collect();
        panic!("{}: {why}\n--- events\n{}\n--- stderr\n{stderr}", self.who, events.join("\n"))
    }
}

/// The only event named `name` among `events`.
fn only<'a>(events: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["event"] == name).collect();
    assert_eq!(found.len(), 1, "one {name:?} event in {events:#?}");
    found[0]
}

/// The HTTP exchanges a driver reported, as "METHOD PATH STATUS" on `server`.
fn exchanges(server: &TestServer, events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "http")
        .map(|e| {
            let url = e["url"].as_str().expect("url");
            let path = url.strip_prefix(&server.url).unwrap_or(url);
            format!("{} {path} {}", e["method"].as_str().expect("method"), e["status"])
        })
        .collect()
}

/// Each of `wanted` among `seen`, in this order (others may come between).
fn assert_in_order(seen: &[String], wanted: &[&str]) {
    let mut rest = seen.iter();
    for want in wanted {
        assert!(rest.any(|s| s == want), "{want:?} (in order: {wanted:#?}) among {seen:#?}");
    }
}

/// A URL's query parameters.
fn query(url: &str) -> HashMap<String, String> {
    let url = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    url.query_pairs().into_owned().collect()
}

/// One trip through the consent page: for which client, and whether the browser had to sign in.
#[derive(Debug)]
struct SignIn {
    client_id: String,
    signed_in: bool,
}

/// Checks that `url` is an authorization request of the contract's shape; returns its query.
fn assert_authorization_url(server: &TestServer, url: &str) -> HashMap<String, String> {
    assert!(url.starts_with(&format!("{}/oauth/authorize?", server.url)), "{url}");
    let params = query(url);
    assert_eq!(params.get("response_type").map(String::as_str), Some("code"), "{url}");
    assert_eq!(params.get("code_challenge_method").map(String::as_str), Some("S256"), "{url}");
    for name in ["client_id", "code_challenge", "redirect_uri", "state"] {
        assert!(params.get(name).is_some_and(|v| !v.is_empty()), "{name} in {url}");
    }
    params
}

/// Checks that the browser's report `consent` ends where `authorization` said to come back, with
/// a code and the state.
fn assert_came_back(consent: &Value, authorization: &HashMap<String, String>) {
    let final_url = consent["final_url"].as_str().unwrap_or_else(|| panic!("{consent}"));
    assert!(final_url.starts_with(&authorization["redirect_uri"]), "{final_url}");
    let back = query(final_url);
    assert!(back.get("code").is_some_and(|c| !c.is_empty()), "a code in {final_url}");
    assert_eq!(back.get("state"), authorization.get("state"), "{final_url}");
}

/// Checks one sign-in an SDK driver reported (a redirect, the browser, the callback, the token)
/// against the contract.
fn sign_in(server: &TestServer, events: &[Value]) -> SignIn {
    let redirect = only(events, "redirect");
    let authorization = assert_authorization_url(server, redirect["url"].as_str().expect("url"));
    let consent = only(events, "consent");
    assert_eq!(consent["status"], 0, "{consent}");
    assert_came_back(consent, &authorization);
    let callback = only(events, "callback");
    assert!(callback["code"] == true && callback["error"].is_null(), "{callback}");
    assert_in_order(&exchanges(server, events), &["POST /oauth/token 200"]);
    let tokens = only(events, "tokens");
    assert_eq!(tokens["access_token_prefix"], "cst_", "an MCP key: {tokens}");
    assert!(
        tokens["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{tokens}"
    );
    assert_eq!(tokens["refresh_token"], false, "no refresh tokens: {tokens}");
    SignIn {
        client_id: authorization["client_id"].clone(),
        signed_in: consent["signed_in"] == true,
    }
}

/// The tools the driver's last "tools" event listed.
fn tools(events: &[Value]) -> Vec<String> {
    let listed = events.iter().rev().find(|e| e["event"] == "tools").expect("a tool list");
    listed["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("name").to_owned())
        .collect()
}

/// The workspace's keys that an OAuth sign-in minted.
async fn oauth_keys(server: &TestServer) -> Vec<Value> {
    let body = server.owner().list_keys("acme", "").await;
    let keys = body["keys"].as_array().unwrap_or_else(|| panic!("{body}"));
    keys.iter().filter(|k| !k["oauth_client"].is_null()).cloned().collect()
}

/// Checks the keys after a revoke and a second sign-in: `first` revoked, one new active key,
/// both for the one client.
async fn assert_replaced(server: &TestServer, first: &Value) {
    let keys = oauth_keys(server).await;
    assert_eq!(keys.len(), 2, "{keys:#?}");
    let (revoked, active): (Vec<&Value>, Vec<&Value>) =
        keys.iter().partition(|k| k["status"] == "revoked");
    assert_eq!(revoked.len(), 1, "{keys:#?}");
    assert_eq!(revoked[0]["id"], first["id"]);
    assert_eq!(active[0]["status"], "active", "{keys:#?}");
    assert_eq!(active[0]["oauth_client"], first["oauth_client"], "the same client signed in");
}

/// Revokes `key` as a person would: the real binary's `keys revoke`.
async fn revoke(server: &TestServer, key: &Value) {
    let env = TestEnv::new();
    let id = key["id"].as_str().expect("id");
    let mut command = env.command();
    command.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    command.args(["--workspace", "acme", "keys", "revoke", id, "--yes"]);
    let run = run_piped(command, None).await;
    assert_eq!(run.code, 0, "keys revoke:\n{}{}", run.stdout, run.stderr);
}

/// An SDK client's whole story (see the module's comment), checked as it goes: `name` is the
/// client name it registers, `access` what the person chose, `tool_count` what that lists.
async fn sign_in_revoke_and_sign_in_again(
    server: &TestServer,
    mut driver: Driver,
    name: &str,
    access: &str,
    tool_count: usize,
) {
    let first = driver.until("waiting").await;
    // Refused, then the contract's discovery and a registration, before the browser opens.
    assert_in_order(
        &exchanges(server, &first),
        &[
            "POST /api/mcp 401",
            "GET /.well-known/oauth-protected-resource/api/mcp 200",
            "GET /.well-known/oauth-authorization-server/oauth 200",
            "POST /oauth/register 201",
            "POST /oauth/token 200",
            "POST /api/mcp 200",
        ],
    );
    let refused = first.iter().find(|e| e["event"] == "http").expect("a first request");
    let challenge = refused["www_authenticate"].as_str().unwrap_or_else(|| panic!("{refused}"));
    let metadata = format!("{}/.well-known/oauth-protected-resource/api/mcp", server.url);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata}\"")), "{challenge}");
    let registered = only(&first, "registered");
    assert_eq!(registered["client_name"], name, "{registered}");
    assert_eq!(registered["has_secret"], false, "a public client: {registered}");
    let once = sign_in(server, &first);
    assert_eq!(registered["client_id"], once.client_id.as_str());
    assert!(once.signed_in, "a new browser signs in first");
    let listed = tools(&first);
    assert_eq!(listed.len(), tool_count, "{access}: {listed:?}");

    let keys = oauth_keys(server).await;
    assert_eq!(keys.len(), 1, "{keys:#?}");
    let key = &keys[0];
    assert_eq!(key["oauth_client"], json!({"client_id": once.client_id, "name": name}));
    assert_eq!(key["status"], "active", "{key}");
    assert_eq!(key["access"], access, "as chosen on the consent page: {key}");

    revoke(server, key).await;
    driver.resume().await;
    let after = driver.finish().await;
    let refused = after.iter().find(|e| e["event"] == "http").expect("a request after the revoke");
    assert_eq!(refused["status"], 401, "the next request is refused: {refused}");
    let challenge = refused["www_authenticate"].as_str().unwrap_or_else(|| panic!("{refused}"));
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(after.iter().all(|e| e["event"] != "registered"), "the client kept its registration");
    let again = sign_in(server, &after);
    assert_eq!(again.client_id, once.client_id);
    assert!(!again.signed_in, "the browser's session outlives a revoke");
    assert_eq!(tools(&after), listed);
    assert_replaced(server, key).await;
}

#[tokio::test]
async fn typescript_sdk_signs_in_at_the_consent_page_and_again_after_a_revoke() {
    let installed = installed().await;
    let server = oauth_server().await;
    let person = Person::approving("read-write");
    let name = "TypeScript SDK OAuth test";
    let mut command = Command::new("node");
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/node/oauth_client.cjs"))
        .arg(server.mcp_url())
        .env("CLIENT_NAME", name);
    person.env(&server, &installed, &mut command);
    let driver = Driver::start("the TypeScript SDK's OAuth client", command);
    sign_in_revoke_and_sign_in_again(&server, driver, name, "read-write", 24).await;
    server.stop().await;
}

#[tokio::test]
async fn python_sdk_signs_in_at_the_consent_page_and_again_after_a_revoke() {
    let installed = installed().await;
    let python = tokio::task::spawn_blocking(python_with_sdk).await.expect("install task");
    let server = oauth_server().await;
    let person = Person::approving("read-only");
    let name = "Python SDK OAuth test";
    let mut command = Command::new(python);
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/python/oauth_client.py"))
        .arg(server.mcp_url())
        .env("CLIENT_NAME", name);
    person.env(&server, &installed, &mut command);
    let driver = Driver::start("the Python SDK's OAuth client", command);
    sign_in_revoke_and_sign_in_again(&server, driver, name, "read-only", 7).await;
    server.stop().await;
}

#[tokio::test]
async fn a_denied_consent_sends_access_denied_to_the_client_and_mints_no_key() {
    let installed = installed().await;
    let server = oauth_server().await;
    let person = Person::denying();
    let mut command = Command::new("node");
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/node/oauth_client.cjs"))
        .arg(server.mcp_url());
    person.env(&server, &installed, &mut command);
    let mut driver = Driver::start("the TypeScript SDK's OAuth client", command);
    let events = driver.until("error").await;
    let consent = only(&events, "consent");
    assert_eq!(consent["status"], 0, "{consent}");
    let back = query(consent["final_url"].as_str().expect("final_url"));
    assert_eq!(back.get("error").map(String::as_str), Some("access_denied"), "{consent}");
    assert!(!back.contains_key("code"), "{consent}");
    assert_eq!(only(&events, "callback")["error"], "access_denied");
    assert!(events.iter().all(|e| e["event"] != "tokens"), "{events:#?}");
    assert_eq!(oauth_keys(&server).await, Vec::<Value>::new());
    server.stop().await;
}

/// The browser for `mcp-remote`. It opens URLs with the `open` package, which runs its own copy
/// of xdg-open, and that starts `$BROWSER` when there is no desktop; so the shim is `$BROWSER`,
/// and first on PATH as `xdg-open` too. It notes each URL, runs consent.cjs on it and tells the
/// test how that went, in one JSON line on the test's FIFO.
const BROWSER_SHIM: &str = r#"#!/bin/sh
# The browser in the mcp-remote test: notes the URL, signs in and approves with consent.cjs,
# and reports {"status": N, "consent": consent.cjs's line or null} on the test's FIFO.
printf '%s\n' "$1" >> "$BROWSER_LOG"
result=$(node "$BROWSER_CONSENT" "$1" 2>> "$BROWSER_LOG.stderr")
printf '{"status":%d,"consent":%s}\n' "$?" "${result:-null}" > "$BROWSER_EVENTS"
"#;

/// `mcp-remote` as an MCP host runs it: a stdio server in front of the remote one, with a
/// config dir, a callback port and a browser of its own.
struct McpRemote {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    browser: Lines<BufReader<pipe::Receiver>>,
    /// Browser reports read while awaiting an answer.
    reports: VecDeque<Value>,
    dir: TempDir,
    port: u16,
    next_id: i64,
}

impl McpRemote {
    async fn start(server: &TestServer, installed: &Installed, person: &Person) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        let shim = bin.join("xdg-open");
        std::fs::write(&shim, BROWSER_SHIM).expect("write the shim");
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let fifo = dir.path().join("browser-events");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success(), "mkfifo {}", fifo.display());
        // Open for writing too, so the FIFO never reads as ended between two browser runs.
        let events = pipe::OpenOptions::new().read_write(true).open_receiver(&fifo).expect("fifo");
        let port = free_port();

        let mut command = Command::new("node");
        command
            .arg(installed.modules.join("node_modules/mcp-remote/dist/proxy.js"))
            .arg(server.mcp_url())
            .arg(port.to_string())
            .args(["--auth-timeout", "120"])
            // No desktop of the test machine's: the shim is the only browser.
            .env_clear()
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
            .env("HOME", dir.path())
            .env("MCP_REMOTE_CONFIG_DIR", dir.path().join("mcp-auth"))
            .env("BROWSER", &shim)
            .env("BROWSER_LOG", dir.path().join("opened"))
            .env("BROWSER_CONSENT", CONSENT)
            .env("BROWSER_EVENTS", &fifo)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
            .kill_on_drop(true);
        person.env(server, installed, &mut command);
        let mut child = command.spawn().expect("node: the mcp-remote test needs it");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let browser = BufReader::new(events).lines();
        Self { child, stdin, stdout, browser, reports: VecDeque::new(), dir, port, next_id: 0 }
    }

    async fn send(&mut self, message: &Value) {
        let line = format!("{message}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write to mcp-remote");
        self.stdin.flush().await.expect("flush");
    }

    /// Sends one request; returns its answer (anything else the proxy sends is passed over).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        loop {
            let line = self.next_line(method).await;
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                self.fail(&format!("printed a line that is not JSON-RPC: {line}"))
            };
            if message["id"] == id {
                return message;
            }
        }
    }

    /// mcp-remote's next line on stdout. A browser report that comes first is kept for
    /// [`McpRemote::browser`]; a failed one fails the test at once (mcp-remote would wait for
    /// its callback until it gives up).
    async fn next_line(&mut self, awaiting: &str) -> String {
        #[derive(Debug)]
        enum Next {
            Stdout(std::io::Result<Option<String>>),
            Browser(std::io::Result<Option<String>>),
        }
        loop {
            let next = tokio::time::timeout(STEP, async {
                tokio::select! {
                    line = self.stdout.next_line() => Next::Stdout(line),
                    line = self.browser.next_line() => Next::Browser(line),
                }
            })
            .await;
            match next {
                Ok(Next::Stdout(Ok(Some(line)))) => return line,
                Ok(Next::Browser(Ok(Some(line)))) => {
                    let report = self.report(&line);
                    if report["status"] != 0 {
                        self.fail(&format!("the browser failed during {awaiting}: {report}"));
                    }
                    self.reports.push_back(report);
                }
                other => self.fail(&format!("no answer to {awaiting}: {other:?}")),
            }
        }
    }

    fn report(&self, line: &str) -> Value {
        serde_json::from_str(line).unwrap_or_else(|_| self.fail(&format!("browser: {line}")))
    }

    /// The names of the tools `tools/list` answers.
    async fn tools(&mut self) -> Vec<String> {
        let answer = self.request("tools/list", json!({})).await;
        let Some(tools) = answer["result"]["tools"].as_array() else {
            self.fail(&format!("tools/list: {answer}"))
        };
        tools.iter().map(|t| t["name"].as_str().expect("name").to_owned()).collect()
    }

    /// How the next trip through the browser went: the shim's report.
    async fn browser(&mut self) -> Value {
        if let Some(report) = self.reports.pop_front() {
            return report;
        }
        let next = tokio::time::timeout(STEP, self.browser.next_line()).await;
        match next {
            Ok(Ok(Some(line))) => self.report(&line),
            other => self.fail(&format!("the browser did not report: {other:?}")),
        }
    }

    /// The URLs the browser was opened with, in order.
    fn opened(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("opened")).unwrap_or_default();
        log.lines().map(str::to_owned).collect()
    }

    fn fail(&self, why: &str) -> ! {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        panic!(
            "mcp-remote: {why}\n--- opened\n{}\n--- browser stderr\n{}\n--- mcp-remote stderr\n{}",
            read("opened").unwrap_or_default(),
            read("opened.stderr").unwrap_or_default(),
            read("stderr").unwrap_or_default()
        )
    }

    /// Ends the session the way a host does: stdin closes, the proxy exits.
    async fn close(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(STEP, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
        }
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Checks one report of mcp-remote's browser: consent.cjs came back to mcp-remote's callback
/// from the authorization request `opened`; returns the sign-in.
fn remote_sign_in(server: &TestServer, remote: &McpRemote, report: &Value, opened: &str) -> SignIn {
    assert_eq!(report["status"], 0, "{report}");
    let authorization = assert_authorization_url(server, opened);
    let callback = format!("http://localhost:{}/oauth/callback", remote.port);
    assert_eq!(authorization["redirect_uri"], callback, "{opened}");
    assert_came_back(&report["consent"], &authorization);
    SignIn {
        client_id: authorization["client_id"].clone(),
        signed_in: report["consent"]["signed_in"] == true,
    }
}

#[tokio::test]
async fn mcp_remote_signs_in_through_the_browser_and_again_after_a_revoke() {
    let installed = installed().await;
    let server = oauth_server().await;
    let person = Person::approving("read-write");
    let mut remote = McpRemote::start(&server, &installed, &person).await;
    // mcp-remote signs in before it answers: the browser opens during `initialize`.
    let init = remote
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "oauth-clients-test", "version": "1"}}),
        )
        .await;
    assert_eq!(init["result"]["serverInfo"]["name"], "custory-mcp", "{init}");
    remote.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    let report = remote.browser().await;
    let opened = remote.opened();
    assert_eq!(opened.len(), 1, "{opened:?}");
    let once = remote_sign_in(&server, &remote, &report, &opened[0]);
    assert!(once.signed_in, "a new browser signs in first: {report}");
    let listed = remote.tools().await;
    assert_eq!(listed.len(), 24, "{listed:?}");

    let keys = oauth_keys(&server).await;
    assert_eq!(keys.len(), 1, "{keys:#?}");
    let key = &keys[0];
    assert_eq!(key["oauth_client"]["client_id"], once.client_id.as_str(), "{key}");
    assert_eq!(key["oauth_client"]["name"], "MCP CLI Proxy", "what mcp-remote registers: {key}");
    assert_eq!(key["status"], "active");

    revoke(&server, key).await;
    // Refused, the proxy signs in again in the middle of the session and retries the request.
    assert_eq!(remote.tools().await, listed);
    let report = remote.browser().await;
    let opened = remote.opened();
    assert_eq!(opened.len(), 2, "the browser opened again: {opened:?}");
    let again = remote_sign_in(&server, &remote, &report, &opened[1]);
    assert_eq!(again.client_id, once.client_id, "mcp-remote kept its registration");
    assert!(!again.signed_in, "the browser's session outlives a revoke: {report}");
    assert_replaced(&server, key).await;
    remote.close().await;
    server.stop().await;
}

/// Runs consent.cjs on `url` as `person` with `extra` settings; returns (exit code, stdout,
/// stderr).
async fn browse(
    server: &TestServer,
    installed: &Installed,
    person: &Person,
    url: &str,
    extra: &[(&str, &str)],
) -> (i32, String, String) {
    let mut command = Command::new("node");
    command.arg(CONSENT).arg(url);
    person.env(server, installed, &mut command);
    for (name, value) in extra {
        command.env(name, value);
    }
    let output = tokio::time::timeout(STEP, command.output())
        .await
        .expect("the browser finished in time")
        .expect("node");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_consent_page_in_a_real_browser_refuses_what_it_must() {
    let installed = installed().await;
    let server = oauth_server().await;
    // The client's callback: it only has to answer.
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let redirect = format!("http://{}/callback", callback.local_addr().expect("addr"));
    let app = axum::Router::new().route("/callback", axum::routing::get(|| async { "signed in" }));
    tokio::spawn(async move { axum::serve(callback, app).await });
    let client = json!({"client_name": "Browser Test", "redirect_uris": [redirect]});
    let registered = server.visitor().post("/oauth/register").json(&client).expect(201).await;
    let client_id = registered["client_id"].as_str().expect("client_id");
    let authorize = |redirect_uri: &str| {
        let mut url = url::Url::parse(&format!("{}/oauth/authorize", server.url)).expect("url");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", "s1")
            .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", &server.mcp_url());
        url.to_string()
    };
    let person = Person::approving("read-only");

    // A wrong owner credential: the sign-in page again, saying why.
    let (code, _, stderr) = browse(
        &server,
        &installed,
        &person,
        &authorize(&redirect),
        &[("OWNER_CREDENTIAL", "csa_wrong")],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("That is not this server's owner credential"), "{stderr}");
    // A sign-in form without its CSRF token is refused, and so is a consent form without it.
    let (code, _, stderr) =
        browse(&server, &installed, &person, &authorize(&redirect), &[("TAMPER", "drop-csrf")])
            .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("CSRF token is missing or wrong"), "{stderr}");
    // An unregistered redirect URI: a page on this server, nothing sent anywhere.
    let elsewhere = format!("http://127.0.0.1:{}/elsewhere", free_port());
    let (code, _, stderr) = browse(&server, &installed, &person, &authorize(&elsewhere), &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not one the client registered"), "{stderr}");
    assert!(
        stderr.contains(&format!("at {}/oauth/authorize", server.url)),
        "stayed here: {stderr}"
    );
    // Approving works, with the access chosen; a key exists only after the token request.
    let (code, stdout, stderr) =
        browse(&server, &installed, &person, &authorize(&redirect), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("report");
    let came_back = query(report["final_url"].as_str().expect("final_url"));
    assert!(came_back.contains_key("code") && came_back["state"] == "s1", "{report}");
    assert_eq!(report["form"]["access"], "read-only");
    assert!(oauth_keys(&server).await.is_empty(), "no key before the code is redeemed");
    // Signed in now (the profile keeps the session): a consent form without its CSRF token.
    let (code, _, stderr) =
        browse(&server, &installed, &person, &authorize(&redirect), &[("TAMPER", "drop-csrf")])
            .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("CSRF token is missing or wrong"), "{stderr}");
    server.stop().await;
}

/// A member signs in at the consent page in a real browser with their own credential (issue
/// 33): the key the code mints is attributed to them; a viewer's read-write choice is refused
/// on the page and sends no code.
#[tokio::test]
async fn a_member_consents_in_a_real_browser_and_the_key_is_theirs() {
    let installed = installed().await;
    let server = oauth_server().await;
    let admin = server.owner();
    let eddie = admin.add_member("acme", "Eddie", "editor").await;
    let vera = admin.add_member("acme", "Vera", "viewer").await;
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let redirect = format!("http://{}/callback", callback.local_addr().expect("addr"));
    let app = axum::Router::new().route("/callback", axum::routing::get(|| async { "signed in" }));
    tokio::spawn(async move { axum::serve(callback, app).await });
    let client = json!({"client_name": "Browser Test", "redirect_uris": [redirect]});
    let registered = server.visitor().post("/oauth/register").json(&client).expect(201).await;
    let client_id = registered["client_id"].as_str().expect("client_id");
    let (verifier, challenge) = crate::oauth::pkce("member");
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", server.url)).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("state", "m1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &server.mcp_url());
    let url = url.to_string();

    let person = Person::approving("read-write");
    let (code, stdout, stderr) =
        browse(&server, &installed, &person, &url, &[("OWNER_CREDENTIAL", eddie.token())]).await;
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("report");
    assert_eq!(report["signed_in"], true, "{report}");
    let came_back = query(report["final_url"].as_str().expect("final_url"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", came_back["code"].as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", client_id),
        ("code_verifier", verifier.as_str()),
    ];
    let token = server.visitor().post("/oauth/token").form(&form).expect(200).await;
    assert!(token["access_token"].as_str().is_some_and(|t| t.starts_with("cst_")), "{token}");
    let keys = oauth_keys(&server).await;
    assert_eq!(keys.len(), 1, "{keys:#?}");
    assert_eq!(keys[0]["access"], "read-write");
    assert_eq!(keys[0]["created_by"]["kind"], "consent", "{keys:#?}");
    assert_eq!(keys[0]["created_by"]["name"], "Eddie", "{keys:#?}");

    // A viewer: the page refuses read-write and the browser never reaches the callback.
    let viewer = Person::approving("read-write");
    let (code, _, stderr) =
        browse(&server, &installed, &viewer, &url, &[("OWNER_CREDENTIAL", vera.token())]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("As a viewer of this workspace"), "{stderr}");
    assert_eq!(oauth_keys(&server).await.len(), 1, "no key for the viewer's refused choice");
    server.stop().await;
}

/// mcp-remote with a key in a header (how Claude Desktop and Continue reach a server) whose
/// key is revoked, on a server without `--oauth`: it takes the 401 as a sign-in prompt and
/// tries to register, and the server's answer there is the sentence it shows, saying the key
/// was refused and how to make a new one, instead of a bare 404.
#[tokio::test]
async fn mcp_remote_with_a_revoked_key_shows_why_and_what_to_do() {
    let modules = tokio::task::spawn_blocking(|| {
        npm_packages(&[TS_SDK_1, PLAYWRIGHT, MCP_REMOTE], "the OAuth client tests")
    })
    .await
    .expect("install task");
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Claude Desktop", "30d", "read-only").await;
    owner.revoke(key.info["id"].as_str().expect("id")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir bin");
    // No browser may open: a shim that only notes it was asked.
    let shim = bin.join("xdg-open");
    std::fs::write(&shim, "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/opened\"\n")
        .expect("write the shim");
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut command = Command::new("node");
    command
        .arg(modules.join("node_modules/mcp-remote/dist/proxy.js"))
        .arg(server.mcp_url())
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", key.token))
        .args(["--transport", "http-only"])
        .env_clear()
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("HOME", dir.path())
        .env("MCP_REMOTE_CONFIG_DIR", dir.path().join("mcp-auth"))
        .env("BROWSER", &shim)
        .kill_on_drop(true);
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "Claude Desktop", "version": "1"}}});
    let run = tokio::time::timeout(STEP, run_piped(command, Some(&format!("{initialize}\n"))))
        .await
        .expect("mcp-remote gave up within the step's time");
    let said = run.stderr.replace(&key.token, "<token>");
    assert_ne!(run.code, 0, "mcp-remote did not fail:\n{said}");
    assert!(
        said.contains("refused this client's key")
            && said.contains("`custory-mcp keys create --name NAME --save`"),
        "mcp-remote does not show why:\n{said}"
    );
    assert!(!said.contains("no such endpoint"), "{said}");
    assert!(!bin.join("opened").exists(), "a browser was opened");
    server.stop().await;
}

/// The workspace key policy at the consent page, in a real browser (issue 34): the form offers
/// only the expiries and access the policy allows, so a person cannot even pick the others;
/// what is picked within it signs in.
#[tokio::test]
async fn the_consent_page_in_a_real_browser_offers_only_what_the_policy_allows() {
    let installed = installed().await;
    let server = oauth_server().await;
    let policy = json!({"max_expiry": "90d", "access": "read-only"});
    server.owner().post("/workspaces/acme/policy").json(&policy).expect(200).await;
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let redirect = format!("http://{}/callback", callback.local_addr().expect("addr"));
    let app = axum::Router::new().route("/callback", axum::routing::get(|| async { "signed in" }));
    tokio::spawn(async move { axum::serve(callback, app).await });
    let client = json!({"client_name": "Policy Test", "redirect_uris": [redirect]});
    let registered = server.visitor().post("/oauth/register").json(&client).expect(201).await;
    let client_id = registered["client_id"].as_str().expect("client_id");
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", server.url)).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("state", "s1")
        .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &server.mcp_url());
    let authorize = url.to_string();

    // Read-write and "never" are not among the options: the browser cannot choose them.
    for (person, extra) in [
        (Person::approving("read-write"), vec![("EXPIRES", "90d")]),
        (Person::approving("read-only"), vec![("EXPIRES", "never")]),
    ] {
        let (code, _, stderr) = browse(&server, &installed, &person, &authorize, &extra).await;
        assert_eq!(code, 1, "{extra:?}: the page offered it:\n{stderr}");
        assert!(stderr.contains("option"), "{extra:?}: {stderr}");
    }
    // Within the policy, it signs in.
    let person = Person::approving("read-only");
    let (code, stdout, stderr) =
        browse(&server, &installed, &person, &authorize, &[("EXPIRES", "90d")]).await;
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("report");
    assert_eq!(report["form"]["access"], "read-only", "{report}");
    assert_eq!(report["form"]["expires"], "90d", "{report}");
    assert!(query(report["final_url"].as_str().expect("final_url")).contains_key("code"));
    server.stop().await;
}
