//! Per-address token buckets for the endpoints that create things (guests, calls, dev
//! tokens): a client address gets a burst, then a steady rate, and is told 429 beyond it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub per_minute: u32,
}

/// What a bucket limits. Each has its own buckets, so creating calls does not use up guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateGuest,
    CreateCall,
    DevToken,
}

/// Addresses tracked at once. Beyond it, full (idle) buckets are forgotten first; if every
/// bucket is in use, new addresses are refused until some refill: failing closed keeps memory
/// bounded under a flood of spoofed-looking sources.
const MAX_TRACKED: usize = 50_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(Action, IpAddr), Bucket>>,
}

/// The key of an address: IPv4 as is, IPv6 by its /64 (one host usually owns a whole /64,
/// so per-address keys there would be free to rotate). Unknown peers share one key.
pub fn address_key(addr: Option<IpAddr>) -> IpAddr {
    match addr {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
    }
}

impl RateLimiter {
    fn lock(&self) -> MutexGuard<'_, HashMap<(Action, IpAddr), Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one token for `action` from `addr`'s bucket, or says how long until one is free.
    pub fn take(&self, action: Action, addr: Option<IpAddr>, rate: Rate) -> Result<(), Duration> {
        let burst = f64::from(rate.burst.max(1));
        let per_sec = f64::from(rate.per_minute) / 60.0;
        let now = Instant::now();
        let refill = |b: &mut Bucket| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * per_sec).min(burst);
            b.last = now;
        };
        let mut buckets = self.lock();
        let key = (action, address_key(addr));
        if !buckets.contains_key(&key) && buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| {
                refill(b);
                b.tokens < burst
            });
            if buckets.len() >= MAX_TRACKED {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        refill(bucket);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if per_sec > 0.0 {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        } else {
            Err(Duration::from_secs(60))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_per_address_and_action() {
        let limiter = RateLimiter::default();
        let rate = Rate {
            burst: 3,
            per_minute: 1,
        };
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(limiter.take(Action::CreateGuest, a, rate).is_ok());
        }
        assert!(limiter.take(Action::CreateGuest, a, rate).is_err());
        assert!(limiter.take(Action::CreateCall, a, rate).is_ok());
        assert!(limiter.take(Action::CreateGuest, b, rate).is_ok());
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(address_key(Some(one)), address_key(Some(other)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(Some(mapped)), IpAddr::from([10, 0, 0, 1]));
    }
}
