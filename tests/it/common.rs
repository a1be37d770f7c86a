//! The test environment: a real server on 127.0.0.1:0 with a real database, either in-process
//! (through the `server::run` seam, with a controllable clock) or as the real binary; and the
//! real binary run as a user would, with an isolated home.
//!
//! The database is a SQLite file in a temp dir, or, when `CUSTORY_TEST_BACKEND=postgres`, a
//! fresh database on the tests' PostgreSQL server (`pg.rs`: the one `CUSTORY_TEST_POSTGRES`
//! names, else a throwaway one). Tests about the SQLite file itself always use SQLite.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use custory_mcp::server::{AppState, ServerConfig};
use custory_mcp::store::access::OwnerCredentialSetup;
use custory_mcp::store::{Clock, Database, Store, StoreOptions};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::oneshot;

pub const BIN: &str = env!("CARGO_BIN_EXE_custory-mcp");

/// Whether the suite runs against PostgreSQL (`CUSTORY_TEST_BACKEND=postgres`).
pub fn testing_postgres() -> bool {
    match std::env::var("CUSTORY_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("CUSTORY_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
    }
}

/// A database for one test; a PostgreSQL one is dropped when the test ends.
pub struct TestDatabase {
    pub database: Database,
    /// `(server URL, database name)` of a database this test created.
    created: Option<(String, String)>,
}

impl TestDatabase {
    pub fn sqlite(path: &Path) -> Self {
        Self { database: Database::Sqlite(path.to_owned()), created: None }
    }

    /// A new, empty database on the tests' PostgreSQL server (see `pg.rs`). Panics (it never
    /// skips) when there is none.
    pub fn postgres() -> Self {
        let server = crate::pg::server_url();
        let name = format!("custory_test_{}", custory_mcp::token::random_base62(12).to_lowercase());
        admin_sql(&server, &format!("CREATE DATABASE {name}"));
        let mut config: postgres::Config =
            server.parse().expect("the test PostgreSQL server has a URL");
        config.dbname(&name);
        let url = postgres_url(&config);
        Self { database: Database::Postgres(url), created: Some((server, name)) }
    }

    /// The backend under test: PostgreSQL when asked for, else SQLite at `path`.
    pub fn for_backend(path: &Path) -> Self {
        if testing_postgres() { Self::postgres() } else { Self::sqlite(path) }
    }

    /// The value for `serve --database`.
    pub fn arg(&self) -> String {
        match &self.database {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => url.clone(),
        }
    }
}

/// A value for [`TestDatabase::execute`] and [`TestDatabase::query_row`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sql {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Sql {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<&str> for Sql {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for Sql {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl Sql {
    pub fn int(&self) -> Option<i64> {
        match self {
            Self::Int(value) => Some(*value),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(value) => Some(value),
            _ => None,
        }
    }
}

impl TestDatabase {
    /// Runs one statement (`?1`… placeholders) on the database directly, behind the server's
    /// back: to arrange data no API creates, or to see what was really written.
    pub fn execute(&self, sql: &str, params: &[Sql]) {
        self.query(sql, params);
    }

    /// The first row of `sql`, each column as [`Sql`].
    pub fn query_row(&self, sql: &str, params: &[Sql]) -> Vec<Sql> {
        self.query(sql, params).into_iter().next().unwrap_or_else(|| panic!("no row: {sql}"))
    }

    fn query(&self, sql: &str, params: &[Sql]) -> Vec<Vec<Sql>> {
        match &self.database {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
                let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let columns = stmt.column_count();
                let params = params.iter().map(|p| match p {
                    Sql::Null => rusqlite::types::Value::Null,
                    Sql::Int(i) => rusqlite::types::Value::Integer(*i),
                    Sql::Text(t) => rusqlite::types::Value::Text(t.clone()),
                });
                let mut rows = stmt.query(rusqlite::params_from_iter(params)).expect("query");
                let mut out = Vec::new();
                while let Some(row) = rows.next().expect("row") {
                    out.push(
                        (0..columns)
                            .map(|i| match row.get_ref(i).expect("column") {
                                rusqlite::types::ValueRef::Integer(i) => Sql::Int(i),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Sql::Text(String::from_utf8_lossy(t).into_owned())
                                }
                                _ => Sql::Null,
                            })
                            .collect(),
                    );
                }
                out
            }
            Database::Postgres(url) => {
                let (url, sql, params) = (url.clone(), sql.replace('?', "$"), params.to_vec());
                std::thread::spawn(move || {
                    let mut client =
                        postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                    let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                        .into_iter()
                        .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                            match p {
                                Sql::Null => Box::new(None::<String>),
                                Sql::Int(i) => Box::new(i),
                                Sql::Text(t) => Box::new(t),
                            }
                        })
                        .collect();
                    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                        values.iter().map(AsRef::as_ref).collect();
                    let rows = client.query(&sql, &refs).unwrap_or_else(|e| panic!("{sql}: {e}"));
                    rows.iter()
                        .map(|row| {
                            (0..row.len())
                                .map(|i| {
                                    if let Ok(Some(v)) = row.try_get::<_, Option<i64>>(i) {
                                        Sql::Int(v)
                                    } else if let Ok(Some(v)) = row.try_get::<_, Option<String>>(i)
                                    {
                                        Sql::Text(v)
                                    } else {
                                        Sql::Null
                                    }
                                })
                                .collect()
                        })
                        .collect()
                })
                .join()
                .expect("PostgreSQL query")
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = self.created.take() {
            admin_sql(&server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Runs one statement on the PostgreSQL server, off any async runtime (the `postgres` client
/// blocks on a runtime of its own).
fn admin_sql(server: &str, sql: &str) {
    let (server, sql) = (server.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&server, postgres::NoTls)
            .unwrap_or_else(|error| panic!("could not reach the test PostgreSQL server: {error}"));
        client.batch_execute(&sql).unwrap_or_else(|error| panic!("{sql}: {error}"));
    })
    .join()
    .expect("PostgreSQL admin statement");
}

/// A `postgres://` URL for `config` (user, password, first host and port, database).
fn postgres_url(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}{password}@{host}:{port}/{db}")
}

/// A server running inside the test process.
pub struct TestServer {
    pub url: String,
    pub owner: String,
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
        Self::start_on(dir, db, config, options).await
    }

    async fn start_on(
        dir: TempDir,
        db: TestDatabase,
        config: ServerConfig,
        options: StoreOptions,
    ) -> Self {
        let store = Store::open_with(&db.database, Clock::default(), options).expect("open store");
        let store = Arc::new(store);
        let OwnerCredentialSetup::Issued(owner) =
            store.access().ensure_owner_credential(false).expect("owner")
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
            _dir: dir,
            db,
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

    /// `GET /api/admin{path}` with the owner credential: the JSON answer, which must be 200.
    pub async fn admin_get(&self, path: &str) -> Value {
        let response =
            http().get(self.admin(path)).bearer_auth(&self.owner).send().await.expect("get");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
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

    /// Runs the admin CLI against `server` as its owner, piped (not a terminal).
    pub async fn admin(&self, server: &TestServer, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner);
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
        let mut child = self
            .command()
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

/// An MCP client for one key, for tests that call tools many times.
pub struct Mcp {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Mcp {
    pub fn new(server: &TestServer, token: &str) -> Self {
        Self { url: server.mcp_url(), token: token.to_owned(), client: http() }
    }

    /// A tool's result (`content`, `structuredContent`, `isError`).
    pub async fn call(&self, tool: &str, arguments: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": tool, "arguments": arguments}});
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200, "{tool}");
        let reply: Value = response.json().await.expect("json");
        reply["result"].clone()
    }

    /// The structured content of a call that must succeed.
    pub async fn ok(&self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments.clone()).await;
        assert_eq!(result["isError"], false, "{tool} {arguments}: {result}");
        result["structuredContent"].clone()
    }

    /// The sentence of a call that must fail as a tool error.
    pub async fn err(&self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments.clone()).await;
        assert_eq!(result["isError"], true, "{tool} {arguments}: {result}");
        result["content"][0]["text"].as_str().expect("text").to_owned()
    }

    /// Many calls in one JSON-RPC batch (protocol 2025-03-26); every one must succeed.
    pub async fn batch(&self, calls: &[(&str, Value)]) -> Vec<Value> {
        let body: Vec<Value> = (1..)
            .zip(calls)
            .map(|(id, (tool, arguments))| {
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}})
            })
            .collect();
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-03-26")
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200);
        let mut replies: Vec<Value> = response.json().await.expect("json");
        replies.sort_by_key(|r| r["id"].as_i64());
        replies
            .into_iter()
            .map(|reply| {
                assert_eq!(reply["result"]["isError"], false, "{reply}");
                reply["result"]["structuredContent"].clone()
            })
            .collect()
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
