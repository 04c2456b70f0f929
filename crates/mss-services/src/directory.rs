//! The shared directories that several services read and write: where each local user can
//! be reached (the location service), who they are (the digest guard with its user
//! directory, nonces and nonce counts), and who may try to be them from where (the ban
//! table).
//!
//! The server core owns one [`Directory`] and lends it to each service per request: the
//! registrar writes the location service and authenticates with the guard, messaging
//! authenticates senders with the same guard (a nonce count spent on one method is a
//! replay on any other, RFC 7616 §3.4) and looks recipients up, and calls will do both.
//! Every authentication goes through [`Directory::authenticate`], which tells the ban
//! table how it went, so no service has to carry the outcome back to the core; the core
//! asks the table about each packet before parsing it.

use std::net::IpAddr;

use mss_sip::{Request, Response};

use crate::answer::Answer;
use crate::bans::{BanSettings, Bans};
use crate::digest::{AuthKind, AuthenticatedUser, DigestGuard};
use crate::registrar::{Binding, Location};
use crate::Now;

/// The location service, the digest guard and the ban table (see the module docs).
#[derive(Debug)]
pub struct Directory {
    /// Where each local user can be reached.
    pub location: Location,
    /// Who the local users are, and the digest state of their authentications.
    pub guard: DigestGuard,
    /// Failed answers, bans and request rates by address.
    pub bans: Bans,
}

impl Directory {
    /// An empty location service over `guard`'s users, with a ban table on the default
    /// settings.
    pub fn new(guard: DigestGuard) -> Directory {
        Directory::with_bans(guard, Bans::new(BanSettings::default()))
    }

    /// An empty location service over `guard`'s users, with `bans`.
    pub fn with_bans(guard: DigestGuard, bans: Bans) -> Directory {
        Directory {
            location: Location::new(),
            guard,
            bans,
        }
    }

    /// Checks the credentials of `req`, which came from `source`, with the guard, and
    /// tells the ban table how the answer went ([`DigestGuard::check`]).
    ///
    /// # Errors
    ///
    /// The challenge (`401`/`407`) or `400` to send instead.
    #[allow(clippy::result_large_err)]
    pub fn authenticate(
        &mut self,
        now: Now,
        req: &Request,
        kind: AuthKind,
        answer: &Answer,
        source: IpAddr,
    ) -> Result<AuthenticatedUser, Response> {
        self.guard
            .check(now, req, kind, answer, source, &mut self.bans)
    }

    /// Loads stored bindings at start; returns how many.
    pub fn restore(&mut self, records: &[mss_store::BindingRecord], now: Now) -> usize {
        self.location.restore(records, now)
    }

    /// Drops expired bindings from memory (the caller runs `delete_expired_bindings` on the
    /// store), forgets old nonce counts and what the ban table no longer needs. Returns the
    /// bindings removed.
    pub fn sweep(&mut self, now: Now) -> Vec<(String, Binding)> {
        self.guard.handle_timeout(now);
        self.bans.sweep(now);
        self.location.sweep(now.mono)
    }
}
