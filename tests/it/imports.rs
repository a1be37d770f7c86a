//! Imports that no one waits behind and no document can blow up: limits enforced while the
//! document is parsed (issue 31, item 6), and the import staged out of sight in short slices,
//! then published in one step (item 2).

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
