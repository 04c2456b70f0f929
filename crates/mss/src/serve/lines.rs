//! External lines in the running server: one sans-IO [`Registration`] per `[line:NAME]`,
//! driven by the worker exactly as the machine's run loop says (`mss_services::lines`).
//!
//! - At start ([`Worker::start_lines`]) each line's stored record (Call-ID, From tag, last
//!   CSeq) is read from the store; when it arrives, the line's machine is built with it, so a
//!   restarted server continues above the last CSeq it sent.
//! - [`LineOutput::Resolve`](mss_services::lines::LineOutput::Resolve) → a spawned, time-bounded DNS task (`serve/dns.rs`) whose answer
//!   comes back as a [`Completion`]; [`LineOutput::Send`](mss_services::lines::LineOutput::Send) → a client transaction owned by
//!   [`ClientOwner::Line`]; its responses go to `handle_response`, its timeout or transport
//!   error to `handle_transaction_timeout`; [`LineOutput::Persist`](mss_services::lines::LineOutput::Persist) → `Store::put_line`,
//!   spawned, and the REGISTER that uses the new CSeq leaves only once that write finished
//!   (the machine's contract: a restart must never reuse a CSeq the registrar has seen; a
//!   failed write is logged and the REGISTER still goes); [`LineOutput::StateChanged`](mss_services::lines::LineOutput::StateChanged) → the
//!   `mss_lines` gauge and one log line `line NAME: old → new (reason)`;
//!   [`LineOutput::Log`](mss_services::lines::LineOutput::Log) → `tracing` with the line's name.
//! - Only lines that got an input since the last drain are polled ([`Lines::dirty`]), so a
//!   packet for the registrar costs the lines nothing; their timers are folded into the
//!   worker's sleep ([`Worker::lines_timeout`]).
//! - Shutdown ([`Worker::lines_shutdown`]): every line un-REGISTERs if registered; the
//!   worker keeps running until every line is done or [`UNREGISTER_LIMIT`] passed.
//!
//! Files: this one (the line table, async results, client transactions, timers, shutdown,
//! the admin view), `lines/drive.rs` (carrying out the machines' outputs),
//! `lines/convert.rs` (configuration → settings, status → admin view, log wording),
//! `lines/peers.rs` (which line a request came through).
//!
//! `GET /api/lines` reads [`Worker::line_views`]. The Call-ID policy is shown with the admin
//! API's names (`same`, `fresh`, `auto`, `auto_fresh`, see [`call_id_view`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use mss_admin::LineView;
use mss_services::lines::{
    CallIdInUse, CallIdMode as LineCallIdMode, LineSettings, LineState, Registration, Target,
};
use mss_services::Now;
use mss_sip::{Request, Response};
use mss_store::{LineRecord, StoreError};
use mss_txn::ClientTransactionId;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::oneshot;

use super::dns::{self, DnsError};
use super::worker::{ClientOwner, Completion, Worker};
use crate::config::{effective_call_id_mode, Loaded};

mod convert;
mod drive;
mod peers;

use convert::unix_secs;
pub(crate) use convert::{call_id_view, line_settings, reason, state_view, view};
pub(crate) use peers::LinePeer;

/// How long shutdown waits for the lines' un-REGISTERs to be answered.
pub(crate) const UNREGISTER_LIMIT: Duration = Duration::from_secs(2);

/// The result of async work started for a line, delivered as [`Completion::Line`].
#[derive(Debug)]
pub(crate) enum LineCompletion {
    /// The line's stored record was read (`Store::get_line`).
    Loaded {
        /// The line.
        index: usize,
        /// The record, if any.
        result: Result<Option<LineRecord>, StoreError>,
    },
    /// The registrar's lookup finished.
    Resolved {
        /// The line.
        index: usize,
        /// The addresses to try, in order.
        result: Result<Vec<SocketAddr>, DnsError>,
    },
    /// A `Store::put_line` finished.
    Persisted {
        /// The line.
        index: usize,
        /// Whether it is durable.
        result: Result<(), StoreError>,
    },
}

/// One configured line.
struct Slot {
    /// What the machine is built from.
    settings: LineSettings,
    /// The line's number, for the admin view.
    number: String,
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
    /// Cancels the line's running DNS task when dropped (it then reports at once, so the
    /// worker's count of work in flight stays exact).
    lookup: Option<oneshot::Sender<()>>,
    /// The machine's next deadline, as of the last drain.
    timeout: Option<Instant>,
    /// Got an input since the last drain.
    dirty: bool,
}

/// Every line of the configuration and what the worker keeps for them.
pub(crate) struct Lines {
    slots: Vec<Slot>,
    /// Indexes of the slots to poll at the next drain.
    dirty: Vec<usize>,
    /// Randomness for the machines (Call-IDs, tags, branches, cnonces, jitter).
    rng: StdRng,
    /// The DNS resolver, built at the first name lookup.
    resolver: Option<TokioResolver>,
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
    /// The lines of `loaded`, not running yet (see [`Worker::start_lines`]).
    pub(crate) fn new(loaded: &Loaded, now: Now) -> Lines {
        let slots = loaded
            .config
            .lines
            .iter()
            .map(|l| {
                let settings = line_settings(l, effective_call_id_mode(l, &loaded.var));
                Slot {
                    number: l.number.clone(),
                    mode: settings.call_id_mode,
                    settings,
                    machine: None,
                    state: LineState::Offline,
                    since: now.unix_ms,
                    persisting: 0,
                    held: None,
                    client: None,
                    lookup: None,
                    timeout: None,
                    dirty: false,
                }
            })
            .collect();
        Lines {
            slots,
            dirty: Vec::new(),
            rng: StdRng::from_entropy(),
            resolver: None,
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

    fn name(&self, index: usize) -> &str {
        self.slots
            .get(index)
            .map_or("?", |s| s.settings.name.as_str())
    }
}

impl Worker {
    /// Reads every line's stored record; each line starts when its record arrives.
    pub(super) fn start_lines(&mut self) {
        for index in 0..self.lines.slots.len() {
            self.metrics
                .line_transition(None, state_view(LineState::Offline));
            let name = self.lines.name(index).to_owned();
            let op = self.store.get_line(&name);
            self.spawn_store(op, move |result| {
                Completion::Line(LineCompletion::Loaded { index, result })
            });
        }
    }

    /// A line's async work finished.
    pub(super) fn on_line_completion(&mut self, now: Now, c: LineCompletion) {
        match c {
            LineCompletion::Loaded { index, result } => self.on_line_loaded(now, index, result),
            LineCompletion::Resolved { index, result } => self.on_line_resolved(now, index, result),
            LineCompletion::Persisted { index, result } => {
                self.on_line_persisted(now, index, result)
            }
        }
    }

    fn on_line_loaded(
        &mut self,
        now: Now,
        index: usize,
        result: Result<Option<LineRecord>, StoreError>,
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
        let machine = Registration::new(slot.settings.clone(), record, now, &mut self.lines.rng);
        let status = machine.status().clone();
        slot.machine = Some(machine);
        self.line_state_changed(now, index, &status);
        self.lines.mark(index);
    }

    fn on_line_resolved(
        &mut self,
        now: Now,
        index: usize,
        result: Result<Vec<SocketAddr>, DnsError>,
    ) {
        let Some(slot) = self.lines.slots.get_mut(index) else {
            return;
        };
        slot.lookup = None;
        let transport = slot.settings.transport;
        let name = slot.settings.name.clone();
        let targets = match result {
            Ok(addrs) => {
                let (targets, skipped) =
                    dns::targets(&addrs, transport, |t, a| self.transports.sent_by(t, a));
                for s in skipped {
                    tracing::info!(line = %name, "registrar address skipped: {s}");
                }
                targets
            }
            Err(DnsError::Cancelled { .. }) => Vec::new(),
            Err(e) => {
                tracing::warn!(line = %name, "{e}");
                Vec::new()
            }
        };
        if let Some(m) = self
            .lines
            .slots
            .get_mut(index)
            .and_then(|s| s.machine.as_mut())
        {
            m.handle_resolved(now, targets);
        }
        self.lines.mark(index);
    }

    fn on_line_persisted(&mut self, now: Now, index: usize, result: Result<(), StoreError>) {
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
    pub(super) fn on_line_client_event(
        &mut self,
        id: ClientTransactionId,
        index: usize,
        response: Option<Response>,
    ) {
        let now = super::setup::now();
        match response {
            Some(rsp) => {
                if rsp.status().as_u16() >= 200 {
                    self.forget_line_client(id, index);
                }
                let rng = &mut self.lines.rng;
                if let Some(m) = self
                    .lines
                    .slots
                    .get_mut(index)
                    .and_then(|s| s.machine.as_mut())
                {
                    m.handle_response(now, &rsp, rng);
                }
            }
            None => self.line_transaction_failed(now, id, index),
        }
        self.lines.mark(index);
    }

    /// True when client transaction `id` carries a line's REGISTER.
    pub(super) fn is_line_client(&self, id: &ClientTransactionId) -> bool {
        matches!(self.clients.get(id), Some(ClientOwner::Line(_)))
    }

    /// A line's REGISTER got no final answer (Timer F): no answer at all, not a `408` from
    /// the registrar, so the line fails over or counts as unreachable (RFC 3263 §4.3).
    pub(super) fn on_line_timeout(&mut self, now: Now, id: ClientTransactionId) {
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
        if let Some(m) = self
            .lines
            .slots
            .get_mut(index)
            .and_then(|s| s.machine.as_mut())
        {
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
    pub(super) fn lines_timeout(&self) -> Option<Instant> {
        let mut at = self.lines.slots.iter().filter_map(|s| s.timeout).min();
        if let (Some(limit), false) = (self.lines.shutdown_until, self.lines.gave_up) {
            at = Some(at.map_or(limit, |a| a.min(limit)));
        }
        at
    }

    /// Timers: lines whose deadline passed are told so; at the shutdown limit the lines
    /// still waiting for an answer are left behind.
    pub(super) fn lines_on_timeout(&mut self, now: Now) {
        for index in 0..self.lines.slots.len() {
            let due = self
                .lines
                .slots
                .get(index)
                .and_then(|s| s.timeout)
                .is_some_and(|t| t <= now.mono);
            if due {
                if let Some(m) = self
                    .lines
                    .slots
                    .get_mut(index)
                    .and_then(|s| s.machine.as_mut())
                {
                    m.handle_timeout(now);
                }
                self.lines.mark(index);
            }
        }
        if let (Some(limit), false) = (self.lines.shutdown_until, self.lines.gave_up) {
            if now.mono >= limit && !self.all_lines_done() {
                self.lines.gave_up = true;
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
    pub(super) fn lines_shutdown(&mut self, now: Now) {
        self.lines.shutdown_until = Some(now.mono + UNREGISTER_LIMIT);
        for index in 0..self.lines.slots.len() {
            let Some(slot) = self.lines.slots.get_mut(index) else {
                continue;
            };
            // Dropping the sender cancels the lookup; its completion still arrives.
            slot.lookup = None;
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
    pub(super) fn lines_done(&self) -> bool {
        self.lines.gave_up || self.all_lines_done()
    }

    /// `GET /api/lines`.
    pub(super) fn line_views(&self) -> Vec<LineView> {
        self.lines
            .slots
            .iter()
            .map(|s| match &s.machine {
                Some(m) => view(&s.settings.name, &s.number, m.status()),
                None => LineView {
                    name: s.settings.name.clone(),
                    number: s.number.clone(),
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
