//! `custory-mcp status`: what the other commands would use, and whether it works, like
//! `gh auth status`: the server and where its URL came from, whether it answers (and its
//! version), the owner credential and where it is kept (never the credential itself), whether
//! the server accepts it, and the workspace commands act on. Exit 1, with the command to run,
//! when something is missing.
//!
//! Each line is a [`Row`]; who the credential belongs to (`whoami`) is one of them.

use serde::Serialize;

use super::shared::{self, WorkspaceFrom};
use super::{Given, GlobalArgs};
use crate::client::{self, AdminClient, PageQuery, WorkspacesQuery};
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;
use crate::secrets::{self, CredentialStore, Saved};
use crate::token::PlainToken;

/// What `status --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    server: ServerPart,
    credential: CredentialPart,
    /// Who the credential belongs to and what they may do (when the server accepted it).
    who: Option<crate::api::WhoAmIResponse>,
    workspace: Option<WorkspacePart>,
    /// The workspace's active keys that expire within 7 days (when it was read).
    #[serde(skip_serializing_if = "Option::is_none")]
    expiring: Option<ExpiringPart>,
    /// Whether commands that need a workspace would work.
    usable: bool,
    /// What stops them, and what to run.
    problem: Option<Problem>,
}

#[derive(Debug, Serialize)]
struct ServerPart {
    url: String,
    from: Given,
    reachable: bool,
    version: Option<String>,
}

/// Where the owner credential is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Kept {
    Env,
    Keyring,
    File,
}

#[derive(Debug, Serialize)]
struct CredentialPart {
    /// Whose kind of credential: the server's owner credential or a member's own.
    kind: Option<CredentialKind>,
    /// Where it is (none: no credential).
    from: Option<Kept>,
    /// The credentials file, when it is there.
    file: Option<String>,
    /// Whether the server accepted it (none: not asked).
    accepted: Option<bool>,
    /// How many workspaces the credential may see (when the server accepted it), counted up
    /// to [`WORKSPACES_COUNTED`].
    workspaces: Option<usize>,
    /// It may see more than [`WORKSPACES_COUNTED`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    more_workspaces: bool,
}

/// How many workspaces `status` counts at most: one page, never the whole list.
const WORKSPACES_COUNTED: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum CredentialKind {
    Owner,
    Member,
}

impl CredentialKind {
    fn of(token: &PlainToken) -> Self {
        match token.kind() {
            crate::token::TokenKind::Member => Self::Member,
            _ => Self::Owner,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Owner => "owner credential",
            Self::Member => "member credential",
        }
    }
}

#[derive(Debug, Serialize)]
struct WorkspacePart {
    slug: String,
    from: WorkspaceFrom,
    /// Whether the server has it (none: not asked).
    exists: Option<bool>,
}

/// Keys that expire soon, counted up to [`EXPIRING_COUNTED`], and the command that lists them.
#[derive(Debug, Serialize)]
struct ExpiringPart {
    keys: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    more: bool,
    command: String,
}

/// How many expiring keys `status` counts at most: one page.
const EXPIRING_COUNTED: u32 = 100;

#[derive(Debug, Serialize)]
struct Problem {
    message: String,
    hint: Option<String>,
}

impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<CliError>() {
            Ok(cli) => Self { message: cli.message, hint: cli.hint },
            Err(other) => Self { message: format!("{other:#}"), hint: None },
        }
    }
}

/// One line of the report: a label and what it says.
type Row = (&'static str, String);

pub fn run(global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    let report = inspect(global)?;
    if printer.json {
        printer.json(&report)?;
    } else {
        let rows: Vec<(&str, String)> = rows(&report)
            .into_iter()
            .map(|(label, value)| (label, crate::api::displayable(&value)))
            .collect();
        printer.data(&crate::output::fields(&rows));
    }
    match report.problem {
        None => Ok(ExitStatus::Success),
        Some(Problem { message, hint }) => {
            let error = CliError::failure(message);
            Err(match hint {
                Some(hint) => error.hint(hint),
                None => error,
            }
            .into())
        }
    }
}

fn inspect(global: &GlobalArgs) -> anyhow::Result<Report> {
    let server_url = global.server.clone();
    let mut problem: Option<Problem> = None;
    let health = client::probe(&server_url).map_err(|error| problem = Some(error.into())).ok();
    let server = ServerPart {
        url: server_url.clone(),
        from: global.server_from,
        reachable: health.is_some(),
        version: health.map(|h| h.version),
    };

    // The credential, as `AdminClient::connect` finds it: the environment first.
    let (token, kept, file) = match std::env::var("CUSTORY_OWNER_TOKEN") {
        Ok(raw) => match PlainToken::parse(&raw) {
            Ok(token) => (Some(token), Some(Kept::Env), None),
            Err(error) => {
                problem.get_or_insert(Problem {
                    message: format!(
                        "CUSTORY_OWNER_TOKEN is not a valid owner credential: {error}"
                    ),
                    hint: Some(
                        "copy the csa_… credential again, or unset CUSTORY_OWNER_TOKEN".into(),
                    ),
                });
                (None, Some(Kept::Env), None)
            }
        },
        Err(_) => match CredentialStore::open()?.find(&secrets::owner_account(&server_url))? {
            Some((token, Saved::Keyring)) => (Some(token), Some(Kept::Keyring), None),
            Some((token, Saved::File(path))) => {
                (Some(token), Some(Kept::File), Some(path.display().to_string()))
            }
            None => {
                problem.get_or_insert(Problem {
                    message: format!("no owner credential is saved for {server_url}"),
                    hint: Some(format!("run `custory-mcp login --server {server_url}`")),
                });
                (None, None, None)
            }
        },
    };

    // Asked of the server only when both are there.
    let mut who = None;
    let listed = match (&token, server.reachable) {
        (Some(token), true) => {
            let listed = AdminClient::with_token(&server_url, token.clone()).and_then(|client| {
                let page = PageQuery { limit: Some(WORKSPACES_COUNTED), cursor: None };
                let listed = client.workspaces(&WorkspacesQuery::default(), &page)?;
                // A server from before members has no whoami: the line is left out.
                who = client.whoami().ok();
                Ok((listed, client))
            });
            match listed {
                Ok(listed) => Some(Ok(listed)),
                Err(error) => {
                    let problem_now = Problem::from(error);
                    problem.get_or_insert(problem_now);
                    Some(Err(()))
                }
            }
        }
        _ => None,
    };
    let credential = CredentialPart {
        kind: token.as_ref().map(CredentialKind::of),
        from: kept,
        file,
        accepted: listed.as_ref().map(Result::is_ok),
        workspaces: listed.as_ref().and_then(|l| l.as_ref().ok()).map(|(l, _)| l.workspaces.len()),
        more_workspaces: listed
            .as_ref()
            .and_then(|l| l.as_ref().ok())
            .is_some_and(|(l, _)| l.next_cursor.is_some()),
    };

    let asked = shared::workspace_asked(global)?;
    let mut expiring = None;
    let workspace = match listed {
        Some(Ok((_, client))) => match shared::choose_workspace(&client, asked.clone()) {
            Ok((workspace, from)) => {
                // What expires soon: a line only when something does (a failure to ask is
                // no problem of the setup).
                let filter = client::KeysQuery { expiring: true, ..client::KeysQuery::default() };
                let page = PageQuery { limit: Some(EXPIRING_COUNTED), cursor: None };
                if let Ok(found) = client.keys(&workspace.slug, &filter, &page)
                    && !found.keys.is_empty()
                {
                    let slug = workspace.slug.as_str();
                    let args = ["--workspace", slug, "keys", "list", "--expiring"];
                    let args = if global.workspace.is_some() { &args[2..] } else { &args[..] };
                    expiring = Some(ExpiringPart {
                        keys: found.keys.len(),
                        more: found.next_cursor.is_some(),
                        command: shared::command_line(global, args),
                    });
                }
                Some(WorkspacePart { slug: workspace.slug, from, exists: Some(true) })
            }
            Err(error) => {
                problem.get_or_insert(error.into());
                asked.map(|(slug, from)| WorkspacePart { slug, from, exists: Some(false) })
            }
        },
        _ => asked.map(|(slug, from)| WorkspacePart { slug, from, exists: None }),
    };
    Ok(Report { server, credential, who, workspace, expiring, usable: problem.is_none(), problem })
}

fn rows(report: &Report) -> Vec<Row> {
    let server = &report.server;
    let mut rows = vec![
        ("Server", format!("{} (from {})", server.url, server.from.describe_server())),
        (
            "Reachable",
            match &server.version {
                Some(version) => format!("yes, custory-mcp {version}"),
                None => "no".to_owned(),
            },
        ),
    ];
    let credential = &report.credential;
    let kind = credential.kind.unwrap_or(CredentialKind::Owner).describe();
    rows.push((
        "Credential",
        match (credential.from, &credential.file) {
            (Some(Kept::Env), _) => format!("{kind} from CUSTORY_OWNER_TOKEN"),
            (Some(Kept::Keyring), _) => format!("{kind} in the OS keyring"),
            (Some(Kept::File), Some(file)) => format!("{kind} in {file}"),
            (Some(Kept::File), None) => format!("{kind} in the credentials file"),
            (None, _) => "none".to_owned(),
        },
    ));
    rows.push((
        "Accepted",
        match (credential.accepted, credential.workspaces) {
            (Some(true), Some(n)) if credential.more_workspaces => {
                format!("yes (over {n} workspaces)")
            }
            (Some(true), Some(n)) => {
                format!("yes ({})", crate::output::count(n, "workspace", "workspaces"))
            }
            (Some(_), _) => "no".to_owned(),
            (None, _) => "not checked".to_owned(),
        },
    ));
    if let Some(who) = &report.who {
        rows.push(("You are", signed_in_as(who)));
    }
    rows.push((
        "Workspace",
        match &report.workspace {
            Some(w) if w.exists == Some(false) => {
                format!("{} ({}), not on the server", w.slug, w.from.describe())
            }
            Some(w) => format!("{} ({})", w.slug, w.from.describe()),
            None => "none chosen".to_owned(),
        },
    ));
    if let Some(expiring) = &report.expiring {
        let keys = match expiring.more {
            true => format!("{}+ keys", expiring.keys),
            false => crate::output::count(expiring.keys, "key", "keys"),
        };
        rows.push(("Expiring", format!("{keys} within 7 days: `{}`", expiring.command)));
    }
    rows
}

/// `the administrator (every workspace)`, or `Ana: owner of acme, viewer of beta`.
fn signed_in_as(who: &crate::api::WhoAmIResponse) -> String {
    match (who.kind, &who.name) {
        (crate::api::AuthorKind::Member, Some(name)) if who.roles.is_empty() => {
            format!("{name}, with no role in any workspace")
        }
        (crate::api::AuthorKind::Member, Some(name)) => {
            let roles: Vec<String> =
                who.roles.iter().map(|r| format!("{} of {}", r.role, r.workspace)).collect();
            format!("{name}: {}", roles.join(", "))
        }
        _ => "the administrator (every workspace, its members and keys)".to_owned(),
    }
}
