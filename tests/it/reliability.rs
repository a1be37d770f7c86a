//! Reliability under load and faults: kill -9 during writes, a read-only or full disk, and
//! database files the server must refuse without touching them.
//!
//! All but one run the real binary (`custory-mcp serve`) on 127.0.0.1:0. The tests named
//! `privileged_*` change the machine's mounts or file attributes: they need root with
//! CAP_SYS_ADMIN (mount a tmpfs) and CAP_LINUX_IMMUTABLE (`chattr +i`), as CI and the
//! development container have. Without those rights they fail and say so; on such a machine run
//! `cargo test -- --skip privileged_`. Load is covered by `bench/soak.sh`, not by a timed test.
//! Figures and what could not be simulated: docs/RELIABILITY.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::common::{Key, Owner, ServeProcess, TestEnv, Visitor, initialize_body, tool_call};

/// Every request of these tests is bounded by this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const PRIVILEGED: &str = "this test needs root with CAP_SYS_ADMIN and CAP_LINUX_IMMUTABLE (as in \
                          CI); on a machine without them run `cargo test -- --skip privileged_`";

/// `server`, through a client whose every request is bounded by [`REQUEST_TIMEOUT`].
fn site(server: &ServeProcess) -> Visitor {
    let client =
        reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).build().expect("client");
    server.visitor().with_client(client)
}

/// `POST /api/admin/workspaces/acme/mcp-keys`; `Err` when the exchange did not complete.
async fn try_create_key(owner: &Owner, name: &str) -> reqwest::Result<(u16, Value)> {
    let created =
        owner.post("/workspaces/acme/mcp-keys").json(&json!({"name": name, "expires": "90d"}));
    let reply = created.try_send().await?;
    Ok((reply.status, reply.json()))
}

/// A key that must be made: its MCP client.
async fn made_key(owner: &Owner, name: &str, site: &Visitor) -> Key {
    let (status, body) = try_create_key(owner, name).await.expect("key");
    assert_eq!(status, 201, "{body}");
    site.key(body["token"].as_str().expect("token"))
}

/// One JSON-RPC message to `/api/mcp`; `Err` when the exchange did not complete.
async fn try_mcp(key: &Key, body: &Value) -> reqwest::Result<(u16, Value)> {
    let reply = key.post(body).try_send().await?;
    let text = reply.text();
    Ok((reply.status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// The first step of the demo journey, where `create_item` puts items.
async fn a_step(key: &Key) -> String {
    let journey = key.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    journey["stages"][0]["steps"][0]["id"].as_str().expect("step id").to_owned()
}

/// The names of the workspace's keys, from the admin API.
async fn key_names(owner: &Owner) -> BTreeSet<String> {
    let keys = owner.list_keys("acme", "").await;
    keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["name"].as_str().map(str::to_owned))
        .collect()
}

fn owner_of(server: &ServeProcess) -> String {
    server.announced["owner_credential"].as_str().expect("first start prints the owner").to_owned()
}

fn integrity_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("integrity_check")
}

/// Runs `serve` where it must refuse to start; returns (exit code, stdout, stderr).
async fn serve_must_fail(env: &TestEnv, db: &Path) -> (Option<i32>, String, String) {
    let mut command = env.command();
    command.args(["serve", "--json", "--listen", "127.0.0.1:0", "--db"]).arg(db);
    let output = tokio::time::timeout(REQUEST_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("serve started on {} instead of refusing it", db.display()))
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "serve panicked: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "serve showed a backtrace: {stderr}");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

/// The bytes of every file in `dir`, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap_or_default())
        })
        .collect();
    files.sort();
    files
}

/// Runs a privileged command; panics with [`PRIVILEGED`] when it fails.
fn privileged(program: &str, args: &[&str], path: &Path) {
    let output = Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}; {PRIVILEGED}"));
    assert!(
        output.status.success(),
        "`{program} {} {}` failed: {}; {PRIVILEGED}",
        args.join(" "),
        path.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// A tmpfs of a fixed size mounted on a directory of the test's temp dir; unmounted on drop,
/// also when the test panics.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        privileged(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"],
            dir,
        );
        Self { dir: dir.to_owned() }
    }

    fn remount(&self, options: &str) {
        privileged("mount", &["-o", &format!("remount,{options}")], &self.dir);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process killed by a failing test may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Files made immutable with `chattr +i` (even root cannot write them, also through a file
/// descriptor opened before); made mutable again on drop, so the temp dir can be removed.
struct Immutable {
    paths: Vec<PathBuf>,
}

impl Immutable {
    fn set(paths: &[PathBuf]) -> Self {
        let mut guard = Self { paths: Vec::new() };
        for path in paths {
            privileged("chattr", &["+i"], path);
            guard.paths.push(path.clone());
        }
        guard
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = Command::new("chattr").arg("-i").arg(path).status();
        }
    }
}

/// The database and the WAL files SQLite keeps beside it.
fn database_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
        .filter(|path| path.exists())
        .collect()
}

/// How a writer task ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// A request failed in transport: the server went away under it.
    Killed,
    /// It made all its requests without the server going away.
    RanOut,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_concurrent_key_creation_and_tool_writes_loses_nothing_acknowledged() {
    const KEY_TASKS: usize = 4;
    const ITEM_TASKS: usize = 4;
    /// A bound on each task; the kill comes long before.
    const PER_TASK: usize = 5_000;
    /// Acknowledged writes of each kind before the kill.
    const KILL_AFTER: usize = 100;

    let env = TestEnv::new();
    let db = env.home.path().join("data/custory.db");
    let server = env.serve(&db, &[]).await;
    let owner = owner_of(&server);
    let writer = made_key(&site(&server).owner(&owner), "writer", &site(&server)).await;
    let step = a_step(&writer).await;

    let keys: Arc<Mutex<Vec<(String, String)>>> = Arc::default(); // (id, token)
    let items: Arc<Mutex<Vec<(String, String)>>> = Arc::default(); // (id, title)
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let progress = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for t in 0..KEY_TASKS {
        let (keys, refused, progress) = (keys.clone(), refused.clone(), progress.clone());
        let owner = site(&server).owner(&owner);
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                match try_create_key(&owner, &format!("crash {t}-{i}")).await {
                    Ok((201, body)) => {
                        let id = body["key"]["id"].as_str().expect("id").to_owned();
                        let token = body["token"].as_str().expect("token").to_owned();
                        keys.lock().expect("keys").push((id, token));
                        progress.notify_one();
                    }
                    Ok((status, body)) => {
                        refused.lock().expect("refused").push(format!("{status} {body}"));
                    }
                    Err(_) => return Ended::Killed,
                }
            }
            Ended::RanOut
        }));
    }
    for t in 0..ITEM_TASKS {
        let (items, refused, progress) = (items.clone(), refused.clone(), progress.clone());
        let (writer, step) = (site(&server).key(&writer.token), step.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let title = format!("crash item {t}-{i}");
                let args = json!({"step_id": step, "kind": "insight", "title": title});
                match try_mcp(&writer, &tool_call(1, "create_item", args)).await {
                    Ok((200, body)) if body["result"]["isError"] == false => {
                        let id = body["result"]["structuredContent"]["id"].as_str().expect("id");
                        items.lock().expect("items").push((id.to_owned(), title));
                        progress.notify_one();
                    }
                    Ok((status, body)) => {
                        refused.lock().expect("refused").push(format!("{status} {body}"));
                    }
                    Err(_) => return Ended::Killed,
                }
            }
            Ended::RanOut
        }));
    }

    // kill -9 once enough writes of each kind were acknowledged, with every task mid-flight.
    let enough = || {
        keys.lock().expect("keys").len() >= KILL_AFTER
            && items.lock().expect("items").len() >= KILL_AFTER
    };
    tokio::time::timeout(Duration::from_secs(120), async {
        while !enough() {
            progress.notified().await;
        }
    })
    .await
    .expect("the writers made no progress");
    server.kill9().await;
    for task in tasks {
        assert_eq!(task.await.expect("task"), Ended::Killed, "the kill came mid-flight");
    }
    let refused = refused.lock().expect("refused").clone();
    assert!(refused.is_empty(), "every write before the kill succeeded: {refused:?}");
    let keys = keys.lock().expect("keys").clone();
    let items = items.lock().expect("items").clone();
    assert!(keys.len() >= KILL_AFTER && items.len() >= KILL_AFTER);

    // The files exactly as the crash left them, in a copy, so the server does its own recovery.
    let copy = env.home.path().join("crash-copy");
    std::fs::create_dir(&copy).expect("copy dir");
    for path in database_files(&db).iter().filter(|p| !p.to_string_lossy().ends_with("-shm")) {
        std::fs::copy(path, copy.join(path.file_name().expect("name"))).expect("copy");
    }
    let copied = copy.join("custory.db");
    assert_eq!(integrity_check(&copied), "ok", "the database as the crash left it");
    {
        let conn = rusqlite::Connection::open(&copied).expect("open copy");
        let count = |sql: &str, id: &str| -> i64 {
            conn.query_row(sql, [id], |row| row.get(0)).expect("count")
        };
        for (id, _) in &keys {
            assert_eq!(count("SELECT count(*) FROM mcp_keys WHERE id = ?1", id), 1, "key {id}");
            let created =
                "SELECT count(*) FROM audit_events WHERE key_id = ?1 AND kind = 'key.created'";
            assert_eq!(count(created, id), 1, "the audit event of key {id} committed with it");
        }
        for (id, _) in &items {
            assert_eq!(count("SELECT count(*) FROM items WHERE id = ?1", id), 1, "item {id}");
        }
        // Nothing beyond the acknowledged writes and the one request per task in flight.
        let stored = |sql: &str| -> usize {
            let n: i64 = conn.query_row(sql, [], |row| row.get(0)).expect("count");
            usize::try_from(n).expect("count")
        };
        let stored_keys = stored("SELECT count(*) FROM mcp_keys WHERE name LIKE 'crash %'");
        let stored_items = stored("SELECT count(*) FROM items WHERE title LIKE 'crash item %'");
        assert!((keys.len()..=keys.len() + KEY_TASKS).contains(&stored_keys), "{stored_keys}");
        assert!((items.len()..=items.len() + ITEM_TASKS).contains(&stored_items), "{stored_items}");
    }

    // Restart on the same file: every acknowledged key authenticates, every item is there.
    let server = env.serve(&db, &[]).await;
    let site = site(&server);
    for (id, token) in &keys {
        let (status, body) = try_mcp(&site.key(token), &initialize_body()).await.expect("init");
        assert_eq!(status, 200, "key {id} after the crash: {body}");
    }
    let writer = site.key(&writer.token);
    for (id, title) in &items {
        let item = writer.ok("get_item", json!({"item_id": id})).await;
        assert_eq!(item["title"], title.as_str(), "item {id}");
    }
    // A write after recovery works and the owner credential survived.
    made_key(&site.owner(&owner), "after the crash", &site).await;
    server.terminate().await;
    assert_eq!(integrity_check(&db), "ok");
}

#[tokio::test]
async fn a_database_path_under_a_regular_file_is_refused_with_a_clear_error() {
    let env = TestEnv::new();
    let file = env.home.path().join("not-a-dir");
    std::fs::write(&file, "a file, not a directory\n").expect("write");
    let db = file.join("custory.db");
    let (code, stdout, stderr) = serve_must_fail(&env, &db).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "names the path: {stderr}");
    assert!(stderr.contains("Not a directory"), "says why: {stderr}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "a file, not a directory\n");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_byte_for_byte() {
    let env = TestEnv::new();
    let dir = env.home.path().join("data");
    std::fs::create_dir(&dir).expect("dir");
    let db = dir.join("custory.db");
    // Not SQLite: 64 KiB of bytes that are not a database header.
    let garbage: Vec<u8> =
        (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&db, &garbage).expect("write");
    let (code, stdout, stderr) = serve_must_fail(&env, &db).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("not a database"), "says why: {stderr}");
    assert_eq!(std::fs::read(&db).expect("read"), garbage, "the file is untouched");
    let names: BTreeSet<String> = snapshot(&dir).into_iter().map(|(name, _)| name).collect();
    assert!(
        names.iter().all(|n| n == "custory.db" || n == "custory.db.lock"),
        "no journal or WAL was left beside it: {names:?}"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused_and_left_byte_for_byte() {
    let env = TestEnv::new();
    let dir = env.home.path().join("data");
    let db = dir.join("custory.db");
    let server = env.serve(&db, &[]).await;
    let token =
        made_key(&site(&server).owner(&owner_of(&server)), "kept", &site(&server)).await.token;
    server.terminate().await;
    // What a future release with more migrations leaves behind.
    let current: i64 = {
        let conn = rusqlite::Connection::open(&db).expect("open");
        let current = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("version");
        conn.pragma_update(None, "user_version", 99).expect("user_version");
        current
    };
    let before = snapshot(&dir);

    let (code, stdout, stderr) = serve_must_fail(&env, &db).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("newer custory-mcp"), "says why: {stderr}");
    assert!(stderr.contains("upgrade custory-mcp"), "says what to do: {stderr}");
    assert_eq!(snapshot(&dir), before, "every file is untouched");

    // Nothing was lost: with the version put back, the key still works.
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.pragma_update(None, "user_version", current).expect("user_version");
    }
    let server = env.serve(&db, &[]).await;
    let (status, _) = try_mcp(&site(&server).key(&token), &initialize_body()).await.expect("init");
    assert_eq!(status, 200);
    server.terminate().await;
}

#[tokio::test]
async fn privileged_a_read_only_file_system_is_refused_at_start_and_left_untouched() {
    let env = TestEnv::new();
    let mount = Tmpfs::mount(&env.home.path().join("mnt"), "16m");
    let db = mount.dir.join("custory.db");
    let server = env.serve(&db, &[]).await;
    let token =
        made_key(&site(&server).owner(&owner_of(&server)), "kept", &site(&server)).await.token;
    server.terminate().await;
    let before = snapshot(&mount.dir);

    // A read-only mount refuses writes to root too (EROFS), unlike chmod.
    mount.remount("ro");
    let (code, stdout, stderr) = serve_must_fail(&env, &db).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "says why: {stderr}");
    assert!(stderr.contains(&db.display().to_string()), "names the database: {stderr}");
    assert_eq!(snapshot(&mount.dir), before, "every file is untouched");

    // Writable again: everything is there.
    mount.remount("rw");
    let server = env.serve(&db, &[]).await;
    let (status, _) = try_mcp(&site(&server).key(&token), &initialize_body()).await.expect("init");
    assert_eq!(status, 200);
    server.terminate().await;
    assert_eq!(integrity_check(&db), "ok");
}

#[tokio::test]
async fn privileged_a_database_made_read_only_while_serving_refuses_writes_cleanly() {
    let env = TestEnv::new();
    let dir = env.home.path().join("data");
    let db = dir.join("custory.db");
    let server = env.serve(&db, &[]).await;
    let (site, owner_token) = (site(&server), owner_of(&server));
    let owner = site.owner(&owner_token);
    let before = made_key(&owner, "before", &site).await;
    let step = a_step(&before).await;
    let args = json!({"step_id": step, "kind": "insight", "title": "before"});
    let item = before.ok("create_item", args).await;
    let item_id = item["id"].as_str().expect("item id").to_owned();

    // The database and its WAL become immutable under the running server (chmod would not
    // stop root, and the server already holds them open). The WAL index (-shm) stays writable:
    // see `privileged_an_unwritable_wal_index_does_not_crash_the_server`.
    let files: Vec<PathBuf> = database_files(&db)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .collect();
    assert_eq!(files.len(), 2, "the database and its WAL: {files:?}");
    let immutable = Immutable::set(&files);
    let (status, body) = try_create_key(&owner, "refused").await.expect("no drop");
    assert!((500..600).contains(&status), "a clean 5xx, not {status}: {body}");
    assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
    let args = json!({"step_id": step, "kind": "insight", "title": "zqximmutable"});
    let (status, body) =
        try_mcp(&before, &tool_call(1, "create_item", args)).await.expect("no drop");
    assert_eq!(status, 200, "a tool error, not a transport error: {body}");
    assert_eq!(body["result"]["isError"], true, "{body}");
    // Reads and authentication carry on.
    let (status, body) = try_mcp(&before, &initialize_body()).await.expect("init");
    assert_eq!(status, 200, "{body}");
    let read = before.ok("get_item", json!({"item_id": item_id})).await;
    assert_eq!(read["title"], "before");
    owner.list_keys("acme", "").await;

    // Writable again: writes work without a restart.
    drop(immutable);
    let after = made_key(&owner, "after", &site).await;
    server.terminate().await;
    assert_eq!(integrity_check(&db), "ok");

    let server = env.serve(&db, &[]).await;
    let site = self::site(&server);
    for key in [&before, &after] {
        let (status, _) = try_mcp(&site.key(&key.token), &initialize_body()).await.expect("init");
        assert_eq!(status, 200);
    }
    let names = key_names(&site.owner(&owner_token)).await;
    let expected = BTreeSet::from(["before".to_owned(), "after".to_owned()]);
    assert_eq!(names, expected, "the refused key was not half-made");
    let before = site.key(&before.token);
    let items = before.ok("search", json!({"query": "zqximmutable"})).await;
    assert_eq!(items["hits"], json!([]), "the refused item was not half-made");
    server.terminate().await;
}

#[tokio::test]
async fn privileged_a_full_disk_gives_clean_errors_and_loses_nothing() {
    let env = TestEnv::new();
    let mount = Tmpfs::mount(&env.home.path().join("mnt"), "8m");
    let db = mount.dir.join("custory.db");
    let server = env.serve(&db, &[]).await;
    let (site, owner_token) = (site(&server), owner_of(&server));
    let owner = site.owner(&owner_token);
    let before = made_key(&owner, "before", &site).await;
    let step = a_step(&before).await;
    let args = json!({"step_id": step, "kind": "insight", "title": "before"});
    let item_id = before.ok("create_item", args).await["id"].as_str().expect("id").to_owned();

    // Fill the file system to the last byte.
    let filler = mount.dir.join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut full = false;
        for _ in 0..(8 * 1024 * 1024 / chunk.len() + 2) {
            if let Err(error) = file.write_all(&chunk) {
                assert_eq!(error.raw_os_error(), Some(28), "ENOSPC, not {error}");
                full = true;
                break;
            }
        }
        assert!(full, "the tmpfs did not fill up");
    }

    // Key creation fails cleanly: a JSON 5xx on a connection that stays usable.
    let mut failures = 0;
    let mut names = BTreeSet::from(["before".to_owned(), "after".to_owned()]);
    for i in 0..20 {
        let name = format!("full {i}");
        let (status, body) = try_create_key(&owner, &name).await.expect("no drop");
        if status == 201 {
            names.insert(name); // a write that still fit in space SQLite had already allocated
            continue;
        }
        assert_eq!(status, 507, "a clean 507 Insufficient Storage, not {status}: {body}");
        assert_eq!(body["error"]["code"], "storage_full");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("disk is full")));
        failures += 1;
    }
    assert!(failures > 0, "no key creation failed on a full disk");
    let args = json!({"step_id": step, "kind": "insight", "title": "zqxnospace"});
    let (status, body) =
        try_mcp(&before, &tool_call(1, "create_item", args)).await.expect("no drop");
    assert_eq!(status, 200, "a tool error, not a transport error: {body}");
    assert_eq!(body["result"]["isError"], true, "{body}");
    let (status, _) = try_mcp(&before, &initialize_body()).await.expect("init");
    assert_eq!(status, 200, "authentication needs no disk space");
    let read = before.ok("get_item", json!({"item_id": item_id})).await;
    assert_eq!(read["title"], "before");

    // Space freed: writes work again without a restart.
    std::fs::remove_file(&filler).expect("free space");
    let after = made_key(&owner, "after", &site).await;
    server.terminate().await;
    assert_eq!(integrity_check(&db), "ok");

    let server = env.serve(&db, &[]).await;
    let site = self::site(&server);
    for key in [&before, &after] {
        let (status, _) = try_mcp(&site.key(&key.token), &initialize_body()).await.expect("init");
        assert_eq!(status, 200, "a key from before or after the full disk");
    }
    let before = site.key(&before.token);
    let read = before.ok("get_item", json!({"item_id": item_id})).await;
    assert_eq!(read["title"], "before");
    let hits = before.ok("search", json!({"query": "zqxnospace"})).await;
    assert_eq!(hits["hits"], json!([]), "the failed item was not half-made");
    let owner = site.owner(&owner_token);
    assert_eq!(key_names(&owner).await, names, "failed keys were not half-made");
    server.terminate().await;
}

/// The MCP endpoint refuses a request (401, 403, 429, 415, …) before reading its body, and
/// hyper then cannot reuse the connection. The refusal must say `Connection: close` or leave the
/// connection usable; before the fix in 921ef2c the connection was closed silently and a
/// client's next request on it failed (bench/soak.sh counted those as dropped connections).
#[tokio::test]
async fn a_refusal_before_the_body_is_read_does_not_silently_drop_the_connection() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = crate::common::TestServer::start().await;
    let host = server.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.expect("connect");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    // The head of a request without a token; the body follows only after the answer, as it
    // does when a client's body write is a separate packet the server has not read yet.
    let head = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let first = read_response(&mut stream).await.expect("the refusal");
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    if first.to_ascii_lowercase().contains("\r\nconnection: close\r\n") {
        server.stop().await;
        return; // announced: the client opens a new connection
    }
    let next = format!("{body}GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let second = match stream.write_all(next.as_bytes()).await {
        Ok(()) => read_response(&mut stream).await,
        Err(error) => Err(error.to_string()),
    };
    let second = second.unwrap_or_else(|error| {
        panic!("the connection was closed after a 401 without `Connection: close`: {error}")
    });
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    server.stop().await;

    /// Reads one response with a Content-Length body; `Err` when the connection ends first.
    async fn read_response(stream: &mut tokio::net::TcpStream) -> Result<String, String> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    return Ok(text);
                }
            }
            let read = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut chunk))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("end of stream".to_owned());
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// A supervisor may send SIGTERM as soon as it reads the announcement line: `serve` registers
/// its signal handlers before announcing, so that is a graceful stop (exit 0, final flush of
/// last-used times), not death by signal 15 as before the fix.
#[tokio::test]
async fn sigterm_right_after_the_announcement_is_a_graceful_stop() {
    let env = TestEnv::new();
    let db = env.home.path().join("data/custory.db");
    for attempt in 0..5 {
        let server = env.serve(&db, &[]).await;
        let pid = server.child.id().expect("pid");
        let status = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill");
        assert!(status.success());
        let output = server.child.wait_with_output().await.expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.contains("custory-mcp stopped"),
            "attempt {attempt}: serve ended with {:?} instead of stopping gracefully: {stderr}",
            output.status
        );
    }
}
