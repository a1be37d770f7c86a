//! The demo workspace a new database starts with, so the MCP tools have real context to serve.

use super::{Store, StoreResult};

impl Store {
    /// Creates the `acme` demo workspace with a sample journey. Runs once, on a new database.
    pub(crate) fn seed_demo(&self) -> StoreResult<()> {
        let conn = self.conn();
        let now = self.now().timestamp();
        conn.execute(
            "INSERT INTO workspaces (slug, name, created_at) VALUES ('acme', 'Acme Analytics', ?1)",
            [now],
        )?;
        Ok(())
    }
}
