//! Call transfer with `REFER` (RFC 3515, DESIGN §8): a party of an answered call (the
//! transferor) asks mss to connect the other party (the transferee) to someone else (the
//! target).
//!
//! - `REFER` in either leg's dialog of an answered call, from a local user's leg. The
//!   `Refer-To` is resolved by the dial plan as an INVITE of the transferor would be: a
//!   local user, a group, or the out-group prefix and a number, which needs the
//!   transferor's `call_level` (else `403` with a Warning in words). A `Refer-To` at a
//!   foreign domain or with a `method` other than INVITE, from a line's leg, or before
//!   the answer is `403`; none or several
//!   `Refer-To` values `400` (§2.4.1); a second transfer while one is in progress `491`.
//! - Otherwise `202 Accepted` and the implicit subscription (§2.4.4): `NOTIFY` with
//!   `Event: refer` (`;id=` the REFER's CSeq for a later REFER in the same dialog, §2.4.6),
//!   a `message/sipfrag` body: `SIP/2.0 100 Trying` at once, then the final answer of the
//!   target (`200 OK`, or the failure: `404` for a name the dial plan does not know, `486`,
//!   `480` …) with `Subscription-State: terminated`.
//! - Blind: a new call rings the target (`transfer_call.rs`, every rule of routing.rs:
//!   forks, groups, lines); on its `2xx` the transferee is joined to it
//!   (`transfer_join.rs`) and the transferor's leg gets BYE after the final NOTIFY.
//! - Attended (`Refer-To: <…?Replaces=…>`, RFC 3891): the dialog named is another leg of
//!   the transferor's at mss; the party on its other side is joined to the transferee and
//!   both of the transferor's legs end.
//! - The transferor may hang up at any time after the `202`: the transfer goes on, and if
//!   it fails the transferee's call ends. If it fails while the transferor is still there,
//!   the call goes on as before.
//!
//! Everything a transfer holds ends on every path: with the transfer call, the call it
//! belongs to, or its re-INVITEs' answers (guarded by the ring timeout).

use bytes::Bytes;
use mss_dialog::DialogId;
use mss_services::Now;
use mss_sip::{HeaderName, Method, NameAddr, Request, Response, StatusCode, Uri};
use mss_txn::ServerTransactionId;

use super::admission::Target;
use super::model::{BTarget, Side};
use super::replaces::ReplacesValue;
use super::{CallClient, CallKey, HashMap, HashSet};
use crate::core::Core;

/// The seconds a transfer's subscription lasts (RFC 3515 §2.4.4: the notifier chooses; a
/// transfer that rings longer still ends with its final NOTIFY, and a refresh is answered).
const EXPIRES: &str = "120";

/// The `Subscription-State` of the first NOTIFYs.
const ACTIVE: &str = "active;expires=120";

/// The `Subscription-State` of the last NOTIFY (RFC 6665 §4.1.3 reason `noresource`: the
/// reference is over).
const TERMINATED: &str = "terminated;reason=noresource";

/// The body type of every NOTIFY of a transfer (RFC 3515 §2.4.5).
const SIPFRAG: &str = "message/sipfrag;version=2.0";

/// Where a transfer stands.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// The target rings: transfer call `sub` (`transfer_call.rs`).
    Ringing {
        /// The call that rings the target.
        sub: CallKey,
    },
    /// Attended transfer: the party joining (`dialog`, side `side` of call `from`) was sent
    /// an INVITE without offer; its `2xx` brings one.
    Asking {
        /// The call the joining party is in now.
        from: CallKey,
        /// Its side there.
        side: Side,
        /// Its dialog.
        dialog: DialogId,
    },
    /// The joining party answered with an offer (its `2xx` to INVITE `cseq` waits for the
    /// ACK that carries the answer); the transferee's re-INVITE carries that offer.
    Joining {
        /// The call the joining party is in now (a transfer call, or the transferor's
        /// other call).
        from: CallKey,
        /// Its side there.
        side: Side,
        /// Its dialog.
        dialog: DialogId,
        /// The CSeq number of the INVITE its `2xx` answered.
        cseq: u32,
        /// Its offer, which the transferee's re-INVITE carries (a session refresh of the
        /// transferee's leg repeats it, `session_timer.rs`).
        offer: Option<(Bytes, Bytes)>,
        /// Its offer as it sent it (what the relay latches to, [`Relatch`]).
        sdp: Bytes,
    },
}

/// One transfer in progress, kept under the call whose leg is transferred.
#[derive(Debug, Clone)]
pub(crate) struct Transfer {
    /// The transferor's side of the call.
    pub(crate) transferor: Side,
    /// The transferor's dialog: the NOTIFYs go there.
    pub(crate) dialog: DialogId,
    /// The transferor hung up after the `202`: no more NOTIFYs, and a failed transfer ends
    /// the call.
    pub(crate) transferor_gone: bool,
    /// The `Event` value of the NOTIFYs.
    pub(crate) event: String,
    /// Where it stands.
    pub(crate) step: Step,
}

/// A call that rings a transfer's target (`transfer_call.rs`).
#[derive(Debug, Clone)]
pub(crate) struct SubCall {
    /// The call whose leg is transferred.
    pub(crate) parent: CallKey,
    /// The `Referred-By` of its INVITEs (RFC 3892).
    pub(crate) referred_by: String,
}

/// A party that took a leaving party's relay leg (a transfer, a replacement): once the
/// leaving party's dialog is gone (and its RTP with it), the relay latches again to the
/// party's SDP (`media.rs`: a packet from the leaving party, from the same host or NAT,
/// could have latched first).
#[derive(Debug, Clone)]
pub(crate) struct Relatch {
    /// The call.
    pub(crate) key: CallKey,
    /// The side the party is on now.
    pub(crate) side: Side,
    /// Its flow.
    pub(crate) flow: mss_sip::Flow,
    /// Its session description as it sent it.
    pub(crate) sdp: Bytes,
}

/// Every transfer in progress and what finds it.
#[derive(Debug)]
pub(crate) struct Transfers {
    /// Transfers, by the call whose leg is transferred.
    pub(crate) by_call: HashMap<CallKey, Transfer>,
    /// Calls that ring a transfer's target, by their key.
    pub(crate) subs: HashMap<CallKey, SubCall>,
    /// Dialogs in which a REFER came: the NOTIFYs of a later one carry `id=` (RFC 3515
    /// §2.4.6). Forgotten with the dialog.
    referred: HashSet<DialogId>,
    /// Relay latches to renew when a leaving party's dialog (the key) is gone.
    pub(crate) relatch: HashMap<DialogId, Relatch>,
}

impl Transfers {
    /// Nothing in progress.
    pub(crate) fn new(hasher: &ahash::RandomState) -> Transfers {
        Transfers {
            by_call: HashMap::with_hasher(hasher.clone()),
            subs: HashMap::with_hasher(hasher.clone()),
            referred: HashSet::with_hasher(hasher.clone()),
            relatch: HashMap::with_hasher(hasher.clone()),
        }
    }

    /// Everything held (for the "nothing left" checks).
    pub(crate) fn len(&self) -> usize {
        self.by_call.len() + self.subs.len() + self.referred.len() + self.relatch.len()
    }

    /// The `Referred-By` for the INVITEs of call `key`, when it rings a transfer's target.
    pub(crate) fn referred_by(&self, key: CallKey) -> Option<&str> {
        self.subs.get(&key).map(|s| s.referred_by.as_str())
    }

    /// Whether call `key` rings a transfer's target.
    pub(crate) fn is_sub(&self, key: CallKey) -> bool {
        self.subs.contains_key(&key)
    }
}

/// Whether `req` is about the `refer` event package (its `Event` header, RFC 3515 §2.4.4).
pub(crate) fn is_refer_event(req: &Request) -> bool {
    req.headers()
        .get(&HeaderName::Event)
        .and_then(|e| std::str::from_utf8(e).ok())
        .and_then(|e| e.split(';').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("refer"))
}

/// A `message/sipfrag` status line (RFC 3515 §2.4.5).
fn sipfrag(status: u16, reason: &str) -> String {
    format!("SIP/2.0 {status} {reason}\r\n")
}

/// What a `Refer-To` asks for.
#[derive(Debug)]
enum Referral {
    /// Call this name of the dial plan (a user, a group, prefix + number) or nothing
    /// (`None`: the NOTIFY says `404`).
    Blind {
        /// What the dial plan made of it.
        target: Option<Target>,
        /// The name as given.
        name: String,
    },
    /// Replace the dialog named (attended transfer).
    Attended(ReplacesValue),
}

impl Core {
    /// Dialog `id` is gone: a REFER in it is forgotten, and a party that took its relay
    /// leg is latched to again ([`Relatch`]).
    pub(crate) fn transfer_dialog_gone(&mut self, id: &DialogId) {
        self.calls.transfers.referred.remove(id);
        if let Some(r) = self.calls.transfers.relatch.remove(id) {
            let still = self
                .calls
                .table
                .get(&r.key)
                .and_then(|c| c.flow_of(r.side))
                .is_some_and(|f| f == r.flow);
            if still {
                self.note_sdp_over(r.key, r.side, r.flow, &r.sdp);
            }
        }
    }

    /// The local user on `side` of call `key`: the caller, or the user of a device leg.
    pub(crate) fn leg_user(&self, key: CallKey, side: Side) -> Option<String> {
        let call = self.calls.table.get(&key)?;
        match side {
            Side::A => call.caller_user.clone(),
            Side::B(i) => match &call.leg(i)?.target {
                BTarget::Device { user } => Some(user.clone()),
                BTarget::Line { .. } => None,
            },
        }
    }

    /// `REFER` from `side` of call `key` in its dialog `id` (see the module docs).
    pub(crate) fn on_refer(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        req: &Request,
        key: CallKey,
        side: Side,
        id: &DialogId,
    ) {
        let referral = match self.check_refer(req, key, side, id) {
            Ok(r) => r,
            Err((status, reason, warning)) => {
                tracing::info!(status = status.as_u16(), reason, "REFER refused");
                let mut rsp = self.in_dialog_answer(id, req, status, reason);
                if let Some(text) = warning {
                    rsp.headers_mut()
                        .push(HeaderName::Warning, self.answer.warning(&text));
                }
                self.respond(now, server, rsp);
                return;
            }
        };
        let seq = req.headers().cseq().map(|c| c.seq).unwrap_or(0);
        // RFC 3515 §2.4.6: the NOTIFYs of a second REFER in a dialog name it by its CSeq.
        let event = if self.calls.transfers.referred.insert(id.clone()) {
            "refer".to_owned()
        } else {
            format!("refer;id={seq}")
        };
        let rsp = self.in_dialog_answer(id, req, StatusCode::ACCEPTED, "Accepted");
        self.respond(now, server, rsp);
        // RFC 3892: the transferor's Referred-By goes on when it is a name-addr, else one
        // naming the transferor.
        let given = req
            .headers()
            .get(&HeaderName::ReferredBy)
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| NameAddr::parse(v, &HeaderName::ReferredBy).is_ok())
            .filter(|v| !v.contains(['\r', '\n']))
            .map(str::to_owned);
        let referred_by = given.unwrap_or_else(|| {
            let user = self.leg_user(key, side).unwrap_or_default();
            format!("<sip:{user}@{}>", self.domains.primary())
        });
        self.notify(now, id, &event, &sipfrag(100, "Trying"), false, false);
        tracing::info!(?side, ?referral, "call transfer");
        let transfer = |step| super::transfer::Transfer {
            transferor: side,
            dialog: id.clone(),
            transferor_gone: false,
            event: event.clone(),
            step,
        };
        match referral {
            Referral::Blind { target: None, name } => {
                tracing::info!(%name, "transfer to a name the dial plan does not know");
                self.notify(now, id, &event, &sipfrag(404, "Not Found"), true, false);
            }
            Referral::Blind {
                target: Some(target),
                name,
            } => {
                let Some(sub) = self.new_transfer_call(now, key, side, &name, &target, referred_by)
                else {
                    self.notify(
                        now,
                        id,
                        &event,
                        &sipfrag(500, "Server Internal Error"),
                        true,
                        false,
                    );
                    return;
                };
                self.calls
                    .transfers
                    .by_call
                    .insert(key, transfer(Step::Ringing { sub }));
                self.publish_calls_active();
                self.route_to(now, sub, target);
            }
            Referral::Attended(replaces) => match self.attended_source(key, side, &replaces) {
                Ok((from, from_side, dialog)) => {
                    let step = Step::Asking {
                        from,
                        side: from_side,
                        dialog: dialog.clone(),
                    };
                    self.calls.transfers.by_call.insert(key, transfer(step));
                    self.ask_for_offer(now, key, &dialog);
                }
                Err((status, reason)) => {
                    tracing::info!(status = status.as_u16(), "attended transfer refused");
                    self.notify(
                        now,
                        id,
                        &event,
                        &sipfrag(status.as_u16(), reason),
                        true,
                        false,
                    );
                }
            },
        }
    }

    /// The checks of a REFER before its `202` (see the module docs).
    fn check_refer(
        &self,
        req: &Request,
        key: CallKey,
        side: Side,
        id: &DialogId,
    ) -> Result<Referral, (StatusCode, &'static str, Option<String>)> {
        let forbidden = |reason| Err((StatusCode::FORBIDDEN, reason, None));
        let Some(call) = self.calls.table.get(&key) else {
            return forbidden("No Call");
        };
        let answered = call.winner.is_some()
            && call.state != super::model::CallState::Ending
            && call.dialog_of(side) == Some(id);
        if !answered || self.calls.transfers.is_sub(key) {
            return forbidden("Not Before The Answer");
        }
        if self.calls.transfers.by_call.contains_key(&key) {
            return Err((StatusCode::REQUEST_PENDING, "Transfer In Progress", None));
        }
        let Some(user) = self.leg_user(key, side) else {
            return forbidden("Transfer Only By Local Users");
        };
        // RFC 3515 §2.4.1: exactly one Refer-To.
        let mut values = req.headers().values(&HeaderName::ReferTo);
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err((StatusCode::BAD_REQUEST, "Exactly One Refer-To", None));
        };
        let text = std::str::from_utf8(value)
            .map_err(|_| (StatusCode::BAD_REQUEST, "Bad Refer-To", None))?;
        let refer_to = NameAddr::parse(text, &HeaderName::ReferTo)
            .map_err(|_| (StatusCode::BAD_REQUEST, "Bad Refer-To", None))?;
        let (name, headers) = match &refer_to.uri {
            Uri::Sip(u) => {
                if !self.domains.is_local(u.host) {
                    return forbidden("Not Our Domain");
                }
                // RFC 3515 §2.1: a `method` parameter asks for another request than INVITE.
                let method = u.params.get("method").flatten();
                if method.is_some_and(|m| !m.eq_ignore_ascii_case("INVITE")) {
                    return forbidden("Only Calls Are Referred");
                }
                let name = u
                    .user_unescaped()
                    .map(|n| String::from_utf8_lossy(&n).into_owned())
                    .unwrap_or_default();
                (name, u.headers)
            }
            Uri::Tel(t) => (t.number.to_owned(), None),
            _ => return forbidden("Not A SIP URI"),
        };
        if let Some(value) = headers.and_then(super::replaces::replaces_in_uri_headers) {
            let replaces = ReplacesValue::parse(&value).ok_or((
                StatusCode::BAD_REQUEST,
                "Bad Replaces In Refer-To",
                None,
            ))?;
            return Ok(Referral::Attended(replaces));
        }
        let target = self.target_of(&name);
        if let Some(Target::Out(number)) = &target {
            let needed = self.calls.settings.level_needed(number);
            let level = self.calls.settings.user(&user).call_level;
            if level < needed {
                let text = format!(
                    "user {user} may not dial {} numbers (call_level = {})",
                    needed.as_str(),
                    level.as_str()
                );
                return Err((
                    StatusCode::FORBIDDEN,
                    "Call Level Forbids Number",
                    Some(text),
                ));
            }
        }
        Ok(Referral::Blind { target, name })
    }

    /// Sends a NOTIFY of a transfer's subscription in `dialog` with `frag` as body; `last`:
    /// the subscription ends with it; `then_bye`: BYE in `dialog` once it is answered.
    pub(crate) fn notify(
        &mut self,
        now: Now,
        dialog: &DialogId,
        event: &str,
        frag: &str,
        last: bool,
        then_bye: bool,
    ) {
        let Some(flow) = self.flow_of_dialog(dialog) else {
            return;
        };
        let mut req = match self.dialogs.request(dialog, Method::Notify, &mut self.rng) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "NOTIFY not sent");
                if then_bye {
                    self.send_bye(now, dialog);
                }
                return;
            }
        };
        let h = req.headers_mut();
        h.push(HeaderName::Event, event.to_owned());
        h.push(
            HeaderName::from_bytes(Bytes::from_static(b"Subscription-State")),
            if last { TERMINATED } else { ACTIVE },
        );
        h.push(HeaderName::ContentType, SIPFRAG);
        req.set_body(Bytes::from(frag.to_owned()));
        let client = CallClient::Notify {
            dialog: dialog.clone(),
            then_bye,
        };
        if self.call_send(now, req, flow, client).is_none() && then_bye {
            self.send_bye(now, dialog);
        }
    }

    /// A final answer (or `None`) of a NOTIFY, a transfer's re-INVITE or a replacement's.
    pub(crate) fn on_transfer_client_event(
        &mut self,
        now: Now,
        client: CallClient,
        response: Option<Response>,
    ) {
        match client {
            CallClient::Notify { dialog, then_bye } => {
                if let Some(rsp) = &response {
                    // A 481 ends the dialog (RFC 3261 §12.2.1.2); anything else changes nothing.
                    let _ = self.dialogs.handle_response(now.mono, rsp, &mut self.rng);
                    self.drain_dialogs(now);
                }
                if then_bye {
                    self.send_bye(now, &dialog);
                }
            }
            CallClient::Transfer { key } => self.on_transfer_reinvite_response(now, key, response),
            CallClient::Replace { pending } => self.on_replace_response(now, *pending, response),
            CallClient::Invite { .. }
            | CallClient::Cancel
            | CallClient::Bye { .. }
            | CallClient::Prack { .. }
            | CallClient::Refresh { .. }
            | CallClient::Forward { .. } => {}
        }
    }

    /// A BYE of the transferor (`side` of call `key`) after its REFER was accepted: its leg
    /// ends and the transfer goes on. False when no transfer of `key` waits on that side.
    pub(crate) fn transferor_left(&mut self, key: CallKey, side: Side, id: &DialogId) -> bool {
        let Some(t) = self.calls.transfers.by_call.get_mut(&key) else {
            return false;
        };
        if t.transferor != side || t.dialog != *id {
            return false;
        }
        tracing::info!("the transferor hung up; the transfer goes on");
        t.transferor_gone = true;
        if let (Side::B(i), Some(call)) = (side, self.calls.table.get_mut(&key)) {
            if let Some(b) = call.b.get_mut(i) {
                b.confirmed = None;
            }
        }
        true
    }

    /// An in-dialog SUBSCRIBE to `refer`: a refresh or end of a transfer's implicit
    /// subscription (RFC 3515 §2.4.4) is accepted while the transfer lasts (it ends by
    /// itself with the final NOTIFY); `481` when there is none (RFC 6665 §4.2.1.2).
    pub(crate) fn on_in_dialog_subscribe(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        req: &Request,
        key: CallKey,
        id: &DialogId,
    ) {
        let active = self
            .calls
            .transfers
            .by_call
            .get(&key)
            .is_some_and(|t| t.dialog == *id && !t.transferor_gone);
        let rsp = if active {
            let mut rsp = self.in_dialog_answer(id, req, StatusCode::OK, "OK");
            rsp.headers_mut().push(HeaderName::Expires, EXPIRES);
            rsp
        } else {
            self.in_dialog_answer(
                id,
                req,
                StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST,
                "No Such Subscription",
            )
        };
        self.respond(now, server, rsp);
    }
}
