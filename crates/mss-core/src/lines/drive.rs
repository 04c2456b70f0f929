//! Carrying out what the lines' machines ask for (the run loop of `mss_services::lines`):
//! lookups, REGISTERs through client transactions (each after its record is durable),
//! record writes, state changes and log lines.

use mss_services::lines::{
    LineLog, LineOutput, LineState, LineStatus, LogLevel, Registration, ResolveRequest, Target,
};
use mss_services::Now;
use mss_sip::{Flow, Request};

use super::{call_id_view, reason, state_view, LineThen};
use crate::core::{ClientOwner, Core, Then};
use crate::output::{Output, StoreOp};

impl Core {
    /// Carries out what the lines that got an input want; true when a REGISTER went into
    /// the transaction layer (whose output then needs draining).
    pub(crate) fn drain_lines(&mut self, now: Now) -> bool {
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
        let mut outputs: Vec<LineOutput> = Vec::new();
        {
            let rng = &mut self.rng;
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
                    self.store(
                        StoreOp::PutLine(record),
                        Then::Line(index, LineThen::Persisted),
                    );
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

    fn start_lookup(&mut self, index: usize, request: ResolveRequest) {
        let id = self.ops.start(Then::Line(index, LineThen::Resolved));
        self.out.push_back(Output::Resolve { id, request });
        if let Some(slot) = self.lines.slots.get_mut(index) {
            slot.lookup = Some(id);
        }
    }

    /// Starts the client transaction of a line's REGISTER; true when it went in.
    pub(crate) fn send_line_request(
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
                if let Some(m) = self.lines.machine_mut(index) {
                    m.handle_transaction_timeout(now);
                }
                self.lines.mark(index);
                false
            }
        }
    }

    /// Metrics and one log line for a line's new state (or its new Call-ID policy).
    pub(crate) fn line_state_changed(&mut self, now: Now, index: usize, status: &LineStatus) {
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
