//! Brute-force protection: failed authentications are counted per client address, and past a
//! limit the address gets 429 with `Retry-After` instead of 401. Only failures are counted and
//! only failures are refused, so a valid key is never slowed, even from a busy address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked addresses, expired windows are dropped before adding another.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct AuthLimiter {
    max_failures: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl AuthLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max_failures, window, windows: Mutex::default() }
    }

    /// Records a failed authentication from `ip`. Returns how long to wait when the address is
    /// over its limit (answer 429), or `None` (answer 401).
    pub fn failed(&self, ip: IpAddr) -> Option<Duration> {
        self.failed_at(ip, Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        // A poisoned lock only means a panic elsewhere; the counts are still usable.
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, w| now.duration_since(w.started) < self.window);
        }
        let window = windows.entry(ip).or_insert(Window { started: now, failures: 0 });
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
