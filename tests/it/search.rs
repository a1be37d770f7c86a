//! Search means the same on both databases: the same queries over the same content find the
//! same things, a fixed set of queries keeps its expected best hit, and no statement runs past
//! the store's time limit on either.

use std::time::Duration;

use custory_mcp::api::{Access, ExpiryPolicy};
use custory_mcp::store::access::Actor;
use custory_mcp::store::content::model::{ItemKind, NewItem, SearchQuery};
use custory_mcp::store::{Clock, Store, StoreError, StoreOptions};

use crate::common::TestDatabase;

/// Both stores, with the demo plus the same extra content.
fn stores() -> (tempfile::TempDir, Vec<(TestDatabase, Store)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let databases = [TestDatabase::sqlite(&dir.path().join("s.db")), TestDatabase::postgres()];
    let stores = databases
        .into_iter()
        .map(|db| {
            let store = Store::open_database(&db.database, Clock::default()).expect("open");
            let acme = store.access().workspace_by_slug("acme").expect("query").expect("acme").id;
            // Writes run as an active key of the workspace.
            let (key, _) = store
                .access()
                .create_key(acme, "search test", ExpiryPolicy::Never, Access::ReadWrite)
                .expect("key");
            let actor = Actor { key_id: &key.id, key_prefix: &key.prefix };
            let step = store
                .content()
                .get_journey(acme, "support-escalation", false)
                .expect("journey")
                .stages[0]
                .steps[0]
                .id
                .clone();
            for (kind, title, description) in [
                (
                    ItemKind::Insight,
                    "Crème brûlée onboarding",
                    "Customers in Zürich ask for café hours",
                ),
                (ItemKind::Insight, "Résumé parsing breaks", "The ÉCOLE import drops accents"),
                (ItemKind::Opportunity, "Straße addresses", "Umlauts in ÖRTLICHKEIT fields"),
                (
                    ItemKind::Touchpoint,
                    "Sign-up form",
                    "sign up, signup and signing are words apart",
                ),
            ] {
                let new = NewItem {
                    step_id: step.clone(),
                    kind,
                    title: title.into(),
                    description: Some(description.into()),
                    status: None,
                    owner: Some("Renée".into()),
                    priority: None,
                    impact: None,
                    effort: None,
                    fields: None,
                };
                let item = store.content().create_item(acme, actor, &new).expect("create");
                store
                    .content()
                    .add_comment(acme, actor, &item.item.id, "Zoë", "naïve reader asked")
                    .expect("comment");
            }
            (db, store)
        })
        .collect();
    (dir, stores)
}

fn hits(store: &Store, query: SearchQuery) -> Vec<(String, String)> {
    let acme = store.access().workspace_by_slug("acme").expect("query").expect("acme").id;
    let found = store.content().search(acme, &query).expect("search");
    found.hits.into_iter().map(|hit| (hit.hit_type.as_str().to_owned(), hit.title)).collect()
}

fn query(text: &str) -> SearchQuery {
    SearchQuery { query: text.into(), limit: Some(100), ..SearchQuery::default() }
}

#[test]
fn both_databases_find_the_same_things() {
    let (_dir, stores) = stores();
    let queries = [
        query("creme brulee"),
        query("ZURICH"),
        query("resume"),
        query("ecole accents"),
        query("strasse"),
        query("straße"),
        query("ortlichkeit"),
        query("sign"),
        query("signup"),
        query("renee"),
        query("naive"),
        query("zoe"),
        query("dashboard"),
        query("event"),
        query("ticket engineering"),
        query("onboard"),
        query("zzznothing"),
        SearchQuery { kind: Some(ItemKind::Insight), ..query("crème") },
        SearchQuery { kind: Some(ItemKind::Opportunity), ..query("crème") },
        SearchQuery { status: Some("draft".into()), ..query("trial") },
        SearchQuery { journey: Some("trial-to-paid".into()), ..query("sdk") },
        SearchQuery { journey: Some("support-escalation".into()), ..query("sdk") },
    ];
    let mut non_empty = 0;
    for search in queries {
        let shown = format!(
            "{:?} {:?} {:?} {:?}",
            search.query, search.kind, search.status, search.journey
        );
        let mut results: Vec<Vec<(String, String)>> =
            stores.iter().map(|(_, store)| hits(store, search.clone())).collect();
        for found in &mut results {
            found.sort();
        }
        assert_eq!(results[0], results[1], "SQLite and PostgreSQL differ for {shown}");
        non_empty += usize::from(!results[0].is_empty());
    }
    assert!(non_empty >= 18, "most queries find something: {non_empty}");

    // The things each query is about, to see that the two agree on something real.
    let (_, sqlite) = &stores[0];
    let found = hits(sqlite, query("creme brulee"));
    assert!(found.contains(&("item".into(), "Crème brûlée onboarding".into())), "{found:?}");
    let found = hits(sqlite, query("strasse"));
    assert!(found.is_empty(), "ß is not folded to ss: {found:?}");
    let found = hits(sqlite, query("naive"));
    assert_eq!(found.iter().filter(|(t, _)| t == "comment").count(), 4, "{found:?}");
    let found = hits(sqlite, SearchQuery { kind: Some(ItemKind::Opportunity), ..query("crème") });
    assert!(found.is_empty(), "the kind filter is applied inside the search: {found:?}");
}

#[test]
fn a_fixed_set_of_queries_keeps_its_best_hit_on_both_databases() {
    let (_dir, stores) = stores();
    for (text, best) in [
        ("event volume calculator", ("item", "Event volume calculator on the pricing page")),
        ("sample dataset", ("item", "Sample dataset in new workspaces")),
        ("escalated engineering", ("step", "Escalated to engineering")),
        ("okafor", ("persona", "Sam Okafor")),
        ("trial conversion", ("item", "Trial-to-paid conversion")),
        ("ip allow lists", ("item", "Warehouse connection fails behind IP allow-lists")),
        ("creme", ("item", "Crème brûlée onboarding")),
        ("support escalation", ("journey", "Support escalation")),
    ] {
        for (db, store) in &stores {
            let found = hits(store, query(text));
            let top = found.first().map(|(t, title)| (t.as_str(), title.as_str()));
            assert_eq!(top, Some(best), "{text:?} on {:?}: {found:?}", db.database);
        }
    }
}

#[test]
fn no_statement_runs_past_the_time_limit_on_either_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    for db in [TestDatabase::sqlite(&dir.path().join("slow.db")), TestDatabase::postgres()] {
        let options =
            StoreOptions { statement_limit: Duration::from_millis(200), ..StoreOptions::default() };
        let store = Store::open_with(&db.database, Clock::default(), options).expect("open");
        let started = std::time::Instant::now();
        let error =
            store.probe_statement_limit().expect_err("a statement that never ends is stopped");
        let took = started.elapsed();
        assert!(matches!(error, StoreError::TimedOut(_)), "{:?}: {error:?}", db.database);
        assert!(error.to_string().contains("took too long"), "{error}");
        assert!(took < Duration::from_secs(5), "{:?} stopped after {took:?}", db.database);
        // The connection is usable again at once.
        let every = custory_mcp::store::access::WorkspaceFilter::default();
        assert!(store.access().list_workspaces(&every, 10, None).is_ok());
    }
}

#[test]
fn a_word_in_more_documents_than_are_ranked_keeps_titles_first_and_pages_without_repeats() {
    let (_dir, stores) = stores();
    for (_, store) in &stores {
        let acme = store.access().workspace_by_slug("acme").expect("query").expect("acme").id;
        let (key, _) = store
            .access()
            .create_key(acme, "bulk", ExpiryPolicy::Never, Access::ReadWrite)
            .expect("key");
        let actor = Actor { key_id: &key.id, key_prefix: &key.prefix };
        let step =
            store.content().get_journey(acme, "trial-to-paid", false).expect("journey").stages[0]
                .steps[0]
                .id
                .clone();
        let item = |title: String, description: &str| NewItem {
            step_id: step.clone(),
            kind: ItemKind::Insight,
            title,
            description: Some(description.into()),
            status: None,
            owner: None,
            priority: None,
            impact: None,
            effort: None,
            fields: None,
        };
        // More body matches than PostgreSQL ranks (1,101), older than the two title matches.
        for n in 0..1_150 {
            let new = item(format!("Filler {n}"), "a plain note on the quarterly rollover");
            store.content().create_item(acme, actor, &new).expect("create");
        }
        for n in 0..2 {
            let new = item(format!("Rollover plan {n}"), "the title says it");
            store.content().create_item(acme, actor, &new).expect("create");
        }
    }
    for (db, store) in &stores {
        let acme = store.access().workspace_by_slug("acme").expect("query").expect("acme").id;
        let mut seen = std::collections::HashSet::new();
        let mut cursor = None;
        let mut first_page = true;
        loop {
            let search = SearchQuery { cursor: cursor.clone(), ..query("rollover") };
            let found = match store.content().search(acme, &search) {
                Ok(found) => found,
                // Paging stops at its bound (a search pages through its best 1,000 hits).
                Err(StoreError::Invalid(why)) if why.contains("at most") => break,
                Err(error) => panic!("{:?}: {error:?}", db.database),
            };
            if first_page {
                let titles: Vec<&str> =
                    found.hits.iter().take(2).map(|h| h.title.as_str()).collect();
                assert!(
                    titles.iter().all(|t| t.starts_with("Rollover plan")),
                    "{:?}: the title matches first: {titles:?}",
                    db.database
                );
                first_page = false;
            }
            for hit in &found.hits {
                assert!(seen.insert(hit.title.clone()), "{:?}: {} twice", db.database, hit.title);
            }
            cursor = found.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert!(seen.len() >= 1_000, "{:?}: {} hits reached", db.database, seen.len());
    }
}
