//! Where the CLI points and what it knows before it does anything: `--server` checked before a
//! credential is asked for, `status`, and the default workspace (`workspaces use`).

use crate::common::{Run, TestEnv, TestServer, run_piped};

/// A URL on 127.0.0.1 where nothing listens.
fn dead_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", listener.local_addr().expect("addr"))
}

/// The binary with `args` in `env`, with no owner credential anywhere and nothing on stdin.
async fn bare(env: &TestEnv, args: &[&str]) -> Run {
    let mut cmd = env.command();
    cmd.args(args);
    run_piped(cmd, None).await
}

#[tokio::test]
async fn a_wrong_server_is_named_before_any_credential_is_asked_for() {
    let env = TestEnv::new();
    // No scheme: a usage error with the URL meant, for every command (login included).
    for args in [&["keys", "list"][..], &["login"], &["status"], &["workspaces", "list"]] {
        let run = bare(&env, &[&["--server", "127.0.0.1:8787"], args].concat()).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("no scheme; did you mean http://127.0.0.1:8787?"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("relative URL"), "{}", run.stderr);
        assert!(!run.stderr.contains("login"), "no talk of credentials: {}", run.stderr);
    }
    // The same from the environment.
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", "localhost:8787").args(["keys", "list"]);
    let from_env = run_piped(cmd, None).await;
    assert_eq!(from_env.code, 2);
    assert!(from_env.stderr.contains("did you mean http://localhost:8787?"), "{}", from_env.stderr);

    // The MCP endpoint's URL: refused with the base URL to use.
    let path = bare(&env, &["--server", "http://127.0.0.1:8787/api/mcp", "keys", "list"]).await;
    assert_eq!(path.code, 2);
    assert!(
        path.stderr
            .contains("--server takes the server's base URL: --server http://127.0.0.1:8787"),
        "{}",
        path.stderr
    );
    let scheme = bare(&env, &["--server", "ftp://127.0.0.1", "keys", "list"]).await;
    assert_eq!(scheme.code, 2);
    assert!(scheme.stderr.contains("not an http:// or https:// URL"), "{}", scheme.stderr);

    // A dead port: "nothing answers", with the command that starts a server there, before any
    // talk of credentials; `login` says it before asking for one (here it could not ask: no
    // terminal, no --token-stdin).
    let dead = dead_server();
    let port = dead.rsplit(':').next().expect("a port");
    for args in [&["keys", "list"][..], &["login"], &["login", "--token-stdin"]] {
        let run = bare(&env, &[&["--server", dead.as_str()], args].concat()).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr,
            format!(
                "error: nothing answers at {dead}\nhint: start it with `custory-mcp serve \
                 --listen 127.0.0.1:{port}`, or pass the right --server URL\n"
            ),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn a_live_server_without_a_credential_still_asks_for_login() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let run = bare(&env, &["--server", &format!("{}/", server.url), "keys", "list"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!("hint: run `custory-mcp login --server {}`", server.url)),
        "{}",
        run.stderr
    );
    server.stop().await;
}

#[tokio::test]
async fn status_says_what_commands_would_use_and_what_to_run_when_it_cannot() {
    let server = TestServer::start().await;
    let env = TestEnv::new();

    // No credential anywhere: exit 1, what to run, and the rest still reported.
    let none = bare(&env, &["--server", &server.url, "status"]).await;
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(none.stdout.contains(&format!("Server      {} (from --server)", server.url)));
    assert!(none.stdout.contains("Reachable   yes, custory-mcp "), "{}", none.stdout);
    assert!(none.stdout.contains("Credential  none\n"), "{}", none.stdout);
    assert!(
        none.stderr.ends_with(&format!("hint: run `custory-mcp login --server {}`\n", server.url)),
        "{}",
        none.stderr
    );

    // Logged in (the file store here): where the credential is, never the credential.
    let mut login = env.command();
    login.args(["--server", &server.url, "login", "--token-stdin"]);
    let logged = run_piped(login, Some(&server.owner_token)).await;
    assert_eq!(logged.code, 0, "{}", logged.stderr);
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", &server.url).args(["status", "--json"]);
    let ok = run_piped(cmd, None).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let report: serde_json::Value = serde_json::from_str(&ok.stdout).expect("json");
    let credentials = env.config_dir().join("credentials.json").display().to_string();
    assert_eq!(
        report,
        serde_json::json!({
            "server": {"url": server.url, "from": "env", "reachable": true,
                       "version": env!("CARGO_PKG_VERSION")},
            "credential": {"kind": "owner", "from": "file", "file": credentials,
                           "accepted": true, "workspaces": 1},
            "who": {"kind": "administrator", "roles": []},
            "workspace": {"slug": "acme", "from": "only", "exists": true},
            "usable": true,
            "problem": null,
        })
    );
    assert!(!ok.stdout.contains(&server.owner_token) && !ok.stderr.contains("csa_"));
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", &server.url).args(["status"]);
    let text = run_piped(cmd, None).await;
    assert!(text.stdout.contains("Credential  owner credential in "), "{}", text.stdout);
    assert!(text.stdout.contains("You are     the administrator ("), "{}", text.stdout);

    // From the environment, and refused by the server: a credential of another server.
    let other = TestServer::start().await;
    let mut cmd = env.command();
    cmd.env("CUSTORY_OWNER_TOKEN", &other.owner_token).args(["--server", &server.url, "status"]);
    let refused = run_piped(cmd, None).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stdout.contains("Credential  owner credential from CUSTORY_OWNER_TOKEN\n"));
    assert!(refused.stdout.contains("Accepted    no\n"), "{}", refused.stdout);
    assert!(!refused.stdout.contains("You are"), "{}", refused.stdout);
    assert!(refused.stderr.contains("hint: run `custory-mcp login --server"), "{}", refused.stderr);
    assert!(!refused.stdout.contains(&other.owner_token) && !refused.stderr.contains("csa_"));

    // A dead server: not reachable, and how to start one.
    let dead = dead_server();
    let down = bare(&env, &["--server", &dead, "status", "--json"]).await;
    assert_eq!(down.code, 1);
    let report: serde_json::Value = serde_json::from_str(&down.stdout).expect("json");
    assert_eq!(report["server"]["reachable"], false);
    assert_eq!(report["usable"], false);
    assert!(down.stderr.contains("hint: start it with `custory-mcp serve --listen"));
    other.stop().await;
    server.stop().await;
}

/// The command in the first pair of backticks of `text`'s `hint:` line, as words (the hints
/// print plain words here: slugs).
fn hinted_command(text: &str) -> Vec<String> {
    let hint = text.lines().find(|l| l.starts_with("hint: ")).expect("a hint");
    let quoted = hint.split('`').nth(1).expect("a command in backticks");
    quoted.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn a_default_workspace_is_stored_per_server_and_keys_name_their_own() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    owner.create_workspace(serde_json::json!({"name": "Beta Team"})).await;
    let in_acme =
        owner.create_key_in("acme", serde_json::json!({"name": "A", "expires": "30d"})).await;
    let in_beta =
        owner.create_key_in("beta-team", serde_json::json!({"name": "B", "expires": "30d"})).await;
    let names = |run: &Run| -> Vec<String> {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let listed: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        listed["keys"].as_array().expect("keys").iter().map(|k| k["name"].to_string()).collect()
    };

    // Several workspaces, no default: the error prints the command that sets one, with a real
    // slug, and that command, run as printed, works.
    let ambiguous = env.admin(&server, &["keys", "list"]).await;
    assert_eq!(ambiguous.code, 2);
    let command = hinted_command(&ambiguous.stderr);
    assert_eq!(command, ["custory-mcp", "workspaces", "use", "acme"], "{}", ambiguous.stderr);
    let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
    let used = env.admin(&server, &args).await;
    assert_eq!(used.code, 0, "{}", used.stderr);
    assert_eq!(names(&env.admin(&server, &["--json", "keys", "list"]).await), ["\"A\""]);

    // The order: flag > environment > the stored default.
    let used = env.admin(&server, &["workspaces", "use", "beta-team"]).await;
    assert_eq!(used.code, 0, "{}", used.stderr);
    assert_eq!(names(&env.admin(&server, &["--json", "keys", "list"]).await), ["\"B\""]);
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", &server.url)
        .env("CUSTORY_OWNER_TOKEN", &server.owner_token)
        .env("CUSTORY_WORKSPACE", "acme")
        .args(["--json", "keys", "list"]);
    assert_eq!(names(&run_piped(cmd, None).await), ["\"A\""]);
    let flagged = env.admin(&server, &["--workspace", "acme", "--json", "keys", "list"]).await;
    assert_eq!(names(&flagged), ["\"A\""]);
    let status = env.admin_json(&server, &["status"]).await;
    assert_eq!(
        status["workspace"],
        serde_json::json!({"slug": "beta-team", "from": "saved", "exists": true})
    );

    // A key's id or prefix names its workspace: found in acme while the default is beta-team,
    // and with no default at all.
    let prefix = &in_acme.token[..12];
    let shown = env.admin_json(&server, &["keys", "show", prefix]).await;
    assert_eq!(shown["key"]["name"], "A", "{shown}");
    let cleared = env.admin(&server, &["workspaces", "use", "--clear"]).await;
    assert_eq!(cleared.code, 0, "{}", cleared.stderr);
    for reference in [in_acme.id(), in_beta.id()] {
        let shown = env.admin_json(&server, &["keys", "show", reference]).await;
        assert_eq!(shown["key"]["id"], reference);
    }
    let revoked = env.admin(&server, &["keys", "revoke", in_beta.id(), "--yes"]).await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    // A name does not: it still needs a workspace.
    let by_name = env.admin(&server, &["keys", "show", "A"]).await;
    assert_eq!(by_name.code, 2, "{}", by_name.stderr);

    // Per server: another server's default is its own, and an unknown slug is not stored.
    let other = TestServer::start().await;
    let unknown = env.admin(&other, &["workspaces", "use", "beta-team"]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    let other_status = env.admin_json(&other, &["status"]).await;
    assert_eq!(other_status["workspace"]["from"], "only");
    other.stop().await;
    server.stop().await;
}
