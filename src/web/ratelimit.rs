//! Sign-up rate limits, per client IP and per address, kept in memory.
//!
//! They protect readers from being mail-bombed with confirmation requests and the relay's
//! reputation from form spam; they reset when the daemon restarts, which is fine for that.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota};

/// Above this many tracked keys, forget the ones whose limit has fully recovered, so a flood
/// of distinct keys cannot grow memory without bound.
const PRUNE_ABOVE: usize = 10_000;

/// Keyed limiters for `POST /subscribe`.
pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_address: DefaultKeyedRateLimiter<String>,
}

impl RateLimits {
    /// Limits with the given quotas.
    pub fn new(per_ip: Quota, per_address: Quota) -> Self {
        Self {
            per_ip: DefaultKeyedRateLimiter::keyed(per_ip),
            per_address: DefaultKeyedRateLimiter::keyed(per_address),
        }
    }

    /// Whether a sign-up from `ip` is allowed now (and counts it). IPv6 clients are keyed by
    /// their /64, since one subscriber line usually gets a whole /64.
    pub fn allow_ip(&self, ip: IpAddr) -> bool {
        let key = match ip {
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
        if self.per_ip.len() > PRUNE_ABOVE {
            self.per_ip.retain_recent();
        }
        self.per_ip.check_key(&key).is_ok()
    }

    /// Whether a sign-up for this address (canonical form) is allowed now (and counts it).
    pub fn allow_address(&self, canonical: &str) -> bool {
        if self.per_address.len() > PRUNE_ABOVE {
            self.per_address.retain_recent();
        }
        self.per_address.check_key(&canonical.to_owned()).is_ok()
    }
}

impl Default for RateLimits {
    /// 5 sign-ups a minute per IP, 3 an hour per address.
    fn default() -> Self {
        const FIVE: NonZeroU32 = NonZeroU32::new(5).expect("5 is not zero");
        const THREE: NonZeroU32 = NonZeroU32::new(3).expect("3 is not zero");
        Self::new(Quota::per_minute(FIVE), Quota::per_hour(THREE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_ipv6_by_prefix() {
        let l = RateLimits::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..5 {
            assert!(l.allow_ip(a));
        }
        assert!(!l.allow_ip(b), "same /64");
        assert!(l.allow_ip("192.0.2.1".parse().unwrap()));
        for _ in 0..3 {
            assert!(l.allow_address("a@example.com"));
        }
        assert!(!l.allow_address("a@example.com"));
        assert!(l.allow_address("b@example.com"));
    }
}
