//! Calls: mss as a back-to-back user agent (DESIGN §8).
//!
//! Each call has an A leg (mss is UAS of the caller's INVITE) and one or more B legs (mss
//! is UAC of one INVITE per device of the callee, or per line tried), each its own dialog
//! with its own Call-ID and tags, kept by the shared [`mss_dialog::Dialogs`] table. What
//! one leg does is mirrored on the other.
//!
//! - `calls/admission.rs`: who calls (a local user answering `407`, or a line's provider
//!   trusted like its MESSAGEs) and where the call goes (the dial plan: a local user's
//!   contacts, `outgroup_prefix` + number through a line, else `404`); limits (`503`,
//!   `486`), loops (`482`, `483`), SDP that cannot be used (`488`).
//! - `calls/start.rs`: a new call: `100 Trying`, the B legs (devices, lines).
//! - `calls/routing.rs`: where a call rings, stage by stage — a user's devices, a group's
//!   members, the lines — and what moves it on: forwards, a device's `3xx`, call levels.
//! - `calls/outgoing.rs`: the requests mss builds for B legs (INVITE, the INVITE again with
//!   a line's credentials, CANCEL).
//! - `calls/answers.rs`: responses to B legs' INVITEs: provisional responses relayed
//!   (early media with their SDP), the first `2xx` wins and the other forks are
//!   cancelled, a late `2xx` gets ACK + BYE, failures choose the best answer for the
//!   caller or move on to the next line.
//! - `calls/in_dialog.rs`: requests within a call's dialogs (BYE, re-INVITE, UPDATE,
//!   INFO, MESSAGE, …) passed to the other leg and their answers back; ACKs relayed.
//! - `calls/ending.rs`: CANCEL from the caller, timeouts, the end of a call, its record.
//! - `calls/reliable.rs`: reliable provisional responses (RFC 3262) on each leg: PRACK.
//! - `calls/session_timer.rs`: session timers (RFC 4028) on each leg: `422`, refreshes,
//!   expiry.
//! - `calls/view.rs`: `GET /api/calls/active`.
//! - `calls/media.rs`, `calls/sdp_relay.rs`: the media relay (`[media] relay = always`):
//!   ports per call, every SDP pointed at mss, the relay's events.
//! - `calls/transfer.rs`: `REFER` (RFC 3515): blind and attended transfer, the implicit
//!   subscription's `NOTIFY`s; `calls/transfer_call.rs`: the call that rings the target;
//!   `calls/transfer_join.rs`: joining the new party to the transferee (offerless INVITE,
//!   re-INVITE with its offer, the answer in the ACK) and the end of a transfer.
//! - `calls/replaces.rs`: an `INVITE` with `Replaces` (RFC 3891) takes a leg's place.
//!
//! Every request to a device goes over the flow it registered on (TCP connection reuse,
//! DESIGN §7); every request to a line's provider to the line's registrar target; every
//! request to the caller back over the flow its INVITE came on. mss is the Contact of
//! every leg, so every in-dialog request reaches it.

mod admission;
mod answers;
mod ending;
mod in_dialog;
mod media;
mod model;
mod outgoing;
mod record_id;
mod reliable;
mod replaces;
mod routing;
mod sdp_relay;
mod session_timer;
mod settings;
mod start;
mod transfer;
mod transfer_call;
mod transfer_join;
mod view;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use mss_dialog::{DialogId, DialogOutput};
use mss_services::Now;
use mss_sip::{Flow, Message, Request};
use mss_txn::{ClientTransactionId, ServerTransactionId};
use rand::RngCore;

pub use admission::is_dialable;
pub use settings::{
    CallLevel, CallSettings, GroupSettings, GroupStrategy, MediaSettings, UserCalls,
    DEFAULT_MAX_CALLS, DEFAULT_MIN_SE, DEFAULT_NO_ANSWER_TIMEOUT, DEFAULT_RING_TIMEOUT,
    DEFAULT_SESSION_EXPIRES,
};

use crate::core::Core;
use model::{Call, HeldRequest};
pub(crate) use model::{CallKey, Side};

/// The maps of the call table: aHash, randomly seeded ([`Calls::new`]), as the dialog and
/// transaction tables; a call inserts, finds and removes its dialog ids (three strings
/// each) in them a few dozen times, which std's SipHash made a measurable part of a call.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// A set with the hasher of [`HashMap`].
pub(crate) type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;

/// What a client transaction of the call service is for.
#[derive(Debug)]
pub(crate) enum CallClient {
    /// The INVITE of B leg `leg` of call `key`.
    Invite {
        /// The call.
        key: CallKey,
        /// The B leg.
        leg: usize,
    },
    /// A CANCEL of a B leg's INVITE: its answer changes nothing.
    Cancel,
    /// A BYE mss sent in `dialog` (the call may be gone already).
    Bye {
        /// The dialog it ends.
        dialog: DialogId,
    },
    /// A `NOTIFY` of a transfer's implicit subscription (RFC 3515 §2.4.4) in `dialog`;
    /// `then_bye`: the transferor's leg is ended with BYE once it is answered.
    Notify {
        /// The transferor's dialog.
        dialog: DialogId,
        /// BYE in `dialog` after the answer (the transfer is complete).
        then_bye: bool,
    },
    /// A re-INVITE a transfer of call `key` sent (`transfer_join.rs`).
    Transfer {
        /// The call whose leg is transferred.
        key: CallKey,
    },
    /// The re-INVITE of the other party for an INVITE with `Replaces` (`replaces.rs`).
    Replace {
        /// What waits for its answer (boxed: the other kinds are small).
        pending: Box<replaces::PendingReplace>,
    },
    /// mss's PRACK of a reliable provisional response of B leg `leg` of call `key`.
    Prack {
        /// The call.
        key: CallKey,
        /// The B leg.
        leg: usize,
    },
    /// mss's session refresh (RFC 4028) in `dialog` of call `key`.
    Refresh {
        /// The call.
        key: CallKey,
        /// The dialog refreshed.
        dialog: DialogId,
    },
    /// A request of one leg passed on to the other: its final response goes back to
    /// `server`.
    Forward {
        /// The call.
        key: CallKey,
        /// The request as received, to answer (boxed: the other kinds are small).
        held: Box<HeldRequest>,
        /// The dialog it was sent in.
        dialog: DialogId,
    },
}

/// Every call and the indexes that find them.
#[derive(Debug)]
pub(crate) struct Calls {
    /// The settings.
    pub(crate) settings: CallSettings,
    /// The calls, by key. Boxed: a `Call` is over a kilobyte, and a hash map keeps
    /// 15-100 % more slots than entries (more while it grows), each slot as large as a
    /// value.
    pub(crate) table: HashMap<CallKey, Box<Call>>,
    next_key: CallKey,
    /// The call and leg of every dialog of a call.
    pub(crate) by_dialog: HashMap<DialogId, (CallKey, Side)>,
    /// The call of every A leg's INVITE server transaction (for CANCEL).
    pub(crate) by_server: HashMap<ServerTransactionId, CallKey>,
    /// What each client transaction of the service is for.
    pub(crate) clients: HashMap<ClientTransactionId, CallClient>,
    /// The flow of the leg of every dialog of a call (kept until the dialog is gone, also
    /// after its call).
    pub(crate) dialog_flow: HashMap<DialogId, Flow>,
    /// The server transaction that carries a dialog's `2xx` and its retransmissions.
    pub(crate) reply_server: HashMap<DialogId, ServerTransactionId>,
    /// Dialogs to end with BYE as soon as the ACK of our `2xx` comes (the other side hung
    /// up before it; RFC 3261 §15: no BYE before that ACK).
    pub(crate) bye_on_ack: HashSet<DialogId>,
    /// Requests waiting for a glare retry on the dialog they are to be sent in.
    pub(crate) held: HashMap<DialogId, (CallKey, HeldRequest)>,
    /// Ring deadlines, earliest first (stale entries skipped).
    timers: BinaryHeap<Reverse<(Instant, CallKey)>>,
    /// INVITE client transactions to give up if still without final response by then: a
    /// cancelled B leg (RFC 3261 §9.1: 64·T1 after the CANCEL) or a re-INVITE passed on.
    guards: BinaryHeap<Reverse<(Instant, ClientTransactionId)>>,
    /// The Via branch prefix of mss's own INVITEs: an INVITE that carries it came back to
    /// mss (a loop, `482`).
    pub(crate) branch_prefix: String,
    /// Calls per local user (as caller or callee), for a user's `max_calls`.
    pub(crate) per_user: HashMap<String, u32>,
    /// The member of each circular group who answered last.
    pub(crate) last_answered: HashMap<String, String>,
    /// Transfers in progress and the calls that ring their targets.
    pub(crate) transfers: transfer::Transfers,
    /// The session timers of the legs (RFC 4028).
    pub(crate) session_timers: session_timer::SessionTimers,
    /// The call of every relay allocation asked for and not answered yet.
    pub(crate) media_ops: HashMap<u64, CallKey>,
    /// The call of every relay session (`calls/media.rs`).
    pub(crate) by_session: HashMap<mss_media::SessionId, CallKey>,
    /// Sessions the relay allocated and bound ahead (`MediaEvent::Ready`), oldest first:
    /// a new call takes them without waiting for the relay.
    pub(crate) media_ready: VecDeque<mss_media::Allocation>,
    next_media_op: u64,
    /// The ids of call records.
    pub(crate) record_ids: record_id::RecordIds,
    /// When the relay's counters are asked for next.
    pub(crate) stats_at: Option<Instant>,
}

impl Calls {
    /// An empty table; `rng` chooses the branch prefix.
    pub(crate) fn new(settings: CallSettings, rng: &mut dyn RngCore) -> Calls {
        let branch_prefix = format!("z9hG4bK{:08x}-", rng.next_u32());
        // One seed for every map: a peer that cannot learn it cannot choose colliding ids.
        let hasher = ahash::RandomState::with_seeds(
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        );
        Calls {
            settings,
            table: HashMap::with_hasher(hasher.clone()),
            next_key: 1,
            by_dialog: HashMap::with_hasher(hasher.clone()),
            by_server: HashMap::with_hasher(hasher.clone()),
            dialog_flow: HashMap::with_hasher(hasher.clone()),
            clients: HashMap::with_hasher(hasher.clone()),
            reply_server: HashMap::with_hasher(hasher.clone()),
            held: HashMap::with_hasher(hasher.clone()),
            bye_on_ack: HashSet::with_hasher(hasher.clone()),
            timers: BinaryHeap::new(),
            guards: BinaryHeap::new(),
            branch_prefix,
            per_user: HashMap::with_hasher(hasher.clone()),
            last_answered: HashMap::with_hasher(hasher.clone()),
            transfers: transfer::Transfers::new(&hasher),
            session_timers: session_timer::SessionTimers::new(hasher.clone()),
            media_ops: HashMap::with_hasher(hasher.clone()),
            by_session: HashMap::with_hasher(hasher.clone()),
            media_ready: VecDeque::new(),
            next_media_op: 1,
            record_ids: record_id::RecordIds::new(rng),
            stats_at: None,
        }
    }

    /// A fresh id for a relay allocation.
    pub(crate) fn next_media_op(&mut self) -> u64 {
        let op = self.next_media_op;
        self.next_media_op += 1;
        op
    }

    /// A fresh key.
    pub(crate) fn next_key(&mut self) -> CallKey {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    /// Schedules a look at call `key` at `at`.
    pub(crate) fn schedule(&mut self, key: CallKey, at: Instant) {
        self.timers.push(Reverse((at, key)));
    }

    /// Gives up INVITE client transaction `id` at `at` unless it has its final response by
    /// then.
    pub(crate) fn guard(&mut self, id: ClientTransactionId, at: Instant) {
        self.guards.push(Reverse((at, id)));
    }

    /// When [`Core::calls_on_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let ring = self.timers.peek().map(|Reverse((at, _))| *at);
        let guard = self.guards.peek().map(|Reverse((at, _))| *at);
        let session = self.session_timers.poll_timeout();
        [ring, guard, session].into_iter().flatten().min()
    }

    /// The guarded transactions due at `now`, removed from the heap.
    fn due_guards(&mut self, now: Instant) -> Vec<ClientTransactionId> {
        let mut ids = Vec::new();
        while let Some(Reverse((at, id))) = self.guards.peek().copied() {
            if at > now {
                break;
            }
            self.guards.pop();
            ids.push(id);
        }
        ids
    }

    /// The calls whose deadlines are due at `now`, removed from the heap.
    fn due(&mut self, now: Instant) -> Vec<CallKey> {
        let mut keys = Vec::new();
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            keys.push(key);
        }
        keys
    }

    /// Counts a call of `user`; false (nothing counted) when the user is at its
    /// `max_calls`.
    pub(crate) fn take_user_slot(&mut self, user: &str) -> bool {
        let limit = self.settings.user_max_calls.get(user).copied();
        let n = self.per_user.entry(user.to_owned()).or_insert(0);
        if limit.is_some_and(|max| *n >= max) {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back a call of `user`.
    pub(crate) fn release_user_slot(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(user);
            }
        }
    }

    /// How many calls are in the table.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

impl Core {
    /// When the call service wants [`Core::calls_on_timeout`]: a ring deadline or a
    /// dialog timer.
    pub(crate) fn calls_timeout(&self) -> Option<Instant> {
        [
            self.calls.poll_timeout(),
            self.dialogs.poll_timeout(),
            self.media_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires due dialog timers (`2xx` retransmissions, ACK waits, glare retries) and ring
    /// deadlines.
    pub(crate) fn calls_on_timeout(&mut self, now: Now) {
        if self.dialogs.poll_timeout().is_some_and(|t| t <= now.mono) {
            self.dialogs.handle_timeout(now.mono);
            self.drain_dialogs(now);
        }
        for key in self.calls.due(now.mono) {
            self.on_ring_deadline(now, key);
        }
        self.session_timers_on_timeout(now);
        self.media_stats_due(now.mono);
        for id in self.calls.due_guards(now.mono) {
            if self.calls.clients.contains_key(&id) && self.txns.abandon_client(now.mono, id) {
                tracing::info!(?id, "no final response in time: the INVITE is given up");
                self.drain(now);
            }
        }
    }

    /// Carries out what the dialog table asks for. What is queued now is taken first and
    /// then carried out: a handler that drains again (to send an ACK before its BYE) sees
    /// only what it caused, so thousands of timeouts at once do not nest on the stack.
    pub(crate) fn drain_dialogs(&mut self, now: Now) {
        let mut queued = Vec::new();
        while let Some(out) = self.dialogs.poll_output() {
            queued.push(out);
        }
        for out in queued {
            match out {
                DialogOutput::Response { id, response } => {
                    self.send_dialog_response(now, &id, response);
                }
                DialogOutput::Ack { id, request } => self.send_in_dialog_stateless(&id, request),
                DialogOutput::RetryReinvite { id } => self.retry_held(now, &id),
                DialogOutput::AckTimeout { id } => self.on_ack_timeout(now, &id),
                DialogOutput::PrackTimeout { id } => self.on_prack_timeout(now, &id),
            }
        }
    }

    /// Sends a response of dialog `id`: through the server transaction that carries it
    /// while that exists, else statelessly back over the leg's flow.
    fn send_dialog_response(&mut self, now: Now, id: &DialogId, response: mss_sip::Response) {
        let code = response.status().as_u16();
        if let Some(server) = self.calls.reply_server.get(id).copied() {
            match self.txns.send_response_ref(now.mono, server, &response) {
                Ok(()) => {
                    self.metrics.response(mss_admin::Direction::Out, code);
                    return;
                }
                Err(e) => {
                    tracing::debug!(?server, code, error = %e, "dialog response sent statelessly");
                    self.calls.reply_server.remove(id);
                }
            }
        }
        if let Some(flow) = self.flow_of_dialog(id) {
            self.metrics.response(mss_admin::Direction::Out, code);
            self.txns.send_stateless(flow, &Message::Response(response));
        }
    }

    /// Sends an ACK (or any request without transaction) of dialog `id` over its leg's
    /// flow.
    fn send_in_dialog_stateless(&mut self, id: &DialogId, request: Request) {
        if let Some(flow) = self.flow_of_dialog(id) {
            self.txns.send_stateless(flow, &Message::Request(request));
        }
    }

    /// The flow of the leg dialog `id` belongs to.
    pub(crate) fn flow_of_dialog(&self, id: &DialogId) -> Option<Flow> {
        self.calls.dialog_flow.get(id).copied()
    }

    /// Starts client transaction `request` to `flow` for `client`; `None` when the
    /// transaction layer refuses it (logged).
    pub(crate) fn call_send(
        &mut self,
        now: Now,
        request: Request,
        flow: Flow,
        client: CallClient,
    ) -> Option<ClientTransactionId> {
        let method = request.method().clone();
        self.metrics.request(
            mss_admin::Direction::Out,
            mss_admin::Method::from_token(method.as_str()),
        );
        match self.txns.send_request(now.mono, request, flow) {
            Ok(id) => {
                self.clients.insert(id, crate::core::ClientOwner::Call);
                self.calls.clients.insert(id, client);
                Some(id)
            }
            Err(e) => {
                tracing::warn!(peer = %flow, %method, error = %e, "call request not sent");
                None
            }
        }
    }

    /// A response (or `None`: a transport error) of a client transaction of the call
    /// service.
    pub(crate) fn on_call_client_event(
        &mut self,
        now: Now,
        id: ClientTransactionId,
        response: Option<mss_sip::Response>,
    ) {
        let is_final = response.as_ref().is_none_or(|r| r.status().is_final());
        match self.calls.clients.get(&id) {
            Some(CallClient::Invite { key, leg }) => {
                let (key, leg) = (*key, *leg);
                if response.is_none() {
                    self.calls.clients.remove(&id);
                    self.clients.remove(&id);
                }
                // An INVITE's transaction stays for forked 2xx (RFC 6026 §7.2): its entry
                // goes with Event::Terminated.
                self.on_b_invite_response(now, id, key, leg, response);
            }
            Some(CallClient::Cancel) => {
                if is_final {
                    self.calls.clients.remove(&id);
                    self.clients.remove(&id);
                }
            }
            Some(CallClient::Bye { dialog }) => {
                let dialog = dialog.clone();
                if is_final {
                    self.calls.clients.remove(&id);
                    self.clients.remove(&id);
                    self.on_bye_response(now, &dialog, response);
                }
            }
            Some(
                CallClient::Notify { .. }
                | CallClient::Transfer { .. }
                | CallClient::Replace { .. },
            ) => {
                if is_final {
                    self.clients.remove(&id);
                    if let Some(client) = self.calls.clients.remove(&id) {
                        self.on_transfer_client_event(now, client, response);
                    }
                }
            }
            Some(CallClient::Prack { key, leg }) => {
                let (key, leg) = (*key, *leg);
                if is_final {
                    self.calls.clients.remove(&id);
                    self.clients.remove(&id);
                    self.on_prack_response(key, leg, response.as_ref());
                }
            }
            Some(CallClient::Refresh { key, dialog }) => {
                let (key, dialog) = (*key, dialog.clone());
                if is_final {
                    self.calls.clients.remove(&id);
                    self.clients.remove(&id);
                    self.on_refresh_response(now, key, &dialog, response);
                }
            }
            Some(CallClient::Forward { .. }) => {
                if !is_final {
                    return;
                }
                self.clients.remove(&id);
                if let Some(CallClient::Forward { key, held, dialog }) =
                    self.calls.clients.remove(&id)
                {
                    if let Some(call) = self.calls.table.get_mut(&key) {
                        call.forwards.retain(|f| *f != id);
                    }
                    self.on_forward_response(now, key, *held, dialog, response);
                }
            }
            None => tracing::debug!(?id, "call response for an unknown transaction"),
        }
    }

    /// A `2xx` that matched no transaction: a retransmission of a B leg's answer after its
    /// INVITE transaction ended; the dialog layer acknowledges it again.
    pub(crate) fn on_stray_2xx(&mut self, now: Now, response: &mss_sip::Response) {
        if let Err(e) = self
            .dialogs
            .handle_response(now.mono, response, &mut self.rng)
        {
            tracing::debug!(error = %e, "stray 2xx not applied");
        }
        self.drain_dialogs(now);
    }

    /// Removes dialog `id` from the dialog table and the call indexes.
    /// A request held for a glare retry in it still gets its final answer.
    pub(crate) fn forget_dialog(&mut self, now: Now, id: &DialogId) {
        self.dialogs.remove(id);
        self.calls.by_dialog.remove(id);
        self.calls.dialog_flow.remove(id);
        self.calls.reply_server.remove(id);
        self.calls.bye_on_ack.remove(id);
        self.transfer_dialog_gone(id);
        self.calls.session_timers.remove(id);
        if let Some((_, held)) = self.calls.held.remove(id) {
            self.answer_held(now, &held);
        }
    }

    /// Calls in progress (for tests and the admin view).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Relay sessions held by calls and allocations not answered yet (for tests: every
    /// end of a call gives its ports back).
    pub fn media_session_count(&self) -> usize {
        self.calls.by_session.len() + self.calls.media_ops.len()
    }

    /// Dialogs held (for tests: no input may leave one behind).
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// Transfers in progress, with the calls ringing their targets and the dialogs that
    /// remember a REFER (for tests: no input may leave one behind).
    pub fn transfer_count(&self) -> usize {
        self.calls.transfers.len()
    }

    /// Legs with a session timer (for tests: no input may leave one behind).
    pub fn session_timer_count(&self) -> usize {
        self.calls.session_timers.len()
    }
}
