//! The transaction table: every live transaction, the key index that finds them, the timer
//! queue, and the sans-IO surface (`handle_*` in, `poll_*` out).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use mss_sip::{Flow, Message, Request};

use crate::client_invite::ClientInvite;
use crate::client_non_invite::ClientNonInvite;
use crate::completed::{CompletedQueues, KeyEntry};
use crate::ended::EndedEarly;
use crate::key_index::KeyIndex;
use crate::machine::{Action, State};
use crate::output::{Event, Output, Transmit};
use crate::server_invite::ServerInvite;
use crate::server_non_invite::ServerNonInvite;
use crate::slab::{ClientTransactionId, ServerTransactionId, Slab, SlotId, TransactionId};
use crate::timer_queue::TimerQueue;
use crate::timers::Timers;
use crate::TransactionKey;

/// Default of [`Config::max_completed`]: about 120 MB of compact entries (each holds its
/// key, flow and encoded final response).
pub const DEFAULT_MAX_COMPLETED: usize = 200_000;

/// Default of [`Config::completed_budget`]: 16 MiB, about 26,000 Completed REGISTERs
/// (~620 bytes charged each: the 200 with its Contact and Via, ~330 bytes, the entry and
/// its key-index slot): Timer J in full up to ~800 registrations/s, still more than the
/// client's first retransmission (T1) at 44,000/s.
pub const DEFAULT_COMPLETED_BUDGET: usize = 16 << 20;

/// Configuration of a [`Transactions`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Timer values (RFC 3261 defaults).
    pub timers: Timers,
    /// Most compact Completed non-INVITE server transactions kept for Timer J (§17.2.2).
    /// Beyond it the oldest ends early, so that memory stays bounded whatever arrives: at
    /// 36,000 requests/s the default still keeps each for more than 5 s, longer than a
    /// client's first retransmissions (T1, 2·T1, 4·T1); a retransmission arriving later,
    /// before Timer J, is absorbed (the key is remembered, see [`Config::completed_budget`]).
    pub max_completed: usize,
    /// Bytes the compact Completed transactions may take (each is charged its final
    /// response, its key's heap bytes, the entry and its key-index slot). Beyond it the
    /// oldest Completed REGISTERs end early (see the `completed` module for why only
    /// those); other methods' transactions are bounded by [`Config::max_completed`]
    /// alone. The keys of transactions ended early are remembered until their Timer J in
    /// a fixed table of half this size (16 bytes per key, `ended.rs`), so that their
    /// retransmissions are absorbed rather than handled again.
    pub completed_budget: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            timers: Timers::default(),
            max_completed: DEFAULT_MAX_COMPLETED,
            completed_budget: DEFAULT_COMPLETED_BUDGET,
        }
    }
}

/// The state machine of a client transaction.
#[derive(Debug)]
pub(crate) enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

/// A client transaction: its machine and what it needs to retransmit and to ACK.
#[derive(Debug)]
pub(crate) struct ClientTxn {
    pub(crate) key: TransactionKey,
    pub(crate) machine: ClientMachine,
    pub(crate) flow: Flow,
    /// The request, kept to build the ACK (§17.1.1.3) and the 408 on timeout; dropped
    /// once the transaction has its final response (Accepted, Completed: neither can
    /// happen any more, and an answered INVITE's transaction lives on 32 s for Timer M).
    pub(crate) request: Option<Request>,
    /// Its CSeq number, for the ACK.
    pub(crate) cseq: u32,
    /// The bytes sent, re-sent verbatim by Timers A and E (empty once the final response
    /// came: nothing is re-sent then).
    pub(crate) request_bytes: Bytes,
    /// The ACK for the non-2xx final response, once built.
    pub(crate) ack: Option<Bytes>,
}

/// The state machine of a server transaction.
#[derive(Debug)]
pub(crate) enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

/// A server transaction: its machine, the request and the last response it sent.
#[derive(Debug)]
pub(crate) struct ServerTxn {
    pub(crate) key: TransactionKey,
    pub(crate) machine: ServerMachine,
    /// Where every response goes: the flow of the request (§18.2.2), or the one the TU
    /// chose from the top Via ([`Transactions::set_reply_route`]).
    pub(crate) flow: Flow,
    /// The local address the responses leave from, when the TU named one.
    pub(crate) local: Option<SocketAddr>,
    /// An INVITE, kept to build its 100 (Trying) (§17.2.1) until the final response
    /// goes out (no 100 after that; an answered INVITE's transaction stays 32 s in
    /// Accepted, a rejected one up to 32 s in Completed). Non-INVITE transactions
    /// never send one of their own, so they do not keep their request: a REGISTER's
    /// transaction lives on for Timer J (32 s on UDP) and its parsed request would be
    /// most of its memory.
    pub(crate) request: Option<Box<Request>>,
    /// The last response sent, re-sent on request retransmissions and by Timer G; not
    /// kept for an INVITE's 2xx (Accepted re-sends nothing itself, RFC 6026 §7.1).
    pub(crate) last_response: Option<Bytes>,
    /// The To header value of the last response the TU passed to an INVITE (its tag
    /// identifies the ACK for it under RFC 2543 matching, §17.2.3, and goes into the 200
    /// to a CANCEL, §9.2). Always `None` for other methods.
    pub(crate) response_to: Option<Bytes>,
}

/// A live transaction.
#[derive(Debug)]
// The server variant is the common one (every received request); boxing it too would cost
// an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Txn {
    /// Boxed: client transactions are few (lines, relayed messages) and their request
    /// would make every slot of the table larger.
    Client(Box<ClientTxn>),
    Server(ServerTxn),
}

/// Every live SIP transaction of one worker, driven without I/O.
///
/// See the crate docs for the run loop. All methods are O(1) in the number of live
/// transactions (amortized O(log n) for timers and slot reuse).
#[derive(Debug)]
pub struct Transactions {
    pub(crate) config: Config,
    /// Transactions by id.
    pub(crate) txns: Slab<Txn>,
    /// Transactions by key; each key is stored once, by its transaction (see the
    /// `key_index` module).
    pub(crate) keys: KeyIndex,
    pub(crate) timers: TimerQueue,
    /// Completed non-INVITE server transactions on unreliable transports, kept compact
    /// until Timer J (see the `completed` module).
    pub(crate) completed: CompletedQueues,
    pub(crate) outputs: VecDeque<Output>,
    /// Scratch buffer for machine actions, reused to keep the hot path allocation-free.
    pub(crate) scratch: Vec<Action>,
    /// The latest `now` seen; time never goes backwards.
    pub(crate) last_now: Option<Instant>,
    /// Compact Completed transactions ended before Timer J because the queue was full or
    /// over its budget.
    pub(crate) evicted: u64,
    /// The keys of those, until their Timer J (`ended.rs`).
    pub(crate) ended: EndedEarly,
    /// Requests absorbed as retransmissions of a transaction in `ended`.
    pub(crate) absorbed_after_end: u64,
    /// INVITE transactions, client and server, in Accepted (RFC 6026): answered with a
    /// 2xx, waiting out Timer L or M.
    pub(crate) accepted: usize,
}

impl Transactions {
    /// An empty table. Timer values go through [`Timers::sanitized`].
    pub fn new(config: Config) -> Self {
        Transactions {
            config: Config {
                timers: config.timers.sanitized(),
                max_completed: config.max_completed.max(1),
                completed_budget: config.completed_budget,
            },
            txns: Slab::default(),
            keys: KeyIndex::default(),
            timers: TimerQueue::default(),
            completed: CompletedQueues::default(),
            outputs: VecDeque::new(),
            scratch: Vec::new(),
            last_now: None,
            evicted: 0,
            ended: EndedEarly::new(ended_table_bytes(config.completed_budget)),
            absorbed_after_end: 0,
            accepted: 0,
        }
    }

    /// Sets [`Config::completed_budget`]; entries beyond it end at the next compaction.
    pub fn set_completed_budget(&mut self, bytes: usize) {
        self.config.completed_budget = bytes;
        self.ended = EndedEarly::new(ended_table_bytes(bytes));
    }

    /// Handles a message received from the network on `from`.
    ///
    /// Afterwards call [`Transactions::poll_output`] until it returns `None`, then
    /// [`Transactions::poll_timeout`].
    pub fn handle_message(&mut self, now: Instant, msg: Message, from: Flow) {
        let now = self.advance(now);
        match msg {
            Message::Request(req) => self.handle_request(now, req, from),
            Message::Response(rsp) => self.handle_response(now, rsp, from),
        }
    }

    /// Fires every timer due at `now`. A `now` earlier than one already seen is ignored.
    ///
    /// Afterwards call [`Transactions::poll_output`] until it returns `None`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.last_now.is_some_and(|last| now < last) {
            return;
        }
        self.last_now = Some(now);
        self.expire_completed(now);
        while let Some(entry) = self.timers.pop_due(now) {
            let mut out = std::mem::take(&mut self.scratch);
            let timers = self.config.timers;
            match self.txns.get_mut(entry.slot) {
                Some(Txn::Client(c)) => match &mut c.machine {
                    ClientMachine::Invite(m) => m.on_timer(entry.timer, entry.at, now, &mut out),
                    ClientMachine::NonInvite(m) => {
                        m.on_timer(entry.timer, entry.at, now, &timers, &mut out)
                    }
                },
                Some(Txn::Server(s)) => match &mut s.machine {
                    ServerMachine::Invite(m) => {
                        m.on_timer(entry.timer, entry.at, now, &timers, &mut out)
                    }
                    ServerMachine::NonInvite(m) => m.on_timer(entry.timer, entry.at, &mut out),
                },
                // The transaction is gone: a stale entry (lazy deletion).
                None => {}
            }
            for action in out.drain(..) {
                self.apply(entry.slot, action);
            }
            self.scratch = out;
        }
    }

    /// The driver failed to send a message of transaction `id` (§17.1.4, §17.2.4).
    ///
    /// Client transactions inform the TU and terminate. Server transactions inform the TU
    /// and stay in their state so that request retransmissions are still absorbed
    /// (RFC 6026 §8.8); their timers end them. A compact Completed non-INVITE transaction
    /// (see [`Transactions::completed_len`]) has no slot any more: nothing is reported.
    pub fn handle_transport_error(&mut self, now: Instant, id: TransactionId) {
        self.advance(now);
        let slot = match id {
            TransactionId::Client(ClientTransactionId(s))
            | TransactionId::Server(ServerTransactionId(s)) => s,
        };
        let mut out = std::mem::take(&mut self.scratch);
        match self.txns.get_mut(slot) {
            Some(Txn::Client(c)) => {
                self.outputs
                    .push_back(Output::Event(Event::TransportError { id }));
                match &mut c.machine {
                    ClientMachine::Invite(m) => m.on_transport_error(&mut out),
                    ClientMachine::NonInvite(m) => m.on_transport_error(&mut out),
                }
            }
            Some(Txn::Server(_)) => self
                .outputs
                .push_back(Output::Event(Event::TransportError { id })),
            None => {}
        }
        for action in out.drain(..) {
            self.apply(slot, action);
        }
        self.scratch = out;
    }

    /// Sends a message outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4) or a
    /// stateless response. It comes out of [`Transactions::poll_output`] in order with the
    /// rest.
    pub fn send_stateless(&mut self, to: Flow, message: &Message) {
        self.transmit(to, message.to_bytes(), None);
    }

    /// The next output, or `None` when there is nothing more to do until the next input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Transactions::handle_timeout`] should be called next, if any timer is armed.
    /// May be earlier than needed (a disarmed timer); calling early is harmless.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timers.peek(), self.completed.peek()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The number of live transactions, compact Completed ones included.
    pub fn len(&self) -> usize {
        self.txns.len() + self.completed.len()
    }

    /// The number of compact Completed non-INVITE server transactions (a part of
    /// [`Transactions::len`]): they hold only their key, final response, flow and expiry.
    pub fn completed_len(&self) -> usize {
        self.completed.len()
    }

    /// The number of INVITE transactions, client and server, in Accepted (a part of
    /// [`Transactions::len`]): answered with a 2xx, they only wait out Timer L or M (32 s,
    /// RFC 6026 §8.4, §8.7) to absorb retransmissions, and each is an answered call's.
    pub fn accepted_len(&self) -> usize {
        self.accepted
    }

    /// How many compact Completed transactions ended before Timer J because
    /// [`Config::max_completed`] or [`Config::completed_budget`] was reached, since the
    /// table was made.
    pub fn completed_evicted(&self) -> u64 {
        self.evicted
    }

    /// What the compact Completed transactions are charged against
    /// [`Config::completed_budget`], in bytes.
    pub fn completed_bytes(&self) -> usize {
        self.completed.bytes()
    }

    /// How many requests were absorbed as retransmissions of a compact Completed
    /// transaction ended before its Timer J (its key is remembered until then), since the
    /// table was made.
    pub fn absorbed_after_end(&self) -> u64 {
        self.absorbed_after_end
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of a live client transaction.
    pub fn client_state(&self, id: ClientTransactionId) -> Option<State> {
        match self.txns.get(id.0)? {
            Txn::Client(c) => Some(match &c.machine {
                ClientMachine::Invite(m) => m.state(),
                ClientMachine::NonInvite(m) => m.state(),
            }),
            Txn::Server(_) => None,
        }
    }

    /// The state of a live server transaction; `None` once a non-INVITE one on an
    /// unreliable transport has sent its final response (it is then kept compact, by key
    /// only, until Timer J).
    pub fn server_state(&self, id: ServerTransactionId) -> Option<State> {
        match self.txns.get(id.0)? {
            Txn::Server(s) => Some(s.machine.state()),
            Txn::Client(_) => None,
        }
    }

    /// The live server transaction with this key (§17.2.3), e.g. from
    /// [`TransactionKey::for_request`]. One hash-map lookup. A compact Completed
    /// transaction is found too (its id no longer takes responses).
    pub fn find_server(&self, key: &TransactionKey) -> Option<ServerTransactionId> {
        match self.find_key(key)? {
            KeyEntry::Live(slot) => matches!(self.txns.get(slot), Some(Txn::Server(_)))
                .then_some(ServerTransactionId(slot)),
            KeyEntry::Completed(seq) => self.completed.get(seq).map(|c| ServerTransactionId(c.id)),
        }
    }

    /// Clamps `now` so time never goes backwards, and records it.
    pub(crate) fn advance(&mut self, now: Instant) -> Instant {
        let now = match self.last_now {
            Some(last) if now < last => last,
            _ => now,
        };
        self.last_now = Some(now);
        now
    }

    /// Queues a transmission from no particular local address.
    pub(crate) fn transmit(&mut self, to: Flow, bytes: Bytes, transaction: Option<TransactionId>) {
        self.transmit_from(to, None, bytes, transaction);
    }

    /// Queues a transmission from the local address `local`, when given.
    pub(crate) fn transmit_from(
        &mut self,
        to: Flow,
        local: Option<SocketAddr>,
        bytes: Bytes,
        transaction: Option<TransactionId>,
    ) {
        self.outputs.push_back(Output::Transmit(Transmit {
            to,
            local,
            bytes,
            transaction,
        }));
    }

    /// Queues an event.
    pub(crate) fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Carries out the actions that need no message from the caller: retransmissions,
    /// 100 (Trying), timeouts, timers and termination. `PassUp`, `SendAck` and
    /// `SendResponse` are handled where the message is at hand and ignored here.
    pub(crate) fn apply(&mut self, slot: SlotId, action: Action) {
        match action {
            Action::Arm(timer, at) => self.timers.push(at, slot, timer),
            Action::Retransmit => match self.txns.get(slot) {
                Some(Txn::Client(c)) => {
                    let (flow, bytes) = (c.flow, c.request_bytes.clone());
                    self.transmit(flow, bytes, Some(client_id(slot)));
                }
                Some(Txn::Server(s)) => {
                    if let Some(bytes) = s.last_response.clone() {
                        let (flow, local) = (s.flow, s.local);
                        self.transmit_from(flow, local, bytes, Some(server_id(slot)));
                    }
                }
                None => {}
            },
            Action::SendTrying => self.send_trying(slot),
            Action::TimedOut(timer) => self.timed_out(slot, timer),
            Action::Terminate => self.terminate(slot),
            Action::PassUp | Action::SendAck | Action::SendResponse => {}
        }
    }

    /// Destroys a terminated transaction (§17.1.1.2, §17.2.1: at once) and tells the TU.
    pub(crate) fn terminate(&mut self, slot: SlotId) {
        let Some(txn) = self.txns.remove(slot) else {
            return;
        };
        let accepted = match &txn {
            Txn::Client(c) => {
                matches!(&c.machine, ClientMachine::Invite(m) if m.accepted.counted())
            }
            Txn::Server(s) => {
                matches!(&s.machine, ServerMachine::Invite(m) if m.accepted.counted())
            }
        };
        if accepted {
            self.accepted = self.accepted.saturating_sub(1);
        }
        let (key, id) = match &txn {
            Txn::Client(c) => (&c.key, client_id(slot)),
            Txn::Server(s) => (&s.key, server_id(slot)),
        };
        // A key taken over by a newer transaction stays filed for it.
        self.keys.remove(self.keys.hash(key), KeyEntry::Live(slot));
        self.keys.shrink_if_sparse();
        self.event(Event::Terminated { id });
    }

    /// Where the transaction with `key` is, if any (compact Completed entries past Timer J
    /// included; see [`Transactions::lookup`]).
    pub(crate) fn find_key(&self, key: &TransactionKey) -> Option<KeyEntry> {
        let hash = self.keys.hash(key);
        self.keys.find(hash, |e| {
            key_of(&self.txns, &self.completed, e) == Some(key)
        })
    }

    /// Files the new transaction in `slot`, whose key hashes to `hash`, taking the key over
    /// from a transaction that still holds it (a compact Completed one past Timer J that
    /// the queue has not dropped yet).
    pub(crate) fn index_hashed(&mut self, hash: u64, slot: SlotId) {
        let Some(key) = key_of(&self.txns, &self.completed, KeyEntry::Live(slot)) else {
            return;
        };
        self.keys.insert(hash, KeyEntry::Live(slot), |e| {
            e != KeyEntry::Live(slot) && key_of(&self.txns, &self.completed, e) == Some(key)
        });
    }

    /// Gives up client transaction `id` while it waits for its final response: the TU gets
    /// [`Event::Timeout`] with a 408 built from the request (§8.1.3.1), then
    /// [`Event::Terminated`]. This is RFC 3261 §9.1's "if no final response is received
    /// within 64*T1 seconds after the CANCEL was sent, the client transaction SHOULD be
    /// destroyed": an INVITE client transaction in Proceeding has no timer of its own.
    /// Returns false (nothing happens) when `id` is not a live client transaction or already
    /// has its final response.
    pub fn abandon_client(&mut self, now: Instant, id: ClientTransactionId) -> bool {
        self.advance(now);
        let waiting = matches!(
            self.client_state(id),
            Some(State::Calling | State::Trying | State::Proceeding)
        );
        if waiting {
            self.timed_out(id.0, crate::Timer::B);
            self.terminate(id.0);
        }
        waiting
    }

    fn timed_out(&mut self, slot: SlotId, timer: crate::Timer) {
        match self.txns.get(slot) {
            Some(Txn::Client(c)) => {
                // §8.1.3.1: a timeout is treated as a 408 (Request Timeout). Only a
                // transaction still waiting for its final response (which keeps its
                // request) times out.
                if let Some(request) = &c.request {
                    let response =
                        crate::build::response_for(request, mss_sip::StatusCode::REQUEST_TIMEOUT);
                    self.event(Event::Timeout {
                        id: ClientTransactionId(slot),
                        response,
                    });
                }
            }
            Some(Txn::Server(_)) if timer == crate::Timer::H => self.event(Event::AckTimeout {
                id: ServerTransactionId(slot),
            }),
            _ => {}
        }
    }
}

impl ServerMachine {
    pub(crate) fn state(&self) -> State {
        match self {
            ServerMachine::Invite(m) => m.state(),
            ServerMachine::NonInvite(m) => m.state(),
        }
    }
}

/// The key of the transaction `entry` points at.
fn key_of<'a>(
    txns: &'a Slab<Txn>,
    completed: &'a CompletedQueues,
    entry: KeyEntry,
) -> Option<&'a TransactionKey> {
    match entry {
        KeyEntry::Live(slot) => match txns.get(slot)? {
            Txn::Client(c) => Some(&c.key),
            Txn::Server(s) => Some(&s.key),
        },
        KeyEntry::Completed(seq) => completed.get(seq).map(|c| &c.key),
    }
}

/// The size of the table of transactions ended early (`ended.rs`): half the budget of
/// the Completed ones (at least 64 KiB), 16 bytes per key (8 MiB, 524,288 keys, for the
/// default budget: 26 s of early ends at 20,000/s).
fn ended_table_bytes(completed_budget: usize) -> usize {
    completed_budget / 2
}

/// The public id of a client slot.
pub(crate) fn client_id(slot: SlotId) -> TransactionId {
    TransactionId::Client(ClientTransactionId(slot))
}

/// The public id of a server slot.
pub(crate) fn server_id(slot: SlotId) -> TransactionId {
    TransactionId::Server(ServerTransactionId(slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every live transaction takes a slot (a REGISTER's only until its final response:
    /// it then waits out Timer J compact, see `completed.rs`): keep a slot small (it was
    /// 544 bytes with the request inline; the reply route's local address added 32).
    #[test]
    fn a_transaction_slot_stays_small() {
        let size = std::mem::size_of::<Txn>();
        assert!(size <= 376, "Txn is {size} bytes");
    }
}
