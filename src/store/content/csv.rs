//! Items from a spreadsheet: a CSV file becomes one journey of a workspace.
//!
//! The header row names the columns, in any order: `stage`, `step`, `kind` and `title` are
//! required, `description`, `status`, `owner`, `priority`, `impact` and `effort` optional; any
//! other column is refused by its name. Each row is one item. Stages and steps are made in the
//! order they first appear; items keep the file's order on their step. Rows whose cells are all
//! empty are skipped (spreadsheets write them after the last row).
//!
//! The rows become a [`DocJourney`], checked by the same [`validate`] as a JSON document; its
//! JSON paths are turned back into the file's lines and columns
//! (`line 7, column "kind": "epic" is not a kind of item; …`), so both formats obey one set of
//! rules and say so in the same words.

use std::collections::HashMap;
use std::io::Read;

use super::transfer::{
    DocError, DocItem, DocJourney, DocStage, DocStep, ERRORS_MAX, single_journey, validate,
};
use super::validate::{STAGES_MAX, STEPS_MAX};

/// The columns a CSV may have, in the order the docs list them.
pub const COLUMNS: [&str; 10] = [
    "stage",
    "step",
    "kind",
    "title",
    "description",
    "status",
    "owner",
    "priority",
    "impact",
    "effort",
];
/// The first this many of [`COLUMNS`] are required, as columns and in every row.
const REQUIRED: usize = 4;

/// Why a CSV was not read into a journey.
#[derive(Debug)]
pub enum CsvError {
    /// The file is not a valid journey: each problem with its line and column.
    Invalid(Vec<DocError>),
    /// The input could not be read (the body stalled or grew too large).
    Io(std::io::Error),
}

/// The columns the header names, by their index in [`COLUMNS`].
struct Header {
    /// For each column of [`COLUMNS`], where it is in a row (if the file has it).
    at: [Option<usize>; COLUMNS.len()],
    width: usize,
}

impl Header {
    fn cell<'a>(&self, row: &'a ::csv::StringRecord, column: usize) -> &'a str {
        self.at[column].and_then(|i| row.get(i)).unwrap_or("")
    }

    fn optional(&self, row: &::csv::StringRecord, column: usize) -> Option<String> {
        Some(self.cell(row, column).to_owned()).filter(|v| !v.is_empty())
    }
}

/// Where the rows went, to name a problem by its line: the line each stage and step first
/// appears on, and each item's line, in the journey's order.
#[derive(Default)]
struct Lines {
    stages: Vec<u64>,
    steps: Vec<Vec<u64>>,
    items: Vec<Vec<Vec<u64>>>,
}

/// Problems, each with the line it is on (0: not on a line), sorted by line at the end.
#[derive(Default)]
struct Problems {
    list: Vec<(u64, DocError)>,
}

impl Problems {
    fn add(&mut self, line: u64, column: Option<&str>, message: impl Into<String>) {
        let path = match (line, column) {
            (0, Some(column)) => column.to_owned(),
            (0, None) => "file".to_owned(),
            (line, Some(column)) => format!("line {line}, column {column:?}"),
            (line, None) => format!("line {line}"),
        };
        self.list.push((line, DocError { path, message: message.into() }));
    }

    fn full(&self) -> bool {
        self.list.len() >= ERRORS_MAX
    }

    fn finish(mut self) -> Vec<DocError> {
        self.list.sort_by_key(|(line, _)| *line);
        self.list.into_iter().take(ERRORS_MAX).map(|(_, error)| error).collect()
    }
}

/// Reads `input` (UTF-8 CSV with a header row) as one journey named `name`, with `slug`, and
/// checks it whole. Every problem names its line and column; up to [`ERRORS_MAX`] are listed.
/// On a problem the input is still read to its end (the sender is still sending), except
/// after a bad header, where nothing after it could be understood.
pub fn read_journey<R: Read>(input: R, name: &str, slug: &str) -> Result<DocJourney, CsvError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(input);
    let mut problems = Problems::default();
    let mut row = ::csv::StringRecord::new();
    let header = match next_record(&mut reader, &mut row, &mut problems)? {
        None => {
            problems.add(
                1,
                None,
                format!(
                    "the file is empty; its first line must name the columns, e.g. {}",
                    COLUMNS.join(",")
                ),
            );
            return Err(CsvError::Invalid(problems.finish()));
        }
        Some(false) => return Err(CsvError::Invalid(problems.finish())),
        Some(true) => read_header(&row, &mut problems),
    };
    let Some(header) = header else {
        return Err(CsvError::Invalid(problems.finish()));
    };

    let mut journey = DocJourney {
        slug: slug.to_owned(),
        name: name.to_owned(),
        description: String::new(),
        archived: false,
        stages: Vec::new(),
    };
    let mut lines = Lines::default();
    let mut stage_at: HashMap<String, usize> = HashMap::new();
    let mut step_at: HashMap<(usize, String), usize> = HashMap::new();
    while let Some(readable) = next_record(&mut reader, &mut row, &mut problems)? {
        let line = row.position().map_or(0, ::csv::Position::line);
        if !readable || row.iter().all(str::is_empty) {
            continue;
        }
        if row.len() != header.width {
            problems.add(
                line,
                None,
                format!(
                    "has {} cells, but the header names {} columns; every row has one cell per \
                     column (quote a cell that holds a comma: \"a, b\")",
                    row.len(),
                    header.width
                ),
            );
            continue;
        }
        let mut complete = true;
        for (column, name) in COLUMNS.iter().enumerate().take(REQUIRED) {
            if header.cell(&row, column).is_empty() {
                problems.add(
                    line,
                    Some(name),
                    "is empty; every row needs a stage, a step, a kind and a title",
                );
                complete = false;
            }
        }
        if !complete {
            continue;
        }
        let (stage, step) = (header.cell(&row, 0), header.cell(&row, 1));
        let s = *stage_at.entry(stage.to_owned()).or_insert_with(|| {
            journey.stages.push(DocStage {
                name: stage.to_owned(),
                description: String::new(),
                archived: false,
                steps: Vec::new(),
            });
            lines.stages.push(line);
            lines.steps.push(Vec::new());
            lines.items.push(Vec::new());
            journey.stages.len() - 1
        });
        let t = *step_at.entry((s, step.to_owned())).or_insert_with(|| {
            let steps = &mut journey.stages[s].steps;
            steps.push(DocStep {
                name: step.to_owned(),
                description: String::new(),
                archived: false,
                items: Vec::new(),
            });
            lines.steps[s].push(line);
            lines.items[s].push(Vec::new());
            steps.len() - 1
        });
        journey.stages[s].steps[t].items.push(DocItem {
            id: format!("line-{line}"),
            kind: header.cell(&row, 2).to_owned(),
            title: header.cell(&row, 3).to_owned(),
            description: header.cell(&row, 4).to_owned(),
            status: header.optional(&row, 5),
            owner: header.optional(&row, 6),
            priority: header.optional(&row, 7),
            impact: header.optional(&row, 8),
            effort: header.optional(&row, 9),
            archived: false,
            fields: serde_json::Map::new(),
            created_at: None,
            updated_at: None,
            comments: Vec::new(),
        });
        lines.items[s][t].push(line);
    }
    if journey.stages.is_empty() && problems.list.is_empty() {
        problems.add(0, None, "has a header but no rows; each row below the header is one item");
    }
    let doc = single_journey(journey);
    if let Err(errors) = validate(&doc) {
        for error in errors {
            let (line, column, message) = locate(&error, &lines);
            problems.add(line, column, message);
        }
    }
    if problems.list.is_empty() {
        let Some(journey) = doc.journeys.into_iter().next() else {
            return Err(CsvError::Invalid(Vec::new()));
        };
        Ok(journey)
    } else {
        Err(CsvError::Invalid(problems.finish()))
    }
}

/// Reads the next record into `row`: `None` at the end, `Some(false)` when it is not UTF-8
/// (a problem is noted), an error when the input cannot be read.
fn next_record<R: Read>(
    reader: &mut ::csv::Reader<R>,
    row: &mut ::csv::StringRecord,
    problems: &mut Problems,
) -> Result<Option<bool>, CsvError> {
    match reader.read_record(row) {
        Ok(true) => Ok(Some(true)),
        Ok(false) => Ok(None),
        Err(error) => match error.into_kind() {
            ::csv::ErrorKind::Io(error) => Err(CsvError::Io(error)),
            ::csv::ErrorKind::Utf8 { pos, err } => {
                if !problems.full() {
                    let line = pos.as_ref().map_or(0, ::csv::Position::line);
                    problems.add(
                        line.max(1),
                        None,
                        format!(
                            "cell {} is not UTF-8 text; save the file as \"CSV UTF-8\"",
                            err.field() + 1
                        ),
                    );
                }
                Ok(Some(false))
            }
            other => Err(CsvError::Io(std::io::Error::other(format!("{other:?}")))),
        },
    }
}

/// The header row's columns, or `None` (with the problems noted) when it is not usable.
fn read_header(row: &::csv::StringRecord, problems: &mut Problems) -> Option<Header> {
    let mut header = Header { at: [None; COLUMNS.len()], width: row.len() };
    let allowed = || COLUMNS.join(", ");
    for (i, cell) in row.iter().enumerate() {
        // A byte order mark, as spreadsheets write before "CSV UTF-8".
        let cell = if i == 0 { cell.trim_start_matches('\u{feff}').trim() } else { cell };
        let name = cell.to_lowercase();
        match COLUMNS.iter().position(|c| *c == name) {
            Some(column) if header.at[column].is_some() => problems.add(
                1,
                Some(COLUMNS[column]),
                format!("the header names the column {cell:?} twice"),
            ),
            Some(column) => header.at[column] = Some(i),
            None if cell.is_empty() => problems.add(
                1,
                None,
                format!(
                    "column {} of the header has no name; name it (one of: {}) or delete it",
                    i + 1,
                    allowed()
                ),
            ),
            None => {
                let separated = row.len() == 1 && (cell.contains(';') || cell.contains('\t'));
                let hint = if separated {
                    " (the columns must be separated by commas, not semicolons or tabs)"
                } else {
                    ""
                };
                problems.add(
                    1,
                    Some(cell),
                    format!("is not a column of an import{hint}; the columns are: {}", allowed()),
                );
            }
        }
    }
    for (column, name) in COLUMNS.iter().enumerate().take(REQUIRED) {
        if header.at[column].is_none() {
            problems.add(
                1,
                None,
                format!(
                    "the header has no {name:?} column; it needs stage, step, kind and title \
                     (and may have {})",
                    COLUMNS[REQUIRED..].join(", ")
                ),
            );
        }
    }
    if problems.list.is_empty() { Some(header) } else { None }
}

/// A validation error's JSON path (in the one-journey document) as the line and column it
/// came from, and its message.
fn locate(error: &DocError, lines: &Lines) -> (u64, Option<&'static str>, String) {
    let mut parts = error.path.split('.').map(|part| match part.split_once('[') {
        Some((name, index)) => (name, index.trim_end_matches(']').parse::<usize>().ok()),
        None => (part, None),
    });
    let message = error.message.clone();
    let _journey = parts.next();
    let column = |name: &str| COLUMNS.iter().copied().find(|c| *c == name);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(("name" | "slug", None)), ..) => (0, Some("journey"), message),
        (Some(("stages", None)), ..) => {
            let line = lines.stages.get(STAGES_MAX).copied();
            let message = format!("the journey {message}");
            (line.unwrap_or(0), Some("stage"), message)
        }
        (Some(("stages", Some(s))), Some(("name", None)), ..) => {
            let line = lines.stages.get(s).copied().unwrap_or(0);
            (line, Some("stage"), message.replacen("name ", "stage ", 1))
        }
        (Some(("stages", Some(s))), Some(("steps", None)), ..) => {
            let steps = lines.steps.get(s).map(Vec::as_slice).unwrap_or_default();
            let line = steps.get(STEPS_MAX).copied();
            let message = format!("the stage {message}");
            (line.unwrap_or(0), Some("step"), message)
        }
        (Some(("stages", Some(s))), Some(("steps", Some(t))), Some(("name", None)), _) => {
            let line = lines.steps.get(s).and_then(|steps| steps.get(t)).copied().unwrap_or(0);
            (line, Some("step"), message.replacen("name ", "step ", 1))
        }
        (Some(("stages", Some(s))), Some(("steps", Some(t))), Some(("items", Some(i))), field) => {
            let line = lines
                .items
                .get(s)
                .and_then(|steps| steps.get(t))
                .and_then(|items| items.get(i))
                .copied()
                .unwrap_or(0);
            (line, field.and_then(|(name, _)| column(name)), message)
        }
        _ => (0, None, format!("{}: {message}", error.path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<DocJourney, Vec<String>> {
        read_journey(text.as_bytes(), "Roadmap", "roadmap").map_err(|error| match error {
            CsvError::Invalid(details) => {
                details.into_iter().map(|d| format!("{}: {}", d.path, d.message)).collect()
            }
            CsvError::Io(error) => vec![error.to_string()],
        })
    }

    #[test]
    fn rows_become_stages_steps_and_items_in_file_order() {
        let journey = read(
            "\u{feff}Title,stage,step,kind,priority,description\n\
             Pricing page,Discover,Compares tools,touchpoint,P1,\"Line one\nline two\"\n\
             Trial setup,Try,Signs up,opportunity,,\n\
             ,,,,,\n\
             G2 reviews,Discover,Compares tools,insight,P0,\n\
             Docs,Discover,Reads docs,touchpoint,,\n",
        )
        .expect("valid");
        assert_eq!((journey.slug.as_str(), journey.name.as_str()), ("roadmap", "Roadmap"));
        let stages: Vec<_> = journey.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(stages, ["Discover", "Try"]);
        let discover = &journey.stages[0];
        let steps: Vec<_> = discover.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(steps, ["Compares tools", "Reads docs"]);
        let items = &discover.steps[0].items;
        let titles: Vec<_> = items.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(titles, ["Pricing page", "G2 reviews"]);
        assert_eq!(items[0].priority.as_deref(), Some("P1"));
        assert_eq!(items[0].description, "Line one\nline two");
        assert_eq!(items[0].id, "line-2");
        // The quoted cell spans two lines, so the next rows start later.
        assert_eq!(items[1].id, "line-6");
        assert_eq!(journey.stages[1].steps[0].items[0].status, None);
    }

    #[test]
    fn problems_name_their_line_and_column() {
        let errors = read(
            "stage,step,kind,title,status,priority\n\
             Discover,Compares,touchpoint,Pricing,draft,P2\n\
             Discover,Compares,epic,Roadmap,,\n\
             Discover,Compares,solution,Beta,maybe,P9\n\
             Discover,Compares,solution\n\
             Try,,metric,Activation,,\n",
        )
        .expect_err("invalid");
        assert_eq!(
            errors,
            [
                "line 3, column \"kind\": \"epic\" is not a kind of item; use one of: \
                 touchpoint, insight, opportunity, solution, metric",
                "line 4, column \"status\": \"maybe\" is not a status of a solution; use one \
                 of: idea, planned, building, shipped",
                "line 4, column \"priority\": \"P9\" is not a priority; use one of: P0, P1, \
                 P2, P3",
                "line 5: has 3 cells, but the header names 6 columns; every row has one cell \
                 per column (quote a cell that holds a comma: \"a, b\")",
                "line 6, column \"step\": is empty; every row needs a stage, a step, a kind and \
                 a title",
            ]
        );
    }

    #[test]
    fn a_bad_header_is_one_clear_error() {
        assert_eq!(
            read("stage,step,kind,name\nA,B,insight,C\n").expect_err("no title"),
            [
                "line 1, column \"name\": is not a column of an import; the columns are: stage, \
                 step, kind, title, description, status, owner, priority, impact, effort",
                "line 1: the header has no \"title\" column; it needs stage, step, kind and title \
                 (and may have description, status, owner, priority, impact, effort)",
            ]
        );
        assert!(read("stage;step;kind;title\n").expect_err("semicolons")[0].contains("commas"));
        assert!(read("").expect_err("empty")[0].starts_with("line 1: the file is empty"));
        assert!(read("stage,step,kind,title\n").expect_err("no rows")[0].contains("no rows"));
    }

    #[test]
    fn too_many_stages_names_the_first_one_too_many() {
        let mut text = "stage,step,kind,title\n".to_owned();
        for n in 0..31 {
            text.push_str(&format!("Stage {n},Step,insight,Item {n}\n"));
        }
        assert_eq!(
            read(&text).expect_err("31 stages"),
            ["line 32, column \"stage\": the journey holds 31 stages; at most 30 are allowed"]
        );
    }
}
