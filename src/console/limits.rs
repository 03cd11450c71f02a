//! Sign-in limits: after [`MAX_FAILURES`] failed sign-ins within [`WINDOW`] for one account
//! (any address typed, known or not) or from one IP, that key is refused (429) for
//! [`WINDOW`]. Kept in memory, per node: a restart forgets them, which costs an attacker a
//! restart they cannot cause.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed within [`WINDOW`] before a key is blocked.
pub const MAX_FAILURES: usize = 10;

/// How far back failures count, and how long a block lasts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Above this many tracked keys, forget the ones with nothing recent.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Default)]
struct Key {
    failures: Vec<Instant>,
    blocked_until: Option<Instant>,
}

/// What one key (`ip:…` or `account:…`) has done lately.
#[derive(Default)]
pub struct SignInLimits {
    // A std mutex: held for a few comparisons, never across an await.
    keys: Mutex<HashMap<String, Key>>,
}

fn ip_key(ip: IpAddr) -> String {
    // IPv6 clients are keyed by their /64, as the sign-up limits are.
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
        v4 => v4,
    };
    format!("ip:{ip}")
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.trim().to_lowercase())
}

impl SignInLimits {
    /// Whether a sign-in for `account` from `ip` may be tried now.
    pub fn allowed(&self, ip: IpAddr, account: &str, now: Instant) -> bool {
        let keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        [ip_key(ip), account_key(account)].iter().all(|k| {
            keys.get(k)
                .and_then(|k| k.blocked_until)
                .is_none_or(|until| now >= until)
        })
    }

    /// Counts a failed sign-in against both keys, blocking a key that reaches the limit.
    pub fn failed(&self, ip: IpAddr, account: &str, now: Instant) {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.len() > PRUNE_ABOVE {
            keys.retain(|_, k| {
                k.blocked_until.is_some_and(|u| u > now)
                    || k.failures.iter().any(|t| now.duration_since(*t) < WINDOW)
            });
        }
        for name in [ip_key(ip), account_key(account)] {
            let k = keys.entry(name).or_default();
            k.failures.retain(|t| now.duration_since(*t) < WINDOW);
            k.failures.push(now);
            if k.failures.len() >= MAX_FAILURES {
                k.blocked_until = Some(now + WINDOW);
                k.failures.clear();
            }
        }
    }

    /// A successful sign-in clears the account's failures (not the IP's).
    pub fn succeeded(&self, account: &str) {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.remove(&account_key(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_block_the_account_and_the_ip_for_fifteen_minutes() {
        let l = SignInLimits::default();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..MAX_FAILURES {
            assert!(l.allowed(ip, "ed@example.com", t0), "attempt {i}");
            l.failed(ip, "ed@example.com", t0);
        }
        assert!(
            !l.allowed(ip, "someone@example.com", t0),
            "the IP is blocked"
        );
        assert!(
            !l.allowed(other, "ED@example.com", t0),
            "the account is blocked"
        );
        assert!(l.allowed(other, "someone@example.com", t0));
        assert!(l.allowed(ip, "ed@example.com", t0 + WINDOW));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let l = SignInLimits::default();
        let t0 = Instant::now();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            l.failed(ip, "a@example.com", t0);
        }
        l.failed(ip, "a@example.com", t0 + WINDOW);
        assert!(l.allowed(ip, "a@example.com", t0 + WINDOW));
    }
}
