//! Schema migrations: one numbered history for both databases, each step written in that
//! database's dialect. SQLite records how many ran in `PRAGMA user_version`, PostgreSQL in the
//! table `custory_schema`. Never edit a migration that has shipped: add a new one, to both lists.

use super::db::Connection;
use super::{StoreError, StoreResult, content};

/// One step of the history: its SQL in each dialect, and what must follow it in Rust (in the
/// same transaction) when the SQL alone cannot fill what it adds.
struct Migration {
    sqlite: &'static str,
    postgres: &'static str,
    then: Option<fn(&Connection) -> StoreResult<()>>,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        sqlite: include_str!("migrations/sqlite/0001_init.sql"),
        postgres: include_str!("migrations/postgres/0001_init.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0002_search_and_order.sql"),
        postgres: include_str!("migrations/postgres/0002_search_and_order.sql"),
        then: Some(index_what_exists),
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0003_model.sql"),
        postgres: include_str!("migrations/postgres/0003_model.sql"),
        then: Some(reindex),
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0004_recent_changes.sql"),
        postgres: include_str!("migrations/postgres/0004_recent_changes.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0005_oauth.sql"),
        postgres: include_str!("migrations/postgres/0005_oauth.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0006_activity.sql"),
        postgres: include_str!("migrations/postgres/0006_activity.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0007_staged_imports.sql"),
        postgres: include_str!("migrations/postgres/0007_staged_imports.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0008_members.sql"),
        postgres: include_str!("migrations/postgres/0008_members.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0009_key_scopes.sql"),
        postgres: include_str!("migrations/postgres/0009_key_scopes.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0010_key_prefix_index.sql"),
        postgres: include_str!("migrations/postgres/0010_key_prefix_index.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0011_invitations_withdrawn.sql"),
        postgres: include_str!("migrations/postgres/0011_invitations_withdrawn.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0012_webhooks.sql"),
        postgres: include_str!("migrations/postgres/0012_webhooks.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0013_workspace_policies.sql"),
        postgres: include_str!("migrations/postgres/0013_workspace_policies.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0014_key_expiry_notices.sql"),
        postgres: include_str!("migrations/postgres/0014_key_expiry_notices.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0015_ranked_search_and_key_lists.sql"),
        postgres: include_str!("migrations/postgres/0015_ranked_search_and_key_lists.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0016_audit_sinks.sql"),
        postgres: include_str!("migrations/postgres/0016_audit_sinks.sql"),
        then: None,
    },
    Migration {
        sqlite: include_str!("migrations/sqlite/0017_webhook_outbox_bounds.sql"),
        postgres: include_str!("migrations/postgres/0017_webhook_outbox_bounds.sql"),
        then: None,
    },
];

/// The schema version this build writes: how many migrations it knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// 0002: the search index and the map order, for what the database already holds.
fn index_what_exists(conn: &Connection) -> StoreResult<()> {
    content::derive_all(conn)
}

/// 0003: the search index again, with the new filter words (priority, impact, effort,
/// archived).
fn reindex(conn: &Connection) -> StoreResult<()> {
    content::rebuild_search(conn)
}

/// How many migrations `conn`'s database has run (0 for a new PostgreSQL database).
pub(super) fn version(conn: &Connection) -> StoreResult<i64> {
    if conn.is_postgres() {
        let exists: i64 = conn.query_row(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'custory_schema'",
            [],
            |row| row.get("n"),
        )?;
        if exists == 0 {
            return Ok(0);
        }
        Ok(conn.query_row("SELECT version FROM custory_schema", [], |row| row.get("version"))?)
    } else {
        Ok(conn.query_row("PRAGMA user_version", [], |row| row.get("user_version"))?)
    }
}

/// Runs the steps `conn`'s database has not run yet. A database written by a newer build is
/// refused ([`StoreError::Invalid`]) and left as it is.
pub(super) fn run(conn: &Connection) -> StoreResult<()> {
    let (postgres, done) = if conn.is_postgres() {
        // The write lock taken by every transaction also makes replicas that start together
        // migrate one after the other.
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS custory_schema (version BIGINT NOT NULL);
             INSERT INTO custory_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM custory_schema);",
        )?;
        let done: i64 =
            tx.query_row("SELECT version FROM custory_schema", [], |row| row.get("version"))?;
        tx.commit()?;
        (true, done)
    } else {
        let done: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get("user_version"))?;
        (false, done)
    };
    let migrations = MIGRATIONS;
    let done = usize::try_from(done).unwrap_or(usize::MAX);
    if done > migrations.len() {
        return Err(StoreError::Invalid(format!(
            "the database was written by a newer custory-mcp (schema version {done}, this build \
             knows {})",
            migrations.len()
        )));
    }
    for (index, migration) in migrations.iter().enumerate().skip(done) {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let tx = conn.transaction()?;
        if postgres {
            // Another replica may have run this step while we waited for the lock.
            let now: i64 =
                tx.query_row("SELECT version FROM custory_schema", [], |row| row.get("version"))?;
            if now >= version {
                continue;
            }
            // A migration may rewrite a large table: the statement limit is for requests.
            tx.execute_batch("SET LOCAL statement_timeout = 0")?;
            tx.execute_batch(migration.postgres)?;
            tx.execute("UPDATE custory_schema SET version = ?1", [version])?;
        } else {
            tx.execute_batch(migration.sqlite)?;
            tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        }
        if let Some(then) = migration.then {
            then(&tx)?;
        }
        tx.commit()?;
    }
    Ok(())
}
