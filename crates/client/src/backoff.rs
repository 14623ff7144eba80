//! When to try again: Stream's retry intervals as a small policy type.

use std::time::Duration;

/// Delays between connection attempts.
///
/// Attempt `n` (counted from 0) waits a random time in Stream's `retryInterval(n)` range, so
/// many clients that lost the same server do not come back in step:
/// max = min(500 + 2000·n, 5000) ms, min = min(max(250, 2000·(n−1)), 5000) ms.
/// The one change: the first retry after a healthy connection drops waits at most
/// `first_retry_max` (100 ms by default), since a single lost socket is usually back at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub first_retry_max: Duration,
    pub floor: Duration,
    pub step: Duration,
    pub ceiling: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            first_retry_max: Duration::from_millis(100),
            floor: Duration::from_millis(250),
            step: Duration::from_millis(2000),
            ceiling: Duration::from_millis(5000),
        }
    }
}

impl ReconnectPolicy {
    /// Stream's interval bounds for attempt `n`: `[min, max)`.
    pub fn bounds(&self, n: u32) -> (Duration, Duration) {
        let n = n.min(1000);
        let max = (self.floor * 2 + self.step * n).min(self.ceiling);
        let min = (self.step * n.saturating_sub(1))
            .max(self.floor)
            .min(self.ceiling);
        (min, max)
    }

    /// The delay before attempt `n` of a `connect_user` retry loop (official behaviour).
    pub fn connect_retry_delay(&self, n: u32, rng: &mut fastrand::Rng) -> Duration {
        let (min, max) = self.bounds(n);
        uniform(min, max, rng)
    }

    /// The delay before reconnect attempt `n` (from 0) after a connection was lost.
    pub fn reconnect_delay(&self, n: u32, rng: &mut fastrand::Rng) -> Duration {
        if n == 0 {
            uniform(Duration::ZERO, self.first_retry_max, rng)
        } else {
            self.connect_retry_delay(n, rng)
        }
    }
}

fn uniform(min: Duration, max: Duration, rng: &mut fastrand::Rng) -> Duration {
    if max <= min {
        return min;
    }
    let span = (max - min).as_micros() as u64;
    min + Duration::from_micros(rng.u64(0..span))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bounds_follow_streams_retry_interval() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.bounds(0), (ms(250), ms(500)));
        assert_eq!(p.bounds(1), (ms(250), ms(2500)));
        assert_eq!(p.bounds(2), (ms(2000), ms(4500)));
        assert_eq!(p.bounds(3), (ms(4000), ms(5000)));
        assert_eq!(p.bounds(4), (ms(5000), ms(5000)));
        assert_eq!(p.bounds(u32::MAX), (ms(5000), ms(5000)));
    }

    #[test]
    fn delays_stay_in_bounds_and_are_spread() {
        let p = ReconnectPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for n in 0..6 {
            let (min, max) = p.bounds(n);
            let samples: Vec<_> = (0..200)
                .map(|_| p.connect_retry_delay(n, &mut rng))
                .collect();
            assert!(
                samples
                    .iter()
                    .all(|d| *d >= min && (*d < max || min == max)),
                "n={n}"
            );
            if max > min {
                let distinct: std::collections::HashSet<_> = samples.iter().collect();
                assert!(distinct.len() > 100, "jittered, n={n}");
            }
        }
        for _ in 0..200 {
            assert!(p.reconnect_delay(0, &mut rng) < ms(100));
        }
        let d = p.reconnect_delay(1, &mut rng);
        assert!(d >= ms(250) && d < ms(2500));
    }
}
