//! Each key's share of the server: how many of its requests run at once. A key with more in
//! flight waits (without holding a thread) for one of its own to finish, up to a time limit;
//! other keys never wait behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct KeyShares {
    per_key: usize,
    wait: Duration,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl KeyShares {
    pub fn new(per_key: usize, wait: Duration) -> Self {
        Self { per_key: per_key.max(1), wait, slots: Mutex::default() }
    }

    pub fn per_key(&self) -> usize {
        self.per_key
    }

    /// A slot for one request of `key_id`, or `None` when its other requests kept every slot
    /// busy for the whole wait.
    pub async fn enter(&self, key_id: &str) -> Option<OwnedSemaphorePermit> {
        let slots = {
            // A poisoned lock only means a panic elsewhere; the map is still usable.
            let mut all = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let slots = all.entry(key_id.to_owned());
            Arc::clone(slots.or_insert_with(|| Arc::new(Semaphore::new(self.per_key))))
        };
        tokio::time::timeout(self.wait, slots.acquire_owned()).await.ok()?.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_waits_for_its_own_requests_only() {
        let shares = KeyShares::new(2, Duration::from_millis(50));
        let a1 = shares.enter("a").await.expect("first");
        let _a2 = shares.enter("a").await.expect("second");
        assert!(shares.enter("a").await.is_none(), "a third waits, then gives up");
        assert!(shares.enter("b").await.is_some(), "another key does not wait");
        drop(a1);
        assert!(shares.enter("a").await.is_some(), "a slot came free");
    }
}
