//! What both rooms stand on: the connections (SQLite's one writer and its readers, or a
//! PostgreSQL pool), the clock and the options. Neither room knows which database answers.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::db::{Connection, PgPool, SqliteConn, SqliteReaders};
use super::{Clock, Database, StoreOptions, StoreResult};

pub(super) enum Backend {
    Sqlite {
        writer: Box<Mutex<SqliteConn>>,
        readers: r2d2::Pool<SqliteReaders>,
        /// Held for the store's life: one server process per database file, so the key
        /// index is the only copy of the truth in memory.
        _lock: std::fs::File,
    },
    Postgres(PgPool),
}

pub(crate) struct Db {
    pub(super) backend: Backend,
    pub(super) clock: Clock,
    pub(super) database: Database,
    pub(super) options: StoreOptions,
}

impl Db {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(super) fn options(&self) -> &StoreOptions {
        &self.options
    }

    pub(super) fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// A connection for reads: one of SQLite's readers (they run beside the writer and each
    /// other), or a pooled PostgreSQL connection.
    pub(super) fn reader(&self) -> StoreResult<Connection<'_>> {
        match &self.backend {
            Backend::Sqlite { readers, .. } => {
                Ok(Connection::sqlite_reader(readers, Some(self.options.statement_limit))?)
            }
            Backend::Postgres(pool) => Ok(Connection::postgres(pool)),
        }
    }

    /// [`Db::reader`] without SQLite's per-statement limit, for an export: one snapshot whose
    /// few statements each read a whole workspace (PostgreSQL's is lifted per transaction by
    /// the caller).
    pub(super) fn reader_unlimited(&self) -> StoreResult<Connection<'_>> {
        match &self.backend {
            Backend::Sqlite { readers, .. } => Ok(Connection::sqlite_reader(readers, None)?),
            Backend::Postgres(pool) => Ok(Connection::postgres(pool)),
        }
    }

    /// The connection for writes (and for reads that must see the writer's own state): SQLite's
    /// one writer, or a pooled PostgreSQL connection whose transactions take the write lock.
    pub(super) fn writer(&self) -> Connection<'_> {
        self.writer_with(Some(self.options.statement_limit))
    }

    /// [`Db::writer`] without the statement limit, for migrations and other work that is not
    /// a request.
    pub(super) fn writer_unlimited(&self) -> Connection<'_> {
        self.writer_with(None)
    }

    fn writer_with(&self, limit: Option<Duration>) -> Connection<'_> {
        match &self.backend {
            // A poisoned lock means a panic while holding the connection; SQLite's own
            // transaction rollback keeps the data consistent, so carrying on is safe.
            Backend::Sqlite { writer, .. } => Connection::sqlite_writer(
                writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                limit,
            ),
            Backend::Postgres(pool) => Connection::postgres(pool),
        }
    }
}
