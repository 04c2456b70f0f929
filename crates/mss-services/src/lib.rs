//! mss-services: the SIP services of mss, free of I/O.
//!
//! - [`registrar`]: local users register their devices (RFC 3261 §10, digest per RFC 8760);
//!   the location service that every other service asks where a user can be reached.
//! - [`lines`]: external lines (SIP trunks) that mss keeps registered at providers.
//! - [`im`]: instant messages (RFC 3428 MESSAGE) with an offline store.
//! - [`answer`]: the one place that turns a [`Reject`] into a response.
//! - [`precheck`]: the RFC 3261 §8.2 checks every request gets first, and `OPTIONS`.
//! - [`digest`]: [`DigestGuard`], digest authentication of local users (`401`/`407`).
//! - [`bans`]: [`Bans`], bans of password guessers and per-address request rate limits.
//! - [`directory`]: [`Directory`], the location service, the digest guard and the ban
//!   table that every service shares (owned by the server core, lent per request).
//! - [`domains`]: [`LocalDomains`], which hosts are ours.
//!
//! Every service is a state machine in the style of the transaction layer: it takes the
//! current time ([`Now`]) and messages as input and returns what should happen (responses
//! to send, requests to start, storage writes to await). It never reads a clock, touches a
//! socket or waits for a disk; the server core (`mss-core`) routes between them, and the
//! `mss` binary does the I/O and feeds the results back.

pub mod answer;
pub mod bans;
pub mod digest;
pub mod directory;
pub mod domains;
pub mod im;
pub mod lines;
mod now;
pub mod precheck;
pub mod registrar;

pub use answer::{Answer, Reject};
pub use bans::{Admit, BanSettings, Bans};
pub use digest::{
    AuthKind, AuthStats, AuthWatch, AuthenticatedUser, DigestGuard, GuardConfig, Offer, Users,
};
pub use directory::Directory;
pub use domains::LocalDomains;
pub use now::Now;
pub use precheck::Precheck;
