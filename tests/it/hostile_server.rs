//! The admin CLI against a hostile server (issue 31): it follows no redirect, so the owner
//! credential never goes where a redirect points; it reads no more than a cap of any answer;
//! and nothing a server says reaches the terminal as an escape sequence. Each server here is
//! real HTTP on 127.0.0.1:0, speaking on raw TCP so that it can misbehave freely.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{Run, TestEnv, TestServer, run_piped};

/// What a hostile server answers a request with.
enum Answer {
    /// A status line, extra header lines and a JSON body.
    Json(&'static str, String, Value),
    /// A 200 whose body never ends.
    Endless,
}

/// A request as the server saw it: its `Host` and its path.
#[derive(Debug, Clone)]
struct Seen {
    host: String,
    path: String,
}

/// Serves `answer` for every request on 127.0.0.1:0; returns the URL and what it saw.
async fn hostile(
    answer: impl Fn(&Seen, u16) -> Answer + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (record, answer) = (Arc::clone(&record), Arc::clone(&answer));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let header = |name: &str| {
                    head.lines().find_map(|line| {
                        let (key, value) = line.split_once(':')?;
                        key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
                    })
                };
                let request = Seen { host: header("host").unwrap_or_default(), path };
                record.lock().expect("lock").push(request.clone());
                match answer(&request, port) {
                    Answer::Json(status, headers, body) => {
                        let body = body.to_string();
                        let reply = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(reply.as_bytes()).await;
                    }
                    Answer::Endless => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                    Connection: close\r\n\r\n{\"workspaces\": [";
                        if stream.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = vec![b' '; 64 * 1024];
                        // Until the reader hangs up.
                        while stream.write_all(&chunk).await.is_ok() {}
                    }
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

/// The CLI against `server` with an owner credential in the environment (`stdin` piped in).
async fn cli(env: &TestEnv, server: &str, owner: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", server).env("CUSTORY_OWNER_TOKEN", owner).args(args);
    run_piped(cmd, stdin).await
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_credential_stays_home() {
    let env = TestEnv::new();
    let owner = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Owner);
    // 127.0.0.1 sends the client to `localhost`, the same server by another name, which sends
    // it to itself again: a client that followed would bring the credential to the second hop.
    let (url, seen) = hostile(|request, port| {
        let location = format!("Location: http://localhost:{port}{}\r\n", request.path);
        Answer::Json("307 Temporary Redirect", location, json!({}))
    })
    .await;
    let port = url.rsplit(':').next().expect("port").to_owned();
    for args in [&["workspaces", "list"][..], &["keys", "list"], &["status"]] {
        seen.lock().expect("lock").clear();
        let run = cli(&env, &url, owner.expose(), args, None).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        if args != ["status"] {
            assert!(
                run.stderr.contains(&format!(
                    "answered 307 Temporary Redirect with a redirect to \
                     \"http://localhost:{port}/api/admin/workspaces?limit="
                )) && run.stderr.contains("\", which is not followed"),
                "{args:?}: {}",
                run.stderr
            );
        }
        let seen = seen.lock().expect("lock").clone();
        assert!(seen.iter().all(|r| r.host == format!("127.0.0.1:{port}")), "{seen:?}");
        assert!(seen.len() <= 2, "one request (status: and its /healthz): {seen:?}");
    }
    assert!(!format!("{:?}", seen.lock().expect("lock")).contains("localhost"));
}

#[tokio::test]
async fn an_endless_answer_is_cut_at_the_cap() {
    let env = TestEnv::new();
    let owner = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Owner);
    let (url, _seen) = hostile(|_, _| Answer::Endless).await;
    let started = Instant::now();
    let run = cli(&env, &url, owner.expose(), &["workspaces", "list"], None).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("sent an answer larger than 16 MiB; it was not read"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

/// `text` with every escape a hostile name carries here.
fn evil(text: &str) -> String {
    format!("{text}\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31m\u{202e}\u{200b}!")
}

#[tokio::test]
async fn nothing_a_server_says_drives_the_terminal() {
    // A real key's JSON, with hostile names put in.
    let real = TestServer::start().await;
    let made = real.owner().create_key("Plain", "30d", "read-write").await;
    let mut key = real.owner().show_key(made.id()).await["key"].clone();
    let id = made.id().to_owned();
    real.stop().await;
    key["name"] = json!(evil("Evil key"));
    key["flags"] = json!(["stale", "shared"]);
    key["shared"] = json!({"addresses": [evil("10.0.0.1")], "clients": [evil("cursor")]});
    let workspace = json!({"slug": "acme", "name": evil("Evil workspace"),
                           "created_at": "2026-01-01T00:00:00Z"});
    let (url, _seen) = hostile(move |request, _| {
        let path = request.path.split('?').next().unwrap_or_default();
        let ok = |body| Answer::Json("200 OK", String::new(), body);
        match path {
            "/healthz" => ok(json!({"status": "ok", "version": evil("9.9")})),
            "/api/admin/workspaces" => ok(json!({"workspaces": [workspace]})),
            "/api/admin/workspaces/acme/mcp-keys" if request.path.contains("status=revoked") => {
                ok(json!({"keys": []}))
            }
            "/api/admin/workspaces/acme/mcp-keys" => ok(json!({"keys": [key]})),
            "/api/admin/mcp-keys/revoke-token" => {
                ok(json!({"workspace": evil("acme"), "key": key}))
            }
            _ => Answer::Json(
                "404 Not Found",
                String::new(),
                json!({"error": {"code": "key_not_found", "message": evil("no such thing")}}),
            ),
        }
    })
    .await;
    let env = TestEnv::new();
    let owner = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Owner);
    let mcp = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Mcp);
    let cases: [(&[&str], Option<&str>, &str); 8] = [
        (&["status"], None, "9.9"),
        (&["workspaces", "list"], None, "Evil workspace"),
        (&["keys", "list"], None, "Evil key"),
        (&["keys", "list", "--status", "revoked"], None, "acme"),
        (&["keys", "review"], None, "Evil key"),
        (&["keys", "show", &id], None, "no such thing"),
        (&["keys", "revoke", "--token-stdin"], Some(mcp.expose()), "Evil key"),
        (&["audit"], None, "no such thing"),
    ];
    for (args, stdin, shows) in cases {
        let run = cli(&env, &url, owner.expose(), args, stdin).await;
        let printed = format!("{}{}", run.stdout, run.stderr);
        assert!(printed.contains(shows), "{args:?} shows {shows:?}:\n{printed}");
        for bad in ['\u{1b}', '\u{7}', '\u{202e}', '\u{200b}'] {
            assert!(!printed.contains(bad), "{args:?} printed {bad:?}:\n{printed:?}");
        }
    }
    // With color on, only the CLI's own colors reach the terminal: not even the server's red.
    let run =
        cli(&env, &url, owner.expose(), &["--color", "always", "keys", "show", &id], None).await;
    assert!(
        run.stderr.contains("\u{1b}[31merror\u{1b}[0m: no such thing]0;owned[2J[31m!"),
        "{:?}",
        run.stderr
    );
    let own = ["\u{1b}[31m", "\u{1b}[36m", "\u{1b}[0m"];
    let rest = own.iter().fold(run.stderr.clone(), |text, style| text.replace(style, ""));
    assert!(!rest.contains('\u{1b}'), "{:?}", run.stderr);
}
