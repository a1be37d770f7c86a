//! Paging: opaque cursors, and answers bounded in rows and in bytes.
//!
//! A cursor is where the next page starts (a position in the list's order) and which query it
//! belongs to, base64url-encoded so that callers treat it as opaque. A cursor given with another
//! query, or mangled, is refused with a sentence saying so, never silently read as a start.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::{StoreError, StoreResult};

/// Where a page starts: the list it belongs to, a fingerprint of the query, and the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub list: &'static str,
    pub query: u64,
    pub position: Vec<i64>,
}

impl Cursor {
    pub fn new(list: &'static str, query: u64, position: Vec<i64>) -> Self {
        Self { list, query, position }
    }

    /// The opaque text handed out as `next_cursor`.
    pub fn encode(&self) -> String {
        let position: Vec<String> = self.position.iter().map(i64::to_string).collect();
        let text = format!("{}.{:x}.{}", self.list, self.query, position.join("."));
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads `text` as a cursor of `list` for the query with fingerprint `query`, whose position
    /// has `arity` numbers.
    pub fn decode(text: &str, list: &'static str, query: u64, arity: usize) -> StoreResult<Self> {
        let refuse = |why: &str| {
            StoreError::Invalid(format!(
                "the cursor {why}; pass the next_cursor of the previous page unchanged, with the \
                 same other arguments (or leave it out to start from the first page)"
            ))
        };
        let bytes =
            URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| refuse("is not one of ours"))?;
        let text = String::from_utf8(bytes).map_err(|_| refuse("is not one of ours"))?;
        let mut parts = text.split('.');
        if parts.next() != Some(list) {
            return Err(refuse("belongs to another list"));
        }
        let fingerprint = parts.next().and_then(|f| u64::from_str_radix(f, 16).ok());
        if fingerprint != Some(query) {
            return Err(refuse("belongs to a query with other arguments"));
        }
        let position: Vec<i64> = parts
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| refuse("is not one of ours"))?;
        if position.len() != arity {
            return Err(refuse("is not one of ours"));
        }
        Ok(Self { list, query, position })
    }
}

/// A stable fingerprint of a query's arguments (FNV-1a over their text), so that a cursor
/// cannot be carried over to another query by mistake.
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// How much a page may still hold, in serialized bytes: every answer stays well under the MCP
/// ceiling whatever the rows hold.
#[derive(Debug)]
pub struct Budget {
    left: usize,
}

/// The bytes a page of rows may take; the rest of an answer fits in what the ceiling leaves.
pub const PAGE_BYTES: usize = 192 * 1024;

impl Budget {
    pub fn new(bytes: usize) -> Self {
        Self { left: bytes }
    }

    /// Takes room for `row`; `false` (and nothing taken) when it does not fit.
    pub fn fits<T: Serialize>(&mut self, row: &T) -> bool {
        let size = serde_json::to_vec(row).map_or(usize::MAX, |bytes| bytes.len() + 1);
        if size > self.left {
            return false;
        }
        self.left -= size;
        true
    }
}

/// Rows of one page and where the next starts.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub next: Option<Cursor>,
}

/// Cuts `rows` (read with one row more than `limit`) to a page within `budget`; `position`
/// gives a row's place in the list's order, for the next cursor.
pub fn paged<T: Serialize>(
    mut rows: Vec<T>,
    limit: usize,
    mut budget: Budget,
    cursor: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let fitting = rows.iter().take_while(|row| budget.fits(row)).count();
    let cut = fitting < rows.len();
    rows.truncate(fitting.max(1).min(rows.len()));
    let next = if more || cut { rows.last().map(cursor) } else { None };
    Page { rows, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_is_not_theirs() {
        let query = fingerprint(&["acme", "insight"]);
        let cursor = Cursor::new("items", query, vec![3, -7]);
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, "items", query, 2).expect("decodes"), cursor);
        let other = fingerprint(&["acme", "metric"]);
        for (text, list, query, why) in [
            (text.as_str(), "items", other, "other arguments"),
            (text.as_str(), "comments", query, "another list"),
            ("!!", "items", query, "not one of ours"),
            ("aXRlbXM", "items", query, "other arguments"),
        ] {
            let error = Cursor::decode(text, list, query, 2).expect_err(text).to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }

    #[test]
    fn pages_stop_at_the_limit_or_the_budget_and_say_where_to_go_on() {
        let rows: Vec<String> = (0..5).map(|i| format!("row {i}")).collect();
        let cursor = |row: &String| Cursor::new("t", 0, vec![row[4..].parse().expect("n")]);
        let page = paged(rows.clone(), 3, Budget::new(PAGE_BYTES), cursor);
        assert_eq!(page.rows.len(), 3);
        assert_eq!(page.next.map(|c| c.position), Some(vec![2]));
        let page = paged(rows.clone(), 10, Budget::new(PAGE_BYTES), cursor);
        assert_eq!((page.rows.len(), page.next), (5, None));
        // Each row serializes to 8 bytes (+1): two fit in 20.
        let page = paged(rows, 10, Budget::new(20), cursor);
        assert_eq!(page.rows.len(), 2);
        assert_eq!(page.next.map(|c| c.position), Some(vec![1]));
    }
}
