//! Schema migrations: one numbered history for both databases, each step written in that
//! database's dialect. SQLite records how many ran in `PRAGMA user_version`, PostgreSQL in the
//! table `custory_schema`. Never edit a migration that has shipped: add a new one, to both lists.

use super::db::Connection;
use super::{StoreError, StoreResult};

const SQLITE: &[&str] = &[include_str!("migrations/sqlite/0001_init.sql")];
const POSTGRES: &[&str] = &[include_str!("migrations/postgres/0001_init.sql")];

/// Runs the steps `conn`'s database has not run yet. A database written by a newer build is
/// refused ([`StoreError::Invalid`]) and left as it is.
pub(super) fn run(conn: &Connection) -> StoreResult<()> {
    let (migrations, done) = if conn.is_postgres() {
        // The write lock taken by every transaction also makes replicas that start together
        // migrate one after the other.
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS custory_schema (version BIGINT NOT NULL);
             INSERT INTO custory_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM custory_schema);",
        )?;
        let done: i64 = tx.query_row("SELECT version FROM custory_schema", [], |row| row.get(0))?;
        tx.commit()?;
        (POSTGRES, done)
    } else {
        let done: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        (SQLITE, done)
    };
    let done = usize::try_from(done).unwrap_or(usize::MAX);
    if done > migrations.len() {
        return Err(StoreError::Invalid(format!(
            "the database was written by a newer custory-mcp (schema version {done}, this build \
             knows {})",
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
            // A migration may rewrite a large table: the statement limit is for requests.
            tx.execute_batch("SET LOCAL statement_timeout = 0")?;
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
