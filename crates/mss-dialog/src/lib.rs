//! mss-dialog: SIP dialogs for the mss B2BUA (RFC 3261 §12-§14, with RFC 6026 for the
//! `2xx`), sans-IO.
//!
//! The pieces of a dialog's state: its id ([`DialogId`]), its state ([`DialogState`]), the
//! side mss took in the INVITE that created it ([`DialogRole`]), the parties as From and To
//! name them ([`Party`]), the route set and where a request goes through it ([`RouteSet`]:
//! loose routing and the strict-router rewrite, §12.2.1.1); random tags, Call-IDs and
//! branches from the caller's generator; the wait after a `491` ([`glare_delay`], §14.1).

// Tests may unwrap (preamble); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod glare;
mod id;
mod party;
mod random;
mod role;
mod route_set;
mod state;

pub use glare::glare_delay;
pub use id::DialogId;
pub use party::Party;
pub use random::{new_branch, new_call_id, new_tag};
pub use role::DialogRole;
pub use route_set::{Destination, RouteEntry, RouteSet};
pub use state::DialogState;
