//! Fine-grained keys: a key limited to some tools, some journeys, some addresses. Tools
//! outside its list are unknown to it; whatever lies outside its journeys answers as a missing
//! id does (compared word for word with a key of another, empty workspace); a call from another
//! address is refused with 403 and recorded. Runs on the backend under test
//! (`CUSTORY_TEST_BACKEND=postgres` for PostgreSQL).

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::common::{Key, TestEnv, TestServer, rpc};

/// `key` connecting from `from` (any 127.0.0.0/8 address reaches a loopback server).
fn from(key: &Key, from: &str) -> Key {
    let from: IpAddr = from.parse().expect("address");
    let client = reqwest::Client::builder().local_address(from).build().expect("client");
    key.clone().with_client(client)
}

/// What lies in the demo's `support-escalation` journey: its id, slug, a stage, a step, an
/// item and that item's title, read with an unlimited key.
struct Outside {
    journey: String,
    slug: String,
    stage: String,
    step: String,
    item: String,
    title: String,
}

impl Outside {
    async fn read(full: &Key) -> Self {
        let tree = full.ok("get_journey", json!({"journey": "support-escalation"})).await;
        let stage = &tree["stages"][0];
        let step = stage["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|step| step["items"][0].is_object())
            .expect("a step with an item");
        let text = |v: &Value| v.as_str().expect("a string").to_owned();
        Self {
            journey: text(&tree["id"]),
            slug: text(&tree["slug"]),
            stage: text(&stage["id"]),
            step: text(&step["id"]),
            item: text(&step["items"][0]["id"]),
            title: text(&step["items"][0]["title"]),
        }
    }

    /// Everything of it an answer must not show (ids, slug, the item's title).
    fn traces(&self) -> [&str; 6] {
        [&self.journey, &self.slug, &self.stage, &self.step, &self.item, &self.title]
    }

    /// The arguments a tool's input schema asks for, each pointing outside the scope; `None`
    /// for a tool that takes no reference.
    fn arguments(&self, tool: &Value) -> Option<Value> {
        let properties = tool["inputSchema"]["properties"].as_object()?;
        let mut arguments = serde_json::Map::new();
        for name in properties.keys() {
            let value = match name.as_str() {
                "journey" => &self.slug,
                "item_id" => &self.item,
                "stage_id" => &self.stage,
                "step_id" => &self.step,
                _ => continue,
            };
            arguments.insert(name.clone(), json!(value));
        }
        (!arguments.is_empty()).then_some(Value::Object(arguments))
    }
}

fn assert_no_trace(what: &str, answer: &Value, outside: &Outside) {
    let text = answer.to_string();
    for trace in outside.traces() {
        assert!(!text.contains(trace), "{what} shows {trace:?} outside the key's journeys: {text}");
    }
}

#[tokio::test]
async fn a_journey_scoped_key_reads_and_writes_nothing_outside_its_journeys() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let full = owner.create_key("Full", "30d", "read-write").await;
    let outside = Outside::read(&full).await;
    // A key of an empty workspace: what a reference to nothing is answered.
    owner.create_workspace(json!({"name": "Other", "slug": "other"})).await;
    let stranger = owner
        .create_key_in("other", json!({"name": "Other", "expires": "30d", "access": "read-write"}))
        .await;
    let scoped = owner
        .create_key_in(
            "acme",
            json!({"name": "Trial only", "expires": "30d", "journeys": ["trial-to-paid"]}),
        )
        .await;
    let inside = full.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    assert_eq!(scoped.info["scopes"]["journeys"], json!([inside["id"]]), "{}", scoped.info);

    // Every read tool the key lists, against references outside its journeys.
    let tools = scoped.tools().await;
    let reads: Vec<&Value> =
        tools.iter().filter(|tool| tool["annotations"]["readOnlyHint"] == true).collect();
    assert_eq!(reads.len(), 7, "{tools:?}");
    for tool in reads {
        let name = tool["name"].as_str().expect("name");
        if let Some(arguments) = outside.arguments(tool) {
            for (argument, value) in arguments.as_object().expect("object") {
                let mut one = json!({argument.clone(): value});
                if name == "search" {
                    one["query"] = json!(outside.title);
                }
                let answer = scoped.tool_call(name, one.clone()).await;
                let missing = stranger.tool_call(name, one.clone()).await;
                if missing["isError"] == true {
                    assert_eq!(answer, missing, "{name} {one}: as a missing id");
                } else {
                    // A filter that finds nothing (a stage_id filter of list_items, say).
                    assert_no_trace(&format!("{name} {one}"), &answer, &outside);
                }
            }
        }
        // And with no reference at all: lists, search and counts show nothing outside.
        let bare = match name {
            "search" => json!({"query": outside.title}),
            _ if tool["inputSchema"]["required"].as_array().is_some_and(|r| !r.is_empty()) => {
                continue;
            }
            _ => json!({}),
        };
        let answer = scoped.tool_call(name, bare.clone()).await;
        assert_eq!(answer["isError"], false, "{name} {bare}: {answer}");
        assert_no_trace(&format!("{name} {bare}"), &answer["structuredContent"], &outside);
    }
    // The same search by the unlimited key finds it: the check above means something.
    let found = full.ok("search", json!({"query": outside.title})).await;
    assert!(found.to_string().contains(&outside.item), "{found}");
    // Inside its journeys the key reads as any other.
    let map = scoped.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    assert_eq!(map["id"], inside["id"]);
    let listed = scoped.ok("list_journeys", json!({})).await;
    assert_eq!(listed["journeys"].as_array().expect("journeys").len(), 1, "{listed}");
    // The workspace's size as the key may see it: its journey, and that journey's items.
    let workspace = scoped.ok("get_workspace", json!({})).await;
    let whole = full.ok("get_workspace", json!({})).await;
    assert_eq!(workspace["journeys"], 1, "{workspace}");
    assert_eq!(workspace["items"]["total"], listed["journeys"][0]["items"], "{workspace}");
    assert!(
        workspace["items"]["total"].as_i64() < whole["items"]["total"].as_i64(),
        "{workspace} {whole}"
    );

    // Resources, prompts and completion.
    let resources = scoped.result("resources/list", json!({})).await;
    assert_no_trace("resources/list", &resources, &outside);
    assert!(resources.to_string().contains("custory://journeys/trial-to-paid"), "{resources}");
    for uri in [
        format!("custory://journeys/{}", outside.slug),
        format!("custory://items/{}", outside.item),
    ] {
        let answer = scoped.rpc("resources/read", json!({"uri": uri})).await;
        let missing = stranger.rpc("resources/read", json!({"uri": uri})).await;
        assert_eq!(answer["error"], missing["error"], "resources/read {uri}");
        assert!(answer["error"].is_object(), "{answer}");
    }
    let prompt =
        json!({"name": "review_stage", "arguments": {"journey": outside.slug, "stage": "x"}});
    let answer = scoped.rpc("prompts/get", prompt.clone()).await;
    assert_eq!(answer["error"], stranger.rpc("prompts/get", prompt).await["error"]);
    assert!(answer["error"].is_object(), "{answer}");
    let complete = |argument: &str, context: Value| {
        json!({
            "ref": {"type": "ref/prompt", "name": "review_stage"},
            "argument": {"name": argument, "value": ""},
            "context": {"arguments": context},
        })
    };
    let journeys = scoped.result("completion/complete", complete("journey", json!({}))).await;
    assert_eq!(journeys["completion"]["values"], json!(["trial-to-paid"]), "{journeys}");
    let stages = complete("stage", json!({"journey": outside.slug}));
    let stages = scoped.result("completion/complete", stages).await;
    assert_eq!(stages["completion"]["values"], json!([]), "{stages}");

    // Writes: outside answers as missing, and nothing is made that would fall outside.
    let writes = [
        ("create_item", json!({"step_id": outside.step, "kind": "insight", "title": "x"})),
        ("update_item", json!({"item_id": outside.item, "title": "x"})),
        ("add_comment", json!({"item_id": outside.item, "body": "x"})),
        ("create_stage", json!({"journey": outside.slug, "name": "x"})),
        ("archive", json!({"id": outside.step})),
        // archive and restore take a journey by its slug too.
        ("archive", json!({"id": outside.slug})),
        ("restore", json!({"id": outside.slug})),
    ];
    for (tool, arguments) in writes {
        let answer = scoped.tool_call(tool, arguments.clone()).await;
        assert_eq!(answer, stranger.tool_call(tool, arguments.clone()).await, "{tool} {arguments}");
        assert_eq!(answer["isError"], true, "{tool}: {answer}");
    }
    let refused = scoped.err("create_journey", json!({"name": "Elsewhere"})).await;
    assert!(refused.contains("confined to some journeys"), "{refused}");
    let after = full.ok("get_item", json!({"item_id": outside.item})).await;
    assert_eq!(after["title"], outside.title.as_str());
    assert_eq!(after["comments_total"], 0, "{after}");
}

#[tokio::test]
async fn a_tool_scoped_key_lists_and_calls_only_its_tools_and_keeps_them_when_rotated() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let body = json!({"name": "Commenter", "expires": "30d", "tools": ["comments", "search"]});
    let key = owner.create_key_in("acme", body).await;
    let expected = ["list_items", "get_item", "search", "add_comment"];
    assert_eq!(key.info["scopes"]["tools"], json!(expected), "{}", key.info);
    assert_eq!(key.tool_names().await, expected);
    // Any other tool is unknown to it, word for word as a tool that does not exist.
    let call = |name: &str| rpc(1, "tools/call", json!({"name": name, "arguments": {}}));
    let other = key.post(&call("get_workspace")).expect(200).await;
    let none = key.post(&call("no_such_tool")).expect(200).await;
    assert_eq!(other["error"]["code"], none["error"]["code"], "{other}");
    let message = |answer: &Value| answer["error"]["message"].as_str().expect("message").to_owned();
    assert_eq!(message(&other), message(&none).replace("no_such_tool", "get_workspace"));
    key.ok("search", json!({"query": "trial"})).await;

    // A read-only key limited to a write tool lists nothing it cannot call.
    let body = json!({"name": "Reader", "expires": "30d", "access": "read-only",
                      "tools": ["read", "add_comment"]});
    let reader = owner.create_key_in("acme", body).await;
    assert_eq!(reader.tool_names().await.len(), 7);

    // Unknown names are refused with the names there are.
    let answer = owner
        .post("/workspaces/acme/mcp-keys")
        .json(&json!({"name": "Bad", "expires": "30d", "tools": ["reed"]}))
        .expect_error(422, "invalid_tools")
        .await;
    assert!(answer.to_string().contains("read, map, items, comments, personas"), "{answer}");

    // Rotation keeps the scopes.
    let rotated = owner.rotate(key.id()).await;
    assert_eq!(rotated["key"]["scopes"], key.info["scopes"]);
    let token = rotated["token"].as_str().expect("token");
    assert_eq!(server.key(token).tool_names().await, expected);
    let shown = owner.show_key(rotated["key"]["id"].as_str().expect("id")).await;
    assert_eq!(shown["key"]["scopes"]["tools"], json!(expected));
}

#[tokio::test]
async fn an_address_limited_key_is_refused_elsewhere_and_the_refusal_is_recorded() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let body = json!({"name": "Here only", "expires": "30d", "allow_ip": ["127.0.0.1"]});
    let key = owner.create_key_in("acme", body).await;
    assert_eq!(key.info["scopes"]["allow_ip"], json!(["127.0.0.1/32"]));
    from(&key, "127.0.0.1").ok("get_workspace", json!({})).await;
    let refused = from(&key, "127.0.0.2").post(&rpc(1, "tools/list", json!({}))).send().await;
    let answer = refused.expect(403);
    assert!(answer.to_string().contains("may not be used from 127.0.0.2"), "{answer}");
    // A wider network admits the other address; IPv6 networks parse too.
    let body =
        json!({"name": "Loopback", "expires": "30d", "allow_ip": ["127.0.0.0/8", "::1/128"]});
    let wide = owner.create_key_in("acme", body).await;
    from(&wide, "127.0.0.2").ok("get_workspace", json!({})).await;
    owner
        .post("/workspaces/acme/mcp-keys")
        .json(&json!({"name": "Bad", "expires": "30d", "allow_ip": ["127.0.0.300"]}))
        .expect_error(422, "invalid_allow_ip")
        .await;

    // The refusal is in the audit trail, by the server (it is written off the request's path:
    // wait for it, within a bound).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let trail = owner.audit("acme", &format!("?key={}", key.id())).await;
        let events = trail["events"].as_array().expect("events");
        let refusal = events.iter().find(|e| {
            e["kind"] == "auth.rejected"
                && e["detail"].as_str().is_some_and(|d| d.contains("127.0.0.2"))
        });
        if let Some(event) = refusal {
            assert_eq!(event["actor"]["kind"], "server", "{event}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refusal recorded: {trail}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn keys_create_takes_scopes_and_keys_show_and_list_say_them() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let created = env
        .admin_json(
            &server,
            &[
                "keys",
                "create",
                "--name",
                "CI",
                "--expires",
                "30d",
                "--tools",
                "read,add_comment",
                "--journeys",
                "trial-to-paid",
                "--allow-ip",
                "10.0.0.0/8,2001:db8::/32",
            ],
        )
        .await;
    let scopes = &created["key"]["scopes"];
    assert_eq!(scopes["tools"].as_array().expect("tools").len(), 8, "{created}");
    assert!(scopes["journeys"][0].as_str().expect("journey").starts_with("jrn_"));
    assert_eq!(scopes["allow_ip"], json!(["10.0.0.0/8", "2001:db8::/32"]));
    let shown = env.admin(&server, &["keys", "show", "CI"]).await.stdout;
    // The value, over as many lines as the terminal's width needs.
    let mut lines = shown.lines().skip_while(|l| !l.starts_with("Limited to"));
    let first = lines.next().expect("Limited to");
    let line: Vec<&str> = std::iter::once(first)
        .chain(lines.take_while(|l| l.starts_with(' ')).map(str::trim_start))
        .collect();
    let line = line.join(" ");
    assert!(line.contains("addresses: 10.0.0.0/8, 2001:db8::/32"), "{shown}");
    // The journey as people name it (the API keeps its id, which renaming does not change).
    assert!(line.contains("journeys: trial-to-paid;"), "{shown}");
    assert!(!shown.contains("jrn_"), "{shown}");
    let listed = env.admin(&server, &["keys", "list"]).await.stdout;
    assert!(listed.lines().any(|l| l.starts_with("CI") && l.contains("limited")), "{listed}");
    let json = env.admin_json(&server, &["keys", "list"]).await;
    assert_eq!(json["keys"][0]["scopes"], *scopes);
    // The audit trail too names the journey by its slug (its JSON keeps the id).
    let mut wide = env.command();
    wide.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    wide.env("COLUMNS", "250").args(["audit", "--limit", "5"]);
    let audit = crate::common::run_piped(wide, None).await.stdout;
    assert!(audit.contains("trial-to-paid") && !audit.contains("jrn_"), "{audit}");
    let bad = env
        .admin(
            &server,
            &["keys", "create", "--name", "X", "--expires", "30d", "--journeys", "nope"],
        )
        .await;
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("no journey \"nope\""), "{}", bad.stderr);
    // A workspace of a few journeys names them all, as slugs the flag takes.
    assert!(
        bad.stderr.contains("its journeys: support-escalation, trial-to-paid"),
        "{}",
        bad.stderr
    );
}

#[tokio::test]
async fn request_headers_narrow_a_key_and_never_widen_it() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Agent", "30d", "read-write").await;
    let names = |answer: &Value| -> Vec<String> {
        answer["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let list = rpc(1, "tools/list", json!({}));
    let read = key.post(&list).header("x-mcp-tools", "read").expect(200).await;
    assert_eq!(names(&read).len(), 7, "{read}");
    let both = key
        .post(&list)
        .header("x-mcp-tools", "search, add_comment")
        .header("x-mcp-readonly", "true")
        .expect(200)
        .await;
    assert_eq!(names(&both), ["search"]);
    // Read-only by header: a write tool is refused as for a read-only key.
    let call = rpc(1, "tools/call", json!({"name": "create_journey", "arguments": {"name": "X"}}));
    let refused = key.post(&call).header("x-mcp-readonly", "true").expect(200).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(refused.to_string().contains("read-only"), "{refused}");
    // Never wider than the key: a limited key asking for more keeps what it has.
    let body =
        json!({"name": "Searcher", "expires": "30d", "access": "read-only", "tools": ["search"]});
    let limited = owner.create_key_in("acme", body).await;
    let asked = limited
        .post(&list)
        .header("x-mcp-tools", "search,get_item,create_item")
        .header("x-mcp-readonly", "false")
        .expect(200)
        .await;
    assert_eq!(names(&asked), ["search"]);
    let bad = key.post(&list).header("x-mcp-tools", "serch").send().await;
    assert!(bad.expect(400).to_string().contains("X-MCP-Tools"));
}

#[tokio::test]
async fn a_key_is_narrowed_later_and_never_widened() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    let body = json!({"name": "Agent", "expires": "30d", "tools": ["read", "add_comment"]});
    let key = owner.create_key_in("acme", body).await;
    assert_eq!(key.tool_names().await.len(), 8);
    let narrowed = env
        .admin_json(&server, &["keys", "narrow", "Agent", "--tools", "search", "--read-only"])
        .await;
    assert_eq!(narrowed["key"]["scopes"]["tools"], json!(["search"]), "{narrowed}");
    assert_eq!(narrowed["key"]["access"], "read-only");
    // In force on the very next request.
    assert_eq!(key.tool_names().await, ["search"]);
    // Never wider: a tool it lost, read-write again, a limit lifted, a wider network.
    let path = format!("/workspaces/acme/mcp-keys/{}/narrow", key.id());
    for body in [json!({"tools": ["search", "get_item"]}), json!({"access": "read-write"})] {
        let refused = owner.post(&path).json(&body).expect_error(422, "would_widen").await;
        assert!(refused.to_string().contains("keys create"), "{refused}");
    }
    let run = env.admin(&server, &["keys", "narrow", "Agent", "--tools", "get_workspace"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("never widened"), "{}", run.stderr);
    let body = json!({"name": "Net", "expires": "30d", "allow_ip": ["10.0.0.0/8"]});
    let net = owner.create_key_in("acme", body).await;
    let path = format!("/workspaces/acme/mcp-keys/{}/narrow", net.id());
    owner
        .post(&path)
        .json(&json!({"allow_ip": ["0.0.0.0/0"]}))
        .expect_error(422, "would_widen")
        .await;
    let inside = owner.post(&path).json(&json!({"allow_ip": ["10.1.0.0/16"]})).expect(200).await;
    assert_eq!(inside["key"]["scopes"]["allow_ip"], json!(["10.1.0.0/16"]));
    // The audit says who narrowed what.
    let trail = owner.audit("acme", &format!("?key={}", key.id())).await;
    let event = trail["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "key.narrowed")
        .unwrap_or_else(|| panic!("no key.narrowed: {trail}"))
        .clone();
    assert_eq!(event["actor"]["kind"], "administrator", "{event}");
    assert!(event["detail"].as_str().expect("detail").contains("tools: search"), "{event}");
    // Narrowing to what the key already is changes nothing and records nothing.
    let narrowed_events = |trail: &serde_json::Value| {
        trail["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["kind"] == "key.narrowed")
            .count()
    };
    let before = narrowed_events(&owner.audit("acme", &format!("?key={}", key.id())).await);
    let run = env.admin(&server, &["keys", "narrow", "Agent", "--tools", "search"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Nothing changed"), "{}", run.stderr);
    let after = narrowed_events(&owner.audit("acme", &format!("?key={}", key.id())).await);
    assert_eq!(before, after);
    // A key whose tools all read is read-only, however it was asked for: shown as what it is.
    let body =
        json!({"name": "Reader", "expires": "30d", "access": "read-write", "tools": ["read"]});
    let reader = owner.create_key_in("acme", body).await;
    assert_eq!(reader.info["access"], "read-only", "{}", reader.info);
}

#[tokio::test]
async fn a_journey_scoped_keys_item_pages_are_full_and_hold_only_its_items() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let full = owner.create_key("Full", "30d", "read-write").await;
    let all = full.ok("list_journeys", json!({})).await;
    // Confined to the journey that comes last on the map: every item of the others is before.
    let last = all["journeys"].as_array().and_then(|j| j.last()).expect("journeys").clone();
    let body = json!({"name": "Last only", "expires": "30d", "journeys": [last["slug"]]});
    let scoped = owner.create_key_in("acme", body).await;
    let (mut seen, mut cursor) = (0, None::<String>);
    loop {
        let mut args = json!({"limit": 2});
        if let Some(cursor) = &cursor {
            args["cursor"] = json!(cursor);
        }
        let page = scoped.ok("list_items", args).await;
        let items = page["items"].as_array().expect("items");
        for item in items {
            assert_eq!(item["journey_id"], last["id"], "{item}");
        }
        match page["next_cursor"].as_str() {
            // Every page but the last is full: the journeys are chosen in the query.
            Some(next) => {
                assert_eq!(items.len(), 2, "{page}");
                cursor = Some(next.to_owned());
            }
            None => {
                assert!(items.len() <= 2, "{page}");
                seen += items.len();
                break;
            }
        }
        seen += items.len();
    }
    assert_eq!(Some(seen as i64), last["items"].as_i64(), "{last}");
}
