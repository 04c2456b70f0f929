//! Instant messages (RFC 3428): relay to online users, offline store, delivery on return.
//!
//! [`Messaging`] is a sans-IO state machine: it never reads a clock, sends a packet or
//! waits for the disk. The caller feeds it the MESSAGE requests it received, the responses
//! to the requests it asked to send, and the outcomes of the storage operations it asked
//! for; it answers with [`ImOutput`]s.
//!
//! # What it does (DESIGN §3)
//!
//! - **Online recipient**: the MESSAGE goes to every contact at once (Request-URI = the
//!   contact, our Via on top, Max-Forwards − 1, Route and Proxy-Authorization removed,
//!   everything else byte for byte, RFC 3261 §16.6). The first `2xx` is relayed to the
//!   sender with its status and reason phrase. When every contact failed with `408`, `480`
//!   or `503` (a timeout, a transport error), or none answered `2xx` within
//!   `relay_timeout`, the message is stored as for an offline recipient (a late `2xx`
//!   deletes the stored copy again, `relay.rs`); any other failure is relayed (the best
//!   one, §16.7).
//! - **Offline recipient** (`offline.rs`): a message of more than `offline_max_chars`
//!   characters gets `413`; otherwise the service asks for a [`ImOutput::Store`] and answers `202 Accepted`
//!   only when the caller reports the message durable, `480 Offline Message Store Full`
//!   when the recipient already has `offline_max_messages`, `500` + `Retry-After` when the
//!   store failed (DESIGN §5: the promise of a `202` is kept before it is made).
//! - **Delivery on return** (`delivery.rs`): stored messages go out one at a time,
//!   oldest first, as new MESSAGE requests from mss with the original `From`,
//!   `Content-Type` and body and a `Date` of their arrival; each is deleted only after a
//!   `2xx`, a failure keeps it and the rest.
//! - **Expiry**: the store hides expired messages from every read (`expires_at`), and the
//!   service asks for [`ImOutput::Expire`] every `expire_interval` to delete them.
//! - **Rate limit**: one token bucket per [`Sender`]; over it, `503` + `Retry-After`.
//!   The table of senders is bounded and forgets idle senders.
//! - **Body**: any content type passes unchanged; `text/*` must be UTF-8 (`415` for
//!   another charset, `400` for bytes that do not decode); no body → `400`.
//!
//! What the caller does first: the precheck (`crate::precheck`), the `407` challenge of
//! a local sender, and the recipient lookup (our domain, the user directory,
//! `Location::contacts` converted with `Into`) → [`Sender`] and [`Recipient`]. After every
//! committed REGISTER that leaves a user with contacts it calls
//! [`Messaging::handle_user_reachable`].
//!
//! Configuration: [`ImSettings::new`] with the domain, then the `[im]` keys:
//! `offline_max_messages`, `offline_max_chars`, `offline_ttl`, and
//! `rate_limit = RateLimit::per_minute(rate_limit_per_minute)` (`0` → `None`, no limit).
//!
//! # Run loop
//!
//! Make one change (a `handle_*` call), then drain [`Messaging::poll_output`] until it
//! returns `None`, then sleep until [`Messaging::poll_timeout`] (call
//! [`Messaging::handle_timeout`]) or the next input, whichever comes first. Results of
//! storage operations are fed back when they complete, in any order.
//!
//! ```no_run
//! use mss_sip::{Request, Response};
//! use mss_services::im::{ImOutput, ImSettings, Messaging, Recipient, Sender};
//! use mss_services::Now;
//! # fn now() -> Now { Now::new(std::time::Instant::now(), 0) }
//! # type ServerTxn = u64;
//! # enum Input { Message(ServerTxn, Request, Sender, Recipient), Response(mss_services::im::RequestToken, Response), Timeout }
//! # fn next_input() -> Input { Input::Timeout }
//! # fn start_client_transaction(_: Request, _: mss_sip::Flow, _: mss_services::im::RequestToken) {}
//! # fn send_response(_: ServerTxn, _: Response) {}
//! # fn spawn_store_write<T>(_: T) {}
//! let mut im: Messaging<ServerTxn> = Messaging::new(now(), ImSettings::new("pbx.example.com"), rand::random());
//! loop {
//!     match next_input() {
//!         Input::Message(txn, req, sender, recipient) => {
//!             im.handle_message(now(), txn, &req, sender, recipient)
//!         }
//!         // Every response of a client transaction started for ImOutput::Send; a 408 on
//!         // timeout, a 503 on a transport error.
//!         Input::Response(token, rsp) => im.handle_response(now(), token, &rsp),
//!         Input::Timeout => im.handle_timeout(now()),
//!         // …and the completions of storage operations: handle_stored, handle_loaded,
//!         // handle_deleted, handle_expired; a REGISTER that leaves a user with contacts:
//!         // handle_user_reachable.
//!     }
//!     while let Some(out) = im.poll_output() {
//!         match out {
//!             ImOutput::Reply { server, response } => send_response(server, response),
//!             ImOutput::Send { token, request, flow } => {
//!                 start_client_transaction(request, flow, token)
//!             }
//!             // Await Store::insert_message_if_below(message, limit) in a task, then
//!             // im.handle_stored(now, token, result) on the worker.
//!             ImOutput::Store { token, message, limit } => {
//!                 spawn_store_write((token, message, limit))
//!             }
//!             ImOutput::Load { user, now } => spawn_store_write((user, now)),
//!             ImOutput::Delete { id } => spawn_store_write(id),
//!             ImOutput::Expire { now } => spawn_store_write(now),
//!         }
//!     }
//!     // sleep until im.poll_timeout() or the next input
//! }
//! ```
//!
//! Every awaited result has a guard deadline (`request_guard`, `storage_guard`): a result
//! that never comes counts as a `408` (requests) or a failure (storage), so nothing waits
//! forever. A result that comes after its guard fired is ignored.
//!
//! # Inside
//!
//! [`Messaging`] (`messaging.rs`) takes a MESSAGE in and otherwise only routes. Each part
//! owns its state, takes what else it needs as arguments, and knows none of the others:
//!
//! - `relay.rs`, `Relays`: the relays in progress and the late deletes;
//! - `offline.rs`, `PendingStores`: the store writes in flight;
//! - `delivery.rs`, `Deliveries`: the rounds, their deletes in flight, who is known to
//!   have an empty store and who may have messages stored;
//! - `expiry.rs`, `ExpirySweeps`: the periodic expiry sweep;
//! - `outbox.rs`, `Outbox`: what they all write to and none owns (the outputs, guards,
//!   ids, generator, counters, and each request sent with the part its answer goes to).
//!
//! Who uses whom (`use crate::im::…`): no cycle, and no part uses `messaging` or another
//! part.
//!
//! - `messaging` → `relay`, `offline`, `delivery`, `expiry`, `outbox`, `body`, `guards`,
//!   `io`, `rate`, `replies`, `request`, `settings`, `stats`;
//! - `relay` → `outbox`, `body`, `guards`, `io`, `replies`, `request`, `settings`;
//! - `offline` → `outbox`, `body`, `guards`, `io`, `replies`, `settings`;
//! - `delivery` → `outbox`, `guards`, `io`, `request`, `settings`;
//! - `expiry` → `outbox`, `guards`, `io`, `settings`;
//! - `outbox` → `guards`, `io`, `stats`;
//! - the leaves: `guards` → `io`; `rate` → `io`, `settings`; `replies` → `body`;
//!   `request` → `io`; `body`, `io`, `settings`, `stats` → nothing of `im`;
//! - tests: `tests/` drives [`Messaging`] alone; the unit tests of `outbox`, `offline`,
//!   `relay`, `delivery` build their inputs with `tests/fixtures.rs` (→ `io`).

mod body;
mod delivery;
mod expiry;
mod guards;
mod io;
mod messaging;
mod offline;
mod outbox;
mod rate;
mod relay;
mod replies;
mod request;
mod settings;
mod stats;

#[cfg(test)]
mod tests;

pub use io::{ContactTarget, ImOutput, Recipient, RequestToken, Sender, StoreToken};
pub use messaging::Messaging;
pub use settings::{ImSettings, RateLimit};
pub use stats::{ImStats, RefusedStats};
