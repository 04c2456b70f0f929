//! Responses received: dialogs created as UAC (RFC 3261 §12.1.2), confirmed and ended
//! (§12.3, §13.2.2), target refreshes (§12.2.1.2), the ACK again for a retransmitted `2xx`
//! (§13.2.2.4) and the wait after a `491` (§14.1).

use std::collections::VecDeque;
use std::time::Instant;

use mss_sip::{CSeq, Method, Request, Response};
use rand::RngCore;

use super::{find_mut, Dialogs, Entry, TimerHeap};
use crate::dialog::{first_contact, Dialog};
use crate::error::DialogError;
use crate::glare::glare_delay;
use crate::id::DialogId;
use crate::invite_usage::{InviteUsage, OurInvite, ReinviteRetry};
use crate::outcome::{ResponseEffect, ResponseOutcome};
use crate::output::DialogOutput;
use crate::rejection::REQUEST_PENDING;
use crate::route_set::RouteSet;
use crate::state::DialogState;

impl Dialogs {
    /// A response to a request mss sent within a dialog, or to an INVITE whose dialog
    /// exists (a provisional response or `2xx` of a known fork, a `2xx` retransmission that
    /// came as a stray after the transaction ended). Matched by Call-ID, From tag (local)
    /// and To tag (remote); it creates no dialog (see [`Dialogs::handle_invite_response`]).
    /// A final non-`2xx` response to an INVITE still ends that INVITE's early dialogs.
    ///
    /// # Errors
    /// [`DialogError::Malformed`] when a header read does not parse.
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &Response,
        rng: &mut dyn RngCore,
    ) -> Result<ResponseOutcome, DialogError> {
        let outcome = self.on_response(now, response, None, rng);
        self.prune();
        outcome
    }

    /// A response to `invite`, an INVITE mss sent outside any dialog (a B leg): as
    /// [`Dialogs::handle_response`], and a provisional response with a To tag or a `2xx`
    /// that matches no dialog creates one (RFC 3261 §12.1.2; see [`Dialog::uac`]), early or
    /// confirmed. Several forks of the INVITE create several dialogs, told apart by their To
    /// tags. Give every response of the INVITE's client transaction here, retransmitted `2xx`
    /// responses included.
    ///
    /// # Errors
    /// [`DialogError::ResponseMismatch`] when the response does not answer `invite`,
    /// [`DialogError::TableFull`] when a new dialog does not fit (a `2xx` must still be
    /// acknowledged and ended: RFC 3261 §13.2.2.4), and those of [`Dialog::uac`] and
    /// [`Dialogs::handle_response`].
    pub fn handle_invite_response(
        &mut self,
        now: Instant,
        invite: &Request,
        response: &Response,
        rng: &mut dyn RngCore,
    ) -> Result<ResponseOutcome, DialogError> {
        let outcome = self.on_response(now, response, Some(invite), rng);
        self.prune();
        outcome
    }

    fn on_response(
        &mut self,
        now: Instant,
        response: &Response,
        invite: Option<&Request>,
        rng: &mut dyn RngCore,
    ) -> Result<ResponseOutcome, DialogError> {
        let h = response.headers();
        let cseq = h.cseq()?;
        let status = response.status().0;
        let call_id = h.call_id()?;
        let Some(local_tag) = h.from_tag()? else {
            return Ok(ResponseOutcome::NoDialog);
        };
        if let Some(invite) = invite {
            let ih = invite.headers();
            // `from_tag` parses the INVITE's From once; the caller lends the same INVITE
            // for each response, so later ones read the remembered tag.
            let answers =
                ih.call_id()? == call_id && ih.from_tag()? == Some(local_tag) && ih.cseq()? == cseq;
            if !answers {
                return Err(DialogError::ResponseMismatch);
            }
        }
        // §12.3, §13.2.2.3: a final non-2xx answer to the INVITE ends all its early
        // dialogs, whatever its To tag (it may come from a proxy, with a tag of its own).
        if cseq.method == Method::Invite && status >= 300 {
            let ended = self.end_early_dialogs(call_id, local_tag, cseq.seq);
            if !ended.is_empty() {
                return Ok(ResponseOutcome::EarlyDialogsEnded(ended));
            }
        }
        let Some(remote_tag) = h.to_tag()? else {
            return Ok(ResponseOutcome::NoDialog);
        };
        if status < 101 {
            return Ok(ResponseOutcome::NoDialog);
        }
        if let Some(entry) = find_mut(&mut self.by_call_id, call_id, local_tag, remote_tag) {
            let effect = entry.apply_response(
                now,
                response,
                &cseq,
                rng,
                &mut self.timers,
                &mut self.outputs,
            )?;
            let id = entry.dialog.id.clone();
            return Ok(ResponseOutcome::Applied { id, effect });
        }
        let Some(invite) = invite else {
            return Ok(ResponseOutcome::NoDialog);
        };
        if status >= 300 {
            return Ok(ResponseOutcome::NoDialog);
        }
        self.check_room()?;
        let dialog = Dialog::uac(invite, response)?;
        let (usage, effect) = if status < 200 {
            let ours = OurInvite {
                cseq: cseq.seq,
                initial: true,
            };
            let usage = InviteUsage {
                ours: Some(ours),
                ..InviteUsage::default()
            };
            (usage, ResponseEffect::Early { created: true })
        } else {
            let effect = ResponseEffect::AckNeeded {
                cseq: cseq.seq,
                created: true,
            };
            (InviteUsage::default(), effect)
        };
        let id = self.insert(dialog, usage)?;
        Ok(ResponseOutcome::Applied { id, effect })
    }

    /// Terminates the early dialogs created by our INVITE `seq` of `call_id` with
    /// `local_tag`; returns their ids.
    fn end_early_dialogs(&mut self, call_id: &str, local_tag: &str, seq: u32) -> Vec<DialogId> {
        let Some(bucket) = self.by_call_id.get_mut(call_id) else {
            return Vec::new();
        };
        bucket
            .iter_mut()
            .filter(|e| {
                e.dialog.id.local_tag() == local_tag
                    && e.dialog.state == DialogState::Early
                    && e.usage.ours
                        == Some(OurInvite {
                            cseq: seq,
                            initial: true,
                        })
            })
            .map(|e| {
                e.dialog.state = DialogState::Terminated;
                e.usage.ours = None;
                e.dialog.id.clone()
            })
            .collect()
    }
}

impl Entry {
    /// Applies a response of this dialog.
    fn apply_response(
        &mut self,
        now: Instant,
        response: &Response,
        cseq: &CSeq,
        rng: &mut dyn RngCore,
        heap: &mut TimerHeap,
        outputs: &mut VecDeque<DialogOutput>,
    ) -> Result<ResponseEffect, DialogError> {
        let status = response.status().0;
        let h = response.headers();
        if matches!(cseq.method, Method::Cancel | Method::Ack) {
            // A CANCEL is not a request within the dialog (§9.1): its `481` (it came too
            // late) says nothing about the dialog. No ACK is ever answered.
            return Ok(ResponseEffect::Processed);
        }
        if cseq.method == Method::Invite {
            if status < 200 {
                if self.dialog.state != DialogState::Early {
                    return Ok(ResponseEffect::Processed);
                }
                let contact = first_contact(h)?;
                self.dialog.refresh_remote_target(contact);
                return Ok(ResponseEffect::Early { created: false });
            }
            if status < 300 {
                return self.on_invite_2xx(response, cseq.seq, rng, outputs);
            }
            if self.usage.ours.is_some_and(|o| o.cseq == cseq.seq) {
                self.usage.ours = None;
                if status == REQUEST_PENDING.0 && self.dialog.state == DialogState::Confirmed {
                    let retry_at = now + glare_delay(self.dialog.role, rng);
                    self.usage.retry = Some(ReinviteRetry::At(retry_at));
                    self.reschedule(heap);
                    return Ok(ResponseEffect::GlareRetry { retry_at });
                }
            }
        }
        // §12.2.1.2: a 481 or 408 to a request within the dialog ends it; §15.1.1: so does
        // the final response to our BYE, but for a challenge, answered with a new BYE.
        let bye_done = cseq.method == Method::Bye && status >= 200 && !matches!(status, 401 | 407);
        if matches!(status, 408 | 481) || bye_done {
            self.dialog.state = DialogState::Terminated;
            self.usage.ours = None;
            self.usage.unacked_2xx = None;
            self.usage.retry = None;
            self.reschedule(heap);
            return Ok(ResponseEffect::Terminated);
        }
        if cseq.method == Method::Update && (200..300).contains(&status) {
            let contact = first_contact(h)?;
            self.dialog.refresh_remote_target(contact);
        }
        Ok(ResponseEffect::Processed)
    }

    /// A `2xx` to our INVITE `seq` (RFC 3261 §13.2.2.4): acknowledged already → the same ACK
    /// again; else the dialog is confirmed, its remote target refreshed, an early dialog's
    /// route set computed again from the `2xx`, and the caller is to ACK it.
    fn on_invite_2xx(
        &mut self,
        response: &Response,
        seq: u32,
        rng: &mut dyn RngCore,
        outputs: &mut VecDeque<DialogOutput>,
    ) -> Result<ResponseEffect, DialogError> {
        if let Some((acked, ack)) = self.usage.our_ack.as_deref() {
            if *acked >= seq {
                // The ACK of an older INVITE is gone: a new one, without body, stops that
                // INVITE's 2xx all the same.
                let request = if *acked == seq {
                    ack.clone()
                } else {
                    self.dialog.ack(seq, rng)
                };
                outputs.push_back(DialogOutput::Ack {
                    id: self.dialog.id.clone(),
                    request,
                });
                return Ok(ResponseEffect::AckRepeated);
            }
        }
        let h = response.headers();
        let contact = first_contact(h)?;
        let early = self.dialog.state == DialogState::Early;
        let route_set = if early {
            Some(RouteSet::for_uac(h)?)
        } else {
            None
        };
        if self.usage.ours.is_some_and(|o| o.cseq == seq) {
            self.usage.ours = None;
        }
        if let Some(route_set) = route_set {
            self.dialog.route_set = route_set;
            self.dialog.state = DialogState::Confirmed;
        }
        self.dialog.refresh_remote_target(contact);
        Ok(ResponseEffect::AckNeeded {
            cseq: seq,
            created: false,
        })
    }
}
