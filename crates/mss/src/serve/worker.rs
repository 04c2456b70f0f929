//! The worker: ONE task owns every sans-IO machine (transactions, registrar, lines and
//! messaging), so the hot path takes no lock (DESIGN §5).
//!
//! It `select!`s over the received packets, the [`Completion`]s of async work it started
//! (store calls, the lines' DNS lookups), admin [`Query`]s, a sleep until the earliest timer,
//! and the shutdown signal. After every input it drains [`Transactions::poll_output`] the way
//! str0m's run loop does: transmits go to the sockets, events to the services.
//!
//! Seams for the services (one `impl Worker` block per service, in its own file):
//! - a request goes through [`Worker::on_request`]: one `match` arm per method;
//! - a service that awaits storage calls [`Worker::spawn_store`] and gets its own
//!   [`Completion`] variant back, dispatched in [`Worker::on_completion`];
//! - a service that starts client transactions records who started each one in
//!   [`Worker::clients`] ([`ClientOwner`]); responses and timeouts are routed by it;
//! - shutdown: [`Worker::begin_shutdown`] is where services say goodbye (lines send their
//!   un-REGISTERs); the worker stops once [`Worker::is_drained`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mss_admin::{Direction, LineView, Metrics};
use mss_services::registrar::{PendingRegister, Registrar};
use mss_services::{Answer, LocalDomains, Now, Precheck};
use mss_sip::{Flow, Message, Method, ParseError, Request, RequestCore, Response, StatusCode, Uri};
use mss_store::{Store, StoreError, StoreFuture};
use mss_transport::{
    response_route, route_response, Received, ResponseRoute, Transports, ViaRoute,
};
use mss_txn::{
    ClientTransactionId, Event, Output, ServerTransactionId, TransactionId, TransactionKey,
    Transactions, Transmit,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::im::{Im, ImCompletion};
use super::inbound::{classify, Inbound};
use super::lines::{LineCompletion, Lines};
use super::memory::{release_free_memory, TrimPolicy};
use super::setup::{now, SWEEP_INTERVAL};
use super::stats::WorkerStats;
use super::store_calls::StoreCalls;

/// How many more queued packets are handled after a wake-up before looking at the other
/// inputs again (keeps timers and completions timely under load).
const RECEIVE_BATCH: usize = 64;

/// How long the worker may take to drain at shutdown before it stops anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The result of async work the worker started, one variant per service.
#[derive(Debug)]
pub(crate) enum Completion {
    /// The store write of an accepted REGISTER finished (`serve/registrar.rs`).
    Register {
        /// The REGISTER's server transaction, to answer on.
        server: ServerTransactionId,
        /// The accepted REGISTER.
        /// (Boxed: it is much larger than the other variants.)
        pending: Box<PendingRegister>,
        /// Whether the write is durable.
        result: Result<(), StoreError>,
    },
    /// The batched delete of expired bindings finished (`serve/registrar.rs`).
    Swept(Result<u64, StoreError>),
    /// A line's stored record, DNS lookup or record write finished (`serve/lines.rs`).
    Line(LineCompletion),
    /// A store call of the messaging service finished (`serve/im.rs`).
    Im(ImCompletion),
}

/// Who started a client transaction, so that its responses reach the right service.
///
/// Each service that sends requests has its variant and one arm in
/// [`Worker::on_client_event`]: the lines (`serve/lines.rs`: a line's REGISTER) and
/// messaging (`serve/im.rs`: a forwarded MESSAGE, a delivery of a stored one). A line's
/// Timer F timeout is routed before that (`Worker::on_line_timeout`): for a line it means
/// no answer at all, not a `408` from the registrar.
#[derive(Debug)]
pub(crate) enum ClientOwner {
    /// The REGISTER of line number `.0` (`serve/lines.rs`).
    Line(usize),
    /// A relayed MESSAGE or the delivery of a stored one (`serve/im.rs`).
    Im(mss_services::im::RequestToken),
}

/// A question from the admin API, answered from the worker's state (see `serve/admin.rs`).
#[derive(Debug)]
pub(crate) enum Query {
    /// `GET /api/registrations`.
    Registrations(oneshot::Sender<Vec<mss_admin::RegistrationView>>),
    /// `GET /api/lines`.
    Lines(oneshot::Sender<Vec<LineView>>),
}

/// The channels the worker listens to.
#[derive(Debug)]
pub(crate) struct Inputs {
    /// Packets from the transports.
    pub(crate) received: mpsc::Receiver<Received>,
    /// Results of async work.
    pub(crate) completions: mpsc::UnboundedReceiver<Completion>,
    /// Admin API questions.
    pub(crate) queries: mpsc::Receiver<Query>,
    /// Becomes `true` when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// What the worker is built from.
pub(crate) struct Parts {
    /// The running transports.
    pub(crate) transports: Transports,
    /// The store.
    pub(crate) store: Arc<dyn Store>,
    /// Metrics shown by `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
    /// Worker counters shown by `/metrics`.
    pub(crate) stats: Arc<WorkerStats>,
    /// The registrar, with restored bindings.
    pub(crate) registrar: Registrar,
    /// Our domains.
    pub(crate) domains: LocalDomains,
    /// The configured external lines (`serve/lines.rs`).
    pub(crate) lines: Lines,
    /// Instant messages (`serve/im.rs`).
    pub(crate) im: Im,
    /// Sender side of the completion channel (the worker hands clones to its tasks).
    pub(crate) completions: mpsc::UnboundedSender<Completion>,
}

/// The task that owns the machines. Fields are visible to the per-service files.
pub(crate) struct Worker {
    pub(super) txns: Transactions,
    pub(super) transports: Transports,
    pub(super) store: Arc<dyn Store>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) stats: Arc<WorkerStats>,
    pub(super) registrar: Registrar,
    pub(super) precheck: Precheck,
    pub(super) answer: Answer,
    pub(super) domains: LocalDomains,
    pub(super) lines: Lines,
    pub(super) im: Im,
    /// Who started each live client transaction.
    pub(super) clients: HashMap<ClientTransactionId, ClientOwner>,
    /// The local address the packet being handled came to: it answers transmits of server
    /// transactions the worker has not routed yet (the transaction layer's own 200 to a
    /// CANCEL). A routed server transaction keeps its route itself
    /// ([`Transactions::set_reply_route`]: the flow from the top Via, RFC 3261 §18.2.2,
    /// RFC 3581 §4, and this local address).
    arrival: Option<SocketAddr>,
    pub(super) completions: mpsc::UnboundedSender<Completion>,
    /// Async operations started and not yet completed.
    pub(super) in_flight: usize,
    /// Store calls being waited for (started by [`Worker::spawn_store`]).
    store_calls: StoreCalls,
    /// When the next sweep of expired bindings is due.
    pub(super) next_sweep: Instant,
    /// A batched delete of expired bindings is running.
    pub(super) sweep_running: bool,
    /// When to give freed memory back after the transaction table shrank.
    trim: TrimPolicy,
}

impl Worker {
    /// A worker over `parts`, with an empty transaction table.
    pub(crate) fn new(parts: Parts, answer: Answer, precheck: Precheck) -> Worker {
        Worker {
            txns: Transactions::new(mss_txn::Config::default()),
            transports: parts.transports,
            store: parts.store,
            metrics: parts.metrics,
            stats: parts.stats,
            registrar: parts.registrar,
            precheck,
            answer,
            domains: parts.domains,
            lines: parts.lines,
            im: parts.im,
            clients: HashMap::new(),
            arrival: None,
            completions: parts.completions,
            in_flight: 0,
            store_calls: StoreCalls::default(),
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            sweep_running: false,
            trim: TrimPolicy::default(),
        }
    }

    /// Runs until shutdown has been signalled and the worker has drained (or
    /// [`DRAIN_LIMIT`] passed), or until the transports are gone.
    pub(crate) async fn run(mut self, mut inputs: Inputs) {
        let mut drain_until: Option<Instant> = None;
        let mut packets_open = true;
        // What parsing the configuration (100,000 users: ~90 MB) freed goes back now.
        release_free_memory();
        self.start_lines();
        loop {
            let deadline = self.next_deadline(drain_until);
            tokio::select! {
                biased;
                _ = inputs.shutdown.changed(), if drain_until.is_none() => {
                    drain_until = Some(Instant::now() + DRAIN_LIMIT);
                    self.begin_shutdown(now());
                }
                Some(c) = inputs.completions.recv() => self.on_completion(now(), c),
                c = self.store_calls.next(), if !self.store_calls.is_empty() => {
                    self.on_completion(now(), c);
                }
                Some(q) = inputs.queries.recv() => self.on_query(now(), q),
                r = inputs.received.recv(), if packets_open => match r {
                    Some(r) => {
                        self.on_received(r);
                        for _ in 0..RECEIVE_BATCH {
                            match inputs.received.try_recv() {
                                Ok(r) => self.on_received(r),
                                Err(_) => break,
                            }
                        }
                    }
                    None => packets_open = false,
                },
                () = tokio::time::sleep_until(deadline.into()) => self.on_timeout(now()),
            }
            self.drain(now());
            if !packets_open && drain_until.is_none() {
                tracing::warn!("the transports stopped; worker stops");
                break;
            }
            if let Some(limit) = drain_until {
                if self.is_drained() {
                    break;
                }
                if Instant::now() >= limit {
                    tracing::warn!(
                        in_flight = self.in_flight,
                        clients = self.clients.len(),
                        "worker stops before everything drained"
                    );
                    break;
                }
            }
        }
        tracing::info!("worker stopped");
    }

    /// The earliest of the transaction timers, the next sweep and the drain limit.
    fn next_deadline(&self, drain_until: Option<Instant>) -> Instant {
        let mut at = self.next_sweep;
        if let Some(t) = self.txns.poll_timeout() {
            at = at.min(t);
        }
        if let Some(d) = drain_until {
            at = at.min(d);
        }
        if let Some(t) = self.lines_timeout() {
            at = at.min(t);
        }
        if let Some(t) = self.im_timeout() {
            at = at.min(t);
        }
        at
    }

    /// Shutdown, first step: services that must say goodbye start it here (the lines'
    /// un-REGISTERs, `serve/lines.rs`); [`Worker::run`] then keeps the loop going until
    /// [`Worker::is_drained`]. The registrar has nothing to say: its bindings are on disk.
    fn begin_shutdown(&mut self, now: Now) {
        self.lines_shutdown(now);
        tracing::info!(
            in_flight = self.in_flight,
            transactions = self.txns.len(),
            "worker draining"
        );
    }

    /// Nothing started is still waiting: no store write, no client transaction.
    fn is_drained(&self) -> bool {
        self.in_flight == 0 && self.clients.is_empty() && self.lines_done()
    }

    /// Starts `op` (a store call) and feeds its outcome back as the completion `done`
    /// makes of it, handled by [`Worker::on_completion`] from the run loop. The worker
    /// counts it as in flight until then.
    pub(super) fn spawn_store<T: Send + 'static>(
        &mut self,
        op: StoreFuture<T>,
        done: impl FnOnce(Result<T, StoreError>) -> Completion + Send + 'static,
    ) {
        self.in_flight += 1;
        // Polled by this task (`serve/store_calls.rs`): no task spawned per call.
        self.store_calls.push(async move { done(op.await) });
    }

    /// One completion: one arm per service.
    fn on_completion(&mut self, now: Now, c: Completion) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match c {
            Completion::Register {
                server,
                pending,
                result,
            } => self.on_register_stored(now, server, pending, result),
            Completion::Swept(result) => self.on_swept(result),
            Completion::Line(c) => self.on_line_completion(now, c),
            Completion::Im(c) => self.on_im_completion(now, c),
        }
    }

    fn on_query(&mut self, now: Now, q: Query) {
        match q {
            Query::Registrations(reply) => {
                let _ = reply.send(self.registrations(now));
            }
            Query::Lines(reply) => {
                let _ = reply.send(self.line_views());
            }
        }
    }

    fn on_timeout(&mut self, now: Now) {
        self.txns.handle_timeout(now.mono);
        self.lines_on_timeout(now);
        self.im_on_timeout(now);
        if now.mono >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now.mono + SWEEP_INTERVAL;
            if self.trim.observe(self.txns.len()) {
                self.clients.shrink_to(self.clients.len().saturating_mul(2));
                release_free_memory();
            }
        }
    }

    /// One packet: parse, answer statelessly or hand to the transaction layer, drain.
    fn on_received(&mut self, r: Received) {
        let now = now();
        let (inbound, failed) = classify(r.data, r.flow.remote, &self.answer);
        if failed {
            self.metrics.parse_error();
        }
        match inbound {
            Inbound::Message(msg) => {
                self.arrival = Some(r.local);
                match msg {
                    Message::Request(req) => self.on_received_request(now, req, r.flow),
                    Message::Response(rsp) => {
                        self.metrics.response(Direction::In, rsp.status().as_u16());
                        self.txns
                            .handle_message(now.mono, Message::Response(rsp), r.flow);
                    }
                }
                self.drain(now);
                self.arrival = None;
            }
            Inbound::Reject(rsp) => self.send_stateless(&rsp, r.flow, Some(r.local)),
            Inbound::Drop => {}
        }
    }

    /// A request from the network, checked once ([`Request::check`]): what the check
    /// parsed gives the transaction key and goes on to the services with the request. A
    /// request that fails the check takes the transaction layer's general path (which
    /// absorbs its retransmissions too) and is refused from [`Worker::on_event`].
    fn on_received_request(&mut self, now: Now, req: Request, from: Flow) {
        let handled = match req.check() {
            Ok(checked) => match TransactionKey::for_checked(&req, &checked) {
                Ok(key) => {
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
    fn drain(&mut self, now: Now) {
        loop {
            while let Some(out) = self.txns.poll_output() {
                match out {
                    Output::Transmit(t) => self.transmit(now, t),
                    Output::Event(e) => self.on_event(now, e),
                }
            }
            if !self.drain_lines(now) {
                break;
            }
        }
    }

    fn transmit(&mut self, now: Now, t: Transmit) {
        let local = match t.transaction {
            Some(TransactionId::Server(_)) => t.local.or(self.arrival),
            _ => t.local,
        };
        let to = t.to;
        if let Err(e) = self.transports.send_from(local, &to, t.bytes) {
            tracing::debug!(peer = %to, error = %e, "send failed");
            if let Some(id) = t.transaction {
                self.txns.handle_transport_error(now.mono, id);
            }
        }
    }

    fn on_event(&mut self, now: Now, e: Event) {
        match e {
            Event::Request { id, request, from } => {
                let checked = request.check();
                self.on_request(now, id, &request, checked.as_ref(), from);
            }
            // No dialogs yet (calls come later): an ACK for a 2xx or a stray ACK ends here.
            Event::Ack { .. } | Event::AckTimeout { .. } => {}
            // INVITEs are answered at once, so no CANCEL can find one pending; the
            // transaction layer already answered the CANCEL itself.
            Event::Cancel { invite, .. } => {
                tracing::debug!(?invite, "CANCEL for an INVITE already answered");
            }
            Event::Response { id, response } => self.on_client_event(id, Some(response)),
            Event::Timeout { id, .. } if self.is_line_client(&id) => self.on_line_timeout(now, id),
            Event::Timeout { id, response } => self.on_client_event(id, Some(response)),
            Event::TransportError { id } => match id {
                TransactionId::Client(c) => self.on_client_event(c, None),
                TransactionId::Server(s) => tracing::debug!(?s, "response could not be sent"),
            },
            Event::Terminated { id } => {
                if let TransactionId::Client(c) = id {
                    self.clients.remove(&c);
                }
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
    fn on_client_event(&mut self, id: ClientTransactionId, response: Option<Response>) {
        match self.clients.get(&id) {
            Some(ClientOwner::Line(index)) => {
                let index = *index;
                self.on_line_client_event(id, index, response);
            }
            Some(ClientOwner::Im(token)) => {
                let token = *token;
                self.on_im_client_event(id, token, response);
            }
            None => tracing::debug!(?id, "event for a client transaction nobody owns"),
        }
    }

    /// A new request: prechecks, then one arm per method. `checked` is the request's
    /// [`Request::check`] result, made once when it arrived.
    fn on_request(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        checked: Result<&RequestCore<'_>, &ParseError>,
        from: Flow,
    ) {
        self.metrics.request(
            Direction::In,
            mss_admin::Method::from_token(req.method().as_str()),
        );
        let local = self.arrival;
        let route = match checked {
            Ok(c) => Ok(response_route(&from, &ViaRoute::from(&c.core.top_via))),
            Err(_) => route_response(&from, req.headers()),
        };
        let flow = match route {
            Ok(ResponseRoute::Flow(f)) => f,
            // A Via naming a host to resolve (maddr): mss resolves no foreign names and
            // answers where the request came from (RFC 3581 style).
            Ok(ResponseRoute::Resolve { .. }) | Err(_) => from,
        };
        if let Err(e) = self.txns.set_reply_route(id, flow, local) {
            tracing::debug!(?id, error = %e, "reply route not set");
        }
        let checked = match self.precheck.check_parsed(req, checked) {
            Ok(c) => c,
            Err(reject) => {
                let rsp = self.answer.reject(req, &reject);
                self.respond(now, id, rsp);
                return;
            }
        };
        match req.method() {
            Method::Register => self.on_register(now, id, req, checked, &from),
            Method::Options => self.on_options(now, id, req, checked),
            Method::Message => self.on_message(now, id, req, &from),
            // RFC 3261 §9.2: a CANCEL that matches no transaction.
            Method::Cancel => {
                let rsp = self.answer.response(
                    req,
                    StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST,
                    "Call/Transaction Does Not Exist",
                );
                self.respond(now, id, rsp);
            }
            // Calls and events come later.
            _ => {
                let rsp = self
                    .answer
                    .reject(req, &mss_services::Reject::NotImplemented);
                self.respond(now, id, rsp);
            }
        }
    }

    /// `OPTIONS` to us: `200` with what we support (RFC 3261 §11.2); to anyone else `404`:
    /// mss is not a proxy (§8.2.2.1).
    fn on_options(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        checked: &RequestCore<'_>,
    ) {
        let ours = match &checked.uri {
            Uri::Sip(u) => self.domains.is_local(u.host),
            _ => false,
        };
        let rsp = if ours {
            self.precheck.options_answer(&self.answer, req)
        } else {
            self.answer.reject(req, &mss_services::Reject::NotFound)
        };
        self.respond(now, id, rsp);
    }

    /// Answers server transaction `id`.
    pub(super) fn respond(&mut self, now: Now, id: ServerTransactionId, rsp: Response) {
        let code = rsp.status().as_u16();
        match self.txns.send_response(now.mono, id, rsp) {
            Ok(()) => self.metrics.response(Direction::Out, code),
            Err(e) => tracing::debug!(?id, code, error = %e, "response not sent"),
        }
    }

    /// Sends `rsp` outside any transaction, routed from its top Via (RFC 3261 §18.2.2).
    fn send_stateless(&mut self, rsp: &Response, from: Flow, local: Option<SocketAddr>) {
        let to = match route_response(&from, rsp.headers()) {
            Ok(ResponseRoute::Flow(f)) => f,
            Ok(ResponseRoute::Resolve { .. }) | Err(_) => from,
        };
        self.stats.stateless_reply();
        match self.transports.send_from(local, &to, rsp.to_bytes()) {
            Ok(_) => self.metrics.response(Direction::Out, rsp.status().as_u16()),
            Err(e) => tracing::debug!(peer = %to, error = %e, "stateless answer not sent"),
        }
    }
}
