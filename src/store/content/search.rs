//! Full-text search over everything in a workspace: items, comments, steps, stages, journeys
//! and personas.
//!
//! Both databases index the same words, chosen here and nowhere else: text is folded
//! (compatibility decomposition, accents dropped, lowercased) and split on everything that is
//! not a letter or a digit, and a query's words are folded the same way. Each word must match,
//! as a word or (from four letters on) the start of one.
//!
//! Every indexed word carries its workspace (`42_onboarding`), so a search reads only its own
//! workspace's part of the index, and ranks by how rare a word is *there*. Filters are words of
//! their own field (`j<journey>`, `t<type>`, `k<kind>`, `s<status>`), so the index applies them
//! inside the search:
//!
//! - SQLite: an FTS5 table without a copy of the text or per-row sizes (`search_fts`), ranked
//!   by bm25 with the title weighing ten times the body (and, without sizes, not by length).
//! - PostgreSQL: a `tsvector` per document, written here word by word (PostgreSQL's own parser
//!   never sees the text), filter words weighted C, title A, body D; a GIN index; ranked by
//!   `ts_rank` with the same ten-to-one weights.
//!
//! This is the one place where the two databases need different SQL. Every write that changes
//! searchable text calls [`index`] (or [`unindex`]) in its own transaction, so the index never
//! disagrees with what a read returns. Hits are shown from the rows themselves: titles, snippets
//! and context are read for the page of hits only.

use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

use super::ContentStore;
use super::model::{HitType, ItemKind, SearchHit, SearchQuery, SearchResults, per_kind_text};
use super::reads::{find_journey, item_properties};
use super::validate::{clamp_limit, non_empty};
use crate::store::db::{Connection, OptionalExtension as _, params};
use crate::store::page::{Cursor, fingerprint};
use crate::store::{StoreError, StoreResult};

const QUERY_MAX: usize = 200;
const QUERY_WORDS_MAX: usize = 8;
const SNIPPET_CHARS: usize = 160;
const SEARCH_LIMIT: (u32, u32) = (20, 100);
/// How deep paging may go: past this, narrowing the query serves better than reading on.
const OFFSET_MAX: i64 = 1_000;

/// Query words shorter than this match whole words only (a one-letter prefix would match most
/// of the index).
const PREFIX_FROM: usize = 4;
/// PostgreSQL ranks at most twice this many matches (see `search`): every hit paging can reach
/// (past [`OFFSET_MAX`] it stops), and one more to tell whether there is a next page.
const RANKED_CANDIDATES: i64 = OFFSET_MAX + SEARCH_LIMIT.1 as i64 + 1;
/// Longer words are indexed by their first this many characters.
const WORD_CHARS: usize = 60;

/// `text`'s words as the index holds them.
pub(super) fn words(text: &str) -> Vec<String> {
    let folded: String =
        text.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(WORD_CHARS).collect())
        .collect()
}

/// The index's form of `word` in workspace `workspace_id`.
fn qualified(workspace_id: i64, word: &str) -> String {
    format!("{workspace_id}_{word}")
}

fn qualified_text(workspace_id: i64, text: &str) -> Vec<String> {
    words(text).iter().map(|w| qualified(workspace_id, w)).collect()
}

fn status_word(status: &str) -> String {
    format!("s{}", words(status).concat())
}

/// The filter word of priority, impact and effort: their letter and value (`pp1`, `ihigh`).
const PROPERTY_LETTERS: [char; 3] = ['p', 'i', 'e'];

fn property_word(letter: char, value: &str) -> String {
    format!("{letter}{}", words(value).concat())
}

/// One searchable thing, as it goes into the index.
pub(super) struct Doc<'a> {
    pub workspace_id: i64,
    pub doc_type: HitType,
    pub ref_id: &'a str,
    /// The journey's row number, for the journey filter (`None` for personas).
    pub journey: Option<i64>,
    /// For items: kind and status, for their filters.
    pub item: Option<(ItemKind, &'a str)>,
    /// For items: priority, impact and effort, for their filters.
    pub properties: [Option<&'a str>; 3],
    /// Whether it is out of the reads (it or what it sits in is archived): its document is
    /// then in `hidden_docs`, which searches leave out unless asked.
    pub hidden: bool,
    pub title: &'a str,
    pub body: &'a str,
}

impl Doc<'_> {
    /// The filter words.
    fn scope(&self) -> Vec<String> {
        let mut scope = vec![format!("t{}", self.doc_type.as_str())];
        if let Some(journey) = self.journey {
            scope.push(format!("j{journey}"));
        }
        if let Some((kind, status)) = self.item {
            scope.push(format!("k{kind}"));
            scope.push(status_word(status));
        }
        for (letter, value) in PROPERTY_LETTERS.iter().zip(self.properties) {
            if let Some(value) = value {
                scope.push(property_word(*letter, value));
            }
        }
        scope
    }
}

/// A `tsvector` in PostgreSQL's text form: each word with its positions and weight (title A,
/// body D, filters C), in order, as the SQLite index numbers them.
fn tsvector(parts: [(&[String], char); 3]) -> String {
    // PostgreSQL keeps positions up to 16383 and 256 of them per word.
    const LAST_POSITION: usize = 16_383;
    const POSITIONS_PER_WORD: usize = 255;
    let mut positions: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    let mut at = 0;
    for (words, weight) in parts {
        for word in words {
            at = (at + 1).min(LAST_POSITION);
            let list = positions.entry(word).or_default();
            if list.len() < POSITIONS_PER_WORD {
                list.push(format!("{at}{weight}"));
            }
        }
    }
    let entries: Vec<String> =
        positions.into_iter().map(|(word, at)| format!("'{word}':{}", at.join(","))).collect();
    entries.join(" ")
}

/// Puts `doc` into the index, replacing what it held for the same thing.
pub(super) fn index(conn: &Connection, doc: &Doc<'_>) -> StoreResult<()> {
    let scope = doc.scope();
    let title = qualified_text(doc.workspace_id, doc.title);
    let body = qualified_text(doc.workspace_id, doc.body);
    if conn.is_postgres() {
        let words = tsvector([(&title, 'A'), (&body, 'D'), (&scope, 'C')]);
        let doc_id: i64 = conn.query_row(
            "INSERT INTO search_docs (workspace_id, doc_type, ref_id, words)
             VALUES (?1, ?2, ?3, CAST(CAST(?4 AS TEXT) AS tsvector))
             ON CONFLICT (ref_id) DO UPDATE SET words = excluded.words RETURNING doc_id",
            params![doc.workspace_id, doc.doc_type.as_str(), doc.ref_id, words],
            |row| row.get("doc_id"),
        )?;
        conn.execute("DELETE FROM hidden_docs WHERE doc_id = ?1", [doc_id])?;
        return mark_hidden(conn, doc, doc_id);
    }
    let (scope, title, body) = (scope.join(" "), title.join(" "), body.join(" "));
    forget(conn, doc.ref_id)?;
    let doc_id: i64 = conn.query_row(
        "INSERT INTO search_docs (workspace_id, doc_type, ref_id, scope_words, title_words,
                                  body_words)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING doc_id",
        params![doc.workspace_id, doc.doc_type.as_str(), doc.ref_id, scope, title, body],
        |row| row.get("doc_id"),
    )?;
    conn.execute(
        "INSERT INTO search_fts (rowid, scope, title, body) VALUES (?1, ?2, ?3, ?4)",
        params![doc_id, scope, title, body],
    )?;
    mark_hidden(conn, doc, doc_id)
}

fn mark_hidden(conn: &Connection, doc: &Doc<'_>, doc_id: i64) -> StoreResult<()> {
    if doc.hidden {
        conn.prepare_cached("INSERT INTO hidden_docs (doc_id, workspace_id) VALUES (?1, ?2)")?
            .execute(params![doc_id, doc.workspace_id])?;
    }
    Ok(())
}

/// Takes the thing with id `ref_id` out of the index.
pub(super) fn unindex(conn: &Connection, ref_id: &str) -> StoreResult<()> {
    if conn.is_postgres() {
        conn.execute(
            "DELETE FROM hidden_docs WHERE doc_id IN (SELECT doc_id FROM search_docs
                                                      WHERE ref_id = ?1)",
            [ref_id],
        )?;
        conn.execute("DELETE FROM search_docs WHERE ref_id = ?1", [ref_id])?;
        Ok(())
    } else {
        forget(conn, ref_id)
    }
}

/// SQLite: removes `ref_id`'s words from the FTS5 index (a contentless table is told which
/// words a row had) and its row from `search_docs`.
fn forget(conn: &Connection, ref_id: &str) -> StoreResult<()> {
    let old = conn
        .query_row(
            "SELECT doc_id, scope_words, title_words, body_words FROM search_docs
             WHERE ref_id = ?1",
            [ref_id],
            |row| {
                Ok((
                    row.get::<i64>("doc_id")?,
                    row.get::<String>("scope_words")?,
                    row.get::<String>("title_words")?,
                    row.get::<String>("body_words")?,
                ))
            },
        )
        .optional()?;
    if let Some((doc_id, scope, title, body)) = old {
        conn.execute(
            "INSERT INTO search_fts (search_fts, rowid, scope, title, body)
             VALUES ('delete', ?1, ?2, ?3, ?4)",
            params![doc_id, scope, title, body],
        )?;
        conn.execute("DELETE FROM search_docs WHERE doc_id = ?1", [doc_id])?;
        conn.prepare_cached("DELETE FROM hidden_docs WHERE doc_id = ?1")?.execute([doc_id])?;
    }
    Ok(())
}

/// Marks the search documents of the things `things` selects (`SELECT id, hidden` of items,
/// comments, steps, stages or journeys; `?1` is `id`) hidden or not, as each says: the set-based
/// way for archive and restore, which change no text and so no words.
pub(super) fn set_hidden(
    conn: &Connection,
    workspace_id: i64,
    things: &str,
    id: &str,
) -> StoreResult<()> {
    conn.execute(
        &format!(
            "DELETE FROM hidden_docs WHERE doc_id IN (
                 SELECT d.doc_id FROM ({things}) t JOIN search_docs d ON d.ref_id = t.id)"
        ),
        [id],
    )?;
    conn.execute(
        &format!(
            "INSERT INTO hidden_docs (doc_id, workspace_id)
             SELECT d.doc_id, ?2 FROM ({things}) t JOIN search_docs d ON d.ref_id = t.id
             WHERE t.hidden = 1"
        ),
        params![id, workspace_id],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Indexing each kind of thing from its row.

/// (Re)indexes item `id`.
pub(super) fn index_item(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let row = conn
        .query_row(
            "SELECT i.title, i.description, i.owner, i.fields, i.kind, i.status,
                    j.rowid AS journey_row,
                    i.priority, i.impact, i.effort, i.hidden
             FROM items i JOIN steps st ON st.id = i.step_id JOIN stages s ON s.id = st.stage_id
             JOIN journeys j ON j.id = s.journey_id WHERE i.workspace_id = ?1 AND i.id = ?2",
            params![workspace_id, id],
            |row| {
                Ok((
                    row.get::<String>("title")?,
                    row.get::<String>("description")?,
                    row.get::<Option<String>>("owner")?,
                    row.get::<String>("fields")?,
                    row.get::<String>("kind")?,
                    row.get::<String>("status")?,
                    row.get::<i64>("journey_row")?,
                    [
                        row.get::<Option<String>>("priority")?,
                        row.get("impact")?,
                        row.get("effort")?,
                    ],
                    row.get::<i64>("hidden")? != 0,
                ))
            },
        )
        .optional()?;
    let Some((title, description, owner, fields, kind, status, journey, properties, hidden)) = row
    else {
        return unindex(conn, id);
    };
    // The body: the description, the owner and the text of the kind-specific fields.
    let mut body = description;
    body.extend(owner.map(|o| format!("\n{o}")));
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&fields) {
        for value in fields.values() {
            match value {
                serde_json::Value::String(text) => body.push_str(&format!("\n{text}")),
                other => body.push_str(&format!("\n{other}")),
            }
        }
    }
    let kind = ItemKind::parse(&kind).unwrap_or(ItemKind::Insight);
    index(
        conn,
        &Doc {
            workspace_id,
            doc_type: HitType::Item,
            ref_id: id,
            journey: Some(journey),
            item: Some((kind, &status)),
            properties: properties.each_ref().map(Option::as_deref),
            hidden,
            title: &title,
            body: &body,
        },
    )
}

/// (Re)indexes comment `id`.
pub(super) fn index_comment(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let row = conn
        .query_row(
            "SELECT c.author, c.body, j.rowid AS journey_row, i.hidden
             FROM comments c JOIN items i ON i.id = c.item_id
             JOIN steps st ON st.id = i.step_id JOIN stages s ON s.id = st.stage_id
             JOIN journeys j ON j.id = s.journey_id WHERE c.workspace_id = ?1 AND c.id = ?2",
            params![workspace_id, id],
            |row| {
                Ok((
                    row.get::<String>("author")?,
                    row.get::<String>("body")?,
                    row.get::<i64>("journey_row")?,
                    row.get::<i64>("hidden")? != 0,
                ))
            },
        )
        .optional()?;
    let Some((author, body, journey, hidden)) = row else { return unindex(conn, id) };
    let doc = Doc {
        workspace_id,
        doc_type: HitType::Comment,
        ref_id: id,
        journey: Some(journey),
        item: None,
        properties: [None; 3],
        hidden,
        title: &author,
        body: &body,
    };
    index(conn, &doc)
}

/// (Re)indexes step `id`.
pub(super) fn index_step(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    index_node(
        conn,
        workspace_id,
        id,
        HitType::Step,
        "SELECT st.name, st.description, j.rowid AS journey_row, st.hidden
         FROM steps st JOIN stages s ON s.id = st.stage_id
         JOIN journeys j ON j.id = s.journey_id WHERE st.workspace_id = ?1 AND st.id = ?2",
    )
}

/// (Re)indexes stage `id`.
pub(super) fn index_stage(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    index_node(
        conn,
        workspace_id,
        id,
        HitType::Stage,
        "SELECT s.name, s.description, j.rowid AS journey_row,
                CASE WHEN s.archived_at IS NULL AND j.archived_at IS NULL THEN 0 ELSE 1 END AS hidden
         FROM stages s JOIN journeys j ON j.id = s.journey_id
         WHERE s.workspace_id = ?1 AND s.id = ?2",
    )
}

/// (Re)indexes journey `id`.
pub(super) fn index_journey(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    index_node(
        conn,
        workspace_id,
        id,
        HitType::Journey,
        "SELECT name, description, rowid AS journey_row,
                CASE WHEN archived_at IS NULL THEN 0 ELSE 1 END AS hidden
         FROM journeys WHERE workspace_id = ?1 AND id = ?2",
    )
}

/// A journey, stage or step: `sql` reads its name, description, journey row number and
/// whether it is hidden (0 or 1).
fn index_node(
    conn: &Connection,
    workspace_id: i64,
    id: &str,
    doc_type: HitType,
    sql: &str,
) -> StoreResult<()> {
    let row = conn
        .query_row(sql, params![workspace_id, id], |row| {
            Ok((
                row.get::<String>("name")?,
                row.get::<String>("description")?,
                row.get::<i64>("journey_row")?,
                row.get::<i64>("hidden")? != 0,
            ))
        })
        .optional()?;
    let Some((name, description, journey, hidden)) = row else { return unindex(conn, id) };
    let doc = Doc {
        workspace_id,
        doc_type,
        ref_id: id,
        journey: Some(journey),
        item: None,
        properties: [None; 3],
        hidden,
        title: &name,
        body: &description,
    };
    index(conn, &doc)
}

/// (Re)indexes persona `id`.
pub(super) fn index_persona(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let row = conn
        .query_row(
            "SELECT name, role, bio, job_to_be_done, goals, frustrations FROM personas
             WHERE workspace_id = ?1 AND id = ?2",
            params![workspace_id, id],
            |row| {
                Ok((
                    row.get::<String>("name")?,
                    [
                        row.get::<String>("role")?,
                        row.get("bio")?,
                        row.get("job_to_be_done")?,
                        row.get("goals")?,
                        row.get("frustrations")?,
                    ],
                ))
            },
        )
        .optional()?;
    let Some((name, parts)) = row else { return unindex(conn, id) };
    let body = parts.join("\n");
    let doc = Doc {
        workspace_id,
        doc_type: HitType::Persona,
        ref_id: id,
        journey: None,
        item: None,
        properties: [None; 3],
        hidden: false,
        title: &name,
        body: &body,
    };
    index(conn, &doc)
}

/// Indexes everything the database holds (a migration that adds the index).
pub(super) fn rebuild(conn: &Connection) -> StoreResult<()> {
    type Indexer = fn(&Connection, i64, &str) -> StoreResult<()>;
    let tables: [(&str, Indexer); 6] = [
        ("journeys", index_journey),
        ("stages", index_stage),
        ("steps", index_step),
        ("items", index_item),
        ("comments", index_comment),
        ("personas", index_persona),
    ];
    for (table, indexer) in tables {
        let rows =
            conn.query(&format!("SELECT workspace_id, id FROM {table} ORDER BY rowid"), [])?;
        for row in rows {
            indexer(conn, row.get("workspace_id")?, &row.get::<String>("id")?)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Searching.

/// One page of hits for `search`, best first.
pub(super) fn search(
    s: &ContentStore<'_>,
    workspace_id: i64,
    search: &SearchQuery,
) -> StoreResult<SearchResults> {
    let query = search.query.trim();
    if query.chars().count() > QUERY_MAX {
        return Err(StoreError::Invalid(format!(
            "the search query is too long (at most {QUERY_MAX} characters); use a few words"
        )));
    }
    let mut terms = words(query);
    terms.dedup();
    terms.truncate(QUERY_WORDS_MAX);
    if terms.is_empty() {
        return Err(StoreError::Invalid(
            "the search query has no words; give one or more words to look for".into(),
        ));
    }
    let status = non_empty(&search.status);
    if let Some(status) = status
        && !ItemKind::ALL.iter().any(|k| k.statuses().contains(&status))
    {
        return Err(StoreError::Invalid(format!(
            "no item can have the status {status:?}; statuses per kind: {}",
            per_kind_text(ItemKind::statuses)
        )));
    }
    let limit = i64::from(clamp_limit(search.limit, SEARCH_LIMIT));
    let reader = s.reader()?;
    let conn = reader.snapshot()?;

    let mut scope = Vec::new();
    let journey = match non_empty(&search.journey) {
        Some(journey) => Some(find_journey(&conn, workspace_id, journey)?),
        None => None,
    };
    if let Some(journey) = &journey {
        let row: i64 =
            conn.query_row("SELECT rowid FROM journeys WHERE id = ?1", [&journey.id], |r| {
                r.get("rowid")
            })?;
        scope.push(format!("j{row}"));
    }
    if let Some(kind) = search.kind {
        scope.push(format!("k{kind}"));
    }
    if let Some(status) = status {
        scope.push(status_word(status));
    }
    let properties = item_properties(&search.priority, &search.impact, &search.effort)?;
    for (column, value) in &properties {
        let letter = match *column {
            "priority" => PROPERTY_LETTERS[0],
            "impact" => PROPERTY_LETTERS[1],
            _ => PROPERTY_LETTERS[2],
        };
        scope.push(property_word(letter, value));
    }
    let include_archived = search.include_archived.unwrap_or(false);

    let kind = search.kind.map(ItemKind::as_str).unwrap_or_default();
    let journey_id = journey.as_ref().map(|j| j.id.as_str()).unwrap_or_default();
    let fingerprint = fingerprint(&[
        &terms.join(" "),
        journey_id,
        kind,
        status.unwrap_or(""),
        &format!("{properties:?} {include_archived}"),
    ]);
    let offset = match non_empty(&search.cursor) {
        Some(text) => Cursor::decode(text, "search", fingerprint, 1)?.position[0],
        None => 0,
    };
    if offset >= OFFSET_MAX {
        return Err(StoreError::Invalid(format!(
            "a search pages through its best {OFFSET_MAX} hits at most; add words or a \
                 filter (journey, kind, status) to narrow it"
        )));
    }

    // Hidden documents are left out one by one, and only when the workspace has some: a
    // workspace with nothing archived pays nothing for it.
    let any_hidden = !include_archived
        && conn
            .prepare_cached("SELECT 1 FROM hidden_docs WHERE workspace_id = ?1 LIMIT 1")?
            .exists([workspace_id])?;
    let unhidden = match (any_hidden, conn.is_postgres()) {
        (false, _) => "",
        (true, true) => {
            "AND NOT EXISTS (SELECT 1 FROM hidden_docs h WHERE h.doc_id = search_docs.doc_id)"
        }
        (true, false) => {
            "AND NOT EXISTS (SELECT 1 FROM hidden_docs h WHERE h.doc_id = search_fts.rowid)"
        }
    };
    // Words and filters are letters, digits and `_` only: nothing a user typed can be read
    // as query syntax by either database.
    let prefix = |t: &String| t.chars().count() >= PREFIX_FROM;
    let found = if conn.is_postgres() {
        let word = |t: &String, weights: &str| {
            let star = if prefix(t) { "*" } else { "" };
            format!("'{}':{star}{weights}", qualified(workspace_id, t))
        };
        let mut query: Vec<String> = terms.iter().map(|t| word(t, "AD")).collect();
        query.extend(scope.iter().map(|s| format!("'{s}':C")));
        let query = query.join(" & ");
        // Any of the words in a title (see `ranked_candidates`).
        let titled: Vec<String> = terms.iter().map(|t| word(t, "")).collect();
        let titled = titled.join(" | ");
        // Ranking reads every candidate's words: a common word's thousands of matches cost
        // a read each. The candidates are bounded instead, to what paging can reach: the
        // documents with a query word in their title first (a title outranks any body), then
        // the oldest matches. Exact whenever fewer than that many documents match.
        // The candidates are found through the full-text indexes only: without a plan that
        // reads the table in order and checks every row, which a bounded match invites.
        conn.execute("SET LOCAL enable_seqscan = off", [])?;
        let found = conn.query(
            &format!(
                "SELECT d.doc_type, d.ref_id FROM search_docs d JOIN (
                     (SELECT doc_id FROM search_docs
                      WHERE ts_filter(words, '{{a}}') @@ CAST(CAST(?3 AS TEXT) AS tsquery)
                        AND words @@ CAST(CAST(?2 AS TEXT) AS tsquery) {unhidden} LIMIT ?6)
                     UNION
                     (SELECT doc_id FROM search_docs
                      WHERE words @@ CAST(CAST(?2 AS TEXT) AS tsquery) {unhidden} LIMIT ?6)
                 ) c ON c.doc_id = d.doc_id
                 WHERE d.workspace_id = ?1
                 ORDER BY ts_rank('{{0.1, 0, 0.4, 1.0}}', d.words, CAST(CAST(?2 AS TEXT) AS tsquery)) DESC,
                          d.doc_id
                 LIMIT ?4 OFFSET ?5"
            ),
            params![workspace_id, query, titled, limit + 1, offset, RANKED_CANDIDATES],
        );
        conn.execute("SET LOCAL enable_seqscan = on", [])?;
        found?
    } else {
        let words: Vec<String> = terms
            .iter()
            .map(|t| {
                let star = if prefix(t) { "*" } else { "" };
                format!("\"{}\"{star}", qualified(workspace_id, t))
            })
            .collect();
        let mut query = format!("{{title body}} : ({})", words.join(" AND "));
        if !scope.is_empty() {
            query.push_str(&format!(" AND scope : ({})", scope.join(" AND ")));
        }
        conn.query(
            &format!(
                "SELECT d.doc_type, d.ref_id FROM (
                     SELECT rowid AS doc_id, bm25(search_fts, 0.0, 10.0, 1.0) AS score
                     FROM search_fts WHERE search_fts MATCH ?1 {unhidden}
                     ORDER BY score, rowid LIMIT ?2 OFFSET ?3) r
                 JOIN search_docs d ON d.doc_id = r.doc_id ORDER BY r.score, r.doc_id"
            ),
            params![query, limit + 1, offset],
        )?
    };
    let more = found.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let mut hits = Vec::new();
    for row in found.iter().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        let Some(doc_type) = HitType::parse(&row.get::<String>("doc_type")?) else { continue };
        if let Some(hit) =
            hit(&conn, workspace_id, doc_type, &row.get::<String>("ref_id")?, &terms)?
        {
            hits.push(hit);
        }
    }
    let next = more.then(|| Cursor::new("search", fingerprint, vec![offset + limit]).encode());
    Ok(SearchResults { hits, next_cursor: next })
}

/// A hit shown from its row (`None` if the row went away meanwhile).
fn hit(
    conn: &Connection,
    workspace_id: i64,
    hit_type: HitType,
    id: &str,
    terms: &[String],
) -> StoreResult<Option<SearchHit>> {
    const PLACE: &str = "JOIN steps st ON st.id = i.step_id JOIN stages s ON s.id = st.stage_id \
                         JOIN journeys j ON j.id = s.journey_id";
    let sql = match hit_type {
        HitType::Item => format!(
            "SELECT i.title, i.description AS body,
                    j.name || ' › ' || s.name || ' › ' || st.name AS context, i.id AS item_id
             FROM items i {PLACE} WHERE i.workspace_id = ?1 AND i.id = ?2"
        ),
        HitType::Comment => format!(
            "SELECT i.title, c.body, j.name || ' › ' || s.name || ' › ' || st.name AS context,
                    i.id AS item_id
             FROM comments c JOIN items i ON i.id = c.item_id {PLACE}
             WHERE c.workspace_id = ?1 AND c.id = ?2"
        ),
        HitType::Step => "SELECT st.name AS title, st.description AS body,
                    j.name || ' › ' || s.name AS context, NULL AS item_id
             FROM steps st JOIN stages s ON s.id = st.stage_id JOIN journeys j ON j.id = s.journey_id
             WHERE st.workspace_id = ?1 AND st.id = ?2"
            .into(),
        HitType::Stage => "SELECT s.name AS title, s.description AS body, j.name AS context,
                    NULL AS item_id
             FROM stages s JOIN journeys j ON j.id = s.journey_id
             WHERE s.workspace_id = ?1 AND s.id = ?2"
            .into(),
        HitType::Journey => "SELECT name AS title, description AS body, '' AS context,
                    NULL AS item_id FROM journeys
             WHERE workspace_id = ?1 AND id = ?2"
            .into(),
        HitType::Persona => "SELECT name AS title, role || '\n' || bio AS body, role AS context,
                    NULL AS item_id FROM personas
             WHERE workspace_id = ?1 AND id = ?2"
            .into(),
    };
    let found = conn
        .query_row(&sql, params![workspace_id, id], |row| {
            let body: String = row.get("body")?;
            Ok(SearchHit {
                hit_type,
                id: id.to_owned(),
                title: row.get("title")?,
                snippet: snippet(&body, terms),
                context: row.get("context")?,
                item_id: row.get("item_id")?,
            })
        })
        .optional()?;
    Ok(found)
}

/// About [`SNIPPET_CHARS`] characters of `text` around the first word that starts with one of
/// `terms` (its start when there is none), whitespace collapsed, `…` where cut.
fn snippet(text: &str, terms: &[String]) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let hit = words.iter().position(|word| {
        self::words(word).iter().any(|w| terms.iter().any(|t| w.starts_with(t.as_str())))
    });
    // Start a third of the window before the match, on a word boundary.
    let mut start = hit.unwrap_or(0);
    let mut before = 0;
    while start > 0 && before + words[start - 1].chars().count() < SNIPPET_CHARS / 3 {
        start -= 1;
        before += words[start].chars().count() + 1;
    }
    let mut snippet = String::new();
    let mut end = start;
    while end < words.len() && snippet.chars().count() + words[end].chars().count() < SNIPPET_CHARS
    {
        if !snippet.is_empty() {
            snippet.push(' ');
        }
        snippet.push_str(words[end]);
        end += 1;
    }
    if snippet.is_empty()
        && let Some(first) = words.get(start)
    {
        // One word longer than the window.
        snippet = first.chars().take(SNIPPET_CHARS).collect();
        end = start + 1;
    }
    if start > 0 {
        snippet.insert(0, '…');
    }
    if end < words.len() {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::{snippet, words};

    #[test]
    fn words_are_folded_and_split_the_same_way_for_text_and_queries() {
        assert_eq!(words("Crème Brûlée, SIGN-UP flow!"), ["creme", "brulee", "sign", "up", "flow"]);
        assert_eq!(words("ﬁle №5 ½"), ["file", "no5", "1", "2"]);
        assert_eq!(words("  "), Vec::<String>::new());
        assert_eq!(words("Straße Ærø"), ["straße", "ærø"]);
    }

    #[test]
    fn snippet_centres_on_the_match() {
        let text = format!("{} needle {}", "word ".repeat(60), "tail ".repeat(60));
        let s = snippet(&text, &["needl".into()]);
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("needle"), "{s}");
        assert!(s.chars().count() <= 162, "{s}");
        assert_eq!(snippet("short  text", &["x".into()]), "short text");
        assert_eq!(snippet("Crème brûlée", &["brulee".into()]), "Crème brûlée");
    }
}
