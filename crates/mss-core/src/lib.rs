//! mss-core: the server's SIP logic in one sans-IO machine.
//!
//! [`Core`] owns the transaction layer, the registrar with the location service and the
//! digest guard, the external lines, instant messages, the calls (a B2BUA, `calls/`), the
//! routing of client-transaction events to the service that started each transaction, and
//! the dispatch of new requests.
//! It is driven through one surface, in the style of str0m and quinn-proto:
//!
//! - [`Core::handle`]`(now, `[`Input`]`)`: a received packet, a finished store operation or
//!   lookup (by [`OpId`]), a failed send, a timeout, shutdown;
//! - [`Core::poll_output`]` -> Option<`[`Output`]`>`: bytes to send, a store operation or
//!   lookup to start (with its id), memory worth releasing;
//! - [`Core::poll_timeout`]: when to feed [`Input::Timeout`].
//!
//! `now` is always passed in; every random choice comes from a generator seeded through
//! [`CoreParts::seed`]. The one question the core asks of its host is [`Network::sent_by`]
//! (our address towards a peer). Counters go to the shared [`mss_admin::Metrics`] and
//! [`CoreStats`] (atomics read by the admin API); the admin views are read with
//! [`Core::registrations`], [`Core::line_views`] and [`Core::bans`].
//!
//! Before a packet is parsed, the ban table (`mss_services::bans`, in the shared
//! `Directory`) says whether its address is banned or over its request rate; such a
//! packet is dropped and counted, nothing else happens (`bans.rs`).
//!
//! ```text
//! driver (mss serve's worker, or a test)          Core
//!   socket packet ───────── Input::Received ───▶ parse → transactions → dispatch → service
//!   ◀── Output::Transmit ─────────────────────── responses, requests, retransmissions
//!   ◀── Output::Store { id, op } ─────────────── a write a SIP answer waits for
//!   store result ────────── Input::Stored { id } ▶ the answer goes out (200, 202, …)
//!   ◀── Output::Resolve { id, request } ──────── a line's registrar to look up
//!   targets ─────────────── Input::Resolved { id } ▶ the line's REGISTER leaves
//!   ◀── Output::Media(Command) ───────────────── relay ports for a call, its remotes, …
//!   relay event ─────────── Input::Media(event) ▶ the call's B legs start, BYE on timeout
//!   sleep until poll_timeout ─ Input::Timeout ──▶ timers (transactions, lines, messages)
//! ```
//!
//! Files: `core.rs` (the machine, the transaction-layer drain, client routing),
//! `dispatch.rs` (where a new request goes), `inbound.rs` (packet → message or stateless
//! answer), `bans.rs` (packets of banned addresses dropped, bans logged and listed), `registrar.rs`, `messaging.rs` (+ `messaging/admission.rs`), `lines.rs` (+
//! `lines/drive.rs`, `lines/peers.rs`, `lines/view.rs`), `calls.rs` (+ `calls/`: the B2BUA),
//! `ops.rs` (operations waited for), `overload.rs` (new requests shed past the backlog limit),
//! `input.rs`, `output.rs`, `network.rs`, `stats.rs`, `memory.rs`.

mod bans;
mod calls;
mod core;
mod dispatch;
mod inbound;
mod input;
mod lines;
mod memory;
mod messaging;
mod network;
mod ops;
mod output;
mod overload;
mod registrar;
mod stats;
#[cfg(test)]
mod testing;

pub use crate::core::{Core, CoreParts, DRAIN_LIMIT, SWEEP_INTERVAL};
pub use bans::BAN_LOG_TARGET;
pub use calls::{
    is_dialable, CallLevel, CallSettings, GroupSettings, GroupStrategy, MediaSettings, UserCalls,
    DEFAULT_MAX_CALLS, DEFAULT_MIN_SE, DEFAULT_NO_ANSWER_TIMEOUT, DEFAULT_RING_TIMEOUT,
    DEFAULT_SESSION_EXPIRES,
};
pub use input::{Input, StoreResult};
pub use lines::LineSetup;
pub use network::{FixedAddress, Network};
pub use output::{OpId, Output, StoreOp};
pub use overload::{creates_state, OverloadLimits, Shed};
pub use stats::{CoreStats, Dropped, ShedReason, BAN_KINDS};
