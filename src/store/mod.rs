//! The store: every SQL statement of the project lives under this module, in two rooms that
//! change for different reasons:
//!
//! - [`access`]: who may do what, and what they did: workspaces, MCP keys (and the in-memory
//!   key index, last-use buffer and call queue), the owner credential, OAuth clients, sessions
//!   and codes, the audit trail, the record of calls and each key's hygiene flags;
//! - [`content`]: the journey model itself: journeys, stages, steps, items, links, comments and
//!   personas, their reads, writes, search, archive, import and export, and the templates.
//!
//! Each room has one face, [`Store::access`] and [`Store::content`], whose methods are the
//! whole interface the server and the MCP layer use. Content depends on access one way,
//! through the few functions of `access::edge` (is this key still active, create a workspace
//! row, record an audit event), never by SQL on access's tables; `tests/it/layout.rs` holds
//! that edge.
//!
//! Two databases can stand behind both, chosen by [`Database`]: one SQLite file (WAL, foreign
//! keys on, file 0600, one server process; one writer connection beside a small pool of
//! readers) or one PostgreSQL database shared by several `serve` replicas (a connection pool
//! per replica). The statements are written once for both (see `db/`); the interface speaks in
//! domain types only, so handlers never know which database answers.
//!
//! What is kept in memory differs, because only SQLite guarantees one process: with SQLite,
//! keys are authenticated from an in-memory index that every key write updates; with
//! PostgreSQL there is no such cache, so a key revoked through one replica is refused by every
//! replica on its very next request.

pub mod access;
mod base;
pub mod content;
mod database;
pub(crate) mod db;
mod migrate;
mod page;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use access::AccessStore;
use base::{Backend, Db};
pub use content::ContentStore;
pub use database::Database;
use db::{DbError, PgManager, SqliteConn, SqliteReaders};
pub use migrate::SCHEMA_VERSION;

/// How many connections the store keeps and how long a statement may run.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// SQLite: read-only connections beside the one writer (reads run in parallel).
    pub read_connections: u32,
    /// PostgreSQL: connections per replica (size `max_connections` for every replica).
    pub postgres_connections: u32,
    /// A statement running longer is stopped and its request fails with a clear error.
    pub statement_limit: Duration,
    /// What one workspace may hold.
    pub quotas: Quotas,
}

/// What one workspace may hold at most: far above what a team writes (a million items), low
/// enough that one key cannot fill the disk.
/// An import no slice of which was written for this long was interrupted (PostgreSQL replicas
/// clean such leftovers when they start).
const STALE_IMPORT: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub items: i64,
    pub comments: i64,
    /// Bytes of text: titles, descriptions, fields, comments.
    pub text_bytes: i64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { items: 1_000_000, comments: 2_000_000, text_bytes: 4 << 30 }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            read_connections: 8,
            postgres_connections: 16,
            statement_limit: Duration::from_secs(2),
            quotas: Quotas::default(),
        }
    }
}

/// What can go wrong in the store, in terms the HTTP layer can map to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// A statement ran past the time limit and was stopped.
    #[error("{0}")]
    TimedOut(String),
    /// A write would take a workspace past a quota; nothing was changed.
    #[error("{0}")]
    Quota(String),
    #[error("database error: {0}")]
    Db(DbError),
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> Self {
        match error {
            // Bad input, not a database failure: said to the client like any other.
            DbError::NulInText => Self::Invalid(error.to_string()),
            other if other.kind() == db::ErrorKind::TimedOut => Self::TimedOut(
                "the database took too long to answer and the query was stopped; try again, \
                 or narrow the request (a filter, a smaller limit)"
                    .into(),
            ),
            other => Self::Db(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a list, and the cursor of the next page (`None` on the last).
pub type Page<T> = (Vec<T>, Option<String>);

/// Why a database could not be opened. Each says what is wrong; the caller adds what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory, file or lock cannot be created or written.
    #[error("{0}")]
    Unwritable(String),
    /// The file is not a SQLite database, or not one this program can prepare.
    #[error("{0}")]
    NotADatabase(String),
    /// A newer custory-mcp wrote the database.
    #[error("{0}")]
    NewerSchema(String),
    /// Another server holds the database.
    #[error("{0}")]
    InUse(String),
    /// The PostgreSQL server cannot be reached, or refuses the login or the database.
    #[error("{0}")]
    Unreachable(String),
}

/// The current time, shiftable in tests so expiry can be checked without waiting 30 days.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    /// Whole seconds: every stored and shown time has second precision.
    pub fn now(&self) -> DateTime<Utc> {
        let secs = Utc::now().timestamp() + self.offset_secs.load(Ordering::Relaxed);
        from_secs(secs)
    }

    /// Moves this clock (and every store sharing it) forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_secs.fetch_add(by.num_seconds(), Ordering::Relaxed);
    }
}

pub(crate) fn from_secs(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The store: its two rooms over one set of connections. Cheap to share behind an `Arc`.
pub struct Store {
    db: Db,
    /// What the access room keeps in memory (key index, last uses, queued calls).
    access: access::State,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("database", &self.db.database).finish_non_exhaustive()
    }
}

impl Store {
    /// Who may do what, and what they did: workspaces, keys, the owner credential, OAuth, the
    /// audit trail and the record of calls.
    pub fn access(&self) -> AccessStore<'_> {
        AccessStore::new(&self.db, &self.access)
    }

    /// The journey model: what MCP clients read and build.
    pub fn content(&self) -> ContentStore<'_> {
        ContentStore::new(&self.db)
    }

    /// Opens the SQLite database at `path` (see [`Store::open_database`]).
    pub fn open(path: &Path, clock: Clock) -> Result<Self, OpenError> {
        Self::open_database(&Database::Sqlite(path.to_owned()), clock)
    }

    /// [`Store::open_with`] the default options.
    pub fn open_database(database: &Database, clock: Clock) -> Result<Self, OpenError> {
        Self::open_with(database, clock, StoreOptions::default())
    }

    /// Opens (creating if needed) the database, runs pending migrations, removes what an
    /// interrupted import left and, on an empty
    /// database, creates the demo workspace. A SQLite directory is made 0700 and its file 0600.
    pub fn open_with(
        database: &Database,
        clock: Clock,
        options: StoreOptions,
    ) -> Result<Self, OpenError> {
        let db = match database {
            Database::Sqlite(path) => open_sqlite(path, clock, options)?,
            Database::Postgres(url) => open_postgres(url, clock, options)?,
        };
        let shown = db.database.to_string();
        let broken = |error: StoreError| {
            OpenError::NotADatabase(format!("could not prepare {shown}: {error}"))
        };
        // The first statements are where a PostgreSQL server refuses the login or lacks the
        // database: those are about reaching it, not about what it holds.
        let postgres = matches!(database, Database::Postgres(_));
        migrate::run(&db.writer_unlimited()).map_err(|error| match error {
            StoreError::Invalid(message) => OpenError::NewerSchema(message),
            StoreError::Db(error) if postgres || error.kind() == db::ErrorKind::Unavailable => {
                OpenError::Unreachable(format!("could not use {shown}: {error}"))
            }
            other => broken(other),
        })?;
        if let Database::Sqlite(path) = database {
            // The write-ahead log and its index hold the same data: private too, whatever mode
            // an older file left them with.
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                let file = PathBuf::from(file);
                if suffix.is_empty() || file.exists() {
                    crate::fsutil::restrict_file(&file).map_err(|error| {
                        OpenError::Unwritable(format!(
                            "could not make {} private (0600): {error}",
                            file.display()
                        ))
                    })?;
                }
            }
        }
        let store = Self { access: access::State::new(!db.is_postgres()), db };
        // What an interrupted import left (a crash mid-import): with SQLite this process owns
        // the file, so all of it; with PostgreSQL another replica may be importing, so only
        // what no slice has touched for ten minutes.
        let before = if store.db.is_postgres() {
            store.db.now().timestamp() - STALE_IMPORT.as_secs() as i64
        } else {
            i64::MAX
        };
        store.content().discard_interrupted_imports(before).map_err(broken)?;
        store.content().seed_demo_if_empty().map_err(broken)?;
        store.access().load().map_err(broken)?;
        Ok(store)
    }

    /// The database, for people: a path, or a URL without its password.
    pub fn database(&self) -> &Database {
        &self.db.database
    }

    /// The connection pool's connections: `(in use, idle, most it may open)`.
    pub fn pool_use(&self) -> (u32, u32, u32) {
        let (state, max) = match &self.db.backend {
            Backend::Sqlite { readers, .. } => (readers.state(), readers.max_size()),
            Backend::Postgres(pool) => (pool.state(), pool.max_size()),
        };
        (state.connections - state.idle_connections, state.idle_connections, max)
    }

    /// The schema version of the database, read now (a round trip: the readiness check).
    pub fn schema_version(&self) -> StoreResult<i64> {
        migrate::version(&self.db.reader()?)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.db.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.db.clock
    }

    /// Checks the database's own consistency: SQLite's `PRAGMA integrity_check` (`Ok(())` when
    /// it answers `ok`); PostgreSQL checks itself, so there it only asks for an answer.
    pub fn integrity_check(&self) -> StoreResult<()> {
        let conn = self.db.writer_unlimited();
        if conn.is_postgres() {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            return Ok(());
        }
        let answer: String =
            conn.query_row("PRAGMA integrity_check", [], |row| row.get("integrity_check"))?;
        if answer == "ok" { Ok(()) } else { Err(StoreError::Invalid(answer)) }
    }

    /// Runs, on a reader, a statement that would never end, and returns how it was stopped: a
    /// check that the time limit holds (for the tests).
    #[doc(hidden)]
    pub fn probe_statement_limit(&self) -> StoreResult<()> {
        let sql = if self.db.is_postgres() {
            "SELECT 1 FROM pg_sleep(3600)"
        } else {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        };
        self.db.reader()?.query(sql, [])?;
        Ok(())
    }
}

fn open_sqlite(path: &Path, clock: Clock, options: StoreOptions) -> Result<Db, OpenError> {
    let shown = path.display();
    let unwritable = |what: String, error: &dyn std::fmt::Display| {
        OpenError::Unwritable(format!("{what}: {error}"))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsutil::create_private_dir(dir).map_err(|error| {
            unwritable(format!("could not create the directory {}", dir.display()), &error)
        })?;
    }
    let lock = lock_database(path)?;
    if !path.exists() {
        crate::fsutil::create_private_file(path).map_err(|error| {
            unwritable(format!("could not create the database {shown}"), &error)
        })?;
    }
    // Is it a database at all? Opening sets WAL, which is the first thing to read it.
    let writer = SqliteConn::open(path, false).map_err(|error| match error {
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::CannotOpen => {
            unwritable(format!("could not open the database {shown}"), &error)
        }
        other => {
            OpenError::NotADatabase(format!("{shown} is not a usable SQLite database ({other})"))
        }
    })?;
    Ok(Db {
        backend: Backend::Sqlite {
            writer: Box::new(std::sync::Mutex::new(writer)),
            readers: SqliteReaders::pool(path, options.read_connections),
            _lock: lock,
        },
        clock,
        database: Database::Sqlite(path.to_owned()),
        options,
    })
}

fn open_postgres(url: &str, clock: Clock, options: StoreOptions) -> Result<Db, OpenError> {
    let database = Database::Postgres(url.to_owned());
    let (config, tls) = db::tls::parse(url).map_err(|error| {
        OpenError::Unreachable(format!("{database} is not a usable PostgreSQL URL: {error}"))
    })?;
    PgManager::probe(&config, &tls).map_err(|error| {
        let text = error.to_string();
        let hint = if text.contains("certificate") || text.contains("UnknownIssuer") {
            ": the server's certificate is not signed by a CA in sslrootcert, or (with \
             sslmode=verify-full) does not name the host in the URL"
        } else if text.contains("server does not support TLS") {
            ": this server does not speak TLS; use sslmode=disable on a private network, or \
             turn on ssl in postgresql.conf"
        } else {
            ""
        };
        OpenError::Unreachable(format!("could not use {database}: {error}{hint}"))
    })?;
    let pool = PgManager::pool(config, tls, options.postgres_connections, options.statement_limit);
    Ok(Db { backend: Backend::Postgres(pool), clock, database, options })
}

/// A random id with a type prefix, e.g. `key_4fQ2kd9XzA`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", crate::token::random_base62(10))
}

/// Takes the exclusive lock `<database>.lock`, or explains who holds it.
fn lock_database(path: &Path) -> Result<std::fs::File, OpenError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let unwritable = |error: std::io::Error| {
        OpenError::Unwritable(format!("could not use the database {}: {error}", path.display()))
    };
    let file = options.open(PathBuf::from(lock_path)).map_err(unwritable)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::InUse(format!(
            "another custory-mcp server is already using the database {}",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(unwritable(error)),
    }
}
