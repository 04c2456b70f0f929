//! The shared directories that several services read and write: where each local user can
//! be reached (the location service) and who they are (the digest guard with its user
//! directory, nonces and nonce counts).
//!
//! The server core owns one [`Directory`] and lends it to each service per request: the
//! registrar writes the location service and authenticates with the guard, messaging
//! authenticates senders with the same guard (a nonce count spent on one method is a
//! replay on any other, RFC 7616 §3.4) and looks recipients up, and calls will do both.

use crate::digest::DigestGuard;
use crate::registrar::{Binding, Location};
use crate::Now;

/// The location service and the digest guard (see the module docs).
#[derive(Debug)]
pub struct Directory {
    /// Where each local user can be reached.
    pub location: Location,
    /// Who the local users are, and the digest state of their authentications.
    pub guard: DigestGuard,
}

impl Directory {
    /// An empty location service over `guard`'s users.
    pub fn new(guard: DigestGuard) -> Directory {
        Directory {
            location: Location::new(),
            guard,
        }
    }

    /// Loads stored bindings at start; returns how many.
    pub fn restore(&mut self, records: &[mss_store::BindingRecord], now: Now) -> usize {
        self.location.restore(records, now)
    }

    /// Drops expired bindings from memory (the caller runs `delete_expired_bindings` on the
    /// store) and forgets old nonce counts. Returns what was removed.
    pub fn sweep(&mut self, now: Now) -> Vec<(String, Binding)> {
        self.guard.handle_timeout(now);
        self.location.sweep(now.mono)
    }
}
