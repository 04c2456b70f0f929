//! The caller's leg and the end of a call (DESIGN §8): responses to the caller (in the A
//! leg's one dialog once it exists), CANCEL from the caller (`487`, every B leg
//! cancelled), the ring deadline (no answer: the next line, or `480`), a missing ACK, the
//! end of a call with its record, shutdown.

use mss_dialog::{DialogId, LocalEnd};
use mss_services::Now;
use mss_sip::{Response, StatusCode};
use mss_store::{CallDisposition, EndedBy};
use mss_txn::ServerTransactionId;

use super::model::{CallState, Side};
use super::outgoing::{addr_text, contact_uri};
use super::CallKey;
use crate::core::{Core, Then};
use crate::output::StoreOp;

/// What the record says of a call that ended with `status` for the caller.
fn disposition(status: u16, answered: bool) -> CallDisposition {
    if answered {
        return CallDisposition::Answered;
    }
    match status {
        486 | 600 => CallDisposition::Busy,
        408 | 480 => CallDisposition::NoAnswer,
        487 => CallDisposition::Cancelled,
        _ => CallDisposition::Failed,
    }
}

impl Core {
    /// A response of status `status` to the caller's INVITE, in the A leg's dialog (made
    /// now for a provisional response with a To tag or a `2xx`); `None` when the call is
    /// gone or the dialog cannot be made (the caller then gets nothing more).
    pub(crate) fn a_response(
        &mut self,
        key: CallKey,
        status: StatusCode,
        reason: &str,
    ) -> Option<Response> {
        // A transfer call has no caller's dialog (`transfer_call.rs`).
        let needs_dialog = (101..300).contains(&status.0) && !self.calls.transfers.is_sub(key);
        if needs_dialog {
            self.ensure_a_dialog(key);
        }
        let call = self.calls.table.get(&key)?;
        match &call.a.dialog {
            Some(d) => self
                .dialogs
                .response(d, &call.a.invite, status, reason)
                .ok(),
            None => {
                let tag = self.answer.to_tag_hex(&call.a.invite);
                Some(Response::for_request_with_to_tag(
                    &call.a.invite,
                    status,
                    reason.to_owned(),
                    &tag,
                ))
            }
        }
    }

    /// Makes the A leg's dialog (mss as UAS, RFC 3261 §12.1.1) if it does not exist yet.
    fn ensure_a_dialog(&mut self, key: CallKey) {
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        if call.a.dialog.is_some() {
            return;
        }
        let flow = call.a.flow;
        // Our address as the caller sees it: the host's answer for the caller's address
        // (a wildcard listener has no one address of its own), else the address the
        // INVITE came to.
        let sent_by = self
            .network
            .sent_by(flow.transport, flow.remote)
            .or(self.arrival)
            .filter(|a| !a.ip().is_unspecified());
        let Some(sent_by) = sent_by else {
            tracing::warn!(peer = %flow, "no local address towards the caller");
            return;
        };
        let sent_by = addr_text(sent_by);
        let local = LocalEnd {
            transport: flow.transport,
            contact: contact_uri(&sent_by, flow.transport, "mss"),
            sent_by,
        };
        match self
            .dialogs
            .create_uas(&call.a.invite, local, &mut self.rng)
        {
            Ok(id) => {
                let server = call.a.server;
                self.register_dialog(&id, key, Side::A);
                self.calls.reply_server.insert(id.clone(), server);
                if let Some(call) = self.calls.table.get_mut(&key) {
                    call.a.dialog = Some(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "the caller's dialog could not be made"),
        }
    }

    /// Sends `rsp` to the caller: through the A dialog (which keeps a `2xx` going until
    /// the ACK) or straight through the INVITE's server transaction.
    pub(crate) fn send_to_a(&mut self, now: Now, key: CallKey, rsp: Response) {
        if self.calls.transfers.is_sub(key) {
            self.on_transfer_call_response(now, key, rsp);
            return;
        }
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        let status = rsp.status().as_u16();
        if status >= 200 {
            // The INVITE stays in `by_server` until the call is gone: a CANCEL that comes
            // after the answer finds its call there (`on_call_cancel`) without a search.
            call.a.answered = true;
        }
        let server = call.a.server;
        let dialog = call.a.dialog.clone();
        match dialog {
            Some(d) => {
                if let Err(e) = self.dialogs.send_response(now.mono, &d, rsp) {
                    tracing::debug!(error = %e, "response to the caller not sent");
                }
                self.drain_dialogs(now);
                if status >= 300 {
                    // A failed INVITE ends the early dialog (RFC 3261 §12.3).
                    self.forget_dialog(now, &d);
                }
            }
            None => self.respond(now, server, rsp),
        }
    }

    /// Refuses call `key` with `status` before any B leg could be tried.
    pub(crate) fn fail_call(&mut self, now: Now, key: CallKey, status: StatusCode, reason: &str) {
        if let Some(rsp) = self.a_response(key, status, reason) {
            self.send_to_a(now, key, rsp);
        }
        self.end_call(now, key, status.as_u16(), EndedBy::Mss);
        self.finish_if_done(now, key);
    }

    /// The caller cancelled its INVITE (server transaction `invite`): `487` to the caller,
    /// every B leg cancelled (RFC 3261 §9.2, DESIGN §8).
    pub(crate) fn on_call_cancel(&mut self, now: Now, invite: ServerTransactionId) {
        let Some(key) = self.calls.by_server.get(&invite).copied() else {
            tracing::debug!(?invite, "CANCEL for an INVITE whose call is gone");
            return;
        };
        if self.calls.table.get(&key).is_some_and(|c| c.a.answered) {
            if !self.cancel_unsent_answer(now, key, invite) {
                tracing::debug!(?invite, "CANCEL for an INVITE already answered");
            }
            return;
        }
        tracing::debug!("call cancelled by the caller");
        self.cancel_call(now, key, StatusCode::REQUEST_TERMINATED, EndedBy::Caller);
    }

    /// Ends an unanswered call: `status` to the caller, every B leg cancelled.
    pub(crate) fn cancel_call(&mut self, now: Now, key: CallKey, status: StatusCode, by: EndedBy) {
        let legs = match self.calls.table.get(&key) {
            Some(call) if !call.a.answered => call.b.len(),
            _ => return,
        };
        if let Some(rsp) = self.a_response(key, status, status.canonical_reason()) {
            self.send_to_a(now, key, rsp);
        }
        for leg in 0..legs {
            self.cancel_leg(now, key, leg);
        }
        self.end_call(now, key, status.as_u16(), by);
        self.finish_if_done(now, key);
    }

    /// The ring deadline of call `key` passed: an outgoing call moves to its next line,
    /// any other call ends with `480` (no answer).
    pub(crate) fn on_ring_deadline(&mut self, now: Now, key: CallKey) {
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        let due = call.ring_deadline.is_some_and(|t| t <= now.mono);
        if !due || call.a.answered || call.winner.is_some() {
            return;
        }
        if self.stage_timed_out(now, key) {
            return;
        }
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        if !call.lines_left.is_empty() {
            let legs = call.b.len();
            let deadline = now.mono + self.calls.settings.ring_timeout;
            call.ring_deadline = Some(deadline);
            self.calls.schedule(key, deadline);
            for leg in 0..legs {
                self.cancel_leg(now, key, leg);
            }
            tracing::info!("no answer through the line; trying the next line");
            self.next_line_or_fail(now, key);
            return;
        }
        tracing::info!("call not answered in time");
        self.cancel_call(now, key, StatusCode::TEMPORARILY_UNAVAILABLE, EndedBy::Mss);
    }

    /// Our `2xx` in dialog `id` got no ACK within 64·T1 (RFC 3261 §13.3.1.4): the session
    /// ends — the other leg's `2xx` is acknowledged, BYE on both legs.
    pub(crate) fn on_ack_timeout(&mut self, now: Now, id: &DialogId) {
        let key = self.calls.by_dialog.get(id).map(|(k, _)| *k);
        let Some(key) = key.filter(|k| self.calls.table.contains_key(k)) else {
            // The call is over already; only this dialog is left.
            self.calls.bye_on_ack.remove(id);
            self.send_bye(now, id);
            return;
        };
        tracing::info!("no ACK for our 2xx: ending the call");
        let relay = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.ack_relay.take());
        if let Some(relay) = relay {
            let _ = self.dialogs.ack(&relay.to, relay.cseq, &mut self.rng);
            self.drain_dialogs(now);
        }
        self.hang_up(now, key, None, EndedBy::Mss);
    }

    /// Ends an answered call: BYE on every confirmed leg but `except` (the one whose BYE
    /// ended it), then the record.
    pub(crate) fn hang_up(&mut self, now: Now, key: CallKey, except: Option<Side>, by: EndedBy) {
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        let mut dialogs: Vec<(Side, DialogId)> = Vec::new();
        if let Some(d) = &call.a.dialog {
            dialogs.push((Side::A, d.clone()));
        }
        if let Some(w) = call.winner {
            if let Some(d) = call.dialog_of(Side::B(w)) {
                dialogs.push((Side::B(w), d.clone()));
            }
        }
        // Requests still passed on within the call get no answer any more: give them up, so
        // that their requesters get a final answer now (`in_dialog.rs`).
        let forwards = self
            .calls
            .table
            .get_mut(&key)
            .map(|c| std::mem::take(&mut c.forwards))
            .unwrap_or_default();
        for id in forwards {
            self.txns.abandon_client(now.mono, id);
        }
        // A request held for a glare retry waits on a dialog of this call: only its
        // dialogs are looked up, not every held request of the service.
        let held: Vec<DialogId> = match self.calls.table.get(&key) {
            Some(c) if !self.calls.held.is_empty() => c
                .dialogs()
                .filter(|d| self.calls.held.get(*d).is_some_and(|(k, _)| *k == key))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        for d in held {
            self.dialogs.cancel_reinvite_retry(&d);
            if let Some((_, h)) = self.calls.held.remove(&d) {
                self.answer_held(now, &h);
            }
        }
        for (side, d) in dialogs {
            if Some(side) == except {
                continue;
            }
            self.send_bye(now, &d);
        }
        self.end_call(now, key, 200, by);
        self.finish_if_done(now, key);
    }

    /// Closes the record of call `key` (once): disposition, who ended it, the store write,
    /// the counters; the call's user slots are given back.
    pub(crate) fn end_call(&mut self, now: Now, key: CallKey, status: u16, by: EndedBy) {
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        if call.record.disposition.is_some() {
            return;
        }
        call.state = CallState::Ending;
        call.ring_deadline = None;
        let answered = call.record.answered_at.is_some();
        let d = disposition(status, answered);
        call.record.disposition = Some(d);
        call.record.sip_code = Some(if answered { 200 } else { status });
        call.record.ended_at = Some(now.unix_ms);
        call.record.ended_by = Some(by);
        let users = std::mem::take(&mut call.slots);
        // Debug, not info: each call's record is in the CSV file and the admin API already,
        // and a log line per call cost a write to the log per call under load.
        tracing::debug!(
            call = %call.record.id,
            disposition = d.as_str(),
            sip_code = ?call.record.sip_code,
            ended_by = by.as_str(),
            "call ended"
        );
        for u in users {
            self.calls.release_user_slot(&u);
        }
        self.media_release(key);
        if !self.calls.transfers.is_sub(key) {
            self.store_call_record(key);
            self.publish_call_end(key);
        }
        self.transfer_call_ended(now, key);
    }

    /// Writes the record of call `key` as it stands.
    pub(crate) fn store_call_record(&mut self, key: CallKey) {
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        if self.calls.transfers.is_sub(key) {
            return;
        }
        let record = call.record.clone();
        let id = record.id.clone();
        self.store(StoreOp::PutCall(record), Then::CallRecord(id));
    }

    /// Removes call `key` once it is over and no B leg's INVITE is in progress (its
    /// dialogs go when their BYE is answered).
    pub(crate) fn finish_if_done(&mut self, now: Now, key: CallKey) {
        let done = self
            .calls
            .table
            .get(&key)
            .is_some_and(|c| c.state == CallState::Ending && !c.any_pending());
        if !done {
            return;
        }
        self.media_release(key);
        if let Some(call) = self.calls.table.remove(&key) {
            if self.calls.by_server.get(&call.a.server) == Some(&key) {
                self.calls.by_server.remove(&call.a.server);
            }
            // Early dialogs of B legs that never answered are over with their INVITE.
            for b in &call.b {
                for d in &b.dialogs {
                    if Some(d) != b.confirmed.as_ref() {
                        let early = self
                            .dialogs
                            .get(d)
                            .is_some_and(|x| x.state() != mss_dialog::DialogState::Confirmed);
                        if early {
                            self.forget_dialog(now, d);
                        }
                    }
                }
            }
            self.transfer_call_removed(now, key);
            self.publish_calls_active();
        }
    }

    /// Shutdown: every call ends — answered calls with BYE on both legs, the others with
    /// `503` to the caller and CANCEL to the B legs.
    pub(crate) fn calls_shutdown(&mut self, now: Now) {
        let keys: Vec<CallKey> = self.calls.table.keys().copied().collect();
        for key in keys {
            let answered = self
                .calls
                .table
                .get(&key)
                .is_some_and(|c| c.a.answered && c.winner.is_some());
            if answered {
                self.hang_up(now, key, None, EndedBy::Mss);
            } else {
                self.cancel_call(now, key, StatusCode::SERVICE_UNAVAILABLE, EndedBy::Mss);
            }
        }
    }

    /// The store wrote (or failed to write) the record `id`.
    pub(crate) fn on_call_record_stored(&mut self, id: &str, result: &crate::StoreResult) {
        if let Some(e) = result.error() {
            tracing::error!(call = %id, error = %e, "call record not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        assert_eq!(disposition(200, true), CallDisposition::Answered);
        assert_eq!(disposition(486, false), CallDisposition::Busy);
        assert_eq!(disposition(480, false), CallDisposition::NoAnswer);
        assert_eq!(disposition(487, false), CallDisposition::Cancelled);
        assert_eq!(disposition(404, false), CallDisposition::Failed);
    }
}
