//! The connections behind [`super::Connection`]: SQLite's one writer and its pool of readers,
//! and the PostgreSQL pool. Pooling is r2d2's; what is ours is what each connection must be
//! told when it opens (pragmas, a statement time limit) and when one must not be reused.

use super::tls::PgTls;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Columns, DbError};
use std::cell::RefCell;

/// How long a request waits for a pooled connection before it is refused.
pub const POOL_WAIT: Duration = Duration::from_secs(10);
/// How long opening a PostgreSQL connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Statements whose column names a connection keeps (far more than the store has).
const COLUMNS_CACHED: usize = 512;
/// SQLite calls the progress handler every this many virtual-machine steps (~tens of µs).
const PROGRESS_STEPS: i32 = 10_000;

// ---------------------------------------------------------------------------------------------
// SQLite

/// A SQLite connection whose statements can be given a time limit: past it, the statement
/// running is interrupted (SQLite's progress handler) and fails with [`DbError::TimedOut`].
pub struct SqliteConn {
    pub(super) conn: rusqlite::Connection,
    /// Nanoseconds after `epoch` at which the running statement is stopped; 0 means never.
    deadline: Arc<AtomicU64>,
    /// How long each statement may run, in nanoseconds; 0 means no limit.
    limit: AtomicU64,
    epoch: Instant,
    /// Each statement's column names, made once (rows share them).
    columns: RefCell<HashMap<Box<str>, Columns>>,
}

impl SqliteConn {
    /// Opens `path` with the pragmas every connection of the store needs. `read_only`
    /// connections cannot write even by mistake (`query_only`).
    pub fn open(path: &Path, read_only: bool) -> rusqlite::Result<Self> {
        use rusqlite::OpenFlags;
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let mut conn = rusqlite::Connection::open_with_flags(path, flags)?;
        if !read_only {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if read_only {
            conn.pragma_update(None, "query_only", "ON")?;
            // Readers are many and their pages are in the OS's cache anyway: 1 MiB each.
            conn.pragma_update(None, "cache_size", -1024)?;
        }
        conn.busy_timeout(Duration::from_secs(5))?;
        // Plans do not depend on bound values: otherwise a statement with `LIMIT ?` (and more,
        // with this build's STAT4) is compiled again every time a new value is bound.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.set_prepared_statement_cache_capacity(64);
        let deadline = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let watched = Arc::clone(&deadline);
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || {
                let at = watched.load(Ordering::Relaxed);
                at != 0 && elapsed_nanos(epoch) > at
            }),
        )?;
        Ok(Self { conn, deadline, limit: AtomicU64::new(0), epoch, columns: RefCell::default() })
    }

    /// Stops each statement that runs past `limit` from its start (`None`: no limit). Set when
    /// the connection is taken; every statement then starts its own clock ([`Self::arm`]).
    pub fn set_limit(&self, limit: Option<Duration>) {
        let nanos = limit.map_or(0, |limit| limit.as_nanos().try_into().unwrap_or(u64::MAX));
        self.limit.store(nanos.max(u64::from(limit.is_some())), Ordering::Relaxed);
        self.arm();
    }

    /// The column names of `stmt` (prepared from `sql`), from the cache when it has them.
    pub(super) fn columns(&self, sql: &str, stmt: &rusqlite::Statement<'_>) -> Columns {
        if let Some(columns) = self.columns.borrow().get(sql) {
            return Arc::clone(columns);
        }
        let columns: Columns = stmt.column_names().map(Box::from).collect();
        let mut cache = self.columns.borrow_mut();
        if cache.len() >= COLUMNS_CACHED {
            cache.clear();
        }
        cache.insert(sql.into(), Arc::clone(&columns));
        columns
    }

    /// Starts the clock of the statement about to run.
    pub fn arm(&self) {
        let limit = self.limit.load(Ordering::Relaxed);
        let at = if limit == 0 { 0 } else { elapsed_nanos(self.epoch).saturating_add(limit) };
        self.deadline.store(at, Ordering::Relaxed);
    }
}

fn elapsed_nanos(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos().try_into().unwrap_or(u64::MAX)
}

/// Opens read-only connections to one SQLite file, for r2d2.
pub struct SqliteReaders {
    path: PathBuf,
}

impl SqliteReaders {
    pub fn pool(path: &Path, size: u32) -> r2d2::Pool<Self> {
        r2d2::Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(POOL_WAIT)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Self { path: path.to_owned() })
    }
}

impl r2d2::ManageConnection for SqliteReaders {
    type Connection = SqliteConn;
    type Error = rusqlite::Error;

    fn connect(&self) -> rusqlite::Result<SqliteConn> {
        SqliteConn::open(&self.path, true)
    }

    fn is_valid(&self, conn: &mut SqliteConn) -> rusqlite::Result<()> {
        conn.conn.execute_batch("")
    }

    fn has_broken(&self, _: &mut SqliteConn) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// One PostgreSQL connection with its prepared statements.
pub struct PgConn {
    /// `None` only while being closed (see `Drop`).
    client: Option<postgres::Client>,
    statements: HashMap<String, (postgres::Statement, Columns)>,
    /// Inside a transaction that has not ended cleanly: never handed out again.
    pub(super) in_transaction: bool,
}

impl PgConn {
    pub(super) fn client(&mut self) -> Result<&mut postgres::Client, DbError> {
        self.client.as_mut().ok_or_else(|| DbError::Unavailable("the connection is closed".into()))
    }

    /// Runs `begin` (a `BEGIN` and what the transaction takes first, such as the write lock).
    /// A `BEGIN` that ran before a later part failed (the lock not granted within the time
    /// limit) leaves a transaction open, aborted: it is rolled back here, and if even that
    /// fails the connection stays marked, so the pool drops it rather than hand out a
    /// connection whose every statement would fail (SQLSTATE 25P02).
    pub(super) fn begin(&mut self, begin: &str) -> Result<(), DbError> {
        self.in_transaction = true;
        let begun = self.client()?.batch_execute(begin);
        if begun.is_err() && self.client()?.batch_execute("ROLLBACK").is_ok() {
            self.in_transaction = false;
        }
        Ok(begun?)
    }

    /// The prepared statement for `sql`, and its column names.
    pub(super) fn statement(
        &mut self,
        sql: &str,
    ) -> Result<(postgres::Statement, Columns), DbError> {
        if let Some((statement, columns)) = self.statements.get(sql) {
            return Ok((statement.clone(), Arc::clone(columns)));
        }
        let statement = self.client()?.prepare(&super::postgres_placeholders(sql))?;
        let columns: Columns = statement.columns().iter().map(|c| Box::from(c.name())).collect();
        self.statements.insert(sql.to_owned(), (statement.clone(), Arc::clone(&columns)));
        Ok((statement, columns))
    }

    fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(postgres::Client::is_closed)
    }
}

impl Drop for PgConn {
    /// A client says goodbye to the server when dropped, which blocks on its own runtime.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            blocking(move || drop(client));
        }
    }
}

/// Opens PostgreSQL connections for r2d2.
pub struct PgManager {
    config: postgres::Config,
    tls: PgTls,
}

pub type PgPool = r2d2::Pool<PgManager>;

impl PgManager {
    /// The pool for `config`, opening connections on demand. Every connection stops statements
    /// that run longer than `statement_limit`.
    pub fn pool(
        mut config: postgres::Config,
        tls: PgTls,
        size: u32,
        statement_limit: Duration,
    ) -> PgPool {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("custory-mcp");
        let options = config.get_options().map(str::to_owned).unwrap_or_default();
        config.options(&format!(
            "{options} -c statement_timeout={}",
            statement_limit.as_millis().max(1)
        ));
        r2d2::Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(POOL_WAIT)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Self { config, tls })
    }

    /// One connection made now, outside the pool: to tell at start-up, at once and with the
    /// server's own words, whether the database can be reached at all.
    pub fn probe(config: &postgres::Config, tls: &PgTls) -> Result<(), DbError> {
        let mut config = config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let client = blocking(|| connect(&config, tls))?;
        blocking(move || drop(client));
        Ok(())
    }
}

impl r2d2::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        let client = blocking(|| connect(&self.config, &self.tls))?;
        Ok(PgConn { client: Some(client), statements: HashMap::new(), in_transaction: false })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        match conn.client.as_mut() {
            Some(client) => blocking(|| client.simple_query("")).map(drop),
            None => Ok(()),
        }
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.in_transaction || conn.is_closed()
    }
}

fn connect(config: &postgres::Config, tls: &PgTls) -> Result<postgres::Client, postgres::Error> {
    match tls {
        PgTls::Plain => config.connect(postgres::NoTls),
        PgTls::Rustls(tls) => config.connect(tls.clone()),
    }
}

/// Runs blocking database work from wherever the store is called (the `postgres` client blocks
/// on a runtime of its own, which tokio forbids on its worker threads): on a multi-threaded
/// runtime it tells tokio first; on a current-thread runtime (tests) it runs on a thread of its
/// own for the moment; outside any runtime (r2d2's threads) it just runs.
pub fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|scope| {
            scope.spawn(f).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
        Err(_) => f(),
    }
}
