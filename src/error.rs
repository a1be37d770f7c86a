//! Errors as the user sees them: one line `error: …`, a `hint: …` naming what to run next, and
//! the exit status.

use std::fmt;

/// How the process ends: 0 ok, 1 failure, 2 usage error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
    Usage,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => Self::SUCCESS,
            ExitStatus::Failure => Self::from(1),
            ExitStatus::Usage => Self::from(2),
        }
    }
}

/// An error meant for the person at the terminal. Anything else that reaches the top is shown
/// with its `anyhow` context chain and exits 1.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub status: ExitStatus,
}

impl CliError {
    /// Something went wrong while doing what was asked (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, status: ExitStatus::Failure }
    }

    /// The command line was wrong or incomplete (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, status: ExitStatus::Usage }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
