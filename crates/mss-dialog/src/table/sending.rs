//! What mss sends within its dialogs: new requests (RFC 3261 §12.2.1.1), the ACK for a
//! `2xx` (§13.2.2.4) and responses, a `2xx` to an INVITE retransmitted until its ACK
//! (§13.3.1.4).

use std::collections::VecDeque;
use std::time::Instant;

use mss_sip::{Method, Request, Response, StatusCode};
use mss_txn::Timers;
use rand::RngCore;

use super::{find_id_mut, Dialogs, Entry};
use crate::error::DialogError;
use crate::id::DialogId;
use crate::invite_usage::OurInvite;
use crate::output::DialogOutput;
use crate::retransmission::TwoXxRetransmission;
use crate::role::DialogRole;
use crate::state::DialogState;

impl Dialogs {
    /// A new request of dialog `id` (BYE, re-INVITE, UPDATE, INFO, MESSAGE, REFER, …) built
    /// by the rules of RFC 3261 §12.2.1.1 (see [`crate::Dialog::ack`] for the fields), with
    /// the local CSeq one higher. Add a body or headers, then start a client transaction
    /// for it and give its responses to [`Dialogs::handle_response`].
    ///
    /// A re-INVITE waits for its final response (an INVITE of the peer meanwhile gets
    /// `491`). A BYE terminates the dialog (RFC 3261 §15.1.1).
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`]; [`DialogError::NotANewRequest`] for ACK and CANCEL;
    /// [`DialogError::Terminated`] for anything but a BYE in a terminated dialog;
    /// for an INVITE, [`DialogError::InviteInProgress`] (RFC 3261 §14.1) and
    /// [`DialogError::RetryScheduled`]; for a BYE of the callee,
    /// [`DialogError::ByeInEarlyDialog`] and [`DialogError::AwaitingAck`] (RFC 3261 §15);
    /// [`DialogError::CSeqExhausted`].
    pub fn request(
        &mut self,
        id: &DialogId,
        method: Method,
        rng: &mut dyn RngCore,
    ) -> Result<Request, DialogError> {
        let entry = find_id_mut(&mut self.by_call_id, id).ok_or(DialogError::UnknownDialog)?;
        match method {
            Method::Invite if entry.dialog.state != DialogState::Terminated => {
                if entry.usage.retry.is_some() {
                    return Err(DialogError::RetryScheduled);
                }
                if entry.usage.invite_in_progress() {
                    return Err(DialogError::InviteInProgress);
                }
            }
            Method::Bye => {
                if entry.dialog.role == DialogRole::Uas && entry.dialog.state == DialogState::Early
                {
                    return Err(DialogError::ByeInEarlyDialog);
                }
                if entry.usage.unacked_2xx.is_some() {
                    return Err(DialogError::AwaitingAck);
                }
            }
            _ => {}
        }
        let is_invite = method == Method::Invite;
        let is_bye = method == Method::Bye;
        let request = entry.dialog.request(method, rng)?;
        if let (true, Some(cseq)) = (is_invite, entry.dialog.local_cseq) {
            entry.usage.ours = Some(OurInvite {
                cseq,
                initial: false,
            });
        }
        if is_bye {
            entry.usage.retry = None;
            entry.reschedule(&mut self.timers);
            self.prune();
        }
        Ok(request)
    }

    /// Builds the ACK for the `2xx` to our INVITE `invite_cseq` in dialog `id`
    /// ([`crate::Dialog::ack`]) and sends it ([`Dialogs::send_ack`]): for an ACK without
    /// body or credentials.
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`].
    pub fn ack(
        &mut self,
        id: &DialogId,
        invite_cseq: u32,
        rng: &mut dyn RngCore,
    ) -> Result<(), DialogError> {
        let dialog = self.get(id).ok_or(DialogError::UnknownDialog)?;
        let ack = dialog.ack(invite_cseq, rng);
        self.send_ack(id, ack)
    }

    /// Sends `ack`, the ACK for a `2xx` to our INVITE in dialog `id` (built with
    /// [`crate::Dialog::ack`], then given the INVITE's credentials or a delayed answer as
    /// needed): it comes out as [`DialogOutput::Ack`], and again for every retransmission of
    /// that `2xx` (RFC 3261 §13.2.2.4). It replaces the ACK of an earlier INVITE.
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`], [`DialogError::NotAnAck`],
    /// [`DialogError::Malformed`] when its CSeq does not parse.
    pub fn send_ack(&mut self, id: &DialogId, ack: Request) -> Result<(), DialogError> {
        if *ack.method() != Method::Ack {
            return Err(DialogError::NotAnAck(ack.method().clone()));
        }
        let seq = ack.headers().cseq()?.seq;
        let entry = find_id_mut(&mut self.by_call_id, id).ok_or(DialogError::UnknownDialog)?;
        entry.usage.our_ack = Some(Box::new((seq, ack.clone())));
        self.outputs.push_back(DialogOutput::Ack {
            id: entry.dialog.id.clone(),
            request: ack,
        });
        Ok(())
    }

    /// A response of dialog `id` to `request` ([`crate::Dialog::response`]: our To tag,
    /// Record-Route for the dialog-creating request, our Contact where needed).
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`].
    pub fn response(
        &self,
        id: &DialogId,
        request: &Request,
        status: StatusCode,
        reason: &str,
    ) -> Result<Response, DialogError> {
        let dialog = self.get(id).ok_or(DialogError::UnknownDialog)?;
        Ok(dialog.response(request, status, reason))
    }

    /// Sends `response`, mss's answer to a request of dialog `id`: it comes out at once as
    /// [`DialogOutput::Response`]. For an INVITE:
    /// - a `2xx` confirms the dialog and is sent again at T1, 2·T1 … T2 until the ACK with
    ///   its CSeq number comes; after 64·T1 without ACK, [`DialogOutput::AckTimeout`]
    ///   (RFC 3261 §13.3.1.4, RFC 6026 §7.1);
    /// - a final non-`2xx` ends an early dialog (the INVITE failed; remove it), and leaves a
    ///   confirmed one as it was (a rejected re-INVITE);
    /// - when the INVITE that created the dialog knows 100rel (RFC 3262 §3), a `101`-`199`
    ///   goes reliably (`Require: 100rel`, the next RSeq; always with `Require: 100rel` in
    ///   the INVITE, only with a body with `Supported: 100rel`), sent again at T1, 2·T1,
    ///   4·T1 … until its PRACK ([`crate::RequestOutcome::InDialog`]) and given up after
    ///   64·T1 ([`DialogOutput::PrackTimeout`]); the next one waits for that PRACK, a `2xx`
    ///   too when the unacknowledged one carried a body; after the final response none goes.
    ///
    /// A final response ends the peer's INVITE in progress. Answers the dialog layer
    /// decided ([`crate::Rejection`]) need not come here.
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`] (nothing is sent), [`DialogError::Malformed`] when
    /// its CSeq does not parse.
    pub fn send_response(
        &mut self,
        now: Instant,
        id: &DialogId,
        response: Response,
    ) -> Result<(), DialogError> {
        let cseq = response.headers().cseq()?;
        self.clock = Some(now);
        let entry = find_id_mut(&mut self.by_call_id, id).ok_or(DialogError::UnknownDialog)?;
        let response = if cseq.method == Method::Invite {
            match entry.usage.reliable.as_mut() {
                Some(reliable) => reliable.outgoing(now, response, cseq.seq, &self.config.timers),
                None => Some(response),
            }
        } else {
            Some(response)
        };
        if let Some(response) = response {
            entry.deliver(now, response, &self.config.timers, &mut self.outputs);
        }
        entry.reschedule(&mut self.timers);
        self.prune();
        Ok(())
    }

    /// Gives up the scheduled retry of a re-INVITE that met glare (the offer it carried is
    /// no longer wanted). Returns true when one was scheduled.
    pub fn cancel_reinvite_retry(&mut self, id: &DialogId) -> bool {
        let Some(entry) = find_id_mut(&mut self.by_call_id, id) else {
            return false;
        };
        let had = entry.usage.retry.take().is_some();
        entry.reschedule(&mut self.timers);
        self.prune();
        had
    }
}

impl Entry {
    /// Sends `response` of this dialog now (see [`Dialogs::send_response`]).
    pub(crate) fn deliver(
        &mut self,
        now: Instant,
        response: Response,
        timers: &Timers,
        outputs: &mut VecDeque<DialogOutput>,
    ) {
        let status = response.status().0;
        let cseq = response.headers().cseq().ok();
        let final_to_invite = cseq
            .as_ref()
            .is_some_and(|c| c.method == Method::Invite && status >= 200);
        if let (true, Some(cseq)) = (final_to_invite, cseq.as_ref()) {
            if self.usage.theirs == Some(cseq.seq) {
                self.usage.theirs = None;
            }
            if status < 300 {
                if self.dialog.state == DialogState::Early {
                    self.dialog.state = DialogState::Confirmed;
                }
                self.usage.unacked_2xx = Some(Box::new(TwoXxRetransmission::start(
                    now,
                    response.clone(),
                    cseq.seq,
                    timers,
                )));
            } else if self.dialog.state == DialogState::Early {
                self.dialog.state = DialogState::Terminated;
            }
        }
        outputs.push_back(DialogOutput::Response {
            id: self.dialog.id.clone(),
            response,
        });
        if final_to_invite {
            self.release_retry(outputs);
        }
    }
}
