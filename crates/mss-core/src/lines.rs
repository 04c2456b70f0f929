//! External lines in the core: one sans-IO [`Registration`] per configured line, driven
//! exactly as the machine's run loop says (`mss_services::lines`).
//!
//! - At start ([`Core::start_lines`]) each line's stored record (Call-ID, From tag, last
//!   CSeq) is read from the store; when it arrives, the line's machine is built with it, so a
//!   restarted server continues above the last CSeq it sent.
//! - [`LineOutput::Resolve`](mss_services::lines::LineOutput::Resolve) →
//!   [`crate::Output::Resolve`], whose targets come back as [`crate::Input::Resolved`];
//!   [`LineOutput::Send`](mss_services::lines::LineOutput::Send) → a client transaction
//!   owned by [`ClientOwner::Line`]; its responses go to `handle_response`, its timeout or
//!   transport error to `handle_transaction_timeout`; a connection to its target that the
//!   transports could not make ([`crate::Input::ConnectFailed`], e.g. a TLS certificate
//!   refused) to `handle_transport_error` with the reason, ending the transaction;
//!   [`LineOutput::Persist`](mss_services::lines::LineOutput::Persist) → a `PutLine` store
//!   operation, and the REGISTER that uses the new CSeq leaves only once that write
//!   finished (the machine's contract: a restart must never reuse a CSeq the registrar has
//!   seen; a failed write is logged and the REGISTER still goes);
//!   [`LineOutput::StateChanged`](mss_services::lines::LineOutput::StateChanged) → the
//!   `mss_lines` gauge and one log line `line NAME: old → new (reason)`;
//!   [`LineOutput::Log`](mss_services::lines::LineOutput::Log) → `tracing` with the line's
//!   name.
//! - Only lines that got an input since the last drain are polled ([`Lines::dirty`]), so a
//!   packet for the registrar costs the lines nothing; their timers are folded into
//!   [`Core::poll_timeout`].
//! - Shutdown ([`Core::lines_shutdown`]): every line un-REGISTERs if registered; the core
//!   counts as drained once every line is done or [`UNREGISTER_LIMIT`] passed.
//!
//! Files: this one (the line table, operation results, client transactions, timers,
//! shutdown, the admin view), `lines/drive.rs` (carrying out the machines' outputs),
//! `lines/view.rs` (status → admin view, log wording), `lines/peers.rs` (which line a
//! request came through).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mss_admin::LineView;
use mss_services::lines::{
    CallIdInUse, CallIdMode as LineCallIdMode, LineSettings, LineState, Registration, Target,
};
use mss_services::Now;
use mss_sip::{Flow, Request, Response};
use mss_store::LineRecord;
use mss_txn::{ClientTransactionId, TransactionId};

use crate::core::{ClientOwner, Core, Then};
use crate::input::StoreResult;
use crate::output::{OpId, Output, StoreOp};

mod drive;
mod peers;
mod view;

pub(crate) use peers::LinePeer;
use view::unix_secs;
use view::{call_id_view, reason, state_view, view};

/// How long shutdown waits for the lines' un-REGISTERs to be answered.
pub(crate) const UNREGISTER_LIMIT: Duration = Duration::from_secs(2);

/// A configured line, as the core runs it.
#[derive(Debug, Clone)]
pub struct LineSetup {
    /// What the line's machine is built from.
    pub settings: LineSettings,
    /// The local user who receives the line's incoming calls and messages.
    pub owner: Option<String>,
    /// Whether local users' calls may go out through the line (`outgoing`, default true).
    pub outgoing: bool,
}

/// What to do when an operation of a line finishes.
#[derive(Debug)]
pub(crate) enum LineThen {
    /// The line's stored record was read (`GetLine`).
    Loaded,
    /// The registrar's lookup finished.
    Resolved,
    /// A `PutLine` finished.
    Persisted,
}

/// One configured line.
struct Slot {
    /// What the machine is built from.
    settings: LineSettings,
    /// Who receives the line's incoming requests.
    owner: Option<String>,
    /// Local users' calls may go out through the line.
    outgoing: bool,
    /// The configured Call-ID mode, shown until the machine runs.
    mode: LineCallIdMode,
    /// `None` until the stored record is read.
    machine: Option<Registration>,
    /// The state last counted in the metrics (and logged).
    state: LineState,
    /// When the line entered `state` before the machine ran (unix ms).
    since: i64,
    /// `put_line` writes not finished yet.
    persisting: usize,
    /// A REGISTER waiting for its `put_line`.
    held: Option<(Request, Target)>,
    /// The REGISTER's client transaction.
    client: Option<ClientTransactionId>,
    /// The line's running lookup.
    lookup: Option<OpId>,
    /// The machine's next deadline, as of the last drain.
    timeout: Option<Instant>,
    /// Got an input since the last drain.
    dirty: bool,
}

/// Every configured line and what the core keeps for them.
pub(crate) struct Lines {
    slots: Vec<Slot>,
    /// Indexes of the slots to poll at the next drain.
    dirty: Vec<usize>,
    /// Set by shutdown: the un-REGISTERs must be answered by then.
    shutdown_until: Option<Instant>,
    /// Shutdown stopped waiting for the lines.
    gave_up: bool,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines")
            .field("lines", &self.slots.len())
            .field("shutdown_until", &self.shutdown_until)
            .finish_non_exhaustive()
    }
}

impl Lines {
    /// The lines of `setups`, not running yet (see [`Core::start_lines`]).
    pub(crate) fn new(setups: Vec<LineSetup>, now: Now) -> Lines {
        let slots = setups
            .into_iter()
            .map(|l| Slot {
                mode: l.settings.call_id_mode,
                settings: l.settings,
                owner: l.owner,
                outgoing: l.outgoing,
                machine: None,
                state: LineState::Offline,
                since: now.unix_ms,
                persisting: 0,
                held: None,
                client: None,
                lookup: None,
                timeout: None,
                dirty: false,
            })
            .collect();
        Lines {
            slots,
            dirty: Vec::new(),
            shutdown_until: None,
            gave_up: false,
        }
    }

    fn mark(&mut self, index: usize) {
        if let Some(s) = self.slots.get_mut(index) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    /// The running machine of line `index`, if it has started.
    fn machine_mut(&mut self, index: usize) -> Option<&mut Registration> {
        self.slots.get_mut(index).and_then(|s| s.machine.as_mut())
    }

    fn name(&self, index: usize) -> &str {
        self.slots
            .get(index)
            .map_or("?", |s| s.settings.name.as_str())
    }
}

impl Core {
    /// Reads every line's stored record; each line starts when its record arrives.
    pub(crate) fn start_lines(&mut self) {
        for index in 0..self.lines.slots.len() {
            self.metrics
                .line_transition(None, state_view(LineState::Offline));
            let name = self.lines.name(index).to_owned();
            self.store(
                StoreOp::GetLine { name },
                Then::Line(index, LineThen::Loaded),
            );
        }
    }

    /// A store operation of line `index` finished.
    pub(crate) fn on_line_stored(
        &mut self,
        now: Now,
        index: usize,
        then: LineThen,
        result: StoreResult,
    ) {
        match (then, result) {
            (LineThen::Loaded, StoreResult::Line(r)) => self.on_line_loaded(now, index, r),
            (LineThen::Persisted, StoreResult::Done(r)) => self.on_line_persisted(now, index, r),
            (_, other) => self.wrong_result("line", &other),
        }
    }

    fn on_line_loaded(
        &mut self,
        now: Now,
        index: usize,
        result: Result<Option<LineRecord>, mss_store::StoreError>,
    ) {
        let stopping = self.lines.shutdown_until.is_some();
        let Some(slot) = self.lines.slots.get_mut(index) else {
            return;
        };
        if stopping || slot.machine.is_some() {
            return;
        }
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(line = %slot.settings.name, error = %e,
                    "cannot read the line's stored Call-ID and CSeq; starting a new Call-ID");
                None
            }
        };
        let machine = Registration::new(slot.settings.clone(), record, now, &mut self.rng);
        let status = machine.status().clone();
        slot.machine = Some(machine);
        self.line_state_changed(now, index, &status);
        self.lines.mark(index);
    }

    /// Line `index`'s lookup found `addrs` (none: nothing found, or cancelled): each becomes
    /// a target with our address towards it ([`crate::Network::sent_by`]); an address no
    /// socket of ours can reach (another IP family) is skipped and logged.
    pub(crate) fn on_line_resolved(&mut self, now: Now, index: usize, addrs: &[SocketAddr]) {
        let Some(slot) = self.lines.slots.get_mut(index) else {
            return;
        };
        slot.lookup = None;
        let transport = slot.settings.transport;
        let mut targets = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            match self.network.sent_by(transport, addr) {
                Some(local) => targets.push(Target {
                    addr,
                    transport,
                    local,
                }),
                None => tracing::info!(line = %slot.settings.name,
                    "registrar address {addr} skipped: no {transport} socket of that family"),
            }
        }
        if let Some(m) = slot.machine.as_mut() {
            m.handle_resolved(now, targets);
        }
        self.lines.mark(index);
    }

    fn on_line_persisted(
        &mut self,
        now: Now,
        index: usize,
        result: Result<(), mss_store::StoreError>,
    ) {
        let Some(slot) = self.lines.slots.get_mut(index) else {
            return;
        };
        slot.persisting = slot.persisting.saturating_sub(1);
        if let Err(e) = result {
            tracing::warn!(line = %slot.settings.name, error = %e,
                "cannot store the line's Call-ID and CSeq; a restart may reuse a CSeq");
        }
        if slot.persisting == 0 {
            if let Some((request, target)) = slot.held.take() {
                self.send_line_request(now, index, request, target);
            }
        }
    }

    /// A response of a line's client transaction (`None`: its transport failed).
    pub(crate) fn on_line_client_event(
        &mut self,
        now: Now,
        id: ClientTransactionId,
        index: usize,
        response: Option<Response>,
    ) {
        match response {
            Some(rsp) => {
                if rsp.status().as_u16() >= 200 {
                    self.forget_line_client(id, index);
                }
                let rng = &mut self.rng;
                if let Some(m) = self.lines.machine_mut(index) {
                    m.handle_response(now, &rsp, rng);
                }
            }
            None => self.line_transaction_failed(now, id, index),
        }
        self.lines.mark(index);
    }

    /// A connection to `flow`'s peer could not be made (`reason`, e.g. a TLS certificate
    /// refused): every line whose REGISTER in flight went there fails over or becomes
    /// `unreachable` with that reason, and its client transaction ends (so that no
    /// timeout of it comes later).
    pub(crate) fn lines_connect_failed(&mut self, now: Now, flow: &Flow, reason: &str) {
        for index in 0..self.lines.slots.len() {
            let Some(slot) = self.lines.slots.get_mut(index) else {
                continue;
            };
            let (Some(id), Some(m)) = (slot.client, slot.machine.as_mut()) else {
                continue;
            };
            let went_there = m
                .target()
                .is_some_and(|t| t.transport == flow.transport && t.addr == flow.remote);
            if !went_there {
                continue;
            }
            slot.client = None;
            m.handle_transport_error(now, reason);
            self.clients.remove(&id);
            // Its transport error event finds no owner any more and is only logged.
            self.txns
                .handle_transport_error(now.mono, TransactionId::Client(id));
            self.lines.mark(index);
        }
    }

    /// True when client transaction `id` carries a line's REGISTER.
    pub(crate) fn is_line_client(&self, id: &ClientTransactionId) -> bool {
        matches!(self.clients.get(id), Some(ClientOwner::Line(_)))
    }

    /// A line's REGISTER got no final answer (Timer F): no answer at all, not a `408` from
    /// the registrar, so the line fails over or counts as unreachable (RFC 3263 §4.3).
    pub(crate) fn on_line_timeout(&mut self, now: Now, id: ClientTransactionId) {
        let Some(ClientOwner::Line(index)) = self.clients.get(&id) else {
            return;
        };
        let index = *index;
        self.line_transaction_failed(now, id, index);
        self.lines.mark(index);
    }

    /// The REGISTER of client transaction `id` got no answer. Only the line's current
    /// transaction counts: the machine cannot tell whose timeout it is (responses it checks
    /// by CSeq and Call-ID itself).
    fn line_transaction_failed(&mut self, now: Now, id: ClientTransactionId, index: usize) {
        if !self.forget_line_client(id, index) {
            tracing::debug!(line = %self.lines.name(index), "timeout of an abandoned REGISTER ignored");
            return;
        }
        if let Some(m) = self.lines.machine_mut(index) {
            m.handle_transaction_timeout(now);
        }
    }

    /// The line is done with its client transaction: later retransmissions are absorbed by
    /// the transaction layer, and shutdown need not wait for its Timer K.
    /// Returns whether it was the line's current transaction.
    fn forget_line_client(&mut self, id: ClientTransactionId, index: usize) -> bool {
        self.clients.remove(&id);
        match self.lines.slots.get_mut(index) {
            Some(s) if s.client == Some(id) => {
                s.client = None;
                true
            }
            _ => false,
        }
    }

    /// The earliest deadline of the lines (and of their shutdown).
    pub(crate) fn lines_timeout(&self) -> Option<Instant> {
        let mut at = self.lines.slots.iter().filter_map(|s| s.timeout).min();
        if let (Some(limit), false) = (self.lines.shutdown_until, self.lines.gave_up) {
            at = Some(at.map_or(limit, |a| a.min(limit)));
        }
        at
    }

    /// Timers: lines whose deadline passed are told so; at the shutdown limit the lines
    /// still waiting for an answer are left behind.
    pub(crate) fn lines_on_timeout(&mut self, now: Now) {
        for index in 0..self.lines.slots.len() {
            let due = self
                .lines
                .slots
                .get(index)
                .and_then(|s| s.timeout)
                .is_some_and(|t| t <= now.mono);
            if due {
                if let Some(m) = self.lines.machine_mut(index) {
                    m.handle_timeout(now);
                }
                self.lines.mark(index);
            }
        }
        if let (Some(limit), false) = (self.lines.shutdown_until, self.lines.gave_up) {
            // Past the limit it is no deadline any more, whether or not a line waits.
            if now.mono >= limit {
                self.lines.gave_up = true;
            }
            if now.mono >= limit && !self.all_lines_done() {
                for index in 0..self.lines.slots.len() {
                    let client = self
                        .lines
                        .slots
                        .get_mut(index)
                        .and_then(|s| s.client.take());
                    if let Some(id) = client {
                        self.clients.remove(&id);
                        tracing::warn!(line = %self.lines.name(index),
                            "no answer to the un-REGISTER in time; stopping anyway");
                    }
                }
            }
        }
    }

    /// Shutdown: every line un-REGISTERs if it is registered (RFC 3261 §10.2.2).
    pub(crate) fn lines_shutdown(&mut self, now: Now) {
        self.lines.shutdown_until = Some(now.mono + UNREGISTER_LIMIT);
        for index in 0..self.lines.slots.len() {
            let Some(slot) = self.lines.slots.get_mut(index) else {
                continue;
            };
            // A cancelled lookup still reports (with no targets).
            if let Some(id) = slot.lookup.take() {
                self.out.push_back(Output::CancelResolve { id });
            }
            if let Some(m) = slot.machine.as_mut() {
                m.shutdown(now);
            }
            self.lines.mark(index);
        }
    }

    fn all_lines_done(&self) -> bool {
        !self
            .lines
            .slots
            .iter()
            .any(|s| s.machine.as_ref().is_some_and(|m| !m.is_done()))
    }

    /// After shutdown: every line said goodbye (or the time for it is up).
    pub(crate) fn lines_done(&self) -> bool {
        self.lines.gave_up || self.all_lines_done()
    }

    /// `GET /api/lines`.
    pub fn line_views(&self) -> Vec<LineView> {
        self.lines
            .slots
            .iter()
            .map(|s| match &s.machine {
                Some(m) => view(&s.settings.name, &s.settings.number, m.status()),
                None => LineView {
                    name: s.settings.name.clone(),
                    number: s.settings.number.clone(),
                    state: state_view(s.state),
                    since: unix_secs(s.since),
                    expires_at: None,
                    next_attempt_at: None,
                    call_id_mode: call_id_view(CallIdInUse {
                        configured: s.mode,
                        fresh: s.mode == LineCallIdMode::Fresh,
                    }),
                    last_failure: None,
                },
            })
            .collect()
    }
}
