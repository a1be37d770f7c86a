//! The test environment: a real server on 127.0.0.1:0 with a real SQLite file in a temp dir,
//! either in-process (through the `server::run` seam, with a controllable clock) or as the real
//! binary; and the real binary run as a user would, with an isolated home.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use custory_mcp::server::{AppState, ServerConfig};
use custory_mcp::store::{Clock, OwnerCredentialSetup, Store};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::oneshot;

pub const BIN: &str = env!("CARGO_BIN_EXE_custory-mcp");

/// A server running inside the test process.
pub struct TestServer {
    pub url: String,
    pub owner: String,
    pub store: Arc<Store>,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            Store::open(&dir.path().join("custory.db"), Clock::default()).expect("open store"),
        );
        let OwnerCredentialSetup::Issued(owner) =
            store.ensure_owner_credential(false).expect("owner")
        else {
            panic!("a new database must issue an owner credential");
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(Arc::clone(&store), config);
        let task = tokio::spawn(custory_mcp::server::run(listener, state, async {
            let _ = rx.await;
        }));
        Self {
            url,
            owner: owner.expose().to_owned(),
            store,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/api/mcp", self.url)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("{}/api/admin{path}", self.url)
    }

    /// Stops the server and waits for its final flush.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
    }

    /// Creates an MCP key through the admin API; returns `(key json, token)`.
    pub async fn create_key(&self, name: &str, expires: &str, access: &str) -> (Value, String) {
        let response = http()
            .post(self.admin("/workspaces/acme/mcp-keys"))
            .bearer_auth(&self.owner)
            .json(&json!({"name": name, "expires": expires, "access": access}))
            .send()
            .await
            .expect("create key");
        assert_eq!(response.status(), 201, "create key");
        let body: Value = response.json().await.expect("json");
        let token = body["token"].as_str().expect("token").to_owned();
        (body["key"].clone(), token)
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

/// A JSON-RPC POST to the MCP endpoint with the headers a conforming client sends.
pub fn mcp_post(url: &str, token: &str, body: &Value) -> reqwest::RequestBuilder {
    http()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(body)
}

pub fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "it-client", "version": "1.2.3"}
    }})
}

/// What a finished run of the binary printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end with `stdin` piped in (an empty pipe when `None`, so it is never
/// a terminal) and collects what it printed.
pub async fn run_piped(mut command: tokio::process::Command, stdin: Option<&str>) -> Run {
    use tokio::io::AsyncWriteExt as _;
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().await.expect("wait");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// An isolated home for running the real binary: temp HOME and config, file credential store,
/// fixed width, no color.
pub struct TestEnv {
    pub home: TempDir,
}

impl TestEnv {
    pub fn new() -> Self {
        Self { home: tempfile::tempdir().expect("temp home") }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("config")
    }

    pub fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.env_clear()
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("XDG_DATA_HOME", self.home.path().join(".local/share"))
            .env("CUSTORY_CONFIG_DIR", self.config_dir())
            .env("CUSTORY_CREDENTIAL_STORE", "file")
            .env("COLUMNS", "100")
            .env("NO_COLOR", "1")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .kill_on_drop(true);
        cmd
    }

    /// Starts `custory-mcp serve --json` on port 0 and waits for its announcement.
    pub async fn serve(&self, db: &Path, extra: &[&str]) -> ServeProcess {
        let mut child = self
            .command()
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // The listener is bound before this line is printed, so the server is ready now.
        let line =
            lines.next_line().await.expect("read announcement").expect("serve printed nothing");
        let announced: Value = serde_json::from_str(&line).expect("announcement is JSON");
        ServeProcess { child, announced }
    }
}

pub struct ServeProcess {
    pub child: tokio::process::Child,
    pub announced: Value,
}

impl ServeProcess {
    pub fn url(&self) -> String {
        self.announced["url"].as_str().expect("url").to_owned()
    }

    /// SIGTERM, then wait; returns everything the server wrote to stderr.
    pub async fn terminate(self) -> String {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let output = self.child.wait_with_output().await.expect("wait");
        assert!(output.status.success(), "serve exited with {:?}", output.status);
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// SIGKILL: no shutdown path runs.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }
}

/// A program on a real terminal: a private tmux server with one 100x30 window.
pub struct Terminal {
    socket: String,
}

impl Terminal {
    /// Runs `command` (a shell command line); `EXIT=<status>` is shown when it ends.
    pub fn start(command: &str) -> Self {
        let socket = format!("custory-it-{}", custory_mcp::token::random_base62(8));
        let terminal = Self { socket };
        // The shell stays after the command so its last screen can still be read.
        let script = format!("{command}; echo EXIT=$?; sleep 60");
        terminal.tmux(&["new-session", "-d", "-x", "100", "-y", "30", &script]);
        terminal
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux is needed for the terminal tests (apt-get install tmux)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits (up to 20 s) until the screen shows `text`; returns the screen.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let screen = self.tmux(&["capture-pane", "-p"]);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}
