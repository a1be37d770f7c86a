//! Brute-force protection: failed authentications are counted per client address (an IPv6
//! address counts with its whole /64, which one client usually holds), and past a limit the
//! address gets 429 with `Retry-After` instead of 401. Only failures are counted and only
//! failures are refused, so a valid key is never slowed, even from a busy address.
//!
//! The table is bounded: expired windows are dropped at most once a second, and when it is
//! full every address not yet in it shares one window, so a flood from many addresses costs
//! memory and time that do not grow with it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most; past this the rest share [`OVERFLOW`].
const TRACKED_MAX: usize = 100_000;
/// Where addresses go when the table is full.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
/// Expired windows are dropped at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

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
        Self { max_failures, window, table: Mutex::new(table) }
    }

    /// Records a failed authentication from `ip`. Returns how long to wait when the address is
    /// over its limit (answer 429), or `None` (answer 401).
    pub fn failed(&self, ip: IpAddr) -> Option<Duration> {
        self.failed_at(ip, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        // A poisoned lock only means a panic elsewhere; the counts are still usable.
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let table = limiter.table.lock().expect("lock");
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
