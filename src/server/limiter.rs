//! Brute-force protection: failed authentications are counted per client address (an IPv6
//! address counts with its whole /64, which one client usually holds), and past a limit the
//! address gets 429 with `Retry-After` instead of 401. Only failures are counted and only
//! failures are refused, so a valid key is never slowed, even from a busy address.
//!
//! An address over its limit is refused before its token is looked up in the database
//! ([`AuthLimiter::blocked`]), so a flood of made-up tokens costs no query. A key in use is not
//! slowed by it: one cached in memory (SQLite) is answered before the check, and one this
//! server found valid within the last window or two is vouched for ([`AuthLimiter::vouch`])
//! and still looked up (PostgreSQL, where every request reads the key, so a revoke counts).
//!
//! The table is bounded: expired windows are dropped at most once a second, and when it is
//! full every address not yet in it shares one window, so a flood from many addresses costs
//! memory and time that do not grow with it. The vouched tokens are too: two generations of
//! at most [`VOUCHED_MAX`] hashes, turned every window.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::token::TokenHash;

/// Addresses tracked at most; past this the rest share [`OVERFLOW`].
const TRACKED_MAX: usize = 100_000;
/// Where addresses go when the table is full.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
/// Expired windows are dropped at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Token hashes vouched for per generation at most (32 bytes each).
pub const VOUCHED_MAX: usize = 50_000;

/// The address a client is counted under: IPv4 as it is (also when mapped into IPv6), IPv6 by
/// its /64.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The network an OAuth client registration counts under: an IPv4 /24 and an IPv6 /48 (IPv4
/// inside IPv6 as IPv4). Registrations are rows a stranger leaves in the database, so they are
/// bounded per network one party can cheaply hold, not per address: an IPv6 site is given a
/// /48 (tunnel brokers hand them out free, and a /64 grouping would give such a site 65,536
/// groups), and a /24 is the smallest IPv4 block routed between networks.
pub fn registration_group(ip: IpAddr) -> ipnet::IpNet {
    let (ip, prefix) = match ip {
        IpAddr::V4(_) => (ip, 24),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), 24),
            None => (ip, 48),
        },
    };
    // The prefix lengths are within both families' bounds.
    ipnet::IpNet::new(ip, prefix).map_or_else(|_| ipnet::IpNet::from(ip), |net| net.trunc())
}

#[derive(Debug)]
pub struct AuthLimiter {
    max_failures: u32,
    window: Duration,
    table: Mutex<Table>,
    vouched: Mutex<Vouched>,
}

/// Keys found valid lately, by token hash: the newer generation and the one before it.
#[derive(Debug)]
struct Vouched {
    newer: HashSet<TokenHash>,
    older: HashSet<TokenHash>,
    started: Instant,
}

#[derive(Debug)]
struct Table {
    windows: HashMap<IpAddr, Window>,
    pruned: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl AuthLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        let table = Table { windows: HashMap::new(), pruned: Instant::now() };
        let vouched =
            Vouched { newer: HashSet::new(), older: HashSet::new(), started: Instant::now() };
        Self { max_failures, window, table: Mutex::new(table), vouched: Mutex::new(vouched) }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A poisoned lock only means a panic elsewhere; the counts are still usable.
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn vouched(&self) -> std::sync::MutexGuard<'_, Vouched> {
        self.vouched.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `ip` must wait when it is already over its limit, without counting anything:
    /// asked before a token is looked up in the database, so an address past its limit costs
    /// no query. `None`: go on.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        self.blocked_at(ip, Instant::now())
    }

    fn blocked_at(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.table();
        let group = address_group(ip);
        // Only an address with a window of its own: a full table counts newcomers together
        // (see `failed_at`), but a newcomer's first lookup is still made, so a valid key from
        // a new address is never refused for a flood spread over many others.
        let window = table.windows.get(&group)?;
        let age = now.duration_since(window.started);
        (age < self.window && window.failures > self.max_failures)
            .then(|| self.window.saturating_sub(age))
    }

    /// Notes that `hash` is a valid key's, so an address over its limit may still use it
    /// (looked up as usual, so a revoke counts) for a window or two after.
    pub fn vouch(&self, hash: &TokenHash) {
        self.vouch_at(hash, Instant::now());
    }

    fn vouch_at(&self, hash: &TokenHash, now: Instant) {
        let mut vouched = self.vouched();
        if vouched.newer.contains(hash) {
            return;
        }
        if vouched.newer.len() >= VOUCHED_MAX || now.duration_since(vouched.started) >= self.window
        {
            vouched.older = std::mem::take(&mut vouched.newer);
            vouched.started = now;
        }
        vouched.newer.insert(*hash);
    }

    /// Whether [`Self::vouch`] noted `hash` within about the last two windows.
    pub fn is_vouched(&self, hash: &TokenHash) -> bool {
        let vouched = self.vouched();
        vouched.newer.contains(hash) || vouched.older.contains(hash)
    }

    /// Records a failed authentication from `ip`. Returns how long to wait when the address is
    /// over its limit (answer 429), or `None` (answer 401).
    pub fn failed(&self, ip: IpAddr) -> Option<Duration> {
        self.failed_at(ip, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut table = self.table();
        if now.duration_since(table.pruned) >= PRUNE_EVERY {
            table.windows.retain(|_, w| now.duration_since(w.started) < self.window);
            table.pruned = now;
        }
        let mut group = address_group(ip);
        if table.windows.len() >= TRACKED_MAX && !table.windows.contains_key(&group) {
            group = OVERFLOW;
        }
        let window = table.windows.entry(group).or_insert(Window { started: now, failures: 0 });
        if now.duration_since(window.started) >= self.window {
            *window = Window { started: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
        (window.failures > self.max_failures)
            .then(|| self.window.saturating_sub(now.duration_since(window.started)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn only_the_failures_past_the_limit_are_refused_per_address() {
        let limiter = AuthLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!((0..3).filter_map(|_| limiter.failed(a)).count(), 0);
        let wait = limiter.failed(a).expect("the fourth failure is limited");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(58));
        assert!(limiter.failed(b).is_none(), "another address has its own budget");
    }

    #[test]
    fn an_ipv6_client_counts_with_its_64_and_the_table_stays_bounded() {
        let limiter = AuthLimiter::new(2, Duration::from_secs(60));
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(limiter.failed(one).is_none() && limiter.failed(same).is_none());
        assert!(limiter.failed(same).is_some(), "one /64, one budget");
        assert!(limiter.failed(other).is_none());
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("ip");
        assert_eq!(address_group(mapped), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));

        let start = Instant::now();
        for i in 0..(TRACKED_MAX as u32 + 500) {
            limiter.failed_at(IpAddr::V4(Ipv4Addr::from(i)), start);
        }
        let table = limiter.table();
        assert!(table.windows.len() <= TRACKED_MAX + 1, "{}", table.windows.len());
        assert!(table.windows[&OVERFLOW].failures >= 500, "the rest share one window");
    }

    #[test]
    fn registrations_count_by_ipv4_24_and_ipv6_48() {
        let group = |ip: &str| registration_group(ip.parse().expect("ip")).to_string();
        assert_eq!(group("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(group("::ffff:203.0.113.77"), "203.0.113.0/24");
        assert_eq!(group("2001:db8:1:2:3::9"), "2001:db8:1::/48");
        assert_eq!(group("2001:db8:1:ffff::1"), group("2001:db8:1::1"));
        assert_ne!(group("2001:db8:2::1"), group("2001:db8:1::1"));
    }

    #[test]
    fn an_address_over_its_limit_is_blocked_without_counting_and_vouched_keys_are_remembered() {
        let limiter = AuthLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let start = Instant::now();
        assert!(limiter.blocked_at(a, start).is_none(), "nothing failed yet");
        limiter.failed_at(a, start);
        limiter.failed_at(a, start);
        assert!(limiter.blocked_at(a, start).is_none(), "at the limit, not over it");
        assert!(limiter.failed_at(a, start).is_some());
        for _ in 0..5 {
            let wait = limiter.blocked_at(a, start + Duration::from_secs(10)).expect("blocked");
            assert_eq!(wait, Duration::from_secs(50));
        }
        assert_eq!(limiter.table().windows[&a].failures, 3, "asking counts nothing");
        assert!(limiter.blocked_at([10, 0, 0, 2].into(), start).is_none());
        assert!(limiter.blocked_at(a, start + Duration::from_secs(60)).is_none(), "window over");

        let (one, two) = (TokenHash([1; 32]), TokenHash([2; 32]));
        assert!(!limiter.is_vouched(&one));
        limiter.vouch_at(&one, start);
        assert!(limiter.is_vouched(&one) && !limiter.is_vouched(&two));
        limiter.vouch_at(&two, start + Duration::from_secs(61));
        assert!(limiter.is_vouched(&one), "kept one more window");
        limiter.vouch_at(&two, start + Duration::from_secs(62));
        limiter.vouch_at(&TokenHash([3; 32]), start + Duration::from_secs(122));
        assert!(!limiter.is_vouched(&one), "gone after two windows unused");
        assert!(limiter.is_vouched(&two));
        for i in 0..(VOUCHED_MAX as u32 * 2 + 10) {
            let mut bytes = [0; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            limiter.vouch_at(&TokenHash(bytes), start + Duration::from_secs(122));
        }
        let vouched = limiter.vouched();
        assert!(vouched.newer.len() + vouched.older.len() <= 2 * VOUCHED_MAX, "bounded");
    }

    #[test]
    fn the_window_resets() {
        let limiter = AuthLimiter::new(1, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let start = Instant::now();
        assert!(limiter.failed_at(a, start).is_none());
        assert!(limiter.failed_at(a, start + Duration::from_secs(59)).is_some());
        let later = start + Duration::from_secs(61);
        assert!(limiter.failed_at(a, later).is_none(), "a new window starts after the old one");
    }
}
