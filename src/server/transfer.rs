//! The admin API's whole-workspace endpoints: `GET /api/admin/workspaces/{ws}/export` and
//! `POST /api/admin/imports?new=NAME[&slug=S] | ?workspace=SLUG [&dry_run=true]`.
//!
//! An import's body is parsed as it arrives, on a blocking thread, into the document's types:
//! the file is never held whole as bytes beside its parsed form. Each chunk must arrive within
//! the body timeout (and the whole within ten minutes), and one import or export runs at a time.
//!
//! A body sent as `Content-Type: text/csv` is a spreadsheet's rows, which become one journey
//! (`&journey=NAME`, required) added to the workspace (`store/csv.rs`); any other body is a
//! workspace document.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Buf as _;
use http_body_util::BodyExt as _;
use serde::Deserialize;

use super::AppState;
use super::admission::Owner;
use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query};
use crate::api::{self, ErrorDetail, ImportResponse};
use crate::store::content::bounded::StringGuard;
use crate::store::content::bounded::StringTooLong;
use crate::store::content::csv::CsvError;
use crate::store::content::staged::StagedImport;
use crate::store::content::transfer::ImportCounts;
use crate::store::content::transfer::{ImportError, ImportTarget, WorkspaceDocument};
use crate::store::{Store, StoreError};

/// The largest import body: 100k items with their text are ~60 MB.
pub const IMPORT_MAX_BYTES: usize = 512 * 1024 * 1024;

/// An import or export may take this long as a whole, and hold its blocking thread no longer.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(600);

/// The server's one transfer slot, or a 429 saying another transfer runs.
fn transfer_turn(state: &AppState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    std::sync::Arc::clone(&state.transfers).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "transfer_running",
            "another import or export is running on this server; retry when it has finished",
        )
        .retry_after(Duration::from_secs(5))
    })
}

pub async fn export(
    caller: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Response> {
    let turn = transfer_turn(&state)?;
    let store = std::sync::Arc::clone(&state.store);
    let doc = tokio::task::spawn_blocking(move || -> ApiResult<WorkspaceDocument> {
        let workspace = super::admin::workspace(&store, &ws)?;
        let doc = store.content().export_workspace(workspace.id)?;
        // Audited (and sent to the workspace's webhooks) once it is read, before it is sent.
        let detail = format!(
            "{} journeys, {} links, {} personas",
            doc.journeys.len(),
            doc.links.len(),
            doc.personas.len()
        );
        store.access().record_event(&crate::store::access::NewEvent {
            workspace_id: workspace.id,
            kind: crate::api::EventKind::WorkspaceExported,
            key_id: None,
            key_prefix: None,
            detail: &detail,
            actor: &caller.author(),
        })?;
        Ok(doc)
    })
    .await
    .map_err(|_| ApiError::internal())??;
    // Serialized as it is sent, in chunks: the document is never also held whole as bytes. A
    // client that stops reading for the body timeout ends it, and with it the blocking thread.
    let (chunks, mut receiver) = tokio::sync::mpsc::channel(8);
    let (idle, runtime) = (state.config.body_timeout, tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let deadline = std::time::Instant::now() + TRANSFER_DEADLINE;
        let mut out =
            ChunkWriter { chunks, buffer: Vec::with_capacity(CHUNK), idle, deadline, runtime };
        let written = serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(std::io::Error::other)
            .and_then(|()| std::io::Write::write_all(&mut out, b"\n"))
            .and_then(|()| std::io::Write::flush(&mut out));
        if let Err(error) = written {
            // The client went away, or the body ends short so the client sees the failure.
            tracing::debug!(%error, "an export stopped");
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let body = Body::from_stream(stream);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

const CHUNK: usize = 64 * 1024;

/// Sends what is written to it in chunks of [`CHUNK`] bytes, waiting while the client reads:
/// up to `idle` for each chunk, and until `deadline` in all.
struct ChunkWriter {
    chunks: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
    idle: Duration,
    deadline: std::time::Instant,
    runtime: tokio::runtime::Handle,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        let wait =
            self.idle.min(self.deadline.saturating_duration_since(std::time::Instant::now()));
        match self.runtime.block_on(tokio::time::timeout(wait, self.chunks.send(Ok(chunk)))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    /// Import into this existing, empty workspace.
    workspace: Option<String>,
    /// Import as a new workspace with this name.
    new: Option<String>,
    /// The new workspace's slug [default: made from its name].
    slug: Option<String>,
    /// CSV: the name of the journey the rows become (its slug is made from it).
    journey: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// Whether a request's body is CSV: `Content-Type: text/csv` (any parameters).
fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/csv"))
}

/// Called on an import's thread after each slice but the last, with how many were written,
/// while the writer is free: tests hold an import there to look at the server meanwhile.
#[derive(Clone, Default)]
pub struct ImportHook(pub Option<Arc<dyn Fn(usize) + Send + Sync>>);

impl std::fmt::Debug for ImportHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "ImportHook(set)" } else { "ImportHook(none)" })
    }
}

/// How long one slice of an import waits for the writer's turn (behind the writes queued
/// before it) before the import gives up.
const SLICE_WAIT: Duration = Duration::from_secs(60);

/// Writes `doc` into `target` slice by slice, each in the writer's queue like any other write
/// (`work.rs`), so the writer is free between slices; then publishes it. A failure removes
/// what was written, in slices too. Runs on the import's blocking thread.
fn write_staged(
    state: &AppState,
    runtime: &tokio::runtime::Handle,
    target: &ImportTarget,
    doc: &WorkspaceDocument,
) -> Result<(String, ImportCounts), ImportError> {
    let content = state.store.content();
    let mut import = content.stage_import(target, doc)?;
    let turn = || {
        state.writes.let_revokes_pass();
        runtime.block_on(state.writes.turn(SLICE_WAIT)).map_err(|_| {
            StoreError::TimedOut(format!(
                "the writer stayed busy for {} s; nothing was imported (try again)",
                SLICE_WAIT.as_secs()
            ))
        })
    };
    // The keys of a workspace imported into are refused while it is hidden (re-read into the
    // key index after it is hidden, before anything is written into it, and after it is shown).
    let reindex = |import: &StagedImport<'_>| {
        if let (ImportTarget::Existing(_), Some(ws)) = (target, import.workspace_id()) {
            state.store.access().reindex_workspace_keys(ws)?;
        }
        Ok::<(), StoreError>(())
    };
    let written = loop {
        let step = turn().map_err(ImportError::from).and_then(|_turn| import.write_slice(&content));
        if import.slices() == 1 {
            reindex(&import)?;
        }
        match step {
            Ok(true) => break Ok(()),
            Ok(false) => {
                if let Some(hook) = &state.config.import_hook.0 {
                    hook(import.slices());
                }
            }
            Err(error) => break Err(error),
        }
    };
    let published = written.and_then(|()| {
        let _turn = turn()?;
        import.publish(&content)
    });
    let published = published.and_then(|done| {
        reindex(&import)?;
        Ok(done)
    });
    if published.is_err() {
        loop {
            let removed = turn().and_then(|_turn| import.discard(&content));
            match removed {
                Ok(true) => {
                    if let Err(error) = reindex(&import) {
                        tracing::error!(%error, "could not re-read the keys of a workspace");
                    }
                    break;
                }
                Ok(false) => {}
                Err(error) => {
                    // What is left stays hidden, and the next start removes it.
                    tracing::error!(%error, "could not remove what a failed import wrote");
                    break;
                }
            }
        }
    }
    published
}

pub async fn import(
    owner: Owner,
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImportResponse>)> {
    if is_csv(&headers) {
        return import_csv(owner, state, query, body).await;
    }
    if query.journey.is_some() {
        return Err(ApiError::bad_request(
            "invalid_target",
            "?journey= names the journey a CSV becomes (sent as Content-Type: text/csv); a \
             workspace document names its own journeys",
        ));
    }
    let turn = transfer_turn(&state)?;
    let target = match (query.workspace, query.new) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_target",
                "give either ?workspace= (an existing, empty workspace) or ?new= (a new one), \
                 not both",
            ));
        }
        (Some(slug), None) => Target::Existing(slug),
        (None, new) => Target::New(new, query.slug),
    };
    let dry_run = query.dry_run;
    let reader = BlockingBody::new(body, state.config.body_timeout);
    let store = std::sync::Arc::clone(&state.store);
    let runtime = tokio::runtime::Handle::current();
    let work = move || -> ApiResult<ImportResponse> {
        let _turn = turn;
        let doc = parse(&store, reader)?;
        let target = match target {
            Target::Existing(slug) => {
                ImportTarget::Existing(super::admin::workspace(&store, &slug)?.id)
            }
            Target::New(name, slug) => {
                let name = name.unwrap_or_else(|| doc.workspace.name.clone());
                let name = api::validate_name(&name)
                    .map_err(|m| ApiError::unprocessable("invalid_name", m))?
                    .to_owned();
                let slug = match slug {
                    Some(slug) => api::validate_slug(&slug)
                        .map_err(|m| ApiError::unprocessable("invalid_slug", m))?
                        .to_owned(),
                    None if name == doc.workspace.name => doc.workspace.slug.clone(),
                    None => api::slugify(&name),
                };
                ImportTarget::New { name, slug }
            }
        };
        let imported = if dry_run {
            store.content().check_import(&target, &doc)
        } else {
            write_staged(&state, &runtime, &target, &doc)
        };
        let (workspace, counts) = imported.map_err(|error| match error {
            ImportError::Invalid(details) => invalid(details),
            ImportError::Store(error) => error.into(),
        })?;
        Ok(ImportResponse { workspace, journey: None, dry_run, counts })
    };
    let done = tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "an import panicked");
        ApiError::internal()
    })??;
    let status = if dry_run { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(done)))
}

/// A CSV import: its rows become one new journey of the workspace that `?workspace=` names (or
/// of a new one, `?new=`), all or nothing.
async fn import_csv(
    _: Owner,
    state: AppState,
    query: ImportQuery,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImportResponse>)> {
    let Some(journey) = query.journey else {
        return Err(ApiError::bad_request(
            "invalid_target",
            "a CSV becomes one journey: name it with ?journey=NAME",
        ));
    };
    let target = match (query.workspace, query.new) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_target",
                "give either ?workspace= (an existing workspace) or ?new= (a new one), not both",
            ));
        }
        (Some(slug), None) => Target::Existing(slug),
        (None, Some(name)) => Target::New(Some(name), query.slug),
        (None, None) => {
            return Err(ApiError::bad_request(
                "invalid_target",
                "a CSV becomes a journey of a workspace: give ?workspace=SLUG (an existing one) \
                 or ?new=NAME (a new one)",
            ));
        }
    };
    let turn = transfer_turn(&state)?;
    let dry_run = query.dry_run;
    let reader = BlockingBody::new(body, state.config.body_timeout);
    let store = std::sync::Arc::clone(&state.store);
    let work = move || -> ApiResult<ImportResponse> {
        let _turn = turn;
        let slug = if journey.chars().any(|c| c.is_ascii_alphanumeric()) {
            api::slugify(&journey)
        } else {
            "journey".to_owned()
        };
        let mut reader = reader;
        let read = crate::store::content::csv::read_journey(&mut reader, &journey, &slug);
        let doc = match read {
            Ok(doc) => doc,
            Err(CsvError::Io(error)) => return Err(body_error(&error)),
            Err(CsvError::Invalid(details)) => {
                // The client is still sending: read the rest so it gets this answer.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                return Err(invalid_csv(details));
            }
        };
        let target = match target {
            Target::Existing(slug) => {
                ImportTarget::Existing(super::admin::workspace(&store, &slug)?.id)
            }
            Target::New(name, slug) => {
                let name = api::validate_name(name.as_deref().unwrap_or_default())
                    .map_err(|m| ApiError::unprocessable("invalid_name", m))?
                    .to_owned();
                let slug = match slug {
                    Some(slug) => api::validate_slug(&slug)
                        .map_err(|m| ApiError::unprocessable("invalid_slug", m))?
                        .to_owned(),
                    None => api::slugify(&name),
                };
                ImportTarget::New { name, slug }
            }
        };
        let (workspace, counts) =
            store.content().import_journey(&target, doc, dry_run).map_err(|error| match error {
                ImportError::Invalid(details) => invalid_csv(details),
                ImportError::Store(error) => error.into(),
            })?;
        Ok(ImportResponse { workspace, journey: Some(slug), dry_run, counts })
    };
    let done = tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "an import panicked");
        ApiError::internal()
    })??;
    let status = if dry_run { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(done)))
}

enum Target {
    Existing(String),
    New(Option<String>, Option<String>),
}

/// A refused import: `code`, a sentence saying what was refused (`what`), and its problems.
fn refused(code: &'static str, what: &str, details: Vec<ErrorDetail>) -> ApiError {
    let problems = match details.as_slice() {
        [only] => format!(": {}: {}", only.path, only.message),
        several if several.len() >= crate::store::content::transfer::ERRORS_MAX => {
            format!("; the first {} problems:", several.len())
        }
        several => format!("; {} problems:", several.len()),
    };
    ApiError::unprocessable(code, format!("{what}, so nothing was imported{problems}"))
        .details(details)
}

fn invalid(details: Vec<ErrorDetail>) -> ApiError {
    refused("invalid_document", "the document is not a valid workspace", details)
}

fn invalid_csv(details: Vec<ErrorDetail>) -> ApiError {
    refused("invalid_csv", "the CSV is not a valid journey", details)
}

/// Reads the document as it arrives; a JSON error names the path where it happened. After an
/// error the rest of the body is still read (within the same bounds), so that the client, which
/// is still sending, gets the answer instead of a broken connection.
///
/// The document's limits are enforced as it is parsed (`store/content/bounded.rs`): a document
/// that crosses one is refused there, with nothing more of it parsed or held.
fn parse(store: &Store, reader: BlockingBody) -> ApiResult<WorkspaceDocument> {
    let mut reader = std::io::BufReader::new(StringGuard::new(reader));
    let mut de = serde_json::Deserializer::from_reader(&mut reader);
    let parsed = store
        .content()
        .parsing(|| serde_path_to_error::deserialize(&mut de))
        .map_err(|error| json_error(error.path().to_string(), error.into_inner()))
        .and_then(|doc| match de.end() {
            Ok(()) => Ok(doc),
            Err(error) => Err(json_error(".".to_owned(), error)),
        });
    // Not after a read error (a stalled or oversized body): reading on would fail the same way.
    if parsed.as_ref().is_err_and(|e| e.code != "body_unreadable") {
        // Past the guard: what is left is thrown away unread, so its strings do not matter.
        let mut rest = reader.into_inner().into_inner();
        let _ = std::io::copy(&mut rest, &mut std::io::sink());
    }
    parsed
}

/// A body that could not be read: too large (413), or too slow (408).
fn body_error(error: &dyn std::fmt::Display) -> ApiError {
    let message = error.to_string();
    let status = if message.contains("exceeds") {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::REQUEST_TIMEOUT
    };
    ApiError::new(status, "body_unreadable", message)
}

fn json_error(path: String, error: serde_json::Error) -> ApiError {
    if error.is_io() {
        let error = std::io::Error::from(error);
        if error.get_ref().is_some_and(|inner| inner.is::<StringTooLong>()) {
            let message = format!(
                "the document is not a valid workspace, so nothing was imported: {path}: {error}"
            );
            return ApiError::unprocessable("invalid_document", message)
                .details(vec![ErrorDetail { path, message: error.to_string() }]);
        }
        return body_error(&error);
    }
    // Not JSON from its first line (a CSV sent as a document): said so, with the way to send
    // a CSV.
    if error.is_syntax() && error.line() == 1 {
        let message = format!(
            "this is not JSON, so not a workspace document (it starts with {{); nothing was \
             imported. A CSV file is imported as a journey: `custory-mcp import --format csv \
             --journey NAME FILE` (FILE may be - for stdin): {error}"
        );
        return ApiError::unprocessable("invalid_document", message)
            .details(vec![ErrorDetail { path, message: error.to_string() }]);
    }
    let what =
        if error.is_eof() { "the JSON ends too soon" } else { "the JSON is not a workspace" };
    let message = format!("{what}; nothing was imported: {path}: {error}");
    ApiError::unprocessable("invalid_document", message)
        .details(vec![ErrorDetail { path, message: error.to_string() }])
}

/// A request body read from a blocking thread: each chunk must come within `idle`, and the
/// whole body may hold at most [`IMPORT_MAX_BYTES`].
struct BlockingBody {
    body: Body,
    chunk: Bytes,
    read: usize,
    idle: Duration,
    deadline: std::time::Instant,
    runtime: tokio::runtime::Handle,
}

impl BlockingBody {
    /// Must be called on the runtime (it keeps a handle to it).
    fn new(body: Body, idle: Duration) -> Self {
        let runtime = tokio::runtime::Handle::current();
        let deadline = std::time::Instant::now() + TRANSFER_DEADLINE;
        Self { body, chunk: Bytes::new(), read: 0, idle, deadline, runtime }
    }
}

impl Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            let left = self.deadline.saturating_duration_since(std::time::Instant::now());
            let wait = self.idle.min(left);
            let next = self.runtime.block_on(tokio::time::timeout(wait, self.body.frame()));
            match next {
                Err(_) if wait < self.idle => {
                    return Err(std::io::Error::other(format!(
                        "the body took longer than {} s; nothing was imported",
                        TRANSFER_DEADLINE.as_secs()
                    )));
                }
                Err(_) => {
                    return Err(std::io::Error::other(format!(
                        "the body stopped arriving for {} s; nothing was imported",
                        self.idle.as_secs()
                    )));
                }
                Ok(None) => return Ok(0),
                Ok(Some(Err(error))) => return Err(std::io::Error::other(error)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.read += data.len();
                        if self.read > IMPORT_MAX_BYTES {
                            return Err(std::io::Error::other(format!(
                                "the body exceeds {} MiB, the most one import may send",
                                IMPORT_MAX_BYTES >> 20
                            )));
                        }
                        self.chunk = data;
                    }
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
