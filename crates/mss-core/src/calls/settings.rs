//! What the call service is built from (DESIGN §8: `[server] max_calls`,
//! `outgroup_prefix`, a user's `max_calls`).

use std::collections::HashMap;
use std::time::Duration;

/// Default of `[server] max_calls`: concurrent calls of the whole server.
pub const DEFAULT_MAX_CALLS: u32 = 1000;

/// How long an outgoing leg may ring before mss gives up on it: RFC 3261 §16.6 step 11
/// asks a proxy for Timer C "greater than 3 minutes"; a B2BUA's B legs follow the same rule.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(181);

/// The settings of the call service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// Concurrent calls of the whole server; beyond it `503` + `Retry-After`.
    pub max_calls: u32,
    /// Dial this prefix + number to call out through a line (`outgroup_prefix`, default `9`).
    pub outgroup_prefix: String,
    /// Concurrent calls per user (a user's `max_calls`); beyond it `486 Busy Here`.
    pub user_max_calls: HashMap<String, u32>,
    /// How long one outgoing leg may ring before it is cancelled (no answer).
    pub ring_timeout: Duration,
}

impl Default for CallSettings {
    fn default() -> CallSettings {
        CallSettings {
            max_calls: DEFAULT_MAX_CALLS,
            outgroup_prefix: "9".to_owned(),
            user_max_calls: HashMap::new(),
            ring_timeout: DEFAULT_RING_TIMEOUT,
        }
    }
}
