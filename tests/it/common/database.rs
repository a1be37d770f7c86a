//! The database under test: a SQLite file, or a fresh PostgreSQL database (`pg.rs`) when
//! `CUSTORY_TEST_BACKEND=postgres`; and direct SQL on it, behind the server's back.

use std::path::Path;

use custory_mcp::store::Database;

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

    /// Every row of `sql`, each column as [`Sql`].
    pub fn query_rows(&self, sql: &str, params: &[Sql]) -> Vec<Vec<Sql>> {
        self.query(sql, params)
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

/// The database's write lock, held by another connection until [`WriteLock::release`] (or
/// drop): what a long import does to every other writer, driven by the test. SQLite: a
/// `BEGIN IMMEDIATE` on the file; PostgreSQL: the advisory lock every write transaction of
/// the server takes first.
pub struct WriteLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

/// The advisory lock the server's PostgreSQL write transactions take ("cust" in ASCII, as
/// `store/db` has it).
const SERVER_WRITE_LOCK: i64 = 0x6375_7374;

impl TestDatabase {
    /// Takes the write lock (returns once it is held).
    pub fn hold_write_lock(&self) -> WriteLock {
        let (held_tx, held) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let database = self.database.clone();
        let holder = std::thread::spawn(move || match database {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.busy_timeout(std::time::Duration::from_secs(30)).expect("busy timeout");
                conn.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
                let _ = held_tx.send(());
                let _ = released.recv();
                conn.execute_batch("ROLLBACK").expect("release the write lock");
            }
            Database::Postgres(url) => {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                client
                    .batch_execute(&format!("SELECT pg_advisory_lock({SERVER_WRITE_LOCK})"))
                    .expect("take the write lock");
                let _ = held_tx.send(());
                let _ = released.recv();
                client
                    .batch_execute(&format!("SELECT pg_advisory_unlock({SERVER_WRITE_LOCK})"))
                    .expect("release the write lock");
            }
        });
        held.recv().expect("the write lock was taken");
        WriteLock { release: Some(release), holder: Some(holder) }
    }
}

impl WriteLock {
    /// Lets the other writers go (returns once the lock is given back).
    pub fn release(mut self) {
        self.give_back();
    }

    fn give_back(&mut self) {
        drop(self.release.take());
        if let Some(holder) = self.holder.take() {
            holder.join().expect("the write lock's holder");
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.give_back();
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
