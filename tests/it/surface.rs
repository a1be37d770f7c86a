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
    for args in [&["keys", "list"][..], &["login"], &["workspaces", "list"]] {
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
