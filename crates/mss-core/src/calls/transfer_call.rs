//! The call that rings a blind transfer's target (RFC 3515, DESIGN §8): a call of the
//! table like any other, routed by `routing.rs` (a user's devices, a group, out through
//! the lines, forwards), but with no caller's INVITE behind its A leg. What would go to
//! its caller goes to the transfer instead: its `2xx` joins the target to the transferee
//! (`transfer_join.rs`), its failure ends the transfer with that status in the last
//! NOTIFY. It writes no call record of its own: the transferred call's record goes on.
//!
//! Its INVITEs carry no offer (RFC 3264 §5: the target's `2xx` makes one, which becomes the
//! transferee's re-INVITE; the transferee's answer goes back in the ACK), From names the
//! transferee, and `Referred-By` names the transferor (RFC 3892).

use mss_services::Now;
use mss_sip::{Method, Request, Response, StatusCode};
use mss_store::{CallDirection, CallRecord};

use super::admission::Target;
use super::model::{ALeg, BTarget, Call, Side};
use super::transfer::{Step, SubCall};
use super::CallKey;
use crate::core::Core;

impl Core {
    /// Makes (without routing it yet) the call that rings `target` (dialled as `name`) for
    /// a transfer of call `key` asked by `transferor`; `None` when `key` has no transferee.
    pub(crate) fn new_transfer_call(
        &mut self,
        now: Now,
        key: CallKey,
        transferor: Side,
        name: &str,
        target: &Target,
        referred_by: String,
    ) -> Option<CallKey> {
        let domain = self.domains.primary().to_owned();
        let transferor_user = self.leg_user(key, transferor);
        let parent = self.calls.table.get(&key)?;
        let transferee = parent.other(transferor)?;
        let flow = parent.flow_of(transferee)?;
        // Who calls the target: the transferee, as the target's phone should show it.
        let (caller_user, from, caller) = match transferee {
            Side::A => {
                let from = parent
                    .a
                    .invite
                    .headers()
                    .get(&mss_sip::HeaderName::From)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_else(|| "<sip:anonymous@anonymous.invalid>;tag=x".to_owned());
                (
                    parent.caller_user.clone(),
                    from,
                    parent.record.caller.clone(),
                )
            }
            Side::B(i) => match &parent.leg(i)?.target {
                BTarget::Device { user } => (
                    Some(user.clone()),
                    format!("<sip:{user}@{domain}>;tag=transfer"),
                    user.clone(),
                ),
                BTarget::Line { number, .. } => (
                    None,
                    format!("<sip:{number}@{domain}>;tag=transfer"),
                    number.clone(),
                ),
            },
        };
        let server = parent.a.server;
        let tag = format!("{:016x}", rand::RngCore::next_u64(&mut self.rng));
        // Never sent: what a_response answers and b_from reads stand on it.
        let invite = Request::builder(Method::Invite, format!("sip:{name}@{domain}"))
            .via(format!(
                "SIP/2.0/UDP {domain};branch=z9hG4bK-transfer-{tag}"
            ))
            .max_forwards(mss_dialog::MAX_FORWARDS)
            .from(from)
            .to(format!("<sip:{name}@{domain}>"))
            .call_id(format!("transfer-{tag}"))
            .cseq(1)
            .build();
        let record = CallRecord {
            id: format!("t-{tag}"),
            started_at: now.unix_ms,
            answered_at: None,
            ended_at: None,
            caller,
            callee: name.to_owned(),
            answered_by: None,
            direction: match target {
                Target::Out(_) => CallDirection::Outbound,
                Target::User(_) | Target::Group(_) => CallDirection::Internal,
            },
            line: None,
            disposition: None,
            sip_code: None,
            ended_by: None,
            forwarded_from: None,
            transferred_by: None,
        };
        let sub = self.calls.next_key();
        let a = ALeg {
            invite,
            server,
            flow,
            dialog: None,
            answered: false,
        };
        // A number out is dialled for the transferor (its call_level was checked). The
        // target talks to the transferred call's relay ports once joined
        // (`transfer_join.rs`); ringing it needs none.
        let call = Call {
            caller_user,
            level_user: transferor_user,
            ..Call::new(record, now.mono, a)
        };
        self.calls.table.insert(sub, Box::new(call));
        self.calls.transfers.subs.insert(
            sub,
            SubCall {
                parent: key,
                referred_by,
            },
        );
        Some(sub)
    }

    /// What would go to the caller of transfer call `sub`: a provisional response changes
    /// nothing (the NOTIFY said `100 Trying`); the `2xx` of the target joins it to the
    /// transferee; a failure ends the transfer.
    pub(crate) fn on_transfer_call_response(&mut self, now: Now, sub: CallKey, rsp: Response) {
        let status = rsp.status().as_u16();
        if status < 200 {
            return;
        }
        let Some(call) = self.calls.table.get_mut(&sub) else {
            return;
        };
        call.a.answered = true;
        let answer = call.winner.and_then(|w| {
            let b = call.leg(w)?;
            let cseq = b.invite.headers().cseq().ok()?.seq;
            Some((w, b.confirmed.clone()?, cseq))
        });
        let Some(parent) = self.calls.transfers.subs.get(&sub).map(|s| s.parent) else {
            return;
        };
        let ringing = self
            .calls
            .transfers
            .by_call
            .get(&parent)
            .is_some_and(|t| matches!(t.step, Step::Ringing { sub: s } if s == sub));
        if status >= 300 {
            if ringing {
                let reason = String::from_utf8_lossy(rsp.reason()).into_owned();
                self.transfer_failed(now, parent, status, &reason, false);
            }
            return;
        }
        match answer {
            Some((w, dialog, cseq)) if ringing => {
                tracing::info!("the transfer target answered");
                self.start_joining(now, parent, sub, Side::B(w), dialog, cseq, &rsp);
            }
            Some((_, dialog, cseq)) => {
                // The transfer is over already: the target is not wanted.
                self.ack_and_bye(now, &dialog, cseq);
            }
            None => {
                if ringing {
                    self.transfer_failed(
                        now,
                        parent,
                        StatusCode::SERVER_INTERNAL_ERROR.as_u16(),
                        "Server Internal Error",
                        false,
                    );
                }
            }
        }
    }

    /// Ends transfer call `sub` (its transfer is over): the target's answered leg gets BYE,
    /// ringing ones CANCEL.
    pub(crate) fn end_transfer_call(&mut self, now: Now, sub: CallKey) {
        let Some(call) = self.calls.table.get(&sub) else {
            return;
        };
        if call.winner.is_some() {
            self.hang_up(now, sub, None, mss_store::EndedBy::Mss);
            return;
        }
        if let Some(call) = self.calls.table.get_mut(&sub) {
            call.a.answered = true;
        }
        let legs = self.calls.table.get(&sub).map_or(0, |c| c.b.len());
        for leg in 0..legs {
            self.cancel_leg(now, sub, leg);
        }
        self.end_call(now, sub, 487, mss_store::EndedBy::Mss);
        self.finish_if_done(now, sub);
    }
}
