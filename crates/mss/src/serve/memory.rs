//! Giving freed heap memory back to the system.
//!
//! glibc's `malloc` keeps freed memory inside its heap for reuse: after the configuration
//! of 100,000 users has been parsed and dropped, or after a REGISTER burst whose server
//! transactions lived for Timer J (32 s on UDP, RFC 3261 §17.2.2) and ended, the process
//! would keep the peak's resident size for ever. `malloc_trim` returns the free pages.
//! It walks the heap (milliseconds for hundreds of MB), so the worker calls it only after
//! start and when the transaction table has shrunk to a quarter of its high-water mark.

/// Below this many live transactions at the high-water mark, a shrink is not worth a trim.
const MIN_TRIM_HIGH: usize = 10_000;

/// Returns the free pages of the heap to the system (glibc's `malloc_trim`); a no-op
/// with other C libraries. The one `unsafe` of the crate: a foreign call, no safe wrapper
/// exists in `libc`.
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only reorganises malloc's own free lists;
    // it is thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}

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

    #[test]
    fn release_is_callable() {
        release_free_memory();
    }
}
