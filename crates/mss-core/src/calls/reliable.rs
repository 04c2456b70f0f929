//! Reliable provisional responses in calls (RFC 3262), per leg:
//!
//! - A leg (mss is UAS): the dialog layer sends mss's `18x` reliably when the caller's
//!   INVITE asked for it (`Require: 100rel`: every one; `Supported: 100rel`: those with a
//!   session description), with mss's own RSeq, until the caller's PRACK; the PRACK is
//!   answered `200` here (one that matches nothing got `481` from the dialog layer); a
//!   reliable response never acknowledged within 64·T1 fails the call with `500` to the
//!   caller and the B legs cancelled (§3).
//! - B legs (mss is UAC): mss offers `Supported: 100rel` in its INVITEs; each reliable
//!   `18x` in order gets mss's PRACK with `RAck`, retransmissions and responses out of
//!   order are dropped (§4) instead of being relayed again. With a delayed offer (the
//!   caller's INVITE had no SDP) the offer of a reliable `18x` goes on to a caller that
//!   takes 100rel, and mss's PRACK waits for the caller's PRACK to carry its answer (§5).
//!   A provider that answers the
//!   PRACK `405` or `501` (it sent `Require: 100rel` without serving PRACK) is logged and
//!   gets no PRACK any more on that leg; the call goes on.

use mss_dialog::{DialogId, Provisional};
use mss_services::Now;
use mss_sip::{HeaderName, Request, Response, StatusCode};
use mss_store::EndedBy;
use mss_txn::ServerTransactionId;

use super::model::Side;
use super::{CallClient, CallKey};
use crate::core::Core;

/// What mss lists in `Supported` of the requests it starts in calls: reliable provisional
/// responses and session timers.
pub(crate) const SUPPORTED_TAGS: &str = "100rel, timer";

impl Core {
    /// Adds `Supported: 100rel, timer` to a request mss starts in a call.
    pub(crate) fn add_supported(request: &mut Request) {
        request
            .headers_mut()
            .replace(HeaderName::Supported, SUPPORTED_TAGS);
    }

    /// A provisional response with a To tag of B leg `leg` in its dialog `dialog`: a
    /// reliable one in order gets mss's PRACK. False when the response is a retransmission
    /// or out of order (RFC 3262 §4: not processed further, so not relayed).
    pub(crate) fn b_reliable_provisional(
        &mut self,
        now: Now,
        key: CallKey,
        leg: usize,
        dialog: &DialogId,
        rsp: &Response,
    ) -> bool {
        let (rseq, cseq) = match self.dialogs.reliable_provisional(dialog, rsp) {
            Ok(Provisional::Unreliable) => return true,
            Ok(Provisional::Repeated) => return false,
            Ok(Provisional::Acknowledge { rseq, cseq }) => (rseq, cseq),
            Err(e) => {
                tracing::debug!(error = %e, "reliable provisional response without RSeq dropped");
                return false;
            }
        };
        let Some(call) = self.calls.table.get_mut(&key) else {
            return true;
        };
        // A delayed offer (RFC 3262 §5): the offer of this 18x goes to the caller in
        // mss's reliable 18x, and the caller's PRACK brings the answer; mss's PRACK waits
        // for it to carry it. Only while nobody answered and the caller takes 100rel.
        let relays_offer = call.offer.is_none()
            && !rsp.body().is_empty()
            && call.winner.is_none()
            && !call.a.answered
            && !call.b.iter().any(|b| b.prack_waits.is_some())
            && mss_dialog::supports(call.a.invite.headers(), mss_dialog::TAG_100REL);
        let Some(b) = call.b.get_mut(leg) else {
            return true;
        };
        if b.prack_refused {
            return true;
        }
        if relays_offer && b.prack_waits.is_none() {
            b.prack_waits = Some((dialog.clone(), rseq, cseq));
            return true;
        }
        self.send_prack(now, key, leg, dialog, rseq, cseq, None);
        true
    }

    /// Sends mss's PRACK on B leg `leg` for RSeq `rseq` of its INVITE `cseq`, with the
    /// caller's PRACK's body when it carries one (`from`).
    #[allow(clippy::too_many_arguments)]
    fn send_prack(
        &mut self,
        now: Now,
        key: CallKey,
        leg: usize,
        dialog: &DialogId,
        rseq: u32,
        cseq: u32,
        from: Option<&Request>,
    ) {
        let Some(flow) = self
            .calls
            .table
            .get(&key)
            .and_then(|c| c.leg(leg))
            .map(|b| b.flow)
        else {
            return;
        };
        match self.dialogs.prack(dialog, rseq, cseq, &mut self.rng) {
            Ok(mut prack) => {
                Self::add_supported(&mut prack);
                if let Some(from) = from.filter(|r| !r.body().is_empty()) {
                    super::outgoing::copy_body_request(from.headers(), from.body(), &mut prack);
                }
                self.call_send(now, prack, flow, CallClient::Prack { key, leg });
            }
            Err(e) => tracing::debug!(error = %e, "PRACK not sent"),
        }
    }

    /// The final answer (or `None`) to mss's PRACK on B leg `leg`: `405`/`501` means the
    /// peer does not take PRACK after all; it gets none any more, the call goes on.
    pub(crate) fn on_prack_response(&mut self, key: CallKey, leg: usize, rsp: Option<&Response>) {
        let status = rsp.map_or(408, |r| r.status().as_u16());
        if matches!(status, 405 | 501) {
            tracing::info!(
                leg,
                status,
                "the callee's side required 100rel but refuses PRACK; no more PRACKs on this leg"
            );
            if let Some(b) = self
                .calls
                .table
                .get_mut(&key)
                .and_then(|c| c.b.get_mut(leg))
            {
                b.prack_refused = true;
            }
        } else if status >= 300 {
            tracing::debug!(leg, status, "PRACK not accepted");
        }
    }

    /// A PRACK of the caller that matched our reliable provisional response (the dialog
    /// layer stopped its retransmissions and let out what waited for it): `200`, then what
    /// waited (the next reliable `18x`, or the `2xx`).
    pub(crate) fn on_prack(
        &mut self,
        now: Now,
        server: ServerTransactionId,
        req: &Request,
        id: &DialogId,
    ) {
        let rsp = match self.dialogs.response(id, req, StatusCode::OK, "OK") {
            Ok(r) => r,
            Err(_) => Response::for_request(req, StatusCode::OK, "OK".to_owned()),
        };
        self.respond(now, server, rsp);
        self.drain_dialogs(now);
        // A B leg's PRACK that waited for this one's answer (a delayed offer) goes now,
        // with it.
        let Some((key, Side::A)) = self.calls.by_dialog.get(id).copied() else {
            return;
        };
        let waiting: Vec<(usize, (DialogId, u32, u32))> = self
            .calls
            .table
            .get_mut(&key)
            .map(|c| {
                c.b.iter_mut()
                    .enumerate()
                    .filter_map(|(i, b)| b.prack_waits.take().map(|w| (i, w)))
                    .collect()
            })
            .unwrap_or_default();
        for (leg, (dialog, rseq, cseq)) in waiting {
            self.send_prack(now, key, leg, &dialog, rseq, cseq, Some(req));
        }
    }

    /// The call of A dialog `id` ends while its `2xx` has not gone out (held for a PRACK):
    /// the caller's INVITE gets `487` in its place (RFC 3261 §15: no BYE in an early
    /// dialog of ours), which also drops the held `2xx`.
    pub(crate) fn end_unsent_answer(&mut self, now: Now, id: &DialogId) {
        let Some((key, Side::A)) = self.calls.by_dialog.get(id).copied() else {
            return;
        };
        let Some(invite) = self.calls.table.get(&key).map(|c| c.a.invite.clone()) else {
            return;
        };
        let Ok(rsp) = self.dialogs.response(
            id,
            &invite,
            StatusCode::REQUEST_TERMINATED,
            "Request Terminated",
        ) else {
            return;
        };
        if let Err(e) = self.dialogs.send_response(now.mono, id, rsp) {
            tracing::debug!(error = %e, "487 to the caller not sent");
        }
        self.drain_dialogs(now);
    }

    /// Our reliable provisional response in dialog `id` got no PRACK within 64·T1 (RFC
    /// 3262 §3): the caller's INVITE fails with `500` and the B legs are cancelled (a B
    /// leg that answered already gets its BYE).
    pub(crate) fn on_prack_timeout(&mut self, now: Now, id: &DialogId) {
        let Some((key, side)) = self.calls.by_dialog.get(id).copied() else {
            return;
        };
        if side != Side::A {
            return;
        }
        tracing::info!("no PRACK for our reliable provisional response: the call fails");
        let Some(call) = self.calls.table.get(&key) else {
            return;
        };
        let rsp = match self.dialogs.response(
            id,
            &call.a.invite,
            StatusCode::SERVER_INTERNAL_ERROR,
            "Provisional Response Not Acknowledged",
        ) {
            Ok(r) => r,
            Err(_) => return,
        };
        let answered = call.winner.is_some();
        if answered {
            // The 2xx waited for the PRACK and is dropped: the caller gets the 500, the
            // B leg that answered its BYE.
            self.fail_unsent_answer(now, key, id, rsp, EndedBy::Mss);
        } else {
            self.cancel_call(now, key, StatusCode::SERVER_INTERNAL_ERROR, EndedBy::Mss);
        }
    }

    /// The caller of call `key` cancelled its INVITE `invite` after a callee answered but
    /// before mss's `2xx` went out (held for a PRACK, RFC 3262 §3): the final response has
    /// not been sent, so the CANCEL still counts (RFC 3261 §9.2): the caller gets `487`,
    /// the callee who answered its ACK and BYE. False when the call is not in that state
    /// (the `2xx` went out: the CANCEL has no effect).
    pub(crate) fn cancel_unsent_answer(
        &mut self,
        now: Now,
        key: CallKey,
        invite: ServerTransactionId,
    ) -> bool {
        let found = self.calls.table.get(&key).and_then(|c| {
            let d = c.a.dialog.as_ref()?;
            let early = self
                .dialogs
                .get(d)
                .is_some_and(|x| x.state() != mss_dialog::DialogState::Confirmed);
            (c.a.server == invite && c.winner.is_some() && early)
                .then(|| (key, d.clone(), c.a.invite.clone()))
        });
        let Some((key, id, request)) = found else {
            return false;
        };
        let Ok(rsp) = self.dialogs.response(
            &id,
            &request,
            StatusCode::REQUEST_TERMINATED,
            "Request Terminated",
        ) else {
            return false;
        };
        tracing::debug!("call cancelled by the caller while its 2xx waited for a PRACK");
        self.fail_unsent_answer(now, key, &id, rsp, EndedBy::Caller);
        true
    }

    /// Call `key` ends before its `2xx` to the caller (A dialog `id`, held for a PRACK)
    /// went out: `rsp` (a final failure) takes its place, which drops the held `2xx`; the
    /// B leg that answered gets its ACK and BYE.
    fn fail_unsent_answer(
        &mut self,
        now: Now,
        key: CallKey,
        id: &DialogId,
        rsp: Response,
        by: EndedBy,
    ) {
        let status = rsp.status().as_u16();
        let Some(call) = self.calls.table.get_mut(&key) else {
            return;
        };
        call.a.answered = true;
        call.a.dialog = None;
        let relay = call.ack_relay.take();
        let server = call.a.server;
        self.calls.by_server.remove(&server);
        if let Err(e) = self.dialogs.send_response(now.mono, id, rsp) {
            tracing::debug!(error = %e, status, "final response to the caller not sent");
        }
        self.drain_dialogs(now);
        self.forget_dialog(now, id);
        if let Some(relay) = relay {
            // The B leg's 2xx waited for the caller's ACK, which will not come.
            self.ack_and_bye(now, &relay.to, relay.cseq);
        }
        self.end_call(now, key, status, by);
        self.finish_if_done(now, key);
    }
}
