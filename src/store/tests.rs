//! The journey domain as a whole: the seed, workspace confinement, links, writes, reads.

use serde_json::{Map, Value};

use super::access::Actor;
use super::content::model::{
    HitType, ItemFilter, ItemKind, ItemSummary, ItemUpdate, NewItem, SearchHit, SearchQuery,
};
use super::content::{insert_journey, insert_stage, insert_step};
use super::{Clock, Store, StoreError, StoreResult};

fn search(store: &Store, ws: i64, query: &str, limit: Option<u32>) -> StoreResult<Vec<SearchHit>> {
    let query = SearchQuery { query: query.into(), limit, ..SearchQuery::default() };
    store.content().search(ws, &query).map(|results| results.hits)
}

const ACTOR: Actor<'static> = Actor { key_id: "key_test", key_prefix: "cst_test1234" };

fn store() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("t.db"), Clock::default()).expect("open");
    let acme = store.access().workspace_by_slug("acme").expect("query").expect("acme").id;
    store.insert_test_key(acme, ACTOR.key_id);
    (dir, store, acme)
}

impl Store {
    /// An active key row `key_id` in the workspace, for tests that write as [`ACTOR`] (every
    /// write checks its key under the write lock).
    pub(crate) fn insert_test_key(&self, workspace_id: i64, key_id: &str) {
        self.db
            .writer()
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
    store.content().list_items(ws, &filter).expect("list").items.remove(0).item
}

fn first_step(store: &Store, ws: i64) -> String {
    store.content().get_journey(ws, "trial-to-paid", false).expect("journey").stages[0].steps[0]
        .id
        .clone()
}

fn new_item(step_id: &str, kind: ItemKind, title: &str) -> NewItem {
    NewItem {
        step_id: step_id.into(),
        kind,
        title: title.into(),
        description: None,
        status: None,
        owner: None,
        priority: None,
        impact: None,
        effort: None,
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
    let summary = store.content().workspace_summary(acme).expect("summary");
    assert_eq!(summary.slug, "acme");
    assert_eq!(summary.journeys, 2);
    assert_eq!(summary.personas, 2);
    let c = &summary.items;
    assert!((15..=20).contains(&c.total), "{c:?}");
    for count in [c.touchpoint, c.insight, c.opportunity, c.solution, c.metric] {
        assert!(count > 0, "{c:?}");
    }
    let items = store
        .content()
        .list_items(acme, &ItemFilter { limit: Some(200), ..ItemFilter::default() })
        .expect("list");
    assert_eq!(items.items.len() as i64, c.total);
    let mut links = 0;
    for listed in &items.items {
        let item = store.content().get_item(acme, &listed.item.id, None).expect("item");
        assert!(item.item.kind.statuses().contains(&item.item.status.as_str()));
        assert!(item.fields.keys().all(|f| item.item.kind.field_names().contains(&f.as_str())));
        for to in &item.links_to {
            assert!(item.item.kind.can_link_to(to.kind), "{} → {}", item.item.id, to.id);
            links += 1;
        }
    }
    assert!(links >= 10, "{links}");
    let trial = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
    assert_eq!(trial.stages.len(), 4);
    assert!(trial.stages.iter().all(|s| (2..=3).contains(&s.steps.len())));
}

#[test]
fn other_workspaces_are_invisible() {
    let (_dir, store, acme) = store();
    store.access().create_workspace("Other", "other").expect("workspace");
    let other = store.access().workspace_by_slug("other").expect("query").expect("other").id;
    let (step, journey) = {
        let conn = store.db.writer();
        let journey = insert_journey(&conn, other, "secret", "Secret", "", 0, 0).expect("j");
        let stage = insert_stage(&conn, other, &journey, "Hidden", "", 0).expect("stage");
        (insert_step(&conn, other, &stage, "Covert", "", 0).expect("step"), journey)
    };
    let secret = store
        .content()
        .create_item(other, ACTOR, &new_item(&step, ItemKind::Insight, "Zebra secret"))
        .expect("create");
    let secret_id = secret.item.id.as_str();
    let acme_touchpoint = find(&store, acme, ItemKind::Touchpoint);
    let not_found = |result: StoreResult<()>| {
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    };

    not_found(store.content().get_item(acme, secret_id, None).map(drop));
    let update = ItemUpdate {
        item_id: secret_id.into(),
        title: Some("mine".into()),
        description: None,
        status: None,
        owner: None,
        fields: None,
        ..ItemUpdate::default()
    };
    not_found(store.content().update_item(acme, ACTOR, &update).map(drop));
    not_found(store.content().link_items(acme, ACTOR, &acme_touchpoint.id, secret_id).map(drop));
    not_found(store.content().add_comment(acme, ACTOR, secret_id, "me", "hi").map(drop));
    not_found(
        store.content().create_item(acme, ACTOR, &new_item(&step, ItemKind::Metric, "x")).map(drop),
    );
    not_found(store.content().get_journey(acme, &journey, false).map(drop));
    not_found(store.content().get_journey(acme, "secret", false).map(drop));
    let by_step = ItemFilter { step_id: Some(step.clone()), ..ItemFilter::default() };
    not_found(store.content().list_items(acme, &by_step).map(drop));
    assert!(search(&store, acme, "zebra", None).expect("search").is_empty());
    assert!(search(&store, acme, "covert", None).expect("search").is_empty());

    // The other way round: acme's items are invisible from `other`.
    not_found(store.content().get_item(other, &acme_touchpoint.id, None).map(drop));
    not_found(store.content().link_items(other, ACTOR, &acme_touchpoint.id, secret_id).map(drop));
    assert_eq!(search(&store, other, "zebra", None).expect("search").len(), 1);
    assert!(search(&store, other, "pricing", None).expect("search").is_empty());
    assert_eq!(store.content().workspace_summary(other).expect("summary").items.total, 1);
    assert_eq!(
        store.content().get_item(other, secret_id, None).expect("own item").item.title,
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

    let err = store
        .content()
        .link_items(acme, ACTOR, &touchpoint.id, &opportunity.id)
        .expect_err("refused");
    let StoreError::Invalid(message) = err else { panic!("{err:?}") };
    assert!(message.contains("touchpoint → insight"), "{message}");
    assert!(message.contains("solution → metric"), "{message}");

    let err =
        store.content().link_items(acme, ACTOR, &insight.id, &touchpoint.id).expect_err("refused");
    assert!(err.to_string().contains("swap"), "{err}");
    assert!(store.content().link_items(acme, ACTOR, &touchpoint.id, &touchpoint.id).is_err());

    let fresh = store
        .content()
        .create_item(acme, ACTOR, &new_item(&step, ItemKind::Insight, "Fresh insight"))
        .expect("create");
    let link =
        store.content().link_items(acme, ACTOR, &touchpoint.id, &fresh.item.id).expect("link");
    assert_eq!(link.to.id, fresh.item.id);
    let again = store.content().link_items(acme, ACTOR, &touchpoint.id, &fresh.item.id);
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let fresh = store.content().get_item(acme, &fresh.item.id, None).expect("item");
    assert_eq!(fresh.linked_from[0].id, touchpoint.id);
}

#[test]
fn create_and_update_validate_and_audit() {
    let (_dir, store, acme) = store();
    let step = first_step(&store, acme);

    let mut new = new_item(&step, ItemKind::Metric, "  Weekly active teams ");
    let created = store.content().create_item(acme, ACTOR, &new).expect("create");
    assert_eq!(created.item.title, "Weekly active teams");
    assert_eq!(created.item.status, "tracking");
    assert_eq!(created.location.step_id, step);

    new.status = Some("shipped".into());
    let err = store.content().create_item(acme, ACTOR, &new).expect_err("refused");
    assert!(err.to_string().contains("tracking, on-track, at-risk"), "{err}");
    new.status = None;
    new.fields = fields(serde_json::json!({"channel": "email"}));
    let err = store.content().create_item(acme, ACTOR, &new).expect_err("refused");
    assert!(err.to_string().contains("metric_type, unit"), "{err}");
    new.fields = None;
    new.title = " ".into();
    assert!(matches!(store.content().create_item(acme, ACTOR, &new), Err(StoreError::Invalid(_))));

    let update = ItemUpdate {
        item_id: created.item.id.clone(),
        title: None,
        description: Some("Teams with 3+ active members".into()),
        status: Some("on-track".into()),
        owner: Some("Priya Nair".into()),
        fields: fields(serde_json::json!({"unit": "teams", "target": 120})),
        ..ItemUpdate::default()
    };
    let updated = store.content().update_item(acme, ACTOR, &update).expect("update");
    assert_eq!(updated.item.status, "on-track");
    assert_eq!(updated.item.owner.as_deref(), Some("Priya Nair"));
    let clear = ItemUpdate {
        owner: Some(String::new()),
        description: None,
        status: None,
        fields: fields(serde_json::json!({"unit": null, "current": 80})),
        ..update
    };
    let updated = store.content().update_item(acme, ACTOR, &clear).expect("update");
    assert_eq!(updated.item.owner, None);
    assert_eq!(Value::Object(updated.fields), serde_json::json!({"target": 120, "current": 80}));
    let nothing = ItemUpdate { owner: None, fields: None, ..clear };
    assert!(matches!(
        store.content().update_item(acme, ACTOR, &nothing),
        Err(StoreError::Invalid(_))
    ));

    let comment = store
        .content()
        .add_comment(acme, ACTOR, &created.item.id, "Dana", "Looks right")
        .expect("c");
    assert_eq!(
        store.content().get_item(acme, &created.item.id, None).expect("item").comments[0].id,
        comment.comment.id
    );

    let events = store.access().list_events(acme, Some("key_test"), 10, None).expect("events").0;
    let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(events.len(), 4, "{details:?}");
    assert!(events.iter().all(|e| e.kind == crate::api::EventKind::ToolCalled
        && e.key_prefix.as_deref() == Some("cst_test1234")));
    assert!(details[3].starts_with(&format!("create_item {} \"Weekly", created.item.id)));
    assert!(details[2].ends_with(": description, status, owner, fields"), "{details:?}");
    assert!(details[0].starts_with("add_comment cmt_"), "{details:?}");
}

#[test]
fn list_items_filters_and_truncates() {
    let (_dir, store, acme) = store();
    let all = ItemFilter { journey: Some("trial-to-paid".into()), ..ItemFilter::default() };
    let all = store.content().list_items(acme, &all).expect("list");
    assert!(!all.truncated);
    assert!(all.items.iter().all(|i| i.location.journey == "Trial to paid"));
    let two = ItemFilter { limit: Some(2), ..ItemFilter::default() };
    let two = store.content().list_items(acme, &two).expect("list");
    assert_eq!(two.items.len(), 2);
    assert!(two.truncated);
    let owner = all.items[0].item.owner.clone().expect("seed items have owners");
    let by_owner = ItemFilter { owner: Some(owner.to_uppercase()), ..ItemFilter::default() };
    let by_owner = store.content().list_items(acme, &by_owner).expect("list");
    assert!(!by_owner.items.is_empty());
    assert!(by_owner.items.iter().all(|i| i.item.owner.as_deref() == Some(owner.as_str())));
    let bad = ItemFilter { status: Some("nope".into()), ..ItemFilter::default() };
    assert!(matches!(store.content().list_items(acme, &bad), Err(StoreError::Invalid(_))));
    let bad = ItemFilter { journey: Some("nope".into()), ..ItemFilter::default() };
    assert!(matches!(store.content().list_items(acme, &bad), Err(StoreError::NotFound(_))));
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

fn listed(store: &Store, ws: i64, filter: ItemFilter) -> Vec<String> {
    store
        .content()
        .list_items(ws, &filter)
        .expect("list")
        .items
        .into_iter()
        .map(|i| i.item.id)
        .collect()
}

fn all_items(store: &Store, ws: i64, include_archived: bool) -> Vec<String> {
    let filter = ItemFilter {
        limit: Some(200),
        include_archived: Some(include_archived),
        ..ItemFilter::default()
    };
    listed(store, ws, filter)
}

#[test]
fn archived_things_leave_every_read_and_restore_brings_them_back() {
    let (_dir, store, acme) = store();
    let journey = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
    let (stage_at, step) = journey
        .stages
        .iter()
        .enumerate()
        .find_map(|(at, stage)| stage.steps.iter().find(|s| s.item_count > 1).map(|s| (at, s)))
        .expect("a step with items");
    let on_step =
        listed(&store, acme, ItemFilter { step_id: Some(step.id.clone()), ..Default::default() });
    assert!(!on_step.is_empty());
    let before = all_items(&store, acme, false);
    let step_word = step.name.split_whitespace().next().expect("a word").to_owned();
    let hits = |store: &Store, include: bool| {
        let query = SearchQuery {
            query: step_word.clone(),
            include_archived: Some(include),
            ..SearchQuery::default()
        };
        store.content().search(acme, &query).expect("search").hits
    };
    assert!(hits(&store, false).iter().any(|h| h.id == step.id));

    let archived = store.content().set_archived(acme, ACTOR, &step.id, true).expect("archive");
    assert_eq!((archived.archived, archived.items), (true, on_step.len() as i64));
    let after = all_items(&store, acme, false);
    assert_eq!(after.len(), before.len() - on_step.len());
    assert!(on_step.iter().all(|id| !after.contains(id)));
    assert_eq!(all_items(&store, acme, true).len(), before.len());
    let map = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
    assert!(map.stages[stage_at].steps.iter().all(|s| s.id != step.id));
    let full = store.content().get_journey(acme, "trial-to-paid", true).expect("journey");
    let shown = full.stages[stage_at].steps.iter().find(|s| s.id == step.id).expect("shown");
    assert!(shown.archived && shown.items.iter().all(|i| i.archived));
    assert!(!hits(&store, false).iter().any(|h| h.id == step.id));
    assert!(hits(&store, true).iter().any(|h| h.id == step.id));
    // An item hit on the step is gone too, and back with include_archived.
    let item = store.content().get_item(acme, &on_step[0], None).expect("item");
    assert!(item.item.archived, "get_item by id still answers, flagged");
    let again = store.content().set_archived(acme, ACTOR, &step.id, true).expect_err("twice");
    assert!(again.to_string().contains("already archived"), "{again}");

    // A new item on the archived step is archived with it.
    let new = store
        .content()
        .create_item(acme, ACTOR, &new_item(&step.id, ItemKind::Insight, "Quietly filed"))
        .expect("create");
    assert!(new.item.archived);
    assert!(!all_items(&store, acme, false).contains(&new.item.id));

    let restored = store.content().set_archived(acme, ACTOR, &step.id, false).expect("restore");
    assert_eq!(restored.items, on_step.len() as i64 + 1);
    assert_eq!(all_items(&store, acme, false).len(), before.len() + 1);
    assert!(hits(&store, false).iter().any(|h| h.id == step.id));
    let not = store.content().set_archived(acme, ACTOR, &step.id, false).expect_err("not archived");
    assert!(not.to_string().contains("nothing to restore"), "{not}");

    // An item on its own: out of its step's count and the lists, and back.
    let count = |store: &Store| {
        let map = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
        map.stages[stage_at].steps.iter().find(|s| s.id == step.id).expect("step").item_count
    };
    let n = count(&store);
    store.content().set_archived(acme, ACTOR, &new.item.id, true).expect("archive item");
    assert_eq!(count(&store), n - 1);
    store.content().set_archived(acme, ACTOR, &new.item.id, false).expect("restore item");
    assert_eq!(count(&store), n);

    // A journey: out of the list, its things out of search, its map still readable by name.
    store.content().set_archived(acme, ACTOR, "trial-to-paid", true).expect("archive journey");
    let (journeys, _) = store.content().list_journeys(acme, None, false).expect("journeys");
    assert!(journeys.iter().all(|j| j.slug != "trial-to-paid"));
    let (journeys, _) = store.content().list_journeys(acme, None, true).expect("journeys");
    assert!(journeys.iter().any(|j| j.slug == "trial-to-paid" && j.archived));
    assert!(!hits(&store, false).iter().any(|h| h.id == step.id));
    let map = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
    assert!(map.archived && !map.stages.is_empty());
    let wrong = store.content().set_archived(acme, ACTOR, "nope_1", true).expect_err("unknown");
    assert!(wrong.to_string().contains("stage (stg_…)"), "{wrong}");
}

#[test]
fn stages_and_steps_move_and_reorder_and_items_follow() {
    let (_dir, store, acme) = store();
    let journey = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
    let (first, last) = (&journey.stages[0], journey.stages.last().expect("stages"));
    // Reorder: the last stage first.
    let moved = store
        .content()
        .update_stage(
            acme,
            ACTOR,
            &super::content::model::StageUpdate {
                stage_id: last.id.clone(),
                name: None,
                description: None,
                journey: None,
                position: Some(0),
            },
        )
        .expect("reorder");
    assert_eq!(moved.position, 0);
    let map = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
    let order: Vec<&str> = map.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order[0], last.id);
    assert_eq!(order[1], first.id);
    // Items list in map order: the moved stage's items come first now.
    let items = store
        .content()
        .list_items(
            acme,
            &ItemFilter {
                journey: Some("trial-to-paid".into()),
                limit: Some(200),
                ..Default::default()
            },
        )
        .expect("list");
    let stages: Vec<&str> = items.items.iter().map(|i| i.location.stage_id.as_str()).collect();
    let mut seen: Vec<&str> = stages.clone();
    seen.dedup();
    assert_eq!(
        seen.iter().collect::<std::collections::HashSet<_>>().len(),
        seen.len(),
        "stages stay together: {stages:?}"
    );
    if stages.contains(&last.id.as_str()) {
        assert_eq!(stages[0], last.id);
    }

    // Move a step to another journey's stage: its items follow, in lists and search.
    let step = &first.steps[0];
    let other = store
        .content()
        .create_journey(
            acme,
            ACTOR,
            &super::content::model::NewJourney {
                name: "Renewal".into(),
                slug: None,
                description: None,
                position: None,
            },
        )
        .expect("journey");
    let stage = store
        .content()
        .create_stage(
            acme,
            ACTOR,
            &super::content::model::NewStage {
                journey: other.id.clone(),
                name: "Renew".into(),
                description: None,
                position: None,
            },
        )
        .expect("stage");
    let moved = store
        .content()
        .update_step(
            acme,
            ACTOR,
            &super::content::model::StepUpdate {
                step_id: step.id.clone(),
                name: Some("Moved step".into()),
                description: None,
                stage_id: Some(stage.id.clone()),
                position: None,
            },
        )
        .expect("move");
    assert_eq!((moved.position, moved.parent_id.as_deref()), (0, Some(stage.id.as_str())));
    let there =
        listed(&store, acme, ItemFilter { journey: Some("renewal".into()), ..Default::default() });
    assert_eq!(there.len() as i64, step.item_count);
    let query = SearchQuery {
        query: "moved step".into(),
        journey: Some("renewal".into()),
        ..SearchQuery::default()
    };
    assert!(
        store.content().search(acme, &query).expect("search").hits.iter().any(|h| h.id == step.id)
    );
    if let Some(item) = there.first() {
        let query = SearchQuery {
            query: store.content().get_item(acme, item, None).expect("item").item.title,
            journey: Some("trial-to-paid".into()),
            ..SearchQuery::default()
        };
        assert!(
            store
                .content()
                .search(acme, &query)
                .expect("search")
                .hits
                .iter()
                .all(|h| h.id != *item)
        );
    }
    // Into an archived stage: hidden with it.
    store.content().set_archived(acme, ACTOR, &stage.id, true).expect("archive");
    assert!(
        listed(&store, acme, ItemFilter { journey: Some("renewal".into()), ..Default::default() })
            .is_empty()
    );
}

#[test]
fn items_carry_priority_impact_and_effort_and_filter_by_them() {
    let (_dir, store, acme) = store();
    let p1 = listed(&store, acme, ItemFilter { priority: Some("P1".into()), ..Default::default() });
    assert!(!p1.is_empty(), "the seed's P1 opportunities and solutions");
    for id in &p1 {
        let item = store.content().get_item(acme, id, None).expect("item");
        assert_eq!(item.item.priority.as_deref(), Some("P1"));
        assert!(!item.fields.contains_key("priority"), "a property, not a field");
    }
    let step = first_step(&store, acme);
    let mut new = new_item(&step, ItemKind::Touchpoint, "Zeppelin banner");
    new.impact = Some("high".into());
    new.effort = Some("low".into());
    let created = store.content().create_item(acme, ACTOR, &new).expect("create");
    let quick_wins = ItemFilter {
        impact: Some("high".into()),
        effort: Some("low".into()),
        ..Default::default()
    };
    assert!(listed(&store, acme, quick_wins).contains(&created.item.id));
    let query = SearchQuery {
        query: "zeppelin".into(),
        impact: Some("high".into()),
        ..SearchQuery::default()
    };
    assert_eq!(store.content().search(acme, &query).expect("search").hits.len(), 1);
    let query = SearchQuery {
        query: "zeppelin".into(),
        impact: Some("low".into()),
        ..SearchQuery::default()
    };
    assert!(store.content().search(acme, &query).expect("search").hits.is_empty());
    let update = ItemUpdate {
        item_id: created.item.id.clone(),
        impact: Some(String::new()),
        priority: Some("P0".into()),
        ..Default::default()
    };
    let updated = store.content().update_item(acme, ACTOR, &update).expect("update");
    assert_eq!((updated.item.impact, updated.item.priority.as_deref()), (None, Some("P0")));
    let bad = ItemUpdate {
        item_id: created.item.id.clone(),
        effort: Some("huge".into()),
        ..Default::default()
    };
    let err = store.content().update_item(acme, ACTOR, &bad).expect_err("bad effort");
    assert!(err.to_string().contains("low, medium, high"), "{err}");
    let filter = ItemFilter { priority: Some("urgent".into()), ..Default::default() };
    assert!(store.content().list_items(acme, &filter).is_err());

    // An item moves to another step, at the end of its items, and both counts follow.
    let journey = store.content().get_journey(acme, "support-escalation", false).expect("journey");
    let target = &journey.stages[0].steps[0];
    let update = ItemUpdate {
        item_id: created.item.id.clone(),
        step_id: Some(target.id.clone()),
        ..Default::default()
    };
    let moved = store.content().update_item(acme, ACTOR, &update).expect("move");
    assert_eq!(moved.location.step_id, target.id);
    let there =
        listed(&store, acme, ItemFilter { step_id: Some(target.id.clone()), ..Default::default() });
    assert_eq!(there.last(), Some(&created.item.id));
    let after = store.content().get_journey(acme, "support-escalation", false).expect("journey");
    assert_eq!(after.stages[0].steps[0].item_count, target.item_count + 1);
    let query = SearchQuery {
        query: "zeppelin".into(),
        journey: Some("support-escalation".into()),
        ..SearchQuery::default()
    };
    assert_eq!(store.content().search(acme, &query).expect("search").hits.len(), 1);
}

#[test]
fn personas_link_to_journeys_and_links_come_undone() {
    let (_dir, store, acme) = store();
    let (personas, _) = store.content().list_personas(acme, None).expect("personas");
    let persona = &personas[0];
    let link =
        store.content().link_persona(acme, ACTOR, "trial-to-paid", &persona.id).expect("link");
    assert_eq!(link.persona.id, persona.id);
    let map = store.content().get_journey(acme, "trial-to-paid", false).expect("journey");
    assert_eq!(map.personas.iter().map(|p| &p.id).collect::<Vec<_>>(), [&persona.id]);
    assert!(store.content().link_persona(acme, ACTOR, "trial-to-paid", &persona.id).is_err());
    store.content().unlink_persona(acme, ACTOR, "trial-to-paid", &persona.id).expect("unlink");
    assert!(
        store
            .content()
            .get_journey(acme, "trial-to-paid", false)
            .expect("journey")
            .personas
            .is_empty()
    );
    assert!(store.content().unlink_persona(acme, ACTOR, "trial-to-paid", &persona.id).is_err());

    let opportunity = find(&store, acme, ItemKind::Opportunity);
    let detail = store.content().get_item(acme, &opportunity.id, None).expect("item");
    let cause = detail.linked_from[0].id.clone();
    store.content().unlink_items(acme, ACTOR, &cause, &opportunity.id).expect("unlink");
    let after = store.content().get_item(acme, &opportunity.id, None).expect("item");
    assert_eq!(after.linked_from_total, detail.linked_from_total - 1);
    let err = store.content().unlink_items(acme, ACTOR, &opportunity.id, &cause).expect_err("none");
    assert!(err.to_string().contains("no link from"), "{err}");

    let update = super::content::model::PersonaUpdate {
        persona_id: persona.id.clone(),
        name: None,
        role: Some("VP Data".into()),
        bio: None,
        job_to_be_done: None,
        goals: Some(vec!["Fewer dashboards".into()]),
        frustrations: None,
    };
    let updated = store.content().update_persona(acme, ACTOR, &update).expect("update");
    assert_eq!((updated.role.as_str(), updated.goals.len()), ("VP Data", 1));
    assert_eq!(updated.frustrations, persona.frustrations);
}

#[test]
fn migration_3_turns_archived_statuses_and_priority_fields_into_their_own_columns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v2.db");
    {
        // A database as version 2 left it, holding what version 3 changes.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(include_str!("migrations/sqlite/0001_init.sql")).expect("0001");
        conn.execute_batch(include_str!("migrations/sqlite/0002_search_and_order.sql"))
            .expect("0002");
        conn.execute_batch(
            r#"PRAGMA user_version = 2;
            INSERT INTO workspaces (id, slug, name, created_at) VALUES (1, 'old', 'Old', 0);
            INSERT INTO journeys (id, workspace_id, slug, name, position, created_at)
                VALUES ('jrn_1', 1, 'j', 'J', 0, 0);
            INSERT INTO stages (id, workspace_id, journey_id, name, position)
                VALUES ('stg_1', 1, 'jrn_1', 'S', 0);
            INSERT INTO steps (id, workspace_id, stage_id, name, position, map_order, item_count)
                VALUES ('stp_1', 1, 'stg_1', 'T', 0, 1, 2);
            INSERT INTO items (id, workspace_id, step_id, kind, title, status, fields, created_at,
                               updated_at, map_order)
                VALUES ('itm_1', 1, 'stp_1', 'opportunity', 'Retired idea', 'archived',
                        '{"priority":"p1","impact":"High","confidence":"low"}', 0, 5, 1),
                       ('itm_2', 1, 'stp_1', 'solution', 'Live one', 'planned',
                        '{"effort":"low","priority":"someday"}', 0, 0, 1);"#,
        )
        .expect("v2 data");
    }
    let store = Store::open(&path, Clock::default()).expect("migrate");
    let retired = store.content().get_item(1, "itm_1", None).expect("item");
    assert!(retired.item.archived);
    assert_eq!(retired.item.status, "open", "the kind's first status");
    assert_eq!(retired.item.priority.as_deref(), Some("P1"));
    assert_eq!(retired.item.impact.as_deref(), Some("high"));
    assert_eq!(retired.fields.keys().collect::<Vec<_>>(), ["confidence"]);
    let live = store.content().get_item(1, "itm_2", None).expect("item");
    assert!(!live.item.archived);
    assert_eq!((live.item.effort.as_deref(), live.item.priority.as_deref()), (Some("low"), None));
    assert_eq!(live.fields["priority"], "someday", "a value it cannot read stays a field");
    assert_eq!(listed(&store, 1, ItemFilter::default()), ["itm_2"]);
    let map = store.content().get_journey(1, "j", false).expect("journey");
    assert_eq!(map.stages[0].steps[0].item_count, 1);
    let query = SearchQuery { query: "retired".into(), ..SearchQuery::default() };
    assert!(store.content().search(1, &query).expect("search").hits.is_empty());
    let query = SearchQuery {
        query: "retired".into(),
        include_archived: Some(true),
        ..SearchQuery::default()
    };
    assert_eq!(store.content().search(1, &query).expect("search").hits.len(), 1);
}

#[test]
fn a_document_persona_with_too_many_goals_is_refused_with_its_path() {
    let (_dir, store, acme) = store();
    let mut doc = store.content().export_workspace(acme).expect("export");
    doc.personas[0].goals = (0..31).map(|n| format!("Goal {n}")).collect();
    let errors = super::content::transfer::validate(&doc).expect_err("too many goals");
    assert_eq!(errors[0].path, "personas[0].goals", "{errors:?}");
    assert!(errors[0].message.contains("at most 30"), "{errors:?}");
}

fn test_identity(workspace_id: i64) -> super::access::KeyIdentity {
    super::access::KeyIdentity {
        key_id: ACTOR.key_id.into(),
        key_prefix: ACTOR.key_prefix.into(),
        workspace_id,
        workspace_slug: "acme".into(),
        access: crate::api::Access::ReadWrite,
        stored_client: None,
        scopes: Default::default(),
        expires: crate::api::ExpiryPolicy::Days30,
        networks: Vec::new(),
    }
}

#[test]
fn the_call_queue_is_bounded_and_what_overflows_still_counts() {
    use super::access::QUEUE_MAX;
    let (_dir, store, acme) = store();
    let key = test_identity(acme);
    for _ in 0..QUEUE_MAX + 5 {
        let call = super::access::Call {
            at: store.now(),
            what: "list_journeys",
            outcome: crate::api::CallOutcome::Ok,
            bytes: 10,
            ids: String::new(),
        };
        store.access().record_call(&key, None, call);
    }
    assert_eq!(
        store.access().flush_activity().expect("flush"),
        QUEUE_MAX,
        "rows past the bound dropped"
    );
    let rows: i64 = store
        .db
        .reader()
        .expect("reader")
        .query_row("SELECT COUNT(*) AS n FROM key_calls", [], |r| r.get("n"))
        .expect("count");
    assert_eq!(rows, QUEUE_MAX as i64);
    let usage = store
        .access()
        .key_usage(acme, ACTOR.key_id, store.now() - chrono::Duration::days(1), 10, None)
        .expect("usage");
    assert_eq!(usage.totals.calls, QUEUE_MAX as i64 + 5, "but every call is in the totals");
    assert_eq!(usage.totals.bytes, 10 * (QUEUE_MAX as i64 + 5));
    assert_eq!(store.access().flush_activity().expect("flush"), 0, "nothing left queued");
}

#[test]
fn a_client_renaming_itself_at_every_request_cannot_grow_its_origins() {
    let (_dir, store, acme) = store();
    let key = test_identity(acme);
    let ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
    for n in 0..40 {
        // Twenty names per flush: eight are queued, the rest come back at their next use.
        for m in 0..20 {
            store.access().note_origin(&key, ip, Some(&format!("client-{n}-{m}/1.0")), store.now());
        }
        store.access().flush_activity().expect("flush");
    }
    let count = |sql: &str| -> i64 {
        store.db.reader().expect("reader").query_row(sql, [], |r| r.get("n")).expect("count")
    };
    let clients = count("SELECT COUNT(*) AS n FROM key_origins WHERE kind = 'client'");
    assert_eq!(clients, super::access::ORIGINS_PER_KEY);
    let events = count("SELECT COUNT(*) AS n FROM audit_events WHERE kind = 'key.new_origin'");
    assert_eq!(events, super::access::ORIGINS_PER_KEY, "one event per recorded origin");
}

#[test]
fn idle_keys_leave_the_origin_maps_and_come_back_without_a_second_event() {
    use super::access::forget_idle_origins;
    let (_dir, store, acme) = store();
    store.insert_test_key(acme, "key_idle");
    let busy = test_identity(acme);
    let idle = super::access::KeyIdentity { key_id: "key_idle".into(), ..test_identity(acme) };
    let ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
    let now = store.now();
    store.access().note_origin(&idle, ip, Some("cursor/1.0"), now - chrono::Duration::minutes(20));
    store.access().note_origin(&busy, ip, Some("cursor/1.0"), now);
    store.access().flush_activity().expect("flush");
    let events = || -> i64 {
        let sql = "SELECT COUNT(*) AS n FROM audit_events WHERE kind = 'key.new_origin'";
        store.db.reader().expect("reader").query_row(sql, [], |r| r.get("n")).expect("count")
    };
    let first = events();
    assert!(first > 0, "new origins are announced");
    // The key unused for 20 minutes leaves the last-use map; what was written stays known.
    assert_eq!(forget_idle_origins(&store.access(), now), (1, 2));
    // Two hours on, nothing is left of either key.
    assert_eq!(forget_idle_origins(&store.access(), now + chrono::Duration::hours(2)), (0, 0));
    // Used again from where it was: the database still knows the origin, so no new event.
    store.access().note_origin(&idle, ip, Some("cursor/1.0"), now);
    store.access().flush_activity().expect("flush");
    assert_eq!(events(), first);
    assert_eq!(forget_idle_origins(&store.access(), now), (1, 1));
}

#[test]
fn a_flush_waits_for_one_under_way_so_a_read_after_it_sees_every_call() {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Stops the background flusher however the test ends, so a failure fails, not hangs.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let (_dir, store, acme) = store();
    let key = test_identity(acme);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The periodic flush, as often as it can run.
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                store.access().flush_activity().expect("background flush");
            }
        });
        let _stop = Stop(&done);
        for n in 1..=200_i64 {
            let call = super::access::Call {
                at: store.now(),
                what: "list_journeys",
                outcome: crate::api::CallOutcome::Ok,
                bytes: 1,
                ids: String::new(),
            };
            store.access().record_call(&key, None, call);
            store.access().flush_activity().expect("flush");
            let rows: i64 = store
                .db
                .reader()
                .expect("reader")
                .query_row("SELECT COUNT(*) AS n FROM key_calls", [], |r| r.get("n"))
                .expect("count");
            assert_eq!(rows, n, "call {n} written once this replica's flush returned");
        }
    });
}

#[test]
fn a_flush_writes_a_chunk_at_a_time_and_a_failed_one_keeps_what_it_did_not_write() {
    let (_dir, store, acme) = store();
    let key = test_identity(acme);
    let calls = 5_000;
    for _ in 0..calls {
        let call = super::access::Call {
            at: store.now(),
            what: "list_journeys",
            outcome: crate::api::CallOutcome::Ok,
            bytes: 1,
            ids: String::new(),
        };
        store.access().record_call(&key, None, call);
    }
    // The database refuses the third thousand: what came before is committed, chunk by chunk.
    let conn = store.db.writer();
    conn.execute_batch(
        "CREATE TRIGGER full BEFORE INSERT ON key_calls
         WHEN (SELECT COUNT(*) FROM key_calls) >= 2500 BEGIN SELECT RAISE(ABORT, 'full'); END",
    )
    .expect("trigger");
    drop(conn);
    store.access().flush_activity().expect_err("the third chunk fails");
    let count = |sql: &str| -> i64 {
        store.db.reader().expect("reader").query_row(sql, [], |r| r.get("n")).expect("count")
    };
    let written = count("SELECT COUNT(*) AS n FROM key_calls");
    assert!((1..calls).contains(&written), "some chunks committed before the failure: {written}");
    assert_eq!(written % 1024, 0, "whole chunks only: {written}");
    store.db.writer().execute_batch("DROP TRIGGER full").expect("drop");
    assert_eq!(store.access().flush_activity().expect("flush"), (calls - written) as usize);
    assert_eq!(count("SELECT COUNT(*) AS n FROM key_calls"), calls, "none lost, none twice");
    let usage = store
        .access()
        .key_usage(acme, ACTOR.key_id, store.now() - chrono::Duration::days(1), 10, None)
        .expect("usage");
    assert_eq!(usage.totals.calls, calls, "the totals count each call once");
}

#[test]
fn migration_8_attributes_what_exists_to_the_administrator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v6.db");
    {
        // A database as version 6 left it: keys (one minted by OAuth) and their events.
        let conn = rusqlite::Connection::open(&path).expect("open");
        for sql in [
            include_str!("migrations/sqlite/0001_init.sql"),
            include_str!("migrations/sqlite/0002_search_and_order.sql"),
            include_str!("migrations/sqlite/0003_model.sql"),
            include_str!("migrations/sqlite/0004_recent_changes.sql"),
            include_str!("migrations/sqlite/0005_oauth.sql"),
            include_str!("migrations/sqlite/0006_activity.sql"),
        ] {
            conn.execute_batch(sql).expect("an earlier migration");
        }
        conn.execute_batch(
            r#"PRAGMA user_version = 6;
            INSERT INTO workspaces (id, slug, name, created_at) VALUES (1, 'old', 'Old', 0);
            INSERT INTO mcp_keys (id, workspace_id, name, prefix, token_hash, access, expires,
                                  created_at)
                VALUES ('key_a', 1, 'by hand', 'cst_aaaaaaaa', zeroblob(32), 'read-write', 'never', 1),
                       ('key_b', 1, 'by oauth', 'cst_bbbbbbbb', randomblob(32), 'read-only',
                        'never', 2);
            UPDATE mcp_keys SET oauth_client_id = 'cli_1', oauth_client_name = 'Claude'
                WHERE id = 'key_b';
            INSERT INTO audit_events (workspace_id, at, kind, key_id, key_prefix, detail)
                VALUES (1, 1, 'key.created', 'key_a', 'cst_aaaaaaaa', 'created'),
                       (1, 2, 'tool.called', 'key_a', 'cst_aaaaaaaa', 'add_comment'),
                       (1, 3, 'auth.rejected', 'key_a', 'cst_aaaaaaaa', 'refused');"#,
        )
        .expect("v6 data");
    }
    let store = Store::open(&path, Clock::default()).expect("migrate");
    use crate::api::{Author, AuthorKind};
    let by_hand = store.access().get_key(1, "key_a").expect("key");
    assert_eq!(by_hand.created_by, Author::of(AuthorKind::Administrator));
    let by_oauth = store.access().get_key(1, "key_b").expect("key");
    assert_eq!(by_oauth.created_by, Author::of(AuthorKind::Consent));
    let (events, _) = store.access().list_events(1, None, 10, None).expect("events");
    let actors: Vec<AuthorKind> = events.iter().map(|e| e.actor.kind).collect();
    assert_eq!(actors, [AuthorKind::Server, AuthorKind::Key, AuthorKind::Administrator]);
    assert!(store.access().list_members(1).expect("members").is_empty());
}

#[test]
fn a_burst_of_first_uses_is_written_in_chunks_and_idle_keys_leave_memory() {
    use super::access::KeyUsage;
    let (_dir, store, acme) = store();
    let ids: Vec<String> = (0..1_201).map(|i| format!("key_burst{i}")).collect();
    for id in &ids {
        store.insert_test_key(acme, id);
    }
    let long_ago = store.now() - chrono::Duration::hours(1);
    for id in &ids {
        let usage = KeyUsage { at: long_ago, client: Some("burst".into()), ip: None };
        store.access().note_usage(id, usage, || None);
    }
    let recent = KeyUsage { at: store.now(), client: None, ip: None };
    store.access().note_usage(ACTOR.key_id, recent, || None);
    // Every use written (three chunks), none left to write.
    assert_eq!(store.access().flush_usage().expect("flush"), 1_202);
    assert_eq!(store.access().flush_usage().expect("nothing left"), 0);
    let written: i64 = store
        .db
        .writer()
        .query_row(
            "SELECT count(*) AS n FROM mcp_keys WHERE last_used_client = 'burst'",
            [],
            |row| row.get("n"),
        )
        .expect("count");
    assert_eq!(written, 1_201);
    // Written and idle for an hour: gone from memory; the key used just now stays.
    let (_, held) = store.access().forget_idle_keys();
    assert_eq!(held, 1);
    let shown = store.access().get_key(acme, &ids[0]).expect("key");
    assert_eq!(shown.last_used_client.as_deref(), Some("burst"), "read from the database");
}

#[test]
fn an_address_limited_key_takes_an_ipv4_client_seen_as_an_ipv4_mapped_address() {
    let scopes =
        crate::api::KeyScopes { allow_ip: Some(vec!["10.0.0.0/8".into()]), ..Default::default() };
    let key = super::access::KeyIdentity {
        networks: super::access::KeyIdentity::networks_of(&scopes),
        scopes,
        ..test_identity(1)
    };
    let mapped: std::net::IpAddr = "::ffff:10.1.2.3".parse().expect("address");
    assert!(key.allows_address(Some(mapped)));
    assert!(key.allows_address(Some("10.1.2.3".parse().expect("address"))));
    assert!(!key.allows_address(Some("::ffff:192.168.0.1".parse().expect("address"))));
    assert!(!key.allows_address(None));
}

#[test]
fn an_audit_sink_resumes_from_its_cursor_takes_turns_and_counts_calls_pruned_unsent() {
    let (_dir, store, acme) = store();
    let call = |at: i64| {
        let conn = store.db.writer();
        let tx = conn.transaction().expect("tx");
        tx.execute(
            "INSERT INTO key_calls (workspace_id, key_id, at, what, outcome, bytes, ids)
             VALUES (?1, ?2, ?3, 'list_journeys', 'ok', 10, '')",
            super::db::params![acme, ACTOR.key_id, at],
        )
        .expect("call");
        tx.commit().expect("commit");
    };
    let now = || store.now().timestamp();
    call(now());
    // A new sink starts after what is recorded: the call before it is not sent.
    let access = store.access();
    let cursor = access.hold_sink("s1", "collector/ingest", "a").expect("hold").expect("held");
    assert!(access.stream_after(&cursor, 100).expect("read").is_empty());
    assert_eq!(access.hold_sink("s1", "collector/ingest", "b").expect("hold"), None, "b waits");

    (0..3).for_each(|_| call(now()));
    let lines = access.stream_after(&cursor, 2).expect("read");
    assert_eq!(lines.len(), 2, "a batch holds at most its limit");
    let lines = access.stream_after(&cursor, 100).expect("read");
    let ids: Vec<i64> = lines.iter().map(|line| line.event.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(lines.iter().all(|l| l.workspace == "acme" && l.event.call.is_some()));
    let last = ids[2];
    assert!(!access.sent_to_sink("s1", "b", 0, last, 3).expect("sent"), "b holds no lease");
    assert!(access.sent_to_sink("s1", "a", cursor.events_after, last, 3).expect("sent"));
    let cursor = access.hold_sink("s1", "collector/ingest", "a").expect("hold").expect("held");
    assert_eq!((cursor.calls_after, cursor.sent), (last, 3));
    assert!(access.stream_after(&cursor, 100).expect("read").is_empty(), "resumes after them");

    // Two calls not sent, then a month: the prune deletes all five and counts those two.
    (0..2).for_each(|_| call(now()));
    store.clock().advance(chrono::Duration::days(31));
    let month = store.now() - chrono::Duration::days(30);
    access.prune_activity(month, month).expect("prune");
    let count = store
        .db
        .writer()
        .query_row("SELECT COUNT(*) AS n FROM key_calls", [], |row| row.get::<i64>("n"));
    assert_eq!(count.expect("count"), 0);
    // The lease lapsed meanwhile: b takes the sink, with a's cursor and the drops.
    let cursor = access.hold_sink("s1", "collector/ingest", "b").expect("hold").expect("taken");
    assert_eq!((cursor.calls_after, cursor.dropped), (last, 2));
    // A call after the table emptied gets a new id (SQLite would reuse one without
    // AUTOINCREMENT), so the sink sees it.
    call(now());
    let lines = access.stream_after(&cursor, 100).expect("read");
    assert_eq!(lines.len(), 1);
    assert!(lines[0].event.id > last + 2, "an id handed out again: {}", lines[0].event.id);
    // Given up, it is taken at once.
    access.release_sink("s1", "b").expect("release");
    assert!(access.hold_sink("s1", "collector/ingest", "a").expect("hold").is_some());
}
