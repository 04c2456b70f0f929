//! mss-dialog: SIP dialogs for the mss B2BUA (RFC 3261 §12-§14, with RFC 6026 for the
//! `2xx`), sans-IO.
//!
//! The pieces of a dialog's state: its id ([`DialogId`]), its state ([`DialogState`]), the
//! side mss took in the INVITE that created it ([`DialogRole`]), the parties as From and To
//! name them ([`Party`]), the route set and where a request goes through it ([`RouteSet`]:
//! loose routing and the strict-router rewrite, §12.2.1.1); random tags, Call-IDs and
//! branches from the caller's generator; the wait after a `491` ([`glare_delay`], §14.1).
//!
//! The answers a B2BUA decides before a request reaches a dialog: [`is_in_dialog`],
//! [`unknown_dialog_answer`] (`481`, §12.2.2), [`check_require`] (`420` + `Unsupported`,
//! §8.2.2.3), as [`Rejection`]s the caller sends.

// Tests may unwrap (preamble); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod glare;
mod id;
mod in_dialog;
mod party;
mod random;
mod rejection;
mod require;
mod role;
mod route_set;
mod state;

pub use glare::glare_delay;
pub use id::DialogId;
pub use in_dialog::{is_in_dialog, unknown_dialog_answer};
pub use party::Party;
pub use random::{new_branch, new_call_id, new_tag};
pub use rejection::{Rejection, REQUEST_PENDING};
pub use require::check_require;
pub use role::DialogRole;
pub use route_set::{Destination, RouteEntry, RouteSet};
pub use state::DialogState;
