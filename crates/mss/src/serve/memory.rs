//! Giving freed heap memory back to the system.
//!
//! glibc's `malloc` keeps freed memory inside its heap for reuse: after the configuration
//! of 100,000 users has been parsed and dropped, or after a REGISTER burst whose server
//! transactions lived for Timer J (32 s on UDP, RFC 3261 §17.2.2) and ended, the process
//! would keep the peak's resident size for ever. `malloc_trim` returns the free pages.
//! It walks the heap (milliseconds for hundreds of MB), so the worker calls it only after
//! start and when the core says the transaction table has shrunk to a quarter of its
//! high-water mark (`mss_core::Output::MemoryReleasable`).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_callable() {
        release_free_memory();
    }
}
