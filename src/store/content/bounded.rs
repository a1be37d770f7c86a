//! A workspace document's limits, enforced while it is parsed: a hostile document is refused as
//! soon as it crosses one, with the JSON path where it did, instead of being held whole first.
//!
//! Lists the format bounds (journeys, stages, steps, a persona's goals…) stop at their bound;
//! items, comments, links and personas count against a budget for the whole document (the
//! server's `--max-items` and `--max-comments`, as many links as items, [`PERSONAS_MAX`]); the
//! kind's `fields` hold scalars only. The budget lives for one parse on the parsing thread
//! ([`with_budget`]); outside one, nothing is counted (an export's own documents, tests).
//! How long one string may be is bounded below the parser, by [`StringGuard`], because
//! serde_json holds a whole string before handing it over.

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::validate::{JOURNEYS_MAX, PERSONA_LIST_MAX, STAGES_MAX, STEPS_MAX};
use crate::store::Quotas;

/// The most personas one document may hold.
pub const PERSONAS_MAX: usize = 10_000;
/// The most fields one item may name (every kind has fewer).
const FIELDS_MAX: usize = 64;
/// The longest string literal a document may hold, in bytes as sent: the longest text is
/// 10,000 characters, each at most 12 bytes as a JSON escape.
pub const STRING_MAX_BYTES: usize = 128 * 1024;

#[derive(Clone, Copy)]
struct Budget {
    items: u64,
    comments: u64,
    links: u64,
    personas: u64,
    max_items: u64,
    max_comments: u64,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// Runs `parse` with a fresh budget from `quotas` on this thread.
pub fn with_budget<T>(quotas: &Quotas, parse: impl FnOnce() -> T) -> T {
    let max_items = u64::try_from(quotas.items).unwrap_or(0);
    let max_comments = u64::try_from(quotas.comments).unwrap_or(0);
    let budget = Budget {
        items: max_items,
        comments: max_comments,
        links: max_items,
        personas: PERSONAS_MAX as u64,
        max_items,
        max_comments,
    };
    /// Puts back the budget that was there before, even when `parse` panics (the blocking
    /// thread goes back to the pool and must not keep this document's budget).
    struct Restore(Option<Budget>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.set(self.0);
        }
    }
    let _restore = Restore(BUDGET.replace(Some(budget)));
    parse()
}

#[derive(Clone, Copy)]
enum Counted {
    Items,
    Comments,
    Links,
    Personas,
}

/// Takes one from the budget of `what`; the refusal when none is left.
fn spend(what: Counted) -> Result<(), String> {
    BUDGET.with(|cell| {
        let Some(mut budget) = cell.get() else { return Ok(()) };
        let left = match what {
            Counted::Items => &mut budget.items,
            Counted::Comments => &mut budget.comments,
            Counted::Links => &mut budget.links,
            Counted::Personas => &mut budget.personas,
        };
        if *left == 0 {
            return Err(refusal(what, &budget));
        }
        *left -= 1;
        cell.set(Some(budget));
        Ok(())
    })
}

/// Why a document was refused when its budget of `what` ran out.
fn refusal(what: Counted, budget: &Budget) -> String {
    match what {
        Counted::Items => format!(
            "the document holds more than {} items, the most this server allows one workspace \
             (the server's admin can raise it: `custory-mcp serve --max-items N`)",
            budget.max_items
        ),
        Counted::Comments => format!(
            "the document holds more than {} comments, the most this server allows one \
             workspace (the server's admin can raise it: `custory-mcp serve --max-comments N`)",
            budget.max_comments
        ),
        Counted::Links => format!(
            "the document holds more than {} links; at most as many links as items are allowed \
             (`custory-mcp serve --max-items N`)",
            budget.max_items
        ),
        Counted::Personas => format!(
            "the document holds more than {PERSONAS_MAX} personas; at most {PERSONAS_MAX} are allowed"
        ),
    }
}

/// What a list may hold: at most `max` elements, or elements drawn from a budget.
#[derive(Clone, Copy)]
enum Bound {
    Most(usize, &'static str),
    Budget(Counted),
}

struct ListVisitor<T> {
    bound: Bound,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut list = Vec::new();
        loop {
            match self.bound {
                Bound::Most(max, what) if list.len() == max => {
                    if seq.next_element::<IgnoredAny>()?.is_some() {
                        return Err(de::Error::custom(format!(
                            "holds more than {max} {what}; at most {max} are allowed"
                        )));
                    }
                    return Ok(list);
                }
                Bound::Most(..) => {}
                Bound::Budget(what) => {
                    // Only an element that is there is counted.
                    let Some(element) = seq.next_element()? else { return Ok(list) };
                    spend(what).map_err(de::Error::custom)?;
                    list.push(element);
                    continue;
                }
            }
            match seq.next_element()? {
                Some(element) => list.push(element),
                None => return Ok(list),
            }
        }
    }
}

fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    de: D,
    bound: Bound,
) -> Result<Vec<T>, D::Error> {
    de.deserialize_seq(ListVisitor { bound, element: PhantomData })
}

macro_rules! bounded_lists {
    ($($(#[$doc:meta])* $name:ident => $bound:expr;)*) => {$(
        $(#[$doc])*
        pub(super) fn $name<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
            de: D,
        ) -> Result<Vec<T>, D::Error> {
            list(de, $bound)
        }
    )*};
}

bounded_lists! {
    journeys => Bound::Most(JOURNEYS_MAX, "journeys");
    stages => Bound::Most(STAGES_MAX, "stages");
    steps => Bound::Most(STEPS_MAX, "steps");
    /// A persona's goals and frustrations.
    persona_list => Bound::Most(PERSONA_LIST_MAX, "entries");
    persona_journeys => Bound::Most(JOURNEYS_MAX, "journeys");
    items => Bound::Budget(Counted::Items);
    comments => Bound::Budget(Counted::Comments);
    links => Bound::Budget(Counted::Links);
    personas => Bound::Budget(Counted::Personas);
}

/// An item's `fields`: at most [`FIELDS_MAX`] names, each a string, number, boolean or null
/// (what `validate::merge_fields` accepts), so no nested value is ever built.
pub(super) fn fields<'de, D: Deserializer<'de>>(de: D) -> Result<Map<String, Value>, D::Error> {
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = Map<String, Value>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings, numbers and booleans")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Map::new();
            while let Some(name) = map.next_key::<String>()? {
                if fields.len() == FIELDS_MAX {
                    return Err(de::Error::custom(format!(
                        "holds more than {FIELDS_MAX} fields; every kind has fewer"
                    )));
                }
                let value = map.next_value_seed(Scalar(&name))?;
                fields.insert(name, value);
            }
            Ok(fields)
        }
    }
    de.deserialize_map(Fields)
}

/// One field's value: anything but an array or an object.
struct Scalar<'n>(&'n str);

impl<'de> de::DeserializeSeed<'de> for Scalar<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalar<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the field {:?} to be a string, number or boolean (or null)", self.0)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(format!(
            "the field {:?} must be a string, number or boolean (or null to remove it)",
            self.0
        )))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(format!(
            "the field {:?} must be a string, number or boolean (or null to remove it)",
            self.0
        )))
    }
}

/// Why [`StringGuard`] stopped the body: a string literal longer than [`STRING_MAX_BYTES`].
#[derive(Debug)]
pub struct StringTooLong;

impl fmt::Display for StringTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too long: a string longer than {} KiB as sent (the longest text a workspace \
             holds is 10,000 characters)",
            STRING_MAX_BYTES >> 10
        )
    }
}

impl std::error::Error for StringTooLong {}

/// Passes JSON through, failing with [`StringTooLong`] as soon as one string literal (a key or
/// a value) grows past [`STRING_MAX_BYTES`]: it follows only quotes and backslashes, which
/// is all a string's extent depends on.
pub struct StringGuard<R> {
    inner: R,
    in_string: bool,
    escaped: bool,
    length: usize,
}

impl<R> StringGuard<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, in_string: false, escaped: false, length: 0 }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for StringGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            if !self.in_string {
                if byte == b'"' {
                    self.in_string = true;
                    self.length = 0;
                }
                continue;
            }
            self.length += 1;
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'"' {
                self.in_string = false;
            }
            if self.length > STRING_MAX_BYTES {
                return Err(std::io::Error::other(StringTooLong));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_string_is_stopped_as_it_arrives_and_short_ones_pass() {
        let short = format!("{{\"a\":\"{}\\\"\"}}", "x".repeat(STRING_MAX_BYTES - 10));
        let mut out = Vec::new();
        StringGuard::new(short.as_bytes()).read_to_end(&mut out).expect("short passes");
        assert_eq!(out, short.as_bytes());
        let long = format!("[\"{}\"]", "x".repeat(STRING_MAX_BYTES + 1));
        let error =
            StringGuard::new(long.as_bytes()).read_to_end(&mut Vec::new()).expect_err("too long");
        assert!(error.get_ref().is_some_and(|e| e.is::<StringTooLong>()), "{error}");
    }
}
