//! Requests within a call's dialogs (DESIGN §8, RFC 3261 §12.2.2, §14, §15):
//!
//! - the dialog layer answers what it decides itself: `481` for an unknown dialog, `500`
//!   out of order, `491` when a re-INVITE meets ours (glare);
//! - BYE: `200`, BYE on the other leg, the call ends (a BYE of the caller before the
//!   answer also ends its INVITE with `487`);
//! - re-INVITE, UPDATE (hold, resume, codec change: a new offer), INFO, MESSAGE, OPTIONS,
//!   NOTIFY: passed to the other leg as a new request of its dialog with the body, and
//!   its final answer back (with the body: the answer to the offer). A re-INVITE's `2xx`
//!   is acknowledged on the other leg when the ACK comes (which may carry the answer).
//!   A `491` on the other leg is not passed back: the request is sent again there after
//!   the RFC 3261 §14.1 wait. Before the answer, UPDATE and INFO go between the early
//!   dialogs (RFC 3311 §5.1): the caller's to the callee's dialog whose `18x` with a
//!   session description it got last, a callee's to the caller; anything else gets `503`;
//! - REFER: a transfer (`transfer.rs`); SUBSCRIBE to `refer`: a refresh of its
//!   subscription;
//! - ACK: the one for our `2xx` lets the held ACK of the other leg go.

use mss_dialog::{DialogId, RequestOutcome, ResponseEffect, ResponseOutcome};
use mss_services::Now;
use mss_sip::{HeaderName, Method, Request, Response, StatusCode};
use mss_store::EndedBy;
use mss_txn::ServerTransactionId;

use super::model::{AckRelay, HeldRequest, Side};
use super::outgoing::{copy_body_request, copy_body_response};
use super::{CallClient, CallKey};
use crate::core::Core;

/// Headers of the other leg's final answer the requester gets too.
const ANSWER_HEADERS: [HeaderName; 4] = [
    HeaderName::Warning,
    HeaderName::RetryAfter,
    HeaderName::Unsupported,
    HeaderName::Allow,
];

impl Core {
    /// A request with a To tag (within a dialog) that passed the prechecks.
    pub(crate) fn on_in_dialog_request(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        req: &Request,
    ) {
        let outcome = self.dialogs.handle_request_at(now.mono, req, &mut self.rng);
        // What a PRACK lets out (the next reliable 18x, the 2xx that waited) goes after
        // the PRACK's own 200 (`on_prack`).
        if *req.method() != Method::Prack {
            self.drain_dialogs(now);
        }
        let id = match outcome {
            RequestOutcome::InDialog { id, .. } => id,
            RequestOutcome::Reject(r) => {
                self.drain_dialogs(now);
                let tag = req
                    .headers()
                    .to_tag()
                    .ok()
                    .flatten()
                    .map(str::to_owned)
                    .unwrap_or_default();
                self.respond(now, server, r.response(req, &tag));
                return;
            }
            RequestOutcome::OutOfDialog | RequestOutcome::Ack { .. } | RequestOutcome::StrayAck => {
                self.drain_dialogs(now);
                return;
            }
        };
        if *req.method() == Method::Prack {
            self.on_prack(now, server, req, &id);
            return;
        }
        let Some((key, side)) = self.calls.by_dialog.get(&id).copied() else {
            // A dialog whose call is over (its BYE is on the way): nothing to pass on.
            let rsp = self.in_dialog_answer(&id, req, StatusCode::OK, "OK");
            self.respond(now, server, rsp);
            if *req.method() == Method::Bye {
                self.forget_dialog(now, &id);
            }
            return;
        };
        if matches!(req.method(), Method::Invite | Method::Update) {
            // A session refresh below mss's Min-SE (RFC 4028 §9): 422 here, as for a new
            // INVITE; nothing goes to the other leg.
            if let Err(rsp) = self.check_session_expires(req) {
                self.respond_in_dialog(now, &id, server, *rsp);
                return;
            }
        }
        match req.method() {
            Method::Bye => self.on_bye(now, server, req, key, side, &id),
            Method::Refer => self.on_refer(now, server, req, key, side, &id),
            Method::Subscribe if super::transfer::is_refer_event(req) => {
                self.on_in_dialog_subscribe(now, server, req, key, &id);
            }
            Method::Update if req.body().is_empty() => {
                // A session refresh without offer (RFC 4028 §7.4, RFC 3311): nothing for
                // the other leg; answered here, the leg's session timer starts again.
                let mut rsp = self.in_dialog_answer(&id, req, StatusCode::OK, "OK");
                self.session_timer_answer(now, key, &id, req, &mut rsp);
                self.respond(now, server, rsp);
            }
            _ => {
                let held = HeldRequest {
                    server,
                    request: req.clone(),
                    from: side,
                    dialog: id.clone(),
                };
                self.forward(now, key, held, &id);
            }
        }
    }

    /// A response of dialog `id` to `req`, for requests answered here at once.
    pub(crate) fn in_dialog_answer(
        &self,
        id: &DialogId,
        req: &Request,
        status: StatusCode,
        reason: &str,
    ) -> Response {
        self.dialogs
            .response(id, req, status, reason)
            .unwrap_or_else(|_| Response::for_request(req, status, reason.to_owned()))
    }

    /// The dialog of the leg that sent `held` (call `key`), if that leg is still there:
    /// its confirmed dialog, or before the answer the early dialog it came in.
    fn requester_dialog(&self, key: CallKey, held: &HeldRequest) -> Option<DialogId> {
        let call = self.calls.table.get(&key)?;
        match call.dialog_of(held.from) {
            Some(d) => Some(d.clone()),
            None if call.winner.is_none() => Some(held.dialog.clone()),
            None => None,
        }
    }

    /// BYE from `side` in dialog `id` of call `key`.
    fn on_bye(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        req: &Request,
        key: CallKey,
        side: Side,
        id: &DialogId,
    ) {
        let rsp = self.in_dialog_answer(id, req, StatusCode::OK, "OK");
        self.respond(now, server, rsp);
        self.forget_dialog(now, id);
        let by = match side {
            Side::A => EndedBy::Caller,
            Side::B(_) => EndedBy::Callee,
        };
        let answered = self
            .calls
            .table
            .get(&key)
            .is_some_and(|c| c.winner.is_some());
        if let Some(call) = self.calls.table.get_mut(&key) {
            if call.a.dialog.as_ref() == Some(id) {
                call.a.dialog = None;
            }
        }
        if self.transferor_left(key, side, id) {
            return;
        }
        if answered {
            tracing::debug!(by = by.as_str(), "BYE");
            self.hang_up(now, key, Some(side), by);
        } else if side == Side::A {
            // RFC 3261 §15.1.2: a BYE of the caller on an early dialog; its INVITE still
            // needs its final answer.
            if let Some(call) = self.calls.table.get(&key) {
                let server = call.a.server;
                let rsp = Response::for_request_with_to_tag(
                    &call.a.invite,
                    StatusCode::REQUEST_TERMINATED,
                    "Request Terminated",
                    id.local_tag().as_bytes(),
                );
                let legs = call.b.len();
                if !call.a.answered {
                    if let Some(c) = self.calls.table.get_mut(&key) {
                        c.a.answered = true;
                    }
                    self.respond(now, server, rsp);
                }
                for leg in 0..legs {
                    self.cancel_leg(now, key, leg);
                }
            }
            self.end_call(now, key, 487, by);
            self.finish_if_done(now, key);
        }
    }

    /// Passes `held.request` (received in dialog `from_dialog`) to the other leg of call
    /// `key`.
    fn forward(&mut self, now: Now, key: CallKey, held: HeldRequest, from_dialog: &DialogId) {
        let early = self
            .calls
            .table
            .get(&key)
            .is_some_and(|c| c.winner.is_none());
        let target = self.calls.table.get(&key).and_then(|c| {
            let (other, dialog) = c.in_dialog_peer(held.from)?;
            Some((other, dialog, c.flow_of(other)?))
        });
        // Before the answer only requests an early dialog allows go on (UPDATE, INFO, …:
        // RFC 3311 §5.1); an INVITE could not (its own INVITE is still in progress).
        let target = target.filter(|_| !(early && *held.request.method() == Method::Invite));
        let Some((other, to_dialog, flow)) = target else {
            // Before the answer there is no other dialog to pass it to.
            let rsp = self.in_dialog_answer(
                from_dialog,
                &held.request,
                StatusCode::SERVICE_UNAVAILABLE,
                "Not Before The Answer",
            );
            self.respond_in_dialog(now, from_dialog, held.server, rsp);
            return;
        };
        let method = held.request.method().clone();
        let request = match self
            .dialogs
            .request(&to_dialog, method.clone(), &mut self.rng)
        {
            Ok(mut r) => {
                copy_body_request(held.request.headers(), held.request.body(), &mut r);
                // A new offer (hold, resume, a new address): latching starts again.
                let body = self.relay_body(
                    key,
                    held.from,
                    other,
                    held.request.headers(),
                    held.request.body(),
                );
                r.set_body(body);
                self.add_session_refresh(&to_dialog, &mut r);
                r
            }
            Err(e) => {
                tracing::debug!(error = %e, %method, "request not passed on");
                let (status, reason) = match e {
                    mss_dialog::DialogError::InviteInProgress
                    | mss_dialog::DialogError::RetryScheduled => {
                        (StatusCode::REQUEST_PENDING, "Request Pending")
                    }
                    _ => (StatusCode::SERVER_INTERNAL_ERROR, "Server Internal Error"),
                };
                let rsp = self.in_dialog_answer(from_dialog, &held.request, status, reason);
                self.respond_in_dialog(now, from_dialog, held.server, rsp);
                return;
            }
        };
        let server = held.server;
        let is_invite = method == Method::Invite;
        let sent = self.call_send(
            now,
            request,
            flow,
            CallClient::Forward {
                key,
                held: Box::new(held.clone()),
                dialog: to_dialog,
            },
        );
        if let (Some(id), Some(call)) = (sent, self.calls.table.get_mut(&key)) {
            call.forwards.push(id);
        }
        if let (true, Some(id)) = (is_invite, sent) {
            // A peer that never answers a re-INVITE must not hold both legs forever.
            self.calls
                .guard(id, now.mono + self.calls.settings.ring_timeout);
        }
        if sent.is_none() {
            let rsp = self.in_dialog_answer(
                from_dialog,
                &held.request,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
            );
            self.respond_in_dialog(now, from_dialog, server, rsp);
        }
    }

    /// Answers server transaction `server` of a request in dialog `dialog`: an INVITE's
    /// answer through the dialog table (a `2xx` is kept going until its ACK), any other
    /// straight.
    fn respond_in_dialog(
        &mut self,
        now: Now,
        dialog: &DialogId,
        server: ServerTransactionId,
        rsp: Response,
    ) {
        let is_invite = rsp
            .headers()
            .cseq()
            .is_ok_and(|c| c.method == Method::Invite);
        if is_invite && self.dialogs.get(dialog).is_some() {
            self.calls.reply_server.insert(dialog.clone(), server);
            if let Err(e) = self.dialogs.send_response(now.mono, dialog, rsp) {
                tracing::debug!(error = %e, "in-dialog answer not sent");
            }
            self.drain_dialogs(now);
        } else {
            self.respond(now, server, rsp);
        }
    }

    /// The final answer (or `None`: a transport error) of a request passed on in dialog
    /// `dialog`.
    pub(crate) fn on_forward_response(
        &mut self,
        now: Now,
        key: CallKey,
        held: HeldRequest,
        dialog: DialogId,
        response: Option<Response>,
    ) {
        let rsp = response.unwrap_or_else(|| {
            Response::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        });
        let status = rsp.status().as_u16();
        let outcome = self.dialogs.handle_response(now.mono, &rsp, &mut self.rng);
        self.drain_dialogs(now);
        let effect = match outcome {
            Ok(ResponseOutcome::Applied { effect, .. }) => Some(effect),
            _ => None,
        };
        if status < 200 {
            return;
        }
        let from_dialog = self.requester_dialog(key, &held);
        let Some(from_dialog) = from_dialog else {
            // The requester's leg is gone: acknowledge a 2xx all the same, and still give
            // the request its final answer (its transaction waits for one).
            if let Some(ResponseEffect::AckNeeded { cseq, .. }) = effect {
                let _ = self.dialogs.ack(&dialog, cseq, &mut self.rng);
                self.drain_dialogs(now);
            }
            let reason = String::from_utf8_lossy(rsp.reason()).into_owned();
            let answer = Response::for_request(&held.request, rsp.status(), reason);
            self.respond(now, held.server, answer);
            return;
        };
        match effect {
            Some(ResponseEffect::GlareRetry { .. }) => {
                // RFC 3261 §14.1: the 491 is ours to handle; the request goes again later.
                self.calls.held.insert(dialog, (key, held));
                return;
            }
            Some(ResponseEffect::AckNeeded { cseq, .. }) => {
                // What a re-INVITE refresh repeats: the offer as this leg got it (pointed
                // at the relay), not as the other leg sent it.
                let passed = match self.calls.table.get(&key).and_then(|c| c.other(held.from)) {
                    Some(to) => {
                        self.relayed_body(key, to, held.request.headers(), held.request.body())
                    }
                    None => held.request.body().clone(),
                };
                let sent = super::session_timer::body_of(held.request.headers(), &passed);
                self.session_timer_2xx(now, key, &dialog, &rsp, sent);
                if let Some(call) = self.calls.table.get_mut(&key) {
                    call.codec.answered(rsp.body());
                    call.ack_relay = Some(AckRelay {
                        from: from_dialog.clone(),
                        to: dialog.clone(),
                        cseq,
                    });
                }
            }
            Some(ResponseEffect::Terminated) => {
                tracing::info!(status, "the other leg's dialog ended: ending the call");
            }
            _ if (200..300).contains(&status) && held.request.method() == &Method::Update => {
                self.session_timer_2xx(now, key, &dialog, &rsp, None);
            }
            _ => {}
        }
        let reason = String::from_utf8_lossy(rsp.reason()).into_owned();
        let mut answer = self.in_dialog_answer(&from_dialog, &held.request, rsp.status(), &reason);
        copy_body_response(rsp.headers(), rsp.body(), &mut answer);
        let answerer = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.in_dialog_peer(held.from))
            .map(|(side, _)| side);
        if let Some(answerer) = answerer {
            let body = self.relay_body(key, answerer, held.from, rsp.headers(), rsp.body());
            answer.set_body(body);
        }
        for name in ANSWER_HEADERS {
            if let Some(v) = rsp.headers().get(&name) {
                answer
                    .headers_mut()
                    .replace(name, bytes::Bytes::copy_from_slice(v));
            }
        }
        let refresh = matches!(held.request.method(), Method::Invite | Method::Update);
        if refresh && (200..300).contains(&status) {
            self.session_timer_answer(now, key, &from_dialog, &held.request, &mut answer);
        }
        self.respond_in_dialog(now, &from_dialog, held.server, answer);
        if matches!(effect, Some(ResponseEffect::Terminated)) {
            self.forget_dialog(now, &dialog);
            let other = self.calls.table.get(&key).and_then(|c| c.other(held.from));
            self.hang_up(now, key, other, EndedBy::Mss);
        }
    }

    /// The glare wait of dialog `id` is over: the held request goes again.
    pub(crate) fn retry_held(&mut self, now: Now, id: &DialogId) {
        let Some((key, held)) = self.calls.held.remove(id) else {
            return;
        };
        let from_dialog = self.requester_dialog(key, &held);
        match from_dialog {
            Some(from_dialog) => self.forward(now, key, held, &from_dialog),
            // The requester's leg ended meanwhile; its request still gets a final answer.
            None => self.answer_held(now, &held),
        }
    }

    /// Answers a held request whose call ended: `487 Request Terminated` (RFC 3261 §15.1.2
    /// answers a pending request of an ended dialog so).
    pub(crate) fn answer_held(&mut self, now: Now, held: &HeldRequest) {
        let rsp = Response::for_request(
            &held.request,
            StatusCode::REQUEST_TERMINATED,
            "Request Terminated",
        );
        self.respond(now, held.server, rsp);
    }

    /// An ACK that reached the call service (the ACK for a `2xx`, or a stray one).
    pub(crate) fn on_call_ack(&mut self, now: Now, ack: &Request) {
        let outcome = self.dialogs.handle_request(ack, &mut self.rng);
        self.drain_dialogs(now);
        let RequestOutcome::Ack { id, first: true } = outcome else {
            return;
        };
        if self.calls.bye_on_ack.remove(&id) {
            self.send_bye(now, &id);
        }
        let Some((key, side)) = self.calls.by_dialog.get(&id).copied() else {
            return;
        };
        let relay = match self.calls.table.get_mut(&key) {
            Some(call) if call.ack_relay.as_ref().is_some_and(|r| r.from == id) => {
                call.ack_relay.take()
            }
            _ => None,
        };
        if let Some(relay) = relay {
            let built = self
                .dialogs
                .get(&relay.to)
                .map(|d| d.ack(relay.cseq, &mut self.rng));
            let to = self.calls.by_dialog.get(&relay.to).map(|(_, s)| *s);
            if let Some(mut out) = built {
                copy_body_request(ack.headers(), ack.body(), &mut out);
                if let Some(to) = to {
                    // The answer to a delayed offer (RFC 3264 §5) rides in the ACK.
                    let body = self.relay_body(key, side, to, ack.headers(), ack.body());
                    out.set_body(body);
                }
                // An answer to a delayed offer: what a re-INVITE refresh repeats.
                self.session_timer_sent(&relay.to, &out);
                if let Err(e) = self.dialogs.send_ack(&relay.to, out) {
                    tracing::debug!(error = %e, "ACK not relayed");
                }
                self.drain_dialogs(now);
            }
        }
    }

    /// A response (or `None`) to a BYE mss sent in `dialog`: the dialog is over.
    pub(crate) fn on_bye_response(
        &mut self,
        now: Now,
        dialog: &DialogId,
        response: Option<Response>,
    ) {
        if let Some(rsp) = response {
            if rsp.status().as_u16() < 200 {
                return;
            }
            let _ = self.dialogs.handle_response(now.mono, &rsp, &mut self.rng);
            self.drain_dialogs(now);
        }
        self.forget_dialog(now, dialog);
    }
}
