//! Secrets: a full lifecycle through the real CLI and MCP with the server logging at its most
//! verbose (`-vvv`, and `CUSTORY_LOG=trace`); no token appears anywhere it was not asked for:
//! not on stderr, not in an answer, not in the log, not in the database files.

use serde_json::{Value, json};

use super::{LoggedServer, cli};
use crate::common::{Run, TestEnv, Visitor, initialize_body, rpc, tool_call};

/// Whether `haystack` holds any part of `secret` past its 12-character display prefix (which
/// is meant to be shown).
fn holds_secret(haystack: &str, secret: &str) -> bool {
    [&secret[12..24], &secret[24..36], &secret[30..42]].iter().any(|part| haystack.contains(part))
}

/// A CLI run: its arguments, environment and expected exit code.
type Command<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], i32);

/// One place output went, and the secrets it may show.
struct Exposure {
    what: String,
    text: String,
    allowed: Vec<String>,
}

async fn secrets_lifecycle(label: &str, serve_args: &[&str], vars: &[(&str, &str)]) -> usize {
    let env = TestEnv::new();
    let db = env.home.path().join("data").join("custory.db");
    let server = LoggedServer::start(&env, &db, serve_args, vars).await;
    let url = server.url();
    let owner = server.owner().token().to_owned();
    let mut seen: Vec<Exposure> = Vec::new();
    let mut secrets: Vec<String> = vec![owner.clone()];
    let none: &[(&str, &str)] = &[];

    let run = async |args: &[&str], vars: &[(&str, &str)], stdin: &str, code: i32| -> Run {
        let ran = cli(&env, &url, args, vars, stdin).await;
        assert_eq!(ran.code, code, "{args:?}: {}{}", ran.stdout, ran.stderr);
        ran
    };
    let note = |seen: &mut Vec<Exposure>, what: String, text: String, allowed: &[&String]| {
        seen.push(Exposure { what, text, allowed: allowed.iter().map(|s| (*s).clone()).collect() });
    };

    // Keys through the CLI: the token is on stdout of `keys create` only.
    let ran =
        run(&["keys", "create", "--name", "Cursor", "--expires", "30d", "--save"], none, "", 0)
            .await;
    let cursor = ran.stdout.trim().to_owned();
    secrets.push(cursor.clone());
    note(&mut seen, "keys create stdout".into(), ran.stdout, &[&cursor]);
    note(&mut seen, "keys create stderr".into(), ran.stderr, &[]);
    let ran = run(
        &["--json", "keys", "create", "--name", "Other", "--expires", "never", "--save"],
        none,
        "",
        0,
    )
    .await;
    let other = serde_json::from_str::<Value>(&ran.stdout).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    secrets.push(other.clone());
    note(&mut seen, "--json keys create stdout".into(), ran.stdout, &[&other]);
    note(&mut seen, "--json keys create stderr".into(), ran.stderr, &[]);
    let ran =
        run(&["keys", "create", "--name", "Temp", "--expires", "90d", "--read-only"], none, "", 0)
            .await;
    let temp = ran.stdout.trim().to_owned();
    secrets.push(temp.clone());
    note(&mut seen, "keys create (unsaved) stdout".into(), ran.stdout, &[&temp]);
    note(&mut seen, "keys create (unsaved) stderr".into(), ran.stderr, &[]);

    let with_temp = [("CUSTORY_MCP_TOKEN", temp.as_str())];
    let commands: Vec<Command> = vec![
        (vec!["keys", "list"], none, 0),
        (vec!["--json", "keys", "list"], none, 0),
        (vec!["keys", "list", "--status", "active"], none, 0),
        (vec!["keys", "show", "Cursor"], none, 0),
        (vec!["--json", "keys", "show", "Other"], none, 0),
        (vec!["workspaces", "list"], none, 0),
        (vec!["--json", "workspaces", "list"], none, 0),
        (vec!["test", "--key", "Cursor"], none, 0),
        (vec!["--json", "test", "--key", "Other"], none, 0),
        (vec!["test"], &with_temp, 0),
        (vec!["test", "--curl"], &with_temp, 0),
        (vec!["config", "cursor"], &with_temp, 0),
        (vec!["config", "claude-code"], &with_temp, 0),
        (vec!["--json", "config", "vscode"], &with_temp, 0),
        (vec!["config", "codex", "--token-env", "MY_TOKEN"], &with_temp, 0),
    ];
    for (args, vars, code) in &commands {
        let ran = run(args, vars, "", *code).await;
        note(&mut seen, format!("{args:?} stdout"), ran.stdout, &[]);
        note(&mut seen, format!("{args:?} stderr"), ran.stderr, &[]);
    }
    // The user asking for the token in a config: allowed on stdout, nowhere else.
    let ran = run(&["config", "cursor", "--key", "Cursor", "--inline-token"], none, "", 0).await;
    assert!(ran.stdout.contains(&cursor), "--inline-token embeds the token");
    note(&mut seen, "config --inline-token stdout".into(), ran.stdout, &[&cursor]);
    note(&mut seen, "config --inline-token stderr".into(), ran.stderr, &[]);

    // MCP traffic, good and bad.
    let site = Visitor::new(&url);
    let mut typo = cursor.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let step = {
        let tree = site.key(&cursor).ok("get_journey", json!({"journey": "trial-to-paid"})).await;
        tree["stages"][0]["steps"][0]["id"].clone()
    };
    let good = [
        initialize_body(),
        rpc(2, "tools/list", json!({})),
        tool_call(3, "get_workspace", json!({})),
        tool_call(
            4,
            "create_item",
            json!({"step_id": step, "kind": "insight", "title": "Logged?"}),
        ),
        tool_call(5, "search", json!({"query": "trial"})),
    ];
    for message in &good {
        let answer = site.key(&cursor).send(message).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        note(&mut seen, format!("MCP {} answer", message["method"]), answer.text(), &[]);
    }
    for presented in [typo.as_str(), &cursor[..30], owner.as_str(), "cst_", "Bearer"] {
        let answer = site.key(presented).send(&initialize_body()).await;
        assert_eq!(answer.status, 401);
        let shown = format!("{:?} {}", answer.header("www-authenticate"), answer.text());
        note(&mut seen, "MCP 401 answer".into(), shown, &[]);
    }
    for presented in [&cursor, &owner[..30], &typo] {
        let response = site.owner(presented).get("/workspaces").send().await;
        assert!(matches!(response.status, 401 | 403));
        note(&mut seen, "admin refusal".into(), response.text(), &[]);
    }

    // Rotation shows the new token once; revocation shows none.
    let ran = run(&["keys", "rotate", "Cursor", "--yes"], none, "", 0).await;
    let rotated = ran.stdout.trim().to_owned();
    assert!(rotated.starts_with("cst_") && rotated != cursor);
    secrets.push(rotated.clone());
    note(&mut seen, "keys rotate stdout".into(), ran.stdout, &[&rotated]);
    note(&mut seen, "keys rotate stderr".into(), ran.stderr, &[]);
    let ran = run(&["--json", "keys", "rotate", "Other", "--yes"], none, "", 0).await;
    let rotated_other = serde_json::from_str::<Value>(&ran.stdout).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    secrets.push(rotated_other.clone());
    note(&mut seen, "--json keys rotate stdout".into(), ran.stdout, &[&rotated_other]);
    note(&mut seen, "--json keys rotate stderr".into(), ran.stderr, &[]);
    let old_cursor = [("CUSTORY_MCP_TOKEN", cursor.as_str())];
    let bad_owner = [("CUSTORY_OWNER_TOKEN", typo.as_str())];
    let later: Vec<Command> = vec![
        (vec!["keys", "revoke", "Temp", "--yes"], none, 0),
        (vec!["--json", "keys", "revoke", "Other", "--yes"], none, 0),
        (vec!["test"], &with_temp, 1),
        (vec!["test"], &old_cursor, 1),
        (vec!["--json", "test"], &old_cursor, 1),
        (vec!["test", "--key", "Cursor"], none, 0),
        (vec!["audit"], none, 0),
        (vec!["--json", "audit"], none, 0),
        (vec!["audit", "--key", "Cursor"], none, 0),
        (vec!["--json", "keys", "list"], none, 0),
        (vec!["keys", "list"], &bad_owner, 1),
    ];
    for (args, vars, code) in &later {
        let ran = run(args, vars, "", *code).await;
        note(&mut seen, format!("{args:?} stdout"), ran.stdout, &[]);
        note(&mut seen, format!("{args:?} stderr"), ran.stderr, &[]);
    }
    // `login` with the wrong kind of token, a mistyped one, and the right one (fresh home).
    for (input, code) in [(cursor.as_str(), 1), (typo.as_str(), 1), (&owner[..30], 1)] {
        let ran = run(&["login", "--token-stdin"], none, &format!("{input}\n"), code).await;
        note(&mut seen, "login stdout".into(), ran.stdout, &[]);
        note(&mut seen, "login stderr".into(), ran.stderr, &[]);
    }
    let fresh = TestEnv::new();
    let ran = cli(&fresh, &url, &["login", "--token-stdin"], none, &format!("{owner}\n")).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    note(&mut seen, "login (fresh) stdout".into(), ran.stdout, &[]);
    note(&mut seen, "login (fresh) stderr".into(), ran.stderr, &[]);

    // Team access: the invitation code on the inviter's stdout only; the member's credential
    // saved in their home, shown nowhere (not even to them).
    let ran = run(&["members", "invite", "Ivy", "--role", "editor"], none, "", 0).await;
    let code = ran.stdout.trim().to_owned();
    assert!(code.starts_with("csi_"), "{code}");
    secrets.push(code.clone());
    note(&mut seen, "members invite stdout".into(), ran.stdout, &[&code]);
    note(&mut seen, "members invite stderr".into(), ran.stderr, &[]);
    let invitee = TestEnv::new();
    let ran = cli(&invitee, &url, &["login", "--invite-stdin"], none, &format!("{code}\n")).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    note(&mut seen, "login --invite stdout".into(), ran.stdout, &[]);
    note(&mut seen, "login --invite stderr".into(), ran.stderr, &[]);
    let saved = std::fs::read_to_string(invitee.config_dir().join("credentials.json"))
        .expect("the member's saved credential");
    let member = regex::Regex::new("csm_[0-9A-Za-z]{38}")
        .expect("regex")
        .find(&saved)
        .expect("a member credential")
        .as_str()
        .to_owned();
    secrets.push(member);
    for args in [&["whoami"][..], &["--json", "whoami"], &["--json", "keys", "list"], &["audit"]] {
        let ran = cli(&invitee, &url, args, none, "").await;
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.stderr);
        note(&mut seen, format!("member {args:?} stdout"), ran.stdout, &[]);
        note(&mut seen, format!("member {args:?} stderr"), ran.stderr, &[]);
    }
    let ran = cli(&TestEnv::new(), &url, &["login", "--invite-stdin"], none, &code).await;
    assert_eq!(ran.code, 1, "a used code: {}", ran.stderr);
    note(&mut seen, "login --invite (used) stdout".into(), ran.stdout, &[]);
    note(&mut seen, "login --invite (used) stderr".into(), ran.stderr, &[]);
    let ran = run(&["members", "remove", "Ivy", "--revoke-keys"], none, "", 0).await;
    note(&mut seen, "members remove stdout".into(), ran.stdout, &[]);
    note(&mut seen, "members remove stderr".into(), ran.stderr, &[]);

    // The database files while the server runs (WAL not yet checkpointed), then after.
    let mut db_bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        db_bytes.extend(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    let log = server.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        db_bytes.extend(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    assert!(
        ["TRACE", "DEBUG", "INFO"].iter().any(|level| log.contains(level)),
        "{label}: the log was verbose: {log}"
    );
    eprintln!("security secrets: {label}: the server wrote {} log lines", log.lines().count());
    note(&mut seen, "server log".into(), log, &[]);
    note(&mut seen, "database files".into(), String::from_utf8_lossy(&db_bytes).into_owned(), &[]);

    for exposure in &seen {
        for secret in &secrets {
            if exposure.allowed.contains(secret) {
                continue;
            }
            assert!(
                !holds_secret(&exposure.text, secret),
                "{label}: {} holds a token ({}…)",
                exposure.what,
                &secret[..12]
            );
        }
    }
    seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_appear_only_where_they_are_shown() {
    let (verbose, traced) = tokio::join!(
        secrets_lifecycle("serve -vvv", &["-vvv"], &[]),
        secrets_lifecycle("CUSTORY_LOG=trace", &[], &[("CUSTORY_LOG", "trace")]),
    );
    eprintln!(
        "security secrets: {} outputs checked (CLI stdout and stderr, MCP and admin answers, \
         server log, database files) under -vvv and {} under CUSTORY_LOG=trace",
        verbose, traced
    );
}
