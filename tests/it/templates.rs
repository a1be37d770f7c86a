//! `workspaces create NAME --template T` as a user runs it: each template's workspace exports
//! as the template's journeys, links and personas; `blank` is empty; an unknown template is a
//! usage error (CLI) or a 400 listing the templates (API); every shipped template follows the
//! published schema (checked by Python's `jsonschema`).

use std::path::Path;

use custory_mcp::api::Template;
use custory_mcp::store::content::templates;
use serde_json::{Value, json};

use crate::common::{TestEnv, TestServer, comparable};

async fn export(env: &TestEnv, server: &TestServer, workspace: &str) -> Value {
    let ran = env.admin(server, &["--workspace", workspace, "export"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    serde_json::from_str(&ran.stdout).expect("json")
}

#[tokio::test]
async fn each_template_creates_a_workspace_holding_its_journeys() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    for (template, name, slug, says) in [
        (
            Template::Onboarding,
            "New Customers",
            "new-customers",
            "from the onboarding template: 1 journey, 4 stages, 12 steps, 9 items, 7 links, 1 persona",
        ),
        (
            Template::TrialToPaid,
            "Trials",
            "trials",
            "from the trial-to-paid template: 1 journey, 4 stages, 9 steps, 8 items, 8 links, 1 persona",
        ),
    ] {
        let created = env
            .admin(&server, &["workspaces", "create", name, "--template", template.as_str()])
            .await;
        assert_eq!((created.code, created.stdout.as_str()), (0, format!("{slug}\n").as_str()));
        assert!(
            created.stderr.contains(&format!("Created workspace {name:?} {says}.")),
            "{}",
            created.stderr
        );

        let doc = templates::document(template).expect("parses").expect("a document");
        let exported = export(&env, &server, slug).await;
        assert_eq!(exported["workspace"], json!({"name": name, "slug": slug}), "the command's");
        let expected = serde_json::to_value(&doc).expect("json");
        assert_eq!(comparable(exported), comparable(expected), "{template}");
    }

    // --json carries the same, and --slug names it.
    let created = env
        .admin(
            &server,
            &["--json", "workspaces", "create", "Onb", "--slug", "onb", "--template", "onboarding"],
        )
        .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let answer: Value = serde_json::from_str(&created.stdout).expect("json");
    assert_eq!(answer["workspace"]["slug"], "onb");
    assert_eq!(answer["template"], "onboarding");
    assert_eq!(
        answer["contents"],
        json!({"journeys": 1, "stages": 4, "steps": 12, "items": 9, "links": 7, "comments": 0,
               "personas": 1})
    );
    let exported = export(&env, &server, "onb").await;
    assert_eq!(exported["journeys"][0]["slug"], "onboarding");
    assert_eq!(exported["personas"][0]["journeys"], json!(["onboarding"]));
    server.stop().await;
}

#[tokio::test]
async fn blank_is_an_empty_workspace() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    for (args, slug) in [
        (vec!["workspaces", "create", "Empty"], "empty"),
        (vec!["workspaces", "create", "Empty Too", "--template", "blank"], "empty-too"),
    ] {
        let created = env.admin(&server, &args).await;
        assert_eq!((created.code, created.stdout.trim()), (0, slug), "{}", created.stderr);
        assert!(!created.stderr.contains("template"), "{}", created.stderr);
        let exported = export(&env, &server, slug).await;
        for part in ["journeys", "links", "personas"] {
            assert_eq!(exported[part], json!([]), "{slug}: {part}");
        }
    }
    let created = env.admin(&server, &["--json", "workspaces", "create", "Third"]).await;
    let answer: Value = serde_json::from_str(&created.stdout).expect("json");
    assert_eq!(answer["template"], "blank");
    assert!(answer["contents"].as_object().is_some_and(|c| c.values().all(|n| n == 0)), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_template_is_refused_and_nothing_is_created() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let ran = env.admin(&server, &["workspaces", "create", "X", "--template", "sales"]).await;
    assert_eq!(ran.code, 2, "a usage error: {}", ran.stderr);
    assert!(
        ran.stderr.contains("[possible values: blank, onboarding, trial-to-paid]"),
        "{}",
        ran.stderr
    );

    let owner = server.owner();
    let create = |body: Value| owner.post("/workspaces").json(&body);
    let body = create(json!({"name": "X", "template": "sales"}))
        .expect_error(400, "unknown_template")
        .await;
    assert_eq!(
        body["error"]["message"],
        "template \"sales\" is not one of blank, onboarding, trial-to-paid"
    );

    // A taken slug with a template: a conflict, said as without one, and nothing written.
    let body =
        create(json!({"name": "Acme", "slug": "acme", "template": "onboarding"})).expect(409).await;
    assert_eq!(body["error"]["message"], "a workspace with the slug \"acme\" already exists");
    let list = env.admin(&server, &["--json", "workspaces", "list"]).await;
    let list: Value = serde_json::from_str(&list.stdout).expect("json");
    assert_eq!(list["workspaces"].as_array().map(Vec::len), Some(1), "{list}");
    let acme = export(&env, &server, "acme").await;
    assert!(
        acme["journeys"].as_array().into_iter().flatten().all(|j| j["slug"] != "onboarding"),
        "the demo workspace is untouched"
    );
    server.stop().await;
}

#[test]
fn every_template_follows_the_published_schema() {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workspace.schema.json");
    let dir = tempfile::tempdir().expect("temp dir");
    let python = crate::conformance::python_with_sdk();
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  validator = jsonschema.Draft202012Validator(schema)\n\
                  for path in sys.argv[2:]:\n    \
                      for error in validator.iter_errors(json.load(open(path))):\n        \
                          print(path, error.json_path, error.message)";
    let mut files = Vec::new();
    for template in Template::ALL {
        let Some(source) = templates::source(template) else { continue };
        let file = dir.path().join(format!("{template}.json"));
        std::fs::write(&file, source).expect("write");
        files.push(file);
    }
    assert_eq!(files.len(), 2);
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&schema)
        .args(&files)
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "schema errors");
}
