//! How long a line waits: retries after failures (exponential with jitter), `Retry-After`
//! (RFC 3261 §20.33) and refreshes before expiry (RFC 3261 §10.2.1: the UA refreshes before
//! the registration expires).

use std::time::Duration;

use rand::{Rng, RngCore};

/// The default first retry delay after a failure (before jitter), `retry_min` of a line.
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The default longest retry delay, `retry_max` of a line: the line never waits longer,
/// and never gives up.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);
/// The shortest first retry delay a line accepts (a smaller `retry_min` is raised to it).
pub const BACKOFF_FLOOR: Duration = Duration::from_secs(1);
/// The longest retry delay a line accepts (a larger `retry_min` or `retry_max` is lowered
/// to it).
pub const BACKOFF_CEILING: Duration = Duration::from_secs(24 * 3600);
/// The longest `Retry-After` honoured; a provider asking for more is retried after this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);
/// The lower end of the jitter: a retry waits between this share of the nominal delay and
/// the nominal delay, so that lines that failed together do not retry together.
const JITTER_LOW: f64 = 0.8;

/// Consecutive failures of a line and the delay they call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backoff {
    failures: u32,
    base: Duration,
    max: Duration,
}

impl Default for Backoff {
    /// 30 s doubling up to 30 min.
    fn default() -> Backoff {
        Backoff::new(BACKOFF_BASE, BACKOFF_MAX)
    }
}

impl Backoff {
    /// A schedule starting at `base` and doubling up to `max` (a line's `retry_min` and
    /// `retry_max`). The configuration checks both; here both are kept within
    /// [`BACKOFF_FLOOR`] and [`BACKOFF_CEILING`], and `max` is raised to `base`.
    pub(crate) fn new(base: Duration, max: Duration) -> Backoff {
        let base = base.clamp(BACKOFF_FLOOR, BACKOFF_CEILING);
        Backoff {
            failures: 0,
            base,
            max: max.clamp(base, BACKOFF_CEILING),
        }
    }

    /// The nominal delay after `failures` earlier consecutive failures: `base`, twice,
    /// four times … capped at `max` (30 s, 60 s, 120 s … 30 min by default).
    pub(crate) fn nominal(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt after one more failure, with jitter: uniform in
    /// `[0.8 · nominal, nominal]`.
    pub(crate) fn next_delay(&mut self, rng: &mut dyn RngCore) -> Duration {
        let nominal = self.nominal(self.failures);
        self.failures = self.failures.saturating_add(1);
        nominal.mul_f64(rng.gen_range(JITTER_LOW..=1.0))
    }

    /// A success: the next failure starts from `base` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The delay for a `Retry-After` of `seconds`: never earlier than asked (at least 1 s), capped
/// at [`RETRY_AFTER_MAX`], plus up to 10 % (at most 30 s) of jitter.
pub(crate) fn retry_after_delay(seconds: u32, rng: &mut dyn RngCore) -> Duration {
    let asked = Duration::from_secs(u64::from(seconds.max(1))).min(RETRY_AFTER_MAX);
    let spread = (asked / 10).min(Duration::from_secs(30));
    asked + spread.mul_f64(rng.gen_range(0.0..=1.0))
}

/// When to refresh a registration granted for `granted_secs`: at about 85 % of it (uniform
/// in 83–87 %, so that many lines spread out), at least 1 s later.
pub(crate) fn refresh_delay(granted_secs: u32, rng: &mut dyn RngCore) -> Duration {
    let granted = Duration::from_secs(u64::from(granted_secs));
    granted
        .mul_f64(rng.gen_range(0.83..=0.87))
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_to_the_cap_within_jitter() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut b = Backoff::default();
        for n in 0..20 {
            let nominal = b.nominal(n);
            let d = b.next_delay(&mut rng);
            assert!(
                d <= nominal && d >= nominal.mul_f64(JITTER_LOW),
                "{n}: {d:?}"
            );
        }
        assert_eq!(b.nominal(0), BACKOFF_BASE);
        assert_eq!(b.nominal(1), Duration::from_secs(60));
        assert_eq!(b.nominal(6), BACKOFF_MAX);
        assert_eq!(b.nominal(u32::MAX), BACKOFF_MAX);
        b.reset();
        assert!(b.next_delay(&mut rng) <= BACKOFF_BASE);
    }

    #[test]
    fn schedule_follows_retry_min_and_retry_max() {
        let secs = Duration::from_secs;
        let b = Backoff::new(secs(2), secs(5));
        let nominal: Vec<_> = (0..5).map(|n| b.nominal(n)).collect();
        assert_eq!(nominal, [secs(2), secs(4), secs(5), secs(5), secs(5)]);
        // Out-of-range values (the configuration refuses them) are made usable.
        let b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!((b.nominal(0), b.nominal(9)), (BACKOFF_FLOOR, BACKOFF_FLOOR));
        let b = Backoff::new(secs(60), secs(10));
        assert_eq!((b.nominal(0), b.nominal(3)), (secs(60), secs(60)));
        let mut b = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(b.nominal(u32::MAX), BACKOFF_CEILING);
        let mut rng = StdRng::seed_from_u64(6);
        assert!(b.next_delay(&mut rng) <= BACKOFF_CEILING);
    }

    #[test]
    fn retry_after_is_never_early_and_bounded() {
        let mut rng = StdRng::seed_from_u64(4);
        for secs in [0, 1, 120, 3600, u32::MAX] {
            let d = retry_after_delay(secs, &mut rng);
            let asked = Duration::from_secs(u64::from(secs.max(1))).min(RETRY_AFTER_MAX);
            assert!(
                d >= asked && d <= asked + Duration::from_secs(30),
                "{secs}: {d:?}"
            );
        }
    }

    #[test]
    fn refresh_at_about_85_percent() {
        let mut rng = StdRng::seed_from_u64(5);
        let d = refresh_delay(3600, &mut rng);
        assert!(d >= Duration::from_secs(2988) && d <= Duration::from_secs(3132));
        assert_eq!(refresh_delay(0, &mut rng), Duration::from_secs(1));
    }
}
