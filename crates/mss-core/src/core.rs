//! [`Core`]: the transactions and every service behind one sans-IO surface.
//!
//! The driver (the `mss` binary's worker, or a test) calls [`Core::handle`] with each
//! [`Input`] and the current time, then drains [`Core::poll_output`] and sleeps until
//! [`Core::poll_timeout`] or the next input. The core never reads a clock, touches a socket
//! or waits for the disk; its randomness comes from a generator seeded by the driver.
//!
//! After every input the core drains the transaction layer the way str0m's run loop does:
//! transmits become [`Output::Transmit`], events go to the services (`dispatch.rs` for new
//! requests; client-transaction events to the service that started the transaction, by
//! [`ClientOwner`]), and whatever the services ask for becomes more outputs.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mss_admin::{AuthFailure, Direction, Metrics};
use mss_services::registrar::{PendingRegister, Registrar};
use mss_services::{Answer, Directory, LocalDomains, Now, Precheck};
use mss_sip::{Flow, Message, Method, Request, Response, StatusCode};
use mss_transport::{route_response, ResponseRoute};
use mss_txn::{
    ClientTransactionId, Event, Output as TxnOutput, ServerTransactionId, TransactionId,
    TransactionKey, Transactions, Transmit,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::inbound::{classify, Inbound};
use crate::input::{Input, StoreResult};
use crate::lines::{LineSetup, Lines};
use crate::memory::TrimPolicy;
use crate::messaging::Im;
use crate::network::Network;
use crate::ops::Ops;
use crate::output::{OpId, Output, StoreOp};
use crate::stats::CoreStats;

/// How often expired bindings and old nonce counts are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Dialogs the table holds room for per call of `max_calls` (two legs and the early
/// dialogs of forks).
const DIALOGS_PER_CALL: usize = 8;

/// How long the core may take to drain at shutdown before it counts as drained anyway.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// What the core is built from: the services made from the configuration, and the host.
pub struct CoreParts {
    /// The registrar.
    pub registrar: Registrar,
    /// The location service (with the restored bindings) and the digest guard that every
    /// service shares.
    pub directory: Directory,
    /// Our domains.
    pub domains: LocalDomains,
    /// The answer builder.
    pub answer: Answer,
    /// The prechecks every request gets first.
    pub precheck: Precheck,
    /// The configured external lines, in the order of the configuration.
    pub lines: Vec<LineSetup>,
    /// The messaging service's settings.
    pub im: mss_services::im::ImSettings,
    /// The call service's settings.
    pub calls: crate::calls::CallSettings,
    /// Counters shown by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The core's own counters shown by `/metrics`.
    pub stats: Arc<CoreStats>,
    /// Which of our addresses a peer sees.
    pub network: Box<dyn Network + Send>,
    /// Seeds every random choice of the core (tags, Call-IDs, branches, jitter).
    pub seed: u64,
}

impl std::fmt::Debug for CoreParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreParts")
            .field("lines", &self.lines.len())
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Who started a client transaction, so that its responses reach the right service.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ClientOwner {
    /// The REGISTER of line number `.0` (`lines.rs`).
    Line(usize),
    /// A relayed MESSAGE or the delivery of a stored one (`messaging.rs`).
    Im(mss_services::im::RequestToken),
    /// A request of the call service (`calls.rs`, which keeps what it is for).
    Call,
}

/// What to do when an operation finishes.
#[derive(Debug)]
pub(crate) enum Then {
    /// The store write of an accepted REGISTER (`registrar.rs`).
    Register {
        /// The REGISTER's server transaction, to answer on.
        server: ServerTransactionId,
        /// The accepted REGISTER.
        pending: Box<PendingRegister>,
    },
    /// The batched delete of expired bindings (`registrar.rs`).
    Swept,
    /// A store call of the messaging service (`messaging.rs`).
    Im(crate::messaging::ImThen),
    /// A store call or lookup of line number `.0` (`lines.rs`).
    Line(usize, crate::lines::LineThen),
    /// The write of the record of call `.0` (`calls/ending.rs`).
    CallRecord(String),
}

/// The server's SIP logic in one sans-IO machine (see the module docs).
pub struct Core {
    pub(crate) txns: Transactions,
    pub(crate) registrar: Registrar,
    pub(crate) directory: Directory,
    pub(crate) precheck: Precheck,
    pub(crate) answer: Answer,
    pub(crate) domains: LocalDomains,
    pub(crate) lines: Lines,
    pub(crate) im: Im,
    pub(crate) dialogs: mss_dialog::Dialogs,
    pub(crate) calls: crate::calls::Calls,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stats: Arc<CoreStats>,
    pub(crate) network: Box<dyn Network + Send>,
    /// Who started each live client transaction.
    pub(crate) clients: HashMap<ClientTransactionId, ClientOwner>,
    /// The local address the packet being handled came to: it answers transmits of server
    /// transactions not routed yet (the transaction layer's own 200 to a CANCEL). A routed
    /// server transaction keeps its route itself ([`Transactions::set_reply_route`]).
    pub(crate) arrival: Option<SocketAddr>,
    /// Operations started and not finished.
    pub(crate) ops: Ops<Then>,
    /// When new requests are shed (`overload.rs`).
    pub(crate) overload: crate::overload::OverloadLimits,
    pub(crate) out: VecDeque<Output>,
    pub(crate) rng: StdRng,
    /// When the next sweep of expired bindings is due.
    pub(crate) next_sweep: Instant,
    /// A batched delete of expired bindings is running.
    pub(crate) sweep_running: bool,
    trim: TrimPolicy,
    /// The digest guard's failure counts already added to the metrics.
    auth_published: mss_services::AuthStats,
    /// Set by shutdown: drained by then at the latest.
    drain_until: Option<Instant>,
    /// The drain limit has passed (it is no longer a timeout to wake up for).
    drain_passed: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("transactions", &self.txns.len())
            .field("clients", &self.clients.len())
            .field("operations", &self.ops.len())
            .field("outputs", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core over `parts`, started at `now`: every line asks for its stored record
    /// ([`Output::Store`] with `GetLine`) and starts when it arrives.
    pub fn new(parts: CoreParts, now: Now) -> Core {
        let mut rng = StdRng::seed_from_u64(parts.seed);
        let im_seed = rand::Rng::gen(&mut rng);
        // Room for every call the limit allows: the caller's dialog, the answering leg's,
        // and the early dialogs of forks (devices of one user, members of a group).
        let max_calls = usize::try_from(parts.calls.max_calls).unwrap_or(usize::MAX);
        let dialog_config = mss_dialog::DialogConfig {
            max_dialogs: max_calls
                .saturating_mul(DIALOGS_PER_CALL)
                .max(mss_dialog::DEFAULT_MAX_DIALOGS),
            ..mss_dialog::DialogConfig::default()
        };
        let dialogs = mss_dialog::Dialogs::new(dialog_config, &mut rng);
        let calls = crate::calls::Calls::new(parts.calls, &mut rng);
        let mut core = Core {
            txns: Transactions::new(mss_txn::Config::default()),
            registrar: parts.registrar,
            directory: parts.directory,
            precheck: parts.precheck,
            answer: parts.answer,
            domains: parts.domains,
            lines: Lines::new(parts.lines, now),
            im: Im::new(parts.im, now, im_seed),
            dialogs,
            calls,
            metrics: parts.metrics,
            stats: parts.stats,
            network: parts.network,
            clients: HashMap::new(),
            arrival: None,
            ops: Ops::default(),
            overload: crate::overload::OverloadLimits::default(),
            out: VecDeque::new(),
            rng,
            next_sweep: now.mono + SWEEP_INTERVAL,
            sweep_running: false,
            trim: TrimPolicy::default(),
            auth_published: mss_services::AuthStats::default(),
            drain_until: None,
            drain_passed: false,
        };
        core.start_lines();
        core
    }

    /// Who has stored messages at start (`Store::message_counts`): a registration of
    /// anyone else needs no store read until a message is stored for them.
    pub fn set_stored_users(&mut self, users: impl IntoIterator<Item = String>) {
        self.im.set_stored_users(users);
    }

    /// Takes one input at `now`; then drain [`Core::poll_output`].
    pub fn handle(&mut self, now: Now, input: Input) {
        match input {
            Input::Received { local, flow, data } => self.on_received(now, local, flow, data),
            Input::Stored { id, result } => self.on_stored(now, id, result),
            Input::Resolved { id, addrs } => self.on_resolved(now, id, &addrs),
            Input::Media(event) => self.on_media_event(now, event),
            Input::SendFailed { transaction } => {
                self.txns.handle_transport_error(now.mono, transaction);
            }
            Input::ConnectFailed { flow, reason } => {
                self.lines_connect_failed(now, &flow, &reason);
            }
            Input::Timeout => self.on_timeout(now),
            Input::Shutdown => self.begin_shutdown(now),
        }
        self.drain(now);
        self.publish_bans(now);
        self.publish_auth_failures();
    }

    /// Adds the digest failures counted since the last call to `mss_auth_failures_total`
    /// (one comparison when nothing failed).
    fn publish_auth_failures(&mut self) {
        let now = self.directory.guard.stats();
        if now == self.auth_published {
            return;
        }
        let before = self.auth_published;
        for (reason, n) in [
            (
                AuthFailure::Credentials,
                now.credentials.saturating_sub(before.credentials),
            ),
            (
                AuthFailure::StaleNonce,
                now.stale.saturating_sub(before.stale),
            ),
            (
                AuthFailure::Replay,
                now.replay.saturating_sub(before.replay),
            ),
            (
                AuthFailure::Malformed,
                now.malformed.saturating_sub(before.malformed),
            ),
        ] {
            for _ in 0..n {
                self.metrics.auth_failure(reason);
            }
        }
        self.auth_published = now;
    }

    /// The next thing to do, or `None` until the next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Input::Timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at = self.next_sweep;
        for t in [
            self.txns.poll_timeout(),
            self.drain_until.filter(|_| !self.drain_passed),
            self.lines_timeout(),
            self.im.poll_timeout(),
            self.calls_timeout(),
        ]
        .into_iter()
        .flatten()
        {
            at = at.min(t);
        }

        Some(at)
    }

    /// After [`Input::Shutdown`]: nothing started is still waiting (no store write, no
    /// client transaction, every line said goodbye), or [`DRAIN_LIMIT`] has passed.
    pub fn is_drained(&self, now: Now) -> bool {
        let Some(limit) = self.drain_until else {
            return false;
        };
        let done = self.ops.len() == 0
            && self.clients.is_empty()
            && self.calls.table.is_empty()
            && self.lines_done();
        if !done && now.mono >= limit {
            tracing::warn!(
                operations = self.ops.len(),
                clients = self.clients.len(),
                "stopping before everything drained"
            );
            return true;
        }
        done
    }

    /// Live transactions (for tests and the admin view).
    pub fn transaction_count(&self) -> usize {
        self.txns.len()
    }

    fn begin_shutdown(&mut self, now: Now) {
        if self.drain_until.is_some() {
            return;
        }
        self.drain_until = Some(now.mono + DRAIN_LIMIT);
        self.lines_shutdown(now);
        self.calls_shutdown(now);
        self.drain(now);
        tracing::info!(
            operations = self.ops.len(),
            transactions = self.txns.len(),
            "draining"
        );
    }

    /// Starts store operation `op`, continued by `then` when its result comes.
    pub(crate) fn store(&mut self, op: StoreOp, then: Then) -> OpId {
        let id = self.ops.start(then);
        self.out.push_back(Output::Store { id, op });
        id
    }

    fn on_stored(&mut self, now: Now, id: OpId, result: StoreResult) {
        let Some(then) = self.ops.finish(id) else {
            tracing::debug!(?id, "result of an unknown store operation");
            return;
        };
        match then {
            Then::Register { server, pending } => match result {
                StoreResult::Done(r) => self.on_register_stored(now, server, pending, r),
                other => self.wrong_result("REGISTER", &other),
            },
            Then::Swept => match result {
                StoreResult::Count(r) => self.on_swept(r),
                other => self.wrong_result("sweep", &other),
            },
            Then::Im(then) => self.on_im_stored(now, then, result),
            Then::Line(index, then) => self.on_line_stored(now, index, then, result),
            Then::CallRecord(call) => self.on_call_record_stored(&call, &result),
        }
    }

    fn on_resolved(&mut self, now: Now, id: OpId, addrs: &[SocketAddr]) {
        match self.ops.finish(id) {
            Some(Then::Line(index, _)) => self.on_line_resolved(now, index, addrs),
            Some(other) => tracing::warn!(?other, "a lookup result for a store operation"),
            None => tracing::debug!(?id, "result of an unknown lookup"),
        }
    }

    /// A driver that feeds a result of the wrong type for an operation breaks the contract.
    pub(crate) fn wrong_result(&self, what: &str, result: &StoreResult) {
        tracing::error!(?result, "the store result for a {what} has the wrong type");
    }

    fn on_timeout(&mut self, now: Now) {
        if self.drain_until.is_some_and(|t| t <= now.mono) {
            self.drain_passed = true;
        }
        self.txns.handle_timeout(now.mono);
        self.lines_on_timeout(now);
        self.im_on_timeout(now);
        self.calls_on_timeout(now);
        if now.mono >= self.next_sweep {
            self.sweep(now);
            self.update_ban_gauges(now);
            self.stats
                .set_transactions_evicted(self.txns.completed_evicted());
            self.next_sweep = now.mono + SWEEP_INTERVAL;
            if self.trim.observe(self.txns.len()) {
                self.clients.shrink_to(self.clients.len().saturating_mul(2));
                self.out.push_back(Output::MemoryReleasable);
            }
        }
    }

    /// One packet: dropped unread when its address is banned or over its rate
    /// (`bans.rs`), else parsed, answered statelessly or handed to the transaction layer.
    fn on_received(&mut self, now: Now, local: SocketAddr, flow: Flow, data: bytes::Bytes) {
        if !self.admit_packet(now, &flow, &data) {
            return;
        }
        let (inbound, failed) = classify(data, flow.remote, &self.answer);
        if failed {
            self.metrics.parse_error();
        }
        match inbound {
            Inbound::Message(msg) => {
                self.arrival = Some(local);
                match msg {
                    Message::Request(req) => self.on_received_request(now, req, flow),
                    Message::Response(rsp) => {
                        self.metrics.response(Direction::In, rsp.status().as_u16());
                        self.txns
                            .handle_message(now.mono, Message::Response(rsp), flow);
                    }
                }
                self.drain(now);
                self.arrival = None;
            }
            Inbound::Reject(rsp) => self.send_stateless(&rsp, flow, Some(local)),
            Inbound::Drop => {}
        }
    }

    /// A request from the network, checked once ([`Request::check`]): what the check
    /// parsed gives the transaction key and goes on to the services with the request. A
    /// request that fails the check, and every ACK, takes the transaction layer's general
    /// path (which absorbs retransmissions too); a failed request is refused from
    /// [`Core::on_event`].
    fn on_received_request(&mut self, now: Now, req: Request, from: Flow) {
        // An ACK is never answered and never starts a transaction (RFC 3261 §17.2.1,
        // §13.3.1.4): it matches an INVITE server transaction by its top Via, or a dialog by
        // its Call-ID and tags, and whatever reads it further parses what it needs. So it
        // skips the whole-message check (From, To, Contact, every Via), which would cost
        // twice per call (the ACK of the 407 challenge and the ACK of the 2xx). An ACK that
        // failed the check took this very path before.
        if *req.method() == Method::Ack {
            self.txns
                .handle_message(now.mono, Message::Request(req), from);
            return;
        }
        let handled = match req.check() {
            Ok(checked) => match TransactionKey::for_checked(&req, &checked) {
                Ok(key) => {
                    if self.shed_request(&req, &checked, &key, from) {
                        return;
                    }
                    let new = self.txns.handle_checked_request(now.mono, &req, from, key);
                    if let Some(id) = new {
                        self.on_request(now, id, &req, Ok(&checked), from);
                    }
                    true
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
        if !handled {
            self.txns
                .handle_message(now.mono, Message::Request(req), from);
        }
    }

    /// Drains every output of the transaction layer and of the lines that got an input,
    /// until neither has more.
    pub(crate) fn drain(&mut self, now: Now) {
        loop {
            while let Some(out) = self.txns.poll_output() {
                match out {
                    TxnOutput::Transmit(t) => self.transmit(t),
                    TxnOutput::Event(e) => self.on_event(now, e),
                }
            }
            if !self.drain_lines(now) {
                break;
            }
        }
    }

    fn transmit(&mut self, mut t: Transmit) {
        if let Some(TransactionId::Server(_)) = t.transaction {
            t.local = t.local.or(self.arrival);
        }
        self.out.push_back(Output::Transmit(t));
    }

    fn on_event(&mut self, now: Now, e: Event) {
        match e {
            Event::Request { id, request, from } => {
                let checked = request.check();
                self.on_request(now, id, &request, checked.as_ref(), from);
            }
            // The ACK for a 2xx (or a stray one): the call service's (`calls/in_dialog.rs`).
            Event::Ack { request, .. } => self.on_call_ack(now, &request),
            // The ACK of a non-2xx final never came: the transaction is over, so is that
            // INVITE.
            Event::AckTimeout { .. } => {}
            // The transaction layer already answered the CANCEL itself; the call service
            // answers the INVITE with 487 and cancels its B legs.
            Event::Cancel { invite, .. } => self.on_call_cancel(now, invite),
            Event::Response { id, response } => self.on_client_event(now, id, Some(response)),
            Event::Timeout { id, .. } if self.is_line_client(&id) => self.on_line_timeout(now, id),
            Event::Timeout { id, response } => self.on_client_event(now, id, Some(response)),
            Event::TransportError { id } => match id {
                TransactionId::Client(c) => self.on_client_event(now, c, None),
                TransactionId::Server(s) => tracing::debug!(?s, "response could not be sent"),
            },
            Event::Terminated { id } => {
                if let TransactionId::Client(c) = id {
                    self.clients.remove(&c);
                    self.calls.clients.remove(&c);
                }
            }
            Event::StrayResponse { response, .. } if response.status().is_success() => {
                // A 2xx retransmission after the INVITE's transaction ended: the dialog
                // layer sends its ACK again (RFC 3261 §13.2.2.4).
                self.stats.stray_response();
                self.on_stray_2xx(now, &response);
            }
            Event::StrayResponse { response, from } => {
                self.stats.stray_response();
                tracing::debug!(peer = %from, status = response.status().as_u16(), "stray response dropped");
            }
            Event::Invalid {
                message,
                from,
                error,
            } => {
                self.metrics.parse_error();
                if let Message::Request(req) = *message {
                    let err = match req.validate() {
                        Err(e) => Some(e),
                        Ok(()) => match error {
                            mss_txn::TxnError::Header(e) => Some(e),
                            _ => None,
                        },
                    };
                    let local = self.arrival;
                    if let Some(rsp) = err.and_then(|e| self.answer.parse_error(&req, &e)) {
                        self.send_stateless(&rsp, from, local);
                    }
                }
            }
        }
    }

    /// A response, timeout (`Some(408)`) or transport error (`None`) of client transaction
    /// `id`, for the service that started it.
    fn on_client_event(&mut self, now: Now, id: ClientTransactionId, response: Option<Response>) {
        match self.clients.get(&id).copied() {
            Some(ClientOwner::Line(index)) => self.on_line_client_event(now, id, index, response),
            Some(ClientOwner::Im(token)) => self.on_im_client_event(now, id, token, response),
            Some(ClientOwner::Call) => self.on_call_client_event(now, id, response),
            None => tracing::debug!(?id, "event for a client transaction nobody owns"),
        }
    }

    /// Answers server transaction `id`.
    pub(crate) fn respond(&mut self, now: Now, id: ServerTransactionId, rsp: Response) {
        let code = rsp.status().as_u16();
        match self.txns.send_response(now.mono, id, rsp) {
            Ok(()) => self.metrics.response(Direction::Out, code),
            Err(e) => tracing::debug!(?id, code, error = %e, "response not sent"),
        }
    }

    /// Answers server transaction `id` with a final response sent once, ending the
    /// transaction at once ([`Transactions::send_response_once`]).
    pub(crate) fn respond_once(&mut self, now: Now, id: ServerTransactionId, rsp: Response) {
        let code = rsp.status().as_u16();
        match self.txns.send_response_once(now.mono, id, rsp) {
            Ok(()) => self.metrics.response(Direction::Out, code),
            Err(e) => tracing::debug!(?id, code, error = %e, "response not sent"),
        }
    }

    /// Answers server transaction `id` with a final response: a digest challenge
    /// (`401`/`407`) is sent once and keeps no transaction ([`Core::respond_once`]; RFC 3261
    /// §26.3.2.4, §8.2.7), so that unauthenticated requests cost no state (a REGISTER's
    /// challenge no Timer J, an INVITE's neither its ACK nor Timer H). Any other response
    /// goes through the transaction's state machine ([`Core::respond`]).
    pub(crate) fn respond_final(&mut self, now: Now, id: ServerTransactionId, rsp: Response) {
        let status = rsp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
        {
            self.respond_once(now, id, rsp);
        } else {
            self.respond(now, id, rsp);
        }
    }

    /// Sends `rsp` outside any transaction, routed from its top Via (RFC 3261 §18.2.2).
    pub(crate) fn send_stateless(&mut self, rsp: &Response, from: Flow, local: Option<SocketAddr>) {
        let to = match route_response(&from, rsp.headers()) {
            Ok(ResponseRoute::Flow(f)) => f,
            Ok(ResponseRoute::Resolve { .. }) | Err(_) => from,
        };
        self.stats.stateless_reply();
        self.metrics.response(Direction::Out, rsp.status().as_u16());
        self.out.push_back(Output::Transmit(Transmit {
            to,
            local,
            bytes: rsp.to_bytes(),
            transaction: None,
        }));
    }
}
