//! mss-txn: SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" state), sans-IO.
//!
//! The crate never reads the clock, never touches a socket and spawns nothing: every input
//! carries its `now`, and every effect comes out of [`Transactions::poll_output`] as an
//! [`Output`]. Tests drive it in simulated time.
//!
//! # Components
//! - [`Transactions`] (`transactions.rs`, `server_side.rs`, `client_side.rs`): the table of
//!   live transactions, O(1) matching through an index of [`TransactionKey`]s
//!   (`key_index.rs`: each key stored once, by its transaction), a timer
//!   heap with lazy deletion, and the `handle_*` / `poll_*` surface.
//! - [`TransactionKey`] (`key.rs`): RFC 3261 §17.2.3 / §17.1.3 matching, the RFC 2543
//!   fallback, ACK → INVITE and CANCEL → INVITE (§9.2).
//! - Four state machines, one per file, that know nothing of SIP messages:
//!   `client_non_invite.rs` (Timers E, F, K), `client_invite.rs` (A, B, D, M),
//!   `server_non_invite.rs` (J), `server_invite.rs` (G, H, I, L and the 100 Trying timer).
//! - [`Timers`] (`timers.rs`): T1, T2, T4 and friends.
//! - `build.rs`: the messages the layer makes itself (ACK for non-2xx, 100, 200/481 to
//!   CANCEL, the 408 on timeout); `base.rs`: the Via/CSeq/Call-ID/tag reader.
//!
//! Choices worth knowing:
//! - 100 (Trying) to an INVITE is sent by the transaction itself when the TU has sent no
//!   provisional response within 200 ms ([`Timers::trying_delay`]), or at once on an INVITE
//!   retransmission before that (§17.2.1).
//! - Responses that match no client transaction come up as [`Event::StrayResponse`] rather
//!   than being dropped: a UAC core may need late 2xx retransmissions (to ACK them), a
//!   stateful proxy must ignore them (RFC 6026 §7.3).
//! - A CANCEL is answered by the layer (200 if it matches an INVITE server transaction,
//!   481 otherwise, §9.2); the TU gets [`Event::Cancel`] and sends the 487.
//! - Zero-length timers (K, J, I, D on reliable transports) terminate at once rather than
//!   going through the timer heap.
//! - A server that checks every request on arrival ([`mss_sip::Request::check`]) hands it
//!   in with [`Transactions::handle_checked_request`] and its key
//!   ([`TransactionKey::for_checked`], from the already parsed top Via): no header is read
//!   again, and a new request comes back as its transaction id, for the caller to handle
//!   with what its check parsed, instead of as [`Event::Request`].
//!
//! What the layer leaves to the TU: choosing branches, tags and Call-IDs; the ACK for a 2xx
//! and retransmitting 2xx responses to INVITE (RFC 6026 §7.1); answering a cancelled INVITE
//! with 487; choosing the flow (§18.1.1 / §18.2.2 address resolution happens before a flow
//! reaches this crate).
//!
//! # Run loop
//!
//! Make one change (a received message, a TU call, or a timeout), then drain
//! [`Transactions::poll_output`] until it returns `None`, then sleep until
//! [`Transactions::poll_timeout`] or the next packet, whichever comes first.
//!
//! ```no_run
//! use std::time::Instant;
//! use mss_sip::{Flow, Message};
//! use mss_txn::{Config, Event, Output, Transactions};
//!
//! # fn recv_until(_deadline: Option<Instant>) -> Option<(Message, Flow)> { None }
//! # fn send(_to: Flow, _bytes: &[u8]) -> std::io::Result<()> { Ok(()) }
//! let mut txns = Transactions::new(Config::default());
//! loop {
//!     // 1. One input: a message, or the timeout.
//!     match recv_until(txns.poll_timeout()) {
//!         Some((msg, from)) => txns.handle_message(Instant::now(), msg, from),
//!         None => txns.handle_timeout(Instant::now()),
//!     }
//!     // 2. Drain every output.
//!     while let Some(out) = txns.poll_output() {
//!         match out {
//!             Output::Transmit(t) => {
//!                 if send(t.to, &t.bytes).is_err() {
//!                     if let Some(id) = t.transaction {
//!                         txns.handle_transport_error(Instant::now(), id);
//!                     }
//!                 }
//!             }
//!             Output::Event(Event::Request { id, request, .. }) => {
//!                 // Hand to the services; they answer with txns.send_response(now, id, rsp).
//!                 let _ = (id, request);
//!             }
//!             Output::Event(_other) => {}
//!         }
//!     }
//! }
//! ```

// Tests may unwrap (preamble); library code may not.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod base;
mod build;
mod chunks;
mod client_invite;
mod client_non_invite;
mod client_side;
mod completed;
mod ended;
mod error;
mod key;
mod key_bytes;
mod key_index;
mod machine;
mod output;
mod server_invite;
mod server_non_invite;
mod server_side;
mod slab;
mod timer_queue;
mod timers;
mod transactions;

pub use base::MAGIC_COOKIE;
pub use error::TxnError;
pub use key::{Role, TransactionKey};
pub use machine::{ResponseClass, State};
pub use output::{Event, Output, Transmit};
pub use slab::{ClientTransactionId, ServerTransactionId, TransactionId};
pub use timers::{Timer, Timers, T1, T2, T4, TIMER_D, TRYING_DELAY};
pub use transactions::{Config, Transactions, DEFAULT_COMPLETED_BUDGET, DEFAULT_MAX_COMPLETED};
