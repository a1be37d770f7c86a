//! The test environment: a real server on 127.0.0.1:0 with a real database, either in-process
//! (through the `server::run` seam, with a controllable clock) or as the real binary; and the
//! real binary run as a user would, with an isolated home.
//!
//! The database is a SQLite file in a temp dir, or, when `CUSTORY_TEST_BACKEND=postgres`, a
//! fresh database on the tests' PostgreSQL server (`pg.rs`: the one `CUSTORY_TEST_POSTGRES`
//! names, else a throwaway one). Tests about the SQLite file itself always use SQLite.
//!
//! Who talks to a server, and how, is in `actors.rs`: `server.owner()`, `server.key(token)`,
//! `server.visitor()`.

mod actors;
mod database;
mod terminal;

pub use actors::{
    Call, Key, MCP_ACCEPT, Owner, Reply, Visitor, http, initialize_body, rpc, tool_call,
};
pub use database::{Sql, TestDatabase, testing_postgres};
pub use terminal::Terminal;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use custory_mcp::server::{AppState, ServerConfig};
use custory_mcp::store::access::OwnerCredentialSetup;
use custory_mcp::store::{Clock, Store, StoreOptions};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::oneshot;

pub const BIN: &str = env!("CARGO_BIN_EXE_custory-mcp");

/// A server running inside the test process.
pub struct TestServer {
    pub url: String,
    /// The owner credential (`csa_…`); [`TestServer::owner`] uses it.
    pub owner_token: String,
    pub store: Arc<Store>,
    pub db: TestDatabase,
    /// Holds the SQLite file (and anything else a test puts there).
    _dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// A server on the backend under test.
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> Self {
        Self::start_with_options(config, StoreOptions::default()).await
    }

    /// A server whose store has `options` (a short statement limit, small quotas).
    pub async fn start_with_options(config: ServerConfig, options: StoreOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::for_backend(&dir.path().join("custory.db"));
        Self::start_on(dir, db, config, options, None).await
    }

    async fn start_on(
        dir: TempDir,
        db: TestDatabase,
        config: ServerConfig,
        options: StoreOptions,
        owner_token: Option<String>,
    ) -> Self {
        // After a restart, a blocking task of the old server may still hold the store (and
        // the SQLite file's lock) for a moment: wait for the lock, not for a time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let store = loop {
            match Store::open_with(&db.database, Clock::default(), options) {
                Err(custory_mcp::store::OpenError::InUse(_))
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                opened => break opened.expect("open store"),
            }
        };
        let store = Arc::new(store);
        let owner_token = match owner_token {
            Some(token) => token,
            None => {
                let OwnerCredentialSetup::Issued(owner) =
                    store.access().ensure_owner_credential(false).expect("owner")
                else {
                    panic!("a new database must issue an owner credential");
                };
                owner.expose().to_owned()
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(Arc::clone(&store), config);
        let task = tokio::spawn(custory_mcp::server::run(listener, state, async {
            let _ = rx.await;
        }));
        Self { url, owner_token, store, _dir: dir, db, shutdown: Some(tx), task: Some(task) }
    }

    /// Stops the server and starts a new one on the same database (default settings): what
    /// a restart finds there.
    pub async fn restart(mut self) -> Self {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
        let Self { _dir: dir, db, store, owner_token, .. } = self;
        drop(store);
        Self::start_on(dir, db, ServerConfig::default(), StoreOptions::default(), Some(owner_token))
            .await
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/api/mcp", self.url)
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

    /// Anyone, with no credential.
    pub fn visitor(&self) -> Visitor {
        Visitor::new(&self.url)
    }

    /// The owner, with the credential issued at start.
    pub fn owner(&self) -> Owner {
        self.visitor().owner(&self.owner_token)
    }

    /// An MCP client for `token`.
    pub fn key(&self, token: &str) -> Key {
        self.visitor().key(token)
    }
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
        // A program may refuse before reading all of its input (a bad first line): the pipe
        // closing then is its answer, not the test's failure.
        match input.write_all(text.as_bytes()).await {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                panic!("write stdin: {error}")
            }
            _ => {}
        }
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
        self.command_for(BIN)
    }

    /// `program` (the binary, or a shell around it) in this environment.
    fn command_for(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
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

    /// The environment (`NAME=value …`, for `env -i`) of a user of `server` at a terminal: this
    /// home, the binary on `PATH` as `custory-mcp`, the owner credential, no color.
    pub fn terminal_env(&self, server: &TestServer) -> String {
        let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
        format!(
            "HOME={home} PATH={bin}:/usr/local/bin:/usr/bin:/bin TERM=xterm \
             CUSTORY_CONFIG_DIR={config} CUSTORY_CREDENTIAL_STORE=file CUSTORY_SERVER={url} \
             CUSTORY_OWNER_TOKEN={owner} NO_COLOR=1",
            home = self.home.path().display(),
            bin = bin_dir.display(),
            config = self.config_dir().display(),
            url = server.url,
            owner = server.owner_token,
        )
    }

    /// A command line for [`Terminal`] that runs `script` (bash) as a user of `server` would
    /// at a terminal ([`TestEnv::terminal_env`]).
    pub fn terminal_script(&self, server: &TestServer, script: &str) -> String {
        let path = self.home.path().join(format!("{}.sh", custory_mcp::token::random_base62(6)));
        std::fs::write(&path, script).expect("write the script");
        format!("env -i {} bash {}", self.terminal_env(server), path.display())
    }

    /// Runs the admin CLI against `server` as its owner, piped (not a terminal).
    pub async fn admin(&self, server: &TestServer, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
        cmd.args(args);
        run_piped(cmd, None).await
    }

    /// [`Self::admin`] with `--json`; it must succeed, and its stdout is parsed.
    pub async fn admin_json(&self, server: &TestServer, args: &[&str]) -> Value {
        let run = self.admin(server, &[&["--json"], args].concat()).await;
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        serde_json::from_str(&run.stdout).expect("json")
    }

    /// Starts `custory-mcp serve --json` on port 0 with the SQLite file `db` and waits for its
    /// announcement.
    pub async fn serve(&self, db: &Path, extra: &[&str]) -> ServeProcess {
        self.serve_on(&db.display().to_string(), extra).await
    }

    /// As [`TestEnv::serve`], on any `--database` value.
    pub async fn serve_on(&self, database: &str, extra: &[&str]) -> ServeProcess {
        Self::spawn_serve(self.command(), database, extra).await
    }

    /// As [`TestEnv::serve`], in a process allowed `files` open descriptors (`ulimit -n`, so
    /// the hard limit too: `serve` cannot raise it).
    pub async fn serve_with_open_files(
        &self,
        db: &Path,
        extra: &[&str],
        files: u32,
    ) -> ServeProcess {
        let mut shell = self.command_for("sh");
        shell.args(["-c", "ulimit -n \"$0\" && exec \"$@\"", &files.to_string(), BIN]);
        Self::spawn_serve(shell, &db.display().to_string(), extra).await
    }

    async fn spawn_serve(
        mut command: tokio::process::Command,
        database: &str,
        extra: &[&str],
    ) -> ServeProcess {
        let mut child = command
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--database", database])
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

    /// Anyone, with no credential.
    pub fn visitor(&self) -> Visitor {
        Visitor::new(&self.url())
    }

    /// The owner, with the credential this start announced (a first start).
    pub fn owner(&self) -> Owner {
        let token = self.announced["owner_credential"].as_str();
        self.visitor().owner(token.expect("a first start announces the owner credential"))
    }

    /// An MCP client for `token`.
    pub fn key(&self, token: &str) -> Key {
        self.visitor().key(token)
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

/// A workspace document with item ids replaced by their order and times and the workspace
/// member removed: what two copies of one workspace share.
pub fn comparable(mut doc: Value) -> Value {
    let mut order = std::collections::HashMap::new();
    for journey in doc["journeys"].as_array_mut().into_iter().flatten() {
        for stage in journey["stages"].as_array_mut().into_iter().flatten() {
            for step in stage["steps"].as_array_mut().into_iter().flatten() {
                for item in step["items"].as_array_mut().into_iter().flatten() {
                    let n = order.len();
                    order.insert(item["id"].as_str().expect("id").to_owned(), n);
                    let item = item.as_object_mut().expect("item");
                    item.insert("id".into(), json!(n));
                    item.remove("created_at");
                    item.remove("updated_at");
                    for comment in
                        item.get_mut("comments").and_then(Value::as_array_mut).into_iter().flatten()
                    {
                        comment.as_object_mut().expect("comment").remove("created_at");
                    }
                }
            }
        }
    }
    for link in doc["links"].as_array_mut().into_iter().flatten() {
        for end in ["from", "to"] {
            link[end] = json!(order[link[end].as_str().expect("end")]);
        }
    }
    doc["workspace"] = Value::Null;
    doc
}
