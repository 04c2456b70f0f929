//! External lines in the running server: one sans-IO [`Registration`] per `[line:NAME]`,
//! driven by the worker exactly as the machine's run loop says (`mss_services::lines`).
//!
//! - At start ([`Worker::start_lines`]) each line's stored record (Call-ID, From tag, last
//!   CSeq) is read from the store; when it arrives, the line's machine is built with it, so a
//!   restarted server continues above the last CSeq it sent.
//! - [`LineOutput::Resolve`] → a spawned, time-bounded DNS task (`serve/dns.rs`) whose answer
//!   comes back as a [`Completion`]; [`LineOutput::Send`] → a client transaction owned by
//!   [`ClientOwner::Line`]; its responses go to `handle_response`, its timeout or transport
//!   error to `handle_transaction_timeout`; [`LineOutput::Persist`] → `Store::put_line`,
//!   spawned, and the REGISTER that uses the new CSeq leaves only once that write finished
//!   (the machine's contract: a restart must never reuse a CSeq the registrar has seen; a
//!   failed write is logged and the REGISTER still goes); [`LineOutput::StateChanged`] → the
//!   `mss_lines` gauge and one log line `line NAME: old → new (reason)`;
//!   [`LineOutput::Log`] → `tracing` with the line's name.
//! - Only lines that got an input since the last drain are polled ([`Lines::dirty`]), so a
//!   packet for the registrar costs the lines nothing; their timers are folded into the
//!   worker's sleep ([`Worker::lines_timeout`]).
//! - Shutdown ([`Worker::lines_shutdown`]): every line un-REGISTERs if registered; the
//!   worker keeps running until every line is done or [`UNREGISTER_LIMIT`] passed.
//!
//! `GET /api/lines` reads [`Worker::line_views`]. The Call-ID policy is shown with the admin
//! API's names (`same`, `fresh`, `auto`, `auto_fresh`, see [`call_id_view`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use mss_admin::{CallIdModeView, LineView};
use mss_services::lines::{
    CallIdInUse, CallIdMode as LineCallIdMode, LastFailure, LineLog, LineOutput, LineSettings,
    LineState, LineStatus, LogLevel, Registration, ResolveRequest, Target,
};
use mss_services::Now;
use mss_sip::{Flow, Request, Response};
use mss_store::{LineRecord, StoreError};
use mss_txn::ClientTransactionId;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::oneshot;

use super::dns::{self, DnsError};
use super::setup::sip_transport;
use super::worker::{ClientOwner, Completion, Worker};
use crate::config::{effective_call_id_mode, CallIdMode, LineConfig, Loaded};

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

/// The machine's settings for a configured line: `gVarSipRegSameDialog` wins over the
/// line's `call_id` (`effective_call_id_mode`); no port in `registrar` means DNS SRV.
pub(crate) fn line_settings(l: &LineConfig, mode: CallIdMode) -> LineSettings {
    let mut s = LineSettings::new(&l.name, &l.registrar_host, &l.number, &l.password);
    s.port = l.registrar_port;
    s.transport = sip_transport(l.transport);
    s.username = (l.username != l.number).then(|| l.username.clone());
    // The domain defaults to the registrar host; left unset, the Request-URI keeps the
    // registrar's port (`LineSettings::request_uri`).
    s.domain = (l.domain != l.registrar_host).then(|| l.domain.clone());
    s.expires = l.expires;
    s.call_id_mode = match mode {
        CallIdMode::Auto => LineCallIdMode::Auto,
        CallIdMode::Same => LineCallIdMode::Same,
        CallIdMode::Fresh => LineCallIdMode::Fresh,
    };
    s.user_agent = format!("mss/{}", env!("CARGO_PKG_VERSION"));
    s
}

/// The admin API's name for the Call-ID policy in use: `auto` while an `auto` line still
/// re-registers on one Call-ID, `auto_fresh` once it switched.
pub(crate) fn call_id_view(c: CallIdInUse) -> CallIdModeView {
    match (c.configured, c.fresh) {
        (LineCallIdMode::Auto, false) => CallIdModeView::Auto,
        (LineCallIdMode::Auto, true) => CallIdModeView::AutoFresh,
        (LineCallIdMode::Same, _) => CallIdModeView::Same,
        (LineCallIdMode::Fresh, _) => CallIdModeView::Fresh,
    }
}

/// The admin API's state.
pub(crate) fn state_view(s: LineState) -> mss_admin::LineState {
    match s {
        LineState::Offline => mss_admin::LineState::Offline,
        LineState::Registering => mss_admin::LineState::Registering,
        LineState::Online => mss_admin::LineState::Online,
        LineState::AuthFailed => mss_admin::LineState::AuthFailed,
        LineState::Rejected => mss_admin::LineState::Rejected,
        LineState::Unreachable => mss_admin::LineState::Unreachable,
        LineState::BackingOff => mss_admin::LineState::BackingOff,
    }
}

fn unix_secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

/// `GET /api/lines` for one running line.
pub(crate) fn view(name: &str, number: &str, s: &LineStatus) -> LineView {
    LineView {
        name: name.to_owned(),
        number: number.to_owned(),
        state: state_view(s.state),
        since: unix_secs(s.since),
        expires_at: s.expires_at.map(unix_secs),
        next_attempt_at: s.next_attempt_at.map(unix_secs),
        call_id_mode: call_id_view(s.call_id_mode),
        last_failure: s.last_failure.as_ref().map(|f| mss_admin::LastFailure {
            code: f.code,
            reason: f.reason.clone(),
            p_registrar_error: f.p_registrar_error.clone(),
        }),
    }
}

fn describe_failure(f: &LastFailure) -> String {
    let mut s = match f.code {
        Some(code) => format!("{code} {}", f.reason),
        None => f.reason.clone(),
    };
    if let Some(p) = &f.p_registrar_error {
        s.push_str(&format!(", P-Registrar-Error: {p}"));
    }
    s
}

/// Why a line went from `old` to its state, in words, for the transition log line.
pub(crate) fn reason(old: LineState, s: &LineStatus, now_ms: i64) -> String {
    let next = s.next_attempt_at.map(|at| {
        format!(
            "; next attempt in {} s",
            ((at - now_ms).max(0) + 999) / 1000
        )
    });
    match s.state {
        LineState::Online => match s.expires_at {
            Some(at) => format!("registered for {} s", (at - now_ms).max(0) / 1000),
            None => "registered".to_owned(),
        },
        LineState::Offline => "stopped".to_owned(),
        LineState::Registering if old == LineState::Online => {
            "the registration expired before a refresh got through".to_owned()
        }
        LineState::Registering => "starting".to_owned(),
        _ => {
            let what = s
                .last_failure
                .as_ref()
                .map_or_else(|| "failed".to_owned(), describe_failure);
            format!("{what}{}", next.unwrap_or_default())
        }
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

/// A machine's output with the line it came from.
type Outputs = Vec<LineOutput>;

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
            None => {
                self.forget_line_client(id, index);
                if let Some(m) = self
                    .lines
                    .slots
                    .get_mut(index)
                    .and_then(|s| s.machine.as_mut())
                {
                    m.handle_transaction_timeout(now);
                }
            }
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
        self.forget_line_client(id, index);
        if let Some(m) = self
            .lines
            .slots
            .get_mut(index)
            .and_then(|s| s.machine.as_mut())
        {
            m.handle_transaction_timeout(now);
        }
        self.lines.mark(index);
    }

    /// The line is done with its client transaction: later retransmissions are absorbed by
    /// the transaction layer, and shutdown need not wait for its Timer K.
    fn forget_line_client(&mut self, id: ClientTransactionId, index: usize) {
        self.clients.remove(&id);
        if let Some(s) = self.lines.slots.get_mut(index) {
            if s.client == Some(id) {
                s.client = None;
            }
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

    /// Carries out what the lines that got an input want; true when a REGISTER went into
    /// the transaction layer (whose output then needs draining).
    pub(super) fn drain_lines(&mut self, now: Now) -> bool {
        let mut sent = false;
        // Each round empties the list; a line is marked again only by a failed send, which
        // the machine turns into a scheduled retry, so this ends.
        for _ in 0..4 {
            if self.lines.dirty.is_empty() {
                break;
            }
            let batch = std::mem::take(&mut self.lines.dirty);
            for index in batch {
                sent |= self.drain_line(now, index);
            }
        }
        sent
    }

    fn drain_line(&mut self, now: Now, index: usize) -> bool {
        let mut outputs: Outputs = Vec::new();
        {
            let rng = &mut self.lines.rng;
            let Some(slot) = self.lines.slots.get_mut(index) else {
                return false;
            };
            slot.dirty = false;
            let Some(m) = slot.machine.as_mut() else {
                return false;
            };
            while let Some(out) = m.poll_output(now, rng) {
                outputs.push(out);
            }
        }
        let mut sent = false;
        for out in outputs {
            match out {
                LineOutput::Resolve(req) => self.start_lookup(index, req),
                LineOutput::Send { request, target } => {
                    let Some(slot) = self.lines.slots.get_mut(index) else {
                        continue;
                    };
                    if slot.persisting > 0 {
                        slot.held = Some((*request, target));
                    } else {
                        sent |= self.send_line_request(now, index, *request, target);
                    }
                }
                LineOutput::Persist(record) => {
                    if let Some(slot) = self.lines.slots.get_mut(index) {
                        slot.persisting += 1;
                    }
                    let op = self.store.put_line(record);
                    self.spawn_store(op, move |result| {
                        Completion::Line(LineCompletion::Persisted { index, result })
                    });
                }
                LineOutput::StateChanged(status) => self.line_state_changed(now, index, &status),
                LineOutput::Log(log) => line_log(self.lines.name(index), &log),
            }
        }
        if let Some(slot) = self.lines.slots.get_mut(index) {
            slot.timeout = slot.machine.as_ref().and_then(Registration::poll_timeout);
        }
        sent
    }

    fn start_lookup(&mut self, index: usize, req: ResolveRequest) {
        let resolver = self
            .lines
            .resolver
            .get_or_insert_with(dns::system_resolver)
            .clone();
        let tx = self.completions.clone();
        let (cancel, cancelled) = oneshot::channel::<()>();
        self.in_flight += 1;
        tokio::spawn(async move {
            let result = tokio::select! {
                r = dns::resolve(&resolver, &req) => r,
                _ = cancelled => Err(DnsError::Cancelled { name: req.host.clone() }),
            };
            // The worker is gone only at the very end of shutdown; nothing to report then.
            let _ = tx.send(Completion::Line(LineCompletion::Resolved { index, result }));
        });
        if let Some(slot) = self.lines.slots.get_mut(index) {
            slot.lookup = Some(cancel);
        }
    }

    /// Starts the client transaction of a line's REGISTER; true when it went in.
    fn send_line_request(
        &mut self,
        now: Now,
        index: usize,
        request: Request,
        target: Target,
    ) -> bool {
        let flow = Flow {
            transport: target.transport,
            remote: target.addr,
            connection: None,
        };
        match self.txns.send_request(now.mono, request, flow) {
            Ok(id) => {
                self.clients.insert(id, ClientOwner::Line(index));
                if let Some(slot) = self.lines.slots.get_mut(index) {
                    slot.client = Some(id);
                }
                true
            }
            Err(e) => {
                tracing::warn!(line = %self.lines.name(index), error = %e,
                    "cannot start the REGISTER's transaction");
                if let Some(m) = self
                    .lines
                    .slots
                    .get_mut(index)
                    .and_then(|s| s.machine.as_mut())
                {
                    m.handle_transaction_timeout(now);
                }
                self.lines.mark(index);
                false
            }
        }
    }

    /// Metrics and one log line for a line's new state (or its new Call-ID policy).
    fn line_state_changed(&mut self, now: Now, index: usize, status: &LineStatus) {
        let Some(slot) = self.lines.slots.get_mut(index) else {
            return;
        };
        let old = slot.state;
        let name = slot.settings.name.as_str();
        if old == status.state {
            tracing::info!(line = %name, "line {name}: call_id mode now {}",
                call_id_view(status.call_id_mode).as_str());
            return;
        }
        slot.state = status.state;
        self.metrics
            .line_transition(Some(state_view(old)), state_view(status.state));
        let why = reason(old, status, now.unix_ms);
        match status.state {
            LineState::Online | LineState::Registering | LineState::Offline => {
                tracing::info!(line = %name, "line {name}: {old} → {} ({why})", status.state);
            }
            _ => tracing::warn!(line = %name, "line {name}: {old} → {} ({why})", status.state),
        }
    }
}

fn line_log(name: &str, log: &LineLog) {
    match log.level {
        LogLevel::Info => tracing::info!(line = %name, "{}", log.message),
        LogLevel::Warn => tracing::warn!(line = %name, "{}", log.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SipTransport;

    fn config() -> LineConfig {
        LineConfig {
            name: "p1".into(),
            registrar_host: "127.0.0.1".into(),
            registrar_port: Some(5070),
            transport: SipTransport::Udp,
            number: "2001".into(),
            username: "2001".into(),
            password: "pw".into(),
            domain: "127.0.0.1".into(),
            expires: 120,
            owner: None,
            call_id: CallIdMode::Auto,
        }
    }

    #[test]
    fn settings_follow_the_line_and_the_var_file() {
        let s = line_settings(&config(), CallIdMode::Fresh);
        assert_eq!(s.port, Some(5070));
        assert_eq!(s.username, None);
        assert_eq!(s.domain, None);
        assert_eq!(s.request_uri(), "sip:127.0.0.1:5070");
        assert_eq!(s.call_id_mode, LineCallIdMode::Fresh);
        assert_eq!(s.expires, 120);
        let mut c = config();
        c.username = "auth".into();
        c.domain = "voip.example".into();
        c.registrar_port = None;
        let s = line_settings(&c, CallIdMode::Auto);
        assert_eq!(s.username(), "auth");
        assert_eq!(s.aor(), "sip:2001@voip.example");
        assert_eq!(s.port, None);
    }

    #[test]
    fn call_id_names_are_the_admin_apis() {
        let v = |configured, fresh| call_id_view(CallIdInUse { configured, fresh }).as_str();
        assert_eq!(v(LineCallIdMode::Auto, false), "auto");
        assert_eq!(v(LineCallIdMode::Auto, true), "auto_fresh");
        assert_eq!(v(LineCallIdMode::Same, false), "same");
        assert_eq!(v(LineCallIdMode::Fresh, true), "fresh");
    }

    #[test]
    fn views_and_reasons() {
        let status = LineStatus {
            state: LineState::Rejected,
            since: 1_700_000_000_500,
            expires_at: None,
            next_attempt_at: Some(1_700_000_030_000),
            call_id_mode: CallIdInUse {
                configured: LineCallIdMode::Same,
                fresh: false,
            },
            last_failure: Some(LastFailure {
                code: Some(400),
                reason: "Bad Request".into(),
                p_registrar_error: Some("Invalid CSeq number".into()),
            }),
            notice: None,
        };
        let v = view("p1", "2001", &status);
        assert_eq!(v.state, mss_admin::LineState::Rejected);
        assert_eq!(v.since, 1_700_000_000);
        assert_eq!(v.next_attempt_at, Some(1_700_000_030));
        assert_eq!(v.call_id_mode, CallIdModeView::Same);
        let f = v.last_failure.unwrap();
        assert_eq!(f.p_registrar_error.as_deref(), Some("Invalid CSeq number"));
        assert_eq!(
            reason(LineState::Online, &status, 1_700_000_000_000),
            "400 Bad Request, P-Registrar-Error: Invalid CSeq number; next attempt in 30 s"
        );
        let online = LineStatus {
            state: LineState::Online,
            expires_at: Some(1_700_000_120_000),
            ..status
        };
        assert_eq!(
            reason(LineState::Registering, &online, 1_700_000_000_000),
            "registered for 120 s"
        );
        let expired = LineStatus {
            state: LineState::Registering,
            ..online
        };
        assert!(reason(LineState::Online, &expired, 0).contains("expired"));
        for s in [
            LineState::Offline,
            LineState::Registering,
            LineState::Online,
            LineState::AuthFailed,
            LineState::Rejected,
            LineState::Unreachable,
            LineState::BackingOff,
        ] {
            assert_eq!(state_view(s).as_str(), s.as_str());
        }
    }
}
