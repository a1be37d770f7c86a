//! The only place that writes to the terminal. stdout carries data (a token, a table, JSON, a
//! config snippet); everything else — progress, notices, hints, errors — goes to stderr.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

use dialoguer::console::{measure_text_width, truncate_str};
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

    /// Data for stdout, followed by a newline. A closed pipe (`| head`) is not an error.
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }

    /// Pretty JSON on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<()> {
        self.data(&serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// A line for the person at the terminal (stderr); silenced by `-q`.
    pub fn info(&self, text: &str) {
        if !self.quiet {
            stderr(text);
        }
    }

    /// A warning on stderr; shown even with `-q`.
    pub fn warn(&self, text: &str) {
        stderr(&format!("{}: {text}", self.paint("warning", "33")));
    }

    pub fn error(&self, error: &anyhow::Error) {
        if let Some(cli) = error.downcast_ref::<CliError>() {
            // A message may quote a server; its lines are kept, nothing else that steers a
            // terminal.
            let message: Vec<String> = cli.message.lines().map(crate::api::displayable).collect();
            stderr(&format!("{}: {}", self.paint("error", "31"), message.join("\n")));
            if let Some(hint) = &cli.hint {
                stderr(&format!("{}: {hint}", self.paint("hint", "36")));
            }
        } else {
            stderr(&format!("{}: {error:#}", self.paint("error", "31")));
        }
    }

    /// `text` in an ANSI color when color is on.
    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// A line on stderr. A closed stderr (`2>&-`, a reader gone) is not worth a panic: the line is
/// lost, as a terminal that was closed would lose it.
fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
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
        stderr(&text());
    }
}

/// A line on stderr that a prompt needs (what the question below it is about); shown even with
/// `-q`, since the question is.
pub fn note(text: &str) {
    stderr(text);
}

/// After Ctrl-C at a prompt: one line saying so. The line starts afresh, since the prompt left
/// the cursor after its own text.
pub fn cancelled() {
    stderr("\ncancelled");
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

/// A table that fits the terminal: `COLUMNS` when set, else the terminal's width when stdout
/// is one, else unbounded (piped output is not wrapped).
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    use comfy_table::{ContentArrangement, Table, presets};
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.parse::<u16>().ok());
    if let Some(width) = columns {
        table.set_width(width);
    }
    table.set_header(header.iter().map(|h| h.to_uppercase()));
    // Cells hold text a server sent (names, clients, details): nothing in them reaches the
    // terminal as a control sequence.
    for row in rows {
        table.add_row(row.iter().map(|cell| crate::api::displayable(cell)).collect::<Vec<_>>());
    }
    // No borders: columns are separated by two spaces, with none before the first.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    // The last column's padding would leave trailing spaces.
    table.lines().map(|line| line.trim_end().to_owned()).collect::<Vec<_>>().join("\n")
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
    use chrono::{Duration, TimeZone as _, Utc};

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
