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

    /// Forgets the keys with no request in flight or waiting: an idle key leaves memory (its
    /// next request starts a fresh share, which is what it would find anyway).
    pub fn forget_idle(&self) {
        let mut all = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|_, slots| {
            Arc::strong_count(slots) > 1 || slots.available_permits() < self.per_key
        });
    }

    /// How many keys have a share in memory.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
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
        // Idle keys leave memory; a key with a request in flight stays.
        shares.forget_idle();
        assert_eq!(shares.len(), 1, "only a's share is held (by _a2)");
    }
}

/// Each key's request rate and write rate (GCRA token buckets, from `governor`). A batch
/// counts as many requests as it has messages, and as many writes as it calls write tools.
pub struct KeyRates {
    requests: governor::DefaultKeyedRateLimiter<String>,
    writes: governor::DefaultKeyedRateLimiter<String>,
    clock: governor::clock::DefaultClock,
}

impl std::fmt::Debug for KeyRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRates").finish_non_exhaustive()
    }
}

/// A rate: so many per second, with room for a burst of so many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> governor::Quota {
        let per_second =
            std::num::NonZeroU32::new(self.per_second.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let burst =
            std::num::NonZeroU32::new(self.burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        governor::Quota::per_second(per_second).allow_burst(burst)
    }
}

/// Which of a key's rates a request went past, and when it may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverRate {
    Requests(Duration),
    Writes(Duration),
}

impl KeyRates {
    pub fn new(requests: Rate, writes: Rate) -> Self {
        Self {
            requests: governor::RateLimiter::keyed(requests.quota()),
            writes: governor::RateLimiter::keyed(writes.quota()),
            clock: governor::clock::DefaultClock::default(),
        }
    }

    /// Takes `messages` requests and `writes` writes from `key_id`'s buckets, or says which
    /// rate that would exceed (and takes nothing from the write bucket then).
    pub fn take(&self, key_id: &str, messages: usize, writes: usize) -> Result<(), OverRate> {
        use governor::clock::Clock as _;
        let key = key_id.to_owned();
        let check = |limiter: &governor::DefaultKeyedRateLimiter<String>,
                     n: usize,
                     per_second: fn(Duration) -> OverRate| {
            let Some(n) = std::num::NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)) else {
                return Ok(());
            };
            match limiter.check_key_n(&key, n) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(not_until)) => Err(per_second(not_until.wait_time_from(self.clock.now()))),
                // More at once than the burst allows at all: as long as the rate needs for it.
                Err(_) => Err(per_second(Duration::from_secs(1))),
            }
        };
        check(&self.requests, messages, OverRate::Requests)?;
        check(&self.writes, writes, OverRate::Writes)
    }

    /// Forgets keys whose buckets are full again (bounded memory).
    pub fn forget_idle(&self) {
        self.requests.retain_recent();
        self.writes.retain_recent();
    }
}
