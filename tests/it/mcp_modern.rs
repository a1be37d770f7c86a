//! The stateless revision (2026-07-28) as its text has it, and resources, prompts and argument
//! completion in both eras: what a request must carry, what every result carries, and what a
//! key may see. Real clients speak both eras in `conformance.rs`; this pins the rules.

use base64::Engine as _;
use serde_json::{Value, json};

use custory_mcp::server::{Rate, ServerConfig};

use crate::common::{Key, TestServer, initialize_body, rpc, tool_call};

const MODERN: &str = "2026-07-28";

/// A request of the modern era: `_meta` in the body, the mirrored headers set from it unless
/// `headers` says otherwise (`None` leaves a header out).
pub(crate) struct Modern {
    key: Key,
}

impl Modern {
    pub(crate) fn new(key: &Key) -> Self {
        Self { key: key.with_version(MODERN) }
    }

    fn body(method: &str, mut params: Value) -> Value {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "it-modern", "version": "1"},
        });
        rpc(7, method, params)
    }

    /// Posts `body` with `Mcp-Method: method` and, when given, `Mcp-Name`.
    async fn raw(&self, method: Option<&str>, name: Option<&str>, body: &Value) -> (u16, Value) {
        let mut call = self.key.post(body);
        if let Some(method) = method {
            call = call.header("mcp-method", method);
        }
        if let Some(name) = name {
            call = call.header("mcp-name", name);
        }
        let reply = call.send().await;
        (reply.status, reply.json())
    }

    /// A conforming request: headers mirror the body.
    async fn send(&self, method: &str, params: Value) -> (u16, Value) {
        let name = params.get("name").or_else(|| params.get("uri")).and_then(Value::as_str);
        let name =
            name.filter(|_| matches!(method, "tools/call" | "prompts/get" | "resources/read"));
        let name = name.map(str::to_owned);
        self.raw(Some(method), name.as_deref(), &Self::body(method, params)).await
    }

    pub(crate) async fn result(&self, method: &str, params: Value) -> Value {
        let (status, reply) = self.send(method, params.clone()).await;
        assert_eq!(status, 200, "{method} {params}: {reply}");
        assert_eq!(reply["result"]["resultType"], "complete", "{method}: {reply}");
        assert_eq!(
            reply["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "custory-mcp",
            "{method}: {reply}"
        );
        reply["result"].clone()
    }
}

#[tokio::test]
async fn the_stateless_revision_is_served_with_discovery_and_its_result_members() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("modern", "30d", "read-write").await;
    let modern = Modern::new(&key);

    let discovered = modern.result("server/discover", json!({})).await;
    assert_eq!(
        discovered["supportedVersions"],
        json!(["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"])
    );
    assert_eq!(
        discovered["capabilities"],
        json!({"tools": {}, "resources": {}, "prompts": {}, "completions": {},
               "extensions": {"io.modelcontextprotocol/ui": {}}})
    );
    assert!(discovered["instructions"].as_str().is_some_and(|t| t.contains("\"acme\"")));
    assert_eq!(discovered["cacheScope"], "private");
    assert!(discovered["ttlMs"].as_u64().is_some());

    // The lists carry caching hints; workspace content is never fresh for long.
    for (method, ttl, scope) in [
        ("tools/list", 300_000, "private"),
        ("prompts/list", 300_000, "private"),
        ("resources/templates/list", 300_000, "public"),
        ("resources/list", 0, "private"),
    ] {
        let result = modern.result(method, json!({})).await;
        assert_eq!(
            (result["ttlMs"].as_u64(), result["cacheScope"].as_str()),
            (Some(ttl), Some(scope)),
            "{method}"
        );
    }
    // The same tools as in the handshake era.
    let tools = modern.result("tools/list", json!({})).await;
    assert_eq!(tools["tools"].as_array().map(Vec::len), Some(key.tools().await.len()));

    let call = modern.result("tools/call", json!({"name": "list_journeys", "arguments": {}})).await;
    assert_eq!(call["isError"], false, "{call}");
    assert_eq!(call["structuredContent"]["journeys"][0]["slug"], "trial-to-paid");
    assert!(call.get("ttlMs").is_none(), "a tool result is not cacheable: {call}");

    // A name outside plain ASCII travels base64-encoded and is decoded before the comparison.
    let body = Modern::body("tools/call", json!({"name": "get_workspace", "arguments": {}}));
    let encoded =
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode("get_workspace"));
    let (status, reply) = modern.raw(Some("tools/call"), Some(&encoded), &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"]["isError"], false, "{reply}");

    server.stop().await;
}

#[tokio::test]
async fn requests_breaking_the_revision_are_refused_with_its_statuses_and_codes() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("modern", "30d", "read-write").await;
    let modern = Modern::new(&key);
    let call = Modern::body("tools/call", json!({"name": "get_workspace", "arguments": {}}));
    let mut no_meta = call.clone();
    no_meta["params"].as_object_mut().expect("params").remove("_meta");
    let mut other_version = call.clone();
    other_version["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] =
        json!("2025-11-25");
    let mut no_capabilities = call.clone();
    no_capabilities["params"]["_meta"]
        .as_object_mut()
        .expect("meta")
        .remove("io.modelcontextprotocol/clientCapabilities");
    let batch = json!([call.clone(), call.clone()]);
    // What is wrong, Mcp-Method, Mcp-Name, the body, and the status and code it gets.
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a Value, u16, i64);
    let cases: Vec<Case> = vec![
        ("no Mcp-Method", None, Some("get_workspace"), &call, 400, -32020),
        ("another Mcp-Method", Some("tools/list"), Some("get_workspace"), &call, 400, -32020),
        ("no Mcp-Name", Some("tools/call"), None, &call, 400, -32020),
        ("another Mcp-Name", Some("tools/call"), Some("search"), &call, 400, -32020),
        ("a broken base64 name", Some("tools/call"), Some("=?base64?%%%?="), &call, 400, -32020),
        ("no _meta", Some("tools/call"), Some("get_workspace"), &no_meta, 400, -32602),
        (
            "_meta of another version",
            Some("tools/call"),
            Some("get_workspace"),
            &other_version,
            400,
            -32020,
        ),
        (
            "no client capabilities",
            Some("tools/call"),
            Some("get_workspace"),
            &no_capabilities,
            400,
            -32602,
        ),
        ("a batch", Some("tools/call"), Some("get_workspace"), &batch, 400, -32600),
    ];
    for (what, method, name, body, status, code) in cases {
        let (got, reply) = modern.raw(method, name, body).await;
        assert_eq!((got, reply["error"]["code"].as_i64()), (status, Some(code)), "{what}: {reply}");
        assert!(reply["error"]["message"].as_str().is_some_and(|m| m.len() > 20), "{what}");
    }
    // Methods the revision does not have (the handshake, ping) and unknown ones: 404, -32601.
    for method in ["initialize", "ping", "no/such/method", "resources/subscribe"] {
        let (status, reply) = modern.send(method, json!({})).await;
        assert_eq!(
            (status, reply["error"]["code"].as_i64()),
            (404, Some(-32601)),
            "{method}: {reply}"
        );
        assert_eq!(reply["id"], 7, "{reply}");
    }
    // A version nobody speaks: 400, -32022, with what this server speaks.
    let reply = key.with_version("2099-01-01").post(&call).expect(400).await;
    assert_eq!(reply["error"]["code"].as_i64(), Some(-32022), "{reply}");
    assert_eq!(reply["error"]["data"]["requested"], "2099-01-01");
    assert_eq!(reply["error"]["data"]["supported"][0], MODERN);

    // `initialize` asking for the stateless revision is answered with the newest handshake
    // version: answering 2026-07-28 there would switch clients such as rmcp to per-request
    // metadata on a session they began with a handshake.
    let mut initialize = initialize_body();
    initialize["params"]["protocolVersion"] = json!(MODERN);
    let reply = key.post(&initialize).expect(200).await;
    assert_eq!(reply["result"]["protocolVersion"], "2025-11-25", "{reply}");

    // A resource that does not exist is -32602 in this revision, -32002 before it.
    let (status, reply) =
        modern.send("resources/read", json!({"uri": "custory://journeys/nope"})).await;
    assert_eq!((status, reply["error"]["code"].as_i64()), (200, Some(-32602)), "{reply}");
    let legacy = key.with_version("2025-11-25");
    let reply = legacy.rpc("resources/read", json!({"uri": "custory://journeys/nope"})).await;
    assert_eq!(reply["error"]["code"], -32002, "{reply}");
    let reply = legacy.rpc("resources/read", json!({"uri": "file:///etc/passwd"})).await;
    assert_eq!(reply["error"]["code"], -32002, "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn journeys_are_resources_paged_and_read_in_both_eras() {
    let server = TestServer::start().await;
    let mcp = server.owner().create_key("resources", "30d", "read-write").await;
    // 2 demo journeys + 58: two pages of 50.
    let made: Vec<(&str, Value)> =
        (0..58).map(|n| ("create_journey", json!({"name": format!("Journey {n:02}")}))).collect();
    mcp.batch(&made).await;
    mcp.ok("archive", json!({"id": "journey-57"})).await;
    let modern = Modern::new(&mcp);

    let first = modern.result("resources/list", json!({})).await;
    let page = first["resources"].as_array().expect("resources");
    assert_eq!(page.len(), 50);
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let second = modern.result("resources/list", json!({"cursor": cursor})).await;
    assert!(second.get("nextCursor").is_none(), "{second}");
    let all: Vec<&Value> =
        page.iter().chain(second["resources"].as_array().expect("page 2")).collect();
    assert_eq!(all.len(), 59, "60 journeys, one archived");
    assert!(all.iter().all(|r| r["uri"] != "custory://journeys/journey-57"));
    assert_eq!(all[0]["uri"], "custory://journeys/trial-to-paid");
    assert_eq!(all[0]["mimeType"], "text/markdown");
    assert_eq!(all[0]["title"], "Trial to paid");
    let (status, bad) = modern.send("resources/list", json!({"cursor": "bogus"})).await;
    assert_eq!((status, bad["error"]["code"].as_i64()), (200, Some(-32602)), "{bad}");

    // The map: stages, steps, items and their links, the same in both eras.
    let read =
        modern.result("resources/read", json!({"uri": "custory://journeys/trial-to-paid"})).await;
    assert_eq!((read["ttlMs"].as_u64(), read["cacheScope"].as_str()), (Some(0), Some("private")));
    let content = &read["contents"][0];
    assert_eq!(content["uri"], "custory://journeys/trial-to-paid");
    assert_eq!(content["mimeType"], "text/markdown");
    let map = content["text"].as_str().expect("text");
    let tree = mcp.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    for stage in tree["stages"].as_array().expect("stages") {
        assert!(
            map.contains(&format!(
                "{} ({})",
                stage["name"].as_str().expect("name"),
                stage["id"].as_str().expect("id")
            )),
            "{stage} in {map}"
        );
        for step in stage["steps"].as_array().expect("steps") {
            for item in step["items"].as_array().expect("items") {
                assert!(map.contains(item["id"].as_str().expect("id")), "{item} in the map");
            }
        }
    }
    assert!(map.contains("  - links to **insight**"), "links are shown: {map}");
    let old = mcp
        .with_version("2025-11-25")
        .rpc("resources/read", json!({"uri": "custory://journeys/trial-to-paid"}))
        .await;
    assert_eq!(old["result"]["contents"][0]["text"], content["text"]);
    assert!(old["result"].get("resultType").is_none(), "the handshake era has no resultType");

    // An item through the template.
    let templates = modern.result("resources/templates/list", json!({})).await;
    let uris: Vec<&str> = templates["resourceTemplates"]
        .as_array()
        .expect("templates")
        .iter()
        .filter_map(|t| t["uriTemplate"].as_str())
        .collect();
    assert_eq!(uris, ["custory://journeys/{journey}", "custory://items/{item_id}"]);
    let insight = mcp.ok("list_items", json!({"kind": "insight", "limit": 1})).await;
    let id = insight["items"][0]["id"].as_str().expect("id");
    let item =
        modern.result("resources/read", json!({"uri": format!("custory://items/{id}")})).await;
    let text = item["contents"][0]["text"].as_str().expect("text");
    assert!(
        text.starts_with(&format!("# {}", insight["items"][0]["title"].as_str().expect("title"))),
        "{text}"
    );
    assert!(text.contains("## Links to") && text.contains("## Linked from"), "{text}");

    // A big step: the map shows the first items and says how to get the rest, within bounds.
    let step = insight["items"][0]["step_id"].as_str().expect("step");
    let many: Vec<(&str, Value)> = (0..300)
        .map(|n| ("create_item", json!({"step_id": step, "kind": "touchpoint",
            "title": format!("Touchpoint {n} {}", "x".repeat(150)), "description": "d".repeat(2000)})))
        .collect();
    for chunk in many.chunks(150) {
        mcp.batch(chunk).await;
    }
    let slug = insight["items"][0]["journey"].as_str().map(|_| "trial-to-paid").expect("journey");
    let big =
        modern.result("resources/read", json!({"uri": format!("custory://journeys/{slug}")})).await;
    let text = big["contents"][0]["text"].as_str().expect("text");
    assert!(text.len() <= 256 * 1024, "{} bytes", text.len());
    assert!(
        text.contains(&format!("more items on this step (list_items with step_id {step})")),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn prompts_expand_into_instructions_with_the_map_and_complete_their_arguments() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let writer = owner.create_key("writer", "30d", "read-write").await;
    let reader = owner.create_key("reader", "30d", "read-only").await;
    let modern = Modern::new(&writer);
    let names = |list: &Value| -> Vec<String> {
        list["prompts"]
            .as_array()
            .expect("prompts")
            .iter()
            .map(|p| p["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let listed = modern.result("prompts/list", json!({})).await;
    assert_eq!(names(&listed), ["review_stage", "notes_to_insights", "summarise_changes"]);
    let review = &listed["prompts"][0];
    assert_eq!(
        review["arguments"],
        json!([
        {"name": "journey", "description": "The journey: its slug or id.", "required": true},
        {"name": "stage", "description": "A stage of the journey: its name or id.", "required": true}])
    );

    let got = modern
        .result(
            "prompts/get",
            json!({"name": "review_stage",
        "arguments": {"journey": "trial-to-paid", "stage": "activate"}}),
        )
        .await;
    let text = got["messages"][0]["content"]["text"].as_str().expect("text");
    assert_eq!(got["messages"][0]["role"], "user");
    assert!(text.contains("get_item") && text.contains("search"), "it uses the tools: {text}");
    assert!(
        text.contains("## 3. Activate") && text.contains("Installs the tracking SDK"),
        "{text}"
    );
    assert!(!text.contains("## 1. Discover"), "only the stage asked for: {text}");

    let notes = modern
        .result(
            "prompts/get",
            json!({"name": "notes_to_insights", "arguments": {
        "journey": "trial-to-paid", "stage": "Activate", "step": "installs the tracking sdk",
        "notes": "Ticket 4411: customer could not find the write key."}}),
        )
        .await;
    let text = notes["messages"][0]["content"]["text"].as_str().expect("text");
    assert!(text.contains("create_item") && text.contains("Ticket 4411"), "{text}");

    let changes = modern
        .result(
            "prompts/get",
            json!({"name": "summarise_changes",
        "arguments": {"journey": "trial-to-paid", "since": "24h"}}),
        )
        .await;
    let text = changes["messages"][0]["content"]["text"].as_str().expect("text");
    assert!(text.contains("## Items added or changed (15, newest first)"), "{text}");

    // Mistakes say what there is.
    for (arguments, says) in [
        (json!({"journey": "trial-to-paid"}), "needs the argument \"stage\""),
        (json!({"journey": "trial-to-paid", "stage": "Nope"}), "its stages are \"Discover\""),
        (json!({"journey": "nope", "stage": "Activate"}), "no journey with id or slug"),
        (
            json!({"journey": "trial-to-paid", "stage": "Activate", "mood": "x"}),
            "takes no argument \"mood\"",
        ),
    ] {
        let (status, reply) = modern
            .send("prompts/get", json!({"name": "review_stage", "arguments": arguments}))
            .await;
        assert_eq!((status, reply["error"]["code"].as_i64()), (200, Some(-32602)), "{reply}");
        assert!(
            reply["error"]["message"].as_str().is_some_and(|m| m.contains(says)),
            "{says}: {reply}"
        );
    }
    let long = "n".repeat(20_001);
    let (_, reply) = modern.send("prompts/get", json!({"name": "notes_to_insights", "arguments": {
        "journey": "trial-to-paid", "stage": "Activate", "step": "Installs the tracking SDK", "notes": long}})).await;
    assert!(
        reply["error"]["message"].as_str().is_some_and(|m| m.contains("paste them in parts")),
        "{reply}"
    );

    // Completion: journeys by slug or name, stages within the journey, steps within the stage.
    let complete = |name: &str, value: &str, context: Value| {
        json!({"ref": {"type": "ref/prompt", "name": "notes_to_insights"},
               "argument": {"name": name, "value": value}, "context": {"arguments": context}})
    };
    for (params, values) in [
        (complete("journey", "", json!({})), json!(["trial-to-paid", "support-escalation"])),
        (complete("journey", "Sup", json!({})), json!(["support-escalation"])),
        (
            complete("stage", "", json!({"journey": "trial-to-paid"})),
            json!(["Discover", "Sign up", "Activate", "Convert"]),
        ),
        (complete("stage", "a", json!({"journey": "trial-to-paid"})), json!(["Activate"])),
        (
            complete("step", "", json!({"journey": "trial-to-paid", "stage": "Activate"})),
            json!([
                "Installs the tracking SDK",
                "Connects the data warehouse",
                "Builds the first dashboard"
            ]),
        ),
        (complete("step", "%", json!({"journey": "trial-to-paid"})), json!([])),
        (complete("notes", "Tick", json!({})), json!([])),
        (
            json!({"ref": {"type": "ref/prompt", "name": "summarise_changes"}, "argument": {"name": "since", "value": "3"}}),
            json!(["30d"]),
        ),
        (
            json!({"ref": {"type": "ref/resource", "uri": "custory://journeys/{journey}"}, "argument": {"name": "journey", "value": "tr"}}),
            json!(["trial-to-paid"]),
        ),
    ] {
        let result = modern.result("completion/complete", params.clone()).await;
        assert_eq!(result["completion"]["values"], values, "{params}");
        assert_eq!(result["completion"]["hasMore"], false);
    }

    // A read-only key reads, but is neither offered nor given the prompt that writes.
    let modern = Modern::new(&reader);
    let listed = modern.result("prompts/list", json!({})).await;
    assert_eq!(names(&listed), ["review_stage", "summarise_changes"]);
    let (_, reply) =
        modern.send("prompts/get", json!({"name": "notes_to_insights", "arguments": {}})).await;
    assert!(reply["error"]["message"].as_str().is_some_and(|m| m.contains("read-only")), "{reply}");
    let (_, reply) = modern.send("completion/complete", complete("journey", "", json!({}))).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let read =
        modern.result("resources/read", json!({"uri": "custory://journeys/trial-to-paid"})).await;
    assert!(read["contents"][0]["text"].as_str().is_some_and(|t| t.starts_with("# Trial to paid")));
    server.stop().await;
}

#[tokio::test]
async fn a_prompt_carrying_a_large_stage_keeps_the_ceiling_of_every_answer() {
    // A stage of six steps of ten items, each linked to ten others, with the longest titles:
    // about 170 kB of map, more than a prompt may carry.
    let fast = Rate { per_second: 10_000, burst: 10_000 };
    let config = ServerConfig { key_requests: fast, key_writes: fast, ..ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let mcp = server.owner().create_key("writer", "30d", "read-write").await;
    let journey = mcp.ok("create_journey", json!({"name": "Großer Weg"})).await;
    let slug = journey["slug"].as_str().expect("slug").to_owned();
    let stage = mcp.ok("create_stage", json!({"journey": slug, "name": "Alles"})).await;
    let stage_id = stage["id"].as_str().expect("stage id");
    let title = |n: usize| format!("{n:03} {}", "t".repeat(196));
    let steps = mcp
        .batch(
            &(0..7)
                .map(|n| {
                    ("create_step", json!({"stage_id": stage_id, "name": format!("Step {n}")}))
                })
                .collect::<Vec<_>>(),
        )
        .await;
    let step_id = |n: usize| steps[n]["id"].as_str().expect("step id").to_owned();
    let item = |step: usize, kind: &str, n: usize| {
        ("create_item", json!({"step_id": step_id(step), "kind": kind, "title": title(n)}))
    };
    let insights: Vec<Value> =
        mcp.batch(&(0..10).map(|n| item(6, "insight", n)).collect::<Vec<_>>()).await;
    let touchpoints =
        mcp.batch(&(0..60).map(|n| item(n / 10, "touchpoint", n)).collect::<Vec<_>>()).await;
    let links: Vec<(&str, Value)> = touchpoints
        .iter()
        .flat_map(|from| {
            insights.iter().map(move |to| {
                ("link_items", json!({"from_item_id": from["id"], "to_item_id": to["id"]}))
            })
        })
        .collect();
    for chunk in links.chunks(200) {
        mcp.batch(chunk).await;
    }
    let modern = Modern::new(&mcp);
    let got = modern
        .result(
            "prompts/get",
            json!({"name": "review_stage", "arguments": {"journey": slug, "stage": "Alles"}}),
        )
        .await;
    let text = got["messages"][0]["content"]["text"].as_str().expect("text");
    assert!(text.len() <= 256 * 1024, "{} bytes", text.len());
    assert!(text.starts_with("Review the stage \"Alles\""), "the instructions are whole");
    assert!(text.contains("## 1. Alles"), "the stage is there");
    assert!(
        text.ends_with("page through it.\n"),
        "the map is cut and says so: {} bytes, ends {:?}",
        text.len(),
        &text[text.len() - 300..]
    );

    // Completion matches what was typed whatever its letters: the journey's name begins "Groß".
    let complete = json!({"ref": {"type": "ref/prompt", "name": "review_stage"},
                          "argument": {"name": "journey", "value": "Groß"}});
    let result = modern.result("completion/complete", complete).await;
    assert_eq!(result["completion"]["values"], json!([slug]), "{result}");

    // The mirrored headers, sent twice, are refused; in the handshake era nobody reads them.
    let call = Modern::body("tools/call", json!({"name": "get_workspace", "arguments": {}}));
    let reply = modern
        .key
        .post(&call)
        .header("mcp-method", "tools/call")
        .header("mcp-method", "tools/list")
        .header("mcp-name", "get_workspace")
        .expect(400)
        .await;
    assert_eq!(reply["error"]["code"], -32020, "{reply}");
    let legacy_call = tool_call(1, "get_workspace", json!({}));
    let reply = mcp
        .with_version("2025-11-25")
        .post(&legacy_call)
        .header("mcp-method", "tools/list")
        .header(
            "mcp-name",
            reqwest::header::HeaderValue::from_bytes("naïve".as_bytes()).expect("obs-text"),
        )
        .expect(200)
        .await;
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    server.stop().await;
}
