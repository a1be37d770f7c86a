//! Security: malformed input of every kind, workspace isolation, secrets nowhere.
//!
//! Four parts, all against the real server over real HTTP (in-process, or the real binary):
//!
//! 1. Fuzzing. proptest strategies are driven by a `TestRunner` inside the async tests (no
//!    nested runtime), with proptest's own shrinking on failure; every case is one POST to
//!    `/api/mcp`. `CUSTORY_FUZZ_SEED=N` replays a run; each test prints its case count.
//! 2. A corpus of malformed HTTP (raw TCP where a client library would refuse to send it) and
//!    malformed JSON-RPC, plus hostile names and text through the admin API, the CLI and the
//!    MCP tools.
//! 3. Isolation: a key of one workspace tries every tool and every id-taking parameter on the
//!    other workspace's objects; admin routes refuse MCP keys and the MCP endpoint refuses the
//!    owner credential.
//! 4. Secrets: a full lifecycle through the real CLI and MCP with the server logging at its
//!    most verbose; no token appears anywhere it was not asked for.
#![allow(clippy::print_stderr, reason = "the fuzz tests report how many cases they ran")]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custory_mcp::server::{Rate, ServerConfig};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::common::{Run, TestDatabase, TestEnv, TestServer, http, initialize_body, mcp_post};

// =============================================================================================
// Shared helpers.

const ACCEPT: &str = "application/json, text/event-stream";
const VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
const TOOLS: [&str; 11] = [
    "get_workspace",
    "list_journeys",
    "get_journey",
    "list_items",
    "get_item",
    "search",
    "list_personas",
    "create_item",
    "update_item",
    "link_items",
    "add_comment",
];
/// JSON-RPC error codes a well-formed answer may carry (-32603, internal error, is not one).
const CLIENT_ERROR_CODES: [i64; 4] = [-32700, -32600, -32601, -32602];
/// HTTP statuses a well-formed answer to an authenticated POST may have.
const CLEAN_STATUSES: [u16; 6] = [200, 202, 400, 406, 413, 415];

/// A server whose auth limiter and per-key rates never trip (some tests fail authentication on
/// purpose; the fuzzers send thousands of messages a second from one key).
async fn lenient_server() -> TestServer {
    let unlimited = Rate { per_second: 1_000_000, burst: 1_000_000 };
    TestServer::start_with(ServerConfig {
        auth_failures_per_window: 1_000_000,
        key_requests: unlimited,
        key_writes: unlimited,
        ..ServerConfig::default()
    })
    .await
}

/// One response, read completely.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    www_authenticate: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Self {
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let (content_type, www_authenticate) = (header("content-type"), header("www-authenticate"));
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("read the body").to_vec();
        Self { status, content_type, www_authenticate, body }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// POSTs raw bytes to the MCP endpoint as a conforming client would; a dropped connection is
/// an `Err` (for the fuzz tests to shrink and report).
async fn try_post_bytes(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
    version: Option<&str>,
) -> Result<Answer, String> {
    let mut request = client
        .post(url)
        .bearer_auth(token)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .body(body);
    if let Some(version) = version {
        request = request.header("mcp-protocol-version", version);
    }
    let response = request.send().await.map_err(|e| format!("no answer: {e:?}"))?;
    Ok(Answer::read(response).await)
}

async fn post_bytes(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
    version: Option<&str>,
) -> Answer {
    try_post_bytes(client, url, token, body, version).await.expect("the server answers")
}

async fn post_json(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Answer {
    post_bytes(client, url, token, serde_json::to_vec(body).expect("json"), None).await
}

fn rpc(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn tool_call(id: i64, name: &str, arguments: Value) -> Value {
    rpc(json!(id), "tools/call", json!({"name": name, "arguments": arguments}))
}

/// Checks one JSON-RPC response object: `jsonrpc: "2.0"`, an id, and exactly one of a result
/// or an error with a client-error code and a message.
fn check_reply(reply: &Value) -> Result<(), String> {
    let Value::Object(reply) = reply else { return Err(format!("not an object: {reply}")) };
    if reply.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(format!("jsonrpc is not \"2.0\": {reply:?}"));
    }
    match reply.get("id") {
        Some(Value::Null | Value::String(_) | Value::Number(_)) => {}
        other => return Err(format!("bad or missing id {other:?}")),
    }
    match (reply.get("result"), reply.get("error")) {
        (Some(_), None) => Ok(()),
        (None, Some(error)) => {
            let code = error["code"].as_i64().ok_or_else(|| format!("no error code: {error}"))?;
            if !CLIENT_ERROR_CODES.contains(&code) {
                return Err(format!("error code {code} (never -32603 or other): {error}"));
            }
            if error["message"].as_str().is_none_or(str::is_empty) {
                return Err(format!("error without a message: {error}"));
            }
            Ok(())
        }
        _ => Err(format!("not exactly one of result and error: {reply:?}")),
    }
}

/// Whether `message` is a request that must get its own answer with its own id.
fn is_proper_request(message: &Value) -> bool {
    message["jsonrpc"] == "2.0"
        && matches!(message.get("id"), Some(Value::String(_) | Value::Number(_)))
        && message["method"].is_string()
}

/// The shape every answer with a body must have, whatever its status: `application/json`,
/// and a JSON-RPC object (or, for a batch, a non-empty array of them).
fn check_body(answer: &Answer) -> Result<Value, String> {
    if answer.content_type.as_deref() != Some("application/json") {
        return Err(format!("content-type {:?} on status {}", answer.content_type, answer.status));
    }
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("the body is not JSON ({e}): {}", answer.text()))?;
    match &body {
        Value::Array(replies) => {
            if answer.status != 200 || replies.is_empty() {
                return Err(format!("a batch answer with status {}: {body}", answer.status));
            }
            replies.iter().try_for_each(check_reply)?;
        }
        reply => check_reply(reply)?,
    }
    Ok(body)
}

/// Whether a reply's id is the request's. Integers and strings must match exactly; a
/// fractional or huge number may come back a few ULPs off (serde_json parses floats without
/// `float_roundtrip`: see `number_ids_are_echoed_exactly`).
fn same_id(sent: Option<&Value>, got: Option<&Value>) -> bool {
    match (sent, got) {
        (Some(Value::Number(a)), Some(Value::Number(b))) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            a == b || ((a - b) / a).abs() < 1e-14
        }
        (sent, got) => sent == got,
    }
}

/// The transport rules every answer must follow, whatever was sent: a clean status, JSON with
/// the right content type when there is a body, and JSON-RPC objects in it.
fn check_answer(
    answer: &Answer,
    sent: Option<&Value>,
    version: Option<&str>,
) -> Result<(), String> {
    if !CLEAN_STATUSES.contains(&answer.status) {
        return Err(format!("status {}: {}", answer.status, answer.text()));
    }
    if answer.status == 202 {
        return if answer.body.is_empty() {
            Ok(())
        } else {
            Err(format!("202 with a body: {}", answer.text()))
        };
    }
    let body = check_body(answer)?;
    let Some(sent) = sent.filter(|_| answer.status != 413) else { return Ok(()) };
    if sent.is_object()
        && is_proper_request(sent)
        && (answer.status != 200 || !same_id(sent.get("id"), body.get("id")))
    {
        return Err(format!("a proper request got {}: {body}", answer.status));
    }
    if let Value::Array(batch) = sent {
        if version.is_some_and(|v| v != "2025-03-26") && answer.status != 400 {
            return Err(format!("a batch under {version:?} got {}", answer.status));
        }
        // Every proper request of a batch gets its own reply.
        let replies = body.as_array().map(Vec::as_slice).unwrap_or_default();
        for request in batch.iter().filter(|m| is_proper_request(m)) {
            if answer.status == 200
                && !replies.iter().any(|r| same_id(request.get("id"), r.get("id")))
            {
                return Err(format!("no reply to {request} in {body}"));
            }
        }
    }
    Ok(())
}

/// What a `tools/call` result must look like: an error with a sentence, or structured content
/// that the text content repeats.
fn check_tool_result(result: &Value) -> Result<bool, String> {
    let text = result["content"][0]["text"]
        .as_str()
        .filter(|_| result["content"][0]["type"] == "text")
        .ok_or_else(|| format!("no text content: {result}"))?;
    match result["isError"].as_bool() {
        Some(true) => {
            if text.trim().is_empty() || result.get("structuredContent").is_some() {
                return Err(format!("an error result without a sentence: {result}"));
            }
            if text.to_ascii_lowercase().contains("internal error") {
                return Err(format!("an internal error (the tool's -32603): {result}"));
            }
            Ok(true)
        }
        Some(false) => {
            let structured = result
                .get("structuredContent")
                .filter(|s| s.is_object())
                .ok_or_else(|| format!("a success without structuredContent: {result}"))?;
            let repeated: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if &repeated != structured {
                return Err(format!("text content differs from structuredContent: {result}"));
            }
            Ok(false)
        }
        None => Err(format!("isError is not a boolean: {result}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The fuzz driver: proptest strategies and shrinking, one awaited check per case.

fn fuzz_seed() -> u64 {
    std::env::var("CUSTORY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_secs() ^ u64::from(d.subsec_nanos()).rotate_left(32))
    })
}

/// Runs `cases` cases of `strategy` through `check`; on a failure, shrinks it (at most 300
/// steps) and panics with the minimal input and the seed that reproduces the run.
async fn fuzz<S, F, Fut>(name: &str, cases: u32, strategy: S, mut check: F) -> u32
where
    S: Strategy,
    S::Value: Clone + Debug,
    F: FnMut(S::Value) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let seed = fuzz_seed();
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig { failure_persistence: None, ..RunnerConfig::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    for case in 0..cases {
        let mut tree = strategy.new_tree(&mut runner).expect("the strategy generates");
        let Err(first) = check(tree.current()).await else { continue };
        let (mut minimal, mut reason) = (tree.current(), first);
        if tree.simplify() {
            for _ in 0..300 {
                let candidate = tree.current();
                match check(candidate.clone()).await {
                    Err(why) => {
                        (minimal, reason) = (candidate, why);
                        if !tree.simplify() {
                            break;
                        }
                    }
                    Ok(()) if !tree.complicate() => break,
                    Ok(()) => {}
                }
            }
        }
        panic!(
            "{name}: case {case} of {cases} failed (CUSTORY_FUZZ_SEED={seed} replays the run): \
             {reason}\nminimal input: {minimal:?}"
        );
    }
    eprintln!("security fuzz: {name}: {cases} cases passed (seed {seed})");
    cases
}

// ---------------------------------------------------------------------------------------------
// Strategies.

const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "notifications/initialized",
    "notifications/cancelled",
    "server/discover",
    "resources/list",
    "prompts/get",
    "",
];

const INTERESTING: &[&str] = &[
    "2.0",
    "1.0",
    "2025-03-26",
    "2025-11-25",
    "2026-07-28",
    "itm_",
    "stp_",
    "jrn_",
    "trial-to-paid",
    "touchpoint",
    "metric",
    "open",
    "archived",
    "'; DROP TABLE items;--",
    "\" OR \"\"=\"",
    "%",
    "_",
    "\\",
    "%%_\\%",
    "\u{202e}evil",
    "\u{0}",
    "\u{1b}[31m",
    "🦀",
    "\u{feff}",
    "   ",
    "",
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "[a-z_/-]{0,16}",
        3 => prop::sample::select(INTERESTING).prop_map(str::to_owned),
        1 => "[\\x00-\\x1f\"\\\\%_'; ]{0,12}",
        1 => prop_oneof![9 => 150usize..3_000, 1 => 3_000usize..12_000].prop_map(|n| "y".repeat(n)),
    ]
    .boxed()
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-3i64..300).prop_map(Value::from),
        text().prop_map(Value::from),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// `params` as a client might send them, often right, often not.
fn params() -> BoxedStrategy<Value> {
    let key = prop_oneof![
        4 => prop::sample::select(&[
            "protocolVersion", "capabilities", "clientInfo", "name", "arguments", "cursor",
            "requestId", "_meta",
        ][..]).prop_map(str::to_owned),
        1 => text(),
    ];
    let value = prop_oneof![
        2 => prop::sample::select(&TOOLS[..]).prop_map(Value::from),
        2 => prop::sample::select(&VERSIONS[..]).prop_map(Value::from),
        1 => Just(json!({"name": "fuzz", "version": "0"})),
        4 => json_value(),
    ];
    prop::collection::btree_map(key, value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// A JSON-RPC message, mostly well-framed, with every member sometimes wrong or missing.
fn message() -> BoxedStrategy<Value> {
    let jsonrpc = prop_oneof![
        8 => Just(Some(json!("2.0"))),
        1 => Just(None),
        1 => json_leaf().prop_map(Some),
    ];
    let id = prop_oneof![
        3 => any::<i64>().prop_map(|n| Some(json!(n))),
        2 => text().prop_map(|s| Some(json!(s))),
        2 => Just(None),
        1 => any::<f64>().prop_map(|f| Some(Value::from(f))),
        1 => json_value().prop_map(Some),
    ];
    let method = prop_oneof![
        6 => prop::sample::select(METHODS).prop_map(|m| Some(json!(m))),
        2 => text().prop_map(|s| Some(json!(s))),
        1 => Just(None),
        1 => json_leaf().prop_map(Some),
    ];
    let params = prop_oneof![
        2 => Just(None),
        5 => params().prop_map(Some),
        1 => json_value().prop_map(Some),
    ];
    let extra = prop::collection::btree_map(text(), json_leaf(), 0..2);
    (jsonrpc, id, method, params, extra)
        .prop_map(|(jsonrpc, id, method, params, extra)| {
            let mut message: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in
                [("jsonrpc", jsonrpc), ("id", id), ("method", method), ("params", params)]
            {
                if let Some(value) = value {
                    message.insert(name.to_owned(), value);
                }
            }
            Value::Object(message)
        })
        .boxed()
}

// =============================================================================================
// 1. Fuzzing.

#[tokio::test]
async fn fuzzed_json_bodies_always_get_a_well_formed_answer() {
    let server = lenient_server().await;
    let (_, token) = server.create_key("Fuzzer", "never", "read-write").await;
    let client = http();
    let url = server.mcp_url();

    let body = prop_oneof![
        3 => json_value(),
        5 => message(),
        2 => prop::collection::vec(message(), 0..5).prop_map(Value::Array),
    ];
    let version = prop_oneof![
        3 => Just(None),
        2 => prop::sample::select(&VERSIONS[..]).prop_map(Some),
    ];
    let cases = fuzz(
        "arbitrary JSON values and JSON-RPC messages",
        3000,
        (body, version),
        |(body, version)| {
            let (client, url, token) = (&client, &url, &token);
            async move {
                let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
                let size = bytes.len();
                let answer = try_post_bytes(client, url, token, bytes, version).await?;
                if answer.status == 413 && size <= 1024 * 1024 {
                    return Err(format!("413 for {size} bytes"));
                }
                check_answer(&answer, Some(&body), version)
            }
        },
    )
    .await;
    assert_eq!(cases, 3000);
    server.stop().await;
}

#[tokio::test]
async fn fuzzed_byte_strings_always_get_a_well_formed_answer() {
    let server = lenient_server().await;
    let (_, token) = server.create_key("Fuzzer", "never", "read-write").await;
    let client = http();
    let url = server.mcp_url();

    // Raw bytes, and real messages with bytes flipped, cut, or spliced in.
    let valid = prop::sample::select(vec![
        serde_json::to_vec(&initialize_body()).expect("json"),
        serde_json::to_vec(&rpc(json!(1), "tools/list", json!({}))).expect("json"),
        serde_json::to_vec(&tool_call(2, "search", json!({"query": "trial"}))).expect("json"),
        serde_json::to_vec(&json!([rpc(json!(3), "ping", json!({}))])).expect("json"),
    ]);
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6);
    let mutated = (valid, edits).prop_map(|(mut bytes, edits)| {
        for (at, byte, how) in edits {
            match how {
                0 if !bytes.is_empty() => {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                1 => {
                    let at = at.index(bytes.len() + 1);
                    bytes.insert(at, byte);
                }
                _ if !bytes.is_empty() => bytes.truncate(at.index(bytes.len())),
                _ => {}
            }
        }
        bytes
    });
    let body = prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..512),
        3 => mutated,
    ];
    let cases = fuzz("arbitrary and mutated byte strings", 2000, body, |body| {
        let (client, url, token) = (&client, &url, &token);
        async move {
            let sent: Option<Value> = serde_json::from_slice(&body).ok();
            let answer = try_post_bytes(client, url, token, body, None).await?;
            check_answer(&answer, sent.as_ref(), None)
        }
    })
    .await;
    assert_eq!(cases, 2000);
    server.stop().await;
}

/// Ids, slugs and names of the demo workspace, by what they are, so fuzzed arguments often
/// reach past argument parsing into the store.
#[derive(Debug, Clone, Default)]
struct Vocabulary {
    journeys: Vec<Value>,
    stages: Vec<Value>,
    steps: Vec<Value>,
    items: Vec<Value>,
    owners: Vec<Value>,
}

async fn demo_vocabulary(client: &reqwest::Client, url: &str, token: &str) -> Vocabulary {
    let mut words = Vocabulary::default();
    let journeys = call_ok(client, url, token, "list_journeys", json!({})).await;
    for journey in journeys["journeys"].as_array().expect("journeys") {
        words.journeys.extend([journey["id"].clone(), journey["slug"].clone()]);
        let tree =
            call_ok(client, url, token, "get_journey", json!({"journey": journey["id"]})).await;
        for stage in tree["stages"].as_array().expect("stages") {
            words.stages.push(stage["id"].clone());
            for step in stage["steps"].as_array().expect("steps") {
                words.steps.push(step["id"].clone());
                for item in step["items"].as_array().expect("items") {
                    words.items.push(item["id"].clone());
                    if !item["owner"].is_null() {
                        words.owners.push(item["owner"].clone());
                    }
                }
            }
        }
    }
    words.owners.dedup();
    words
}

/// Calls a tool that must succeed and returns its structured content.
async fn call_ok(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    tool: &str,
    args: Value,
) -> Value {
    let answer = post_json(client, url, token, &tool_call(1, tool, args.clone())).await;
    let body = answer.json();
    assert_eq!(body["result"]["isError"], false, "{tool} {args}: {body}");
    body["result"]["structuredContent"].clone()
}

/// Calls a tool and returns its result (which may be an error result).
async fn call(client: &reqwest::Client, url: &str, token: &str, tool: &str, args: Value) -> Value {
    let answer = post_json(client, url, token, &tool_call(1, tool, args.clone())).await;
    assert_eq!(answer.status, 200, "{tool} {args}: {}", answer.text());
    let body = answer.json();
    assert!(body["result"].is_object(), "{tool} {args}: {body}");
    check_tool_result(&body["result"]).unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
    body["result"].clone()
}

fn error_text(result: &Value) -> &str {
    assert_eq!(result["isError"], true, "expected an error result: {result}");
    result["content"][0]["text"].as_str().expect("text")
}

/// The argument names each tool takes.
fn parameters(tool: &str) -> &'static [&'static str] {
    match tool {
        "get_journey" => &["journey"],
        "list_items" => &["journey", "stage_id", "step_id", "kind", "status", "owner", "limit"],
        "get_item" => &["item_id"],
        "search" => &["query", "limit"],
        "create_item" => &["step_id", "kind", "title", "description", "status", "owner", "fields"],
        "update_item" => &["item_id", "title", "description", "status", "owner", "fields"],
        "link_items" => &["from_item_id", "to_item_id"],
        "add_comment" => &["item_id", "body", "author"],
        _ => &[],
    }
}

const FIELD_NAMES: &[&str] = &[
    "channel",
    "actor",
    "type",
    "confidence",
    "severity",
    "impact",
    "effort",
    "priority",
    "solution_type",
    "target_date",
    "metric_type",
    "unit",
    "baseline",
    "current",
    "target",
    "direction",
    "bogus",
];

const KINDS: &[&str] = &["touchpoint", "insight", "opportunity", "solution", "metric"];
const STATUSES: &[&str] = &[
    "draft",
    "validated",
    "open",
    "in-progress",
    "done",
    "idea",
    "planned",
    "shipped",
    "tracking",
    "at-risk",
    "archived",
];

/// A value for parameter `name`: usually a plausible one, sometimes anything at all.
fn argument(name: &str, words: &Vocabulary) -> BoxedStrategy<Value> {
    let pick = |values: &[Value]| prop::sample::select(values.to_vec()).boxed();
    let plausible: BoxedStrategy<Value> = match name {
        "journey" => pick(&words.journeys),
        "stage_id" => pick(&words.stages),
        "step_id" => pick(&words.steps),
        "item_id" | "from_item_id" | "to_item_id" => pick(&words.items),
        "kind" => prop::sample::select(KINDS).prop_map(Value::from).boxed(),
        "status" => prop::sample::select(STATUSES).prop_map(Value::from).boxed(),
        "owner" | "author" => {
            prop_oneof![pick(&words.owners), text().prop_map(Value::from)].boxed()
        }
        "limit" => (0u32..300).prop_map(Value::from).boxed(),
        "query" => prop_oneof![
            prop::sample::select(&["trial", "dashboard", "SDK", "pricing", "%", "_"][..])
                .prop_map(Value::from),
            text().prop_map(Value::from),
        ]
        .boxed(),
        "fields" => prop::collection::btree_map(
            prop::sample::select(FIELD_NAMES).prop_map(str::to_owned),
            json_leaf(),
            0..4,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed(),
        "title" | "description" | "body" => prop_oneof![
            4 => "[A-Za-z0-9 ,.'%_-]{1,60}".prop_map(Value::from),
            1 => text().prop_map(Value::from),
        ]
        .boxed(),
        _ => text().prop_map(Value::from).boxed(),
    };
    prop_oneof![10 => plausible, 1 => json_value()].boxed()
}

/// The parameters a tool cannot do without.
const REQUIRED: &[(&str, &str)] = &[
    ("get_journey", "journey"),
    ("get_item", "item_id"),
    ("search", "query"),
    ("create_item", "step_id"),
    ("create_item", "kind"),
    ("create_item", "title"),
    ("update_item", "item_id"),
    ("link_items", "from_item_id"),
    ("link_items", "to_item_id"),
    ("add_comment", "item_id"),
    ("add_comment", "body"),
];

/// `arguments` for `tool`: each of its parameters present or not, sometimes an unknown one,
/// and now and then no object at all.
fn tool_arguments(tool: &'static str, words: &Vocabulary) -> BoxedStrategy<Option<Value>> {
    let present: Vec<BoxedStrategy<Option<(String, Value)>>> = parameters(tool)
        .iter()
        .map(|&name| {
            let required = REQUIRED.contains(&(tool, name));
            prop::option::weighted(if required { 0.95 } else { 0.4 }, argument(name, words))
                .prop_map(move |v| v.map(|v| (name.to_owned(), v)))
                .boxed()
        })
        .collect();
    let unknown = prop::option::weighted(0.08, (text(), json_leaf()));
    let object = (present, unknown).prop_map(|(present, unknown)| {
        let mut arguments: Map<String, Value> = present.into_iter().flatten().collect();
        if let Some((name, value)) = unknown {
            arguments.insert(name, value);
        }
        Some(Value::Object(arguments))
    });
    prop_oneof![
        14 => object,
        1 => Just(None),
        1 => json_value().prop_map(Some),
    ]
    .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_tool_arguments_never_cause_an_internal_error() {
    let server = lenient_server().await;
    let (_, token) = server.create_key("Fuzzer", "never", "read-write").await;
    let client = http();
    let url = server.mcp_url();
    let words = demo_vocabulary(&client, &url, &token).await;
    assert!(words.items.len() >= 20, "the demo workspace gives ids to fuzz with");

    const PER_TOOL: u32 = 200;
    let outcomes = Arc::new(Mutex::new(BTreeMap::<&str, (u32, u32)>::new()));
    let mut total = 0;
    for tool in TOOLS {
        let strategy = tool_arguments(tool, &words);
        total += fuzz(&format!("tools/call {tool}"), PER_TOOL, strategy, |arguments| {
            let (client, url, token, outcomes) = (&client, &url, &token, &outcomes);
            async move {
                let mut params = json!({"name": tool});
                if let Some(arguments) = &arguments {
                    params["arguments"] = arguments.clone();
                }
                let request = rpc(json!(7), "tools/call", params);
                let bytes = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
                let answer = try_post_bytes(client, url, token, bytes, None).await?;
                check_answer(&answer, Some(&request), None)?;
                let body = answer.json();
                if !matches!(arguments, None | Some(Value::Null | Value::Object(_))) {
                    return if body["error"]["code"] == -32602 {
                        Ok(())
                    } else {
                        Err(format!("non-object arguments were not -32602: {body}"))
                    };
                }
                let is_error = check_tool_result(&body["result"])?;
                let mut outcomes = outcomes.lock().expect("lock");
                let entry = outcomes.entry(tool).or_default();
                if is_error {
                    entry.1 += 1;
                } else {
                    entry.0 += 1;
                }
                Ok(())
            }
        })
        .await;
    }
    let outcomes = outcomes.lock().expect("lock").clone();
    eprintln!("security fuzz: tools/call outcomes (ok, isError) per tool: {outcomes:?}");
    assert_eq!(total, PER_TOOL * 11);
    // The fuzzing reached past argument parsing: every tool succeeded at least once.
    for tool in TOOLS {
        assert!(outcomes.get(tool).is_some_and(|(ok, _)| *ok > 0), "{tool} never succeeded");
    }
    server.store.integrity_check().expect("the database is intact");
    server.stop().await;
}

// =============================================================================================
// 2. The malformed corpus.

/// What came back on a raw TCP connection.
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug, in assertion messages")]
enum Raw {
    Answered {
        status: u16,
        head: String,
        body: Vec<u8>,
    },
    /// The connection ended or was reset before a complete response arrived.
    Dropped {
        received: usize,
        error: String,
    },
}

impl Raw {
    fn status(&self) -> Option<u16> {
        match self {
            Raw::Answered { status, .. } => Some(*status),
            Raw::Dropped { .. } => None,
        }
    }
}

/// Whether `data` holds a complete response: head, and a body of its Content-Length.
fn complete_response(data: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body = &data[end + 4..];
    (body.len() >= length).then(|| (status, head, body[..length].to_vec()))
}

/// Sends `request` on a fresh connection (writing and reading at once, since the server may
/// answer before it has read everything); `close_write` half-closes after the last byte.
async fn raw_exchange(addr: &str, request: Vec<u8>, close_write: bool) -> Raw {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        // Write errors are expected when the server answers early and closes.
        let _ = writer.write_all(&request).await;
        if close_write {
            let _ = writer.shutdown().await;
        }
        writer
    });
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some((status, head, body)) = complete_response(&received) {
                return Raw::Answered { status, head, body };
            }
            match reader.read(&mut buf).await {
                Ok(0) => {
                    return Raw::Dropped { received: received.len(), error: "EOF".into() };
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(error) => {
                    return Raw::Dropped { received: received.len(), error: error.to_string() };
                }
            }
        }
    })
    .await
    .unwrap_or(Raw::Dropped { received: usize::MAX, error: "no answer in 10 s".into() });
    // Keep the write half open until the answer is in (dropping it would close it).
    if let Ok(writer) = tokio::time::timeout(Duration::from_secs(5), write).await {
        drop(writer);
    }
    outcome
}

fn addr_of(server_url: &str) -> String {
    server_url.trim_start_matches("http://").to_owned()
}

/// A raw HTTP/1.1 POST to /api/mcp with the given extra header lines and body.
fn raw_post(addr: &str, token: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: {ACCEPT}\r\n{extra_headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

async fn assert_healthy(server: &TestServer, token: &str) {
    let health = http().get(format!("{}/healthz", server.url)).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let ping =
        post_json(&http(), &server.mcp_url(), token, &rpc(json!(1), "ping", json!({}))).await;
    assert_eq!(ping.status, 200, "{}", ping.text());
}

#[tokio::test]
async fn malformed_json_rpc_gets_well_formed_errors() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Corpus", "never", "read-write").await;
    let client = http();
    let url = server.mcp_url();
    let mut count = 0;
    let mut send = async |body: Vec<u8>, status: u16, code: Option<i64>| -> Value {
        count += 1;
        let answer = post_bytes(&client, &url, &token, body.clone(), None).await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        check_answer(&answer, None, None).unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert_eq!(answer.status, status, "{shown}: {}", answer.text());
        let reply = answer.json();
        if let Some(code) = code {
            assert_eq!(reply["error"]["code"], code, "{shown}: {reply}");
        }
        reply
    };

    // Every proper prefix of a real request is a parse error.
    let whole =
        serde_json::to_vec(&tool_call(1, "search", json!({"query": "trial"}))).expect("json");
    for cut in 0..whole.len() {
        send(whole[..cut].to_vec(), 400, Some(-32700)).await;
    }

    // Ids at the edges of what JSON numbers and strings can hold.
    let long_id = "i".repeat(10 * 1024);
    for (id_text, echoed) in [
        ("1e308", json!(1e308)),
        ("-1e308", json!(-1e308)),
        ("18446744073709551615", json!(u64::MAX)),
        ("-9223372036854775808", json!(i64::MIN)),
        ("18446744073709551616", json!(18_446_744_073_709_551_616.0_f64)),
        ("0.5", json!(0.5)),
        ("-0", json!(-0.0)),
        (&format!("\"{long_id}\"") as &str, json!(long_id)),
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id_text},"method":"ping"}}"#);
        let reply = send(body.into_bytes(), 200, None).await;
        assert_eq!(reply["id"], echoed, "id {}", &id_text[..id_text.len().min(30)]);
        assert_eq!(reply["result"], json!({}));
    }
    // Beyond f64: not representable, refused as a parse error rather than rounded to infinity.
    send(br#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#.to_vec(), 400, Some(-32700)).await;
    // A 2 MiB id is over the body limit.
    let huge = format!(r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#, "i".repeat(2 << 20));
    send(huge.into_bytes(), 413, Some(-32600)).await;

    // Deep nesting: 100,000 brackets or braces, alone and inside a real request.
    let n = 100_000;
    send(format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes(), 400, Some(-32700)).await;
    send("[".repeat(n).into_bytes(), 400, Some(-32700)).await;
    send(format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n)).into_bytes(), 400, Some(-32700))
        .await;
    let deep_arguments = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"query":{}"x"{}}}}}}}"#,
        "[".repeat(n),
        "]".repeat(n)
    );
    send(deep_arguments.into_bytes(), 400, Some(-32700)).await;
    // Nesting that parses (under serde_json's limit of 128) reaches the tool as bad arguments.
    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{"query":{}"x"{}}}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let reply = send(nested.into_bytes(), 200, None).await;
    assert!(error_text(&reply["result"]).contains("Invalid arguments for search"), "{reply}");

    // Wrong types everywhere.
    let wrong: Vec<(Value, u16, i64)> = vec![
        (json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": "x"}), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": 5}), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": true}), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1]}), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": 5})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": null})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": ["search"]})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": {"n": "search"}})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": "search", "arguments": ["q"]})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": "search", "arguments": "q"})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": "search", "arguments": 1})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": "search", "arguments": false})), 200, -32602),
        (rpc(json!(1), "tools/call", json!({"name": "search\u{0}"})), 200, -32602),
        (rpc(json!(1), "initialize", json!({"protocolVersion": 20251125})), 200, -32602),
        (rpc(json!(1), "tools/list", json!({"cursor": 5})), 200, -32602),
        (json!({"jsonrpc": "2.0", "id": 1, "method": 5}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": 1, "method": ["ping"]}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": 1, "method": null}), 400, -32600),
        (json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": 2, "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": 2.0, "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": null, "id": 1, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": true, "method": "ping"}), 400, -32600),
        (json!({"jsonrpc": "2.0", "id": [1], "method": "ping"}), 400, -32600),
        (json!(null), 400, -32600),
        (json!(true), 400, -32600),
        (json!(42), 400, -32600),
        (json!([1, "two", null]), 200, -32600),
        (json!([[]]), 200, -32600),
    ];
    for (message, status, code) in wrong {
        let reply = send(serde_json::to_vec(&message).expect("json"), status, None).await;
        let first = if reply.is_array() { &reply[0] } else { &reply };
        assert_eq!(first["error"]["code"], code, "{message}: {reply}");
        if status == 200 && message.get("id").is_some_and(|id| id.is_number()) {
            assert_eq!(first["id"], message["id"], "{message}");
        }
    }
    // Odd but harmless members are ignored: a client info of the wrong shape.
    for params in [
        json!({"protocolVersion": "2025-11-25", "clientInfo": "just a string"}),
        json!({"protocolVersion": "2025-11-25", "clientInfo": {"name": 5, "version": {}}}),
        json!({"protocolVersion": "2025-11-25", "capabilities": [1, 2]}),
    ] {
        let reply = send(
            serde_json::to_vec(&rpc(json!(1), "initialize", params)).expect("json"),
            200,
            None,
        )
        .await;
        assert!(reply["result"]["serverInfo"].is_object(), "{reply}");
    }

    // Invalid UTF-8 inside JSON strings, lone surrogates, a byte-order mark, trailing bytes.
    for bytes in [
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\xfe\"}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\xc0\xafng\"}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":\"\xed\xa0\x80\",\"method\":\"ping\"}".to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xe2\x82\"}".to_vec(),
        br#"{"jsonrpc":"2.0","id":"\ud800","method":"ping"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\udc00\ud800"}"#.to_vec(),
        b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}".to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"} trailing"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}"#
            .to_vec(),
        b"   ".to_vec(),
        b"\x00".to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"ping",}"#.to_vec(),
        br#"{'jsonrpc':'2.0','id':1,'method':'ping'}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":NaN,"method":"ping"}"#.to_vec(),
    ] {
        send(bytes, 400, Some(-32700)).await;
    }
    // A valid escaped NUL is just text: an unknown method.
    send(br#"{"jsonrpc":"2.0","id":1,"method":"ping\u0000"}"#.to_vec(), 200, Some(-32601)).await;

    // Duplicate keys: the last one wins (serde_json's rule), consistently for every member.
    let reply =
        send(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#.to_vec(), 200, None).await;
    assert_eq!(reply["id"], 2);
    let reply = send(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"ping"}"#.to_vec(),
        200,
        None,
    )
    .await;
    assert_eq!(reply["result"], json!({}));
    send(br#"{"jsonrpc":"1.0","jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec(), 200, None).await;
    send(
        br#"{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"ping"}"#.to_vec(),
        400,
        Some(-32600),
    )
    .await;
    let reply = send(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_item","name":"list_personas"}}"#
            .to_vec(),
        200,
        None,
    )
    .await;
    assert_eq!(reply["result"]["isError"], false, "{reply}");

    eprintln!("security corpus: malformed JSON-RPC: {count} requests");
    assert_healthy(&server, &token).await;
    server.stop().await;
}

/// JSON-RPC: a response's id "MUST be the same as the value of the id member in the Request".
/// serde_json without its `float_roundtrip` feature parses some numbers 1 ULP off, so such an
/// id comes back as a different number and the client cannot match the answer.
#[tokio::test]
async fn number_ids_are_echoed_exactly() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Ids", "never", "read-write").await;
    let client = http();
    for id in ["-9.361210491330721e93", "1.0715660391465826e-75", "-1.603964615428183e143", "0.1"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let answer = post_bytes(&client, &server.mcp_url(), &token, body.into_bytes(), None).await;
        assert_eq!(answer.status, 200);
        // Compared with std's exact parser: serde_json's own may be the one that is off.
        let echoed = answer.text();
        let got = echoed.split(r#""id":"#).nth(1).and_then(|rest| rest.split(',').next());
        let got = got.and_then(|text| text.parse::<f64>().ok());
        assert_eq!(got, id.parse::<f64>().ok(), "sent id {id}, got {echoed}");
    }
    server.stop().await;
}

#[tokio::test]
async fn malformed_http_gets_a_clean_answer_not_a_dropped_connection() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Corpus", "never", "read-write").await;
    let addr = addr_of(&server.url);
    let ping = serde_json::to_vec(&rpc(json!(1), "ping", json!({}))).expect("json");
    let mut count = 0;

    // A 64 KB header value is within hyper's limits and reaches the handler.
    let pad = "p".repeat(64 * 1024);
    let outcome =
        raw_exchange(&addr, raw_post(&addr, &token, &format!("X-Pad: {pad}\r\n"), &ping), false)
            .await;
    count += 1;
    assert_eq!(outcome.status(), Some(200), "{outcome:?}");
    // A 64 KB Authorization header is a malformed token: 401 with a challenge.
    let outcome = raw_exchange(&addr, raw_post(&addr, &pad, "", &ping), false).await;
    count += 1;
    let Raw::Answered { status: 401, head, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");

    // 1 MB in one header (Authorization, or any other), and 200 headers: over hyper's limits.
    // The answer must be a status line (431 or 400), not a reset or a silent close.
    let mega = "m".repeat(1024 * 1024);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (what, request) in [
        ("1 MB Authorization", raw_post(&addr, &mega, "", &ping)),
        ("1 MB X-Pad", raw_post(&addr, &token, &format!("X-Pad: {mega}\r\n"), &ping)),
        ("200 headers", raw_post(&addr, &token, &many, &ping)),
    ] {
        let outcome = raw_exchange(&addr, request, false).await;
        count += 1;
        eprintln!("security corpus: {what}: {:?}", outcome.status());
        assert!(
            matches!(outcome.status(), Some(431 | 400)),
            "{what}: expected 431 or 400, got {outcome:?}"
        );
    }

    // Content-Length larger than the body, then the client half-closes: a JSON parse error.
    let head = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: {ACCEPT}\r\nContent-Length: 500\r\n\r\n"
    );
    let mut request = head.clone().into_bytes();
    request.extend_from_slice(br#"{"jsonrpc":"2.0","id":1,"#);
    let outcome = raw_exchange(&addr, request.clone(), true).await;
    count += 1;
    let Raw::Answered { status: 400, head: answer_head, body } = &outcome else {
        panic!("short body: {outcome:?}")
    };
    assert!(answer_head.to_ascii_lowercase().contains("content-type: application/json"));
    let body: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(body["error"]["code"], -32700, "{body}");
    // ... and when the client goes away entirely, the server carries on.
    {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream.write_all(&request).await.expect("write");
        drop(stream);
        count += 1;
    }
    // A declared length over the limit is refused before the body is read.
    let mut request = head.replace("500", "2000000").into_bytes();
    request.extend_from_slice(b"{}");
    let outcome = raw_exchange(&addr, request, false).await;
    count += 1;
    assert_eq!(outcome.status(), Some(413), "{outcome:?}");

    // Framing hyper refuses itself, and framing it accepts that our handler then refuses.
    let body_of = |head: &str, body: &str| {
        format!(
            "POST /api/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: {ACCEPT}\r\n{head}Connection: close\r\n\r\n{body}"
        )
        .into_bytes()
    };
    let framing: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("non-numeric Content-Length", body_of("Content-Length: abc\r\n", "{}"), &[400]),
        (
            "two different Content-Lengths",
            body_of("Content-Length: 2\r\nContent-Length: 3\r\n", "{}x"),
            &[400],
        ),
        (
            "bad chunk size",
            body_of("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
            &[400],
        ),
        (
            "chunked and Content-Length",
            body_of("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            &[400],
        ),
        ("unknown transfer coding", body_of("Transfer-Encoding: gzip\r\n", "{}"), &[400, 501]),
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), &[400]),
        ("HTTP/9.9", b"POST /api/mcp HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), &[400, 505]),
        ("NUL in a header", body_of("X-Bad: a\0b\r\nContent-Length: 2\r\n", "{}"), &[400]),
        (
            "non-UTF-8 Authorization",
            b"POST /api/mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \xff\xfe\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                .to_vec(),
            &[401],
        ),
    ];
    for (what, request, statuses) in framing {
        let outcome = raw_exchange(&addr, request, false).await;
        count += 1;
        eprintln!("security corpus: {what}: {:?}", outcome.status());
        assert!(
            outcome.status().is_some_and(|s| statuses.contains(&s)),
            "{what}: expected one of {statuses:?}, got {outcome:?}"
        );
    }

    // A 100 KB path is over hyper's URI limit: 414 (hyper's own answers have empty bodies).
    let outcome = raw_exchange(
        &addr,
        format!(
            "GET /{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            "a".repeat(100_000)
        )
        .into_bytes(),
        false,
    )
    .await;
    count += 1;
    assert_eq!(outcome.status(), Some(414), "{outcome:?}");
    let outcome = raw_exchange(
        &addr,
        format!(
            "GET /{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            "a".repeat(60_000)
        )
        .into_bytes(),
        false,
    )
    .await;
    count += 1;
    assert_eq!(outcome.status(), Some(404), "a 60 KB path is an unknown path: {outcome:?}");

    // Content types: parameters are fine, look-alikes are not.
    let client = http();
    for (content_type, status) in [
        ("application/json; charset=utf-8", 200),
        ("APPLICATION/JSON", 200),
        ("application/json-patch+json", 415),
        ("application/jsonx", 415),
        ("text/json", 415),
        ("", 415),
    ] {
        let answer = Answer::read(
            client
                .post(server.mcp_url())
                .bearer_auth(&token)
                .header("accept", ACCEPT)
                .header("content-type", content_type)
                .body(ping.clone())
                .send()
                .await
                .expect("post"),
        )
        .await;
        count += 1;
        assert_eq!(answer.status, status, "{content_type:?}: {}", answer.text());
        check_answer(&answer, None, None).expect("well formed");
    }

    eprintln!("security corpus: malformed HTTP: {count} requests");
    assert_healthy(&server, &token).await;
    server.stop().await;
}

/// `keys create` through the admin API; returns the status and body.
async fn create_key_named(server: &TestServer, name: &str) -> (u16, Value) {
    let response = http()
        .post(server.admin("/workspaces/acme/mcp-keys"))
        .bearer_auth(&server.owner_token)
        .json(&json!({"name": name, "expires": "30d"}))
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Runs the real binary against `url` in `env` (credentials from its store).
async fn cli(env: &TestEnv, url: &str, args: &[&str], vars: &[(&str, &str)], stdin: &str) -> Run {
    let mut command = env.command();
    command.env("CUSTORY_SERVER", url).args(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    crate::common::run_piped(command, Some(stdin)).await
}

#[tokio::test]
async fn hostile_key_names_are_refused_or_kept_verbatim() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let url = server.url.clone();
    let owner =
        [("CUSTORY_OWNER_TOKEN", server.owner_token.as_str()), ("CUSTORY_WORKSPACE", "acme")];
    let mut count = 0;

    // Control characters, C1 controls included, and 10 KB names: 422 from the API, and a usage
    // error (exit 2, one line, a hint) from the CLI before anything is sent.
    let ten_kb = "n".repeat(10 * 1024);
    for name in [
        "line\nbreak",
        "carriage\rreturn",
        "tab\there",
        "escape\u{1b}[31mred",
        "nul\u{0}byte",
        "delete\u{7f}here",
        "next\u{85}line",
        "c1 csi\u{9b}31m",
        "\u{1b}]8;;http://evil.example\u{7}link",
        &ten_kb,
    ] {
        let (status, body) = create_key_named(&server, name).await;
        count += 1;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid_name")),
            "{name:?}"
        );
        if name.contains('\0') {
            continue; // not expressible as a command-line argument
        }
        let ran =
            cli(&env, &url, &["keys", "create", "--name", name, "--expires", "30d"], &owner, "")
                .await;
        count += 1;
        assert_eq!(ran.code, 2, "{name:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{name:?}");
        assert!(ran.stderr.starts_with("error: name "), "{name:?}: {}", ran.stderr);
        assert!(ran.stderr.contains("hint: "), "{name:?}: {}", ran.stderr);
    }

    // SQL metacharacters and LIKE wildcards are data: stored and returned exactly, and the
    // tables are intact.
    let sql_names = [
        "'; DROP TABLE mcp_keys;--",
        "Robert'); DROP TABLE workspaces;--",
        "\" OR \"\"=\"",
        "100% _real_ \\ name",
    ];
    for name in sql_names {
        let (status, body) = create_key_named(&server, name).await;
        count += 1;
        assert_eq!(status, 201, "{name:?}: {body}");
        assert_eq!(body["key"]["name"], name);
        let id = body["key"]["id"].as_str().expect("id");
        let fetched: Value = http()
            .get(server.admin(&format!("/workspaces/acme/mcp-keys/{id}")))
            .bearer_auth(&server.owner_token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(fetched["key"]["name"], name);
    }
    // Workspace names follow the same rule.
    for (name, status) in [
        ("Evil\u{1b}[2J", 422),
        ("Tab\tname", 422),
        (&ten_kb as &str, 422),
        ("'; DROP TABLE workspaces;--", 201),
    ] {
        let response = http()
            .post(server.admin("/workspaces"))
            .bearer_auth(&server.owner_token)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("post");
        count += 1;
        assert_eq!(response.status(), status, "workspace {name:?}");
        let body: Value = response.json().await.expect("json");
        if status == 201 {
            assert_eq!(body["workspace"]["name"], name);
            assert_eq!(body["workspace"]["slug"], "drop-table-workspaces");
        }
    }
    let sql = "' OR '1'='1";
    let ran =
        cli(&env, &url, &["keys", "create", "--name", sql, "--expires", "never"], &owner, "").await;
    count += 1;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let shown = cli(&env, &url, &["--json", "keys", "show", sql], &owner, "").await;
    count += 1;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(shown["key"]["name"], sql);
    let listed = cli(&env, &url, &["--json", "keys", "list"], &owner, "").await;
    let listed: Value = serde_json::from_str(&listed.stdout).expect("json");
    let names: BTreeSet<&str> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    let expected: BTreeSet<&str> = sql_names.iter().copied().chain([sql]).collect();
    assert_eq!(names, expected, "every key is there, nothing else");
    for path in ["/workspaces/acme/mcp-keys/' OR '1'='1", "/workspaces/acme' OR '1'='1/mcp-keys"] {
        let response = http().get(server.admin(path)).bearer_auth(&server.owner_token).send().await;
        let response = response.expect("get");
        count += 1;
        assert_eq!(response.status(), 404, "{path}");
    }
    server.store.integrity_check().expect("intact");

    // Right-to-left override (U+202E) and the other bidi controls are not control characters
    // (char::is_control is false), but they make a name display as something else in a
    // terminal: the API refuses them like control characters.
    let rlo = "Cursor\u{202e}txt.exe";
    let (status, body) = create_key_named(&server, rlo).await;
    count += 1;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_name");

    // The client name an MCP client reports at initialize is shown to the admin (Last used,
    // Last client): control characters and bidi overrides are dropped.
    let (_, agent) = server.create_key("Agent", "30d", "read-write").await;
    let hello = rpc(
        json!(1),
        "initialize",
        json!({
            "protocolVersion": "2025-11-25",
            "clientInfo": {"name": "Cursor\u{202e}gnp.exe\u{1b}[2J", "version": "1.0\u{9b}31m\u{7}"}
        }),
    );
    let answer = post_json(&http(), &server.mcp_url(), &agent, &hello).await;
    count += 1;
    assert_eq!(answer.status, 200);
    let shown = cli(&env, &url, &["--json", "keys", "show", "Agent"], &owner, "").await;
    let shown: Value = serde_json::from_str(&shown.stdout).expect("json");
    let client = shown["key"]["last_used_client"].as_str().expect("client").to_owned();
    assert!(!client.chars().any(char::is_control), "{client:?}");
    for args in [&["keys", "list"][..], &["keys", "show", "Agent"][..]] {
        let ran = cli(&env, &url, args, &owner, "").await;
        count += 1;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(!ran.stdout.contains(['\u{1b}', '\u{9b}', '\u{7}']), "{args:?}: {:?}", ran.stdout);
        assert!(!ran.stdout.contains('\u{202e}'), "{args:?}: {:?}", ran.stdout);
    }
    // Agent-written titles reach the admin through `audit`, Debug-quoted: escaped there.
    let client = http();
    let tree = call_ok(
        &client,
        &server.mcp_url(),
        &agent,
        "get_journey",
        json!({"journey": "trial-to-paid"}),
    )
    .await;
    let step = tree["stages"][0]["steps"][0]["id"].clone();
    let title = "Invoice\u{202e}fdp.exe";
    call_ok(
        &client,
        &server.mcp_url(),
        &agent,
        "create_item",
        json!({"step_id": step, "kind": "insight", "title": title}),
    )
    .await;
    let audit = cli(&env, &url, &["audit"], &owner, "").await;
    count += 2;
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    assert!(audit.stdout.contains("Invoice\\u{202e}fdp.exe"), "{}", audit.stdout);
    eprintln!("security corpus: hostile names: {count} requests and commands");
    server.stop().await;
}

#[tokio::test]
async fn sql_metacharacters_and_like_wildcards_are_plain_text_to_the_tools() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Tools", "never", "read-write").await;
    let client = http();
    let url = server.mcp_url();
    let journey =
        call_ok(&client, &url, &token, "get_journey", json!({"journey": "trial-to-paid"})).await;
    let step = journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned();
    let all = call_ok(&client, &url, &token, "list_items", json!({"limit": 200})).await;
    let total_items = all["items"].as_array().expect("items").len();
    assert!(total_items >= 20);

    // Punctuation separates words in a search: a query of wildcard or query-syntax characters
    // alone has no words and is refused with a sentence; it never matches everything.
    for nothing in ["%", "_", "\\", "%%", "%_%", "*", "\"", "()", "'--", ":"] {
        let result = call(&client, &url, &token, "search", json!({"query": nothing})).await;
        assert!(error_text(&result).contains("no words"), "{nothing:?}: {result}");
    }

    let hostile = [
        ("qqpct 5% lift", "'; DROP TABLE items;--"),
        ("qqund snake_case", "Robert'); DELETE FROM comments;--"),
        ("qqbsl back\\slash", "\" OR \"\"=\" \\' %_"),
    ];
    let mut ids = Vec::new();
    for (title, description) in hostile {
        let created = call_ok(
            &client,
            &url,
            &token,
            "create_item",
            json!({"step_id": step, "kind": "insight", "title": title, "description": description,
                   "owner": "O'Brien; DROP TABLE items", "fields": {"segment": "%' OR 1=1 --"}}),
        )
        .await;
        assert_eq!(created["title"], title);
        assert_eq!(created["description"], description);
        assert_eq!(created["fields"]["segment"], "%' OR 1=1 --");
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    // Decoys that a wildcard would match.
    for title in ["qqpct 5X lift", "qqund snakeXcase", "qqbsl backXslash"] {
        call_ok(
            &client,
            &url,
            &token,
            "create_item",
            json!({"step_id": step, "kind": "insight", "title": title}),
        )
        .await;
    }
    let comment = call_ok(
        &client,
        &url,
        &token,
        "add_comment",
        json!({"item_id": ids[0], "body": "'); DELETE FROM comments; --", "author": "\" OR 1=1 --"}),
    )
    .await;
    assert_eq!(comment["comment"]["body"], "'); DELETE FROM comments; --");
    assert_eq!(comment["comment"]["author"], "\" OR 1=1 --");
    let item = call_ok(&client, &url, &token, "get_item", json!({"item_id": ids[0]})).await;
    assert_eq!(item["comments"][0]["body"], "'); DELETE FROM comments; --");
    assert_eq!(item["owner"], "O'Brien; DROP TABLE items");

    let search = async |query: &str| -> Vec<String> {
        let hits = call_ok(&client, &url, &token, "search", json!({"query": query})).await;
        hits["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| h["id"].as_str().expect("id").to_owned())
            .collect()
    };
    // Search words are literal words: neither SQL nor the full-text index's own syntax (OR,
    // NOT, NEAR, quotes, `*`, column filters) can widen a search past what every word matches.
    let mut hostile_ids = ids.clone();
    hostile_ids.sort();
    let mut found = search("DROP TABLE items").await;
    found.sort();
    assert_eq!(found, hostile_ids, "the words are in each hostile item's text (the owner)");
    for widening in [
        "qqpct zzznothere",
        "qqpct OR zzznothere",
        "qqpct) OR (zzznothere",
        "zzznothere' OR '1'='1",
        "zzznothere\" OR \"",
        "zzznothere*",
        "NEAR(qqpct zzznothere)",
        "title:zzznothere",
        "zzznothere; DROP TABLE items",
    ] {
        assert_eq!(search(widening).await, Vec::<String>::new(), "{widening:?}");
    }
    // A word matches as a word or (from three letters) the start of one, whatever surrounds it.
    assert_eq!(search("qqpct 5").await, vec![ids[0].clone()], "5 is a whole word, 5X is not");
    assert_eq!(search("qqund snake").await.len(), 2, "snake_case and snakeXcase both start so");
    assert_eq!(search("qqund snake_case").await, vec![ids[1].clone()], "snake and case");
    // Owner filters are exact: a wildcard owner matches no one.
    for owner in ["%", "_%", "' OR '1'='1", "O'Brien%"] {
        let listed = call_ok(&client, &url, &token, "list_items", json!({"owner": owner})).await;
        assert_eq!(listed["items"], json!([]), "owner {owner:?}");
    }
    let listed =
        call_ok(&client, &url, &token, "list_items", json!({"owner": "o'brien; drop table items"}))
            .await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 3, "exact, case-insensitive");
    // Over-long text is refused with a sentence, not truncated or stored.
    let ten_kb = "t".repeat(10 * 1024);
    for (tool, args) in [
        ("create_item", json!({"step_id": step, "kind": "insight", "title": ten_kb})),
        ("search", json!({"query": ten_kb})),
        ("add_comment", json!({"item_id": ids[0], "body": "b".repeat(100_000)})),
        ("update_item", json!({"item_id": ids[0], "owner": ten_kb})),
    ] {
        let result = call(&client, &url, &token, tool, args).await;
        assert!(error_text(&result).contains("too long"), "{tool}: {result}");
    }
    // Nothing was dropped or deleted.
    let all = call_ok(&client, &url, &token, "list_items", json!({"limit": 200})).await;
    assert_eq!(all["items"].as_array().expect("items").len(), total_items + 6);
    server.store.integrity_check().expect("intact");
    server.stop().await;
}

// =============================================================================================
// 3. Isolation between workspaces.

/// Words and names that exist only in workspace B.
const B_WORDS: [&str; 4] = ["Zyxwvut", "Quillon", "Vexmore", "zebra-secret"];

/// Gives workspace `slug` a journey map directly in the database: no API creates journeys,
/// stages or steps (items, links and comments are then made through B's own MCP key).
fn seed_map(db: &TestDatabase, slug: &str) -> (Vec<String>, Vec<String>, Vec<String>, String) {
    let ws = db.query_row("SELECT id FROM workspaces WHERE slug = ?1", &[slug.into()])[0]
        .int()
        .expect("workspace");
    let now = chrono::Utc::now().timestamp();
    let journeys = vec!["jrn_ZyxBeta001".to_owned(), "jrn_ZyxBeta002".to_owned()];
    let stages = vec!["stg_ZyxBeta001".to_owned(), "stg_ZyxBeta002".to_owned()];
    let steps = vec!["stp_ZyxBeta001".to_owned(), "stp_ZyxBeta002".to_owned()];
    // The second journey shares A's slug on purpose: slugs are only unique per workspace.
    for (i, (jid, slug)) in journeys.iter().zip(["zebra-secret", "trial-to-paid"]).enumerate() {
        db.execute(
            "INSERT INTO journeys (id, workspace_id, slug, name, description, position, created_at)
             VALUES (?1, ?2, ?3, ?4, 'Zyxwvut journey of workspace B', ?5, ?6)",
            &[
                jid.clone().into(),
                ws.into(),
                slug.into(),
                format!("Zyxwvut journey {i}").into(),
                (i as i64).into(),
                now.into(),
            ],
        );
        db.execute(
            "INSERT INTO stages (id, workspace_id, journey_id, name, description, position)
             VALUES (?1, ?2, ?3, 'Zyxwvut stage', 'Vexmore stage text', 0)",
            &[stages[i].clone().into(), ws.into(), jid.clone().into()],
        );
        db.execute(
            "INSERT INTO steps (id, workspace_id, stage_id, name, description, position)
             VALUES (?1, ?2, ?3, 'Zyxwvut step', 'Vexmore step text', 0)",
            &[steps[i].clone().into(), ws.into(), stages[i].clone().into()],
        );
    }
    let persona = "per_ZyxBeta001".to_owned();
    db.execute(
        "INSERT INTO personas (id, workspace_id, name, role, bio, job_to_be_done, goals,
                               frustrations, created_at)
         VALUES (?1, ?2, 'Quillon Vexmore', 'Zyxwvut buyer', 'Vexmore bio', 'Zyxwvut job',
                 '[\"Zyxwvut goal\"]', '[]', ?3)",
        &[persona.clone().into(), ws.into(), now.into()],
    );
    (journeys, stages, steps, persona)
}

/// Everything B's key can see of B, to compare before and after A's attempts.
async fn snapshot(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    items: &[String],
) -> Vec<Value> {
    let mut seen = vec![
        call_ok(client, url, token, "get_workspace", json!({})).await,
        call_ok(client, url, token, "list_journeys", json!({})).await,
        call_ok(client, url, token, "get_journey", json!({"journey": "zebra-secret"})).await,
        call_ok(client, url, token, "get_journey", json!({"journey": "trial-to-paid"})).await,
        call_ok(client, url, token, "list_items", json!({"limit": 200})).await,
        call_ok(client, url, token, "list_personas", json!({})).await,
        call_ok(client, url, token, "search", json!({"query": "Zyxwvut", "limit": 100})).await,
    ];
    for id in items {
        seen.push(call_ok(client, url, token, "get_item", json!({"item_id": id})).await);
    }
    // The calling key's last use is in get_workspace's answer only as id/prefix: stable.
    seen
}

#[tokio::test]
async fn a_key_of_one_workspace_reaches_nothing_of_another() {
    let server = lenient_server().await;
    let client = http();
    let url = server.mcp_url();
    let owner = &server.owner_token;

    // Workspace B through the admin API, a map in it, and its items through B's own key.
    let created = http()
        .post(server.admin("/workspaces"))
        .bearer_auth(owner)
        .json(&json!({"name": "Beta Zyxwvut", "slug": "beta"}))
        .send()
        .await
        .expect("create workspace");
    assert_eq!(created.status(), 201);
    let (journeys_b, stages_b, steps_b, persona_b) = seed_map(&server.db, "beta");
    let made: Value = http()
        .post(server.admin("/workspaces/beta/mcp-keys"))
        .bearer_auth(owner)
        .json(&json!({"name": "B agent", "expires": "never"}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let token_b = made["token"].as_str().expect("token").to_owned();
    let (_, token_a) = server.create_key("A agent", "never", "read-write").await;

    let mut items_b = Vec::new();
    for (kind, fields) in [
        ("touchpoint", json!({"channel": "Zyxwvut email"})),
        ("insight", json!({"segment": "Zyxwvut"})),
        ("opportunity", json!({"confidence": "high"})),
        ("solution", json!({"solution_type": "Vexmore"})),
        ("metric", json!({"unit": "Zyxwvut units"})),
    ] {
        let item = call_ok(
            &client,
            &url,
            &token_b,
            "create_item",
            json!({"step_id": steps_b[0], "kind": kind, "title": format!("Zyxwvut {kind}"),
                   "description": "Vexmore secret plan", "owner": "Quillon Vex", "fields": fields}),
        )
        .await;
        items_b.push(item["id"].as_str().expect("id").to_owned());
    }
    for pair in items_b.windows(2).take(3) {
        call_ok(
            &client,
            &url,
            &token_b,
            "link_items",
            json!({"from_item_id": pair[0], "to_item_id": pair[1]}),
        )
        .await;
    }
    call_ok(
        &client,
        &url,
        &token_b,
        "add_comment",
        json!({"item_id": items_b[0], "body": "Zyxwvut comment"}),
    )
    .await;
    call_ok(
        &client,
        &url,
        &token_b,
        "update_item",
        json!({"item_id": items_b[2], "status": "in-progress"}),
    )
    .await;
    let before = snapshot(&client, &url, &token_b, &items_b).await;
    let audit_b = |server: &TestServer| {
        http()
            .get(server.admin("/workspaces/beta/audit?limit=1000"))
            .bearer_auth(&server.owner_token)
    };
    let audit_before: Value =
        audit_b(&server).send().await.expect("audit").json().await.expect("json");

    // A's own objects, for links across the boundary.
    let items_a = call_ok(&client, &url, &token_a, "list_items", json!({"limit": 200})).await;
    let a_of_kind = |kind: &str| -> String {
        items_a["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["kind"] == kind)
            .expect("kind")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let a_journey =
        call_ok(&client, &url, &token_a, "get_journey", json!({"journey": "trial-to-paid"})).await;
    let a_workspace_before = call_ok(&client, &url, &token_a, "get_workspace", json!({})).await;

    // Every id-taking parameter of every tool, pointed at B.
    let (tp, ins, opp, sol, met) =
        (&items_b[0], &items_b[1], &items_b[2], &items_b[3], &items_b[4]);
    let mut attempts: Vec<(&str, Value)> = Vec::new();
    for journey in [&journeys_b[0], &journeys_b[1], &"zebra-secret".to_owned()] {
        attempts.push(("get_journey", json!({"journey": journey})));
        attempts.push(("list_items", json!({"journey": journey})));
    }
    for stage in &stages_b {
        attempts.push(("list_items", json!({"stage_id": stage})));
        attempts.push(("list_items", json!({"stage_id": stage, "kind": "touchpoint"})));
    }
    for step in &steps_b {
        attempts.push(("list_items", json!({"step_id": step})));
        attempts.push((
            "create_item",
            json!({"step_id": step, "kind": "insight", "title": "Injected"}),
        ));
    }
    attempts.push(("list_items", json!({"owner": "Quillon Vex"})));
    attempts.push(("list_items", json!({"owner": "Quillon Vex", "kind": "metric"})));
    attempts.push(("list_items", json!({"status": "in-progress", "owner": "quillon vex"})));
    for item in &items_b {
        attempts.push(("get_item", json!({"item_id": item})));
        attempts.push(("get_item", json!({"item_id": format!("  {item}\n")})));
        attempts.push((
            "update_item",
            json!({"item_id": item, "title": "pwned", "status": "archived"}),
        ));
        attempts.push(("update_item", json!({"item_id": item, "fields": {"channel": null}})));
        attempts.push(("add_comment", json!({"item_id": item, "body": "from A"})));
    }
    // Links: A→B, B→A and B→B, each in an allowed direction.
    attempts
        .push(("link_items", json!({"from_item_id": a_of_kind("touchpoint"), "to_item_id": ins})));
    attempts.push(("link_items", json!({"from_item_id": tp, "to_item_id": a_of_kind("insight")})));
    attempts
        .push(("link_items", json!({"from_item_id": a_of_kind("opportunity"), "to_item_id": sol})));
    attempts.push(("link_items", json!({"from_item_id": sol, "to_item_id": a_of_kind("metric")})));
    attempts.push(("link_items", json!({"from_item_id": opp, "to_item_id": met})));
    attempts.push(("link_items", json!({"from_item_id": tp, "to_item_id": ins})));
    for word in
        B_WORDS.iter().copied().chain(["Quillon Vex", "Vexmore secret plan", "Zyxwvut goal"])
    {
        attempts.push(("search", json!({"query": word, "limit": 100})));
    }
    for id in items_b.iter().chain(&journeys_b).chain(&stages_b).chain(&steps_b).chain([&persona_b])
    {
        attempts.push(("search", json!({"query": id})));
    }
    attempts.push(("get_workspace", json!({})));
    attempts.push(("list_journeys", json!({})));
    attempts.push(("list_personas", json!({})));
    attempts.push(("list_items", json!({"limit": 200})));

    let b_secrets: Vec<&str> = items_b
        .iter()
        .chain(&journeys_b)
        .chain(&stages_b)
        .chain(&steps_b)
        .chain([&persona_b])
        .map(String::as_str)
        .chain(B_WORDS)
        .collect();
    let mut refused = 0;
    for (tool, args) in &attempts {
        let result = call(&client, &url, &token_a, tool, args.clone()).await;
        let text = result.to_string();
        for secret in &b_secrets {
            // An answer may quote what A itself sent; it must say nothing more about it.
            if args.to_string().contains(secret) {
                continue;
            }
            assert!(!text.contains(secret), "{tool} {args} revealed {secret}: {text}");
        }
        if result["isError"] == true {
            refused += 1;
            // Indistinguishable from an unknown id: the same sentence with the id swapped.
            for id in b_secrets.iter().filter(|s| s.contains('_') && args.to_string().contains(*s))
            {
                let unknown = format!("{}_NoSuchId00", &id[..3]);
                let probe: Value =
                    serde_json::from_str(&args.to_string().replace(id, &unknown)).expect("json");
                let other = call(&client, &url, &token_a, tool, probe).await;
                if other["isError"] == true {
                    assert_eq!(
                        error_text(&result).replace(id, "ID"),
                        error_text(&other).replace(&unknown, "ID"),
                        "{tool}: B's id is told apart from an unknown one"
                    );
                }
            }
        } else {
            // A successful call shows only A: lists hold none of B's objects (checked above),
            // and the shared slug resolves to A's journey.
            if *tool == "get_journey" {
                assert_eq!(result["structuredContent"]["id"], a_journey["id"]);
            }
        }
    }
    // Resources, prompts and completion are confined the same way: B's journeys and items are
    // not found by A's key (told exactly like an unknown one), and nothing of B is listed,
    // expanded or offered.
    let ask = |method: &'static str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (url, token) = (url.clone(), token_a.clone());
        async move {
            let reply: Value = mcp_post(&url, &token, &body)
                .send()
                .await
                .expect("post")
                .json()
                .await
                .expect("json");
            reply
        }
    };
    let mut uris: Vec<String> = vec!["custory://journeys/zebra-secret".into()];
    uris.extend(journeys_b.iter().map(|id| format!("custory://journeys/{id}")));
    uris.extend(items_b.iter().map(|id| format!("custory://items/{id}")));
    for uri in &uris {
        let reply = ask("resources/read", json!({"uri": uri})).await;
        assert_eq!(reply["error"]["code"], -32002, "{uri}: {reply}");
        let unknown = uri.replace("zebra-secret", "no-such-journey").replace("Zyx", "Nox");
        let other = ask("resources/read", json!({"uri": unknown})).await;
        let segment = |uri: &str| uri.rsplit('/').next().unwrap_or_default().to_owned();
        let (mine, theirs) = (segment(uri), segment(&unknown));
        assert_eq!(
            reply["error"]["message"].as_str().map(|m| m.replace(&mine, "ID")),
            other["error"]["message"].as_str().map(|m| m.replace(&theirs, "ID")),
            "B's {uri} is told apart from an unknown one"
        );
    }
    let shown = [
        ask("resources/list", json!({})).await,
        ask(
            "prompts/get",
            json!({"name": "review_stage",
            "arguments": {"journey": "trial-to-paid", "stage": "Discover"}}),
        )
        .await,
        ask(
            "prompts/get",
            json!({"name": "summarise_changes",
            "arguments": {"journey": "trial-to-paid", "since": "30d"}}),
        )
        .await,
        ask(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "review_stage"},
            "argument": {"name": "journey", "value": "zeb"}}),
        )
        .await,
        ask(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "review_stage"},
            "argument": {"name": "stage", "value": "Zyx"}}),
        )
        .await,
        ask(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "notes_to_insights"},
            "argument": {"name": "step", "value": "Zyx"}}),
        )
        .await,
        ask(
            "completion/complete",
            json!({"ref": {"type": "ref/resource",
            "uri": "custory://journeys/{journey}"}, "argument": {"name": "journey", "value": ""}}),
        )
        .await,
    ];
    for reply in &shown {
        assert!(reply.get("result").is_some(), "{reply}");
        let text = reply.to_string();
        for secret in &b_secrets {
            assert!(!text.contains(secret), "{secret} of B shown to A: {text}");
        }
    }
    assert_eq!(shown[3]["result"]["completion"]["values"], json!([]), "{}", shown[3]);
    let prompt = ask(
        "prompts/get",
        json!({"name": "review_stage",
        "arguments": {"journey": "zebra-secret", "stage": "Zyxwvut stage"}}),
    )
    .await;
    assert_eq!(prompt["error"]["code"], -32602, "{prompt}");

    let a_workspace_after = call_ok(&client, &url, &token_a, "get_workspace", json!({})).await;
    assert_eq!(a_workspace_after["items"]["total"], a_workspace_before["items"]["total"]);

    // B is exactly as it was, and A's attempts left nothing in B's audit trail.
    let after = snapshot(&client, &url, &token_b, &items_b).await;
    assert_eq!(before, after, "B changed");
    let audit_after: Value =
        audit_b(&server).send().await.expect("audit").json().await.expect("json");
    assert_eq!(audit_before, audit_after, "A's attempts show in B's audit");
    eprintln!(
        "security isolation: {} cross-workspace tool calls ({refused} refused, the rest showed \
         only A's own data)",
        attempts.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn mcp_keys_get_nothing_from_the_admin_api_and_the_owner_nothing_from_mcp() {
    let server = lenient_server().await;
    let client = http();
    let owner = &server.owner_token;
    let created = http()
        .post(server.admin("/workspaces"))
        .bearer_auth(owner)
        .json(&json!({"name": "Beta", "slug": "beta"}))
        .send()
        .await
        .expect("workspace");
    assert_eq!(created.status(), 201);
    let (key, token) = server.create_key("Active", "30d", "read-write").await;
    let (_, read_only) = server.create_key("Read only", "30d", "read-only").await;
    let (revoked_key, revoked) = server.create_key("Revoked", "30d", "read-write").await;
    let revoked_id = revoked_key["id"].as_str().expect("id");
    let response = http()
        .post(server.admin(&format!("/workspaces/acme/mcp-keys/{revoked_id}/revoke")))
        .bearer_auth(owner)
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 200);
    let id = key["id"].as_str().expect("id");
    let keys_before: Value = client
        .get(server.admin("/workspaces/acme/mcp-keys"))
        .bearer_auth(owner)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");

    let routes: Vec<(reqwest::Method, String, Option<Value>)> = ["acme", "beta"]
        .into_iter()
        .flat_map(|ws| {
            [
                (reqwest::Method::GET, "/workspaces".to_owned(), None),
                (reqwest::Method::POST, "/workspaces".to_owned(), Some(json!({"name": "Evil"}))),
                (reqwest::Method::GET, format!("/workspaces/{ws}/mcp-keys"), None),
                (reqwest::Method::GET, format!("/workspaces/{ws}/mcp-keys?status=active"), None),
                (
                    reqwest::Method::POST,
                    format!("/workspaces/{ws}/mcp-keys"),
                    Some(json!({"name": "Escalated", "expires": "never"})),
                ),
                (reqwest::Method::GET, format!("/workspaces/{ws}/mcp-keys/{id}"), None),
                (reqwest::Method::POST, format!("/workspaces/{ws}/mcp-keys/{id}/revoke"), None),
                (reqwest::Method::POST, format!("/workspaces/{ws}/mcp-keys/{id}/rotate"), None),
                (reqwest::Method::GET, format!("/workspaces/{ws}/audit"), None),
                (reqwest::Method::GET, format!("/workspaces/{ws}/audit?key={id}&limit=5"), None),
            ]
        })
        .collect();
    let mut count = 0;
    for credential in [&token, &read_only, &revoked] {
        for (method, path, body) in &routes {
            let mut request =
                client.request(method.clone(), server.admin(path)).bearer_auth(credential);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.expect("send");
            count += 1;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 403, "{method} {path}: {body}");
            assert_eq!(body["error"]["code"], "mcp_key_not_allowed", "{method} {path}");
            assert!(!body.to_string().contains(&credential[12..]), "the token is echoed");
        }
    }
    // Without any credential, or with a malformed one: 401.
    for (method, path, _) in &routes {
        for auth in [None, Some("Bearer cst_short"), Some("Basic Zm9vOmJhcg=="), Some("Bearer")] {
            let mut request = client.request(method.clone(), server.admin(path));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.expect("send");
            count += 1;
            assert_eq!(response.status(), 401, "{method} {path} {auth:?}");
        }
    }
    // Nothing changed: no workspace, no key, no revocation, no rotation.
    let keys_after: Value = client
        .get(server.admin("/workspaces/acme/mcp-keys"))
        .bearer_auth(owner)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        keys_before["keys"].as_array().map(Vec::len),
        keys_after["keys"].as_array().map(Vec::len)
    );
    let active = keys_after["keys"].as_array().expect("keys").iter().find(|k| k["id"] == id);
    assert_eq!(active.expect("the key")["status"], "active");
    let workspaces: Value = client
        .get(server.admin("/workspaces"))
        .bearer_auth(owner)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(workspaces["workspaces"].as_array().map(Vec::len), Some(2));

    // The owner credential opens nothing at /api/mcp, whatever the message.
    let mut messages = vec![
        initialize_body(),
        rpc(json!(1), "tools/list", json!({})),
        rpc(json!(1), "ping", json!({})),
        json!([rpc(json!(1), "ping", json!({}))]),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ];
    for tool in TOOLS {
        messages.push(tool_call(1, tool, json!({})));
    }
    for message in &messages {
        let answer = post_json(&client, &server.mcp_url(), owner, message).await;
        count += 1;
        assert_eq!(answer.status, 401, "{message}: {}", answer.text());
        let challenge = answer.www_authenticate.clone().unwrap_or_default();
        assert!(challenge.contains("owner credentials"), "{challenge}");
        assert_eq!(answer.json()["error"]["code"], -32001);
        assert!(!answer.text().contains(&owner[12..]) && !challenge.contains(&owner[12..]));
    }
    eprintln!("security isolation: {count} cross-credential requests refused");
    server.stop().await;
}

// =============================================================================================
// 4. Origin, Host, and secrets.

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused() {
    let server = TestServer::start_with(ServerConfig {
        allowed_origins: vec!["http://localhost:3000".into()],
        ..ServerConfig::default()
    })
    .await;
    let (_, token) = server.create_key("Browser", "never", "read-write").await;
    let addr = addr_of(&server.url);
    let port = addr.rsplit(':').next().expect("port").to_owned();
    let ping = serde_json::to_vec(&rpc(json!(1), "ping", json!({}))).expect("json");
    let mut count = 0;

    for (origin, status) in [
        ("http://localhost:3000", 200),
        ("HTTP://LOCALHOST:3000", 200),
        ("http://evil.example", 403),
        ("null", 403),
        ("http://localhost:3000.evil.example", 403),
        ("http://localhost:30000", 403),
        ("https://localhost:3000", 403),
        (&format!("http://127.0.0.1:{port}") as &str, 403),
        ("", 403),
    ] {
        let answer = Answer::read(
            http()
                .post(server.mcp_url())
                .bearer_auth(&token)
                .header("accept", ACCEPT)
                .header("origin", origin)
                .json(&rpc(json!(1), "ping", json!({})))
                .send()
                .await
                .expect("post"),
        )
        .await;
        count += 1;
        assert_eq!(answer.status, status, "Origin {origin:?}: {}", answer.text());
        check_body(&answer).expect("well formed");
    }
    // The Origin check comes first: a foreign page learns nothing about the credential.
    for credential in [token.as_str(), server.owner_token.as_str(), "cst_garbage"] {
        let request = raw_post(&addr, credential, "Origin: http://evil.example\r\n", &ping);
        count += 1;
        assert_eq!(raw_exchange(&addr, request, false).await.status(), Some(403));
    }

    // DNS rebinding: a name that is not the server's gets 403 on the MCP endpoint and the
    // admin API, on a server listening on loopback.
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("LOCALHOST:{port}"), 200),
        ("localhost".to_owned(), 200),
        ("evil.example".to_owned(), 403),
        (format!("evil.example:{port}"), 403),
        (format!("localhost.evil.example:{port}"), 403),
        (format!("127.0.0.1.nip.io:{port}"), 403),
        (format!("[::1]:{port}"), 200),
        ("".to_owned(), 403),
    ] {
        let request = format!(
            "POST /api/mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: {ACCEPT}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            ping.len()
        );
        let mut request = request.into_bytes();
        request.extend_from_slice(&ping);
        let outcome = raw_exchange(&addr, request, false).await;
        count += 1;
        assert_eq!(outcome.status(), Some(status), "Host {host:?} on /api/mcp: {outcome:?}");
        if status == 403 {
            let admin = format!(
                "GET /api/admin/workspaces HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
                 Connection: close\r\n\r\n",
                server.owner_token
            );
            let outcome = raw_exchange(&addr, admin.into_bytes(), false).await;
            count += 1;
            assert_eq!(outcome.status(), Some(403), "Host {host:?} on the admin API: {outcome:?}");
        }
    }
    eprintln!("security: Origin and Host: {count} requests");
    server.stop().await;
}

/// `serve` as the real binary, with its log drained as it runs (trace logging must not fill
/// the pipe and stall the server).
struct LoggedServer {
    child: tokio::process::Child,
    announced: Value,
    log: Arc<Mutex<Vec<u8>>>,
    drain: tokio::task::JoinHandle<()>,
}

impl LoggedServer {
    async fn start(env: &TestEnv, db: &Path, args: &[&str], vars: &[(&str, &str)]) -> Self {
        let mut command = env.command();
        command.args(["serve", "--json", "--listen", "127.0.0.1:0", "--db"]).arg(db).args(args);
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn serve");
        let mut stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let line = BufReader::new(stdout).lines().next_line().await.expect("read").expect("line");
        let announced = serde_json::from_str(&line).expect("announcement is JSON");
        Self { child, announced, log, drain }
    }

    fn url(&self) -> String {
        self.announced["url"].as_str().expect("url").to_owned()
    }

    /// SIGTERM, wait, and the whole log.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().await.expect("wait");
        assert!(exit.success(), "serve exited with {exit:?}");
        let _ = self.drain.await;
        String::from_utf8_lossy(&self.log.lock().expect("lock")).into_owned()
    }
}

/// Whether `haystack` holds any part of `secret` past its 12-character display prefix (which
/// is meant to be shown).
fn holds_secret(haystack: &str, secret: &str) -> bool {
    [&secret[12..24], &secret[24..36], &secret[30..42]].iter().any(|part| haystack.contains(part))
}

/// A CLI run: its arguments, environment and expected exit code.
type Command<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], i32);

/// One place output went, and the secrets it may show.
struct Exposure {
    what: String,
    text: String,
    allowed: Vec<String>,
}

async fn secrets_lifecycle(label: &str, serve_args: &[&str], vars: &[(&str, &str)]) -> usize {
    let env = TestEnv::new();
    let db = env.home.path().join("data").join("custory.db");
    let server = LoggedServer::start(&env, &db, serve_args, vars).await;
    let url = server.url();
    let owner = server.announced["owner_credential"].as_str().expect("owner").to_owned();
    let mut seen: Vec<Exposure> = Vec::new();
    let mut secrets: Vec<String> = vec![owner.clone()];
    let none: &[(&str, &str)] = &[];

    let run = async |args: &[&str], vars: &[(&str, &str)], stdin: &str, code: i32| -> Run {
        let ran = cli(&env, &url, args, vars, stdin).await;
        assert_eq!(ran.code, code, "{args:?}: {}{}", ran.stdout, ran.stderr);
        ran
    };
    let note = |seen: &mut Vec<Exposure>, what: String, text: String, allowed: &[&String]| {
        seen.push(Exposure { what, text, allowed: allowed.iter().map(|s| (*s).clone()).collect() });
    };

    // Keys through the CLI: the token is on stdout of `keys create` only.
    let ran =
        run(&["keys", "create", "--name", "Cursor", "--expires", "30d", "--save"], none, "", 0)
            .await;
    let cursor = ran.stdout.trim().to_owned();
    secrets.push(cursor.clone());
    note(&mut seen, "keys create stdout".into(), ran.stdout, &[&cursor]);
    note(&mut seen, "keys create stderr".into(), ran.stderr, &[]);
    let ran = run(
        &["--json", "keys", "create", "--name", "Other", "--expires", "never", "--save"],
        none,
        "",
        0,
    )
    .await;
    let other = serde_json::from_str::<Value>(&ran.stdout).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    secrets.push(other.clone());
    note(&mut seen, "--json keys create stdout".into(), ran.stdout, &[&other]);
    note(&mut seen, "--json keys create stderr".into(), ran.stderr, &[]);
    let ran =
        run(&["keys", "create", "--name", "Temp", "--expires", "90d", "--read-only"], none, "", 0)
            .await;
    let temp = ran.stdout.trim().to_owned();
    secrets.push(temp.clone());
    note(&mut seen, "keys create (unsaved) stdout".into(), ran.stdout, &[&temp]);
    note(&mut seen, "keys create (unsaved) stderr".into(), ran.stderr, &[]);

    let with_temp = [("CUSTORY_MCP_TOKEN", temp.as_str())];
    let commands: Vec<Command> = vec![
        (vec!["keys", "list"], none, 0),
        (vec!["--json", "keys", "list"], none, 0),
        (vec!["keys", "list", "--status", "active"], none, 0),
        (vec!["keys", "show", "Cursor"], none, 0),
        (vec!["--json", "keys", "show", "Other"], none, 0),
        (vec!["workspaces", "list"], none, 0),
        (vec!["--json", "workspaces", "list"], none, 0),
        (vec!["test", "--key", "Cursor"], none, 0),
        (vec!["--json", "test", "--key", "Other"], none, 0),
        (vec!["test"], &with_temp, 0),
        (vec!["test", "--curl"], &with_temp, 0),
        (vec!["config", "cursor"], &with_temp, 0),
        (vec!["config", "claude-code"], &with_temp, 0),
        (vec!["--json", "config", "vscode"], &with_temp, 0),
        (vec!["config", "codex", "--token-env", "MY_TOKEN"], &with_temp, 0),
    ];
    for (args, vars, code) in &commands {
        let ran = run(args, vars, "", *code).await;
        note(&mut seen, format!("{args:?} stdout"), ran.stdout, &[]);
        note(&mut seen, format!("{args:?} stderr"), ran.stderr, &[]);
    }
    // The user asking for the token in a config: allowed on stdout, nowhere else.
    let ran = run(&["config", "cursor", "--key", "Cursor", "--inline-token"], none, "", 0).await;
    assert!(ran.stdout.contains(&cursor), "--inline-token embeds the token");
    note(&mut seen, "config --inline-token stdout".into(), ran.stdout, &[&cursor]);
    note(&mut seen, "config --inline-token stderr".into(), ran.stderr, &[]);

    // MCP traffic, good and bad.
    let client = http();
    let mcp = format!("{url}/api/mcp");
    let mut typo = cursor.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let step = {
        let tree =
            call_ok(&client, &mcp, &cursor, "get_journey", json!({"journey": "trial-to-paid"}))
                .await;
        tree["stages"][0]["steps"][0]["id"].clone()
    };
    let good = [
        initialize_body(),
        rpc(json!(2), "tools/list", json!({})),
        tool_call(3, "get_workspace", json!({})),
        tool_call(
            4,
            "create_item",
            json!({"step_id": step, "kind": "insight", "title": "Logged?"}),
        ),
        tool_call(5, "search", json!({"query": "trial"})),
    ];
    for message in &good {
        let answer = post_json(&client, &mcp, &cursor, message).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        note(&mut seen, format!("MCP {} answer", message["method"]), answer.text(), &[]);
    }
    for presented in [typo.as_str(), &cursor[..30], owner.as_str(), "cst_", "Bearer"] {
        let answer = post_json(&client, &mcp, presented, &initialize_body()).await;
        assert_eq!(answer.status, 401);
        let shown = format!("{:?} {}", answer.www_authenticate, answer.text());
        note(&mut seen, "MCP 401 answer".into(), shown, &[]);
    }
    for presented in [&cursor, &owner[..30], &typo] {
        let response = client
            .get(format!("{url}/api/admin/workspaces"))
            .bearer_auth(presented)
            .send()
            .await
            .expect("get");
        assert!(matches!(response.status().as_u16(), 401 | 403));
        note(&mut seen, "admin refusal".into(), response.text().await.expect("text"), &[]);
    }

    // Rotation shows the new token once; revocation shows none.
    let ran = run(&["keys", "rotate", "Cursor", "--yes"], none, "", 0).await;
    let rotated = ran.stdout.trim().to_owned();
    assert!(rotated.starts_with("cst_") && rotated != cursor);
    secrets.push(rotated.clone());
    note(&mut seen, "keys rotate stdout".into(), ran.stdout, &[&rotated]);
    note(&mut seen, "keys rotate stderr".into(), ran.stderr, &[]);
    let ran = run(&["--json", "keys", "rotate", "Other", "--yes"], none, "", 0).await;
    let rotated_other = serde_json::from_str::<Value>(&ran.stdout).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    secrets.push(rotated_other.clone());
    note(&mut seen, "--json keys rotate stdout".into(), ran.stdout, &[&rotated_other]);
    note(&mut seen, "--json keys rotate stderr".into(), ran.stderr, &[]);
    let old_cursor = [("CUSTORY_MCP_TOKEN", cursor.as_str())];
    let bad_owner = [("CUSTORY_OWNER_TOKEN", typo.as_str())];
    let later: Vec<Command> = vec![
        (vec!["keys", "revoke", "Temp", "--yes"], none, 0),
        (vec!["--json", "keys", "revoke", "Other", "--yes"], none, 0),
        (vec!["test"], &with_temp, 1),
        (vec!["test"], &old_cursor, 1),
        (vec!["--json", "test"], &old_cursor, 1),
        (vec!["test", "--key", "Cursor"], none, 0),
        (vec!["audit"], none, 0),
        (vec!["--json", "audit"], none, 0),
        (vec!["audit", "--key", "Cursor"], none, 0),
        (vec!["--json", "keys", "list"], none, 0),
        (vec!["keys", "list"], &bad_owner, 1),
    ];
    for (args, vars, code) in &later {
        let ran = run(args, vars, "", *code).await;
        note(&mut seen, format!("{args:?} stdout"), ran.stdout, &[]);
        note(&mut seen, format!("{args:?} stderr"), ran.stderr, &[]);
    }
    // `login` with the wrong kind of token, a mistyped one, and the right one (fresh home).
    for (input, code) in [(cursor.as_str(), 1), (typo.as_str(), 1), (&owner[..30], 1)] {
        let ran = run(&["login", "--token-stdin"], none, &format!("{input}\n"), code).await;
        note(&mut seen, "login stdout".into(), ran.stdout, &[]);
        note(&mut seen, "login stderr".into(), ran.stderr, &[]);
    }
    let fresh = TestEnv::new();
    let ran = cli(&fresh, &url, &["login", "--token-stdin"], none, &format!("{owner}\n")).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    note(&mut seen, "login (fresh) stdout".into(), ran.stdout, &[]);
    note(&mut seen, "login (fresh) stderr".into(), ran.stderr, &[]);

    // The database files while the server runs (WAL not yet checkpointed), then after.
    let mut db_bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        db_bytes.extend(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    let log = server.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        db_bytes.extend(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    assert!(
        ["TRACE", "DEBUG", "INFO"].iter().any(|level| log.contains(level)),
        "{label}: the log was verbose: {log}"
    );
    eprintln!("security secrets: {label}: the server wrote {} log lines", log.lines().count());
    note(&mut seen, "server log".into(), log, &[]);
    note(&mut seen, "database files".into(), String::from_utf8_lossy(&db_bytes).into_owned(), &[]);

    for exposure in &seen {
        for secret in &secrets {
            if exposure.allowed.contains(secret) {
                continue;
            }
            assert!(
                !holds_secret(&exposure.text, secret),
                "{label}: {} holds a token ({}…)",
                exposure.what,
                &secret[..12]
            );
        }
    }
    seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_appear_only_where_they_are_shown() {
    let (verbose, traced) = tokio::join!(
        secrets_lifecycle("serve -vvv", &["-vvv"], &[]),
        secrets_lifecycle("CUSTORY_LOG=trace", &[], &[("CUSTORY_LOG", "trace")]),
    );
    eprintln!(
        "security secrets: {} outputs checked (CLI stdout and stderr, MCP and admin answers, \
         server log, database files) under -vvv and {} under CUSTORY_LOG=trace",
        verbose, traced
    );
}

/// The same DNS-rebinding rule on the real binary, where `serve` derives the allowed names
/// from the address it listens on (and `--allow-host` adds one).
#[tokio::test]
async fn the_real_server_refuses_foreign_hosts_on_loopback() {
    let env = TestEnv::new();
    let db = env.home.path().join("data").join("custory.db");
    let server = LoggedServer::start(&env, &db, &["--allow-host", "custory.internal"], &[]).await;
    let url = server.url();
    let owner = server.announced["owner_credential"].as_str().expect("owner").to_owned();
    let created: Value = http()
        .post(format!("{url}/api/admin/workspaces/acme/mcp-keys"))
        .bearer_auth(&owner)
        .json(&json!({"name": "Host check", "expires": "never"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token");
    let addr = addr_of(&url);
    let port = addr.rsplit(':').next().expect("port").to_owned();
    let ping = serde_json::to_vec(&rpc(json!(1), "ping", json!({}))).expect("json");
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        ("custory.internal".to_owned(), 200),
        ("evil.example".to_owned(), 403),
        (format!("evil.example:{port}"), 403),
        (format!("custory.internal.evil.example:{port}"), 403),
    ] {
        let mut request = format!(
            "POST /api/mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: {ACCEPT}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            ping.len()
        )
        .into_bytes();
        request.extend_from_slice(&ping);
        let outcome = raw_exchange(&addr, request, false).await;
        assert_eq!(outcome.status(), Some(status), "Host {host:?}: {outcome:?}");
    }
    server.stop().await;
}
