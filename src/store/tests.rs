//! The journey domain as a whole: the seed, workspace confinement, links, writes, reads.

use serde_json::{Map, Value};

use super::model::{
    Actor, HitType, ItemFilter, ItemKind, ItemSummary, ItemUpdate, NewItem, SearchHit, SearchQuery,
};
use super::writes::{insert_journey, insert_stage, insert_step};
use super::{Clock, Store, StoreError, StoreResult};

fn search(store: &Store, ws: i64, query: &str, limit: Option<u32>) -> StoreResult<Vec<SearchHit>> {
    let query = SearchQuery { query: query.into(), limit, ..SearchQuery::default() };
    store.search(ws, &query).map(|results| results.hits)
}

const ACTOR: Actor<'static> = Actor { key_id: "key_test", key_prefix: "cst_test1234" };

fn store() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("t.db"), Clock::default()).expect("open");
    let acme = store.workspace_by_slug("acme").expect("query").expect("acme").id;
    store.insert_test_key(acme, ACTOR.key_id);
    (dir, store, acme)
}

impl Store {
    /// An active key row `key_id` in the workspace, for tests that write as [`ACTOR`] (every
    /// write checks its key under the write lock).
    pub(crate) fn insert_test_key(&self, workspace_id: i64, key_id: &str) {
        self.writer()
            .execute(
                "INSERT INTO mcp_keys (id, workspace_id, name, prefix, token_hash, access, expires,
                                       created_at)
                 VALUES (?1, ?2, 'test', 'cst_test1234', ?1, 'read-write', 'never', 0)",
                super::db::params![key_id, workspace_id],
            )
            .expect("test key");
    }
}

fn find(store: &Store, ws: i64, kind: ItemKind) -> ItemSummary {
    let filter = ItemFilter { kind: Some(kind), ..ItemFilter::default() };
    store.list_items(ws, &filter).expect("list").items.remove(0).item
}

fn first_step(store: &Store, ws: i64) -> String {
    store.get_journey(ws, "trial-to-paid").expect("journey").stages[0].steps[0].id.clone()
}

fn new_item(step_id: &str, kind: ItemKind, title: &str) -> NewItem {
    NewItem {
        step_id: step_id.into(),
        kind,
        title: title.into(),
        description: None,
        status: None,
        owner: None,
        fields: None,
    }
}

fn fields(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[test]
fn seed_has_every_kind_allowed_links_and_personas() {
    let (_dir, store, acme) = store();
    let summary = store.workspace_summary(acme).expect("summary");
    assert_eq!(summary.slug, "acme");
    assert_eq!(summary.journeys, 2);
    assert_eq!(summary.personas, 2);
    let c = &summary.items;
    assert!((15..=20).contains(&c.total), "{c:?}");
    for count in [c.touchpoint, c.insight, c.opportunity, c.solution, c.metric] {
        assert!(count > 0, "{c:?}");
    }
    let items = store
        .list_items(acme, &ItemFilter { limit: Some(200), ..ItemFilter::default() })
        .expect("list");
    assert_eq!(items.items.len() as i64, c.total);
    let mut links = 0;
    for listed in &items.items {
        let item = store.get_item(acme, &listed.item.id, None).expect("item");
        assert!(item.item.kind.statuses().contains(&item.item.status.as_str()));
        assert!(item.fields.keys().all(|f| item.item.kind.field_names().contains(&f.as_str())));
        for to in &item.links_to {
            assert!(item.item.kind.can_link_to(to.kind), "{} → {}", item.item.id, to.id);
            links += 1;
        }
    }
    assert!(links >= 10, "{links}");
    let trial = store.get_journey(acme, "trial-to-paid").expect("journey");
    assert_eq!(trial.stages.len(), 4);
    assert!(trial.stages.iter().all(|s| (2..=3).contains(&s.steps.len())));
}

#[test]
fn other_workspaces_are_invisible() {
    let (_dir, store, acme) = store();
    store.create_workspace("Other", "other").expect("workspace");
    let other = store.workspace_by_slug("other").expect("query").expect("other").id;
    let (step, journey) = {
        let conn = store.writer();
        let journey = insert_journey(&conn, other, "secret", "Secret", "", 0, 0).expect("j");
        let stage = insert_stage(&conn, other, &journey, "Hidden", "", 0).expect("stage");
        (insert_step(&conn, other, &stage, "Covert", "", 0).expect("step"), journey)
    };
    let secret = store
        .create_item(other, ACTOR, &new_item(&step, ItemKind::Insight, "Zebra secret"))
        .expect("create");
    let secret_id = secret.item.id.as_str();
    let acme_touchpoint = find(&store, acme, ItemKind::Touchpoint);
    let not_found = |result: StoreResult<()>| {
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    };

    not_found(store.get_item(acme, secret_id, None).map(drop));
    let update = ItemUpdate {
        item_id: secret_id.into(),
        title: Some("mine".into()),
        description: None,
        status: None,
        owner: None,
        fields: None,
    };
    not_found(store.update_item(acme, ACTOR, &update).map(drop));
    not_found(store.link_items(acme, ACTOR, &acme_touchpoint.id, secret_id).map(drop));
    not_found(store.add_comment(acme, ACTOR, secret_id, "me", "hi").map(drop));
    not_found(store.create_item(acme, ACTOR, &new_item(&step, ItemKind::Metric, "x")).map(drop));
    not_found(store.get_journey(acme, &journey).map(drop));
    not_found(store.get_journey(acme, "secret").map(drop));
    let by_step = ItemFilter { step_id: Some(step.clone()), ..ItemFilter::default() };
    not_found(store.list_items(acme, &by_step).map(drop));
    assert!(search(&store, acme, "zebra", None).expect("search").is_empty());
    assert!(search(&store, acme, "covert", None).expect("search").is_empty());

    // The other way round: acme's items are invisible from `other`.
    not_found(store.get_item(other, &acme_touchpoint.id, None).map(drop));
    not_found(store.link_items(other, ACTOR, &acme_touchpoint.id, secret_id).map(drop));
    assert_eq!(search(&store, other, "zebra", None).expect("search").len(), 1);
    assert!(search(&store, other, "pricing", None).expect("search").is_empty());
    assert_eq!(store.workspace_summary(other).expect("summary").items.total, 1);
    assert_eq!(
        store.get_item(other, secret_id, None).expect("own item").item.title,
        "Zebra secret"
    );
}

#[test]
fn links_only_go_in_the_five_directions() {
    let (_dir, store, acme) = store();
    let touchpoint = find(&store, acme, ItemKind::Touchpoint);
    let insight = find(&store, acme, ItemKind::Insight);
    let opportunity = find(&store, acme, ItemKind::Opportunity);
    let step = first_step(&store, acme);

    let err = store.link_items(acme, ACTOR, &touchpoint.id, &opportunity.id).expect_err("refused");
    let StoreError::Invalid(message) = err else { panic!("{err:?}") };
    assert!(message.contains("touchpoint → insight"), "{message}");
    assert!(message.contains("solution → metric"), "{message}");

    let err = store.link_items(acme, ACTOR, &insight.id, &touchpoint.id).expect_err("refused");
    assert!(err.to_string().contains("swap"), "{err}");
    assert!(store.link_items(acme, ACTOR, &touchpoint.id, &touchpoint.id).is_err());

    let fresh = store
        .create_item(acme, ACTOR, &new_item(&step, ItemKind::Insight, "Fresh insight"))
        .expect("create");
    let link = store.link_items(acme, ACTOR, &touchpoint.id, &fresh.item.id).expect("link");
    assert_eq!(link.to.id, fresh.item.id);
    let again = store.link_items(acme, ACTOR, &touchpoint.id, &fresh.item.id);
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let fresh = store.get_item(acme, &fresh.item.id, None).expect("item");
    assert_eq!(fresh.linked_from[0].id, touchpoint.id);
}

#[test]
fn create_and_update_validate_and_audit() {
    let (_dir, store, acme) = store();
    let step = first_step(&store, acme);

    let mut new = new_item(&step, ItemKind::Metric, "  Weekly active teams ");
    let created = store.create_item(acme, ACTOR, &new).expect("create");
    assert_eq!(created.item.title, "Weekly active teams");
    assert_eq!(created.item.status, "tracking");
    assert_eq!(created.location.step_id, step);

    new.status = Some("shipped".into());
    let err = store.create_item(acme, ACTOR, &new).expect_err("refused");
    assert!(err.to_string().contains("tracking, on-track, at-risk"), "{err}");
    new.status = None;
    new.fields = fields(serde_json::json!({"channel": "email"}));
    let err = store.create_item(acme, ACTOR, &new).expect_err("refused");
    assert!(err.to_string().contains("metric_type, unit"), "{err}");
    new.fields = None;
    new.title = " ".into();
    assert!(matches!(store.create_item(acme, ACTOR, &new), Err(StoreError::Invalid(_))));

    let update = ItemUpdate {
        item_id: created.item.id.clone(),
        title: None,
        description: Some("Teams with 3+ active members".into()),
        status: Some("on-track".into()),
        owner: Some("Priya Nair".into()),
        fields: fields(serde_json::json!({"unit": "teams", "target": 120})),
    };
    let updated = store.update_item(acme, ACTOR, &update).expect("update");
    assert_eq!(updated.item.status, "on-track");
    assert_eq!(updated.item.owner.as_deref(), Some("Priya Nair"));
    let clear = ItemUpdate {
        owner: Some(String::new()),
        description: None,
        status: None,
        fields: fields(serde_json::json!({"unit": null, "current": 80})),
        ..update
    };
    let updated = store.update_item(acme, ACTOR, &clear).expect("update");
    assert_eq!(updated.item.owner, None);
    assert_eq!(Value::Object(updated.fields), serde_json::json!({"target": 120, "current": 80}));
    let nothing = ItemUpdate { owner: None, fields: None, ..clear };
    assert!(matches!(store.update_item(acme, ACTOR, &nothing), Err(StoreError::Invalid(_))));

    let comment =
        store.add_comment(acme, ACTOR, &created.item.id, "Dana", "Looks right").expect("c");
    assert_eq!(
        store.get_item(acme, &created.item.id, None).expect("item").comments[0].id,
        comment.comment.id
    );

    let events = store.list_events(acme, Some("key_test"), 10, None).expect("events").0;
    let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(events.len(), 4, "{details:?}");
    assert!(
        events
            .iter()
            .all(|e| e.kind == "tool.called" && e.key_prefix.as_deref() == Some("cst_test1234"))
    );
    assert!(details[3].starts_with(&format!("create_item {} \"Weekly", created.item.id)));
    assert!(details[2].ends_with(": description, status, owner, fields"), "{details:?}");
    assert!(details[0].starts_with("add_comment cmt_"), "{details:?}");
}

#[test]
fn list_items_filters_and_truncates() {
    let (_dir, store, acme) = store();
    let all = ItemFilter { journey: Some("trial-to-paid".into()), ..ItemFilter::default() };
    let all = store.list_items(acme, &all).expect("list");
    assert!(!all.truncated);
    assert!(all.items.iter().all(|i| i.location.journey == "Trial to paid"));
    let two = ItemFilter { limit: Some(2), ..ItemFilter::default() };
    let two = store.list_items(acme, &two).expect("list");
    assert_eq!(two.items.len(), 2);
    assert!(two.truncated);
    let owner = all.items[0].item.owner.clone().expect("seed items have owners");
    let by_owner = ItemFilter { owner: Some(owner.to_uppercase()), ..ItemFilter::default() };
    let by_owner = store.list_items(acme, &by_owner).expect("list");
    assert!(!by_owner.items.is_empty());
    assert!(by_owner.items.iter().all(|i| i.item.owner.as_deref() == Some(owner.as_str())));
    let bad = ItemFilter { status: Some("nope".into()), ..ItemFilter::default() };
    assert!(matches!(store.list_items(acme, &bad), Err(StoreError::Invalid(_))));
    let bad = ItemFilter { journey: Some("nope".into()), ..ItemFilter::default() };
    assert!(matches!(store.list_items(acme, &bad), Err(StoreError::NotFound(_))));
}

#[test]
fn search_matches_every_word_as_a_word_or_its_start() {
    let (_dir, store, acme) = store();
    let hits = search(&store, acme, "SDK install", None).expect("search");
    assert!(!hits.is_empty());
    // Ranked: a title holding both words comes first, whatever it is the title of.
    let top = hits[0].title.to_lowercase();
    assert!(top.contains("sdk") && top.contains("install"), "{hits:?}");
    assert!(hits.iter().any(|h| h.hit_type == HitType::Item));
    assert!(hits.iter().any(|h| h.hit_type == HitType::Step));
    let persona = search(&store, acme, "head of data", None).expect("search");
    assert!(persona.iter().any(|h| h.hit_type == HitType::Persona), "{persona:?}");
    assert!(search(&store, acme, "sdk zzzz", None).expect("search").is_empty());
    // Prefixes match; case and accents do not matter.
    let prefix = search(&store, acme, "instal", None).expect("search");
    assert_eq!(prefix.len(), search(&store, acme, "INSTÄLL", None).expect("search").len());
    assert!(!prefix.is_empty());
    // Punctuation separates words: it is never a wildcard nor query syntax.
    for nothing in ["  ", "_", "%", "*", "\"\"", "()"] {
        assert!(
            matches!(search(&store, acme, nothing, None), Err(StoreError::Invalid(_))),
            "{nothing}"
        );
    }
    for inert in ["sdk OR zzzz", "sdk NOT install zzzz", "zzzz*", "title:zzzz", "NEAR(sdk zzzz)"] {
        assert!(search(&store, acme, inert, None).expect("search").is_empty(), "{inert}");
    }
    assert_eq!(search(&store, acme, "a", Some(3)).expect("search").len(), 3);
}
