//! A new call: admitted (`admission.rs`), answered `100 Trying` at once, its B legs
//! started — every contact of the callee at once (forking), or the first online line
//! (DESIGN §8).

use mss_services::Now;
use mss_sip::{Flow, Request, Response, StatusCode};
use mss_store::CallRecord;
use mss_txn::ServerTransactionId;

use super::admission::Caller;
use super::model::{ALeg, BLeg, BState, BTarget, Call};
use super::outgoing::{addr_text, b_invite, InviteSpec};
use super::{CallClient, CallKey};
use crate::core::Core;

/// The Max-Forwards of a B leg's INVITE when the caller's has none.
const DEFAULT_MAX_FORWARDS: u8 = 70;

/// The `Diversion` header name (RFC 5806).
fn diversion_header() -> mss_sip::HeaderName {
    mss_sip::HeaderName::from_bytes(bytes::Bytes::from_static(b"Diversion"))
}

impl Core {
    /// A new INVITE (no To tag) that passed the prechecks.
    pub(crate) fn on_invite(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        from: &Flow,
    ) {
        if let Err(rsp) = self.check_session_expires(req) {
            self.respond(now, id, *rsp);
            return;
        }
        if req.headers().contains(&super::replaces::replaces_header()) {
            self.on_replacing_invite(now, id, req, from);
            return;
        }
        let admitted = match self.admit_call(now, req, from) {
            Ok(a) => a,
            Err(rsp) => {
                self.respond_final(now, id, *rsp);
                return;
            }
        };
        let caller_user = match &admitted.caller {
            Caller::Local { user } => Some(user.clone()),
            Caller::Line { .. } => None,
        };
        if let Some(user) = &caller_user {
            if !self.calls.take_user_slot(user) {
                tracing::info!(%user, "call refused: the caller is at its max_calls");
                let rsp = self
                    .answer
                    .response(req, StatusCode::BUSY_HERE, "Busy Here");
                self.respond(now, id, rsp);
                return;
            }
        }
        self.respond(
            now,
            id,
            Response::for_request(req, StatusCode::TRYING, "Trying"),
        );
        let (caller_name, line_name) = match &admitted.caller {
            Caller::Local { user } => (user.clone(), None),
            Caller::Line { name, number, .. } => (number.clone(), Some(name.clone())),
        };
        let record = CallRecord {
            id: self.calls.record_ids.next_id(now.unix_ms),
            started_at: now.unix_ms,
            answered_at: None,
            ended_at: None,
            caller: caller_name,
            callee: admitted.dialled.clone(),
            answered_by: None,
            direction: admitted.direction,
            line: line_name,
            disposition: None,
            sip_code: None,
            ended_by: None,
            forwarded_from: None,
            transferred_by: None,
        };
        let key = self.calls.next_key();
        let a = ALeg {
            invite: req.clone(),
            server: id,
            flow: *from,
            dialog: None,
            answered: false,
        };
        let call = Call {
            slots: caller_user.iter().cloned().collect(),
            level_user: caller_user.clone(),
            caller_user,
            offer: admitted.offer,
            ..Call::new(record, now.mono, a)
        };
        tracing::debug!(
            call = %call.record.id,
            caller = %call.record.caller,
            callee = %call.record.callee,
            direction = call.record.direction.as_str(),
            "call"
        );
        self.calls.table.insert(key, Box::new(call));
        self.calls.by_server.insert(id, key);
        self.publish_calls_active();
        // With the relay, the B legs wait for the call's ports (`media.rs`).
        if !self.media_allocate(now, key, admitted.target.clone()) {
            self.route_to(now, key, admitted.target);
        }
    }

    /// The caller's From for a B leg: the authenticated user at our domain (with the
    /// display name the caller gave), or for an incoming line call the caller's From as
    /// the provider sent it.
    fn b_from(&self, key: CallKey) -> String {
        let Some(call) = self.calls.table.get(&key) else {
            return String::new();
        };
        let h = call.a.invite.headers();
        let domain = self.domains.primary();
        let from = h.from().ok();
        let display = from.as_ref().and_then(|f| f.display_name);
        // Written part by part (a B leg is started per call): `DISPLAY <URI>`.
        let mut out = String::with_capacity(96);
        if let Some(d) = display {
            out.push_str(d);
            out.push(' ');
        }
        out.push('<');
        match (&call.caller_user, &from) {
            (Some(user), _) => {
                out.push_str("sip:");
                out.push_str(user);
                out.push('@');
                out.push_str(domain);
            }
            (None, Some(f)) => out.push_str(f.uri_str),
            (None, None) => out.push_str("sip:anonymous@anonymous.invalid"),
        }
        out.push('>');
        out
    }

    /// The Max-Forwards of a B leg's INVITE.
    fn b_max_forwards(&self, key: CallKey) -> u8 {
        self.calls
            .table
            .get(&key)
            .and_then(|c| c.a.invite.headers().max_forwards().ok().flatten())
            .map_or(DEFAULT_MAX_FORWARDS, |m| m.saturating_sub(1))
    }

    /// Starts a B leg to one registered contact of `user`; false when it could not be
    /// sent.
    pub(crate) fn start_device_leg(
        &mut self,
        now: Now,
        key: CallKey,
        user: &str,
        contact: &mss_services::im::ContactTarget,
    ) -> bool {
        let sent_by = contact
            .sent_by
            .or(self.arrival)
            .filter(|a| !a.ip().is_unspecified());
        let Some(sent_by) = sent_by else {
            tracing::warn!(peer = %contact.flow, "no local address towards a device");
            return false;
        };
        let from = self.b_from(key);
        let max_forwards = self.b_max_forwards(key);
        let domain = self.domains.primary();
        let mut to = String::with_capacity("<sip:@>".len() + user.len() + domain.len());
        to.push_str("<sip:");
        to.push_str(user);
        to.push('@');
        to.push_str(domain);
        to.push('>');
        let offer = self.offer_for_b(key, &contact.flow);
        let spec = InviteSpec {
            request_uri: &contact.uri,
            from,
            to,
            flow: contact.flow,
            sent_by: addr_text(sent_by),
            max_forwards,
            offer: offer.as_ref(),
        };
        let invite = b_invite(&spec, &self.calls.branch_prefix, "mss", &mut self.rng);
        self.start_leg(
            now,
            key,
            invite,
            contact.flow,
            BTarget::Device {
                user: user.to_owned(),
            },
        )
    }

    /// Starts a B leg out through line `line` to the call's out-group number; false when
    /// the line has no target any more or the INVITE could not be sent.
    pub(crate) fn start_line_leg(&mut self, now: Now, key: CallKey, line: usize) -> bool {
        let Some(out) = self.lines.line_out(line) else {
            return self.next_line_or_fail(now, key);
        };
        let Some(call) = self.calls.table.get(&key) else {
            return false;
        };
        let number = call.out_number.clone().unwrap_or_default();
        let request_uri = format!("sip:{number}@{}", out.domain);
        let flow = Flow {
            transport: out.target.transport,
            remote: out.target.addr,
            connection: None,
        };
        let display = call
            .a
            .invite
            .headers()
            .from()
            .ok()
            .and_then(|f| f.display_name.map(str::to_owned));
        let from_uri = format!("<sip:{}@{}>", out.number, out.domain);
        let offer = self.offer_for_b(key, &flow);
        let spec = InviteSpec {
            request_uri: &request_uri,
            from: match display {
                Some(d) => format!("{d} {from_uri}"),
                None => from_uri,
            },
            to: format!("<{request_uri}>"),
            flow,
            sent_by: addr_text(out.target.local),
            max_forwards: self.b_max_forwards(key),
            offer: offer.as_ref(),
        };
        let mut invite = b_invite(&spec, &self.calls.branch_prefix, &out.number, &mut self.rng);
        let diversion = self.calls.table.get(&key).and_then(|c| c.diversion.clone());
        if let Some((user, reason)) = &diversion {
            // RFC 5806 §4: who forwarded the call and why, for the provider.
            let value = format!(
                "<sip:{user}@{}>;reason={reason};counter=1",
                self.domains.primary()
            );
            invite.headers_mut().push(diversion_header(), value);
        }
        tracing::debug!(line = %out.name, %number, "call out through a line");
        if let Some(call) = self.calls.table.get_mut(&key) {
            call.record.line = Some(out.name.clone());
        }
        self.start_leg(now, key, invite, flow, BTarget::Line { line, number })
    }

    /// Tries the next line of an outgoing call, or answers the caller with the best
    /// failure so far; false when no leg was started.
    pub(crate) fn next_line_or_fail(&mut self, now: Now, key: CallKey) -> bool {
        let next = self
            .calls
            .table
            .get_mut(&key)
            .and_then(|c| (!c.lines_left.is_empty()).then(|| c.lines_left.remove(0)));
        match next {
            Some(line) => self.start_line_leg(now, key, line),
            None => {
                self.answer_caller_with_best(now, key);
                false
            }
        }
    }

    /// Sends `invite` as B leg of call `key` to `flow`; false when the transaction layer
    /// refused it.
    fn start_leg(
        &mut self,
        now: Now,
        key: CallKey,
        invite: Request,
        flow: Flow,
        target: BTarget,
    ) -> bool {
        let mut invite = invite;
        self.add_session_offer(&mut invite);
        if let Some(by) = self.calls.transfers.referred_by(key) {
            // RFC 3892: the target of a transfer learns who sent the call its way. Its
            // INVITE has no offer and offers no 100rel: the offer comes in the 2xx
            // (RFC 3262 §5 would let a reliable 18x carry it, answered in the PRACK).
            let h = invite.headers_mut();
            h.push(mss_sip::HeaderName::ReferredBy, by.to_owned());
            h.replace(mss_sip::HeaderName::Supported, "timer");
        }
        let Some(call) = self.calls.table.get_mut(&key) else {
            return false;
        };
        let leg = call.b.len();
        // Most calls ring one device: room for one leg, not the four of a `Vec`'s first
        // push (a leg is ~400 bytes, held for the whole call).
        call.b.reserve_exact(1);
        call.b.push(BLeg::calling(target, invite.clone(), flow));
        let client = self.call_send(now, invite, flow, CallClient::Invite { key, leg });
        let Some(call) = self.calls.table.get_mut(&key) else {
            return false;
        };
        match (client, call.b.get_mut(leg)) {
            (Some(id), Some(b)) => {
                b.client = Some(id);
                true
            }
            (None, Some(b)) => {
                b.state = BState::Failed(StatusCode::SERVICE_UNAVAILABLE.as_u16());
                false
            }
            _ => false,
        }
    }
}
