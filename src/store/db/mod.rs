//! One SQL interface over the two databases the store can stand on: SQLite (the embedded
//! default, one process) and PostgreSQL (several `serve` replicas on one database).
//!
//! The store writes each statement once, in SQL both understand, with numbered placeholders
//! `?1`, `?2`… (rewritten to `$1`, `$2`… for PostgreSQL). Parameters and rows are plain
//! [`Value`]s, so the row-mapping code is the same for both. A row's columns are read by name
//! (a column's own, or its `AS` alias: every computed column has one, in lowercase, because the
//! two databases name an expression differently), never by position, so adding a column to a
//! query cannot shift what another reads. The shape follows rusqlite's
//! (`prepare_cached`, `query_row`, `query_map`, `transaction`, `optional`), which the store was
//! first written against.
//!
//! Transactions are the store's write units. SQLite has one writer connection, so writers take
//! turns, beside a pool of read-only connections that WAL lets run at the same time; on
//! PostgreSQL every write transaction first takes one advisory lock, so writers take turns
//! across replicas too and a check-then-insert (a key name, the owner credential, the demo
//! seed) cannot race. Every statement runs under a time limit set when the connection is taken
//! (see `pool.rs`): one that runs past it fails with [`DbError::TimedOut`].

mod pool;
pub(in crate::store) mod tls;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use pool::PgConn;
pub(super) use pool::{PgManager, PgPool, SqliteConn, SqliteReaders, blocking};

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

pub type DbResult<T> = Result<T, DbError>;

/// What went wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the query returned no rows")]
    NoRows,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("column {column}: {message}")]
    Decode { column: String, message: String },
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A statement ran past its time limit and was stopped; nothing it did was kept.
    #[error("the query took too long and was stopped")]
    TimedOut,
    /// A text parameter held U+0000, which PostgreSQL cannot store or compare; refused on both
    /// databases alike, before the statement runs.
    #[error("text must not contain the NUL character (U+0000)")]
    NulInText,
}

/// `postgres::Error` shows only its kind ("db error"); the server's message is in its source.
fn postgres_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// What a [`DbError`] means for the request that hit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The disk is full; nothing was written.
    StorageFull,
    /// The database refuses writes.
    ReadOnly,
    /// The database server cannot be reached (or no connection came free in time).
    Unavailable,
    /// A statement ran past its time limit.
    TimedOut,
    Other,
}

impl DbError {
    pub fn kind(&self) -> ErrorKind {
        use postgres::error::SqlState;
        match self {
            Self::Sqlite(error) => match error.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DiskFull) => ErrorKind::StorageFull,
                Some(rusqlite::ErrorCode::ReadOnly) => ErrorKind::ReadOnly,
                Some(rusqlite::ErrorCode::OperationInterrupted) => ErrorKind::TimedOut,
                _ => ErrorKind::Other,
            },
            Self::Postgres(error) if error.is_closed() => ErrorKind::Unavailable,
            Self::Postgres(error) => match error.code() {
                Some(code) if *code == SqlState::DISK_FULL => ErrorKind::StorageFull,
                Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => ErrorKind::ReadOnly,
                Some(code) if *code == SqlState::QUERY_CANCELED => ErrorKind::TimedOut,
                Some(code)
                    if code.code().starts_with("08")
                        || code.code().starts_with("57P")
                        || *code == SqlState::TOO_MANY_CONNECTIONS =>
                {
                    ErrorKind::Unavailable
                }
                // No SQLSTATE: the connection itself failed (refused, reset, timed out).
                None => ErrorKind::Unavailable,
                Some(_) => ErrorKind::Other,
            },
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::TimedOut => ErrorKind::TimedOut,
            Self::NoRows | Self::Decode { .. } | Self::NulInText => ErrorKind::Other,
        }
    }
}

/// `Result<T>` → `Result<Option<T>>`, with "no rows" as `None` (as rusqlite's extension).
pub trait OptionalExtension<T> {
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(DbError::NoRows) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values in and out.

/// A Rust value that can be a statement parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! integer_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
integer_to_value!(i64, u32);

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// A statement's parameters: `params![a, b]`, `[one]`, or `[]`.
pub trait Params {
    fn values(&self) -> Vec<Value>;
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Vec<Value> {
        Vec::new()
    }
}

impl<T: ToValue> Params for [T; 1] {
    fn values(&self) -> Vec<Value> {
        vec![self[0].to_value()]
    }
}

/// Parameters of different types: `params![workspace_id, name, now]`.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::store::db::ToValue]
    };
    ($($param:expr),+ $(,)?) => {
        &[$(&$param as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue]
    };
}
pub(crate) use params;

/// A Rust value a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

impl FromValue for u32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        let wide = i64::from_value(value)?;
        u32::try_from(wide).map_err(|_| format!("{wide} is out of range"))
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(text) => Ok(text.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(bytes) => Ok(bytes.clone()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// The names of a result's columns, shared by its rows (and cached with the statement).
pub(super) type Columns = Arc<[Box<str>]>;

/// One result row.
#[derive(Debug)]
pub struct Row {
    columns: Columns,
    values: Vec<Value>,
    /// Where the next column is looked for first: rows are mostly read in the order their
    /// statement names the columns, so a lookup is usually one comparison.
    next: std::cell::Cell<usize>,
}

impl Row {
    /// The column named `name` (as the statement names it, or its `AS` alias).
    pub fn get<T: FromValue>(&self, name: &str) -> DbResult<T> {
        let decode = |message: String| DbError::Decode { column: name.to_owned(), message };
        let at = self.position(name).ok_or_else(|| {
            decode(format!("the row has no such column (it has {})", self.columns.join(", ")))
        })?;
        T::from_value(&self.values[at]).map_err(decode)
    }

    fn position(&self, name: &str) -> Option<usize> {
        let count = self.columns.len();
        let start = self.next.get();
        let at = (0..count).map(|k| (start + k) % count).find(|&i| &*self.columns[i] == name)?;
        self.next.set(at + 1);
        Some(at)
    }

    /// The text column named `name`, holding one of a closed set's names (`parse` reads it).
    pub fn get_parsed<T>(&self, name: &str, parse: fn(&str) -> Option<T>) -> DbResult<T> {
        let text: String = self.get(name)?;
        parse(&text).ok_or_else(|| DbError::Decode {
            column: name.to_owned(),
            message: format!("unexpected value {text:?}"),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Connections, statements, transactions.

/// A connection for the length of one store operation: SQLite's writer (locked), one of its
/// readers, or a PostgreSQL connection from the pool, taken at its first statement and returned
/// on drop.
pub struct Connection<'a> {
    inner: Inner<'a>,
}

// One per store operation, on the stack: its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Inner<'a> {
    SqliteWriter(MutexGuard<'a, SqliteConn>),
    SqliteReader(r2d2::PooledConnection<SqliteReaders>),
    Postgres { pool: &'a PgPool, taken: RefCell<Option<r2d2::PooledConnection<PgManager>>> },
}

impl fmt::Debug for Connection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::SqliteWriter(_) => f.write_str("Connection(SQLite writer)"),
            Inner::SqliteReader(_) => f.write_str("Connection(SQLite reader)"),
            Inner::Postgres { .. } => f.write_str("Connection(PostgreSQL)"),
        }
    }
}

impl<'a> Connection<'a> {
    /// The SQLite writer; its statements stop after `limit` (`None`: no limit).
    pub(super) fn sqlite_writer(
        guard: MutexGuard<'a, SqliteConn>,
        limit: Option<Duration>,
    ) -> Self {
        guard.set_limit(limit);
        Self { inner: Inner::SqliteWriter(guard) }
    }

    /// A SQLite reader from the pool; its statements stop after `limit`.
    pub(super) fn sqlite_reader(
        pool: &r2d2::Pool<SqliteReaders>,
        limit: Option<Duration>,
    ) -> DbResult<Self> {
        let conn = pool.get().map_err(|error| DbError::Unavailable(error.to_string()))?;
        conn.set_limit(limit);
        Ok(Self { inner: Inner::SqliteReader(conn) })
    }

    /// A PostgreSQL connection from `pool` (taken at the first statement).
    pub(super) fn postgres(pool: &'a PgPool) -> Self {
        Self { inner: Inner::Postgres { pool, taken: RefCell::new(None) } }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.inner, Inner::Postgres { .. })
    }

    /// Whether a transaction is open on this connection (for checks in debug builds).
    pub fn in_transaction(&self) -> bool {
        match &self.inner {
            Inner::SqliteWriter(conn) => !conn.conn.is_autocommit(),
            Inner::SqliteReader(conn) => !conn.conn.is_autocommit(),
            Inner::Postgres { taken, .. } => {
                taken.borrow().as_ref().is_some_and(|conn| conn.in_transaction)
            }
        }
    }

    /// The SQLite connection, its clock started for the statement about to run (each
    /// statement has the whole time limit; see [`SqliteConn::arm`]).
    fn sqlite(&self) -> Option<&SqliteConn> {
        let conn: &SqliteConn = match &self.inner {
            Inner::SqliteWriter(conn) => conn,
            Inner::SqliteReader(conn) => conn,
            Inner::Postgres { .. } => return None,
        };
        conn.arm();
        Some(conn)
    }

    /// Runs `f` on the pooled PostgreSQL connection, taking one first if needed.
    ///
    /// A pooled connection the server has ended while it sat idle (a restart, a failover, an
    /// administrator) fails its first statement without running it; that connection is
    /// discarded and the statement runs again on another one, so a database restart costs
    /// no request an error. Inside a transaction nothing is retried: its earlier statements died
    /// with the connection.
    fn with_pg<T: Send>(
        pool: &PgPool,
        taken: &RefCell<Option<r2d2::PooledConnection<PgManager>>>,
        f: impl Fn(&mut PgConn) -> DbResult<T> + Send + Sync,
    ) -> DbResult<T> {
        let take = || pool.get().map_err(|error| DbError::Unavailable(error.to_string()));
        let mut slot = taken.borrow_mut();
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => slot.insert(take()?),
        };
        let mut result = blocking(|| f(conn));
        // Every idle connection may have been ended at once: the next one taken can be dead
        // too, so try as many as the pool holds, then one it opens.
        for _ in 0..=pool.max_size() {
            let ended = matches!(&result, Err(error) if server_ended_it(error));
            if !ended || slot.as_ref().is_some_and(|conn| conn.in_transaction) {
                break;
            }
            // Dropped closed, so r2d2 does not hand it out again.
            let conn = slot.insert(take()?);
            result = blocking(|| f(conn));
        }
        result
    }

    /// Runs `sql` and returns its rows.
    pub fn query(&self, sql: &str, params: impl Params) -> DbResult<Vec<Row>> {
        let values = checked(params)?;
        if let Some(sqlite) = self.sqlite() {
            let mut stmt = sqlite.conn.prepare_cached(sql)?;
            let columns = sqlite.columns(sql, &stmt);
            let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let values = (0..columns.len())
                    .map(|i| row.get_ref(i).map(Value::from))
                    .collect::<Result<_, _>>()?;
                out.push(Row { columns: Arc::clone(&columns), values, next: Cell::new(0) });
            }
            return Ok(out);
        }
        self.on_pg(|pg| {
            let (statement, columns) = pg.statement(sql)?;
            let params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let rows = pg.client()?.query(&statement, &params)?;
            rows.iter().map(|row| pg_row(row, &columns)).collect()
        })
    }

    /// Runs `sql` and returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> DbResult<usize> {
        let values = checked(params)?;
        if let Some(conn) = self.sqlite() {
            let mut stmt = conn.conn.prepare_cached(sql)?;
            return Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?);
        }
        self.on_pg(|pg| {
            let (statement, _) = pg.statement(sql)?;
            let params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let changed = pg.client()?.execute(&statement, &params)?;
            Ok(usize::try_from(changed).unwrap_or(usize::MAX))
        })
    }

    fn on_pg<T: Send>(&self, f: impl Fn(&mut PgConn) -> DbResult<T> + Send + Sync) -> DbResult<T> {
        match &self.inner {
            Inner::Postgres { pool, taken } => Self::with_pg(pool, taken, f),
            _ => Err(DbError::Unavailable("not a PostgreSQL connection".into())),
        }
    }

    /// The first row of `sql`, mapped by `f`; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        let rows = self.query(sql, params)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// Several statements without parameters (migrations).
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        if let Some(conn) = self.sqlite() {
            return Ok(conn.conn.execute_batch(sql)?);
        }
        self.on_pg(|pg| Ok(pg.client()?.batch_execute(sql)?))
    }

    /// A statement to run (once or several times). Statements are cached per connection.
    pub fn prepare_cached(&self, sql: &str) -> DbResult<Statement<'_, 'a>> {
        Ok(Statement { conn: self, sql: sql.to_owned() })
    }

    /// As [`Connection::prepare_cached`].
    pub fn prepare(&self, sql: &str) -> DbResult<Statement<'_, 'a>> {
        self.prepare_cached(sql)
    }

    /// Begins a write transaction; it rolls back unless committed. On PostgreSQL it first takes
    /// the advisory lock all writers share.
    pub fn transaction(&self) -> DbResult<Transaction<'_, 'a>> {
        if let Some(conn) = self.sqlite() {
            conn.conn.execute_batch("BEGIN IMMEDIATE")?;
        } else {
            self.on_pg(|pg| {
                pg.begin(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
            })?;
        }
        Ok(Transaction { conn: self, done: false })
    }

    /// Begins a read-only transaction, so that the several statements of one read see one
    /// state of the database.
    pub fn snapshot(&self) -> DbResult<Transaction<'_, 'a>> {
        if let Some(conn) = self.sqlite() {
            conn.conn.execute_batch("BEGIN DEFERRED")?;
        } else {
            self.on_pg(|pg| pg.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))?;
        }
        Ok(Transaction { conn: self, done: false })
    }
}

/// The parameters' values, refusing text with NUL (see [`DbError::NulInText`]).
fn checked(params: impl Params) -> DbResult<Vec<Value>> {
    let values = params.values();
    if values.iter().any(|v| matches!(v, Value::Text(text) if text.contains('\0'))) {
        return Err(DbError::NulInText);
    }
    Ok(values)
}

/// Whether `error` says the server ended the connection before running the statement: it was
/// closed before the statement was sent, or the server reports shutting the session down
/// (SQLSTATE 57P01-57P03), which rolls back whatever was in progress.
fn server_ended_it(error: &DbError) -> bool {
    let DbError::Postgres(error) = error else { return false };
    error.is_closed()
        || error.code().is_some_and(|code| matches!(code.code(), "57P01" | "57P02" | "57P03"))
}

/// The advisory lock every PostgreSQL write transaction holds ("cust" in ASCII).
const WRITE_LOCK: i64 = 0x6375_7374;

/// A statement bound to its connection.
pub struct Statement<'c, 'a> {
    conn: &'c Connection<'a>,
    sql: String,
}

impl Statement<'_, '_> {
    pub fn execute(&mut self, params: impl Params) -> DbResult<usize> {
        self.conn.execute(&self.sql, params)
    }

    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        self.conn.query_row(&self.sql, params, f)
    }

    /// Whether the statement returns a row.
    pub fn exists(&mut self, params: impl Params) -> DbResult<bool> {
        Ok(!self.conn.query(&self.sql, params)?.is_empty())
    }

    /// Every row, mapped by `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>> {
        let rows = self.conn.query(&self.sql, params)?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }
}

/// A transaction; rolled back on drop unless [`Transaction::commit`]ted.
pub struct Transaction<'c, 'a> {
    conn: &'c Connection<'a>,
    done: bool,
}

impl<'a> std::ops::Deref for Transaction<'_, 'a> {
    type Target = Connection<'a>;

    fn deref(&self) -> &Self::Target {
        self.conn
    }
}

impl Transaction<'_, '_> {
    pub fn commit(mut self) -> DbResult<()> {
        self.done = true;
        self.end("COMMIT")
    }

    /// Runs `COMMIT` or `ROLLBACK`. Only when it succeeds is a PostgreSQL connection out of its
    /// transaction: one that failed stays marked, so the pool discards it instead of handing it
    /// out again.
    fn end(&self, sql: &str) -> DbResult<()> {
        self.conn.execute_batch(sql)?;
        if let Inner::Postgres { taken, .. } = &self.conn.inner
            && let Some(pg) = taken.borrow_mut().as_mut()
        {
            pg.in_transaction = false;
        }
        Ok(())
    }
}

impl Drop for Transaction<'_, '_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.end("ROLLBACK");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite values.

impl From<rusqlite::types::ValueRef<'_>> for Value {
    fn from(value: rusqlite::types::ValueRef<'_>) -> Self {
        use rusqlite::types::ValueRef;
        match value {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Integer(i),
            // The schema stores no floats; a REAL can only come from an expression, and whole
            // numbers are what the store reads.
            #[allow(clippy::cast_possible_truncation)]
            ValueRef::Real(f) => Self::Integer(f as i64),
            ValueRef::Text(bytes) => Self::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(bytes) => Self::Blob(bytes.to_vec()),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Integer(i) => ValueRef::Integer(*i),
            Self::Text(text) => ValueRef::Text(text.as_bytes()),
            Self::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: values, connections and the pool.

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Self::Text(text) if <&str as ToSql>::accepts(ty) => text.as_str().to_sql(ty, out),
            Self::Text(_) => Err(format!("text cannot be sent as {ty}").into()),
            Self::Blob(bytes) if <&[u8] as ToSql>::accepts(ty) => bytes.as_slice().to_sql(ty, out),
            Self::Blob(_) => Err(format!("bytes cannot be sent as {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, where both the value and the type are known.
        true
    }

    to_sql_checked!();
}

fn pg_row(row: &postgres::Row, columns: &Columns) -> DbResult<Row> {
    let decode = |column: usize, error: postgres::Error| DbError::Decode {
        column: columns[column].to_string(),
        message: error.to_string(),
    };
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Integer)),
            Type::INT4 => {
                row.try_get::<_, Option<i32>>(i).map(|v| v.map(|v| Value::Integer(v.into())))
            }
            Type::INT2 => {
                row.try_get::<_, Option<i16>>(i).map(|v| v.map(|v| Value::Integer(v.into())))
            }
            Type::BOOL => {
                row.try_get::<_, Option<bool>>(i).map(|v| v.map(|v| Value::Integer(v.into())))
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i).map(|v| v.map(Value::Blob)),
            ref ty if <String as postgres::types::FromSql>::accepts(ty) => {
                row.try_get::<_, Option<String>>(i).map(|v| v.map(Value::Text))
            }
            ref ty => {
                return Err(DbError::Decode {
                    column: column.name().to_owned(),
                    message: format!("the store reads no columns of type {ty}"),
                });
            }
        }
        .map_err(|error| decode(i, error))?;
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row { columns: Arc::clone(columns), values, next: Cell::new(0) })
}

/// `?1`, `?2`… → `$1`, `$2`…, outside quoted literals and identifiers.
pub(crate) fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '?') => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_literals() {
        assert_eq!(
            postgres_placeholders("SELECT '?1', \"a?b\" FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', \"a?b\" FROM t WHERE a = $1 AND b = $12"
        );
        assert_eq!(postgres_placeholders("x LIKE ?2 ESCAPE '\\'"), "x LIKE $2 ESCAPE '\\'");
    }

    #[test]
    fn values_read_back_as_their_types() {
        let columns = ["n", "none", "text", "bytes"].map(Box::from);
        let row = Row {
            next: Cell::new(0),
            columns: Arc::new(columns),
            values: vec![
                Value::Integer(7),
                Value::Null,
                Value::Text("a".into()),
                Value::Blob(vec![1]),
            ],
        };
        assert_eq!(row.get::<i64>("n").ok(), Some(7));
        assert_eq!(row.get::<u32>("n").ok(), Some(7));
        assert_eq!(row.get::<Option<String>>("none").ok(), Some(None));
        assert_eq!(row.get::<String>("text").ok().as_deref(), Some("a"));
        assert_eq!(row.get::<Vec<u8>>("bytes").ok(), Some(vec![1]));
        let wrong_type = row.get::<String>("n");
        assert!(matches!(&wrong_type, Err(DbError::Decode { column, .. }) if column == "n"));
        let missing = row.get::<i64>("nine").expect_err("no such column").to_string();
        assert!(missing.contains("no such column (it has n, none, text, bytes)"), "{missing}");
    }
}
