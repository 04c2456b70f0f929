//! The settings of a dialog table.

use mss_txn::Timers;

/// The default bound of a dialog table: a thousand calls (DESIGN §8, `max_calls`), each with
/// an A leg and a few B legs.
pub const DEFAULT_MAX_DIALOGS: usize = 4096;

/// The settings of a [`crate::Dialogs`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogConfig {
    /// T1 and T2 (and through T1, 64·T1): the `2xx` retransmission intervals and the wait
    /// for the ACK (RFC 3261 §13.3.1.4). The transaction layer's values; the defaults are
    /// RFC 3261's.
    pub timers: Timers,
    /// How many dialogs the table holds at most; a new one beyond it is refused
    /// ([`crate::DialogError::TableFull`]).
    pub max_dialogs: usize,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig {
            timers: Timers::default(),
            max_dialogs: DEFAULT_MAX_DIALOGS,
        }
    }
}
