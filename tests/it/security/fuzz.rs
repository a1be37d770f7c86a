//! Fuzzing. proptest strategies are driven by a `TestRunner` inside the async tests (no nested
//! runtime), with proptest's own shrinking on failure; every case is one POST to `/api/mcp`.
//! `CUSTORY_FUZZ_SEED=N` replays a run; each test prints its case count.
//!
//! The tools fuzzed, their parameters and which are required come from `tools/list` (of a
//! read-write key): a new tool is fuzzed the day it is listed. Plausible values come from
//! what the workspace holds (ids by kind) and from each parameter's JSON Schema.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

use super::lenient_server;
use super::wellformed::{check_answer, check_tool_result};
use crate::common::{Key, initialize_body, rpc, tool_call};

const VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

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

/// POSTs `body` as a conforming client would, speaking `version` when given; a dropped
/// connection is an `Err` (for the fuzzer to shrink and report).
async fn post(
    key: &Key,
    body: Vec<u8>,
    version: Option<&str>,
) -> Result<crate::common::Reply, String> {
    let call = match version {
        Some(version) => key.with_version(version).post_bytes(body),
        None => key.post_bytes(body),
    };
    call.try_send().await.map_err(|e| format!("no answer: {e:?}"))
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

/// `params` as a client might send them, often right, often not; `tools` are the names
/// `tools/list` gave.
fn params(tools: &[String]) -> BoxedStrategy<Value> {
    let key = prop_oneof![
        4 => prop::sample::select(&[
            "protocolVersion", "capabilities", "clientInfo", "name", "arguments", "cursor",
            "requestId", "_meta",
        ][..]).prop_map(str::to_owned),
        1 => text(),
    ];
    let value = prop_oneof![
        2 => prop::sample::select(tools.to_vec()).prop_map(Value::from),
        2 => prop::sample::select(&VERSIONS[..]).prop_map(Value::from),
        1 => Just(json!({"name": "fuzz", "version": "0"})),
        4 => json_value(),
    ];
    prop::collection::btree_map(key, value, 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// A JSON-RPC message, mostly well-framed, with every member sometimes wrong or missing.
fn message(tools: &[String]) -> BoxedStrategy<Value> {
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
        5 => params(tools).prop_map(Some),
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

#[tokio::test]
async fn fuzzed_json_bodies_always_get_a_well_formed_answer() {
    let server = lenient_server().await;
    let key = server.owner().create_key("Fuzzer", "never", "read-write").await;
    let tools = key.tool_names().await;

    let body = prop_oneof![
        3 => json_value(),
        5 => message(&tools),
        2 => prop::collection::vec(message(&tools), 0..5).prop_map(Value::Array),
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
            let key = &key;
            async move {
                let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
                let size = bytes.len();
                let answer = post(key, bytes, version).await?;
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
    let key = server.owner().create_key("Fuzzer", "never", "read-write").await;

    // Raw bytes, and real messages with bytes flipped, cut, or spliced in.
    let valid = prop::sample::select(vec![
        serde_json::to_vec(&initialize_body()).expect("json"),
        serde_json::to_vec(&rpc(1, "tools/list", json!({}))).expect("json"),
        serde_json::to_vec(&tool_call(2, "search", json!({"query": "trial"}))).expect("json"),
        serde_json::to_vec(&json!([rpc(3, "ping", json!({}))])).expect("json"),
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
        let key = &key;
        async move {
            let sent: Option<Value> = serde_json::from_slice(&body).ok();
            let answer = post(key, body, None).await?;
            check_answer(&answer, sent.as_ref(), None)
        }
    })
    .await;
    assert_eq!(cases, 2000);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The tools, as `tools/list` describes them.

/// A tool's parameter: its name, its JSON Schema, whether the tool needs it.
#[derive(Debug, Clone)]
struct Parameter {
    name: String,
    schema: Value,
    required: bool,
}

/// The parameters of a tool, from its `inputSchema`.
fn parameters(tool: &Value) -> Vec<Parameter> {
    let schema = &tool["inputSchema"];
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|properties| {
            properties
                .iter()
                .map(|(name, schema)| Parameter {
                    name: name.clone(),
                    schema: schema.clone(),
                    required: required.contains(&name.as_str()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Ids, slugs and names of the workspace, by what they are, so fuzzed arguments often reach
/// past argument parsing into the store.
#[derive(Debug, Clone, Default)]
struct Vocabulary {
    journeys: Vec<Value>,
    stages: Vec<Value>,
    steps: Vec<Value>,
    items: Vec<Value>,
    owners: Vec<Value>,
    personas: Vec<Value>,
}

/// What the workspace holds now (archived things too: `restore` wants them), read through the
/// tools: the first page of journeys, each journey's map, the personas.
async fn vocabulary(key: &Key) -> Vocabulary {
    let mut words = Vocabulary::default();
    let everything = json!({"include_archived": true});
    let journeys = key.ok("list_journeys", everything.clone()).await;
    for journey in journeys["journeys"].as_array().expect("journeys") {
        words.journeys.extend([journey["id"].clone(), journey["slug"].clone()]);
        let tree = key
            .ok("get_journey", json!({"journey": journey["id"], "include_archived": true}))
            .await;
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
    words.owners.sort_by_key(Value::to_string);
    words.owners.dedup();
    let personas = key.ok("list_personas", json!({})).await;
    for persona in personas["personas"].as_array().expect("personas") {
        words.personas.push(persona["id"].clone());
    }
    words
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

/// A value `schema` allows, or nearly: what its type suggests, its enum, its bounds and a
/// little past them.
fn by_schema(schema: &Value) -> BoxedStrategy<Value> {
    if let Some(values) = schema["enum"].as_array().filter(|v| !v.is_empty()) {
        return prop::sample::select(values.clone()).boxed();
    }
    match schema["type"].as_str() {
        Some("integer") => {
            let low = schema["minimum"].as_i64().unwrap_or(0) - 1;
            let high = schema["maximum"].as_i64().unwrap_or(100) + 100;
            (low..=high).prop_map(Value::from).boxed()
        }
        Some("boolean") => any::<bool>().prop_map(Value::from).boxed(),
        Some("array") => {
            prop::collection::vec("[A-Za-z0-9 ,.'-]{1,40}".prop_map(Value::from), 0..4)
                .prop_map(Value::Array)
                .boxed()
        }
        Some("object") => prop::collection::btree_map(text(), json_leaf(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
            .boxed(),
        _ => prop_oneof![
            4 => "[A-Za-z0-9 ,.'%_-]{1,60}".prop_map(Value::from),
            1 => text().prop_map(Value::from),
        ]
        .boxed(),
    }
}

/// A value for `parameter`: usually a plausible one (an id of the right kind, a known owner,
/// or what its schema allows), sometimes anything at all.
fn argument(parameter: &Parameter, words: &Vocabulary) -> BoxedStrategy<Value> {
    let pick = |values: &[Value]| {
        if values.is_empty() {
            by_schema(&parameter.schema)
        } else {
            prop::sample::select(values.to_vec()).boxed()
        }
    };
    let plausible: BoxedStrategy<Value> = match parameter.name.as_str() {
        "journey" => pick(&words.journeys),
        "stage_id" => pick(&words.stages),
        "step_id" => pick(&words.steps),
        "item_id" | "from_item_id" | "to_item_id" => pick(&words.items),
        "persona_id" => pick(&words.personas),
        "id" => {
            let all: Vec<Value> = [&words.journeys, &words.stages, &words.steps, &words.items]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            pick(&all)
        }
        "status" => prop::sample::select(STATUSES).prop_map(Value::from).boxed(),
        "owner" | "author" => {
            prop_oneof![pick(&words.owners), text().prop_map(Value::from)].boxed()
        }
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
        _ => by_schema(&parameter.schema),
    };
    prop_oneof![10 => plausible, 1 => json_value()].boxed()
}

/// `arguments` for a tool with `parameters`: each present or not (a required one nearly
/// always), sometimes an unknown one, and now and then no object at all.
fn tool_arguments(parameters: &[Parameter], words: &Vocabulary) -> BoxedStrategy<Option<Value>> {
    let present: Vec<BoxedStrategy<Option<(String, Value)>>> = parameters
        .iter()
        .map(|parameter| {
            let name = parameter.name.clone();
            let chance = if parameter.required { 0.95 } else { 0.4 };
            prop::option::weighted(chance, argument(parameter, words))
                .prop_map(move |v| v.map(|v| (name.clone(), v)))
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

/// What the fuzzing saw: each tool's successes and error results, and the arguments of every
/// success by the names of the parameters its tool takes.
#[derive(Debug, Default)]
struct Seen {
    outcomes: BTreeMap<String, (u32, u32)>,
    worked: BTreeMap<BTreeSet<String>, Vec<Value>>,
}

type Outcomes = Arc<Mutex<Seen>>;

/// `cases` fuzzed calls of `tool`, with arguments drawn from what the workspace holds now, and
/// now and then arguments that worked for a tool taking the same parameters: what undoes a
/// success takes the same arguments (unlink after link, restore after archive), so the
/// undoing tool is fuzzed past "nothing to do" without anyone naming the pair.
async fn fuzz_tool(key: &Key, tool: &Value, cases: u32, outcomes: &Outcomes) -> u32 {
    let name = tool["name"].as_str().expect("a tool's name").to_owned();
    let parameters = parameters(tool);
    let names: BTreeSet<String> = parameters.iter().map(|p| p.name.clone()).collect();
    let drawn = tool_arguments(&parameters, &vocabulary(key).await);
    let worked = outcomes.lock().expect("lock").worked.get(&names).cloned().unwrap_or_default();
    let strategy = if worked.is_empty() {
        drawn
    } else {
        prop_oneof![4 => drawn, 1 => prop::sample::select(worked).prop_map(Some)].boxed()
    };
    fuzz(&format!("tools/call {name}"), cases, strategy, |arguments| {
        let (name, names) = (name.clone(), names.clone());
        async move {
            let mut params = json!({"name": name});
            if let Some(arguments) = &arguments {
                params["arguments"] = arguments.clone();
            }
            let request = rpc(7, "tools/call", params);
            let bytes = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
            let answer = post(key, bytes, None).await?;
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
            let mut seen = outcomes.lock().expect("lock");
            let entry = seen.outcomes.entry(name).or_default();
            if is_error {
                entry.1 += 1;
            } else {
                entry.0 += 1;
                seen.worked.entry(names).or_default().extend(arguments);
            }
            Ok(())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_tool_arguments_never_cause_an_internal_error() {
    let server = lenient_server().await;
    let key = server.owner().create_key("Fuzzer", "never", "read-write").await;
    let tools = key.tools().await;
    assert!(tools.len() > 11, "tools/list offers every tool: {}", tools.len());
    let words = vocabulary(&key).await;
    assert!(words.items.len() >= 20, "the demo workspace gives ids to fuzz with");

    const PER_TOOL: u32 = 200;
    let outcomes = Outcomes::default();
    let mut total = 0;
    for tool in &tools {
        total += fuzz_tool(&key, tool, PER_TOOL, &outcomes).await;
    }
    // A tool whose success needs what another makes (unlink after link, restore after archive)
    // gets a second round once every tool has run.
    let succeeded = |tool: &Value| {
        let seen = outcomes.lock().expect("lock");
        let name = tool["name"].as_str().unwrap_or_default();
        seen.outcomes.get(name).is_some_and(|(ok, _)| *ok > 0)
    };
    let again: Vec<&Value> = tools.iter().filter(|tool| !succeeded(tool)).collect();
    for tool in &again {
        total += fuzz_tool(&key, tool, PER_TOOL, &outcomes).await;
    }
    let outcomes = outcomes.lock().expect("lock").outcomes.clone();
    eprintln!("security fuzz: tools/call outcomes (ok, isError) per tool: {outcomes:?}");
    let rounds = u32::try_from(tools.len() + again.len()).expect("a few tools");
    assert_eq!(total, PER_TOOL * rounds);
    // The fuzzing reached past argument parsing: every tool succeeded at least once.
    for tool in &tools {
        assert!(succeeded(tool), "{} never succeeded: {outcomes:?}", tool["name"]);
    }
    server.store.integrity_check().expect("the database is intact");
    server.stop().await;
}
