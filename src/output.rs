//! The only place that writes to the terminal. stdout carries data (a token, a table, JSON, a
//! config snippet); everything else — progress, notices, hints, errors — goes to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal as _, Write as _};

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
            eprintln!("{text}");
        }
    }

    /// A warning on stderr; shown even with `-q`.
    pub fn warn(&self, text: &str) {
        eprintln!("{}: {text}", self.paint("warning", "33"));
    }

    pub fn error(&self, error: &anyhow::Error) {
        if let Some(cli) = error.downcast_ref::<CliError>() {
            eprintln!("{}: {}", self.paint("error", "31"), cli.message);
            if let Some(hint) = &cli.hint {
                eprintln!("{}: {hint}", self.paint("hint", "36"));
            }
        } else {
            eprintln!("{}: {error:#}", self.paint("error", "31"));
        }
    }

    /// `text` in an ANSI color when color is on.
    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
}
