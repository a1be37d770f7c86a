//! Where the data lives: a SQLite file or a PostgreSQL URL, as `--database` names it.

use std::path::PathBuf;

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
            super::db::tls::parse(value)
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

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, and the same for a
/// `password` query parameter.
fn redact_password(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        // Not a URL at all: nothing of it can be shown safely.
        return "(a PostgreSQL URL that could not be read)".to_owned();
    };
    if url.password().is_some() {
        // Only fails for URLs without a host, which `password()` already ruled out.
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(name, _)| name == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == "password" { "***".into() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
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
