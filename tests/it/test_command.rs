//! `custory-mcp test` against real servers: every stage and failure it can show.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use custory_mcp::token::{PlainToken, TokenKind};
use serde_json::{Value, json};

use crate::common::{TestDatabase, TestEnv, TestServer, http};

/// What a run of `custory-mcp test` showed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The stage line `{mark} {name} …` on stderr, with the hint line under it if any.
    fn stage(&self, mark: &str, name: &str) -> String {
        let prefix = format!("{mark} {name} ");
        let mut lines = self.stderr.lines().skip_while(|line| !line.starts_with(&prefix));
        let Some(line) = lines.next() else {
            panic!("no stage line {prefix:?} in:\n{}", self.stderr);
        };
        match lines.next().filter(|next| next.trim_start().starts_with("hint:")) {
            Some(hint) => format!("{line}\n{hint}"),
            None => line.to_owned(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `custory-mcp test ARGS` with `CUSTORY_MCP_TOKEN=token` (if any) in an isolated home.
async fn run_test(token: Option<&str>, args: &[&str]) -> Run {
    run_test_in(&TestEnv::new(), token, args).await
}

async fn run_test_in(env: &TestEnv, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = env.command();
    command.arg("test").args(args);
    if let Some(token) = token {
        command.env("CUSTORY_MCP_TOKEN", token);
    }
    let output = command.output().await.expect("run custory-mcp test");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    if let Some(token) = token {
        assert!(
            !run.stdout.contains(token) && !run.stderr.contains(token),
            "the token was printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    run
}

/// A well-formed MCP key that no server issued.
fn stranger_token() -> String {
    PlainToken::generate(TokenKind::Mcp).expose().to_owned()
}

/// Serves `router` on 127.0.0.1:0 for the rest of the test; returns its base URL.
async fn serve_router(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A port on 127.0.0.1 where nothing listens any more.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn a_working_connection_passes_every_stage() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Cursor", "30d", "read-write").await;
    let (token, tools) = (key.token.clone(), key.tools().await.len());

    let run = run_test(Some(&token), &["--server", &server.url]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "", "the checklist is for people: stderr only");
    assert!(run.stderr.contains(&format!("Testing {}", server.mcp_url())), "{}", run.stderr);
    assert!(run.stage("✓", "token format").contains(&format!("{}…", &token[..12])));
    assert!(run.stage("✓", "connect").contains(&server.url["http://".len()..]));
    assert!(run.stage("✓", "OAuth discovery").contains("not offered (404)"));
    assert!(run.stage("✓", "initialize").contains("200 OK in "));
    assert!(run.stage("✓", "protocol version").ends_with("2025-11-25"));
    assert!(
        run.stage("✓", "server").ends_with(&format!("custory-mcp {}", env!("CARGO_PKG_VERSION")))
    );
    assert!(run.stage("✓", "tools/list").contains(&format!("{tools} tools in ")));
    assert!(
        run.stage("✓", "2026-07-28").contains("the stateless revision too (server/discover in ")
    );
    assert!(run.stderr.contains("All 8 checks passed."), "{}", run.stderr);
    assert!(!run.stderr.contains('✗') && !run.stderr.contains("hint:"), "{}", run.stderr);

    let run = run_test(Some(&token), &["--url", &server.mcp_url(), "--json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, "", "with --json the report is on stdout only");
    let report = run.json();
    assert_eq!(report["url"], server.mcp_url());
    assert_eq!(report["ok"], true);
    let stages = report["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages.iter().map(|s| s["name"].as_str().expect("name")).collect();
    assert_eq!(
        names,
        [
            "token format",
            "connect",
            "OAuth discovery",
            "initialize",
            "protocol version",
            "server",
            "tools/list",
            "2026-07-28"
        ]
    );
    for stage in stages {
        assert_eq!(stage["ok"], true, "{stage}");
        assert!(stage["detail"].as_str().is_some_and(|d| !d.is_empty()), "{stage}");
        assert!(stage.get("hint").is_none(), "{stage}");
    }
    assert_eq!(report["server"]["name"], "custory-mcp");
    assert_eq!(report["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["stateless_revision"], true);
    assert_eq!(report["protocol_version"], "2025-11-25");
    assert_eq!(report["tools"], tools);
    assert!(report["round_trip_ms"]["initialize"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(report["round_trip_ms"]["tools_list"].as_f64().is_some_and(|ms| ms >= 0.0));

    // A read-only key lists the read tools only.
    let reader = owner.create_key("Reader", "never", "read-only").await;
    let run = run_test(Some(&reader.token), &["--server", &server.url, "--json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let read_tools = reader.tools().await.len();
    assert!(read_tools < tools, "{read_tools} of {tools}");
    assert_eq!(run.json()["tools"], read_tools);

    // The server saw the check as a client, under its own name.
    let keys = owner.list_keys("acme", "").await;
    let cursor = keys["keys"].as_array().expect("keys").iter().find(|k| k["name"] == "Cursor");
    let client = cursor.and_then(|k| k["last_used_client"].as_str()).unwrap_or_default();
    assert!(client.starts_with("custory-mcp-test/"), "{keys}");
    server.stop().await;
}

#[tokio::test]
async fn a_key_saved_by_keys_create_is_tested_with_key() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::for_backend(&dir.path().join("custory.db"));
    let serve = env.serve_on(&db.arg(), &[]).await;
    let url = serve.url();
    let output = env
        .command()
        .args(["keys", "create", "--name", "CI runner", "--expires", "30d", "--save"])
        .args(["--server", &url])
        .output()
        .await
        .expect("keys create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let run = run_test_in(&env, None, &["--key", "CI runner", "--server", &url]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stage("✓", "token format").contains("from saved key CI runner"), "{}", run.stderr);
    assert!(run.stage("✓", "tools/list").contains("24 tools"), "{}", run.stderr);
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(token.starts_with("cst_") && !run.stderr.contains(&token), "{}", run.stderr);

    let run = run_test_in(&env, None, &["--key", "CI runner", "--token-env", "X"]).await;
    assert_eq!(run.code, Some(2), "--key and --token-env exclude each other");
    serve.terminate().await;
}

#[tokio::test]
async fn a_stopped_server_is_nothing_listening() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/api/mcp");
    let run = run_test(Some(&stranger_token()), &["--url", &url]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "connect");
    assert!(stage.contains(&format!("nothing is listening at 127.0.0.1:{port}")), "{stage}");
    assert!(stage.contains("hint: start it with `custory-mcp serve`, or check --url"), "{stage}");
    assert!(!run.stderr.contains("initialize"), "later stages do not run:\n{}", run.stderr);
    assert!(run.stderr.contains("1 of 2 checks failed"), "{}", run.stderr);

    let run = run_test(Some(&stranger_token()), &["--url", &url, "--json"]).await;
    assert_eq!(run.code, Some(1));
    let report = run.json();
    assert_eq!(report["ok"], false);
    let last = &report["stages"][1];
    assert_eq!(last["name"], "connect");
    assert_eq!(last["ok"], false);
    assert!(last["detail"].as_str().is_some_and(|d| d.contains("nothing is listening")));
    assert!(last["hint"].as_str().is_some_and(|h| h.contains("custory-mcp serve")));
    assert!(report.get("tools").is_none() && report.get("server").is_none());
}

#[tokio::test]
async fn a_wrong_path_is_named_with_the_right_one() {
    let server = TestServer::start().await;
    let token = server.owner().create_key("Cursor", "30d", "read-write").await.token;
    let run = run_test(Some(&token), &["--url", &format!("{}/nope", server.url)]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    run.stage("✓", "connect");
    let stage = run.stage("✗", "initialize");
    assert!(
        stage.contains("404 Not Found: wrong path (/nope); the MCP endpoint is /api/mcp"),
        "{stage}"
    );
    assert!(stage.contains(&format!("hint: use --url {}", server.mcp_url())), "{stage}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_revoked_and_expired_keys_each_get_their_cause_and_fix() {
    let server = TestServer::start().await;
    let args = ["--server", server.url.as_str()];

    // Well-formed, but issued by no server: passes the local check, refused by the server.
    let run = run_test(Some(&stranger_token()), &args).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    run.stage("✓", "token format");
    let stage = run.stage("✗", "initialize");
    assert!(stage.contains("401 Unauthorized: the server does not know this key"), "{stage}");
    // Each command names the server this run was given, so it runs as printed.
    let create = format!(
        "`custory-mcp --server {} keys create --name 'Cursor on MacBook' --expires 90d --save`",
        server.url
    );
    assert!(stage.contains(&create), "{stage}");

    let owner = server.owner();
    let key = owner.create_key("Cursor", "30d", "read-write").await;
    owner.revoke(key.id()).await;
    let token = key.token;
    let run = run_test(Some(&token), &args).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "initialize");
    assert!(stage.contains("401 Unauthorized: this MCP key was revoked"), "{stage}");
    assert!(stage.contains(&format!("create a new one with {create}")), "{stage}");
    let run = run_test(Some(&token), &[args[0], args[1], "--json"]).await;
    assert_eq!(run.code, Some(1), "a failed check exits 1 with --json too");
    let report = run.json();
    assert_eq!(report["ok"], false);
    let last = report["stages"].as_array().and_then(|s| s.last()).expect("stages").clone();
    assert_eq!(last["name"], "initialize");
    assert_eq!(last["ok"], false);
    assert!(last["detail"].as_str().is_some_and(|d| d.contains("revoked")), "{last}");
    assert!(last["hint"].as_str().is_some_and(|h| h.contains("keys create")), "{last}");

    let token = owner.create_key("Claude Code", "30d", "read-write").await.token;
    server.store.clock().advance(chrono::Duration::days(31));
    let run = run_test(Some(&token), &args).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "initialize");
    assert!(stage.contains("401 Unauthorized: this MCP key has expired"), "{stage}");
    // The token names its key by its prefix: the command is whole, no KEY to fill in.
    let rotate = format!("`custory-mcp --server {} keys rotate {}`", server.url, &token[..12]);
    assert!(stage.contains(&rotate), "{stage}");
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_token_fails_locally_without_any_network() {
    // A listener that is never accepted from: any connection attempt would queue on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api/mcp", listener.local_addr().expect("addr"));

    let token = stranger_token();
    let mut typo: Vec<char> = token.chars().collect();
    typo[10] = if typo[10] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    for (bad, cause) in [
        (typo.as_str(), "checksum does not match"),
        (&token[..30], "wrong length"),
        ("ghp_notacustorytoken", "does not start with cst_"),
    ] {
        let run = run_test(Some(bad), &["--url", &url]).await;
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let stage = run.stage("✗", "token format");
        assert!(
            stage.contains(cause) && stage.contains("$CUSTORY_MCP_TOKEN holds no valid MCP key"),
            "{stage}"
        );
        assert!(stage.contains("hint:") && stage.contains("keys create --name"), "{stage}");
        assert!(!run.stderr.contains("connect"), "{}", run.stderr);
    }
    let pending = tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept());
    assert!(pending.await.is_err(), "a malformed token must not reach the network");

    // The owner credential is well-formed but never accepted at the MCP endpoint.
    let owner = PlainToken::generate(TokenKind::Owner);
    let run = run_test(Some(owner.expose()), &["--url", &url]).await;
    assert_eq!(run.code, Some(1));
    let stage = run.stage("✗", "token format");
    assert!(stage.contains("$CUSTORY_MCP_TOKEN holds the owner credential (csa_…)"), "{stage}");

    // No token at all is a usage error naming every way to give one.
    let run = run_test(None, &["--url", &url]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("error: no token to test with: CUSTORY_MCP_TOKEN is not set"));
    for needed in ["--key", "--token-env", "keys create --save"] {
        assert!(run.stderr.contains(needed), "{needed} missing from:\n{}", run.stderr);
    }
    let run = run_test(Some(&token), &["--url", &url, "--token-env", "MY_TOKEN"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("MY_TOKEN is not set"), "{}", run.stderr);
}

#[tokio::test]
async fn a_server_with_oauth_on_is_reported_as_offering_it_after_a_401_only() {
    let config = custory_mcp::server::ServerConfig { oauth: true, ..Default::default() };
    let server = TestServer::start_with(config).await;
    let token = server.owner().create_key("Cursor", "30d", "read-write").await.token;
    let run = run_test(Some(&token), &["--server", &server.url]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let stage = run.stage("✓", "OAuth discovery");
    assert!(stage.contains("offered after a 401 only"), "{stage}");
    assert!(stage.contains(&format!("{}/oauth", server.url)), "{stage}");
    // A key the server does not know: the 401 says it leads to a sign-in.
    let run = run_test(Some(&stranger_token()), &["--server", &server.url]).await;
    assert_eq!(run.code, Some(1));
    assert!(run.stage("✗", "initialize").contains("advertises OAuth metadata"), "{}", run.stderr);
    server.stop().await;
}

#[tokio::test]
async fn a_server_answering_oauth_discovery_fails_that_stage() {
    let server = TestServer::start().await;
    let token = server.owner().create_key("Cursor", "30d", "read-write").await.token;
    // A front that answers OAuth protected-resource metadata and passes /api/mcp through.
    let upstream = server.mcp_url();
    let router = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(|| async {
                axum::Json(json!({
                    "resource": "http://127.0.0.1/api/mcp",
                    "authorization_servers": ["https://auth.example.com"]
                }))
            }),
        )
        .route(
            "/api/mcp",
            post(move |headers: HeaderMap, body: Bytes| proxy(upstream.clone(), headers, body)),
        );
    let front = serve_router(router).await;

    let run = run_test(Some(&token), &["--url", &format!("{front}/api/mcp")]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "OAuth discovery");
    assert!(
        stage
            .contains("/.well-known/oauth-protected-resource answers 200 OK with application/json"),
        "{stage}"
    );
    assert!(
        stage.contains(
            "clients such as Claude Code, Cursor and mcp-remote then ignore the configured \
             Authorization header and start an OAuth flow"
        ),
        "{stage}"
    );
    assert!(stage.contains("answer 404"), "{stage}");
    // The header itself works: the rest of the checks still run and pass.
    run.stage("✓", "initialize");
    run.stage("✓", "tools/list");
    // This proxy passes on only the headers it knows, not Mcp-Method: the last stage says so.
    let stage = run.stage("!", "2026-07-28");
    assert!(stage.contains("drops or rewrites Mcp-* headers"), "{stage}");
    assert!(stage.contains("pass the Mcp-Method and Mcp-Name headers through"), "{stage}");
    assert!(run.stderr.contains("2 of 8 checks failed."), "{}", run.stderr);
    server.stop().await;
}

async fn proxy(
    upstream: String,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = http().post(upstream).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value.clone());
        }
    }
    if let Some(value) = headers.get("mcp-protocol-version") {
        request = request.header("mcp-protocol-version", value.clone());
    }
    let response = request.send().await.expect("upstream");
    let status = response.status();
    let mut out = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::WWW_AUTHENTICATE] {
        if let Some(value) = response.headers().get(&name) {
            out.insert(name, value.clone());
        }
    }
    (status, out, response.bytes().await.expect("upstream body"))
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_failure() {
    use tokio_rustls::rustls;

    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(stream).await;
            });
        }
    });

    let url = format!("https://127.0.0.1:{port}/api/mcp");
    let run = run_test(Some(&stranger_token()), &["--url", &url]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "connect");
    assert!(
        stage.contains(&format!("TLS failed: the certificate of 127.0.0.1:{port} is not trusted")),
        "{stage}"
    );
    assert!(stage.contains("self-signed"), "{stage}");
    assert!(stage.contains("hint:") && stage.contains("trust"), "{stage}");

    // https:// at a plain-HTTP server is told apart from a bad certificate.
    let server = TestServer::start().await;
    let plain = server.mcp_url().replacen("http://", "https://", 1);
    let run = run_test(Some(&stranger_token()), &["--url", &plain]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "connect");
    assert!(stage.contains("does not speak TLS") && stage.contains("http://"), "{stage}");
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Connections queue in the backlog, so TCP connects, but no HTTP answer ever comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}/api/mcp");
    let run = run_test(Some(&stranger_token()), &["--url", &url, "--timeout", "1"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "connect");
    assert!(stage.contains(&format!("no answer from {addr} within 1s")), "{stage}");
    assert!(stage.contains("--timeout SECS"), "{stage}");
    drop(listener);
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_failure() {
    // `.invalid` never resolves (RFC 2606).
    let run = run_test(
        Some(&stranger_token()),
        &["--url", "http://custory.invalid/api/mcp", "--timeout", "5"],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "connect");
    assert!(stage.contains("could not resolve custory.invalid"), "{stage}");
    assert!(stage.contains("hint: check the host name in --url"), "{stage}");
}

/// An MCP server that is not custory-mcp: it answers `initialize` as `name`, speaking
/// `version`, over SSE when `sse`.
fn foreign_server(name: &'static str, version: &'static str, sse: bool) -> Router {
    Router::new().route(
        "/mcp",
        post(move |axum::Json(request): axum::Json<Value>| async move {
            let result = match request["method"].as_str() {
                Some("initialize") => json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": name, "version": "9.9.9"}
                }),
                Some("tools/list") => json!({"tools": [
                    {"name": "echo", "inputSchema": {"type": "object"}},
                    {"name": "add", "inputSchema": {"type": "object"}}
                ]}),
                _ => json!({}),
            };
            let message = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
            if sse {
                let body = format!("id: 0\ndata:\n\nevent: message\ndata: {message}\n\n");
                ([(header::CONTENT_TYPE, "text/event-stream")], body)
            } else {
                ([(header::CONTENT_TYPE, "application/json")], message.to_string())
            }
        }),
    )
}

#[tokio::test]
async fn another_mcp_server_is_flagged_and_unknown_versions_fail() {
    let other = serve_router(foreign_server("everything-server", "2025-06-18", true)).await;
    let run = run_test(Some(&stranger_token()), &["--url", &format!("{other}/mcp")]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    run.stage("✓", "initialize");
    assert!(
        run.stage("✓", "protocol version").contains("2025-06-18 (asked for 2025-11-25)"),
        "{}",
        run.stderr
    );
    let stage = run.stage("!", "server");
    assert!(
        stage.contains("this is not a custory-mcp server: it calls itself everything-server 9.9.9"),
        "{stage}"
    );
    assert!(stage.contains("custory-mcp serve"), "{stage}");
    // Over SSE too, the tools are counted.
    assert!(run.stage("✓", "tools/list").contains("2 tools"), "{}", run.stderr);

    let old = serve_router(foreign_server("custory-mcp", "2024-11-05", false)).await;
    let run = run_test(Some(&stranger_token()), &["--url", &format!("{old}/mcp")]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "protocol version");
    assert!(stage.contains("the server speaks 2024-11-05, which custory-mcp does not"), "{stage}");
    assert!(!run.stderr.contains("tools/list"), "{}", run.stderr);
}

#[tokio::test]
async fn the_curl_command_performs_the_same_initialize() {
    let server = TestServer::start().await;
    let token = server.owner().create_key("Cursor", "30d", "read-write").await.token;

    let run = run_test(Some(&token), &["--server", &server.url, "--curl"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let command = run.stdout.trim_end();
    assert!(command.contains("$CUSTORY_MCP_TOKEN"), "{command}");
    assert!(command.contains(&server.mcp_url()), "{command}");
    assert!(!command.contains(&token), "the token itself is never printed");

    // Run as a user would, in bash and in a plain POSIX sh, with a `curl` on PATH that writes
    // down its arguments before running the real one: the token must not be among them
    // (anyone on the machine sees a process's arguments in `ps`).
    let real_curl = which("curl");
    let bin = tempfile::tempdir().expect("bin dir");
    let argv = bin.path().join("argv");
    let wrapper = bin.path().join("curl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            argv.display(),
            real_curl
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    for shell in ["bash", "sh"] {
        let output = tokio::process::Command::new(shell)
            .arg("-c")
            .arg(command)
            .env_clear()
            .env("PATH", &path)
            .env("CUSTORY_MCP_TOKEN", &token)
            .output()
            .await
            .expect("run the printed curl command");
        assert!(output.status.success(), "{shell}: {}", String::from_utf8_lossy(&output.stderr));
        let reply: Value = serde_json::from_slice(&output.stdout).expect("JSON-RPC reply");
        assert_eq!(reply["jsonrpc"], "2.0");
        assert_eq!(reply["id"], 1);
        assert_eq!(reply["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(reply["result"]["serverInfo"]["name"], "custory-mcp");
    }
    let seen = std::fs::read_to_string(&argv).expect("the wrapper ran");
    assert!(seen.contains("@-"), "{seen}");
    assert!(!seen.contains(&token), "the token reached curl's arguments: {seen}");

    // Another variable name is used as given; none set here gets a note on stderr.
    let run =
        run_test(None, &["--server", &server.url, "--curl", "--token-env", "CI_MCP_TOKEN"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains(r#""$CI_MCP_TOKEN""#), "{}", run.stdout);
    assert!(run.stderr.contains("CI_MCP_TOKEN is not set"), "{}", run.stderr);

    let run = run_test(None, &["--curl", "--token-env", "A-B"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("is not an environment variable name"), "{}", run.stderr);
    server.stop().await;
}

/// The full path of `program` on PATH.
fn which(program: &str) -> String {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} is needed for this test (apt-get install {program})"))
        .display()
        .to_string()
}

#[tokio::test]
async fn a_key_used_from_outside_its_addresses_is_told_so_with_the_command_that_lists_them() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let body = json!({"name": "Office", "expires": "30d", "allow_ip": ["10.0.0.0/8"]});
    let key = owner.create_key_in("acme", body).await;
    let run = run_test(Some(&key.token), &["--server", server.url.as_str()]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let stage = run.stage("✗", "initialize");
    // The server's sentence once, under its status; the remedy is about addresses, not the
    // browser Origins a 403 from a proxy or an unknown Origin would be about.
    assert!(
        stage.contains("403 Forbidden: this MCP key may not be used from 127.0.0.1"),
        "{stage}"
    );
    assert_eq!(stage.matches("Forbidden").count(), 1, "{stage}");
    assert!(!stage.contains("Origin"), "{stage}");
    let show = format!("`custory-mcp --server {} keys show {}`", server.url, &key.token[..12]);
    assert!(stage.contains(&show), "{stage}");
    // The printed command runs, as the administrator, and lists the key's addresses.
    let words: Vec<&str> = show.trim_matches('`').split_whitespace().collect();
    assert_eq!(words[0], "custory-mcp");
    let env = TestEnv::new();
    let mut command = env.command();
    command.args(&words[1..]).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    let output = command.output().await.expect("run keys show");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(shown.contains("addresses: 10.0.0.0/8"), "{shown}");
    server.stop().await;
}
