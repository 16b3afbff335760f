//! Reconnect delays: exponential with full jitter and a floor, reset after a connection
//! has stayed up long enough (contract §g.2: central has no throttle on connects).

use rand::Rng;
use std::time::Duration;

/// The delay schedule. Pure: the caller passes the random source, so tests pin it.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First ceiling (`upstream.backoff_initial`); also the floor of every delay.
    initial: Duration,
    /// Largest ceiling (`upstream.backoff_max`).
    max: Duration,
    /// Failures since the last reset.
    attempt: u32,
}

impl Backoff {
    /// A schedule from `initial` doubling to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The ceiling for the current attempt: `initial · 2^attempt`, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in `[initial, ceiling]` ("full jitter" with a floor, so a
    /// long outage never turns into a tight loop), then the ceiling doubles.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        if ceiling <= self.initial {
            return self.initial;
        }
        let lo = self.initial.as_millis() as u64;
        let hi = ceiling.as_millis() as u64;
        Duration::from_millis(rng.gen_range(lo..=hi))
    }

    /// After a rejection (4003, 4001, 4029): jump straight to the cap. The next delay
    /// is uniform in `[max/2, max]`.
    pub fn to_cap(&mut self) {
        self.attempt = 31;
    }

    /// The next delay after [`Backoff::to_cap`]: at least half the cap.
    pub fn next_capped(&mut self, rng: &mut impl Rng) -> Duration {
        self.to_cap();
        let hi = self.max.as_millis() as u64;
        Duration::from_millis(rng.gen_range(hi / 2..=hi.max(1)))
    }

    /// A connection stayed up for `backoff_reset_after`: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ceilings_double_from_initial_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let table = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for want in table {
            assert_eq!(b.ceiling(), Duration::from_secs(want));
            let d = b.next_delay(&mut rng);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(want),
                "{d:?}"
            );
        }
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn a_rejection_backs_off_to_at_least_half_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let d = b.next_capped(&mut rng);
            assert!(d >= Duration::from_secs(30) && d <= Duration::from_secs(60));
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60));
    }

    #[test]
    fn delays_are_spread_not_synchronised() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
            b.to_cap();
            seen.insert(b.next_delay(&mut rng).as_millis());
        }
        assert!(seen.len() > 40, "full jitter spreads boxes apart: {seen:?}");
    }
}
