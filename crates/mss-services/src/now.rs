//! The current time as services see it: given to them, never read by them.

use std::time::{Duration, Instant};

/// One reading of both clocks, taken by the caller and passed into every service call.
///
/// `mono` drives timers (refreshes, retries, expiry in memory); `unix_ms` is what is shown
/// to people and written to storage (expiry times that must survive a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for deadlines.
    pub mono: Instant,
    /// Wall-clock time in milliseconds since the Unix epoch, for storage and display.
    pub unix_ms: i64,
}

impl Now {
    /// A reading made of the two clocks.
    pub fn new(mono: Instant, unix_ms: i64) -> Now {
        Now { mono, unix_ms }
    }

    /// The same reading moved forward by `d` on both clocks (for tests and for computing
    /// future instants consistently).
    pub fn after(self, d: Duration) -> Now {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Now {
            mono: self.mono + d,
            unix_ms: self.unix_ms.saturating_add(ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_moves_both_clocks() {
        let start = Now::new(Instant::now(), 1_000);
        let later = start.after(Duration::from_millis(1_500));
        assert_eq!(later.unix_ms, 2_500);
        assert_eq!(later.mono - start.mono, Duration::from_millis(1_500));
    }
}
