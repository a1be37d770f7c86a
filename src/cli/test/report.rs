//! The report: one line per stage as it completes, and the whole of it as JSON.

use reqwest::Url;
use serde::Serialize;

use crate::error::ExitStatus;
use crate::output::Printer;

/// Width of the stage-name column.
const NAME_WIDTH: usize = 16;

#[derive(Debug, Serialize)]
pub(super) struct Stage {
    pub(super) name: &'static str,
    pub(super) ok: bool,
    pub(super) detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) hint: Option<String>,
    /// A failure that does not stop a client from working with this server (shown as `!`).
    #[serde(skip)]
    pub(super) warning: bool,
}

impl Stage {
    pub(super) fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, ok: true, detail: detail.into(), hint: None, warning: false }
    }

    pub(super) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self { name, ok: false, detail: detail.into(), hint: Some(hint.into()), warning: false }
    }

    pub(super) fn warn(
        name: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self { warning: true, ..Self::fail(name, detail, hint) }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ServerInfo {
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct RoundTrip {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) initialize: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tools_list: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) url: String,
    pub(super) ok: bool,
    pub(super) stages: Vec<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) server: Option<ServerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) protocol_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tools: Option<usize>,
    /// Whether the server also answers 2026-07-28's `server/discover`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stateless_revision: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) round_trip_ms: Option<RoundTrip>,
}

/// Collects the stages, printing each one as it completes (text mode), and the report.
pub(super) struct Checklist {
    pub(super) printer: Printer,
    pub(super) report: Report,
    pub(super) round_trip: RoundTrip,
    pub(super) stopped: bool,
}

impl Checklist {
    pub(super) fn new(url: Url, printer: Printer) -> Self {
        Self {
            printer,
            report: Report {
                url: url.to_string(),
                ok: true,
                stages: Vec::new(),
                server: None,
                protocol_version: None,
                tools: None,
                stateless_revision: None,
                round_trip_ms: None,
            },
            round_trip: RoundTrip::default(),
            stopped: false,
        }
    }

    pub(super) fn intro(&self) {
        if !self.printer.json {
            self.printer.info(&format!("Testing {}", self.report.url));
        }
    }

    /// Records a stage (and prints it, in text mode).
    pub(super) fn record(&mut self, stage: Stage) {
        if !self.printer.json {
            self.print(&stage);
        }
        self.report.ok &= stage.ok;
        self.report.stages.push(stage);
    }

    /// Records a failed stage after which nothing else can be checked.
    pub(super) fn stop(&mut self, stage: Stage) {
        self.record(stage);
        self.stopped = true;
    }

    pub(super) fn print(&self, stage: &Stage) {
        let p = self.printer;
        let mark = match (stage.ok, stage.warning) {
            (true, _) => p.paint("✓", "32"),
            (false, false) => p.paint("✗", "31"),
            (false, true) => p.paint("!", "33"),
        };
        let line = format!("{mark} {:<NAME_WIDTH$}  {}", stage.name, stage.detail);
        // Failures are shown even with -q: they are what the command is for.
        let loud = if stage.ok { p } else { Printer { quiet: false, ..p } };
        loud.info(&line);
        if let Some(hint) = &stage.hint {
            let indent = " ".repeat(NAME_WIDTH + 4);
            loud.info(&format!("{indent}{}: {hint}", p.paint("hint", "36")));
        }
    }

    pub(super) fn finish(mut self) -> anyhow::Result<ExitStatus> {
        if self.round_trip.initialize.is_some() {
            self.report.round_trip_ms = Some(std::mem::take(&mut self.round_trip));
        }
        let status = if self.report.ok { ExitStatus::Success } else { ExitStatus::Failure };
        if self.printer.json {
            self.printer.json(&self.report)?;
            return Ok(status);
        }
        let total = self.report.stages.len();
        let failed = self.report.stages.iter().filter(|s| !s.ok).count();
        if failed == 0 {
            self.printer.info(&format!("\nAll {total} checks passed."));
        } else {
            let rest = if self.stopped { "; the checks after it could not run" } else { "" };
            let checks = if total == 1 { "check" } else { "checks" };
            Printer { quiet: false, ..self.printer }
                .info(&format!("\n{failed} of {total} {checks} failed{rest}."));
        }
        Ok(status)
    }
}
