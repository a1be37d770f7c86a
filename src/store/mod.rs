//! The store: every SQL statement of the project lives under this module.
//!
//! Two databases can stand behind it, chosen by [`Database`]: one SQLite file (WAL, foreign
//! keys on, file 0600, one server process, one connection in a mutex) or one PostgreSQL
//! database shared by several `serve` replicas (a small connection pool per replica). The
//! statements are written once for both (see `db.rs`); the interface speaks in domain types
//! only, so handlers never know which database answers.
//!
//! What is kept in memory differs, because only SQLite guarantees one process: with SQLite,
//! keys are authenticated from an in-memory index that every key write updates; with
//! PostgreSQL there is no such cache, so a key revoked through one replica is refused by every
//! replica on its very next request.

mod audit;
pub mod db;
pub mod journeys;
mod keys;
mod owner;
mod seed;
mod workspaces;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};

use crate::token::TokenHash;
pub use audit::NewEvent;
use db::{Connection, DbError, PgPool};
pub use keys::{AuthenticatedKey, KeyIdentity, KeyUsage};
use keys::{IndexedKey, UsageSlot};
pub use owner::OwnerCredentialSetup;
pub use workspaces::WorkspaceRow;

/// Migrations in order, one list per database: the same history, each step written in that
/// database's dialect. SQLite records how many ran in `PRAGMA user_version`, PostgreSQL in the
/// table `custory_schema`.
const SQLITE_MIGRATIONS: &[&str] = &[include_str!("migrations/sqlite/0001_init.sql")];
const POSTGRES_MIGRATIONS: &[&str] = &[include_str!("migrations/postgres/0001_init.sql")];

/// Connections each replica keeps to PostgreSQL at most.
const POSTGRES_POOL_SIZE: usize = 16;

/// What can go wrong in the store, in terms the HTTP layer can map to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(DbError),
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> Self {
        match error {
            // Bad input, not a database failure: said to the client like any other.
            DbError::NulInText => Self::Invalid(error.to_string()),
            other => Self::Db(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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
    /// The URL asks for something this build cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// Where the data lives: `--database` / `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (a path, or `sqlite://PATH`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://` URL).
    Postgres(String),
}

impl Database {
    /// Reads a `--database` value: a `postgres://` URL, a `sqlite://` URL or a file path.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            value
                .parse::<postgres::Config>()
                .map_err(|error| format!("not a usable PostgreSQL URL: {error}"))?;
            Ok(Self::Postgres(value.to_owned()))
        } else if let Some(path) = value.strip_prefix("sqlite://").or(value.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite:///var/lib/custory.db".into());
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if value.contains("://") {
            Err("unknown database URL scheme: use postgres://… or sqlite://… (or a file path)"
                .into())
        } else if value.is_empty() {
            Err("the database path is empty".into())
        } else {
            Ok(Self::Sqlite(PathBuf::from(value)))
        }
    }
}

/// Shown to people: a PostgreSQL URL loses its password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let redacted = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once("password=") {
        Some((before, after)) => {
            let rest = after.find('&').map_or("", |at| &after[at..]);
            format!("{before}password=***{rest}")
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{redacted}{tail}")
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

enum Backend {
    Sqlite {
        conn: Mutex<rusqlite::Connection>,
        /// Held for the store's life: one server process per database file, so the key
        /// index is the only copy of the truth in memory.
        _lock: std::fs::File,
    },
    Postgres(Arc<PgPool>),
}

pub struct Store {
    backend: Backend,
    clock: Clock,
    database: Database,
    /// SQLite only: every MCP key by token hash, so authentication needs no query. Written only
    /// by `keys.rs`, in the same critical section as the database write it mirrors.
    key_index: Option<RwLock<HashMap<TokenHash, IndexedKey>>>,
    /// The latest use of each key seen by this process; `dirty` ones are not yet written
    /// (see [`Store::flush_usage`]).
    usage: Mutex<HashMap<String, UsageSlot>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("database", &self.database).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the SQLite database at `path` (see [`Store::open_database`]).
    pub fn open(path: &Path, clock: Clock) -> Result<Self, OpenError> {
        Self::open_database(&Database::Sqlite(path.to_owned()), clock)
    }

    /// Opens (creating if needed) the database, runs pending migrations and, on an empty
    /// database, creates the demo workspace. A SQLite directory is made 0700 and its file 0600.
    pub fn open_database(database: &Database, clock: Clock) -> Result<Self, OpenError> {
        let store = match database {
            Database::Sqlite(path) => Self::open_sqlite(path, clock)?,
            Database::Postgres(url) => Self::open_postgres(url, clock)?,
        };
        let shown = store.database.to_string();
        let broken = |error: StoreError| {
            OpenError::NotADatabase(format!("could not prepare {shown}: {error}"))
        };
        // The first statements are where a PostgreSQL server refuses the login or lacks the
        // database: those are about reaching it, not about what it holds.
        let postgres = matches!(database, Database::Postgres(_));
        store.migrate().map_err(|error| match error {
            StoreError::Invalid(message) => OpenError::NewerSchema(message),
            StoreError::Db(error) if postgres || error.kind() == db::ErrorKind::Unavailable => {
                OpenError::Unreachable(format!("could not use {shown}: {error}"))
            }
            other => broken(other),
        })?;
        if let Database::Sqlite(path) = database {
            crate::fsutil::restrict_file(path).map_err(|error| {
                OpenError::Unwritable(format!("could not make {shown} private (0600): {error}"))
            })?;
        }
        store.seed_demo_if_empty().map_err(broken)?;
        store.load_key_index().map_err(broken)?;
        Ok(store)
    }

    fn open_sqlite(path: &Path, clock: Clock) -> Result<Self, OpenError> {
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
        let conn = rusqlite::Connection::open(path)
            .map_err(|error| unwritable(format!("could not open the database {shown}"), &error))?;
        // Is it a database at all? Ask before changing anything about the file.
        let unusable = |error: rusqlite::Error| {
            OpenError::NotADatabase(format!("{shown} is not a usable SQLite database ({error})"))
        };
        conn.pragma_update(None, "journal_mode", "WAL").map_err(unusable)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(unusable)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(unusable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(unusable)?;
        Ok(Self {
            backend: Backend::Sqlite { conn: Mutex::new(conn), _lock: lock },
            clock,
            database: Database::Sqlite(path.to_owned()),
            key_index: Some(RwLock::default()),
            usage: Mutex::default(),
        })
    }

    fn open_postgres(url: &str, clock: Clock) -> Result<Self, OpenError> {
        let database = Database::Postgres(url.to_owned());
        let config = url.parse::<postgres::Config>().map_err(|error| {
            OpenError::Unreachable(format!("{database} is not a usable PostgreSQL URL: {error}"))
        })?;
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(OpenError::Unsupported(format!(
                "{database} asks for TLS (sslmode=require), which this build does not speak yet; \
                 use sslmode=disable on a private network"
            )));
        }
        Ok(Self {
            backend: Backend::Postgres(PgPool::new(config, POSTGRES_POOL_SIZE)),
            clock,
            database,
            key_index: None,
            usage: Mutex::default(),
        })
    }

    /// The database, for people: a path, or a URL without its password.
    pub fn database(&self) -> &Database {
        &self.database
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Checks the database's own consistency: SQLite's `PRAGMA integrity_check` (`Ok(())` when
    /// it answers `ok`); PostgreSQL checks itself, so there it only asks for an answer.
    pub fn integrity_check(&self) -> StoreResult<()> {
        let conn = self.conn();
        if conn.is_postgres() {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            return Ok(());
        }
        let answer: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        if answer == "ok" { Ok(()) } else { Err(StoreError::Invalid(answer)) }
    }

    fn conn(&self) -> Connection<'_> {
        match &self.backend {
            // A poisoned lock means a panic while holding the connection; SQLite's own
            // transaction rollback keeps the data consistent, so carrying on is safe.
            Backend::Sqlite { conn, .. } => {
                Connection::sqlite(conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            }
            Backend::Postgres(pool) => Connection::postgres(Arc::clone(pool)),
        }
    }

    fn pending_usage(&self) -> MutexGuard<'_, HashMap<String, UsageSlot>> {
        // Same reasoning as `conn`: the map holds plain values, a panic cannot leave it torn.
        self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn migrate(&self) -> StoreResult<()> {
        let conn = self.conn();
        let (migrations, done) = if conn.is_postgres() {
            // The write lock taken by every transaction also makes replicas that start
            // together migrate one after the other.
            let tx = conn.transaction()?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS custory_schema (version BIGINT NOT NULL);
                 INSERT INTO custory_schema (version)
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM custory_schema);",
            )?;
            let done: i64 =
                tx.query_row("SELECT version FROM custory_schema", [], |row| row.get(0))?;
            tx.commit()?;
            (POSTGRES_MIGRATIONS, done)
        } else {
            let done: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            (SQLITE_MIGRATIONS, done)
        };
        let done = usize::try_from(done).unwrap_or(usize::MAX);
        if done > migrations.len() {
            return Err(StoreError::Invalid(format!(
                "the database was written by a newer custory-mcp (schema version {done}, this \
                 build knows {})",
                migrations.len()
            )));
        }
        for (index, sql) in migrations.iter().enumerate().skip(done) {
            let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
            let tx = conn.transaction()?;
            if conn.is_postgres() {
                // Another replica may have run this step while we waited for the lock.
                let now: i64 =
                    tx.query_row("SELECT version FROM custory_schema", [], |row| row.get(0))?;
                if now >= version {
                    continue;
                }
                tx.execute_batch(sql)?;
                tx.execute("UPDATE custory_schema SET version = ?1", [version])?;
            } else {
                tx.execute_batch(sql)?;
                tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
            }
            tx.commit()?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_values_name_their_backend() {
        let parse = |value: &str| Database::parse(value);
        assert_eq!(parse("data/custory.db"), Ok(Database::Sqlite("data/custory.db".into())));
        assert_eq!(parse("sqlite:///var/lib/c.db"), Ok(Database::Sqlite("/var/lib/c.db".into())));
        assert_eq!(parse("sqlite:c.db"), Ok(Database::Sqlite("c.db".into())));
        let url = "postgres://u:pw@db.internal:5432/custory";
        assert_eq!(parse(url), Ok(Database::Postgres(url.into())));
        assert!(parse("postgresql://u@h/d").is_ok_and(|d| matches!(d, Database::Postgres(_))));
        for bad in ["", "sqlite://", "mysql://u@h/d", "postgres://u:pw@h:port/d"] {
            let error = parse(bad).expect_err(bad);
            assert!(!error.contains("pw"), "{bad}: {error}");
        }
    }

    #[test]
    fn shown_urls_lose_their_password() {
        let shown = |value: &str| Database::parse(value).expect(value).to_string();
        assert_eq!(shown("postgres://u:s3cret@h:5432/d"), "postgres://u:***@h:5432/d");
        assert_eq!(shown("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            shown("postgres://h/d?password=s3cret&sslmode=disable"),
            "postgres://h/d?password=***&sslmode=disable"
        );
        assert_eq!(shown("postgres://u:p@ss@h/d"), "postgres://u:***@h/d");
        assert_eq!(shown("/tmp/c.db"), "/tmp/c.db");
        let debug = format!("{:?}", Database::parse("postgres://u:s3cret@h/d").expect("url"));
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
