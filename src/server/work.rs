//! Store work off the async workers, on tokio's blocking pool. Reads go straight there. Writes
//! first wait for their turn at the one writer in an async queue ([`Writes`]), so however many
//! writes are waiting, they hold no thread: reads, other workspaces and `/healthz` keep theirs
//! (the pool has 8 threads; without the queue, eight writes waiting on the writer held them all).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The writer's queue: one write on a blocking thread at a time, the rest waiting here (fairly,
/// first come first served) without a thread.
#[derive(Debug)]
pub struct Writes {
    turn: Arc<Semaphore>,
}

impl Default for Writes {
    fn default() -> Self {
        Self { turn: Arc::new(Semaphore::new(1)) }
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

/// Runs `work` on the blocking pool.
pub async fn read<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stopped> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "store work panicked");
        Stopped::Panicked
    })
}

/// Runs `work` on the blocking pool once it has the writer's turn (waited for at most `wait`).
/// The turn is held until `work` ends, even if its caller stops waiting for the answer.
pub async fn write<T: Send + 'static>(
    writes: &Writes,
    wait: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stopped> {
    let turn = writes.turn(wait).await?;
    read(move || {
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
