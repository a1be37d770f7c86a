//! Store work off the async workers, on tokio's blocking pool: the one way a handler reaches
//! the store. Reads go straight there ([`read`]). Writes first wait for their turn at the one
//! writer in an async queue ([`write`]), so however many writes are waiting (MCP tools, admin
//! calls, OAuth registrations from strangers), they hold no thread: reads, other workspaces and
//! `/healthz` keep theirs (the pool has 8 threads; without the queue, eight writes waiting on
//! the writer held them all). A revocation skips the queue ([`revoke`]): it waits only for the
//! write under way, never behind the queued ones (a batch of 256 writes is one turn), so it is
//! in force on the very next request whatever else is waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::error::ApiError;
use crate::store::Store;

/// How long a write waits for its turn before it is answered 503 (the MCP endpoint waits
/// within its own `--call-deadline` instead).
pub const WRITE_WAIT: Duration = Duration::from_secs(10);

/// How long a long run of writes (an import) stands aside, between two of its slices, for the
/// revocations under way: each is one short transaction, so this is only reached when they
/// never stop coming.
const REVOKES_PASS: Duration = Duration::from_secs(1);

/// The writer's queue: one write on a blocking thread at a time, the rest waiting here (fairly,
/// first come first served) without a thread.
#[derive(Debug)]
pub struct Writes {
    turn: Arc<Semaphore>,
    /// Revocations waiting for the writer or under way: a long run of writes (an import's
    /// slices) lets them pass between two of its turns ([`Writes::let_revokes_pass`]), since
    /// the writer's lock is not fair and the one who just let it go may take it straight back.
    revoking: Arc<AtomicUsize>,
}

impl Default for Writes {
    fn default() -> Self {
        Self { turn: Arc::new(Semaphore::new(1)), revoking: Arc::new(AtomicUsize::new(0)) }
    }
}

/// A revocation counted in [`Writes`] while it lives.
struct Revoking(Arc<AtomicUsize>);

impl Drop for Revoking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why store work did not give its answer.
#[derive(Debug)]
pub enum Stopped {
    /// It waited longer than it may for its turn at the writer.
    Busy(Duration),
    /// It panicked (already logged).
    Panicked,
}

impl Writes {
    /// On a blocking thread, between two turns of a long run of writes: waits until no
    /// revocation is waiting for the writer or under way (each is one short transaction), for
    /// at most [`REVOKES_PASS`], so an unending stream of revocations (an admin rotating keys
    /// in a loop) cannot stall an import.
    pub fn let_revokes_pass(&self) {
        let deadline = std::time::Instant::now() + REVOKES_PASS;
        while self.revoking.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits (at most `wait`) for the writer's turn.
    pub async fn turn(&self, wait: Duration) -> Result<OwnedSemaphorePermit, Stopped> {
        let turn = Arc::clone(&self.turn).acquire_owned();
        match tokio::time::timeout(wait, turn).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; waiting the full time is the honest answer.
            Ok(Err(_)) | Err(_) => Err(Stopped::Busy(wait)),
        }
    }
}

/// Reads through the store on the blocking pool.
pub async fn read<T, E>(
    state: &AppState,
    work: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ApiError> + Send + 'static,
{
    let store = Arc::clone(&state.store);
    blocking(move || work(&store)).await.map_err(|stopped| E::from(stopped.into()))?
}

/// Writes through the store on the blocking pool, once it has the writer's turn (waited for
/// at most [`WRITE_WAIT`]).
pub async fn write<T, E>(
    state: &AppState,
    work: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ApiError> + Send + 'static,
{
    let store = Arc::clone(&state.store);
    blocking_write(&state.writes, WRITE_WAIT, move || work(&store))
        .await
        .map_err(|stopped| E::from(stopped.into()))?
}

/// Revokes through the store on the blocking pool, ahead of the writer's queue (see the
/// module's documentation): revocations are rare, short and must not wait behind writes.
pub async fn revoke<T, E>(
    state: &AppState,
    work: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ApiError> + Send + 'static,
{
    state.writes.revoking.fetch_add(1, Ordering::AcqRel);
    let _revoking = Revoking(Arc::clone(&state.writes.revoking));
    read(state, work).await
}

/// Runs `work` on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stopped> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "store work panicked");
        Stopped::Panicked
    })
}

/// Runs `work` on the blocking pool once it has the writer's turn (waited for at most `wait`).
/// The turn is held until `work` ends, even if its caller stops waiting for the answer.
pub async fn blocking_write<T: Send + 'static>(
    writes: &Writes,
    wait: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stopped> {
    let turn = writes.turn(wait).await?;
    blocking(move || {
        let answer = work();
        drop(turn);
        answer
    })
    .await
}

impl From<Stopped> for ApiError {
    fn from(stopped: Stopped) -> Self {
        match stopped {
            Stopped::Busy(waited) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "the server was busy writing for {} s and did not get to this; try again",
                    waited.as_secs()
                ),
            )
            .retry_after(Duration::from_secs(1)),
            Stopped::Panicked => ApiError::internal(),
        }
    }
}
