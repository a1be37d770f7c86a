//! Isolation between workspaces: a key of workspace A tries every id-taking parameter of every
//! tool on workspace B's objects. It learns nothing (B's ids are told exactly like unknown
//! ones), changes nothing, and leaves nothing in B's audit trail. Resources, prompts and
//! completion are in `resources.rs`, on the same two workspaces.

use serde_json::{Value, json};

use super::wellformed::checked_call;
use super::{error_text, lenient_server};
use crate::common::{Key, Owner, TestDatabase, TestServer};

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
async fn snapshot(key: &Key, items: &[String]) -> Vec<Value> {
    let mut seen = vec![
        key.ok("get_workspace", json!({})).await,
        key.ok("list_journeys", json!({})).await,
        key.ok("get_journey", json!({"journey": "zebra-secret"})).await,
        key.ok("get_journey", json!({"journey": "trial-to-paid"})).await,
        key.ok("list_items", json!({"limit": 200})).await,
        key.ok("list_personas", json!({})).await,
        key.ok("search", json!({"query": "Zyxwvut", "limit": 100})).await,
    ];
    for id in items {
        seen.push(key.ok("get_item", json!({"item_id": id})).await);
    }
    // The calling key's last use is in get_workspace's answer only as id/prefix: stable.
    seen
}

/// Two workspaces: A (the demo, `acme`) and B (`beta`), each with a key, B with a map, items,
/// links and a comment; and what B's key saw of B before A's key tried anything.
pub struct TwoWorkspaces {
    pub server: TestServer,
    owner: Owner,
    pub a: Key,
    pub b: Key,
    pub journeys_b: Vec<String>,
    pub stages_b: Vec<String>,
    pub steps_b: Vec<String>,
    pub persona_b: String,
    pub items_b: Vec<String>,
    before: Vec<Value>,
    audit_before: Value,
}

impl TwoWorkspaces {
    pub async fn start() -> Self {
        let server = lenient_server().await;
        let owner = server.owner();

        // Workspace B through the admin API, a map in it, and its items through B's own key.
        owner.create_workspace(json!({"name": "Beta Zyxwvut", "slug": "beta"})).await;
        let (journeys_b, stages_b, steps_b, persona_b) = seed_map(&server.db, "beta");
        let b = owner.create_key_in("beta", json!({"name": "B agent", "expires": "never"})).await;
        let a = owner.create_key("A agent", "never", "read-write").await;

        let mut items_b = Vec::new();
        for (kind, fields) in [
            ("touchpoint", json!({"channel": "Zyxwvut email"})),
            ("insight", json!({"segment": "Zyxwvut"})),
            ("opportunity", json!({"confidence": "high"})),
            ("solution", json!({"solution_type": "Vexmore"})),
            ("metric", json!({"unit": "Zyxwvut units"})),
        ] {
            let item = b
                .ok(
                    "create_item",
                    json!({"step_id": steps_b[0], "kind": kind, "title": format!("Zyxwvut {kind}"),
                           "description": "Vexmore secret plan", "owner": "Quillon Vex", "fields": fields}),
                )
                .await;
            items_b.push(item["id"].as_str().expect("id").to_owned());
        }
        for pair in items_b.windows(2).take(3) {
            b.ok("link_items", json!({"from_item_id": pair[0], "to_item_id": pair[1]})).await;
        }
        b.ok("add_comment", json!({"item_id": items_b[0], "body": "Zyxwvut comment"})).await;
        b.ok("update_item", json!({"item_id": items_b[2], "status": "in-progress"})).await;
        let before = snapshot(&b, &items_b).await;
        let audit_before = owner.audit("beta", "?limit=1000").await;
        Self {
            server,
            owner,
            a,
            b,
            journeys_b,
            stages_b,
            steps_b,
            persona_b,
            items_b,
            before,
            audit_before,
        }
    }

    /// Every id and word of B, which nothing A sees may hold.
    pub fn secrets(&self) -> Vec<&str> {
        self.items_b
            .iter()
            .chain(&self.journeys_b)
            .chain(&self.stages_b)
            .chain(&self.steps_b)
            .chain([&self.persona_b])
            .map(String::as_str)
            .chain(B_WORDS)
            .collect()
    }

    /// B is exactly as it was, and A's attempts left nothing in B's audit trail; then stops.
    pub async fn assert_b_untouched_and_stop(self) {
        let after = snapshot(&self.b, &self.items_b).await;
        assert_eq!(self.before, after, "B changed");
        let audit_after = self.owner.audit("beta", "?limit=1000").await;
        assert_eq!(self.audit_before, audit_after, "A's attempts show in B's audit");
        self.server.stop().await;
    }
}

#[tokio::test]
async fn a_key_of_one_workspace_reaches_nothing_of_another() {
    let two = TwoWorkspaces::start().await;
    let a = &two.a;

    // A's own objects, for links across the boundary.
    let items_a = a.ok("list_items", json!({"limit": 200})).await;
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
    let a_journey = a.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let a_workspace_before = a.ok("get_workspace", json!({})).await;

    // Every id-taking parameter of every tool, pointed at B.
    let items_b = &two.items_b;
    let (tp, ins, opp, sol, met) =
        (&items_b[0], &items_b[1], &items_b[2], &items_b[3], &items_b[4]);
    let mut attempts: Vec<(&str, Value)> = Vec::new();
    for journey in [&two.journeys_b[0], &two.journeys_b[1], &"zebra-secret".to_owned()] {
        attempts.push(("get_journey", json!({"journey": journey})));
        attempts.push(("list_items", json!({"journey": journey})));
    }
    for stage in &two.stages_b {
        attempts.push(("list_items", json!({"stage_id": stage})));
        attempts.push(("list_items", json!({"stage_id": stage, "kind": "touchpoint"})));
    }
    for step in &two.steps_b {
        attempts.push(("list_items", json!({"step_id": step})));
        attempts.push((
            "create_item",
            json!({"step_id": step, "kind": "insight", "title": "Injected"}),
        ));
    }
    attempts.push(("list_items", json!({"owner": "Quillon Vex"})));
    attempts.push(("list_items", json!({"owner": "Quillon Vex", "kind": "metric"})));
    attempts.push(("list_items", json!({"status": "in-progress", "owner": "quillon vex"})));
    for item in items_b {
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
    for id in items_b
        .iter()
        .chain(&two.journeys_b)
        .chain(&two.stages_b)
        .chain(&two.steps_b)
        .chain([&two.persona_b])
    {
        attempts.push(("search", json!({"query": id})));
    }
    attempts.push(("get_workspace", json!({})));
    attempts.push(("list_journeys", json!({})));
    attempts.push(("list_personas", json!({})));
    attempts.push(("list_items", json!({"limit": 200})));

    let b_secrets = two.secrets();
    let mut refused = 0;
    for (tool, args) in &attempts {
        let result = checked_call(a, tool, args.clone()).await;
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
                let other = checked_call(a, tool, probe).await;
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
    let a_workspace_after = a.ok("get_workspace", json!({})).await;
    assert_eq!(a_workspace_after["items"]["total"], a_workspace_before["items"]["total"]);
    eprintln!(
        "security isolation: {} cross-workspace tool calls ({refused} refused, the rest showed \
         only A's own data)",
        attempts.len()
    );
    two.assert_b_untouched_and_stop().await;
}
