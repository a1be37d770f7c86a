//! Text search over the workspace: items, steps, stages and personas.

use super::db::{ToValue, Value as DbValue};
use super::model::{HitType, SearchHit};
use super::reads::text_enum;
use super::validate::clamp_limit;
use super::{Store, StoreError, StoreResult};

const QUERY_MAX: usize = 200;
const QUERY_TERMS_MAX: usize = 8;
const SNIPPET_CHARS: usize = 160;
const SEARCH_LIMIT: (u32, u32) = (20, 100);

impl Store {
    /// Case-insensitive text search; every word of `query` must match. Items come first, then
    /// steps, stages and personas; hits whose title matches rank above the rest.
    pub fn search(
        &self,
        workspace_id: i64,
        query: &str,
        limit: Option<u32>,
    ) -> StoreResult<Vec<SearchHit>> {
        let query = query.trim();
        if query.chars().count() > QUERY_MAX {
            return Err(StoreError::Invalid(format!(
                "the search query is too long (at most {QUERY_MAX} characters); use a few words"
            )));
        }
        let terms: Vec<&str> = query.split_whitespace().take(QUERY_TERMS_MAX).collect();
        if terms.is_empty() {
            return Err(StoreError::Invalid(
                "the search query is empty; give one or more words to look for".into(),
            ));
        }
        let patterns: Vec<String> =
            terms.iter().map(|t| format!("%{}%", escape_like(&t.to_lowercase()))).collect();
        let limit = clamp_limit(limit, SEARCH_LIMIT);
        let mut values = vec![DbValue::Integer(workspace_id), DbValue::Integer(limit.into())];
        values.extend(patterns.into_iter().map(DbValue::Text));
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&search_sql(terms.len()))?;
        let values: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
        let rows = stmt.query_map(values.as_slice(), |row| {
            let body: String = row.get(3)?;
            Ok(SearchHit {
                hit_type: text_enum(row, 0, HitType::parse)?,
                id: row.get(1)?,
                title: row.get(2)?,
                snippet: snippet(&body, &terms),
                context: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The search over items, steps, stages and personas for `terms` words: `?1` workspace, `?2`
/// limit, `?3`… one lowercased, escaped LIKE pattern per word. Every word must match the title,
/// role or description; hits with more words in the title come first. Both databases run it:
/// `lower()` on both sides makes the match case-insensitive (ASCII on SQLite, all of Unicode on
/// PostgreSQL).
fn search_sql(terms: usize) -> String {
    let patterns = || (0..terms).map(|t| format!("?{}", t + 3));
    let every_word: Vec<String> = patterns()
        .map(|p| format!("lower(title || '\n' || extra || '\n' || body) LIKE {p} ESCAPE '\\'"))
        .collect();
    let title_misses: Vec<String> = patterns()
        .map(|p| format!("CASE WHEN lower(title) LIKE {p} ESCAPE '\\' THEN 0 ELSE 1 END"))
        .collect();
    format!(
        r"
WITH docs (type, rank, id, title, body, extra, context) AS (
    SELECT 'item', 0, i.id, i.title, i.description, '', j.name || ' › ' || s.name || ' › ' || st.name
    FROM items i JOIN steps st ON st.id = i.step_id JOIN stages s ON s.id = st.stage_id
    JOIN journeys j ON j.id = s.journey_id WHERE i.workspace_id = ?1
    UNION ALL
    SELECT 'step', 1, st.id, st.name, st.description, '', j.name || ' › ' || s.name
    FROM steps st JOIN stages s ON s.id = st.stage_id JOIN journeys j ON j.id = s.journey_id
    WHERE st.workspace_id = ?1
    UNION ALL
    SELECT 'stage', 2, s.id, s.name, s.description, '', j.name
    FROM stages s JOIN journeys j ON j.id = s.journey_id WHERE s.workspace_id = ?1
    UNION ALL
    SELECT 'persona', 3, p.id, p.name, p.bio, p.role, p.role FROM personas p WHERE p.workspace_id = ?1
)
SELECT type, id, title, body, context FROM docs
WHERE {}
ORDER BY {}, rank, title
LIMIT ?2",
        every_word.join(" AND "),
        title_misses.join(" + ")
    )
}

/// `term` with LIKE's wildcards (and the escape character) escaped for `ESCAPE '\'`.
fn escape_like(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// About [`SNIPPET_CHARS`] characters of `text` around the first of `terms` it contains (its
/// start when it contains none), whitespace collapsed, `…` where cut.
fn snippet(text: &str, terms: &[&str]) -> String {
    // ASCII lowercasing keeps byte offsets, and matches SQLite's case-insensitive LIKE.
    let haystack = text.to_ascii_lowercase();
    let first = terms.iter().filter_map(|t| haystack.find(&t.to_ascii_lowercase())).min();
    let at_char = first.map_or(0, |byte| text[..byte].chars().count());
    let start = at_char.saturating_sub(SNIPPET_CHARS / 3);
    let total = text.chars().count();
    let window: String = text.chars().skip(start).take(SNIPPET_CHARS).collect();
    let mut snippet = window.split_whitespace().collect::<Vec<_>>().join(" ");
    if start > 0 {
        snippet.insert(0, '…');
    }
    if start + SNIPPET_CHARS < total {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::snippet;

    #[test]
    fn snippet_centres_on_the_match() {
        let text = format!("{} needle {}", "word ".repeat(60), "tail ".repeat(60));
        let s = snippet(&text, &["NEEDLE"]);
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("needle"), "{s}");
        assert_eq!(snippet("short  text", &["x"]), "short text");
    }
}
