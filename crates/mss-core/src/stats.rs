//! Counters of the core that `/metrics` shows beside [`mss_admin::Metrics`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the core bumps (relaxed atomics: the admin API reads them from another task).
#[derive(Debug, Default)]
pub struct CoreStats {
    stray_responses: AtomicU64,
    stateless_replies: AtomicU64,
}

impl CoreStats {
    /// A response that matched no client transaction was dropped.
    pub fn stray_response(&self) {
        self.stray_responses.fetch_add(1, Ordering::Relaxed);
    }

    /// A broken request was answered outside any transaction.
    pub fn stateless_reply(&self) {
        self.stateless_replies.fetch_add(1, Ordering::Relaxed);
    }

    /// Responses dropped because they matched no client transaction.
    pub fn stray_responses(&self) -> u64 {
        self.stray_responses.load(Ordering::Relaxed)
    }

    /// Broken requests answered outside any transaction.
    pub fn stateless_replies(&self) -> u64 {
        self.stateless_replies.load(Ordering::Relaxed)
    }
}
