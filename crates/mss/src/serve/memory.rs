//! Giving freed heap memory back to the system.
//!
//! The `mss` executable allocates with jemalloc (`main.rs`); the C library's `malloc`
//! still serves SQLite and the other C code. Both keep freed memory for reuse: after the
//! configuration of 100,000 users has been parsed and dropped, or after a REGISTER burst
//! whose server transactions lived for Timer J (32 s on UDP, RFC 3261 §17.2.2) and ended,
//! the process would keep the peak's resident size for a long time (jemalloc returns
//! dirty pages only as its decay timer runs, and only while it allocates). Purging every
//! jemalloc arena and `malloc_trim` return the free pages. They walk the heaps
//! (milliseconds for hundreds of MB), so the worker calls this only after start and when
//! the core says the transaction table has shrunk to a quarter of its high-water mark
//! (`mss_core::Output::MemoryReleasable`).

/// `arena.<MALLCTL_ARENAS_ALL>.purge`: every arena's unused dirty pages back to the system.
const PURGE_ALL_ARENAS: &[u8] = b"arena.4096.purge\0";

/// Returns the free pages of both heaps to the system: jemalloc's arenas are purged, and
/// glibc's `malloc_trim` runs (a no-op with other C libraries). The one `unsafe` of the
/// crate: foreign calls, no safe wrapper exists.
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    // SAFETY: `PURGE_ALL_ARENAS` is a NUL-terminated name; a purge reads and writes no
    // value, so every pointer is null and the length 0, as jemalloc's `mallctl` requires
    // for a command (a failure is only a return code). In a process whose allocator is not
    // jemalloc (the library's unit tests) it purges jemalloc's own empty arenas.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL_ARENAS.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
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
