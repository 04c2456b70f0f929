//! When giving freed memory back to the system is worth it.

/// A shrink from fewer live transactions than this is not worth a trim.
const MIN_TRIM_HIGH: usize = 10_000;

/// Decides when a shrink of the transaction table is large enough to trim the heap.
#[derive(Debug, Default)]
pub(crate) struct TrimPolicy {
    /// The most live transactions seen since the last trim.
    high: usize,
}

impl TrimPolicy {
    /// Records `live` transactions; `true` when the table has fallen below a quarter of
    /// a high-water mark of at least [`MIN_TRIM_HIGH`] (then the mark starts again).
    pub(crate) fn observe(&mut self, live: usize) -> bool {
        self.high = self.high.max(live);
        if self.high >= MIN_TRIM_HIGH && live.saturating_mul(4) < self.high {
            self.high = live;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_after_a_large_burst_ends() {
        let mut p = TrimPolicy::default();
        assert!(!p.observe(0));
        assert!(!p.observe(200_000));
        assert!(!p.observe(60_000), "still more than a quarter");
        assert!(p.observe(40_000));
        assert!(!p.observe(20_000), "the mark started again at 40,000");
        assert!(p.observe(9_000));
        assert!(!p.observe(0), "a mark of 9,000 is below the minimum");
    }

    #[test]
    fn small_tables_never_trim() {
        let mut p = TrimPolicy::default();
        assert!(!p.observe(9_999));
        assert!(!p.observe(0));
    }
}
