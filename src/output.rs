//! The only place that writes to the terminal. stdout carries data (a token, a table, JSON, a
//! config snippet); everything else — progress, notices, hints, errors — goes to stderr.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

use dialoguer::console::{Term, measure_text_width, truncate_str};
use serde::Serialize;

use crate::error::CliError;

/// `--color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Verbosity and format, decided once from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
    pub color: bool,
}

impl Printer {
    pub fn new(json: bool, quiet: bool, color: ColorChoice) -> Self {
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        Self { json, quiet, color }
    }

    /// Data for stdout, followed by a newline, made safe for a terminal ([`for_terminal`]).
    /// A closed pipe (`| head`) is not an error.
    pub fn data(&self, text: &str) {
        stdout(&for_terminal(text, self.color));
    }

    /// Pretty JSON on stdout, as is: JSON escapes every control character itself.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<()> {
        stdout(&serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// A line for the person at the terminal (stderr); silenced by `-q`.
    pub fn info(&self, text: &str) {
        if !self.quiet {
            stderr(text, self.color);
        }
    }

    /// A warning on stderr; shown even with `-q`.
    pub fn warn(&self, text: &str) {
        stderr(&format!("{}: {text}", self.paint("warning", "33")), self.color);
    }

    pub fn error(&self, error: &anyhow::Error) {
        if let Some(cli) = error.downcast_ref::<CliError>() {
            // A message may quote a server; its lines are kept, nothing else that steers a
            // terminal.
            // The message and hint may quote a server: they are cleaned before the labels are
            // painted, so that not even a color of theirs survives.
            let (message, hint) = (for_terminal(&cli.message, false), cli.hint.as_deref());
            stderr(&format!("{}: {message}", self.paint("error", "31")), self.color);
            if let Some(hint) = hint.map(|hint| for_terminal(hint, false)) {
                stderr(&format!("{}: {hint}", self.paint("hint", "36")), self.color);
            }
        } else {
            let error = for_terminal(&format!("{error:#}"), false);
            stderr(&format!("{}: {error}", self.paint("error", "31")), self.color);
        }
    }

    /// `text` in an ANSI color when color is on (`text` itself cleaned: [`for_terminal`]).
    pub fn paint(&self, text: &str, code: &str) -> String {
        let text = for_terminal(text, false);
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text }
    }
}

/// A line on stderr, made safe for a terminal ([`for_terminal`]; `colors`: the colors of
/// [`Printer::paint`] kept). A closed stderr (`2>&-`, a reader gone) is not worth a panic: the
/// line is lost, as a terminal that was closed would lose it.
fn stderr(text: &str, colors: bool) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", for_terminal(text, colors));
}

fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// The escape sequences this program writes itself: [`Printer::paint`]'s colors and reset.
const OWN_STYLES: [&str; 5] = ["\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[0m"];

/// `text` safe to write to a terminal, whoever supplied it (a server's names, messages and
/// hints, a file's lines): control characters (so every escape sequence's ESC), bidi controls
/// and invisible characters are removed ([`crate::api::displayable`]'s rule); line breaks and
/// tabs are kept, and with `colors` (color on) the few colors [`Printer::paint`] writes. The
/// one place: [`Printer::data`] (not JSON), every stderr line, and what is painted (cleaned
/// before its color is added). Errors and hints are cleaned with no colors kept.
pub fn for_terminal(text: &str, colors: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(style) = OWN_STYLES.iter().find(|style| colors && rest.starts_with(**style)) {
            out.push_str(style);
            rest = &rest[style.len()..];
            continue;
        }
        if c == '\n' || c == '\t' || crate::api::shown(c) {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `-v`: what the admin client does (the server, each request and its answer), on stderr.
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns on [`trace`] (`-v`).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// A line of `-v` on stderr: what the CLI is doing. Never carries a secret.
pub fn trace(text: impl FnOnce() -> String) {
    if VERBOSE.load(Ordering::Relaxed) {
        stderr(&text(), false);
    }
}

/// A line on stderr that a prompt needs (what the question below it is about); shown even with
/// `-q`, since the question is.
pub fn note(text: &str) {
    stderr(text, false);
}

/// After Ctrl-C at a prompt: one line saying so. The line starts afresh, since the prompt left
/// the cursor after its own text.
pub fn cancelled() {
    stderr("\ncancelled", false);
}

/// The width tables and prompts fit: `COLUMNS` when set, else the terminal's width when
/// `on_terminal` is one, else none (piped output is never cut).
pub fn width(on_terminal: &Term) -> Option<usize> {
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.parse::<usize>().ok());
    columns.filter(|&c| c > 0).or_else(|| on_terminal.size_checked().map(|(_, c)| usize::from(c)))
}

/// `text` cut to `width` columns, ending in `…` when it was cut. For free text only: never for
/// a value a person types (a name, prefix, id, slug or command).
pub fn shorten(text: &str, width: usize) -> String {
    truncate_str(text, width, "…").into_owned()
}

/// How many columns `text` takes on a terminal.
pub fn width_of(text: &str) -> usize {
    measure_text_width(text)
}

/// Labelled lines (`Name          laptop`) on stdout's width ([`width`]): a value wider than
/// what is left after its label goes on over more lines, broken between words and indented
/// under the value; a single word wider than that is kept whole (it may be copied).
pub fn fields(rows: &[(&str, String)]) -> String {
    fields_within(width(&Term::stdout()), rows, 0)
}

/// [`fields`] with the values at least `labels` columns in (labels that line up with another
/// listing's, such as every rule's name when only some are shown).
pub fn fields_aligned(rows: &[(&str, String)], labels: usize) -> String {
    fields_within(width(&Term::stdout()), rows, labels)
}

fn fields_within(width: Option<usize>, rows: &[(&str, String)], labels: usize) -> String {
    let widest = rows.iter().map(|(label, _)| measure_text_width(label)).max().unwrap_or(0);
    let label = widest.max(labels) + 2;
    let room = width.map(|w| w.saturating_sub(label).max(20));
    let mut out = Vec::new();
    for (name, value) in rows {
        let pad = " ".repeat(label - measure_text_width(name));
        let mut lines = wrap(value, room).into_iter();
        out.push(format!("{name}{pad}{}", lines.next().unwrap_or_default()));
        out.extend(lines.map(|line| format!("{}{line}", " ".repeat(label))));
    }
    out.join("\n")
}

/// `text` in lines of at most `room` columns, broken at spaces outside backticks: a command
/// in backticks stays whole on one line, to be copied (even past `room`).
fn wrap(text: &str, room: Option<usize>) -> Vec<String> {
    let Some(room) = room.filter(|&room| measure_text_width(text) > room) else {
        return vec![text.to_owned()];
    };
    let mut words = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (at, c) in text.char_indices() {
        match c {
            '`' => quoted = !quoted,
            ' ' if !quoted => {
                words.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    words.push(&text[start..]);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in words {
        if !line.is_empty() && measure_text_width(&line) + 1 + measure_text_width(word) > room {
            lines.push(std::mem::take(&mut line));
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// A column of a [`table`], and what a narrow terminal may do to it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    header: &'static str,
    fit: Fit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Always shown whole.
    Keep,
    /// Shown whole, or left out when the terminal is too narrow; the lowest rank goes first.
    Optional(u8),
    /// Free text: cut with `…` when the terminal is too narrow, then left out; the lowest rank
    /// goes first.
    Text(u8),
    /// Free text that must be read whole (an audit entry's detail): narrowed as [`Fit::Text`]
    /// is, but wrapped over more lines instead of cut.
    Wrap(u8),
}

impl Column {
    /// A value a person types or must read whole (a name, a prefix, an id, a slug): never cut,
    /// never left out.
    pub const fn keep(header: &'static str) -> Self {
        Self { header, fit: Fit::Keep }
    }

    /// A value shown whole or not at all: left out, lowest `rank` first, when the row does not
    /// fit.
    pub const fn optional(header: &'static str, rank: u8) -> Self {
        Self { header, fit: Fit::Optional(rank) }
    }

    /// Free text: cut with `…`, lowest `rank` first, when the row does not fit (down to a few
    /// characters; then it is left out).
    pub const fn text(header: &'static str, rank: u8) -> Self {
        Self { header, fit: Fit::Text(rank) }
    }

    /// Free text read whole: narrowed like [`Column::text`], its cells wrapped between words
    /// over more lines rather than cut (a word longer than the column is cut).
    pub const fn wrap(header: &'static str, rank: u8) -> Self {
        Self { header, fit: Fit::Wrap(rank) }
    }
}

/// The columns between which tables put two spaces.
const GAP: usize = 2;
/// The fewest characters a cut column keeps (its header, if longer).
const MIN_TEXT: usize = 10;
/// The fewest a wrapped column narrows to before columns ranked above it give way.
const MIN_WRAP: usize = 30;

/// A table on stdout's width ([`width`]). When its rows are wider, columns give way in the order
/// their ranks say (as `gh` does): free text is cut with `…` and optional columns are left out,
/// so a cell is never wrapped and a value a person types is never cut.
pub fn table(columns: &[Column], rows: Vec<Vec<String>>) -> String {
    table_within(width(&Term::stdout()), columns, rows)
}

fn table_within(width: Option<usize>, columns: &[Column], rows: Vec<Vec<String>>) -> String {
    use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};
    // Cells hold text a server sent (names, clients, details): nothing in them reaches the
    // terminal as a control sequence.
    let mut rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| row.iter().map(|cell| crate::api::displayable(cell)).collect())
        .collect();
    let headers: Vec<String> = columns.iter().map(|c| c.header.to_uppercase()).collect();
    let natural: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, header)| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .map(|cell| measure_text_width(cell))
                .chain([measure_text_width(header)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let shown = layout(width, columns, &headers, &natural);
    for row in &mut rows {
        for ((cell, shown), column) in row.iter_mut().zip(&shown).zip(columns) {
            let Some(width) = *shown else { continue };
            *cell = match column.fit {
                Fit::Wrap(_) => wrap(cell, Some(width))
                    .iter()
                    .map(|line| shorten(line, width))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => shorten(cell, width),
            };
        }
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(headers);
    table.add_rows(rows);
    // No borders: columns are separated by two spaces, with none before the first.
    for (column, shown) in table.column_iter_mut().zip(&shown) {
        column.set_padding((0, GAP as u16));
        if shown.is_none() {
            column.set_constraint(ColumnConstraint::Hidden);
        }
    }
    // The last column's padding would leave trailing spaces.
    table.lines().map(|line| line.trim_end().to_owned()).collect::<Vec<_>>().join("\n")
}

/// Each column's width, or `None` when it is left out: the natural widths when they fit
/// `width`; else the columns give way lowest rank first (a later column before an earlier one
/// of the same rank), free text cut down to [`MIN_TEXT`] before it is left out. Room that a
/// left-out column frees goes back to the text that was cut.
fn layout(
    width: Option<usize>,
    columns: &[Column],
    headers: &[String],
    natural: &[usize],
) -> Vec<Option<usize>> {
    let mut shown: Vec<Option<usize>> = natural.iter().copied().map(Some).collect();
    let Some(width) = width else { return shown };
    let total = |shown: &[Option<usize>]| {
        let widths: Vec<usize> = shown.iter().flatten().copied().collect();
        widths.iter().sum::<usize>() + GAP * widths.len().saturating_sub(1)
    };
    let mut order: Vec<(u8, usize)> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.fit {
            Fit::Keep => None,
            Fit::Optional(rank) | Fit::Text(rank) | Fit::Wrap(rank) => Some((rank, i)),
        })
        .collect();
    order.sort_by_key(|&(rank, i)| (rank, std::cmp::Reverse(i)));
    for &(_, i) in &order {
        let excess = total(&shown).saturating_sub(width);
        if excess == 0 {
            break;
        }
        let wraps = matches!(columns[i].fit, Fit::Wrap(_));
        if wraps || matches!(columns[i].fit, Fit::Text(_)) {
            let fewest = if wraps { MIN_WRAP } else { MIN_TEXT };
            let least = measure_text_width(&headers[i]).max(fewest.min(natural[i]));
            let cut = natural[i].saturating_sub(excess).max(least);
            shown[i] = Some(cut);
            if total(&shown) <= width {
                break;
            }
            // Text read whole is never left out: the columns after it in the order go first.
            if wraps {
                continue;
            }
        }
        shown[i] = None;
    }
    // Still too wide with everything else gone: wrapped text narrows down to the least.
    for (i, column) in columns.iter().enumerate() {
        let excess = total(&shown).saturating_sub(width);
        if let (Fit::Wrap(_), Some(cut), true) = (column.fit, shown[i], excess > 0) {
            let least = measure_text_width(&headers[i]).max(MIN_TEXT.min(natural[i]));
            shown[i] = Some(cut.saturating_sub(excess).max(least));
        }
    }
    // What leaving a column out freed goes back to the text cut before it, most valued first.
    for &(_, i) in order.iter().rev() {
        let slack = width.saturating_sub(total(&shown));
        if let Some(cut) = shown[i]
            && cut < natural[i]
        {
            shown[i] = Some((cut + slack).min(natural[i]));
        }
    }
    shown
}

/// `at` relative to `now`, as a person says it: "just now", "3 hours ago", "in 29 days".
pub fn relative(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let seconds = (at - now).num_seconds();
    let (amount, future) = (seconds.unsigned_abs(), seconds > 0);
    // Rounded to the nearest unit: a 30-day key created a second ago expires "in 30 days".
    let round = |unit: u64| (amount + unit / 2) / unit;
    let text = match amount {
        0..60 => return "just now".to_owned(),
        60..3570 => count(round(60), "minute", "minutes"),
        3570..84_600 => count(round(3600), "hour", "hours"),
        84_600..5_184_000 => count(round(86_400), "day", "days"),
        5_184_000..63_072_000 => count(round(2_592_000), "month", "months"),
        _ => count(round(31_536_000), "year", "years"),
    };
    if future { format!("in {text}") } else { format!("{text} ago") }
}

/// `1 address`, `2 addresses`: a count with the word that fits it.
pub fn count<N: std::fmt::Display + PartialEq + From<u8>>(n: N, one: &str, many: &str) -> String {
    if n == N::from(1) { format!("1 {one}") } else { format!("{n} {many}") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wrapped_column_keeps_every_word_and_others_give_way_before_it_narrows_past_30() {
        use super::Column;
        let columns = [Column::keep("Key"), Column::optional("Ago", 2), Column::wrap("Detail", 1)];
        let detail = "created \"laptop\" (read-only, expires 30d), limited to tools: get_item";
        let rows = vec![vec!["cst_abc".to_owned(), "3 hours ago".to_owned(), detail.to_owned()]];
        let wide = super::table_within(Some(120), &columns, rows.clone());
        assert!(wide.contains("3 hours ago") && wide.contains(detail), "{wide}");
        let narrow = super::table_within(Some(48), &columns, rows);
        assert!(!narrow.contains("AGO") && !narrow.contains('…'), "{narrow}");
        assert!(narrow.lines().all(|line| super::measure_text_width(line) <= 48), "{narrow}");
        let words: Vec<&str> = narrow.lines().skip(1).flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(words.join(" "), format!("cst_abc {detail}"), "{narrow}");
    }

    #[test]
    fn long_field_values_wrap_under_the_value_and_short_ones_stay() {
        let rows = [
            ("Name", "laptop".to_owned()),
            ("Limited to", "tools: get_item, search, add_comment; journeys: trial-to-paid".into()),
        ];
        let text = super::fields_within(Some(40), &rows, 0);
        assert_eq!(
            text,
            "Name        laptop\n\
             Limited to  tools: get_item, search,\n            \
             add_comment; journeys:\n            \
             trial-to-paid"
        );
        assert!(text.lines().all(|line| super::measure_text_width(line) <= 40), "{text}");
        let command =
            [("Blocked", "by max_expiry; `custory-mcp keys rotate cst_abc` fixes it".into())];
        let text = super::fields_within(Some(40), &command, 0);
        assert!(text.lines().any(|l| l.trim() == "`custory-mcp keys rotate cst_abc`"), "{text}");
        let piped = super::fields_within(None, &rows, 0);
        assert_eq!(piped.lines().count(), 2, "piped output is never cut nor wrapped");
    }

    use chrono::{Duration, TimeZone as _, Utc};

    use super::{Column, table_within};

    fn keys_table(width: Option<usize>) -> String {
        let columns = [
            Column::keep("Name"),
            Column::keep("Prefix"),
            Column::optional("Access", 2),
            Column::text("Last used", 3),
            Column::optional("Created", 1),
        ];
        let rows = vec![
            vec![
                "Cursor on MacBook",
                "cst_abcdefgh",
                "read-write",
                "2 hours ago (Cursor/2.1)",
                "5 days ago",
            ],
            vec!["ci", "cst_ijklmnop", "read-only", "never", "just now"],
        ];
        let rows = rows.into_iter().map(|r| r.into_iter().map(str::to_owned).collect()).collect();
        table_within(width, &columns, rows)
    }

    #[test]
    fn a_table_gives_way_lowest_rank_first_and_never_cuts_what_is_kept() {
        // Unbounded (a pipe), or wide enough: every column, whole.
        let wide = keys_table(None);
        assert_eq!(wide, keys_table(Some(200)));
        assert!(
            wide.starts_with("NAME               PREFIX        ACCESS      LAST USED"),
            "{wide}"
        );
        assert!(wide.contains("2 hours ago (Cursor/2.1)") && wide.contains("5 days ago"), "{wide}");
        // The creation time goes first.
        let at_70 = keys_table(Some(70));
        assert!(!at_70.contains("CREATED") && at_70.contains("ACCESS"), "{at_70}");
        // Narrower: the access goes, then the last use is cut with "…".
        let at_55 = keys_table(Some(55));
        assert!(!at_55.contains("ACCESS") && at_55.contains("2 hours ago (Cursor/2…"), "{at_55}");
        assert!(at_55.lines().all(|l| l.chars().count() <= 55), "{at_55}");
        // Narrower still: the free text is left out too; a name and a prefix stay whole even
        // past the width.
        let at_20 = keys_table(Some(20));
        assert_eq!(at_20.lines().next(), Some("NAME               PREFIX"), "{at_20}");
        assert!(at_20.contains("Cursor on MacBook  cst_abcdefgh"), "{at_20}");
    }

    #[test]
    fn only_the_programs_own_colors_reach_a_terminal() {
        let hostile = "name\x1b]0;title\x07\x1b[2J\x1b[31m\u{202e}\u{200b}\tend\nnext\r";
        assert_eq!(super::for_terminal(hostile, false), "name]0;title[2J[31m\tend\nnext");
        assert_eq!(
            super::for_terminal("\x1b[31merror\x1b[0m: x\x1b[1m", true),
            "\x1b[31merror\x1b[0m: x[1m"
        );
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).single().expect("time");
        let cases = [
            (Duration::seconds(-5), "just now"),
            (Duration::minutes(-1), "1 minute ago"),
            (Duration::hours(-3), "3 hours ago"),
            (Duration::days(30), "in 30 days"),
            (Duration::days(30) - Duration::seconds(2), "in 30 days"),
            (Duration::days(90), "in 3 months"),
            (Duration::days(-800), "2 years ago"),
        ];
        for (offset, want) in cases {
            assert_eq!(super::relative(now + offset, now), want);
        }
    }
}
