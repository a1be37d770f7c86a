//! Imports that no one waits behind and no document can blow up: limits enforced while the
//! document is parsed (issue 31, item 6), and the import staged out of sight in short slices,
//! then published in one step (item 2).

use custory_mcp::server::ImportHook;
use custory_mcp::server::ServerConfig;
use custory_mcp::store::{Quotas, StoreOptions};
use serde_json::{Value, json};

use crate::common::TestServer;

/// A document's opening up to its first journey's first step's `items` array, left open.
fn opening() -> String {
    r#"{"format":"custory-workspace/1","workspace":{"name":"Big","slug":"big"},"journeys":[{"slug":"j","name":"J","stages":[{"name":"S","steps":[{"name":"T","items":["#.to_owned()
}

/// Posts `body` as a new workspace's document: the refusal's JSON.
async fn refused(server: &TestServer, body: String) -> Value {
    let reply = server.owner().post("/imports?new=Big").body(body).send().await;
    reply.expect_error(422, "invalid_document")
}

fn detail(refusal: &Value) -> (String, String) {
    let detail = &refusal["error"]["details"][0];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&detail["path"]), text(&detail["message"]))
}

#[tokio::test]
async fn a_hostile_document_is_refused_where_it_crosses_a_limit_and_not_parsed_further() {
    let quotas = Quotas { items: 50, comments: 20, ..Quotas::default() };
    let options = StoreOptions { quotas, ..StoreOptions::default() };
    let server = TestServer::start_with_options(Default::default(), options).await;
    // Each document crosses its limit, then turns into something that is not JSON at all: had
    // the parser gone on past the limit, the refusal would be that syntax error instead.
    let garbage = "}}} this is not JSON ".repeat(10_000);

    // A long list of empty goals (the shape that once peaked at 948 MiB for 64 MiB).
    let goals = vec!["\"\""; 100_000].join(",");
    let body = format!(
        r#"{{"format":"custory-workspace/1","workspace":{{"name":"Big","slug":"big"}},"personas":[{{"name":"P","goals":[{goals},{garbage}"#
    );
    let refusal = refused(&server, body).await;
    let (path, message) = detail(&refusal);
    assert_eq!(path, "personas[0].goals", "{refusal}");
    assert!(message.starts_with("holds more than 30 entries; at most 30 are allowed"), "{refusal}");

    // More items than the server allows one workspace.
    let item = |n: usize| format!(r#"{{"id":"i{n}","kind":"insight","title":"t"}}"#);
    let items: Vec<String> = (0..51).map(item).collect();
    let body = format!("{}{},{garbage}", opening(), items.join(","));
    let refusal = refused(&server, body).await;
    let (path, message) = detail(&refusal);
    assert_eq!(path, "journeys[0].stages[0].steps[0].items", "{refusal}");
    assert!(
        message.starts_with("the document holds more than 50 items")
            && message.contains("--max-items"),
        "{refusal}"
    );

    // More comments, across items.
    let commented = |n: usize| {
        let comments = [r#"{"author":"a","body":"b"}"#; 7].join(",");
        format!(r#"{{"id":"c{n}","kind":"insight","title":"t","comments":[{comments}]}}"#)
    };
    let items: Vec<String> = (0..3).map(commented).collect();
    let body = format!("{}{},{garbage}", opening(), items.join(","));
    let (path, message) = detail(&refused(&server, body).await);
    assert_eq!(path, "journeys[0].stages[0].steps[0].items[2].comments");
    assert!(message.starts_with("the document holds more than 20 comments"), "{message}");

    // One string longer than any text may be: stopped as it arrives, never held whole.
    let body =
        format!(r#"{}{{"id":"x","kind":"insight","title":"{}"#, opening(), "x".repeat(4 << 20));
    let refusal = refused(&server, body).await;
    let (path, message) = detail(&refusal);
    assert_eq!(path, "journeys[0].stages[0].steps[0].items[0].title", "{refusal}");
    assert!(message.starts_with("too long: a string longer than 128 KiB"), "{refusal}");

    // A field holding a nested value, which a field never may: refused before it is built.
    let nested = format!("[{}]", vec!["null"; 100_000].join(","));
    let body = format!(
        r#"{}{{"id":"x","kind":"insight","title":"t","fields":{{"confidence":{nested}}}}}{garbage}"#,
        opening()
    );
    let (path, message) = detail(&refused(&server, body).await);
    assert_eq!(path, "journeys[0].stages[0].steps[0].items[0].fields.confidence");
    assert!(message.contains("must be a string, number or boolean"), "{message}");

    // Nothing of any of them was written.
    let slugs: Vec<Value> = server.owner().workspaces().await["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .map(|w| w["slug"].clone())
        .collect();
    assert!(!slugs.contains(&json!("big")), "{slugs:?}");
}

/// A workspace document of `items` insights in one step, with a link and a comment or two.
fn document(items: usize, title: &str) -> Value {
    let items: Vec<Value> = (0..items)
        .map(|n| {
            let mut item =
                json!({"id": format!("i{n}"), "kind": "insight", "title": format!("{title} {n}")});
            if n % 500 == 0 {
                item["comments"] = json!([{"author": "ann", "body": "seen"}]);
            }
            item
        })
        .collect();
    json!({
        "format": "custory-workspace/1",
        "workspace": {"name": "Big", "slug": "big"},
        "journeys": [{"slug": "j", "name": "J", "stages": [{"name": "S", "steps": [{"name": "T", "items": items}]}]}],
        "personas": [{"name": "Pat", "journeys": ["j"]}],
    })
}

/// A server whose imports stop after their first slice until the test lets them go on: the
/// server, a receiver told when an import is held, and the sender that lets it go (or, with
/// `crash`, an import that panics there, leaving what a crash would).
async fn held_server(
    options: StoreOptions,
    crash: bool,
    hold_at: usize,
) -> (TestServer, tokio::sync::mpsc::UnboundedReceiver<usize>, std::sync::mpsc::Sender<()>) {
    let (held_tx, held_rx) = tokio::sync::mpsc::unbounded_channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let hook = move |slices: usize| {
        if slices == hold_at {
            let _ = held_tx.send(slices);
            assert!(!crash, "the import crashes here, as a killed server would stop");
            let _ = go_rx.lock().expect("go").recv();
        }
    };
    let config = ServerConfig {
        import_hook: ImportHook(Some(std::sync::Arc::new(hook))),
        ..ServerConfig::default()
    };
    (TestServer::start_with_options(config, options).await, held_rx, go_tx)
}

/// Rows of `table` in the workspace with the slug `slug`, hidden or not.
fn rows(server: &TestServer, table: &str, slug: &str) -> i64 {
    if table == "workspaces" {
        let sql = "SELECT count(*) FROM workspaces WHERE slug = ?1";
        return server.db.query_row(sql, &[slug.into()])[0].int().expect("count");
    }
    let sql = format!(
        "SELECT count(*) FROM {table} WHERE workspace_id IN (SELECT id FROM workspaces WHERE slug = ?1)"
    );
    server.db.query_row(&sql, &[slug.into()])[0].int().expect("count")
}

/// Every row of what imports write, in the whole database.
fn content_rows(server: &TestServer) -> Vec<i64> {
    [
        "workspaces",
        "journeys",
        "stages",
        "steps",
        "items",
        "comments",
        "personas",
        "journey_personas",
        "search_docs",
        "hidden_docs",
        "workspace_counts",
        "audit_events",
    ]
    .iter()
    .map(|table| {
        server.db.query_row(&format!("SELECT count(*) FROM {table}"), &[])[0].int().expect("count")
    })
    .collect()
}

fn slugs(workspaces: &Value) -> Vec<String> {
    workspaces["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .filter_map(|w| w["slug"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn while_an_import_runs_a_revoke_and_other_writes_go_through_and_no_one_sees_half_of_it() {
    let (server, mut held, go) = held_server(StoreOptions::default(), false, 1).await;
    let owner = server.owner();
    let key = owner.create_key("doomed", "30d", "read-write").await;
    key.ok("list_journeys", json!({})).await;
    let import = {
        let owner = owner.clone();
        tokio::spawn(async move {
            owner.post("/imports?new=Big").json(&document(2_500, "insight")).send().await
        })
    };
    held.recv().await.expect("the import wrote its first slice");

    // Half written, and nobody sees it: not listed, not found by its slug, no key made in it.
    assert!(rows(&server, "items", "big") > 0, "the first slice is in the database");
    assert!(!slugs(&owner.workspaces().await).contains(&"big".to_owned()));
    owner.get("/workspaces/big/mcp-keys").expect_error(404, "workspace_not_found").await;
    owner
        .post("/workspaces/big/mcp-keys")
        .json(&json!({"name": "peek", "expires": "30d", "access": "read-only"}))
        .expect_error(404, "workspace_not_found")
        .await;
    // Taking its slug meanwhile is refused, not merged.
    owner.post("/workspaces").json(&json!({"name": "Big"})).expect_error(409, "conflict").await;

    // The writer is free between slices: another write goes through, and a revoke is answered
    // and in force on the revoked key's very next call, all while the import is still running.
    owner.create_workspace(json!({"name": "Other"})).await;
    key.ok("create_journey", json!({"name": "During the import"})).await;
    owner.revoke(key.id()).await;
    let refused = key.post(&crate::common::rpc(1, "tools/list", json!({}))).send().await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert!(!import.is_finished(), "the import was held the whole time");

    go.send(()).expect("let the import go on");
    let done = import.await.expect("import task").expect(201);
    assert_eq!(done["items"], 2_500, "{done}");
    assert_eq!(done["comments"], 5, "{done}");
    assert!(slugs(&owner.workspaces().await).contains(&"big".to_owned()));
    let reader = owner
        .create_key_in("big", json!({"name": "r", "expires": "30d", "access": "read-only"}))
        .await;
    let found = reader.ok("search", json!({"query": "insight 2499"})).await;
    assert!(found.to_string().contains("insight 2499"), "{found}");
    let map = reader.ok("get_journey", json!({"journey": "j"})).await;
    assert!(map.to_string().contains("2500"), "every item counted on its step: {map}");
}

#[tokio::test]
async fn a_failed_import_leaves_no_workspace_and_no_rows() {
    // Text past the workspace quota is found while writing, after slices were written.
    let quotas = Quotas { text_bytes: 30_000, ..Quotas::default() };
    let options = StoreOptions { quotas, ..StoreOptions::default() };
    let (server, mut held, go) = held_server(options, false, 1).await;
    let before = content_rows(&server);
    let import = {
        let owner = server.owner();
        tokio::spawn(async move {
            owner
                .post("/imports?new=Big")
                .json(&document(2_500, "a longish insight title"))
                .send()
                .await
        })
    };
    held.recv().await.expect("the import wrote its first slice");
    assert!(rows(&server, "items", "big") > 0, "the first slice is in the database");
    go.send(()).expect("let the import go on");
    let refused = import.await.expect("import task");
    let body = refused.expect_error(403, "quota_exceeded");
    assert!(body.to_string().contains("--max-text-bytes"), "{body}");
    assert_eq!(content_rows(&server), before, "nothing of the import is left");

    // A client that goes away mid-body leaves nothing either.
    let text = serde_json::to_string(&document(2_500, "insight")).expect("json");
    let half = text.as_bytes()[..text.len() / 2].to_vec();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(half), Err(std::io::Error::other("the client went away"))];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let gone = server.owner().post("/imports?new=Big").body(body).try_send().await;
    assert!(gone.is_err() || gone.is_ok_and(|reply| reply.status >= 400));
    // The server is free for the next import once it has seen the body end.
    let again = server.owner().post("/imports?new=Small").json(&document(3, "x")).send().await;
    again.expect(201);
    assert_eq!(rows(&server, "items", "big"), 0);
    assert_eq!(rows(&server, "workspaces", "big"), 0);
}

#[tokio::test]
async fn what_an_interrupted_import_left_is_removed_when_the_server_starts() {
    let (server, mut held, _go) = held_server(StoreOptions::default(), true, 1).await;
    let before = content_rows(&server);
    let crashed =
        server.owner().post("/imports?new=Big").json(&document(2_500, "insight")).send().await;
    held.recv().await.expect("the import wrote its first slice");
    assert_eq!(crashed.status, 500, "{}", crashed.text());
    let left = server.db.query_row("SELECT count(*) FROM workspaces WHERE slug = 'big'", &[]);
    assert_eq!(left[0].int(), Some(1), "the crash left a hidden workspace");
    assert!(rows(&server, "items", "big") > 0 && rows(&server, "search_docs", "big") > 0);
    assert!(!slugs(&server.owner().workspaces().await).contains(&"big".to_owned()));
    // As long ago as an interrupted import's last slice would be (PostgreSQL replicas leave a
    // recent one alone: another replica may be writing it).
    server.db.execute("UPDATE workspaces SET importing_since = 0 WHERE slug = 'big'", &[]);

    let server = server.restart().await;
    assert_eq!(content_rows(&server), before, "nothing of the import is left");
    // And the slug is free again.
    server.owner().post("/imports?new=Big").json(&document(3, "x")).send().await.expect(201);
}

#[tokio::test]
async fn an_import_into_an_existing_workspace_refuses_its_keys_until_it_is_published() {
    // Slice 1 only hides the workspace; slice 2 writes the first items.
    let (server, mut held, go) = held_server(StoreOptions::default(), false, 2).await;
    let owner = server.owner();
    owner.create_workspace(json!({"name": "Empty", "slug": "empty"})).await;
    let key = owner
        .create_key_in("empty", json!({"name": "early", "expires": "30d", "access": "read-only"}))
        .await;
    key.ok("list_journeys", json!({})).await;
    let import = {
        let owner = owner.clone();
        tokio::spawn(async move {
            owner.post("/imports?workspace=empty").json(&document(2_500, "insight")).send().await
        })
    };
    held.recv().await.expect("the import wrote its first items");
    assert!(rows(&server, "items", "empty") > 0, "items are in the database");
    let refused = key.post(&crate::common::rpc(1, "tools/list", json!({}))).send().await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.text().contains("being imported"), "{}", refused.text());
    owner.get("/workspaces/empty/mcp-keys").expect_error(404, "workspace_not_found").await;
    go.send(()).expect("let the import go on");
    import.await.expect("import task").expect(201);
    let journeys = key.ok("list_journeys", json!({})).await;
    assert!(journeys.to_string().contains("\"j\""), "{journeys}");
}
