//! mss-dialog: SIP dialogs for the mss B2BUA (RFC 3261 §12-§14, with RFC 6026 for the
//! `2xx`), sans-IO.
//!
//! Each call leg of the B2BUA is one dialog: the A leg with mss as UAS, every B leg with mss
//! as UAC (DESIGN §8). This crate keeps their state and does for them what RFC 3261 leaves
//! to the transaction user: it never reads a clock, touches a socket or draws its own
//! randomness. Every input carries its `now` (`std::time::Instant`), randomness comes from
//! the caller's [`rand::RngCore`] (seeded in tests), and every effect comes out of
//! [`Dialogs::poll_output`] as a [`DialogOutput`], the next deadline from
//! [`Dialogs::poll_timeout`].
//!
//! # Parts
//! - [`Dialog`] (`dialog.rs`, `build.rs`): one dialog's state (§12.1: id, state, route set,
//!   remote target, CSeq numbers, parties) created as UAS ([`Dialog::uas`], §12.1.1) or UAC
//!   ([`Dialog::uac`], §12.1.2); the requests built from it (§12.2.1.1, loose routing and
//!   the strict-router rewrite of [`RouteSet`]), the ACK for a `2xx` (§13.2.2.4) and
//!   responses that carry the dialog.
//! - [`Dialogs`] (`table.rs`, `table/`): the table keyed by [`DialogId`], bounded by
//!   [`DialogConfig::max_dialogs`], with local tags from the caller's generator; requests
//!   received ([`Dialogs::handle_request`]: `481`, the CSeq check and its `500`, target
//!   refresh, glare `491`, the ACK that stops our `2xx`), responses received
//!   ([`Dialogs::handle_invite_response`], [`Dialogs::handle_response`]: forks, confirm,
//!   early dialogs ended, the ACK again for a retransmitted `2xx`, the retry after `491`),
//!   and what mss sends ([`Dialogs::request`], [`Dialogs::ack`], [`Dialogs::send_response`]:
//!   a `2xx` to an INVITE is retransmitted until its ACK, 64·T1 without one is
//!   [`DialogOutput::AckTimeout`]).
//! - Extensions: reliable provisional responses (`reliable.rs`, `table/prack.rs`, RFC
//!   3262: as UAS through [`Dialogs::send_response`] and the PRACK in
//!   [`Dialogs::handle_request_at`], as UAC [`Dialogs::reliable_provisional`] and
//!   [`Dialogs::prack`]); session timer headers and their negotiation
//!   (`session_timer.rs`, RFC 4028: [`negotiate_uas`], [`negotiated_by_2xx`]; the timers
//!   are the call layer's).
//! - Helpers: [`is_in_dialog`], [`unknown_dialog_answer`] (`481`), [`check_require`]
//!   (`420` + `Unsupported`), [`Rejection`] (the answers the dialog layer decides and the
//!   caller sends), [`glare_delay`], [`new_tag`], [`new_call_id`], [`new_branch`].
//!
//! What is left to others: transactions (`mss-txn`: the first sending of every message,
//! CANCEL, the ACK of a non-`2xx`), the flows (where a request of the dialog goes: the
//! first Route or the Request-URI, RFC 3263), SDP (`mss-sdp`), and the call model that ties
//! the legs of a call together.
//!
//! # Run loop
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use mss_dialog::{DialogConfig, DialogOutput, Dialogs, LocalEnd, RequestOutcome};
//! use mss_sip::{parse_datagram, Message, Method, StatusCode, Transport};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let mut rng = StdRng::seed_from_u64(1);
//! let mut dialogs = Dialogs::new(DialogConfig::default(), &mut rng);
//! let Message::Request(invite) = parse_datagram(Bytes::from_static(
//!     b"INVITE sip:101@pbx.example SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1\r\n\
//!       Max-Forwards: 70\r\n\
//!       From: <sip:100@pbx.example>;tag=caller1\r\n\
//!       To: <sip:101@pbx.example>\r\n\
//!       Call-ID: call-a@192.0.2.10\r\n\
//!       CSeq: 1 INVITE\r\n\
//!       Contact: <sip:100@192.0.2.10:5060>\r\n\
//!       Content-Length: 0\r\n\r\n",
//! ))? else { unreachable!() };
//! let now = Instant::now();
//!
//! // The A leg: mss answers as UAS.
//! let local = LocalEnd {
//!     transport: Transport::Udp,
//!     sent_by: "192.0.2.1:5060".into(),
//!     contact: "sip:mss@192.0.2.1:5060".into(),
//! };
//! let id = dialogs.create_uas(&invite, local, &mut rng)?;
//! let ok = dialogs.response(&id, &invite, StatusCode::OK, "OK")?;
//! dialogs.send_response(now, &id, ok)?;
//! while let Some(out) = dialogs.poll_output() {
//!     match out {
//!         DialogOutput::Response { response, .. } => { /* through the server transaction */ }
//!         DialogOutput::Ack { request, .. } => { /* statelessly */ }
//!         DialogOutput::RetryReinvite { id } => { /* dialogs.request(&id, Method::Invite, …) */ }
//!         DialogOutput::AckTimeout { id } => { /* dialogs.request(&id, Method::Bye, …) */ }
//!         DialogOutput::PrackTimeout { id } => { /* a 5xx to the INVITE */ }
//!     }
//! }
//! // Nothing came back: the 200 goes out again at T1.
//! assert_eq!(dialogs.poll_timeout(), Some(now + Duration::from_millis(500)));
//! dialogs.handle_timeout(now + Duration::from_millis(500));
//! assert!(matches!(dialogs.poll_output(), Some(DialogOutput::Response { .. })));
//!
//! // A request of the peer within the dialog.
//! let mut bye = mss_sip::Request::builder(Method::Bye, "sip:mss@192.0.2.1:5060")
//!     .via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa2")
//!     .from("<sip:100@pbx.example>;tag=caller1")
//!     .to(format!("<sip:101@pbx.example>;tag={}", id.local_tag()))
//!     .call_id("call-a@192.0.2.10")
//!     .cseq(2)
//!     .build();
//! assert!(matches!(
//!     dialogs.handle_request(&bye, &mut rng),
//!     RequestOutcome::InDialog { .. }
//! ));
//! # let _ = &mut bye;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Tests may unwrap (preamble); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod build;
mod config;
mod dialog;
mod error;
mod glare;
mod id;
mod in_dialog;
mod invite_usage;
mod local;
mod outcome;
mod output;
mod party;
mod random;
mod rejection;
mod reliable;
mod require;
mod retransmission;
mod role;
mod route_set;
mod session_timer;
mod state;
mod table;

pub use build::MAX_FORWARDS;
pub use config::{DialogConfig, DEFAULT_MAX_DIALOGS};
pub use dialog::Dialog;
pub use error::DialogError;
pub use glare::glare_delay;
pub use id::DialogId;
pub use in_dialog::{is_in_dialog, unknown_dialog_answer};
pub use local::LocalEnd;
pub use outcome::{RequestOutcome, ResponseEffect, ResponseOutcome};
pub use output::DialogOutput;
pub use party::Party;
pub use random::{new_branch, new_call_id, new_tag};
pub use rejection::{Rejection, REQUEST_PENDING};
pub use reliable::{
    is_reliable, rack, rack_header, rseq, rseq_header, Provisional, RAck, TAG_100REL,
};
pub use require::{check_require, SUPPORTED};
pub use role::DialogRole;
pub use route_set::{Destination, RouteEntry, RouteSet};
pub use session_timer::{
    expiry_after, min_se, min_se_header, negotiate_uas, negotiated_by_2xx, refresh_after,
    session_expires, supports, Refresher, SessionExpires, TimerPolicy, UasTimer, MIN_SE_FLOOR,
    SESSION_INTERVAL_TOO_SMALL,
};
pub use state::DialogState;
pub use table::Dialogs;
