//! Conformance with MCP clients nobody here wrote, in both eras of the protocol: the official
//! Python SDK (2.x and 1.x, pinned, each installed from PyPI into its own venv under
//! `target/`), the official TypeScript SDK (1.x and the 2.x client, from npm), the official Rust
//! SDK's client (`rmcp`), Claude Code's CLI and MCP Inspector; and the official conformance
//! suite's server scenarios that apply to this server.
//! A failed install fails these tests: they never skip.

#![allow(clippy::print_stderr, reason = "the tests report what each client negotiated")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt as _, RoleClient, ServiceExt as _};
use serde_json::{Value, json};

use crate::common::{Key, TestServer};

/// The official Python SDK, pinned: the newest 2.x (both eras), and the newest 1.x (the
/// handshake era only), each in its own venv.
const PYTHON_MCP: &str = "mcp==2.3.0";
const PYTHON_MCP_1: &str = "mcp==1.30.0";

/// The venv's python with the SDK 2.x, installing it on first use (once per target dir).
pub fn python_with_sdk() -> PathBuf {
    python_with(PYTHON_MCP)
}

/// The venv's python with `package` (pip requirements, separated by spaces), installed on
/// first use.
pub fn python_with(package: &str) -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("py-{}", package.replace("==", "-").replace(' ', "+")));
    let python = venv.join("bin/python");
    if venv.join(".installed").exists() {
        return python;
    }
    // A venv left half-made by an interrupted run is rebuilt from scratch.
    let _ = std::fs::remove_dir_all(&venv);
    let run = |cmd: &mut Command, what: &str| {
        let output = cmd.output().unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
        assert!(
            output.status.success(),
            "{what} failed (the MCP conformance tests need python3 with venv and PyPI access):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv");
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(package.split_whitespace()),
        "pip install",
    );
    std::fs::write(venv.join(".installed"), package).expect("mark venv");
    python
}

/// Claude Code's CLI, pinned, installed from npm on first use (once per target dir).
const CLAUDE_CODE: &str = "@anthropic-ai/claude-code@2.1.197";

/// The `claude` program, installing it on first use.
pub fn claude_code() -> PathBuf {
    npm_packages(&[CLAUDE_CODE], "the Claude Code tests").join("node_modules/.bin/claude")
}

/// MCP Inspector, pinned, and the Node it runs on (it needs Node ≥ 22; the npm package `node`
/// brings a pinned one from the registry, whatever Node runs npm).
const INSPECTOR: &str = "@modelcontextprotocol/inspector@2.12.0";
const INSPECTOR_NODE: &str = "node@22.23.3";

/// `(node, the Inspector's launcher script)`, installing both on first use.
pub fn mcp_inspector() -> (PathBuf, PathBuf) {
    let dir = npm_packages(&[INSPECTOR, INSPECTOR_NODE], "the Inspector test");
    let launcher =
        dir.join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    (dir.join("node_modules/.bin/node"), launcher)
}

/// The official TypeScript SDK, pinned: the newest 1.x (the handshake era) and the newest 2.x
/// client (both eras). They run on the machine's Node (≥ 20).
pub const TS_SDK_1: &str = "@modelcontextprotocol/sdk@1.32.2";
const TS_SDK_2: &str = "@modelcontextprotocol/client@2.4.0";

/// A directory whose `node_modules` holds `packages`, installed from npm on first use (once
/// per target dir, whoever asks first; a half-made one is made again). `who` names the tests
/// that need them, for the failure message: a failed install fails those tests.
pub fn npm_packages(packages: &[&str], who: &str) -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let name = packages.join("+");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(name.trim_start_matches('@').replace(['/', '@', '+'], "-"));
    if dir.join(".installed").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let output = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .args(packages)
        .output()
        .unwrap_or_else(|e| panic!("npm: could not start ({e}); {who} need node and npm"));
    assert!(
        output.status.success(),
        "npm install {name} failed ({who} need npm and the npm registry):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(dir.join(".installed"), &name).expect("mark");
    dir
}

/// Runs tests/it/node/mcp_client.cjs with the TypeScript SDK `sdk` ("sdk": 1.x, "client":
/// 2.x) in `mode`; returns its JSON report.
async fn typescript_client(sdk: &'static str, mode: &'static str, url: &str, token: &str) -> Value {
    let (url, token) = (url.to_owned(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        let modules = npm_packages(&[TS_SDK_1, TS_SDK_2], "the TypeScript SDK tests");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/node/mcp_client.cjs");
        let output = Command::new("node")
            .arg(script)
            .arg(&url)
            .env("MCP_TOKEN", &token)
            .env("MCP_SDK", sdk)
            .env("MCP_MODE", mode)
            .env("MCP_MODULES", modules)
            .env("NO_PROXY", "*")
            .output()
            .unwrap_or_else(|e| {
                panic!("node: could not start ({e}); the TypeScript SDK tests need it")
            });
        report_of(&output, &format!("the TypeScript client ({sdk}, {mode})"))
    })
    .await
    .expect("node task")
}

#[tokio::test]
async fn typescript_sdks_of_both_eras_use_tools_resources_prompts_and_completions() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("TypeScript SDKs", "30d", "read-write").await;
    let (token, tools) = (&key.token, key.tools().await);
    let mut seen = Vec::new();
    for (sdk, mode, version) in [
        ("client", "auto", "2026-07-28"),
        ("client", "legacy", "2025-11-25"),
        ("sdk", "", "2025-11-25"),
    ] {
        let mut report = typescript_client(sdk, mode, &server.mcp_url(), token).await;
        assert!(report.get("error").is_none(), "{sdk} {mode}: {report}");
        assert_eq!(report["protocol_version"], version, "{sdk} {mode} negotiated");
        eprintln!("conformance: TypeScript {sdk} ({mode}) negotiated {version}");
        assert_eq!(report["server_name"], "custory-mcp");
        // Capabilities as served: the modern era has no list notifications to speak of.
        let mut capabilities = report["capabilities"].take();
        // The MCP Apps extension: the 2.x client keeps `extensions`, 1.x drops what it does
        // not know.
        if let Some(extensions) = capabilities.as_object_mut().and_then(|c| c.remove("extensions"))
        {
            assert_eq!(extensions, json!({"io.modelcontextprotocol/ui": {}}), "{sdk} {mode}");
        }
        let names: Vec<&str> =
            capabilities.as_object().expect("caps").keys().map(String::as_str).collect();
        assert_eq!(names, ["completions", "prompts", "resources", "tools"], "{sdk} {mode}");
        assert_eq!(report["tools"].as_array().map(Vec::len), Some(tools.len()));
        assert_eq!(report["call"]["is_error"], false);
        assert_eq!(
            report["resources"]["uris"],
            json!(["custory://journeys/trial-to-paid", "custory://journeys/support-escalation"])
        );
        assert_eq!(report["read"][0]["mime_type"], "text/markdown");
        assert!(
            report["read"][0]["text"].as_str().is_some_and(|t| t.starts_with("# Trial to paid"))
        );
        assert_eq!(report["templates"][1], "custory://items/{item_id}");
        assert_eq!(
            report["prompts"],
            json!(["review_stage", "notes_to_insights", "summarise_changes"])
        );
        assert!(report["prompt"][0]["text"].as_str().is_some_and(|t| t.contains("## 3. Activate")));
        assert_eq!(
            report["completions"],
            json!([["Discover", "Sign up", "Activate", "Convert"], ["support-escalation"]])
        );
        report["protocol_version"].take();
        seen.push(report);
    }
    assert_eq!(seen[0], seen[1], "both eras see the same");
    assert_eq!(seen[1], seen[2], "both SDKs see the same");
    server.stop().await;
}

/// A Python SDK client: which SDK, and (2.x) in which mode it connects.
#[derive(Debug, Clone, Copy)]
enum PySdk {
    /// 2.x in its default mode: the 2026-07-28 revision first, else the handshake.
    Auto,
    /// 2.x, the handshake only.
    Legacy,
    /// 1.x (the handshake only).
    V1,
}

/// Runs the Python SDK 2.x client in its default mode with `steps`; returns its JSON report.
async fn python_client(url: &str, token: &str, steps: Value) -> Value {
    python_client_of(PySdk::Auto, url, token, steps).await
}

/// Runs a Python SDK client with `steps` (see tests/it/python/mcp_steps.py); returns its
/// JSON report. The token goes in the environment, never on a command line.
async fn python_client_of(sdk: PySdk, url: &str, token: &str, steps: Value) -> Value {
    let url = url.to_owned();
    let token = token.to_owned();
    tokio::task::spawn_blocking(move || {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/python/");
        let (python, script, mode) = match sdk {
            PySdk::Auto => (python_with(PYTHON_MCP), "mcp_client.py", "auto"),
            PySdk::Legacy => (python_with(PYTHON_MCP), "mcp_client.py", "legacy"),
            PySdk::V1 => (python_with(PYTHON_MCP_1), "mcp_client_v1.py", ""),
        };
        let output = Command::new(python)
            .arg(format!("{dir}{script}"))
            .arg(&url)
            .arg(steps.to_string())
            .env("MCP_TOKEN", &token)
            .env("MCP_MODE", mode)
            .env("NO_PROXY", "*")
            .output()
            .expect("run python client");
        report_of(&output, &format!("the Python client ({sdk:?})"))
    })
    .await
    .expect("python task")
}

/// The JSON report a client driver printed on stdout (its stderr shown when there is none).
fn report_of(output: &std::process::Output, who: &str) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!("{who} printed no JSON:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr))
    })
}

#[tokio::test]
async fn python_sdks_of_both_eras_read_resources_prompts_and_completions() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Python SDKs", "30d", "read-write").await;
    let steps = json!([
        {"op": "list_resources"},
        {"op": "read_resource", "uri": "custory://journeys/trial-to-paid"},
        {"op": "list_templates"},
        {"op": "list_prompts"},
        {"op": "get_prompt", "name": "review_stage",
         "args": {"journey": "trial-to-paid", "stage": "Activate"}},
        {"op": "complete", "ref": {"type": "ref/prompt", "name": "review_stage"},
         "argument": "stage", "value": "", "context": {"journey": "trial-to-paid"}},
        {"op": "complete", "ref": {"type": "ref/resource", "uri": "custory://journeys/{journey}"},
         "argument": "journey", "value": "sup"},
        {"op": "call", "tool": "list_journeys", "args": {}},
    ]);
    let mut seen = Vec::new();
    for (sdk, version) in
        [(PySdk::Auto, "2026-07-28"), (PySdk::Legacy, "2025-11-25"), (PySdk::V1, "2025-11-25")]
    {
        let report = python_client_of(sdk, &server.mcp_url(), &key.token, steps.clone()).await;
        assert!(report.get("error").is_none(), "{sdk:?}: {report}");
        assert_eq!(report["protocol_version"], version, "{sdk:?} negotiated");
        eprintln!("conformance: Python SDK {sdk:?} negotiated {version}");
        let r = &report["results"];
        let resources = r[0]["resources"].as_array().expect("resources");
        assert_eq!(resources.len(), 2, "{sdk:?}: {r}");
        assert_eq!(resources[0]["uri"], "custory://journeys/trial-to-paid");
        assert_eq!(resources[0]["mime_type"], "text/markdown");
        let map = r[1]["contents"][0]["text"].as_str().expect("map");
        assert!(map.starts_with("# Trial to paid") && map.contains("## 3. Activate"), "{map}");
        assert_eq!(
            r[2]["templates"],
            json!(["custory://journeys/{journey}", "custory://items/{item_id}"])
        );
        let prompts: Vec<&str> = r[3]["prompts"]
            .as_array()
            .expect("prompts")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(prompts, ["review_stage", "notes_to_insights", "summarise_changes"]);
        assert_eq!(r[4]["messages"][0]["role"], "user");
        assert!(r[4]["messages"][0]["text"].as_str().is_some_and(|t| t.contains("get_item")));
        assert_eq!(r[5]["values"], json!(["Discover", "Sign up", "Activate", "Convert"]));
        assert_eq!(r[6]["values"], json!(["support-escalation"]));
        assert_eq!(r[7]["is_error"], false);
        seen.push(r.clone());
    }
    // Every era and SDK sees the same workspace.
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
    server.stop().await;
}

type RmcpClient = RunningService<RoleClient, ClientConfig>;

async fn rmcp_connect(
    url: &str,
    token: &str,
) -> Result<RmcpClient, rmcp::service::ClientInitializeError> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("rmcp-conformance", "3"))
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
}

async fn rmcp_call(client: &RmcpClient, name: &str, args: Value) -> CallToolResult {
    let Value::Object(map) = args else { panic!("arguments must be an object") };
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A step of the demo journey that holds insights, found through the server's own tool.
async fn demo_step_id(key: &Key) -> String {
    let listed = key.ok("list_items", json!({"kind": "insight"})).await;
    listed["items"][0]["step_id"]
        .as_str()
        .unwrap_or_else(|| panic!("list_items gives step ids: {listed}"))
        .to_owned()
}

#[tokio::test]
async fn python_sdk_reads_writes_and_sees_its_write() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Python SDK", "30d", "read-write").await;
    let step = demo_step_id(&key).await;
    let title = "Users abandon setup at the API key step";
    let report = python_client(
        &server.mcp_url(),
        &key.token,
        json!([
            {"op": "list_tools"},
            {"op": "call", "tool": "get_workspace", "args": {}},
            {"op": "call", "tool": "create_item", "args": {"step_id": step, "kind": "insight", "title": title}},
            {"op": "call", "tool": "search", "args": {"query": "abandon setup"}},
        ]),
    )
    .await;
    assert!(report.get("error").is_none(), "{report}");
    // The SDK's auto mode asked `server/discover` and stayed in the stateless revision.
    assert_eq!(report["protocol_version"], "2026-07-28");
    assert_eq!(report["server_name"], "custory-mcp");
    let results = report["results"].as_array().expect("results");
    let mut tools: Vec<&str> = results[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t.as_str().expect("name"))
        .collect();
    tools.sort_unstable();
    let mut want = key.tool_names().await;
    want.sort_unstable();
    assert_eq!(tools, want, "the SDK lists what tools/list serves");
    assert_eq!(results[1]["is_error"], false);
    assert_eq!(results[1]["structured"]["slug"], "acme");
    assert_eq!(results[2]["is_error"], false, "{}", results[2]);
    let created = results[2]["structured"]["id"].as_str().expect("created item id").to_owned();
    assert_eq!(results[3]["is_error"], false);
    let hits = results[3]["structured"]["hits"].as_array().expect("hits");
    assert!(
        hits.iter().any(|h| h["id"] == created.as_str()),
        "the write shows in a later read: {hits:?}"
    );

    // The write left an audit event naming the key.
    let audit = owner.audit("acme", "").await;
    // (Beside it, the key's first use from this address and client: `key.new_origin`.)
    let events = audit["events"].as_array().expect("events");
    let writes: Vec<&Value> = events.iter().filter(|e| e["kind"] == "tool.called").collect();
    assert_eq!(writes.len(), 1, "one write, one event: {events:?}");
    assert!(
        writes[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("create_item") && d.contains(&created))
    );
    assert!(events.iter().any(|e| e["kind"] == "key.new_origin"), "{events:?}");
    server.stop().await;
}

#[tokio::test]
async fn python_sdk_builds_a_journey_in_an_empty_workspace_and_reads_it_back() {
    let server = TestServer::start().await;
    let owner = server.owner();
    owner.create_workspace(json!({"name": "Build"})).await;
    let key =
        owner.create_key_in("build", json!({"name": "Python builder", "expires": "30d"})).await;
    let report = python_client(
        &server.mcp_url(),
        &key.token,
        json!([
            {"op": "call", "tool": "create_journey", "args": {"name": "Onboarding"}},
            {"op": "call", "tool": "create_stage", "args": {"journey": "onboarding", "name": "Sign up"}},
            {"op": "call", "tool": "create_step", "args": {"stage_id": "$1.id", "name": "Creates an account"}},
            {"op": "call", "tool": "create_step", "args": {"stage_id": "$1.id", "name": "Verifies email", "position": 0}},
            {"op": "call", "tool": "create_item", "args": {"step_id": "$2.id", "kind": "touchpoint", "title": "Sign-up form"}},
            {"op": "call", "tool": "create_item", "args": {"step_id": "$2.id", "kind": "insight", "title": "Half abandon at the password rules"}},
            {"op": "call", "tool": "link_items", "args": {"from_item_id": "$4.id", "to_item_id": "$5.id"}},
            {"op": "call", "tool": "create_persona", "args": {"name": "Riya Sen", "role": "Founder", "goals": ["Launch in a week"]}},
            {"op": "call", "tool": "get_journey", "args": {"journey": "onboarding"}},
            {"op": "call", "tool": "search", "args": {"query": "password rules"}},
            {"op": "call", "tool": "list_personas", "args": {}},
            // 11: the rest of the model: personas on the journey, reordering, properties,
            // archiving, unlinking.
            {"op": "call", "tool": "link_persona", "args": {"journey": "onboarding", "persona_id": "$7.id"}},
            {"op": "call", "tool": "create_stage", "args": {"journey": "onboarding", "name": "Discover"}},
            {"op": "call", "tool": "update_stage", "args": {"stage_id": "$12.id", "position": 0, "description": "Before sign-up"}},
            {"op": "call", "tool": "update_item", "args": {"item_id": "$5.id", "priority": "P1", "impact": "high", "effort": "low"}},
            {"op": "call", "tool": "list_items", "args": {"priority": "P1", "impact": "high"}},
            {"op": "call", "tool": "unlink_items", "args": {"from_item_id": "$4.id", "to_item_id": "$5.id"}},
            {"op": "call", "tool": "archive", "args": {"id": "$5.id"}},
            {"op": "call", "tool": "search", "args": {"query": "password rules"}},
            {"op": "call", "tool": "search", "args": {"query": "password rules", "include_archived": true}},
            {"op": "call", "tool": "get_journey", "args": {"journey": "onboarding"}},
            {"op": "call", "tool": "restore", "args": {"id": "$5.id"}},
        ]),
    )
    .await;
    assert!(report.get("error").is_none(), "{report}");
    let results = report["results"].as_array().expect("results");
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result["is_error"], false, "step {n}: {result}");
    }
    let listed = results[15]["structured"]["items"].as_array().expect("items");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["priority"], "P1");
    assert_eq!(results[17]["structured"]["items"], 1, "one item left the reads");
    assert!(
        results[18]["structured"]["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .all(|h| h["type"] != "item")
    );
    assert_eq!(results[19]["structured"]["hits"][0]["type"], "item");
    let after = &results[20]["structured"];
    assert_eq!(after["personas"][0]["name"], "Riya Sen");
    let stages: Vec<&str> = after["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(stages, ["Discover", "Sign up"]);
    assert_eq!(after["stages"][1]["steps"][1]["items"].as_array().expect("items").len(), 1);
    assert_eq!(results[21]["structured"]["archived"], false);
    let map = &results[8]["structured"];
    let stage = &map["stages"][0];
    assert_eq!(stage["name"], "Sign up");
    let steps: Vec<&str> = stage["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(steps, ["Verifies email", "Creates an account"], "position 0 went first");
    let items = stage["steps"][1]["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{map}");
    let insight = results[5]["structured"]["id"].as_str().expect("insight id");
    let hits = results[9]["structured"]["hits"].as_array().expect("hits");
    assert_eq!(hits.first().and_then(|h| h["id"].as_str()), Some(insight), "{hits:?}");
    assert_eq!(results[10]["structured"]["personas"][0]["name"], "Riya Sen");
    server.stop().await;
}

#[tokio::test]
async fn python_sdk_with_a_read_only_key_sees_only_read_tools_and_a_revoked_key_fails() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Read only", "30d", "read-only").await;
    let step = demo_step_id(&key).await;
    let report = python_client(
        &server.mcp_url(),
        &key.token,
        json!([
            {"op": "list_tools"},
            {"op": "call", "tool": "create_item", "args": {"step_id": step, "kind": "insight", "title": "x"}},
        ]),
    )
    .await;
    let results = report["results"].as_array().unwrap_or_else(|| panic!("{report}"));
    let mut tools: Vec<&str> = results[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t.as_str().expect("name"))
        .collect();
    tools.sort_unstable();
    let mut want = key.tool_names().await;
    want.sort_unstable();
    assert_eq!(tools, want, "the SDK lists what tools/list serves a read-only key");
    let writer = owner.create_key("Writer", "30d", "read-write").await;
    assert!(want.len() < writer.tool_names().await.len(), "fewer than a read-write key sees");
    assert_eq!(results[1]["is_error"], true);
    assert!(
        results[1]["text"][0].as_str().is_some_and(|t| t.contains("read-only")),
        "{}",
        results[1]
    );

    owner.revoke(key.id()).await;
    // Each SDK shows why and what to run: 2.x from the JSON-RPC error in the body; 1.x, like
    // langchain and smolagents on it, only the status line (httpx's `Client error '401 …'`),
    // which carries the same sentence.
    let sentence = "this MCP key was revoked: create a new one (custory-mcp keys create)";
    for (sdk, shown) in [
        (PySdk::Auto, sentence.to_owned()),
        (PySdk::V1, format!("'401 Unauthorized - {sentence}'")),
    ] {
        let steps = json!([{"op": "list_tools"}]);
        let report = python_client_of(sdk, &server.mcp_url(), &key.token, steps).await;
        let error = report["error"].as_str().unwrap_or_else(|| panic!("must fail: {report}"));
        assert!(error.contains(&shown), "{error}");
    }
    server.stop().await;
}

/// Connects rmcp's client the way it connects by choice: `server/discover` first (the
/// 2026-07-28 revision), `initialize` if the server is of the handshake era.
async fn rmcp_connect_auto(url: &str, token: &str) -> RmcpClient {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    };
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("rmcp-conformance", "3"))
        .serve_with_lifecycle(StreamableHttpClientTransport::from_config(config), lifecycle)
        .await
        .expect("connect")
}

#[tokio::test]
async fn rmcp_client_of_both_eras_reads_resources_prompts_and_completions() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("rmcp", "30d", "read-write").await;
    let served = key.tools().await.len();
    let modern = rmcp_connect_auto(&server.mcp_url(), &key.token).await;
    let legacy = rmcp_connect(&server.mcp_url(), &key.token).await.expect("connect");
    let mut seen = Vec::new();
    for (client, version) in
        [(&modern, ProtocolVersion::V_2026_07_28), (&legacy, ProtocolVersion::V_2025_11_25)]
    {
        let info = client.peer_info().expect("server info");
        assert_eq!(info.protocol_version, version);
        eprintln!("conformance: rmcp negotiated {version}");
        let capabilities = &info.capabilities;
        assert!(capabilities.tools.is_some() && capabilities.resources.is_some());
        assert!(capabilities.prompts.is_some() && capabilities.completions.is_some());

        let tools = client.list_all_tools().await.expect("tools");
        assert_eq!(tools.len(), served);
        let journeys = rmcp_call(client, "list_journeys", json!({})).await;
        assert_eq!(journeys.is_error, Some(false), "{journeys:?}");

        let resources = client.list_all_resources().await.expect("resources");
        let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
        assert_eq!(
            uris,
            ["custory://journeys/trial-to-paid", "custory://journeys/support-escalation"]
        );
        let read = client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uris[1]))
            .await
            .expect("read");
        let text = match &read.contents[0] {
            rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
            other => panic!("a text resource: {other:?}"),
        };
        assert!(text.starts_with("# Support escalation"), "{text}");
        let templates = client.list_all_resource_templates().await.expect("templates");
        assert_eq!(templates.len(), 2);
        let prompts = client.list_all_prompts().await.expect("prompts");
        let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["review_stage", "notes_to_insights", "summarise_changes"]);
        let prompt = client
            .get_prompt(
                rmcp::model::GetPromptRequestParams::new("summarise_changes").with_arguments(
                    serde_json::Map::from_iter([
                        ("journey".to_owned(), json!("support-escalation")),
                        ("since".to_owned(), json!("30d")),
                    ]),
                ),
            )
            .await
            .expect("prompt");
        let prompt_text = serde_json::to_value(&prompt.messages).expect("json").to_string();
        assert!(prompt_text.contains("Changes in the journey Support escalation"), "{prompt_text}");
        let context = rmcp::model::CompletionContext::with_arguments(
            [("journey".to_owned(), "trial-to-paid".to_owned())].into(),
        );
        let stages = client
            .complete_prompt_argument("review_stage", "stage", "s", Some(context))
            .await
            .expect("complete");
        assert_eq!(stages.values, ["Sign up"]);
        seen.push((uris.join(" "), text, names.join(" "), stages.values.clone()));
    }
    assert_eq!(seen[0], seen[1], "both eras see the same");
    modern.cancel().await.expect("close");
    legacy.cancel().await.expect("close");
    server.stop().await;
}

#[tokio::test]
async fn rmcp_client_reads_writes_and_is_cut_off_by_a_revoke() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("rmcp", "90d", "read-write").await;
    let reader = owner.create_key("rmcp reader", "90d", "read-only").await;
    let read_tools = reader.tool_names().await;
    let client = rmcp_connect(&server.mcp_url(), &key.token).await.expect("connect");
    let info = client.peer_info().expect("initialized");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_11_25);
    assert!(info.instructions.as_deref().is_some_and(|i| i.contains("journeys")));

    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    let mut served = key.tool_names().await;
    names.sort_unstable();
    served.sort_unstable();
    assert_eq!(names, served, "rmcp lists what tools/list serves");
    for tool in &tools {
        assert!(tool.output_schema.is_some(), "{} has an outputSchema", tool.name);
        assert!(tool.annotations.is_some(), "{} has annotations", tool.name);
        let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint);
        // Read-only exactly when a read-only key is offered it.
        let offered = read_tools.iter().any(|name| *name == tool.name);
        assert_eq!(read_only, Some(offered), "{}", tool.name);
    }

    let journeys = rmcp_call(&client, "list_journeys", json!({})).await;
    assert_eq!(journeys.is_error, Some(false));
    let journey_id = journeys
        .structured_content
        .as_ref()
        .and_then(|s| s["journeys"][0]["id"].as_str())
        .expect("a journey")
        .to_owned();
    let map = rmcp_call(&client, "get_journey", json!({"journey": journey_id})).await;
    let step = map
        .structured_content
        .as_ref()
        .and_then(|s| s["stages"][0]["steps"][0]["id"].as_str())
        .expect("a step")
        .to_owned();

    let created = rmcp_call(
        &client,
        "create_item",
        json!({"step_id": step, "kind": "touchpoint", "title": "Welcome email"}),
    )
    .await;
    assert_eq!(created.is_error, Some(false), "{created:?}");
    let item =
        created.structured_content.as_ref().and_then(|s| s["id"].as_str()).expect("id").to_owned();
    let comment = rmcp_call(
        &client,
        "add_comment",
        json!({"item_id": item, "body": "Sent 5 minutes after sign-up."}),
    )
    .await;
    assert_eq!(comment.is_error, Some(false), "{comment:?}");
    let read = rmcp_call(&client, "get_item", json!({"item_id": item})).await;
    let read = read.structured_content.expect("structured");
    assert_eq!(read["title"], "Welcome email");
    assert_eq!(read["comments"][0]["body"], "Sent 5 minutes after sign-up.");

    // A business error is a tool result the agent can act on, not a protocol error.
    let missing = rmcp_call(&client, "get_item", json!({"item_id": "itm_doesnotexist"})).await;
    assert_eq!(missing.is_error, Some(true));

    owner.revoke(key.id()).await;
    let after = client.call_tool(CallToolRequestParams::new("list_journeys".to_owned())).await;
    assert!(after.is_err(), "the very next call after a revoke fails");

    let Err(refused) = rmcp_connect(&server.mcp_url(), &key.token).await else {
        panic!("a revoked key cannot connect");
    };
    assert!(refused.is_authorization_required(), "{refused}");
    server.stop().await;
}

/// MCP Inspector's CLI, with `--strict`, finds nothing unportable in any tool's schemas: no
/// error (it would exit 6) and no warning (a nullable `type` array, an untyped schema, a remote
/// `$ref`), which it reports as `schemaFindings` in its JSON output.
#[tokio::test]
async fn mcp_inspector_strict_finds_no_schema_portability_problem() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Inspector", "30d", "read-write").await;
    let (token, served) = (key.token.clone(), key.tools().await.len());
    let url = server.mcp_url();
    let home = tempfile::tempdir().expect("home");
    let home_dir = home.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let (node, launcher) = mcp_inspector();
        Command::new(node)
            .arg(launcher)
            .args(["--cli", "--server-url", &url, "--transport", "http", "--header"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(["--method", "tools/list", "--strict", "--format", "json"])
            .env("HOME", &home_dir)
            .env("NO_PROXY", "*")
            .output()
            .expect("run the Inspector")
    })
    .await
    .expect("inspector task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Inspector failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the Inspector printed no JSON ({e}):\n{stdout}\n{stderr}"));
    let tools = report["result"]["tools"].as_array().unwrap_or_else(|| panic!("{report}"));
    assert_eq!(tools.len(), served, "every tool was linted");
    assert!(
        report.get("schemaFindings").is_none(),
        "schema portability findings:\n{}\n{stderr}",
        serde_json::to_string_pretty(&report["schemaFindings"]).unwrap_or_default()
    );
    assert!(!stderr.contains("Warning:") && !stderr.contains("Error:"), "{stderr}");
    server.stop().await;
}

/// The model SDKs whose strict-mode code checks the tool schemas, pinned: openai-agents (its
/// MCP adapter's `ensure_strict_json_schema`), google-genai (Gemini's schema types) and
/// anthropic (strict tool use's `transform_schema`). About 90 s to install cold.
const MODEL_SDKS: &str = "openai-agents==0.24.0 google-genai==3.3.0 anthropic==2.10.0";

/// Every tool's input schema, for a read-write and a read-only key, as a real server's
/// `tools/list` serves it, passes the strict modes of OpenAI (openai-agents' own converter
/// takes it, so no tool is sent non-strict, and the result keeps to the documented keywords),
/// Gemini (google-genai's schema types take it, with no format Gemini lacks) and Anthropic (its
/// SDK's strict transform keeps all but numeric bounds): tests/it/python/strict_schemas.py.
#[tokio::test]
async fn every_tool_schema_passes_openai_gemini_and_anthropic_strict_modes() {
    let server = TestServer::start().await;
    let owner = server.owner();
    for access in ["read-write", "read-only"] {
        let key = owner.create_key(&format!("Strict {access}"), "30d", access).await;
        let tools = key.tools().await;
        assert!(tools.len() >= 7, "{access}: {} tools", tools.len());
        let input = serde_json::to_string(&tools).expect("tools");
        let output = tokio::task::spawn_blocking(move || {
            let python = python_with(MODEL_SDKS);
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/python/strict_schemas.py");
            let mut child = Command::new(python)
                .arg(script)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run strict_schemas.py");
            std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input.as_bytes())
                .expect("write the tools");
            child.wait_with_output().expect("strict_schemas.py")
        })
        .await
        .expect("checker task");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "strict_schemas.py failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_str(stdout.trim()).expect("the checker's JSON");
        assert_eq!(report["tools"], tools.len(), "every tool was checked");
        assert_eq!(report["problems"], json!([]), "{access}: {report:#}");
    }
    server.stop().await;
}

/// The official MCP conformance suite (server mode), pinned, and the Node it needs (≥ 22: it
/// uses `fs.globSync`).
const CONFORMANCE: &str = "@modelcontextprotocol/conformance@0.1.16";

/// A loopback proxy in front of `upstream` that adds `Authorization: Bearer token` to every
/// request and passes everything else on as it came, Host and Origin included (the suite has
/// no option for a header, and its DNS-rebinding checks are about those two). Returns its URL.
async fn authorizing_proxy(upstream: &str, token: &str) -> String {
    use axum::body::{Body, to_bytes};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (upstream, bearer) = (upstream.to_owned(), format!("Bearer {token}"));
    let forward = move |request: axum::extract::Request| {
        let (http, upstream, bearer) = (http.clone(), upstream.clone(), bearer.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = to_bytes(body, 16 << 20).await.expect("request body");
            let target = format!("{upstream}{}", parts.uri);
            let mut headers = parts.headers.clone();
            headers.remove(axum::http::header::CONTENT_LENGTH);
            headers.remove(axum::http::header::CONNECTION);
            headers.insert(axum::http::header::AUTHORIZATION, bearer.parse().expect("header"));
            let answer = http
                .request(parts.method, target)
                .headers(headers)
                .body(body)
                .send()
                .await
                .expect("the server answers the proxy");
            let mut response = axum::http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
                    response = response.header(name, value);
                }
            }
            let bytes = answer.bytes().await.expect("answer body");
            response.body(Body::from(bytes)).expect("response")
        }
    };
    let app = axum::Router::new().fallback(forward);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("proxy") });
    url
}

/// Runs the suite's server `scenario` against `url` (the MCP endpoint); returns its checks.
fn conformance_scenario(url: &str, scenario: &str) -> Vec<Value> {
    let dir = npm_packages(&[CONFORMANCE, INSPECTOR_NODE], "the conformance suite test");
    let suite = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(dir.join("node_modules/.bin/node"))
        .arg(&suite)
        .args(["server", "--url", url, "--scenario", scenario, "--output-dir"])
        .arg(out.path())
        .env("NO_PROXY", "*")
        .output()
        .unwrap_or_else(|e| panic!("node: could not start ({e}); the conformance suite needs it"));
    let found: Vec<PathBuf> =
        walk(out.path()).into_iter().filter(|p| p.ends_with("checks.json")).collect();
    let [checks] = found.as_slice() else {
        panic!(
            "{scenario}: the suite wrote no single checks.json ({found:?}):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let text = std::fs::read_to_string(checks).expect("read checks");
    serde_json::from_str::<Vec<Value>>(&text).expect("checks json")
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The suite's server scenarios that apply to this server, run against it: every check must
/// pass.
const APPLICABLE: [&str; 6] = [
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
];

/// The scenarios that do not apply, and why. Most call the suite's own fixture tools,
/// resources and prompts (`test_simple_text`, `test://static-text`, `test_simple_prompt`…),
/// which only its reference server has; the rest test capabilities this stateless JSON
/// server does not declare (as the specification allows).
const NOT_APPLICABLE: [(&str, &str); 26] = [
    ("logging-set-level", "no `logging` capability: the server sends no log notifications"),
    ("completion-complete", "completes the fixture prompt test_prompt_with_arguments"),
    ("tools-call-simple-text", "calls the fixture tool test_simple_text"),
    ("tools-call-image", "calls the fixture tool test_image_content"),
    ("tools-call-audio", "calls the fixture tool test_audio_content"),
    ("tools-call-embedded-resource", "calls the fixture tool test_embedded_resource"),
    ("tools-call-mixed-content", "calls the fixture tool test_multiple_content_types"),
    ("tools-call-with-logging", "calls the fixture tool test_tool_with_logging"),
    ("tools-call-error", "calls the fixture tool test_error_handling"),
    ("tools-call-with-progress", "calls the fixture tool test_tool_with_progress"),
    ("tools-call-sampling", "calls the fixture tool test_sampling"),
    ("tools-call-elicitation", "calls the fixture tool test_elicitation"),
    ("json-schema-2020-12", "lists the fixture tool json_schema_2020_12_tool"),
    ("elicitation-sep1034-defaults", "calls the fixture tool test_elicitation_sep1034_defaults"),
    ("elicitation-sep1330-enums", "calls the fixture tool test_elicitation_sep1330_enums"),
    ("server-sse-polling", "needs sessions and SSE streams; the server is stateless JSON"),
    ("server-sse-multiple-streams", "needs sessions and SSE streams; the server is stateless JSON"),
    ("resources-read-text", "reads the fixture resource test://static-text"),
    ("resources-read-binary", "reads the fixture resource test://static-binary"),
    ("resources-templates-read", "reads the fixture template test://template/{id}/data"),
    ("resources-subscribe", "no `subscribe` capability: a stateless server has no one to notify"),
    ("resources-unsubscribe", "no `subscribe` capability: a stateless server has no one to notify"),
    ("prompts-get-simple", "gets the fixture prompt test_simple_prompt"),
    ("prompts-get-with-args", "gets the fixture prompt test_prompt_with_arguments"),
    ("prompts-get-embedded-resource", "gets the fixture prompt test_prompt_with_embedded_resource"),
    ("prompts-get-with-image", "gets the fixture prompt test_prompt_with_image"),
];

/// The suite's server scenarios, as `conformance list --server` names them.
fn conformance_scenarios() -> Vec<String> {
    let dir = npm_packages(&[CONFORMANCE, INSPECTOR_NODE], "the conformance suite test");
    let suite = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let output = Command::new(dir.join("node_modules/.bin/node"))
        .arg(&suite)
        .args(["list", "--server"])
        .output()
        .unwrap_or_else(|e| panic!("node: could not start ({e}); the conformance suite needs it"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_official_conformance_suites_applicable_server_scenarios_pass() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Conformance suite", "30d", "read-write").await;
    let url = format!("{}/api/mcp", authorizing_proxy(&server.url, &key.token).await);
    let listed = tokio::task::spawn_blocking(conformance_scenarios).await.expect("task");
    // Every scenario of this version is either run or set aside with its reason.
    let mut known: Vec<&str> = APPLICABLE.to_vec();
    known.extend(NOT_APPLICABLE.iter().map(|(name, _)| *name));
    let mut listed_sorted: Vec<&str> = listed.iter().map(String::as_str).collect();
    listed_sorted.sort_unstable();
    known.sort_unstable();
    assert_eq!(listed_sorted, known, "the suite's server scenarios changed: sort the new ones");
    for scenario in APPLICABLE {
        let url = url.clone();
        let checks = tokio::task::spawn_blocking(move || conformance_scenario(&url, scenario))
            .await
            .expect("conformance task");
        let verdicts: Vec<&Value> = checks.iter().filter(|c| c["status"] != "INFO").collect();
        assert!(!verdicts.is_empty(), "{scenario}: no check ran: {checks:?}");
        for check in verdicts {
            assert_eq!(check["status"], "SUCCESS", "{scenario}: {check:#}");
        }
        eprintln!("conformance: {scenario} passed");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_python_sdk_sees_exactly_the_tools_a_key_is_limited_to() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let body = json!({"name": "Limited", "expires": "30d", "tools": ["get_item", "personas"]});
    let key = owner.create_key_in("acme", body).await;
    let steps = json!([
        {"op": "list_tools"},
        {"op": "call", "tool": "list_personas", "args": {}},
    ]);
    let expected = [
        "get_item",
        "list_personas",
        "create_persona",
        "update_persona",
        "link_persona",
        "unlink_persona",
    ];
    for sdk in [PySdk::Auto, PySdk::V1] {
        let report = python_client_of(sdk, &server.mcp_url(), &key.token, steps.clone()).await;
        assert!(report.get("error").is_none(), "{sdk:?}: {report}");
        assert_eq!(report["results"][0]["tools"], json!(expected), "{sdk:?}: {report}");
        assert_eq!(report["results"][1]["is_error"], false, "{sdk:?}: {report}");
    }
    // A tool outside the list fails in the SDK as an unknown tool does.
    let steps = json!([{"op": "call", "tool": "search", "args": {"query": "trial"}}]);
    let report = python_client_of(PySdk::Auto, &server.mcp_url(), &key.token, steps).await;
    assert!(report.to_string().contains("unknown tool: search"), "{report}");
}

#[tokio::test]
async fn the_typescript_sdks_see_exactly_the_tools_and_journeys_a_key_is_limited_to() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let body = json!({
        "name": "Limited", "expires": "30d",
        "tools": ["list_journeys", "search", "get_item"], "journeys": ["trial-to-paid"],
    });
    let key = owner.create_key_in("acme", body).await;
    for (sdk, mode) in [("client", "auto"), ("client", "legacy"), ("sdk", "")] {
        let report = typescript_client(sdk, mode, &server.mcp_url(), &key.token).await;
        assert!(report.get("error").is_none(), "{sdk} {mode}: {report}");
        assert_eq!(report["tools"], json!(["list_journeys", "get_item", "search"]), "{sdk} {mode}");
        let listed = &report["call"]["structured"]["journeys"];
        let slugs: Vec<&str> = listed
            .as_array()
            .expect("journeys")
            .iter()
            .filter_map(|j| j["slug"].as_str())
            .collect();
        assert_eq!(slugs, ["trial-to-paid"], "{sdk} {mode}: {report}");
        assert_eq!(report["resources"]["uris"], json!(["custory://journeys/trial-to-paid"]));
        // Completion offers nothing outside the key's journeys.
        assert_eq!(report["completions"][1], json!([]), "{sdk} {mode}: {report}");
    }
    server.stop().await;
}
