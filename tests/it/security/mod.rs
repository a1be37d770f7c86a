//! Security: malformed input of every kind, guarded routes, workspace isolation, secrets
//! nowhere. Every part runs against the real server over real HTTP (in-process, or the real
//! binary), one file per concern:
//!
//! - `credentials.rs`: tokens and auth. The guarded routes are walked from the server's own
//!   route table (`server::routes()`), so a new route is checked with the guard it names;
//!   MCP keys get nothing from the admin API, the owner credential nothing from MCP.
//! - `fuzz.rs`: proptest strategies driven inside the async tests, with proptest's shrinking;
//!   the tools fuzzed are the ones `tools/list` offers. `CUSTORY_FUZZ_SEED=N` replays a run.
//! - `corpus.rs`: malformed JSON-RPC, and malformed HTTP on raw TCP where a client library
//!   would refuse to send it.
//! - `names.rs`: hostile names and text through the admin API, the CLI and the tools.
//! - `isolation.rs`, `resources.rs`: a key of one workspace tries every tool, resource, prompt
//!   and completion on the other workspace's objects.
//! - `origins.rs`: foreign Origins and Hosts (DNS rebinding).
//! - `secrets.rs`: a full lifecycle through the real CLI and MCP with the server logging at
//!   its most verbose; no token appears anywhere it was not asked for.
//!
//! `wellformed.rs` holds the rules every answer must follow; `raw.rs` speaks HTTP on raw TCP.

#![allow(clippy::print_stderr, reason = "the tests report how many requests they made")]

mod corpus;
mod credentials;
mod fuzz;
mod isolation;
mod names;
mod origins;
mod raw;
mod resources;
mod secrets;
mod wellformed;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use custory_mcp::server::{Rate, ServerConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

use crate::common::{Owner, Run, TestEnv, TestServer, Visitor};

/// A server whose auth limiter and per-key rates never trip (some tests fail authentication on
/// purpose; the fuzzers send thousands of messages a second from one key).
async fn lenient_server() -> TestServer {
    TestServer::start_with(lenient(ServerConfig::default())).await
}

/// `config` with the auth limiter and per-key rates out of the way.
fn lenient(config: ServerConfig) -> ServerConfig {
    let unlimited = Rate { per_second: 1_000_000, burst: 1_000_000 };
    ServerConfig {
        auth_failures_per_window: 1_000_000,
        key_requests: unlimited,
        key_writes: unlimited,
        ..config
    }
}

/// The sentence of a tool result that must be an error.
fn error_text(result: &Value) -> &str {
    assert_eq!(result["isError"], true, "expected an error result: {result}");
    result["content"][0]["text"].as_str().expect("text")
}

/// Runs the real binary against `url` in `env` (credentials from its store).
async fn cli(env: &TestEnv, url: &str, args: &[&str], vars: &[(&str, &str)], stdin: &str) -> Run {
    let mut command = env.command();
    command.env("CUSTORY_SERVER", url).args(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    crate::common::run_piped(command, Some(stdin)).await
}

/// `serve` as the real binary, with its log drained as it runs (trace logging must not fill
/// the pipe and stall the server).
struct LoggedServer {
    child: tokio::process::Child,
    announced: Value,
    log: Arc<Mutex<Vec<u8>>>,
    drain: tokio::task::JoinHandle<()>,
}

impl LoggedServer {
    async fn start(env: &TestEnv, db: &Path, args: &[&str], vars: &[(&str, &str)]) -> Self {
        let mut command = env.command();
        command.args(["serve", "--json", "--listen", "127.0.0.1:0", "--db"]).arg(db).args(args);
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn serve");
        let mut stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let line = BufReader::new(stdout).lines().next_line().await.expect("read").expect("line");
        let announced = serde_json::from_str(&line).expect("announcement is JSON");
        Self { child, announced, log, drain }
    }

    fn url(&self) -> String {
        self.announced["url"].as_str().expect("url").to_owned()
    }

    /// The owner, with the credential this first start announced.
    fn owner(&self) -> Owner {
        let token = self.announced["owner_credential"].as_str().expect("owner");
        Visitor::new(&self.url()).owner(token)
    }

    /// SIGTERM, wait, and the whole log.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().await.expect("wait");
        assert!(exit.success(), "serve exited with {exit:?}");
        let _ = self.drain.await;
        String::from_utf8_lossy(&self.log.lock().expect("lock")).into_owned()
    }
}
