//! Requests received: which dialog they belong to, and what the dialog layer answers itself
//! (RFC 3261 §12.2.2, §14.2).

use std::collections::VecDeque;
use std::time::Instant;

use mss_sip::{HeaderName, Method, ParseError, ParseErrorKind, Request};
use rand::{Rng, RngCore};

use super::{find_mut, Dialogs, Entry, TimerHeap};
use crate::dialog::{first_contact, refreshes_target};
use crate::in_dialog::unknown_dialog_answer;
use crate::outcome::RequestOutcome;
use crate::output::DialogOutput;
use crate::rejection::Rejection;
use crate::state::DialogState;

/// The upper end of the Retry-After of a `500` to an INVITE that arrived during another
/// (RFC 3261 §14.2: "between 0 and 10 seconds").
const INVITE_RETRY_AFTER_MAX: u32 = 10;

/// `rejection`, or for an ACK (never answered) [`RequestOutcome::StrayAck`].
fn refuse(is_ack: bool, rejection: Rejection) -> RequestOutcome {
    if is_ack {
        RequestOutcome::StrayAck
    } else {
        RequestOutcome::Reject(rejection)
    }
}

impl Dialogs {
    /// A request received from the network, after the transaction layer (a new server
    /// transaction, or an ACK it passed up). Requests without To tag are
    /// [`RequestOutcome::OutOfDialog`]. A request with a To tag is matched to its dialog by
    /// Call-ID, To tag (local) and From tag (remote), and then (RFC 3261 §12.2.2, §14.2):
    /// - no such dialog, or a terminated one (but for BYE): `481` (an ACK: dropped);
    /// - an ACK with the CSeq number of our `2xx` stops its retransmissions;
    /// - a CSeq number below the remote CSeq: `500`; otherwise it becomes the remote CSeq;
    /// - a re-INVITE while our INVITE waits for its final response: `491` (glare); while the
    ///   peer's previous INVITE has none yet: `500` with a random Retry-After of 0-10 s;
    /// - a re-INVITE or UPDATE moves the remote target to its Contact;
    /// - a BYE terminates the dialog (retransmissions of our `2xx` stop);
    /// - a PRACK (RFC 3262 §3) without `RAck` is malformed (`400`); one whose `RAck` names
    ///   no unacknowledged reliable provisional response of ours gets `481`; a matching one
    ///   stops that response's retransmissions and lets out what waited for it (the next
    ///   reliable provisional response, or the `2xx`), timed from the last instant the
    ///   table was given (use [`Dialogs::handle_request_at`] to give the PRACK's).
    ///
    /// CANCEL is the transaction layer's (§9.2); one passed here is matched but changes
    /// nothing.
    pub fn handle_request(&mut self, request: &Request, rng: &mut dyn RngCore) -> RequestOutcome {
        let outcome = self.on_request(self.clock, request, rng);
        self.prune();
        outcome
    }

    /// [`Dialogs::handle_request`] for a request received at `now` (what a PRACK lets out
    /// is timed from it).
    pub fn handle_request_at(
        &mut self,
        now: Instant,
        request: &Request,
        rng: &mut dyn RngCore,
    ) -> RequestOutcome {
        self.clock = Some(now);
        let outcome = self.on_request(Some(now), request, rng);
        self.prune();
        outcome
    }

    fn on_request(
        &mut self,
        now: Option<Instant>,
        request: &Request,
        rng: &mut dyn RngCore,
    ) -> RequestOutcome {
        let h = request.headers();
        let method = request.method();
        let is_ack = *method == Method::Ack;
        let local_tag = match h.to_tag() {
            Ok(tag) => tag,
            Err(e) => return refuse(is_ack, Rejection::Malformed(e)),
        };
        let Some(local_tag) = local_tag else {
            return RequestOutcome::OutOfDialog;
        };
        let (from_tag, call_id, cseq) = match (h.from_tag(), h.call_id(), h.cseq()) {
            (Ok(from_tag), Ok(call_id), Ok(cseq)) => (from_tag, call_id, cseq),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return refuse(is_ack, Rejection::Malformed(e))
            }
        };
        let remote_tag = from_tag.unwrap_or("");
        let Some(entry) = find_mut(&mut self.by_call_id, call_id, local_tag, remote_tag) else {
            return match unknown_dialog_answer(request) {
                Some(rejection) => RequestOutcome::Reject(rejection),
                None => RequestOutcome::StrayAck,
            };
        };
        match method {
            Method::Ack => return entry.on_ack(cseq.seq, &mut self.timers, &mut self.outputs),
            Method::Cancel => {
                return RequestOutcome::InDialog {
                    id: entry.dialog.id.clone(),
                    target_refreshed: false,
                }
            }
            _ => {}
        }
        if cseq.method != *method {
            let e = ParseError::in_header(ParseErrorKind::CSeqMethodMismatch, HeaderName::CSeq, 0);
            return RequestOutcome::Reject(Rejection::Malformed(e));
        }
        if entry.dialog.state == DialogState::Terminated && *method != Method::Bye {
            return RequestOutcome::Reject(Rejection::UnknownDialog);
        }
        // Everything that can fail to parse is read before the dialog changes.
        let contact = if refreshes_target(method) {
            match first_contact(h) {
                Ok(contact) => contact,
                Err(e) => return RequestOutcome::Reject(Rejection::Malformed(e)),
            }
        } else {
            None
        };
        let rack = if *method == Method::Prack {
            match crate::reliable::rack(h) {
                Ok(Some(rack)) => Some(rack),
                Ok(None) => {
                    let e = ParseError::in_header(
                        ParseErrorKind::MissingHeader,
                        crate::reliable::rack_header(),
                        0,
                    );
                    return RequestOutcome::Reject(Rejection::Malformed(e));
                }
                Err(e) => return RequestOutcome::Reject(Rejection::Malformed(e)),
            }
        } else {
            None
        };
        if let Err(rejection) = entry.dialog.receive_cseq(cseq.seq) {
            return RequestOutcome::Reject(rejection);
        }
        if let Some(rack) = rack {
            // RFC 3262 §3: a PRACK that matches no unacknowledged reliable provisional
            // response of ours gets 481.
            let timers = self.config.timers;
            let released = match (now, entry.usage.reliable.as_mut()) {
                (Some(now), Some(reliable)) => reliable
                    .on_prack(now, &rack, &timers)
                    .map(|r| r.map(|r| (now, r))),
                _ => Err(()),
            };
            let Ok(released) = released else {
                return RequestOutcome::Reject(Rejection::UnknownDialog);
            };
            if let Some((now, response)) = released {
                entry.deliver(now, response, &timers, &mut self.outputs);
            }
            entry.reschedule(&mut self.timers);
        }
        let mut target_refreshed = false;
        match method {
            Method::Invite => {
                if entry.usage.ours.is_some() {
                    return RequestOutcome::Reject(Rejection::RequestPending);
                }
                if entry.usage.theirs.is_some() {
                    let retry_after = rng.gen_range(0..=INVITE_RETRY_AFTER_MAX);
                    return RequestOutcome::Reject(Rejection::InviteInProgress { retry_after });
                }
                entry.usage.theirs = Some(cseq.seq);
                target_refreshed = entry.dialog.refresh_remote_target(contact);
            }
            Method::Update => target_refreshed = entry.dialog.refresh_remote_target(contact),
            Method::Bye => {
                entry.dialog.state = DialogState::Terminated;
                entry.usage.unacked_2xx = None;
                entry.usage.retry = None;
                entry.reschedule(&mut self.timers);
            }
            _ => {}
        }
        RequestOutcome::InDialog {
            id: entry.dialog.id.clone(),
            target_refreshed,
        }
    }
}

impl Entry {
    /// An ACK in this dialog: the one for our `2xx` stops its retransmissions (RFC 3261
    /// §13.3.1.4; matched by CSeq number), a repeated one is recognised, any other is stray.
    fn on_ack(
        &mut self,
        seq: u32,
        heap: &mut TimerHeap,
        outputs: &mut VecDeque<DialogOutput>,
    ) -> RequestOutcome {
        let id = self.dialog.id.clone();
        if self
            .usage
            .unacked_2xx
            .as_ref()
            .is_some_and(|r| r.cseq == seq)
        {
            self.usage.unacked_2xx = None;
            self.usage.acked_cseq = Some(seq);
            self.reschedule(heap);
            self.release_retry(outputs);
            RequestOutcome::Ack { id, first: true }
        } else if self.usage.acked_cseq == Some(seq) {
            RequestOutcome::Ack { id, first: false }
        } else {
            RequestOutcome::StrayAck
        }
    }
}
