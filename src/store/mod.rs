//! The store: every SQL statement of the project lives under this module.
//!
//! One SQLite database (WAL, foreign keys on, file 0600) behind one connection in a mutex. Every
//! statement is a short indexed query, so handlers call the store directly instead of hopping to
//! a blocking thread pool; the interface speaks in domain types only, so a PostgreSQL
//! implementation could stand behind it later without touching the handlers.

mod audit;
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
use rusqlite::Connection;

use crate::token::TokenHash;
pub use audit::NewEvent;
pub use keys::{AuthenticatedKey, KeyUsage};
use keys::{IndexedKey, UsageSlot};
pub use owner::OwnerCredentialSetup;
pub use workspaces::WorkspaceRow;

/// Migrations in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

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
    Db(#[from] rusqlite::Error),
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

pub struct Store {
    conn: Mutex<Connection>,
    clock: Clock,
    path: PathBuf,
    /// Every MCP key by token hash, so authentication needs no query. Written only by
    /// `keys.rs`, in the same critical section as the database write it mirrors.
    key_index: RwLock<HashMap<TokenHash, IndexedKey>>,
    /// The latest use of each key seen by this process; `dirty` ones are not yet written
    /// (see [`Store::flush_usage`]).
    usage: Mutex<HashMap<String, UsageSlot>>,
    /// Held for the store's life: one server process per database file, so the key index
    /// above is the only copy of the truth in memory.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, runs pending migrations and, on a new
    /// database, creates the demo workspace. The directory is made 0700 and the file 0600.
    pub fn open(path: &Path, clock: Clock) -> Result<Self, OpenError> {
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
        let is_new = !path.exists();
        if is_new {
            crate::fsutil::create_private_file(path).map_err(|error| {
                unwritable(format!("could not create the database {shown}"), &error)
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|error| unwritable(format!("could not open the database {shown}"), &error))?;
        // Is it a database at all? Ask before changing anything about the file.
        let unusable = |error: rusqlite::Error| {
            OpenError::NotADatabase(format!("{shown} is not a usable SQLite database ({error})"))
        };
        conn.pragma_update(None, "journal_mode", "WAL").map_err(unusable)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(unusable)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(unusable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(unusable)?;
        let store = Self {
            conn: Mutex::new(conn),
            clock,
            path: path.to_owned(),
            key_index: RwLock::default(),
            usage: Mutex::default(),
            _lock: lock,
        };
        let broken = |error: StoreError| {
            OpenError::NotADatabase(format!("could not prepare {shown}: {error}"))
        };
        store.migrate().map_err(|error| match error {
            StoreError::Invalid(message) => OpenError::NewerSchema(message),
            other => broken(other),
        })?;
        crate::fsutil::restrict_file(path).map_err(|error| {
            unwritable(format!("could not make {shown} private (0600)"), &error)
        })?;
        if is_new || store.list_workspaces().map_err(broken)?.is_empty() {
            store.seed_demo().map_err(broken)?;
        }
        store.load_key_index().map_err(broken)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when SQLite answers `ok`.
    pub fn integrity_check(&self) -> StoreResult<()> {
        let answer: String =
            self.conn().query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
        if answer == "ok" { Ok(()) } else { Err(StoreError::Invalid(answer)) }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic while holding the connection; SQLite's own transaction
        // rollback keeps the data consistent, so carrying on is safe.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pending_usage(&self) -> MutexGuard<'_, HashMap<String, UsageSlot>> {
        // Same reasoning as `conn`: the map holds plain values, a panic cannot leave it torn.
        self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.conn();
        let done: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let done = usize::try_from(done).unwrap_or(usize::MAX);
        if done > MIGRATIONS.len() {
            return Err(StoreError::Invalid(format!(
                "the database was written by a newer custory-mcp (schema version {done}, this \
                 build knows {})",
                MIGRATIONS.len()
            )));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i64::try_from(index + 1).unwrap_or(i64::MAX))?;
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
