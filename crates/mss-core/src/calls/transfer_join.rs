//! Joining a new party to a transfer's transferee, and the end of a transfer (RFC 3515,
//! DESIGN §8).
//!
//! The joining party is the target of a blind transfer (its transfer call's `2xx`) or, in
//! an attended transfer, the party on the other side of the dialog the `Replaces` named
//! (asked first with an INVITE without offer). Its `2xx` carries an offer (RFC 3264 §5:
//! an INVITE without offer gets one in the `2xx` and the answer in the ACK). The
//! transferee is re-INVITEd with that offer; its `2xx` carries the answer, which goes to
//! the joining party in the ACK its `2xx` waited for. Both sides thus renegotiate with a
//! proper offer and answer, as RFC 3725 §4.1 (flow I) does for third-party call control;
//! a re-INVITE with the target's SDP as offer needs no more of the transferee than any
//! hold or codec change does, which every phone supports. The `o=` line the transferee
//! sees changes its origin (the media relay rewrites it when it is on).
//!
//! Then the joining party takes the transferor's place in the transferee's call, the
//! transferor gets the last NOTIFY (`200 OK`) and then BYE, and the call the joining party
//! came from ends without it. A failure on the way ends the transfer with the status in
//! the last NOTIFY and leaves the call as it was (or ends it when the transferor left).

use mss_dialog::{DialogId, ResponseEffect, ResponseOutcome};
use mss_services::Now;
use mss_sip::{Method, Response, StatusCode};
use mss_store::EndedBy;

use super::model::{BLeg, BTarget, Side};
use super::outgoing::copy_body_request;
use super::replaces::ReplacesValue;
use super::transfer::{Step, Transfer};
use super::{CallClient, CallKey};
use crate::core::Core;

/// The status of a transfer failure without a response (a timeout or a transport error).
const NO_ANSWER: (u16, &str) = (408, "Request Timeout");

impl Core {
    /// The party an attended transfer of call `key` (REFER from `side`) joins to the
    /// transferee: the other side of the transferor's dialog that `replaces` names (RFC
    /// 3891 §3: `481` for no such dialog or an early one, `603` for a terminated one,
    /// `486` for `early-only` and a confirmed one, `403` when it is not the transferor's).
    pub(crate) fn attended_source(
        &self,
        key: CallKey,
        side: Side,
        replaces: &ReplacesValue,
    ) -> Result<(CallKey, Side, DialogId), (StatusCode, &'static str)> {
        let named = replaces.dialog_id();
        let gone = (
            StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST,
            "Call/Transaction Does Not Exist",
        );
        let Some((other_key, other_side)) = self.calls.by_dialog.get(&named).copied() else {
            return Err(gone);
        };
        match self.dialogs.get(&named).map(mss_dialog::Dialog::state) {
            None | Some(mss_dialog::DialogState::Early) => return Err(gone),
            Some(mss_dialog::DialogState::Terminated) => {
                return Err((StatusCode::DECLINE, "Decline"))
            }
            Some(mss_dialog::DialogState::Confirmed) if replaces.early_only => {
                return Err((StatusCode::BUSY_HERE, "Busy Here"))
            }
            Some(mss_dialog::DialogState::Confirmed) => {}
        }
        if other_key == key {
            return Err((StatusCode::FORBIDDEN, "Cannot Replace Its Own Call"));
        }
        if self.calls.transfers.by_call.contains_key(&other_key)
            || self.calls.transfers.is_sub(other_key)
        {
            return Err((StatusCode::REQUEST_PENDING, "Transfer In Progress"));
        }
        if self.leg_user(other_key, other_side) != self.leg_user(key, side) {
            return Err((StatusCode::FORBIDDEN, "Not The Transferor's Call"));
        }
        let call = self.calls.table.get(&other_key).ok_or(gone)?;
        if call.dialog_of(other_side) != Some(&named) {
            return Err(gone);
        }
        let joining = call.other(other_side).ok_or(gone)?;
        let dialog = call.dialog_of(joining).cloned().ok_or(gone)?;
        Ok((other_key, joining, dialog))
    }

    /// Attended transfer of call `key`: the INVITE without offer to the joining party in
    /// `dialog`.
    pub(crate) fn ask_for_offer(&mut self, now: Now, key: CallKey, dialog: &DialogId) {
        let Some(flow) = self.flow_of_dialog(dialog) else {
            self.transfer_failed(now, key, 481, "Call/Transaction Does Not Exist", false);
            return;
        };
        let mut invite = match self.dialogs.request(dialog, Method::Invite, &mut self.rng) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "the joining party cannot be re-INVITEd now");
                self.transfer_failed(now, key, 491, "Request Pending", false);
                return;
            }
        };
        self.add_session_refresh(dialog, &mut invite);
        self.send_transfer_invite(now, key, invite, flow);
    }

    /// Sends a transfer's re-INVITE, guarded like every re-INVITE mss passes on.
    fn send_transfer_invite(
        &mut self,
        now: Now,
        key: CallKey,
        invite: mss_sip::Request,
        flow: mss_sip::Flow,
    ) {
        match self.call_send(now, invite, flow, CallClient::Transfer { key }) {
            Some(id) => {
                let at = now.mono + self.calls.settings.ring_timeout;
                self.calls.guard(id, at);
            }
            None => self.transfer_failed(now, key, 503, "Service Unavailable", false),
        }
    }

    /// The joining party (`dialog`, `side` of call `from`) answered INVITE `cseq` with
    /// `rsp` (a `2xx` with its offer): the transferee of call `key` is re-INVITEd with it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_joining(
        &mut self,
        now: Now,
        key: CallKey,
        from: CallKey,
        side: Side,
        dialog: DialogId,
        cseq: u32,
        rsp: &Response,
    ) {
        let z_flow = self.flow_of_dialog(&dialog);
        let Some(t) = self.calls.transfers.by_call.get_mut(&key) else {
            return;
        };
        t.step = Step::Joining {
            from,
            side,
            dialog,
            cseq,
            offer: None,
            sdp: rsp.body().clone(),
        };
        let transferor = t.transferor;
        if rsp.body().is_empty() {
            // RFC 3264 §5: the 2xx to an INVITE without offer must carry one.
            self.transfer_failed(now, key, 488, "Not Acceptable Here", false);
            return;
        }
        let transferee = self.calls.table.get(&key).and_then(|c| {
            let side = c.other(transferor)?;
            Some((c.dialog_of(side)?.clone(), c.flow_of(side)?))
        });
        let (Some((y_dialog, y_flow)), Some(z_flow)) = (transferee, z_flow) else {
            self.transfer_failed(now, key, 481, "Call/Transaction Does Not Exist", false);
            return;
        };
        let y_side = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.other(transferor))
            .unwrap_or(Side::A);
        // With the media relay the joining party takes the transferor's relay leg: the
        // transferee's ports at mss stay, its offer points at them (`media.rs`).
        let body = self.relay_body_over(
            key,
            (transferor, z_flow),
            (y_side, y_flow),
            rsp.headers(),
            rsp.body(),
        );
        if let Some(Transfer {
            step: Step::Joining { offer, .. },
            ..
        }) = self.calls.transfers.by_call.get_mut(&key)
        {
            *offer = super::session_timer::body_of(rsp.headers(), &body);
        }
        let mut invite = match self
            .dialogs
            .request(&y_dialog, Method::Invite, &mut self.rng)
        {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "the transferee cannot be re-INVITEd now");
                self.transfer_failed(now, key, 491, "Request Pending", false);
                return;
            }
        };
        copy_body_request(rsp.headers(), &body, &mut invite);
        self.add_session_refresh(&y_dialog, &mut invite);
        self.send_transfer_invite(now, key, invite, y_flow);
    }

    /// Whether call `from` still has `dialog` on `side`.
    fn still_there(&self, from: CallKey, side: Side, dialog: &DialogId) -> bool {
        self.calls
            .table
            .get(&from)
            .and_then(|c| c.dialog_of(side))
            .is_some_and(|d| d == dialog)
    }

    /// The final answer (or `None`) of a re-INVITE of call `key`'s transfer: the joining
    /// party's offer (attended), or the transferee's answer.
    pub(crate) fn on_transfer_reinvite_response(
        &mut self,
        now: Now,
        key: CallKey,
        response: Option<Response>,
    ) {
        let mut applied: Option<(DialogId, ResponseEffect)> = None;
        if let Some(rsp) = &response {
            if let Ok(ResponseOutcome::Applied { id, effect }) =
                self.dialogs.handle_response(now.mono, rsp, &mut self.rng)
            {
                applied = Some((id, effect));
            }
            self.drain_dialogs(now);
        }
        let (status, reason) = match &response {
            Some(r) => (
                r.status().as_u16(),
                String::from_utf8_lossy(r.reason()).into_owned(),
            ),
            None => (NO_ANSWER.0, NO_ANSWER.1.to_owned()),
        };
        let ack = match &applied {
            Some((id, ResponseEffect::AckNeeded { cseq, .. })) => Some((id.clone(), *cseq)),
            _ => None,
        };
        if let Some((id, ResponseEffect::GlareRetry { .. })) = &applied {
            // RFC 3261 §14.1 would retry it; a transfer gives up instead.
            self.dialogs.cancel_reinvite_retry(id);
        }
        let step = self
            .calls
            .transfers
            .by_call
            .get(&key)
            .map(|t| t.step.clone());
        match (step, response) {
            (Some(Step::Asking { from, side, dialog }), Some(rsp))
                if ack.as_ref().is_some_and(|(id, _)| *id == dialog)
                    && self.still_there(from, side, &dialog) =>
            {
                let cseq = ack.map_or(0, |(_, c)| c);
                self.session_timer_2xx(now, from, &dialog, &rsp, None);
                self.start_joining(now, key, from, side, dialog, cseq, &rsp);
            }
            (
                Some(Step::Joining {
                    from,
                    side,
                    dialog,
                    cseq,
                    offer,
                    ..
                }),
                Some(rsp),
            ) if ack.is_some() => {
                if let Some((y, y_cseq)) = &ack {
                    // The transferee's 2xx carries the answer: its ACK carries nothing.
                    let _ = self.dialogs.ack(y, *y_cseq, &mut self.rng);
                    self.session_timer_2xx(now, key, y, &rsp, offer);
                }
                let built = self
                    .dialogs
                    .get(&dialog)
                    .map(|d| d.ack(cseq, &mut self.rng));
                // With the relay: the transferee's answer points the joining party at the
                // transferor's relay leg of this call.
                let transferor = self.calls.transfers.by_call.get(&key).map(|t| t.transferor);
                let ends = transferor.and_then(|x| {
                    let c = self.calls.table.get(&key)?;
                    let y = c.other(x)?;
                    Some(((y, c.flow_of(y)?), (x, self.flow_of_dialog(&dialog)?)))
                });
                let body = match ends {
                    Some((y, z)) => self.relay_body_over(key, y, z, rsp.headers(), rsp.body()),
                    None => rsp.body().clone(),
                };
                if let Some(mut z_ack) = built {
                    copy_body_request(rsp.headers(), &body, &mut z_ack);
                    self.session_timer_sent(&dialog, &z_ack);
                    if let Err(e) = self.dialogs.send_ack(&dialog, z_ack) {
                        tracing::debug!(error = %e, "ACK with the transferee's answer not sent");
                    }
                }
                self.drain_dialogs(now);
                if self.still_there(from, side, &dialog) {
                    self.complete_transfer(now, key);
                } else {
                    self.transfer_failed(now, key, 487, "Request Terminated", false);
                }
            }
            (_, _) => {
                if let Some((id, cseq)) = &ack {
                    // A 2xx is acknowledged whatever becomes of it.
                    let _ = self.dialogs.ack(id, *cseq, &mut self.rng);
                    self.drain_dialogs(now);
                }
                let status = if (200..300).contains(&status) {
                    500
                } else {
                    status
                };
                let terminated = matches!(&applied, Some((_, ResponseEffect::Terminated)));
                self.transfer_failed(now, key, status, &reason, false);
                if terminated {
                    // The transferee's dialog is gone (RFC 3261 §12.2.1.2): so is its call.
                    if let Some((id, _)) = &applied {
                        self.forget_dialog(now, id);
                    }
                    self.hang_up(now, key, None, EndedBy::Mss);
                }
            }
        }
    }

    /// The joining party takes the transferor's place in call `key` (see the module docs).
    fn complete_transfer(&mut self, now: Now, key: CallKey) {
        let Some(t) = self.calls.transfers.by_call.remove(&key) else {
            return;
        };
        let Step::Joining {
            from,
            side,
            dialog,
            sdp,
            ..
        } = t.step.clone()
        else {
            return;
        };
        // Out of the call it came from.
        let Some(src) = self.calls.table.get_mut(&from) else {
            return;
        };
        let (flow, invite, target) = match side {
            Side::A => {
                src.a.dialog = None;
                let target = match &src.caller_user {
                    Some(user) => BTarget::Device { user: user.clone() },
                    // A line's caller: no line of ours to try again (`usize::MAX`).
                    None => BTarget::Line {
                        line: usize::MAX,
                        number: src.record.caller.clone(),
                    },
                };
                (src.a.flow, src.a.invite.clone(), target)
            }
            Side::B(i) => {
                let Some(b) = src.b.get_mut(i) else {
                    return;
                };
                b.confirmed = None;
                b.dialogs.retain(|d| *d != dialog);
                (b.flow, b.invite.clone(), b.target.clone())
            }
        };
        let codec = src.codec.get();
        let joining_user = match &target {
            BTarget::Device { user } => Some(user.clone()),
            BTarget::Line { .. } => None,
        };
        if let Some(user) = &joining_user {
            if let Some(at) = src.slots.iter().position(|u| u == user) {
                src.slots.remove(at);
            }
        }
        let transferor_user = self.leg_user(key, t.transferor);
        // Into the transferee's call, in the transferor's place.
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        if let Some(user) = joining_user {
            call.slots.push(user);
        }
        let released = transferor_user.clone().and_then(|user| {
            let at = call.slots.iter().position(|u| *u == user)?;
            Some(call.slots.remove(at))
        });
        if let Some(codec) = codec {
            call.codec.set(codec);
        }
        if call.record.transferred_by.is_none() {
            call.record.transferred_by.clone_from(&transferor_user);
        }
        let old = call.dialog_of(t.transferor).cloned();
        let new_side = match t.transferor {
            Side::A => {
                call.a.dialog = Some(dialog.clone());
                call.a.flow = flow;
                call.a.invite = invite;
                Side::A
            }
            Side::B(old_leg) => {
                if let Some(b) = call.b.get_mut(old_leg) {
                    b.confirmed = None;
                }
                let leg = call.b.len();
                call.b
                    .push(BLeg::joined(target, invite, flow, dialog.clone()));
                call.winner = Some(leg);
                Side::B(leg)
            }
        };
        tracing::info!(call = %call.record.id, "call transferred");
        if let Some(user) = released {
            self.calls.release_user_slot(&user);
        }
        self.calls.by_dialog.insert(dialog.clone(), (key, new_side));
        self.calls.session_timers.move_to_call(&dialog, key);
        self.calls.dialog_flow.insert(dialog, flow);
        if let Some(old) = old {
            // Its session timer must not end the call it left.
            self.calls.session_timers.remove(&old);
            if !sdp.is_empty() {
                let relatch = super::transfer::Relatch {
                    key,
                    side: new_side,
                    flow,
                    sdp,
                };
                self.calls.transfers.relatch.insert(old.clone(), relatch);
            }
            // The transferor's dialog is no longer the call's: what comes in it now is
            // answered as for a call that is over, and it ends after the last NOTIFY.
            self.calls.by_dialog.remove(&old);
        }
        if !t.transferor_gone {
            self.notify(now, &t.dialog, &t.event, "SIP/2.0 200 OK\r\n", true, true);
        }
        if self.calls.transfers.is_sub(from) {
            self.end_transfer_call(now, from);
        } else {
            // The transferor's other call (attended transfer): its leg ends too, and its
            // record says why.
            if let Some(src) = self.calls.table.get_mut(&from) {
                if src.record.transferred_by.is_none() {
                    src.record.transferred_by = transferor_user;
                }
            }
            self.hang_up(now, from, None, EndedBy::Mss);
        }
        self.publish_calls_active();
    }

    /// Ends the transfer of call `key` with `status`: the last NOTIFY says it, what was
    /// started for it ends; the call goes on, or ends when the transferor left (unless
    /// `ending`: it ends already).
    pub(crate) fn transfer_failed(
        &mut self,
        now: Now,
        key: CallKey,
        status: u16,
        reason: &str,
        ending: bool,
    ) {
        let Some(t) = self.calls.transfers.by_call.remove(&key) else {
            return;
        };
        tracing::info!(status, reason, "transfer failed");
        match t.step {
            Step::Ringing { sub } => self.end_transfer_call(now, sub),
            // The INVITE's answer finds no transfer and is acknowledged then.
            Step::Asking { .. } => {}
            Step::Joining {
                from, dialog, cseq, ..
            } => {
                // The offer of its 2xx is not answered (RFC 3261 §13.2.2.4: ACK, then BYE
                // for a target nobody wants; a party of another call stays in it).
                let _ = self.dialogs.ack(&dialog, cseq, &mut self.rng);
                self.drain_dialogs(now);
                if self.calls.transfers.is_sub(from) {
                    self.end_transfer_call(now, from);
                }
            }
        }
        if !t.transferor_gone {
            let reason = reason.replace(['\r', '\n'], " ");
            let frag = format!("SIP/2.0 {status} {reason}\r\n");
            self.notify(now, &t.dialog, &t.event, &frag, true, false);
        } else if !ending {
            tracing::info!("transfer failed after the transferor left: the call ends");
            self.hang_up(now, key, None, EndedBy::Mss);
        }
    }

    /// Call `key` ended: its transfer ends too.
    pub(crate) fn transfer_call_ended(&mut self, now: Now, key: CallKey) {
        if self.calls.transfers.by_call.contains_key(&key) {
            self.transfer_failed(now, key, 487, "Request Terminated", true);
        }
    }

    /// Call `key` left the table: a transfer call is forgotten, and a transfer that was
    /// joining a party of it fails.
    pub(crate) fn transfer_call_removed(&mut self, now: Now, key: CallKey) {
        self.calls.transfers.subs.remove(&key);
        self.calls.transfers.by_call.remove(&key);
        let waiting: Vec<CallKey> = self
            .calls
            .transfers
            .by_call
            .iter()
            .filter(|(_, t)| match t.step {
                Step::Ringing { sub } => sub == key,
                Step::Asking { from, .. } | Step::Joining { from, .. } => from == key,
            })
            .map(|(k, _)| *k)
            .collect();
        for parent in waiting {
            self.transfer_failed(now, parent, 487, "Request Terminated", false);
        }
    }
}
