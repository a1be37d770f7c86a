//! Every list pages and every answer is bounded: the MCP tools' cursors (list_items, search,
//! the comments of get_item), get_journey's bounded map, and the admin API's pages of keys and
//! events, through the CLI as a user runs it.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::{Key, TestEnv, TestServer, run_piped};

/// Pages through `tool` with `arguments`, following `next_cursor`; returns every row of
/// `rows` and the number of pages.
async fn all_pages(mcp: &Key, tool: &str, arguments: Value, rows: &str) -> (Vec<Value>, usize) {
    let mut found = Vec::new();
    let mut arguments = arguments;
    for page in 1..=100 {
        let answer = mcp.ok(tool, arguments.clone()).await;
        found.extend(answer[rows].as_array().expect("rows").iter().cloned());
        match answer["next_cursor"].as_str() {
            Some(cursor) => arguments["cursor"] = json!(cursor),
            None => return (found, page),
        }
    }
    panic!("{tool} never reached its last page");
}

async fn first_step(mcp: &Key) -> String {
    let journey = mcp.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned()
}

#[tokio::test]
async fn tool_lists_page_with_cursors_that_belong_to_their_query() {
    let server = TestServer::start().await;
    let mcp = server.owner().create_key("pager", "30d", "read-write").await;
    let step = first_step(&mcp).await;
    let creates: Vec<(&str, Value)> = (0..130)
        .map(|i| {
            let kind = if i % 2 == 0 { "insight" } else { "touchpoint" };
            (
                "create_item",
                json!({"step_id": step, "kind": kind, "title": format!("Pagewise {i}")}),
            )
        })
        .collect();
    mcp.batch(&creates).await;

    let (items, pages) = all_pages(&mcp, "list_items", json!({"limit": 50}), "items").await;
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 150, "130 new items and the demo's 20");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "no item twice");
    assert_eq!(pages, 3);
    // Map order: the journey's first step holds the new ones, after its demo items.
    let first = mcp.ok("list_items", json!({"step_id": step, "limit": 200})).await;
    let titles: Vec<&str> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title"].as_str().unwrap_or(""))
        .collect();
    let new: Vec<&str> = titles.iter().copied().filter(|t| t.starts_with("Pagewise")).collect();
    assert_eq!(new, (0..130).map(|i| format!("Pagewise {i}")).collect::<Vec<_>>());

    // Filters page the same way, along their own index.
    let (insights, _) =
        all_pages(&mcp, "list_items", json!({"kind": "insight", "limit": 7}), "items").await;
    assert!(insights.iter().all(|i| i["kind"] == "insight"));
    assert!(insights.len() >= 65);

    // A cursor belongs to its query: other filters, or a mangled cursor, are refused.
    let page = mcp.ok("list_items", json!({"kind": "insight", "limit": 5})).await;
    let cursor = page["next_cursor"].as_str().expect("a next page");
    assert_eq!(page["truncated"], true);
    let message = mcp.err("list_items", json!({"kind": "touchpoint", "cursor": cursor})).await;
    assert!(message.contains("other arguments"), "{message}");
    let message = mcp.err("list_items", json!({"cursor": "not-a-cursor"})).await;
    assert!(message.contains("cursor"), "{message}");
    let message = mcp.err("search", json!({"query": "pagewise", "cursor": cursor})).await;
    assert!(message.contains("another list"), "{message}");

    // Search pages too, best hits first, each hit once.
    let (hits, pages) =
        all_pages(&mcp, "search", json!({"query": "pagewise", "limit": 40}), "hits").await;
    assert_eq!(hits.len(), 130);
    assert_eq!(pages, 4);
    let hit_ids: HashSet<&str> = hits.iter().map(|h| h["id"].as_str().expect("id")).collect();
    assert_eq!(hit_ids.len(), 130);
    assert!(hits.iter().all(|h| h["item_id"] == h["id"] && h["type"] == "item"));
    server.stop().await;
}

#[tokio::test]
async fn an_items_comments_come_a_page_at_a_time_and_a_journey_map_is_bounded() {
    let server = TestServer::start().await;
    let mcp = server.owner().create_key("reader", "30d", "read-write").await;
    let step = first_step(&mcp).await;
    let item = mcp
        .ok("create_item", json!({"step_id": step, "kind": "insight", "title": "Talkative"}))
        .await;
    let id = item["id"].as_str().expect("id").to_owned();
    // Long comments: the page is bounded in bytes as well as in count.
    let long = "x".repeat(9_000);
    let comments: Vec<(&str, Value)> = (0..45)
        .map(|i| ("add_comment", json!({"item_id": id, "body": format!("{i} {long}")})))
        .collect();
    mcp.batch(&comments).await;
    let mut seen = Vec::new();
    let mut arguments = json!({"item_id": id});
    loop {
        let detail = mcp.ok("get_item", arguments.clone()).await;
        assert_eq!(detail["comments_total"], 45);
        let page = detail["comments"].as_array().expect("comments");
        assert!(!page.is_empty() && page.len() <= 20);
        seen.extend(
            page.iter().map(|c| {
                c["body"].as_str().expect("body").split(' ').next().unwrap_or("").to_owned()
            }),
        );
        match detail["comments_next_cursor"].as_str() {
            Some(cursor) => arguments["comments_cursor"] = json!(cursor),
            None => break,
        }
    }
    assert_eq!(seen, (0..45).map(|i| i.to_string()).collect::<Vec<_>>(), "oldest first, each once");

    // A step with many items: the map counts them all and shows the first few.
    let creates: Vec<(&str, Value)> = (0..60)
        .map(|i| {
            (
                "create_item",
                json!({"step_id": step, "kind": "metric", "title": format!("Metric {i}")}),
            )
        })
        .collect();
    mcp.batch(&creates).await;
    let map = mcp.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let crowded = &map["stages"][0]["steps"][0];
    assert!(crowded["item_count"].as_i64().expect("count") >= 61);
    assert_eq!(crowded["items"].as_array().expect("items").len(), 10);
    assert!(map["items_shown"].as_i64() < map["items_total"].as_i64());
    assert!(map["note"].as_str().is_some_and(|n| n.contains("list_items")), "{}", map["note"]);
    server.stop().await;
}

#[tokio::test]
async fn the_admin_api_and_the_cli_page_through_keys_and_events() {
    let server = TestServer::start().await;
    let owner = server.owner();
    for i in 0..25 {
        owner.create_key(&format!("key {i:02}"), "30d", "read-only").await;
    }
    let page = |query: &str| owner.get(&format!("/workspaces/acme/mcp-keys{query}"));
    let mut names = Vec::new();
    let mut query = "?limit=10".to_owned();
    loop {
        let body = page(&query).expect(200).await;
        names.extend(body["keys"].as_array().expect("keys").iter().map(|k| k["name"].clone()));
        match body["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<Value> = (0..25).rev().map(|i| json!(format!("key {i:02}"))).collect();
    assert_eq!(names, expected, "newest first, each once, across three pages");
    page("?cursor=bogus").expect_error(400, "invalid_cursor").await;
    page("?limit=0").expect_error(400, "invalid_limit").await;
    let body = page("?match=key%2007").expect(200).await;
    assert_eq!(body["keys"].as_array().map(Vec::len), Some(1));
    let body = page("?status=revoked&limit=5").expect(200).await;
    assert_eq!(body["keys"], json!([]));

    // The CLI: a limit says there is more; --all fetches every page; --json keeps the cursor.
    let env = TestEnv::new();
    let cli = |args: Vec<String>| {
        let mut command = env.command();
        command
            .env("CUSTORY_OWNER_TOKEN", &server.owner_token)
            .arg("--server")
            .arg(&server.url)
            .args(args);
        run_piped(command, None)
    };
    let listed = cli(vec!["keys".into(), "list".into(), "--limit".into(), "5".into()]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.stdout.lines().count(), 6, "a header and five keys:\n{}", listed.stdout);
    assert!(listed.stderr.contains("--all"), "{}", listed.stderr);
    let all = cli(vec!["keys".into(), "list".into(), "--all".into(), "--json".into()]).await;
    let all: Value = serde_json::from_str(&all.stdout).expect("json");
    assert_eq!(all["keys"].as_array().map(Vec::len), Some(25));
    assert!(all.get("next_cursor").is_none());
    let some =
        cli(vec!["--json".into(), "keys".into(), "list".into(), "--limit".into(), "3".into()])
            .await;
    let some: Value = serde_json::from_str(&some.stdout).expect("json");
    assert!(some["next_cursor"].is_string());
    let audit = cli(vec!["--json".into(), "audit".into(), "--all".into()]).await;
    let audit: Value = serde_json::from_str(&audit.stdout).expect("json");
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(25), "one key.created per key");
    server.stop().await;
}

#[tokio::test]
async fn workspaces_page_by_slug_in_the_api_and_the_cli_and_members_see_only_theirs() {
    let server = TestServer::start().await;
    let admin = server.owner();
    for slug in ["beta-one", "beta-two", "gamma", "delta", "epsilon"] {
        admin.create_workspace(json!({"name": slug, "slug": slug})).await;
    }
    let every = ["acme", "beta-one", "beta-two", "delta", "epsilon", "gamma"];

    // The API: pages of two by slug, each cursor leading to the next, none twice.
    let mut slugs = Vec::new();
    let mut query = "?limit=2".to_owned();
    for _ in 0..10 {
        let page = admin.get(&format!("/workspaces{query}")).expect(200).await;
        let rows = page["workspaces"].as_array().expect("workspaces");
        assert!(rows.len() <= 2, "{page}");
        slugs.extend(rows.iter().map(|w| w["slug"].as_str().expect("slug").to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(slugs, every);
    let first = admin.get("/workspaces?limit=2").expect(200).await;
    let cursor = first["next_cursor"].as_str().expect("more than two");
    admin
        .get(&format!("/workspaces?limit=2&prefix=beta&cursor={cursor}"))
        .expect_error(400, "invalid_cursor")
        .await;
    admin.get("/workspaces?limit=0").expect_error(400, "invalid_limit").await;
    let betas = admin.get("/workspaces?prefix=beta-").expect(200).await;
    assert_eq!(betas["workspaces"].as_array().map(Vec::len), Some(2), "{betas}");
    assert!(betas.get("next_cursor").is_none(), "{betas}");

    // One workspace by its slug; an unknown one is a 404 that names no other.
    let one = admin.get("/workspaces/gamma").expect(200).await;
    assert_eq!(one["workspace"]["slug"], "gamma");
    let missing = admin.get("/workspaces/beta-onr").expect_error(404, "workspace_not_found").await;
    for slug in every {
        assert!(!missing.to_string().contains(slug), "{missing}");
    }

    // A member sees their workspaces only: in the list, by slug, and a key by its id.
    let member = admin.add_member("gamma", "Gus", "viewer").await;
    let theirs = member.get("/workspaces").expect(200).await;
    assert_eq!(theirs["workspaces"].as_array().map(Vec::len), Some(1), "{theirs}");
    assert_eq!(theirs["workspaces"][0]["slug"], "gamma");
    member.get("/workspaces/gamma").expect(200).await;
    member.get("/workspaces/delta").expect_error(404, "workspace_not_found").await;
    let in_gamma = admin.create_key_in("gamma", json!({"name": "G", "expires": "30d"})).await;
    let in_delta = admin.create_key_in("delta", json!({"name": "D", "expires": "30d"})).await;
    let found = member.get(&format!("/mcp-keys?match={}", in_gamma.id())).expect(200).await;
    assert_eq!(found["keys"][0]["workspace"]["slug"], "gamma", "{found}");
    let hidden = member.get(&format!("/mcp-keys?match={}", in_delta.id())).expect(200).await;
    assert_eq!(hidden["keys"], json!([]), "{hidden}");
    let prefix = in_delta.info["prefix"].as_str().expect("prefix").to_owned();
    let by_prefix = admin.get(&format!("/mcp-keys?match={prefix}")).expect(200).await;
    assert_eq!(by_prefix["keys"][0]["workspace"]["slug"], "delta", "{by_prefix}");
    admin.get("/mcp-keys?match=D").expect_error(400, "invalid_match").await;

    // The CLI: a page at a time, the next page's command runnable as printed, or --all.
    let env = TestEnv::new();
    let listed = env.admin(&server, &["workspaces", "list", "--limit", "4"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("beta-two") && !listed.stdout.contains("gamma"));
    let next = listed.stderr.split('`').nth(1).expect("the next page's command").to_owned();
    let words: Vec<String> = next.split(' ').skip(1).map(str::to_owned).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let rest = env.admin(&server, &words).await;
    assert_eq!(rest.code, 0, "{next}: {}", rest.stderr);
    assert!(rest.stdout.contains("epsilon") && rest.stdout.contains("gamma"), "{}", rest.stdout);
    assert!(!rest.stdout.contains("acme"), "{}", rest.stdout);
    let all = env.admin_json(&server, &["workspaces", "list", "--all"]).await;
    let all: Vec<&str> = all["workspaces"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|w| w["slug"].as_str())
        .collect();
    assert_eq!(all, every);

    // An unknown workspace: a close one suggested, not the list.
    let wrong = env.admin(&server, &["--workspace", "beta-onr", "keys", "list"]).await;
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("did you mean beta-one?"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("epsilon"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("custory-mcp workspaces list"), "{}", wrong.stderr);
    server.stop().await;
}
