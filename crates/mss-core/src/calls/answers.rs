//! Responses to the INVITEs of B legs (DESIGN §8, RFC 3261 §13.2.2, §16.7):
//!
//! - a provisional response with a To tag creates (or updates) the B leg's early dialog;
//!   `180` and `183` go to the caller (with the SDP of early media) in the A leg's one
//!   dialog; the first provisional response also lets a wanted CANCEL go (§9.1);
//! - the first `2xx` wins: the caller gets `200` with the answer, the other forks are
//!   cancelled, and the B leg's ACK waits for the caller's (it may carry the answer to a
//!   delayed offer, RFC 3264 §5); any later `2xx` gets ACK then BYE;
//! - a line's `401`/`407` is answered once with the line's credentials;
//! - `408`, `503` (also a timeout or a transport error) on a line move the call to the
//!   next line; when every leg failed, the caller gets the best answer (§16.7 step 6:
//!   a `6xx`, else busy, else a `4xx`, else a `5xx`).

use bytes::Bytes;
use mss_dialog::{DialogId, ResponseEffect, ResponseOutcome};
use mss_services::Now;
use mss_sip::{HeaderName, Method, Response, StatusCode};
use mss_txn::ClientTransactionId;

use super::model::{AckRelay, BState, BTarget, CallState, Side};
use super::outgoing::{cancel_for, copy_body_response, with_credentials};
use super::{CallClient, CallKey};
use crate::core::Core;

/// How long a cancelled INVITE may wait for its final response before it is given up
/// (RFC 3261 §9.1: 64·T1).
const CANCEL_GUARD: std::time::Duration = std::time::Duration::from_secs(32);

/// Headers of a B leg's failure that the caller gets too.
const FAILURE_HEADERS: [HeaderName; 2] = [HeaderName::Warning, HeaderName::RetryAfter];

/// How good a final failure is for the caller, lower is better (RFC 3261 §16.7 step 6).
fn rank(status: u16) -> u8 {
    match status {
        600..=699 => 0,
        486 => 1,
        401 | 407 => 5,
        408 => 6,
        400..=499 => 2,
        300..=399 => 4,
        _ => 3,
    }
}

/// The status the caller gets for a B leg's failure `status`: a device's challenge
/// cannot be answered by the caller (`403`), and a redirection that could not be followed
/// (its Contact names nobody of ours nor a number to dial out) becomes `480`.
fn for_caller(status: u16) -> (StatusCode, Option<&'static str>) {
    match status {
        401 | 407 => (StatusCode::FORBIDDEN, Some("Forbidden")),
        300..=399 => (
            StatusCode::TEMPORARILY_UNAVAILABLE,
            Some("Temporarily Unavailable"),
        ),
        s => (StatusCode(s), None),
    }
}

impl Core {
    /// A response (or `None`: a transport error) to the INVITE of B leg `leg` of call
    /// `key`, through client transaction `id`.
    pub(crate) fn on_b_invite_response(
        &mut self,
        now: Now,
        id: ClientTransactionId,
        key: CallKey,
        leg: usize,
        response: Option<Response>,
    ) {
        let rsp = response.unwrap_or_else(|| {
            Response::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        });
        let status = rsp.status().as_u16();
        if status >= 200 {
            if let Some(b) = self
                .calls
                .table
                .get_mut(&key)
                .and_then(|c| c.b.get_mut(leg))
            {
                b.client = None;
            }
        }
        // The leg's INVITE is lent, not cloned: the From/To tags the dialog layer notes on
        // it stay for the next response.
        let Some(invite) = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.leg(leg))
            .map(|b| &b.invite)
        else {
            tracing::debug!(?id, "response for a call that is gone");
            return;
        };
        // The dialogs first: a 2xx must be acknowledged whatever the call thinks of it.
        let outcome = if rsp.headers().to_tag().is_ok_and(|tag| tag.is_some()) {
            self.dialogs
                .handle_invite_response(now.mono, invite, &rsp, &mut self.rng)
        } else {
            Ok(ResponseOutcome::NoDialog)
        };
        let mut dialog: Option<(DialogId, Option<u32>)> = None;
        match outcome {
            Ok(ResponseOutcome::Applied { id: d, effect }) => {
                let created = matches!(
                    effect,
                    ResponseEffect::Early { created: true }
                        | ResponseEffect::AckNeeded { created: true, .. }
                );
                if created {
                    self.register_dialog(&d, key, Side::B(leg));
                    if let Some(b) = self
                        .calls
                        .table
                        .get_mut(&key)
                        .and_then(|c| c.b.get_mut(leg))
                    {
                        b.dialogs.push(d.clone());
                    }
                }
                let ack_cseq = match effect {
                    ResponseEffect::AckNeeded { cseq, .. } => Some(cseq),
                    _ => None,
                };
                dialog = Some((d, ack_cseq));
            }
            Ok(ResponseOutcome::EarlyDialogsEnded(ids)) => {
                for d in ids {
                    self.forget_dialog(now, &d);
                }
            }
            Ok(ResponseOutcome::NoDialog) => {}
            Err(e) => tracing::debug!(error = %e, status, "B leg response not applied"),
        }
        self.drain_dialogs(now);
        if let (101..=199, Some((d, _))) = (status, dialog.as_ref()) {
            if !self.b_reliable_provisional(now, key, leg, d, &rsp) {
                return;
            }
        }
        match status {
            100..=199 => {
                let early = dialog.as_ref().map(|(d, _)| d.clone());
                self.on_b_provisional(now, key, leg, &rsp, early);
            }
            200..=299 => {
                // A repeated 2xx (ACKed again by the dialog layer, or still waiting for
                // the caller's ACK) has no CSeq to acknowledge: nothing new.
                if let Some((d, Some(cseq))) = dialog {
                    self.on_b_answer(now, key, leg, d, cseq, &rsp);
                }
            }
            _ => self.on_b_failure(now, key, leg, rsp),
        }
        self.finish_if_done(now, key);
    }

    /// Records which call and leg dialog `id` belongs to, and the flow of that leg.
    pub(crate) fn register_dialog(&mut self, id: &DialogId, key: CallKey, side: Side) {
        self.calls.by_dialog.insert(id.clone(), (key, side));
        if let Some(flow) = self.calls.table.get(&key).and_then(|c| c.flow_of(side)) {
            self.calls.dialog_flow.insert(id.clone(), flow);
        }
    }

    /// A provisional response of B leg `leg` (in its early dialog `early`, if it made
    /// one): a CANCEL that waited for it goes; `180` and `183` go to the caller while
    /// nobody answered.
    fn on_b_provisional(
        &mut self,
        now: Now,
        key: CallKey,
        leg: usize,
        rsp: &Response,
        early: Option<DialogId>,
    ) {
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        let Some(b) = call.b.get_mut(leg) else {
            return;
        };
        if b.state == BState::Calling {
            b.state = BState::Proceeding;
        }
        if b.cancel_pending {
            self.send_cancel(now, key, leg);
            return;
        }
        let status = rsp.status().as_u16();
        if status == 100 || call.a.answered || call.winner.is_some() {
            return;
        }
        let early_media = !rsp.body().is_empty();
        if let (true, Some(d)) = (early_media, early) {
            call.early = Some((leg, d));
        }
        call.state = match (call.state, early_media) {
            (CallState::Trying | CallState::Ringing, true) => CallState::Early,
            (CallState::Trying, false) => CallState::Ringing,
            (s, _) => s,
        };
        let reason = String::from_utf8_lossy(rsp.reason()).into_owned();
        let Some(mut out) = self.a_response(key, rsp.status(), &reason) else {
            return;
        };
        if early_media {
            copy_body_response(rsp.headers(), rsp.body(), &mut out);
            let body = self.relay_body(key, Side::B(leg), Side::A, rsp.headers(), rsp.body());
            out.set_body(body);
        }
        self.send_to_a(now, key, out);
    }

    /// The first `2xx` of the call (from B leg `leg`, dialog `dialog`, INVITE CSeq `cseq`)
    /// answers it; any other is acknowledged and ended at once.
    fn on_b_answer(
        &mut self,
        now: Now,
        key: CallKey,
        leg: usize,
        dialog: DialogId,
        cseq: u32,
        rsp: &Response,
    ) {
        let late = match self.calls.table.get(&key) {
            Some(call) => call.winner.is_some() || call.a.answered,
            None => true,
        };
        if late {
            tracing::debug!(leg, "a 2xx after the call was decided: ACK and BYE");
            self.ack_and_bye(now, &dialog, cseq);
            if let Some(b) = self
                .calls
                .table
                .get_mut(&key)
                .and_then(|c| c.b.get_mut(leg))
            {
                b.state = BState::Failed(200);
            }
            return;
        }
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        call.winner = Some(leg);
        call.state = CallState::Answered;
        call.codec.answered(rsp.body());
        call.ring_deadline = None;
        call.record.answered_at = Some(now.unix_ms);
        if let Some(b) = call.b.get_mut(leg) {
            b.state = BState::Answered;
            b.confirmed = Some(dialog.clone());
            call.record.answered_by = Some(match &b.target {
                BTarget::Device { user } => user.clone(),
                BTarget::Line { number, .. } => number.clone(),
            });
            if let (
                super::model::Stage::GroupAll(group) | super::model::Stage::GroupHunt { group, .. },
                BTarget::Device { user },
            ) = (&call.stage, &b.target)
            {
                self.calls.last_answered.insert(group.clone(), user.clone());
            }
        }
        let others: Vec<usize> = (0..call.b.len()).filter(|i| *i != leg).collect();
        for other in others {
            self.cancel_leg(now, key, other);
        }
        let reason = String::from_utf8_lossy(rsp.reason()).into_owned();
        let Some(mut ok) = self.a_response(key, rsp.status(), &reason) else {
            return;
        };
        copy_body_response(rsp.headers(), rsp.body(), &mut ok);
        let body = self.relay_body(key, Side::B(leg), Side::A, rsp.headers(), rsp.body());
        ok.set_body(body);
        self.media_answered(key);
        let a_dialog = self.calls.table.get(&key).and_then(|c| c.a.dialog.clone());
        // What a re-INVITE refresh of this leg repeats: the offer it was sent (pointed at
        // the relay when there is one), not the caller's.
        let offer = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.leg(leg))
            .and_then(|b| super::session_timer::body_of(b.invite.headers(), b.invite.body()));
        self.session_timer_2xx(now, key, &dialog, rsp, offer);
        if let (Some(a), Some(invite)) = (
            a_dialog.as_ref(),
            self.calls.table.get(&key).map(|c| c.a.invite.clone()),
        ) {
            self.session_timer_answer(now, key, a, &invite, &mut ok);
        }
        if let (Some(call), Some(from)) = (self.calls.table.get_mut(&key), a_dialog) {
            call.ack_relay = Some(AckRelay {
                from,
                to: dialog,
                cseq,
            });
        }
        self.send_to_a(now, key, ok);
        if let Some(call) = self.calls.table.get(&key) {
            tracing::debug!(call = %call.record.id, answered_by = ?call.record.answered_by, "call answered");
            self.store_call_record(key);
        }
    }

    /// A final failure of B leg `leg` (see the module docs).
    fn on_b_failure(&mut self, now: Now, key: CallKey, leg: usize, rsp: Response) {
        let status = rsp.status().as_u16();
        let (line, authenticated) = {
            let Some(call) = self.calls.table.get_mut(&key) else {
                return;
            };
            let Some(b) = call.b.get_mut(leg) else {
                return;
            };
            b.state = BState::Failed(status);
            let cancelled = b.cancelled;
            if call.a.answered || call.winner.is_some() {
                return;
            }
            if cancelled {
                // A leg of an earlier stage (cancelled for a forward or the next group
                // member): its end may be the last thing the current stage waited for.
                self.stage_failed(now, key);
                return;
            }
            let line = match &b.target {
                BTarget::Line { line, .. } => Some(*line),
                BTarget::Device { .. } => None,
            };
            (line, b.authenticated)
        };
        if let (Some(line), 401 | 407, false) = (line, status, authenticated) {
            if self.retry_with_credentials(now, key, leg, line, &rsp) {
                return;
            }
        }
        if status == 422 && self.retry_after_422(now, key, leg, &rsp) {
            return;
        }
        if (300..400).contains(&status) {
            self.note_redirect(key, leg, &rsp);
        }
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        let better = match &call.best {
            Some(best) => rank(status) < rank(best.status().as_u16()),
            None => true,
        };
        if better {
            call.best = Some(rsp);
        }
        if line.is_some() && matches!(status, 408 | 503) && !call.lines_left.is_empty() {
            tracing::info!(status, "line failed the call; trying the next line");
            self.next_line_or_fail(now, key);
            return;
        }
        if !call.any_pending() {
            self.stage_failed(now, key);
        }
    }

    /// Remembers where a device's `3xx` sends the call (DESIGN §8: a redirection is followed
    /// to a local user, a group, or out through a line): the first Contact whose user part
    /// names a user or group of ours, or, at a foreign host, a number to dial out.
    fn note_redirect(&mut self, key: CallKey, leg: usize, rsp: &Response) {
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        let Some(BTarget::Device { user }) = call.leg(leg).map(|b| b.target.clone()) else {
            return;
        };
        if call.redirect.is_some() {
            return;
        }
        let Ok(mss_sip::Contacts::List(contacts)) = rsp.headers().contacts() else {
            return;
        };
        let prefix = self.calls.settings.outgroup_prefix.clone();
        let target = contacts.iter().find_map(|c| match &c.addr.uri {
            mss_sip::Uri::Sip(u) => {
                let name = u.user?;
                if self.domains.is_local(u.host) {
                    self.target_of(name).map(|_| name.to_owned())
                } else {
                    let dial = format!("{prefix}{name}");
                    matches!(
                        self.target_of(&dial),
                        Some(super::admission::Target::Out(_))
                    )
                    .then_some(dial)
                }
            }
            mss_sip::Uri::Tel(t) => {
                let dial = format!("{prefix}{}", t.number);
                matches!(
                    self.target_of(&dial),
                    Some(super::admission::Target::Out(_))
                )
                .then_some(dial)
            }
            _ => None,
        });
        if let (Some(to), Some(call)) = (target, self.calls.table.get_mut(&key)) {
            call.redirect = Some((user, to));
        }
    }

    /// Sends B leg `leg`'s INVITE again with line `line`'s credentials for the challenge
    /// in `rsp`; false when it cannot be answered.
    fn retry_with_credentials(
        &mut self,
        now: Now,
        key: CallKey,
        leg: usize,
        line: usize,
        rsp: &Response,
    ) -> bool {
        let Some(out) = self.lines.line_out(line) else {
            return false;
        };
        let (challenge_header, credentials_header) = if rsp.status().as_u16() == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let Ok(list) = mss_services::lines::digest_challenges(rsp, &challenge_header) else {
            return false;
        };
        let mut client = mss_auth::DigestClient::new(&out.username, &out.password);
        if client
            .handle_challenges(
                list.iter()
                    .map(|c| c.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
            )
            .is_err()
        {
            return false;
        }
        let Some(invite) = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.leg(leg))
            .map(|b| b.invite.clone())
        else {
            return false;
        };
        let Ok(uri) = invite.uri_str().map(str::to_owned) else {
            return false;
        };
        let Ok(Some(value)) = client.authorize("INVITE", &uri, &mut self.rng) else {
            return false;
        };
        let Some(next) = with_credentials(
            &invite,
            credentials_header,
            value,
            &self.calls.branch_prefix,
            &mut self.rng,
        ) else {
            return false;
        };
        let flow = match self.calls.table.get(&key).and_then(|c| c.leg(leg)) {
            Some(b) => b.flow,
            None => return false,
        };
        tracing::debug!(line = %out.name, "answering the provider's challenge for a call");
        if let Some(b) = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.b.get_mut(leg))
        {
            b.authenticated = true;
        }
        self.resend_b_invite(now, key, leg, next, flow)
    }

    /// Sends `next` (B leg `leg`'s INVITE again, as a new transaction: with credentials,
    /// or with another session interval) over `flow`; it becomes the leg's INVITE. False
    /// when it could not be sent.
    pub(crate) fn resend_b_invite(
        &mut self,
        now: Now,
        key: CallKey,
        leg: usize,
        next: mss_sip::Request,
        flow: mss_sip::Flow,
    ) -> bool {
        let client = self.call_send(now, next.clone(), flow, CallClient::Invite { key, leg });
        let Some(b) = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.b.get_mut(leg))
        else {
            return false;
        };
        b.invite = next;
        match client {
            Some(id) => {
                b.client = Some(id);
                b.state = BState::Calling;
                true
            }
            None => false,
        }
    }

    /// Cancels B leg `leg` if its INVITE is in progress: now when it had a provisional
    /// response, else as soon as one comes (RFC 3261 §9.1).
    pub(crate) fn cancel_leg(&mut self, now: Now, key: CallKey, leg: usize) {
        let Some(b) = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.b.get_mut(leg))
        else {
            return;
        };
        if !b.pending() || b.cancelled {
            return;
        }
        if b.state == BState::Calling {
            b.cancel_pending = true;
        } else {
            self.send_cancel(now, key, leg);
        }
    }

    /// Sends the CANCEL of B leg `leg`'s INVITE.
    fn send_cancel(&mut self, now: Now, key: CallKey, leg: usize) {
        let Some(b) = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| c.b.get_mut(leg))
        else {
            return;
        };
        b.cancel_pending = false;
        b.cancelled = true;
        let (cancel, flow, client) = (cancel_for(&b.invite), b.flow, b.client);
        if let Some(cancel) = cancel {
            self.call_send(now, cancel, flow, CallClient::Cancel);
        }
        if let Some(id) = client {
            self.calls.guard(id, now.mono + CANCEL_GUARD);
        }
    }

    /// Acknowledges the `2xx` of dialog `dialog` (INVITE CSeq `cseq`) and ends the dialog
    /// with BYE: a fork that answered too late (RFC 3261 §13.2.2.4).
    pub(crate) fn ack_and_bye(&mut self, now: Now, dialog: &DialogId, cseq: u32) {
        if let Err(e) = self.dialogs.ack(dialog, cseq, &mut self.rng) {
            tracing::debug!(error = %e, "ACK not sent");
        }
        self.drain_dialogs(now);
        self.send_bye(now, dialog);
    }

    /// Sends BYE in `dialog` (its answer removes the dialog). While our `2xx` in it waits
    /// for its ACK the BYE waits too and goes with the ACK (RFC 3261 §15).
    pub(crate) fn send_bye(&mut self, now: Now, dialog: &DialogId) {
        let Some(flow) = self.calls.dialog_flow.get(dialog).copied() else {
            self.forget_dialog(now, dialog);
            return;
        };
        match self.dialogs.request(dialog, Method::Bye, &mut self.rng) {
            Ok(bye) => {
                let sent = self.call_send(
                    now,
                    bye,
                    flow,
                    CallClient::Bye {
                        dialog: dialog.clone(),
                    },
                );
                if sent.is_none() {
                    self.forget_dialog(now, dialog);
                }
            }
            Err(mss_dialog::DialogError::AwaitingAck) => {
                self.calls.bye_on_ack.insert(dialog.clone());
            }
            Err(mss_dialog::DialogError::ByeInEarlyDialog) => {
                // The caller's 2xx still waits for a PRACK (RFC 3262 §3): its INVITE ends
                // with a final failure instead (`reliable.rs`).
                self.end_unsent_answer(now, dialog);
                self.forget_dialog(now, dialog);
            }
            Err(e) => {
                tracing::debug!(error = %e, "BYE not sent");
                self.forget_dialog(now, dialog);
            }
        }
    }

    /// The caller gets the best failure of the B legs (or `480` when there is none) and
    /// the call ends.
    pub(crate) fn answer_caller_with_best(&mut self, now: Now, key: CallKey) {
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        if call.a.answered {
            return;
        }
        let best = call.best.take();
        let (status, reason, source) = match &best {
            Some(b) => {
                let (status, fixed) = for_caller(b.status().as_u16());
                let reason = match fixed {
                    Some(r) => r.to_owned(),
                    None => String::from_utf8_lossy(b.reason()).into_owned(),
                };
                (status, reason, Some(b))
            }
            None => (
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "Temporarily Unavailable".to_owned(),
                None,
            ),
        };
        let Some(mut rsp) = self.a_response(key, status, &reason) else {
            return;
        };
        if let Some(src) = source {
            for name in FAILURE_HEADERS {
                if let Some(v) = src.headers().get(&name) {
                    rsp.headers_mut().push(name, Bytes::copy_from_slice(v));
                }
            }
        }
        self.send_to_a(now, key, rsp);
        self.end_call(now, key, status.as_u16(), mss_store::EndedBy::Callee);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_failure_follows_rfc_3261_16_7() {
        let best = |codes: &[u16]| *codes.iter().min_by_key(|c| rank(**c)).unwrap();
        assert_eq!(best(&[404, 486, 603]), 603);
        assert_eq!(best(&[408, 486, 404]), 486);
        assert_eq!(best(&[503, 404]), 404);
        assert_eq!(best(&[407, 503]), 503);
        assert_eq!(best(&[408, 503]), 503);
    }

    #[test]
    fn the_caller_never_gets_a_devices_challenge() {
        assert_eq!(for_caller(407).0, StatusCode::FORBIDDEN);
        assert_eq!(for_caller(302).0, StatusCode::TEMPORARILY_UNAVAILABLE);
        assert_eq!(for_caller(486).0, StatusCode::BUSY_HERE);
    }
}
