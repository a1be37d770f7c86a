//! The keys recently authenticated, by token hash (SQLite only): a bounded cache in front of the
//! database, so a key in use is checked without a query and memory does not grow with the
//! number of keys the server holds. A miss reads the one row by its token hash (a unique
//! index) and keeps it.
//!
//! Two generations: lookups promote from the older to the newer, and when the newer is full
//! (or older than [`GENERATION_AGE`]) the older is dropped and the newer takes its place. So at
//! most twice [`KeyCache::capacity`] keys are held, and a key unused for two generations is
//! gone.
//!
//! Correctness of a revoke: every key write re-reads its row into the cache (or drops it) after
//! it commits and before it returns, and bumps [`KeyCache::epoch`]. A miss notes the epoch
//! before reading the database and keeps what it read only if no write came in between, so a
//! read that began before a revoke committed can never put the old row back.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::token::TokenHash;

/// The most keys one generation holds by default (two are held at most).
pub const DEFAULT_CAPACITY: usize = 50_000;

/// A generation older than this makes way for a new one at the next housekeeping, so a key
/// unused for twice as long leaves memory.
pub const GENERATION_AGE: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Generations<V> {
    newer: HashMap<TokenHash, V>,
    older: HashMap<TokenHash, V>,
    started: Instant,
    /// Bumped by every write that changes what a cached key says.
    epoch: u64,
}

/// See the module's documentation. `V` is what is kept of a key (`keys::IndexedKey`); the
/// cache knows nothing of it but that it can be cloned out.
#[derive(Debug)]
pub(crate) struct KeyCache<V> {
    capacity: usize,
    inner: RwLock<Generations<V>>,
}

impl<V: Clone> KeyCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: RwLock::new(Generations {
                newer: HashMap::new(),
                older: HashMap::new(),
                started: Instant::now(),
                epoch: 0,
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Generations<V>> {
        // Entries are plain values replaced whole; a panic elsewhere cannot leave one torn.
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Generations<V>> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached key of `hash`, if it is cached (promoted to the newer generation).
    pub(crate) fn get(&self, hash: &TokenHash) -> Option<V> {
        {
            let generations = self.read();
            if let Some(key) = generations.newer.get(hash) {
                return Some(key.clone());
            }
            if !generations.older.contains_key(hash) {
                return None;
            }
        }
        let mut generations = self.write();
        let key = generations.older.remove(hash)?;
        self.put(&mut generations, *hash, key.clone());
        Some(key)
    }

    /// The write count now: pass it to [`Self::insert_read`] with what is read after it.
    pub(crate) fn epoch(&self) -> u64 {
        self.read().epoch
    }

    /// Keeps `key`, read from the database after [`Self::epoch`] said `epoch`, unless a write
    /// changed a key since (it may be this one, and what was read may be older than it).
    pub(crate) fn insert_read(&self, hash: TokenHash, key: V, epoch: u64) {
        let mut generations = self.write();
        if generations.epoch == epoch {
            self.put(&mut generations, hash, key);
        }
    }

    /// After a key's row was written: the cache says what the row says now (a key not cached
    /// stays out; its first use reads it).
    pub(crate) fn refresh(&self, hash: TokenHash, key: V) {
        let mut generations = self.write();
        generations.epoch += 1;
        if let Some(cached) = generations.newer.get_mut(&hash) {
            *cached = key;
        } else if let Some(cached) = generations.older.get_mut(&hash) {
            *cached = key;
        }
    }

    /// Drops every cached key `stale` selects (the keys of a workspace an import hid or
    /// showed, say); their next use reads them again.
    pub(crate) fn forget(&self, stale: impl Fn(&V) -> bool) {
        let mut generations = self.write();
        generations.epoch += 1;
        generations.newer.retain(|_, key| !stale(key));
        generations.older.retain(|_, key| !stale(key));
    }

    /// Starts a new generation when the newer one is older than `age`: what nobody used for
    /// two generations leaves memory.
    pub(crate) fn age_out(&self, age: Duration) {
        let mut generations = self.write();
        if generations.started.elapsed() >= age {
            Self::turn(&mut generations);
        }
    }

    /// How many keys are cached (both generations).
    pub(crate) fn len(&self) -> usize {
        let generations = self.read();
        generations.newer.len() + generations.older.len()
    }

    fn put(&self, generations: &mut Generations<V>, hash: TokenHash, key: V) {
        if generations.newer.len() >= self.capacity && !generations.newer.contains_key(&hash) {
            Self::turn(generations);
        }
        generations.older.remove(&hash);
        generations.newer.insert(hash, key);
    }

    fn turn(generations: &mut Generations<V>) {
        generations.older = std::mem::take(&mut generations.newer);
        generations.started = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key as the tests keep it: its workspace and whether it is revoked.
    fn test_indexed_key(workspace_id: i64, revoked: bool) -> (i64, bool) {
        (workspace_id, revoked)
    }

    fn hash(n: u8) -> TokenHash {
        TokenHash([n; 32])
    }

    #[test]
    fn a_read_that_began_before_a_revoke_never_puts_the_old_key_back() {
        let cache = KeyCache::new(10);
        // A miss notes the epoch, reads the active row; a revoke commits and refreshes first.
        let epoch = cache.epoch();
        cache.refresh(hash(1), test_indexed_key(1, true));
        cache.insert_read(hash(1), test_indexed_key(1, false), epoch);
        assert!(cache.get(&hash(1)).is_none(), "the stale read was not kept");
        // Read again after the revoke: kept, and revoked.
        let epoch = cache.epoch();
        cache.insert_read(hash(1), test_indexed_key(1, true), epoch);
        assert!(cache.get(&hash(1)).expect("cached").1);
        // A revoke of a cached key replaces it in place.
        let epoch = cache.epoch();
        cache.insert_read(hash(2), test_indexed_key(2, false), epoch);
        cache.refresh(hash(2), test_indexed_key(2, true));
        assert!(cache.get(&hash(2)).expect("cached").1);
        // A workspace's keys are forgotten together.
        cache.forget(|key| key.0 == 2);
        assert!(cache.get(&hash(2)).is_none());
        assert!(cache.get(&hash(1)).is_some());
    }

    #[test]
    fn the_cache_holds_at_most_two_generations_and_idle_keys_leave() {
        let cache = KeyCache::new(4);
        for n in 0..50 {
            cache.insert_read(hash(n), test_indexed_key(1, false), cache.epoch());
            assert!(cache.len() <= 8, "{} keys held", cache.len());
        }
        // A key in use is promoted, so it outlives the turn of a generation.
        cache.insert_read(hash(100), test_indexed_key(1, false), cache.epoch());
        for n in 0..3 {
            cache.insert_read(hash(200 + n), test_indexed_key(1, false), cache.epoch());
            assert!(cache.get(&hash(100)).is_some());
        }
        for n in 0..6 {
            cache.insert_read(hash(210 + n), test_indexed_key(1, false), cache.epoch());
            assert!(cache.get(&hash(100)).is_some(), "used each time, still there");
        }
        // Past their age, two turns leave nothing unused.
        cache.age_out(Duration::ZERO);
        cache.age_out(Duration::ZERO);
        assert_eq!(cache.len(), 0);
    }
}
