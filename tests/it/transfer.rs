//! `export` and `import` as a user runs them: the round trip, the schema an export obeys (checked
//! by Python's `jsonschema`, not by us), bad documents refused with their JSON path and nothing
//! written, a second import of the same file refused, mutated exports; CSV files as journeys.

use std::path::{Path, PathBuf};

use custory_mcp::store::Database;
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::common::{Run, TestEnv, TestServer, comparable, run_piped};

struct Cli<'a> {
    env: TestEnv,
    server: &'a TestServer,
}

impl<'a> Cli<'a> {
    fn new(server: &'a TestServer) -> Self {
        Self { env: TestEnv::new(), server }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.env.home.path().join(name)
    }

    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.env.command();
        cmd.env("CUSTORY_SERVER", &self.server.url)
            .env("CUSTORY_OWNER_TOKEN", &self.server.owner_token)
            .args(args);
        run_piped(cmd, None).await
    }

    async fn export(&self, workspace: &str, name: &str) -> Value {
        let file = self.path(name);
        let file = file.to_str().expect("utf-8 path");
        let ran = self.run(&["--workspace", workspace, "export", "-o", file]).await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("json")
    }

    fn write(&self, name: &str, doc: &Value) -> String {
        let file = self.path(name);
        std::fs::write(&file, serde_json::to_vec(doc).expect("json")).expect("write");
        file.display().to_string()
    }
}

#[tokio::test]
async fn a_workspace_survives_export_and_import_whole() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    // What a workspace in use holds beyond the demo: archived things, a persona on a journey.
    let mcp = server.owner().create_key("shaper", "30d", "read-write").await;
    let map = mcp.ok("get_journey", json!({"journey": "support-escalation"})).await;
    mcp.ok("archive", json!({"id": map["stages"][1]["id"]})).await;
    let item = mcp.ok("list_items", json!({"journey": "trial-to-paid", "limit": 1})).await;
    mcp.ok("archive", json!({"id": item["items"][0]["id"]})).await;
    let personas = mcp.ok("list_personas", json!({})).await;
    let persona = personas["personas"][0]["id"].clone();
    mcp.ok("link_persona", json!({"journey": "trial-to-paid", "persona_id": persona})).await;

    let first = cli.export("acme", "acme.json").await;
    assert_eq!(first["format"], "custory-workspace/1");
    assert!(first["links"].as_array().is_some_and(|l| !l.is_empty()));
    assert_eq!(first["journeys"][1]["stages"][1]["archived"], true);
    let archived_item = first["journeys"][0]["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|stage| stage["steps"].as_array().into_iter().flatten())
        .flat_map(|step| step["items"].as_array().into_iter().flatten())
        .find(|i| i["id"] == item["items"][0]["id"])
        .expect("the archived item is exported");
    assert_eq!(archived_item["archived"], true);
    assert_eq!(first["personas"][0]["journeys"], json!(["trial-to-paid"]));
    assert!(first.to_string().contains(r#""priority":"P1""#), "priority is exported");

    let file = cli.path("acme.json").display().to_string();
    let imported = cli.run(&["import", &file, "--new", "Acme Copy"]).await;
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert_eq!(imported.stdout.trim(), "acme-copy", "the new workspace's slug, on stdout");
    assert!(imported.stderr.contains("Imported 2 journeys"), "{}", imported.stderr);
    let second = cli.export("acme-copy", "copy.json").await;
    assert_eq!(second["workspace"], json!({"name": "Acme Copy", "slug": "acme-copy"}));
    assert_eq!(comparable(second), comparable(first.clone()), "identical but for ids and times");

    // Times are kept, as a backup should keep them.
    let times =
        |doc: &Value| doc["journeys"][0]["stages"][0]["steps"][0]["items"][0]["created_at"].clone();
    let copy: Value =
        serde_json::from_str(&std::fs::read_to_string(cli.path("copy.json")).expect("read"))
            .expect("json");
    assert_eq!(times(&copy), times(&first));

    // The same file again: refused, with why and what to do instead.
    let again = cli.run(&["import", &file, "--new", "Acme Copy"]).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already exists; nothing was imported"), "{}", again.stderr);
    let into = cli.run(&["--workspace", "acme", "import", &file]).await;
    assert_eq!(into.code, 1);
    assert!(into.stderr.contains("already holds journeys"), "{}", into.stderr);

    // An empty workspace takes it; the import is searchable and audited.
    let created = cli.run(&["workspaces", "create", "Empty one"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let into = cli.run(&["--workspace", "empty-one", "--json", "import", &file]).await;
    assert_eq!(into.code, 0, "{}", into.stderr);
    let answer: Value = serde_json::from_str(&into.stdout).expect("json");
    assert_eq!(
        (answer["workspace"].as_str(), answer["items"].as_u64()),
        (Some("empty-one"), Some(20))
    );
    let audit = cli.run(&["--workspace", "empty-one", "--json", "audit"]).await;
    assert!(audit.stdout.contains("workspace.imported"), "{}", audit.stdout);
    server.stop().await;
}

#[tokio::test]
async fn a_dry_run_checks_everything_and_writes_nothing() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    cli.export("acme", "acme.json").await;
    let file = cli.path("acme.json").display().to_string();
    let ran = cli.run(&["--json", "import", &file, "--new", "Trial", "--dry-run"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let answer: Value = serde_json::from_str(&ran.stdout).expect("json");
    assert_eq!(answer["dry_run"], true);
    assert_eq!(answer["links"], 18);
    let list = cli.run(&["--json", "workspaces", "list"]).await;
    assert!(!list.stdout.contains("\"trial\""), "{}", list.stdout);
    server.stop().await;
}

/// The database's state, to show a refused import changed nothing: on SQLite the files' bytes,
/// on PostgreSQL every table's rows counted and every workspace exported.
async fn state(server: &TestServer, cli: &Cli<'_>) -> Vec<u8> {
    match &server.db.database {
        Database::Sqlite(path) => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                bytes.extend(std::fs::read(PathBuf::from(file)).unwrap_or_default());
            }
            bytes
        }
        Database::Postgres(_) => {
            let mut state = Vec::new();
            for table in [
                "workspaces",
                "journeys",
                "stages",
                "steps",
                "items",
                "item_links",
                "comments",
                "personas",
                "audit_events",
            ] {
                // The export below is itself audited (workspace.exported): not a write.
                let only = match table {
                    "audit_events" => " WHERE kind <> 'workspace.exported'",
                    _ => "",
                };
                let n = server.db.query_row(&format!("SELECT count(*) FROM {table}{only}"), &[])[0]
                    .int();
                state.extend(format!("{table} {n:?}\n").bytes());
            }
            state
                .extend(serde_json::to_vec(&cli.export("acme", "state.json").await).expect("json"));
            state
        }
    }
}

#[tokio::test]
async fn bad_documents_are_refused_with_their_path_and_nothing_is_written() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    let good = cli.export("acme", "acme.json").await;
    let text = std::fs::read_to_string(cli.path("acme.json")).expect("read");
    // The first step with two items, as a JSON pointer to its first item.
    let first_item = {
        let mut found = None;
        for (j, journey) in good["journeys"].as_array().expect("journeys").iter().enumerate() {
            for (s, stage) in journey["stages"].as_array().expect("stages").iter().enumerate() {
                for (t, step) in stage["steps"].as_array().expect("steps").iter().enumerate() {
                    if found.is_none() && step["items"].as_array().is_some_and(|i| i.len() >= 2) {
                        found = Some((j, s, t));
                    }
                }
            }
        }
        let (j, s, t) = found.expect("a step with two items");
        format!("/journeys/{j}/stages/{s}/steps/{t}/items/0")
    };
    let item_path = first_item.trim_start_matches('/').replace('/', ".");
    let item_path =
        regex::Regex::new(r"\.(\d+)").expect("re").replace_all(&item_path, "[$1]").into_owned();
    let first_id = good.pointer(&format!("{first_item}/id")).cloned().expect("id");
    let kind = good
        .pointer(&format!("{first_item}/kind"))
        .and_then(Value::as_str)
        .expect("kind")
        .to_owned();
    let second_id = first_item.replace("items/0", "items/1") + "/id";
    let edit = |path: &str, value: Value| {
        let mut doc = good.clone();
        *doc.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = value;
        doc
    };
    let mut colour = good.clone();
    colour["journeys"][0]["colour"] = json!("red");
    let mut links_backwards = good.clone();
    let link = links_backwards["links"][0].clone();
    links_backwards["links"][0] = json!({"from": link["to"], "to": link["from"]});
    let kind_path = format!("{item_path}.kind");
    let status_path = format!("{item_path}.status");
    let status_message = format!("not a status of a {kind}");
    let description_path = format!("{item_path}.description");
    let second_path = item_path.replace("items[0]", "items[1]") + ".id";
    let cases: Vec<(&str, Option<Value>, &str, &str)> = vec![
        ("truncated JSON", None, "ends too soon", ""),
        (
            "a number for a name",
            Some(edit("/journeys/0/name", json!(5))),
            "journeys[0].name",
            "invalid type: integer",
        ),
        (
            "an unknown kind",
            Some(edit(&format!("{first_item}/kind"), json!("widget"))),
            &kind_path,
            "not a kind of item",
        ),
        (
            "an unknown status",
            Some(edit(&format!("{first_item}/status"), json!("maybe"))),
            &status_path,
            &status_message,
        ),
        ("a link the wrong way", Some(links_backwards), "links[0]", "cannot link to"),
        (
            "a dangling id",
            Some(edit("/links/0/to", json!("itm_nowhere"))),
            "links[0].to",
            "no item has the id",
        ),
        (
            "a duplicate slug",
            Some(edit("/journeys/1/slug", good["journeys"][0]["slug"].clone())),
            "journeys[1].slug",
            "slugs are unique",
        ),
        (
            "a 10 MB description",
            Some(edit(&format!("{first_item}/description"), json!("x".repeat(10_000_000)))),
            &description_path,
            "too long",
        ),
        ("an unknown field", Some(colour), "journeys[0]", "unknown field `colour`"),
        (
            "another format",
            Some(edit("/format", json!("custory-workspace/9"))),
            "format",
            "custory-workspace/1",
        ),
        ("a duplicate item id", Some(edit(&second_id, first_id)), &second_path, "ids are unique"),
    ];
    let before = state(&server, &cli).await;
    for (what, doc, path, message) in cases {
        let file = match doc {
            Some(doc) => cli.write("bad.json", &doc),
            None => {
                let file = cli.path("bad.json");
                std::fs::write(&file, &text[..text.len() / 2]).expect("write");
                file.display().to_string()
            }
        };
        let ran = cli.run(&["import", &file, "--new", "Bad"]).await;
        assert_eq!(ran.code, 1, "{what}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(path) && ran.stderr.contains(message),
            "{what}: {}",
            ran.stderr
        );
        assert!(ran.stderr.contains("nothing was imported"), "{what}: {}", ran.stderr);
        assert!(ran.stderr.lines().count() < 60, "{what}: the answer is bounded");
    }
    // The API gives each problem its own path.
    let mut many = good.clone();
    many["journeys"][0]["name"] = json!("");
    many["links"][0]["from"] = json!("itm_gone");
    let body = server.owner().post("/imports?new=Many").json(&many).expect(422).await;
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(paths, ["journeys[0].name", "links[0].from"], "{body}");
    assert_eq!(state(&server, &cli).await, before, "nothing was written by any refused import");
    server.stop().await;
}

#[tokio::test]
async fn mutated_exports_are_imported_whole_or_refused_with_a_path() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    let good = cli.export("acme", "acme.json").await;
    let owner = server.owner();
    let workspaces = || async {
        let list = owner.workspaces().await;
        list["workspaces"].as_array().map_or(0, Vec::len)
    };
    // Every place in the document that a mutation may hit.
    let mut places = Vec::new();
    fn walk(value: &Value, at: String, places: &mut Vec<String>) {
        places.push(at.clone());
        match value {
            Value::Object(map) => {
                map.iter().for_each(|(k, v)| walk(v, format!("{at}/{k}"), places))
            }
            Value::Array(list) => {
                list.iter().enumerate().for_each(|(i, v)| walk(v, format!("{at}/{i}"), places))
            }
            _ => {}
        }
    }
    walk(&good, String::new(), &mut places);
    let replacement = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "[a-z \\-]{0,12}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ];
    let strategy = (0..places.len(), replacement);
    let mut runner = TestRunner::new(Config { cases: 40, ..Config::default() });
    // Cases drawn from proptest's strategies (the server is async, so they are drawn first).
    let cases: Vec<(usize, Value)> =
        (0..40).map(|_| strategy.new_tree(&mut runner).expect("a case").current()).collect();
    let (mut taken, mut refused) = (0, 0);
    for (n, (place, value)) in cases.into_iter().enumerate() {
        let mut doc = good.clone();
        if place == 0 {
            doc = value.clone();
        } else if let Some(slot) = doc.pointer_mut(&places[place]) {
            *slot = value.clone();
        }
        let before = workspaces().await;
        let name = format!("Mutant {n}");
        let path = format!("/imports?new={}", name.replace(' ', "%20"));
        let response = owner.post(&path).json(&doc).send().await;
        let body: Value = serde_json::from_slice(&response.body).expect("a JSON answer");
        match response.status {
            201 => {
                taken += 1;
                assert_eq!(workspaces().await, before + 1)
            }
            422 => {
                refused += 1;
                let details = body["error"]["details"].as_array().cloned().unwrap_or_default();
                assert!(
                    !details.is_empty() && details.iter().all(|d| d["path"].is_string()),
                    "{} = {value}: {body}",
                    places[place]
                );
                assert_eq!(workspaces().await, before, "a refused import wrote nothing");
            }
            other => panic!("{} = {value}: HTTP {other} {body}", places[place]),
        }
    }
    assert!(refused > 0, "{taken} taken, {refused} refused");
    server.stop().await;
}

#[tokio::test]
async fn exports_follow_the_published_schema() {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workspace.schema.json");
    let current =
        serde_json::to_string_pretty(&custory_mcp::store::content::transfer::json_schema())
            .expect("json")
            + "\n";
    if std::env::var_os("CUSTORY_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(&schema_path, &current).expect("write schema");
    }
    let committed = std::fs::read_to_string(&schema_path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/workspace.schema.json is stale: CUSTORY_UPDATE_SCHEMA=1 cargo test --test it transfer::exports"
    );

    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    cli.export("acme", "acme.json").await;
    let mut bad = cli.export("acme", "bad.json").await;
    bad["journeys"][0]["name"] = json!(7);
    let bad = cli.write("bad.json", &bad);
    let python = crate::conformance::python_with_sdk();
    let check = |file: String| {
        let script = "import json, sys, jsonschema\n\
                      schema = json.load(open(sys.argv[1]))\n\
                      jsonschema.Draft202012Validator.check_schema(schema)\n\
                      errors = list(jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))\n\
                      print(len(errors))";
        let out = std::process::Command::new(&python)
            .args(["-c", script])
            .arg(&schema_path)
            .arg(file)
            .output()
            .expect("python");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(check(cli.path("acme.json").display().to_string()), "0", "an export is valid");
    assert_eq!(check(bad), "1", "the validator sees a wrong type");
    server.stop().await;
}

/// A spreadsheet's rows: two stages, three steps, five items, in an order that interleaves
/// them, with a quoted comma, a multi-line cell and empty optional cells.
const ROADMAP_CSV: &str = "\
Stage,Step,Kind,Title,Description,Status,Owner,Priority,Impact,Effort
Discover,Compares tools,touchpoint,G2 comparison page,\"Visitors land from G2, then leave\",validated,Maya,P1,high,low
Discover,Compares tools,insight,Pricing is unclear,\"Asked in
three calls\",draft,,P0,high,
Activate,First dashboard,opportunity,Template gallery,,open,Lee,P2,medium,medium
Discover,Reads docs,touchpoint,Docs landing,,,,,,
,,,,,,,,,
Activate,First dashboard,solution,Sample data,,planned,Lee,P1,high,low
";

#[tokio::test]
async fn a_csv_becomes_a_journey_of_an_existing_workspace() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    let file = cli.path("roadmap.csv");
    std::fs::write(&file, ROADMAP_CSV).expect("write");
    let file = file.display().to_string();

    // A dry run checks the file and writes nothing.
    let before = state(&server, &cli).await;
    let dry = cli.run(&["--workspace", "acme", "import", &file, "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stderr
            .contains("would add the journey \"roadmap\" (2 stages, 3 steps, 5 items) to \"acme\""),
        "{}",
        dry.stderr
    );
    assert_eq!(dry.stdout, "", "a dry run prints no data");
    assert_eq!(state(&server, &cli).await, before, "a dry run writes nothing");

    let ran = cli.run(&["--workspace", "acme", "import", &file, "--journey", "Roadmap"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout.trim(), "acme");
    assert!(
        ran.stderr.contains("Imported the journey \"roadmap\" (2 stages, 3 steps, 5 items)"),
        "{}",
        ran.stderr
    );

    // What an agent reads: the map in the file's order, with the items' properties.
    let mcp = server.owner().create_key("csv", "never", "read-only").await;
    let journey = mcp.ok("get_journey", json!({"journey": "roadmap"})).await;
    assert_eq!(journey["name"], "Roadmap");
    let names = |list: &Value, key: &str| -> Vec<String> {
        list.as_array()
            .expect("list")
            .iter()
            .map(|v| v[key].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(names(&journey["stages"], "name"), ["Discover", "Activate"]);
    let discover = &journey["stages"][0];
    assert_eq!(names(&discover["steps"], "name"), ["Compares tools", "Reads docs"]);
    let first = &discover["steps"][0]["items"];
    assert_eq!(names(first, "title"), ["G2 comparison page", "Pricing is unclear"]);
    assert_eq!(
        (&first[0]["status"], &first[0]["owner"], &first[0]["priority"], &first[0]["effort"]),
        (&json!("validated"), &json!("Maya"), &json!("P1"), &json!("low"))
    );
    assert_eq!(first[1]["status"], "draft");
    let activate = &journey["stages"][1]["steps"][0]["items"];
    assert_eq!(names(activate, "title"), ["Template gallery", "Sample data"]);
    let docs = &discover["steps"][1]["items"][0];
    assert_eq!((&docs["status"], &docs["priority"]), (&json!("draft"), &Value::Null));
    let urgent = mcp.ok("list_items", json!({"journey": "roadmap", "priority": "P1"})).await;
    assert_eq!(names(&urgent["items"], "title"), ["G2 comparison page", "Sample data"]);
    let exported = cli.export("acme", "after.json").await;
    let journeys = exported["journeys"].as_array().expect("journeys");
    assert_eq!(journeys.last().map(|j| &j["slug"]), Some(&json!("roadmap")), "added after");
    assert_eq!(
        journeys.last().expect("roadmap")["stages"][0]["steps"][0]["items"][1]["description"],
        "Asked in\nthree calls"
    );

    // The same file again: refused by its journey's slug, saying what to do.
    let again = cli.run(&["--workspace", "acme", "import", &file, "--journey", "Roadmap"]).await;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already has a journey with the slug \"roadmap\"")
            && again.stderr.contains("--journey NAME"),
        "{}",
        again.stderr
    );
    // Under another name it is another journey; --json answers as for a document.
    let other = cli
        .run(&["--workspace", "acme", "--json", "import", &file, "--journey", "Roadmap 2"])
        .await;
    assert_eq!(other.code, 0, "{}", other.stderr);
    let answer: Value = serde_json::from_str(&other.stdout).expect("json");
    assert_eq!(
        (&answer["workspace"], &answer["journey"], &answer["items"], &answer["dry_run"]),
        (&json!("acme"), &json!("roadmap-2"), &json!(5), &json!(false))
    );
    let audit = cli.run(&["--workspace", "acme", "--json", "audit"]).await;
    assert!(audit.stdout.contains("journey.imported"), "{}", audit.stdout);

    // Into a new workspace, and from stdin with --format.
    let new = cli.run(&["import", &file, "--new", "Sheet team"]).await;
    assert_eq!(new.code, 0, "{}", new.stderr);
    assert_eq!(new.stdout.trim(), "sheet-team");
    let mut cmd = cli.env.command();
    cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token).args([
        "--workspace",
        "sheet-team",
        "import",
        "-",
        "--format",
        "csv",
        "--journey",
        "Piped",
    ]);
    let piped = run_piped(cmd, Some(ROADMAP_CSV)).await;
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    let exported = cli.export("sheet-team", "sheet.json").await;
    let slugs: Vec<&Value> =
        exported["journeys"].as_array().expect("j").iter().map(|j| &j["slug"]).collect();
    assert_eq!(slugs, [&json!("roadmap"), &json!("piped")]);
    server.stop().await;
}

#[tokio::test]
async fn bad_csvs_are_refused_with_their_line_and_column_and_nothing_is_written() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    let header = "stage,step,kind,title,description,priority\n";
    let row = "Discover,Compares tools,insight,Pricing is unclear,,P1\n";
    let long = format!("{header}Discover,Compares,insight,Long,{},P1\n", "x".repeat(10_000_000));
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "a missing column",
            format!("stage,step,kind\n{}", "Discover,Compares tools,insight\n"),
            "line 1",
            "the header has no \"title\" column",
        ),
        (
            "an unknown column",
            "stage,step,kind,title,colour\nDiscover,Compares,insight,Pricing,red\n".to_owned(),
            "line 1, column \"colour\"",
            "is not a column of an import",
        ),
        (
            "an unknown kind",
            format!("{header}{row}Discover,Compares tools,epic,Roadmap,,\n"),
            "line 3, column \"kind\"",
            "\"epic\" is not a kind of item; use one of: touchpoint",
        ),
        (
            "a bad priority",
            format!("{header}Discover,Compares tools,insight,Pricing,,urgent\n"),
            "line 2, column \"priority\"",
            "\"urgent\" is not a priority; use one of: P0, P1, P2, P3",
        ),
        ("a 10 MB description", long, "line 2, column \"description\"", "description is too long"),
        (
            "a ragged row",
            format!("{header}{row}Discover,Compares tools,insight\n"),
            "line 3",
            "has 3 cells, but the header names 6 columns",
        ),
        (
            "an empty title",
            format!("{header}{row}Discover,Compares tools,insight,,,\n"),
            "line 3, column \"title\"",
            "is empty",
        ),
        ("no rows", header.to_owned(), "file", "has a header but no rows"),
    ];
    let before = state(&server, &cli).await;
    for (what, text, path, message) in cases {
        let file = cli.path("bad.csv");
        std::fs::write(&file, text).expect("write");
        let file = file.display().to_string();
        let ran = cli.run(&["--workspace", "acme", "import", &file]).await;
        assert_eq!(ran.code, 1, "{what}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(&format!("{path}: {message}")),
            "{what}: expected {path}: {message} in\n{}",
            ran.stderr
        );
        assert!(ran.stderr.contains("nothing was imported"), "{what}: {}", ran.stderr);
        assert!(ran.stderr.contains("hint: fix the file"), "{what}: {}", ran.stderr);
        assert!(ran.stderr.len() < 4000, "{what}: the answer is bounded");
    }
    // Not UTF-8 (a spreadsheet's legacy encoding).
    let latin1 = cli.path("latin1.csv");
    std::fs::write(&latin1, b"stage,step,kind,title\nD\xe9couvrir,Compare,insight,Prix\n")
        .expect("write");
    let ran = cli.run(&["--workspace", "acme", "import", latin1.to_str().expect("utf-8")]).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("line 2: cell 1 is not UTF-8 text"), "{}", ran.stderr);

    // The API gives each problem its own place, in the file's order.
    let many = format!("{header}{row}A,B,epic,C,,P1\nA,B,insight,C,,P7\nA,B\n");
    let owner = server.owner();
    let body = owner
        .post("/imports?workspace=acme&journey=Bad")
        .header("content-type", "text/csv")
        .body(many)
        .expect_error(422, "invalid_csv")
        .await;
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        ["line 3, column \"kind\"", "line 4, column \"priority\"", "line 5"],
        "{body}"
    );
    // A CSV needs its journey's name; a JSON document names its own.
    for (query, content_type) in
        [("/imports?workspace=acme", "text/csv"), ("/imports?new=X&journey=J", "application/json")]
    {
        let call = owner.post(query).header("content-type", content_type);
        call.body(format!("{header}{row}")).expect(400).await;
    }
    // The CLI needs a name for a CSV on stdin, and refuses --journey for a document.
    let mut cmd = cli.env.command();
    cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token).args([
        "--workspace",
        "acme",
        "import",
        "-",
        "--format",
        "csv",
    ]);
    let piped = run_piped(cmd, Some(row)).await;
    assert_eq!(piped.code, 2, "{}", piped.stderr);
    assert!(piped.stderr.contains("--journey NAME"), "{}", piped.stderr);
    // A CSV on stdin without --format is sent as a document: the answer says it is no JSON
    // and how a CSV is imported (not "the JSON is not a workspace").
    let mut cmd = cli.env.command();
    cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    cmd.args(["--workspace", "acme", "import", "-"]);
    let piped = run_piped(cmd, Some(ROADMAP_CSV)).await;
    assert_eq!(piped.code, 1, "{}", piped.stderr);
    assert!(
        piped.stderr.contains("this is not JSON, so not a workspace document"),
        "{}",
        piped.stderr
    );
    assert!(piped.stderr.contains("--format csv --journey NAME"), "{}", piped.stderr);
    let json_file = cli.write("doc.json", &json!({}));
    let ran = cli.run(&["import", &json_file, "--journey", "X"]).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert_eq!(state(&server, &cli).await, before, "nothing was written by any refused import");
    server.stop().await;
}

#[tokio::test]
async fn more_archived_stages_and_steps_than_one_step_archives_all_stay_archived() {
    let server = TestServer::start().await;
    let cli = Cli::new(&server);
    // 30 stages of 6 steps, every step and every third stage archived: 190 nodes, more than
    // one step of the import archives at once.
    let stages: Vec<Value> = (0..30)
        .map(|s| {
            let steps: Vec<Value> = (0..6)
                .map(|t| {
                    json!({"name": format!("T{s}.{t}"), "archived": true, "items": [
                        {"id": format!("i{s}.{t}"), "kind": "insight", "title": format!("I {s}.{t}")}
                    ]})
                })
                .collect();
            json!({"name": format!("S{s}"), "archived": s % 3 == 0, "steps": steps})
        })
        .collect();
    let doc = json!({
        "format": "custory-workspace/1",
        "workspace": {"name": "Shelved", "slug": "shelved"},
        "journeys": [{"slug": "j", "name": "J", "stages": stages}],
    });
    let created = server.owner().post("/imports?new=Shelved").json(&doc).expect(201).await;
    let slug = created["workspace"].as_str().expect("slug").to_owned();
    let back = cli.export(&slug, "shelved.json").await;
    let stages = back["journeys"][0]["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 30);
    for (s, stage) in stages.iter().enumerate() {
        // An exported node says `archived` only when it is.
        assert_eq!(stage["archived"].as_bool().unwrap_or(false), s % 3 == 0, "stage {s}");
        for step in stage["steps"].as_array().expect("steps") {
            assert_eq!(step["archived"], true, "stage {s}: {step}");
        }
    }
    server.stop().await;
}
