//! An INVITE with `Replaces` (RFC 3891, DESIGN §8): a phone takes the place of a leg of a
//! call at mss (attended transfer done by the phones, a call moved to another device).
//!
//! RFC 3891 §3, in this order:
//! - more than one `Replaces` → `400`; one that does not parse → `400`; no Contact → `400`;
//! - the caller is authenticated as for any INVITE (`407`; a line's provider cannot replace
//!   legs: `403`) and its offer checked (`415`, `488`);
//! - the dialog is matched as a request in it would be (`to-tag` = mss's tag, `from-tag` =
//!   the peer's) among the legs of mss's calls: no match, a dialog that is not a call's
//!   current leg, or an early one → `481` (mss replaces no ringing leg: §3 allows only the
//!   UA that sent that INVITE to, and mss's early legs belong to unanswered calls); a
//!   terminated one → `603`; `early-only` and a confirmed one → `486`;
//! - the new caller must be the user of the leg it replaces, or bring a `Referred-By`
//!   naming that user (§3: "authenticated as equivalent to the user who is being replaced",
//!   or the Referred-By mechanism) → else `403`; a call with a transfer in progress `491`.
//!
//! Then the other party of that call is re-INVITEd with the new caller's offer (or
//! without one, for a delayed offer); its answer goes to the new caller in our `2xx`, the
//! new caller's ACK goes on to it; the new caller's dialog becomes the call's leg and the
//! replaced one gets BYE. A failure of the re-INVITE is the new caller's answer, and the
//! call stays as it was (§3: "MUST leave the matched dialog unchanged").

use bytes::Bytes;
use mss_dialog::{DialogId, LocalEnd, ResponseEffect, ResponseOutcome};
use mss_services::Now;
use mss_sip::{Flow, HeaderName, Method, Request, Response, StatusCode, Uri};
use mss_txn::ServerTransactionId;

use super::admission::Caller;
use super::model::{AckRelay, BLeg, BTarget, Side};
use super::outgoing::{addr_text, contact_uri, copy_body_request, copy_body_response};
use super::{CallClient, CallKey};
use crate::core::Core;

/// The `Replaces` header name (RFC 3891 §6.1).
pub(crate) fn replaces_header() -> HeaderName {
    HeaderName::from_bytes(Bytes::from_static(b"Replaces"))
}

/// A `Replaces` value: `call-id;to-tag=…;from-tag=…[;early-only]` (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplacesValue {
    /// The Call-ID of the dialog.
    pub(crate) call_id: String,
    /// The tag of the receiver of the INVITE (mss): its local tag.
    pub(crate) to_tag: String,
    /// The tag of the other end: the remote tag.
    pub(crate) from_tag: String,
    /// Replace only an early dialog.
    pub(crate) early_only: bool,
}

impl ReplacesValue {
    /// Parses a value; `None` without Call-ID or either tag.
    pub(crate) fn parse(value: &str) -> Option<ReplacesValue> {
        let mut parts = value.split(';');
        let call_id = parts.next()?.trim();
        if call_id.is_empty() {
            return None;
        }
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (name, val) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            if name.eq_ignore_ascii_case("to-tag") {
                to_tag = val;
            } else if name.eq_ignore_ascii_case("from-tag") {
                from_tag = val;
            } else if name.eq_ignore_ascii_case("early-only") {
                early_only = true;
            }
        }
        Some(ReplacesValue {
            call_id: call_id.to_owned(),
            to_tag: to_tag.filter(|t| !t.is_empty())?.to_owned(),
            from_tag: from_tag.filter(|t| !t.is_empty())?.to_owned(),
            early_only,
        })
    }

    /// The dialog it names, from mss's side.
    pub(crate) fn dialog_id(&self) -> DialogId {
        DialogId::new(&self.call_id, &self.to_tag, &self.from_tag)
    }
}

/// The `Replaces` of the headers part of a URI (`Replaces=…&…`, RFC 3261 §19.1.1),
/// unescaped; `None` when there is none.
pub(crate) fn replaces_in_uri_headers(headers: &str) -> Option<String> {
    headers.split('&').find_map(|h| {
        let (name, value) = h.split_once('=')?;
        name.eq_ignore_ascii_case("Replaces")
            .then(|| String::from_utf8_lossy(&mss_sip::unescape(value)).into_owned())
    })
}

/// An INVITE with `Replaces` waiting for the other party's answer to its re-INVITE.
#[derive(Debug, Clone)]
pub(crate) struct PendingReplace {
    /// The call.
    pub(crate) key: CallKey,
    /// The side whose leg is replaced.
    pub(crate) side: Side,
    /// The dialog replaced.
    pub(crate) replaced: DialogId,
    /// The new caller's INVITE and its server transaction.
    pub(crate) invite: Request,
    /// Its server transaction.
    pub(crate) server: ServerTransactionId,
    /// Where it came from.
    pub(crate) flow: Flow,
    /// The new caller.
    pub(crate) user: String,
    /// The other party's dialog, re-INVITEd.
    pub(crate) other: DialogId,
}

/// A refusal: status and reason.
type Refusal = (StatusCode, &'static str);

impl Core {
    /// An INVITE without To tag that carries `Replaces` (see the module docs).
    pub(crate) fn on_replacing_invite(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        req: &Request,
        from: &Flow,
    ) {
        let refuse = |core: &mut Core, (status, reason): Refusal| {
            tracing::info!(
                status = status.as_u16(),
                reason,
                "INVITE with Replaces refused"
            );
            let rsp = core.answer.response(req, status, reason);
            core.respond(now, server, rsp);
        };
        let values: Vec<&[u8]> = req.headers().get_all(&replaces_header()).collect();
        let replaces = match values.as_slice() {
            [one] => std::str::from_utf8(one).ok().and_then(ReplacesValue::parse),
            _ => None,
        };
        let Some(replaces) = replaces else {
            refuse(self, (StatusCode::BAD_REQUEST, "Bad Replaces"));
            return;
        };
        let target_local = match req.uri() {
            Ok(Uri::Sip(u)) => self.domains.is_local(u.host),
            Ok(Uri::Tel(_)) => true,
            _ => false,
        };
        let user = match self.who_calls(now, req, from, target_local) {
            Ok(Caller::Local { user }) => user,
            Ok(Caller::Line { .. }) => {
                refuse(self, (StatusCode::FORBIDDEN, "Lines Cannot Replace"));
                return;
            }
            Err(rsp) => {
                self.respond(now, server, *rsp);
                return;
            }
        };
        if let Err(rsp) = self.check_offer(req) {
            self.respond(now, server, *rsp);
            return;
        }
        // The new caller's dialog is made once the other party accepts: what it needs is
        // checked now, before anything changes (RFC 3261 §12.1.1: its Contact).
        let has_contact = matches!(
            req.headers().contacts(),
            Ok(mss_sip::Contacts::List(list)) if !list.is_empty()
        );
        if !has_contact {
            refuse(self, (StatusCode::BAD_REQUEST, "Missing Contact"));
            return;
        }
        let (key, side, other) = match self.replaced_leg(req, &replaces, &user) {
            Ok(found) => found,
            Err(refusal) => {
                refuse(self, refusal);
                return;
            }
        };
        self.respond(
            now,
            server,
            Response::for_request(req, StatusCode::TRYING, "Trying"),
        );
        let Some(flow) = self.flow_of_dialog(&other) else {
            refuse(
                self,
                (StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST, "Call Gone"),
            );
            return;
        };
        let mut reinvite = match self.dialogs.request(&other, Method::Invite, &mut self.rng) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "the other party cannot be re-INVITEd now");
                refuse(self, (StatusCode::REQUEST_PENDING, "Request Pending"));
                return;
            }
        };
        // With the media relay the new caller takes the replaced leg's relay ports; the
        // other party's stay, and the offer points at them (`media.rs`).
        let other_side = self.calls.by_dialog.get(&other).map(|(_, s)| *s);
        let body = match other_side {
            Some(o) => {
                self.relay_body_over(key, (side, *from), (o, flow), req.headers(), req.body())
            }
            None => req.body().clone(),
        };
        copy_body_request(req.headers(), &body, &mut reinvite);
        self.add_session_refresh(&other, &mut reinvite);
        let pending = PendingReplace {
            key,
            side,
            replaced: replaces.dialog_id(),
            invite: req.clone(),
            server,
            flow: *from,
            user,
            other,
        };
        tracing::info!(?side, "a leg is being replaced");
        let client = CallClient::Replace {
            pending: Box::new(pending),
        };
        match self.call_send(now, reinvite, flow, client) {
            Some(id) => {
                let at = now.mono + self.calls.settings.ring_timeout;
                self.calls.guard(id, at);
            }
            None => refuse(
                self,
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            ),
        }
    }

    /// The call, side and other party's dialog of the leg `replaces` names, if `user` may
    /// replace it (RFC 3891 §3).
    fn replaced_leg(
        &self,
        req: &Request,
        replaces: &ReplacesValue,
        user: &str,
    ) -> Result<(CallKey, Side, DialogId), Refusal> {
        let named = replaces.dialog_id();
        let gone = (
            StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST,
            "Call/Transaction Does Not Exist",
        );
        let (key, side) = self.calls.by_dialog.get(&named).copied().ok_or(gone)?;
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
        let call = self.calls.table.get(&key).ok_or(gone)?;
        if call.dialog_of(side) != Some(&named) || call.winner.is_none() {
            return Err(gone);
        }
        if self.calls.transfers.by_call.contains_key(&key) || self.calls.transfers.is_sub(key) {
            return Err((StatusCode::REQUEST_PENDING, "Transfer In Progress"));
        }
        let replaced_user = self.leg_user(key, side);
        let referred_by_replaced = req
            .headers()
            .get(&HeaderName::ReferredBy)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| {
                let na = mss_sip::NameAddr::parse(v, &HeaderName::ReferredBy).ok()?;
                match na.uri {
                    Uri::Sip(u) if self.domains.is_local(u.host) => u.user.map(str::to_owned),
                    _ => None,
                }
            });
        let authorized = replaced_user.as_deref() == Some(user)
            || (replaced_user.is_some() && referred_by_replaced == replaced_user);
        if !authorized {
            return Err((StatusCode::FORBIDDEN, "Not Authorized To Replace"));
        }
        let other = call.other(side).ok_or(gone)?;
        let other_dialog = call.dialog_of(other).cloned().ok_or(gone)?;
        Ok((key, side, other_dialog))
    }

    /// The other party's final answer (or `None`) to the re-INVITE of a replacement.
    pub(crate) fn on_replace_response(
        &mut self,
        now: Now,
        p: PendingReplace,
        response: Option<Response>,
    ) {
        let rsp = response
            .unwrap_or_else(|| Response::new(StatusCode::REQUEST_TIMEOUT, "Request Timeout"));
        let outcome = self.dialogs.handle_response(now.mono, &rsp, &mut self.rng);
        self.drain_dialogs(now);
        let effect = match outcome {
            Ok(ResponseOutcome::Applied { effect, .. }) => Some(effect),
            _ => None,
        };
        let still = self
            .calls
            .table
            .get(&p.key)
            .is_some_and(|c| c.dialog_of(p.side) == Some(&p.replaced))
            && self.calls.by_dialog.contains_key(&p.other);
        match effect {
            Some(ResponseEffect::AckNeeded { cseq, .. }) if still => {
                let sent = super::session_timer::body_of(p.invite.headers(), p.invite.body());
                self.session_timer_2xx(now, p.key, &p.other, &rsp, sent);
                self.replace_leg(now, p, cseq, &rsp);
            }
            Some(ResponseEffect::AckNeeded { cseq, .. }) => {
                // The call ended meanwhile: its 2xx is acknowledged, the new caller refused.
                let _ = self.dialogs.ack(&p.other, cseq, &mut self.rng);
                self.drain_dialogs(now);
                let rsp = self.answer.response(
                    &p.invite,
                    StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST,
                    "Call/Transaction Does Not Exist",
                );
                self.respond(now, p.server, rsp);
            }
            effect => {
                if let Some(ResponseEffect::GlareRetry { .. }) = effect {
                    self.dialogs.cancel_reinvite_retry(&p.other);
                }
                let status = match rsp.status().as_u16() {
                    s @ 300..=699 => StatusCode(s),
                    _ => StatusCode::SERVER_INTERNAL_ERROR,
                };
                let reason = String::from_utf8_lossy(rsp.reason()).into_owned();
                let tag = self.answer.to_tag(&p.invite);
                let answer =
                    Response::for_request_with_to_tag(&p.invite, status, reason, tag.as_bytes());
                self.respond(now, p.server, answer);
                if let Some(ResponseEffect::Terminated) = effect {
                    // The other party's dialog is gone: so is the call.
                    self.forget_dialog(now, &p.other);
                    let side = self.calls.table.get(&p.key).and_then(|c| c.other(p.side));
                    self.hang_up(now, p.key, side, mss_store::EndedBy::Mss);
                }
            }
        }
    }

    /// The other party accepted (its `2xx` to INVITE `cseq` is `rsp`): the new caller's
    /// dialog takes the replaced leg's place.
    fn replace_leg(&mut self, now: Now, p: PendingReplace, cseq: u32, rsp: &Response) {
        let local = self
            .network
            .sent_by(p.flow.transport, p.flow.remote)
            .or(self.arrival)
            .filter(|a| !a.ip().is_unspecified())
            .map(|a| {
                let sent_by = addr_text(a);
                LocalEnd {
                    transport: p.flow.transport,
                    contact: contact_uri(&sent_by, p.flow.transport, "mss"),
                    sent_by,
                }
            });
        let created = local.and_then(|l| self.dialogs.create_uas(&p.invite, l, &mut self.rng).ok());
        let Some(new) = created else {
            tracing::warn!("the replacing caller's dialog could not be made");
            let _ = self.dialogs.ack(&p.other, cseq, &mut self.rng);
            self.drain_dialogs(now);
            let rsp = self.answer.response(
                &p.invite,
                StatusCode::SERVER_INTERNAL_ERROR,
                "Server Internal Error",
            );
            self.respond(now, p.server, rsp);
            return;
        };
        // The call counts against the new caller's max_calls instead of the replaced user's.
        let replaced_user = self.leg_user(p.key, p.side);
        if replaced_user.as_deref() != Some(p.user.as_str()) {
            let counted = self.calls.take_user_slot(&p.user);
            let released = self.calls.table.get_mut(&p.key).and_then(|call| {
                if counted {
                    call.slots.push(p.user.clone());
                }
                let user = replaced_user?;
                let at = call.slots.iter().position(|u| *u == user)?;
                Some(call.slots.remove(at))
            });
            if let Some(user) = released {
                self.calls.release_user_slot(&user);
            }
        }
        let Some(call) = self.calls.table.get_mut(&p.key) else {
            return;
        };
        let new_side = match p.side {
            Side::A => {
                call.a.dialog = Some(new.clone());
                call.a.flow = p.flow;
                call.a.invite = p.invite.clone();
                Side::A
            }
            Side::B(old_leg) => {
                if let Some(b) = call.b.get_mut(old_leg) {
                    b.confirmed = None;
                }
                let leg = call.b.len();
                let target = BTarget::Device {
                    user: p.user.clone(),
                };
                call.b
                    .push(BLeg::joined(target, p.invite.clone(), p.flow, new.clone()));
                call.winner = Some(leg);
                Side::B(leg)
            }
        };
        // The answer goes on in the new caller's ACK (an offer in our 2xx, RFC 3264 §5).
        call.ack_relay = Some(AckRelay {
            from: new.clone(),
            to: p.other.clone(),
            cseq,
        });
        call.codec.answered(rsp.body());
        tracing::info!(call = %call.record.id, user = %p.user, "a leg was replaced");
        self.calls.by_dialog.insert(new.clone(), (p.key, new_side));
        self.calls.dialog_flow.insert(new.clone(), p.flow);
        self.calls.reply_server.insert(new.clone(), p.server);
        self.calls.by_dialog.remove(&p.replaced);
        let reason = String::from_utf8_lossy(rsp.reason()).into_owned();
        let mut ok = match self
            .dialogs
            .response(&new, &p.invite, rsp.status(), &reason)
        {
            Ok(r) => r,
            Err(_) => Response::for_request(&p.invite, rsp.status(), reason),
        };
        let ends = self
            .calls
            .by_dialog
            .get(&p.other)
            .map(|(_, s)| *s)
            .zip(self.flow_of_dialog(&p.other));
        let body = match ends {
            Some(o) => {
                self.relay_body_over(p.key, o, (new_side, p.flow), rsp.headers(), rsp.body())
            }
            None => rsp.body().clone(),
        };
        copy_body_response(rsp.headers(), &body, &mut ok);
        self.session_timer_answer(now, p.key, &new, &p.invite, &mut ok);
        // The replaced leg's session timer must not end the call, and the relay latches
        // to the new caller again once the replaced party is gone.
        self.calls.session_timers.remove(&p.replaced);
        if !p.invite.body().is_empty() {
            let relatch = super::transfer::Relatch {
                key: p.key,
                side: new_side,
                flow: p.flow,
                sdp: p.invite.body().clone(),
            };
            self.calls
                .transfers
                .relatch
                .insert(p.replaced.clone(), relatch);
        }
        if let Err(e) = self.dialogs.send_response(now.mono, &new, ok) {
            tracing::debug!(error = %e, "2xx to the replacing caller not sent");
        }
        self.drain_dialogs(now);
        // RFC 3891 §3: the replaced dialog is shut down with BYE.
        self.send_bye(now, &p.replaced);
        self.publish_calls_active();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_values_parse() {
        let v = ReplacesValue::parse("abc@host;to-tag=t1;from-tag=f1").unwrap();
        assert_eq!(v.dialog_id(), DialogId::new("abc@host", "t1", "f1"));
        assert!(!v.early_only);
        let v = ReplacesValue::parse("abc; from-tag=f1 ;to-tag=t1;early-only").unwrap();
        assert!(v.early_only);
        assert_eq!(ReplacesValue::parse("abc;to-tag=t1"), None);
        assert_eq!(ReplacesValue::parse(";to-tag=t1;from-tag=f"), None);
        assert_eq!(ReplacesValue::parse("abc;to-tag=;from-tag=f"), None);
    }

    #[test]
    fn replaces_in_a_refer_to_uri_is_unescaped() {
        assert_eq!(
            replaces_in_uri_headers("Replaces=abc%40h%3Bto-tag%3Dt%3Bfrom-tag%3Df").as_deref(),
            Some("abc@h;to-tag=t;from-tag=f")
        );
        assert_eq!(replaces_in_uri_headers("Subject=x"), None);
    }
}
