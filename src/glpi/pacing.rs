//! Pacing of one GLPI instance (invariant 3: all workers paced by one rate
//! limiter per GLPI instance): a `governor` rate limiter and a semaphore
//! bounding requests in flight, shared by every clone of the client, and the
//! backoff used between retries. Every attempt — first tries, retries,
//! session requests — goes through [`Pacer::admit`].

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Gate in front of the wire for one GLPI instance.
pub(crate) struct Pacer {
    /// `None` = unlimited rate. See [`quota_within`] for the shape.
    limiter: Option<DefaultDirectRateLimiter>,
    in_flight: Semaphore,
    /// Set by a 429 with `Retry-After`: the server asked everyone to wait.
    paused_until: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(requests_per_second: Option<NonZeroU32>, max_in_flight: usize) -> Self {
        let limiter = requests_per_second.map(|rate| RateLimiter::direct(quota_within(rate)));
        Pacer {
            limiter,
            in_flight: Semaphore::new(max_in_flight),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits for a free in-flight slot, any server-requested pause, then the
    /// rate limiter; the request must be sent right after (the slot is
    /// taken first so that a cell granted by the limiter is not spent
    /// queueing, which would let requests bunch up behind the semaphore).
    pub(crate) async fn admit(&self) -> SemaphorePermit<'_> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the in-flight semaphore is never closed");
        loop {
            let until = *self.paused_until.lock().expect("pause lock poisoned");
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until.into()).await;
                }
                _ => break,
            }
        }
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        permit
    }

    /// Holds every request back for `wait` (a 429's `Retry-After`).
    pub(crate) fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().expect("pause lock poisoned");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }
}

/// A quota that never lets more than `rate` requests into any one-second
/// window, yet sustains close to `rate`.
///
/// With a burst of 1, every late timer wake-up (timers have ~1 ms
/// granularity) is lost for good: at 250/s that cost 20 % of the rate. A
/// small burst `b` (20 ms worth) absorbs those late wake-ups; since a
/// one-second window can then hold `sustained + b - 1` requests (one more
/// once network jitter bunches arrivals), the sustained rate is lowered by
/// `b` to stay within `rate`. Below 100/s the burst is 1 and the rate exact.
fn quota_within(rate: NonZeroU32) -> Quota {
    let burst = (rate.get() / 50).max(1);
    let sustained = if burst > 1 {
        rate.get() - burst
    } else {
        rate.get()
    };
    Quota::per_second(NonZeroU32::new(sustained).expect("burst < rate / 49"))
        .allow_burst(NonZeroU32::new(burst).expect("burst >= 1"))
}

/// Delays between retries of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubled at each following one.
    pub base_delay: Duration,
    /// Longest delay between two attempts (backoff cap).
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 = first retry): the server's
    /// `Retry-After` if given, else exponential backoff with "equal jitter"
    /// (half fixed, half random) so that workers failing together do not
    /// retry together.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let ceiling = self.backoff_ceiling(retry);
        let half = ceiling / 2;
        let jitter_nanos =
            rand::rng().random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(jitter_nanos)
    }

    /// `base * 2^retry`, capped at `max_delay`.
    fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is rare for
/// APIs; it falls back to the normal backoff).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(60),
        };
        for retry in 0..4 {
            let ceiling = Duration::from_millis(100 << retry);
            for _ in 0..50 {
                let d = policy.delay(retry, None);
                assert!(d >= ceiling / 2 && d <= ceiling, "retry {retry}: {d:?}");
            }
        }
        for _ in 0..50 {
            assert!(policy.delay(40, None) <= Duration::from_secs(1));
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| policy.delay(3, None)).collect();
        assert!(spread.len() > 1, "no jitter");
    }

    #[test]
    fn quota_stays_within_the_rate() {
        for rate in [1u32, 10, 49, 99, 100, 250, 1000, 10_000] {
            let quota = quota_within(NonZeroU32::new(rate).unwrap());
            let burst = quota.burst_size().get();
            let sustained =
                (Duration::from_secs(1).as_nanos() / quota.replenish_interval().as_nanos()) as u32;
            // Worst second: `sustained + burst - 1`, plus one for jitter
            // when bursting.
            let worst = sustained + burst - 1 + u32::from(burst > 1);
            assert!(burst >= 1 && worst <= rate, "rate {rate}: {quota:?}");
            assert!(
                sustained as f64 >= rate as f64 * 0.97,
                "rate {rate}: {quota:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(9999))),
            policy.max_retry_after
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[tokio::test]
    async fn admit_bounds_in_flight_and_spaces_requests() {
        let pacer = Pacer::new(NonZeroU32::new(20), 2);
        let a = pacer.admit().await;
        let _b = pacer.admit().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(100), pacer.admit())
                .await
                .is_err(),
            "a third request got through with 2 in flight"
        );
        drop(a);
        let start = Instant::now();
        drop(pacer.admit().await);
        drop(pacer.admit().await);
        // 20/s with a burst of 1 means 50 ms between cells.
        assert!(
            start.elapsed() >= Duration::from_millis(45),
            "{:?}",
            start.elapsed()
        );
    }
}
