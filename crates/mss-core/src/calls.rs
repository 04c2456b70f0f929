//! Calls: mss as a back-to-back user agent (DESIGN §8).

mod settings;

pub use settings::{CallSettings, DEFAULT_MAX_CALLS, DEFAULT_RING_TIMEOUT};

use mss_admin::ActiveCallView;

use crate::core::Core;

impl Core {
    /// The calls in progress (`GET /api/calls/active`, `mss status`).
    pub fn active_calls(&self) -> Vec<ActiveCallView> {
        Vec::new()
    }
}
