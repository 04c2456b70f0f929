//! How long a line waits: retries after failures (exponential with jitter), `Retry-After`
//! (RFC 3261 §20.33) and refreshes before expiry (RFC 3261 §10.2.1: the UA refreshes before
//! the registration expires).

use std::time::Duration;

use rand::{Rng, RngCore};

/// The first retry delay after a failure (before jitter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest retry delay: the line never waits longer, and never gives up.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);
/// The longest `Retry-After` honoured; a provider asking for more is retried after this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);
/// The lower end of the jitter: a retry waits between this share of the nominal delay and
/// the nominal delay, so that lines that failed together do not retry together.
const JITTER_LOW: f64 = 0.8;

/// Consecutive failures of a line and the delay they call for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The nominal delay after `failures` earlier consecutive failures: 30 s, 60 s, 120 s …
    /// capped at 30 min.
    pub(crate) fn nominal(failures: u32) -> Duration {
        let factor = 1u32 << failures.min(16);
        BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
    }

    /// The delay before the next attempt after one more failure, with jitter: uniform in
    /// `[0.8 · nominal, nominal]`.
    pub(crate) fn next_delay(&mut self, rng: &mut dyn RngCore) -> Duration {
        let nominal = Backoff::nominal(self.failures);
        self.failures = self.failures.saturating_add(1);
        nominal.mul_f64(rng.gen_range(JITTER_LOW..=1.0))
    }

    /// A success: the next failure starts from [`BACKOFF_BASE`] again.
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
            let nominal = Backoff::nominal(n);
            let d = b.next_delay(&mut rng);
            assert!(
                d <= nominal && d >= nominal.mul_f64(JITTER_LOW),
                "{n}: {d:?}"
            );
        }
        assert_eq!(Backoff::nominal(0), BACKOFF_BASE);
        assert_eq!(Backoff::nominal(1), Duration::from_secs(60));
        assert_eq!(Backoff::nominal(6), BACKOFF_MAX);
        assert_eq!(Backoff::nominal(u32::MAX), BACKOFF_MAX);
        b.reset();
        assert!(b.next_delay(&mut rng) <= BACKOFF_BASE);
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
