//! The admin CLI as a user runs it: the real binary against a real server, with an isolated
//! home. Output is snapshotted as the user sees it, with tokens, ids and times redacted.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::common::{Run, TestDatabase, TestEnv, TestServer, run_piped};

impl Run {
    /// Exit code, stdout and stderr with everything that changes between runs redacted.
    pub fn snapshot(&self, server: &str) -> String {
        format!(
            "exit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code,
            redact(&self.stdout, server),
            redact(&self.stderr, server)
        )
    }
}

pub fn redact(text: &str, server: &str) -> String {
    static RULES: LazyLock<Vec<(Regex, &str)>> = LazyLock::new(|| {
        [
            (r"cs([ta])_[0-9A-Za-z]{38}", "[TOKEN_$1]"),
            // Same widths as what they replace, so tables stay aligned.
            (r"cst_[0-9A-Za-z]{8}", "cst_********"),
            (r"key_[0-9A-Za-z]{10}", "key_**********"),
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
            (r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2})?", "[DATE]"),
            (r"/tmp/\.tmp[0-9A-Za-z]+", "[HOME]"),
        ]
        .into_iter()
        .map(|(pattern, with)| (Regex::new(pattern).expect("regex"), with))
        .collect()
    });
    let mut text = text.replace(server, "[SERVER]");
    for (pattern, with) in RULES.iter() {
        text = pattern.replace_all(&text, *with).into_owned();
    }
    text
}

/// Runs the binary against `server` with the owner credential in the environment.
async fn run(
    env: &TestEnv,
    server: &str,
    owner: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", server).args(args);
    if let Some(owner) = owner {
        cmd.env("CUSTORY_OWNER_TOKEN", owner);
    }
    run_piped(cmd, stdin).await
}

async fn keys(server: &TestServer) -> Vec<Value> {
    let body = server.owner().list_keys("acme", "").await;
    body["keys"].as_array().expect("keys").clone()
}

#[tokio::test]
async fn the_key_lifecycle_as_a_user_sees_it() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let url = server.url.clone();
    let owner = Some(server.owner_token.as_str());

    let created = run(
        &env,
        &url,
        owner,
        &["keys", "create", "--name", "Cursor on MacBook", "--expires", "30d", "--save"],
        None,
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    // stdout is the token and nothing else, so `TOKEN=$(custory-mcp keys create …)` works.
    let token = created.stdout.trim_end_matches('\n');
    assert!(token.starts_with("cst_") && token.len() == 42 && !token.contains('\n'));
    insta::assert_snapshot!("keys_create", created.snapshot(&url));

    let ci = run(
        &env,
        &url,
        owner,
        &["keys", "create", "--name", "CI runner", "--expires", "never", "--read-only"],
        None,
    )
    .await;
    assert_eq!(ci.code, 0);
    // A use by a named client shows in the list.
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "clientInfo": {"name": "Cursor", "version": "2.1"}}});
    server.key(token).post(&init).expect(200).await;

    let list = run(&env, &url, owner, &["keys", "list"], None).await;
    insta::assert_snapshot!("keys_list", list.snapshot(&url));

    let show = run(&env, &url, owner, &["keys", "show", "Cursor on MacBook"], None).await;
    assert_eq!(show.code, 0);
    insta::assert_snapshot!("keys_show", show.snapshot(&url));

    let rotated =
        run(&env, &url, owner, &["keys", "rotate", "Cursor on MacBook", "--yes"], None).await;
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let new_token = rotated.stdout.trim();
    assert_ne!(new_token, token);
    insta::assert_snapshot!("keys_rotate", rotated.snapshot(&url));
    // The saved token moved to the new key.
    let saved = std::fs::read_to_string(env.config_dir().join("credentials.json")).expect("saved");
    assert!(saved.contains(new_token) && !saved.contains(token));

    let prefix = &new_token[..12];
    let revoked = run(&env, &url, owner, &["keys", "revoke", prefix, "--yes"], None).await;
    assert_eq!(revoked.code, 0);
    insta::assert_snapshot!("keys_revoke", revoked.snapshot(&url));
    server.key(new_token).post(&init).expect(401).await;

    let revoked_list = run(&env, &url, owner, &["keys", "list", "--status", "revoked"], None).await;
    insta::assert_snapshot!("keys_list_revoked", revoked_list.snapshot(&url));

    let audit = run(&env, &url, owner, &["audit", "--limit", "4"], None).await;
    insta::assert_snapshot!("audit", audit.snapshot(&url));
    server.stop().await;
}

#[tokio::test]
async fn json_output_has_the_api_shapes() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let (url, owner) = (server.url.clone(), Some(server.owner_token.as_str()));
    let json = |run: &Run| -> Value {
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    };

    let created = json(
        &run(
            &env,
            &url,
            owner,
            &["--json", "keys", "create", "--name", "A", "--expires", "90d"],
            None,
        )
        .await,
    );
    assert!(created["token"].as_str().is_some_and(|t| t.starts_with("cst_")));
    assert_eq!(created["key"]["expires"], "90d");
    assert_eq!(created["key"]["status"], "active");

    let list = json(&run(&env, &url, owner, &["--json", "keys", "list"], None).await);
    let row = &list["keys"][0];
    for field in [
        "id",
        "name",
        "prefix",
        "access",
        "expires",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_client",
        "last_used_ip",
        "revoked_at",
        "status",
    ] {
        assert!(row.get(field).is_some(), "keys list --json lacks {field}: {row}");
    }
    assert!(row.get("token").is_none());
    chrono::DateTime::parse_from_rfc3339(row["created_at"].as_str().expect("time"))
        .expect("RFC 3339");

    let show = json(&run(&env, &url, owner, &["--json", "keys", "show", "A"], None).await);
    assert_eq!(show["key"]["name"], "A");
    assert_eq!(show["events"][0]["kind"], "key.created");

    let workspaces = json(&run(&env, &url, owner, &["--json", "workspaces", "list"], None).await);
    assert_eq!(workspaces["workspaces"][0]["slug"], "acme");
    let audit = json(&run(&env, &url, owner, &["--json", "audit"], None).await);
    assert_eq!(audit["events"][0]["kind"], "key.created");
    let revoked =
        json(&run(&env, &url, owner, &["--json", "keys", "revoke", "A", "--yes"], None).await);
    assert_eq!(revoked["key"]["status"], "revoked");
    server.stop().await;
}

#[tokio::test]
async fn every_error_path_says_what_to_do_next() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let (url, owner) = (server.url.clone(), Some(server.owner_token.as_str()));
    let admin = server.owner();
    admin.create_key("Shared", "30d", "read-write").await;
    // Two revoked keys named alike make "Old" ambiguous; "Gone" is revoked once.
    for name in ["Old", "Old", "Gone"] {
        let key = admin.create_key(name, "30d", "read-write").await;
        admin.revoke(key.id()).await;
    }

    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    // (name, server, owner credential, arguments, expected exit code)
    type Case<'a> = (&'a str, String, Option<&'a str>, Vec<&'a str>, i32);
    let cases: Vec<Case<'_>> = vec![
        ("unreachable", dead.clone(), owner, vec!["keys", "list"], 1),
        ("no_credential", url.clone(), None, vec!["keys", "list"], 1),
        (
            "wrong_credential",
            url.clone(),
            Some("csa_000000000000000000000000000000003Yarnz"),
            vec!["keys", "list"],
            1,
        ),
        ("unknown_workspace", url.clone(), owner, vec!["--workspace", "nope", "keys", "list"], 1),
        ("unknown_key", url.clone(), owner, vec!["keys", "show", "nope"], 1),
        ("ambiguous_key", url.clone(), owner, vec!["keys", "show", "Old"], 1),
        (
            "duplicate_name",
            url.clone(),
            owner,
            vec!["keys", "create", "--name", "Shared", "--expires", "30d"],
            1,
        ),
        ("create_without_name", url.clone(), owner, vec!["keys", "create", "--expires", "30d"], 2),
        ("create_without_expiry", url.clone(), owner, vec!["keys", "create", "--name", "x"], 2),
        (
            "bad_expiry",
            url.clone(),
            owner,
            vec!["keys", "create", "--name", "x", "--expires", "7d"],
            2,
        ),
        ("revoke_without_key", url.clone(), owner, vec!["keys", "revoke"], 2),
        ("revoke_without_yes", url.clone(), owner, vec!["keys", "revoke", "Shared"], 2),
        // Revoking twice is no error (issue 30): it says so, and when.
        ("revoke_revoked", url.clone(), owner, vec!["keys", "revoke", "Gone", "--yes"], 0),
        ("unknown_command", url.clone(), owner, vec!["kees"], 2),
    ];
    let mut snapshot = String::new();
    for (name, server_url, credential, args, want) in cases {
        let result = run(&env, &server_url, credential, &args, None).await;
        assert_eq!(result.code, want, "{name}: {}", result.stderr);
        assert!(result.stdout.is_empty(), "{name}: errors print nothing on stdout");
        if want == 1 {
            assert!(result.stderr.starts_with("error: "), "{name}: {}", result.stderr);
            assert!(
                result.stderr.contains("\nhint: ") || name == "duplicate_name",
                "{name} has a hint: {}",
                result.stderr
            );
        }
        let text = redact(&result.stderr, &url)
            .replace(&dead, "[DEAD]")
            .replace(dead.trim_start_matches("http://"), "[DEAD_ADDR]");
        snapshot.push_str(&format!("== {name} (exit {})\n{text}", result.code));
    }
    insta::assert_snapshot!("errors", snapshot);
    // Nothing was lost to the errors.
    assert_eq!(keys(&server).await.len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn several_workspaces_need_a_choice() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let (url, owner) = (server.url.clone(), Some(server.owner_token.as_str()));
    let created = run(&env, &url, owner, &["workspaces", "create", "Beta Team"], None).await;
    assert_eq!((created.code, created.stdout.as_str()), (0, "beta-team\n"));
    let ambiguous = run(&env, &url, owner, &["keys", "list"], None).await;
    assert_eq!(ambiguous.code, 2);
    assert!(
        ambiguous.stderr.contains("several workspaces (acme, beta-team)"),
        "{}",
        ambiguous.stderr
    );
    assert!(ambiguous.stderr.contains("hint: pass --workspace acme"));
    let chosen = run(
        &env,
        &url,
        owner,
        &["--workspace", "beta-team", "keys", "create", "--name", "B", "--expires", "30d"],
        None,
    )
    .await;
    assert_eq!(chosen.code, 0);
    let scoped =
        run(&env, &url, owner, &["--workspace", "acme", "--json", "keys", "list"], None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&scoped.stdout).expect("json")["keys"],
        serde_json::json!([])
    );
    server.stop().await;
}

#[tokio::test]
async fn login_logout_and_the_credential_saved_by_serve() {
    let env = TestEnv::new();
    let db = TestDatabase::for_backend(&env.home.path().join("custory.db"));
    let serve = env.serve_on(&db.arg(), &[]).await;
    let url = serve.url();
    let owner = serve.announced["owner_credential"].as_str().expect("owner").to_owned();

    // serve saved the credential, so the CLI on the same machine needs no setup.
    let list = run(&env, &url, None, &["workspaces", "list"], None).await;
    assert_eq!(list.code, 0, "{}", list.stderr);

    let logout = run(&env, &url, None, &["logout"], None).await;
    assert_eq!(logout.code, 0);
    assert!(logout.stderr.contains("Logged out"));
    let after = run(&env, &url, None, &["workspaces", "list"], None).await;
    assert_eq!(after.code, 1);
    assert!(after.stderr.contains("hint: run `custory-mcp login"), "{}", after.stderr);

    let key = serde_json::json!({"name": "k", "expires": "30d"});
    let mcp_key = serve.owner().create_key_in("acme", key).await.token;
    let wrong = run(&env, &url, None, &["login", "--token-stdin"], Some(&mcp_key)).await;
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("MCP key (cst_…), not the owner credential"), "{}", wrong.stderr);
    let typo = run(&env, &url, None, &["login", "--token-stdin"], Some("csa_nope")).await;
    assert_eq!(typo.code, 1);
    let no_tty = run(&env, &url, None, &["login"], None).await;
    assert_eq!(no_tty.code, 2);
    assert!(no_tty.stderr.contains("--token-stdin"));

    let login =
        run(&env, &url, None, &["login", "--token-stdin"], Some(&format!("{owner}\n"))).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stderr.contains("Logged in to"));
    assert!(!login.stderr.contains(&owner[4..]), "the credential is never echoed");
    assert_eq!(run(&env, &url, None, &["workspaces", "list"], None).await.code, 0);
    serve.terminate().await;
}

/// Logged in to a server with `--server`, the next commands need no `--server`: the server
/// last logged in to is where they go until `logout`.
#[tokio::test]
async fn commands_go_to_the_server_last_logged_in_to() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    // No CUSTORY_SERVER: what a person has after following the invitation or the README.
    let bare = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = env.command();
        cmd.args(args);
        let stdin = stdin.map(str::to_owned);
        async move { run_piped(cmd, stdin.as_deref()).await }
    };
    let login = bare(
        &["login", "--server", &server.url, "--token-stdin"],
        Some(&format!("{}\n", server.owner_token)),
    )
    .await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(
        login.stderr.contains(&format!("Commands without --server now go to {}", server.url)),
        "{}",
        login.stderr
    );
    let listed = bare(&["--json", "workspaces", "list"], None).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("\"acme\""), "{}", listed.stdout);
    let status = bare(&["--json", "status"], None).await;
    let status: Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(status["server"]["url"], server.url.trim_end_matches('/'), "{status}");
    assert_eq!(status["server"]["from"], "saved", "{status}");
    // --server and CUSTORY_SERVER still choose another.
    let elsewhere = bare(&["--server", "http://127.0.0.1:9", "workspaces", "list"], None).await;
    assert_eq!(elsewhere.code, 1, "{}", elsewhere.stderr);

    let logout = bare(&["logout"], None).await;
    assert_eq!(logout.code, 0, "{}", logout.stderr);
    assert!(logout.stderr.contains("Logged out of"), "{}", logout.stderr);
    assert!(logout.stderr.contains("go to http://127.0.0.1:8787 again"), "{}", logout.stderr);
    let status = bare(&["--json", "status"], None).await;
    let status: Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(status["server"]["from"], "default", "{status}");
    server.stop().await;
}

/// Interactive paths in a real pseudo-terminal: prompts for what is missing, a picker and a
/// confirmation.
#[tokio::test]
async fn prompts_on_a_terminal() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    server.owner().create_key("Old laptop", "30d", "read-write").await;
    let command = |args: &str| {
        format!(
            "env -i HOME={home} CUSTORY_CONFIG_DIR={config} CUSTORY_CREDENTIAL_STORE=file \
             CUSTORY_SERVER={url} CUSTORY_OWNER_TOKEN={owner} TERM=xterm NO_COLOR=1 {bin} {args}",
            home = env.home.path().display(),
            config = env.config_dir().display(),
            url = server.url,
            owner = server.owner_token,
            bin = crate::common::BIN,
        )
    };
    let create = command("keys create");
    let revoke = command("keys revoke");
    tokio::task::spawn_blocking(move || {
        let t = crate::common::Terminal::start(&create);
        t.wait_for("one key per client or machine");
        t.wait_for("Key name");
        t.keys(&["-l", "Claude Code on CI VM"]);
        t.keys(&["Enter"]);
        t.wait_for("never");
        t.keys(&["Enter"]);
        // The token is shown once; the offer to store it follows: "No" here.
        t.wait_for("Store the token now?");
        t.keys(&["Down"]);
        t.keys(&["Down"]);
        t.wait_for("❯ No: I have stored it myself");
        t.keys(&["Enter"]);
        let screen = t.wait_for("EXIT=0");
        assert!(screen.contains("Expires after · 90 days"), "{screen}");
        assert!(Regex::new("cst_[0-9A-Za-z]{38}").expect("regex").is_match(&screen), "{screen}");
        drop(t);

        let t = crate::common::Terminal::start(&revoke);
        t.wait_for("Revoke which key?");
        t.wait_for("Old laptop");
        // The newest key comes first; move down to "Old laptop".
        t.keys(&["Down"]);
        t.wait_for("❯ Old laptop");
        t.keys(&["Enter"]);
        t.wait_for("Clients using it stop working at once");
        t.keys(&["y"]);
        let screen = t.wait_for("EXIT=0");
        assert!(screen.contains("Revoked \"Old laptop\""), "{screen}");
    })
    .await
    .expect("terminal session");

    let keys = keys(&server).await;
    let by_name = |name: &str| keys.iter().find(|k| k["name"] == name).cloned().expect("key");
    assert_eq!(by_name("Claude Code on CI VM")["expires"], "90d", "the default expiry is 90 days");
    assert_eq!(by_name("Claude Code on CI VM")["status"], "active");
    assert_eq!(by_name("Old laptop")["status"], "revoked");
    server.stop().await;
}

/// `-v` says what the CLI does on stderr: the server, each request and its answer, never the
/// credential. Without it, none of that.
#[tokio::test]
async fn verbose_shows_each_request_and_its_answer() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let verbose = env.admin(&server, &["-v", "keys", "list"]).await;
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    let url = &server.url;
    assert!(verbose.stderr.contains(&format!("server: {url}")), "{}", verbose.stderr);
    assert!(verbose.stderr.contains("owner credential: CUSTORY_OWNER_TOKEN"), "{}", verbose.stderr);
    let asked = format!("→ GET {url}/api/admin/workspaces/acme/mcp-keys?");
    assert!(verbose.stderr.contains(&asked), "{}", verbose.stderr);
    assert!(verbose.stderr.contains("← 200 OK in "), "{}", verbose.stderr);
    assert!(!verbose.stderr.contains(&server.owner_token), "{}", verbose.stderr);
    let plain = env.admin(&server, &["keys", "list"]).await;
    assert!(!plain.stderr.contains("→ GET"), "{}", plain.stderr);
    server.stop().await;
}

/// A reader that is gone (`| head -1`, a closed stderr) costs the lines it would have read, not
/// a panic (exit 101).
#[tokio::test]
async fn a_closed_stdout_or_stderr_is_not_a_panic() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    server.owner().create_key("First", "30d", "read-only").await;
    server.owner().create_key("Second", "30d", "read-only").await;
    // `--limit 1` has a line for stderr ("Showing the newest 1 key"), the table one for stdout.
    for closed in ["stdout", "stderr"] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut cmd = env.command();
        cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
        cmd.args(["keys", "list", "--limit", "1"]).stdin(std::process::Stdio::null());
        if closed == "stdout" {
            cmd.stdout(writer).stderr(std::process::Stdio::piped());
        } else {
            cmd.stderr(writer).stdout(std::process::Stdio::piped());
        }
        let output = cmd.output().await.expect("run");
        assert_eq!(output.status.code(), Some(0), "{closed} closed: {output:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_empty_pipe_is_said_to_be_empty_not_a_malformed_secret() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    for args in [
        &["login", "--token-stdin"][..],
        &["login", "--invite-stdin"],
        &["keys", "revoke", "--token-stdin"],
    ] {
        let mut cmd = env.command();
        cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
        cmd.args(args);
        let run = crate::common::run_piped(cmd, Some("\n")).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("on standard input (it was empty)"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("does not start with"), "{args:?}: {}", run.stderr);
    }
    server.stop().await;
}
