//! The UAC side of RFC 3262: which reliable provisional responses of the peer mss
//! acknowledges (§4), and the PRACK it sends for them.

use mss_sip::{Method, Request, Response};
use rand::RngCore;

use super::{find_id_mut, Dialogs};
use crate::error::DialogError;
use crate::id::DialogId;
use crate::reliable::{check_order, is_reliable, rack_header, rseq, Provisional, RAck};

impl Dialogs {
    /// What a provisional response to mss's INVITE in dialog `id` asks of mss (RFC 3262
    /// §4): nothing ([`Provisional::Unreliable`]); a PRACK for the first reliable one and
    /// for each next one whose RSeq is one higher ([`Provisional::Acknowledge`], the RSeq
    /// is then remembered); or nothing further for a retransmission or one out of order
    /// ([`Provisional::Repeated`]: the caller does not pass it on). Call it after
    /// [`Dialogs::handle_invite_response`] created or found the dialog.
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`]; [`DialogError::Malformed`] for a reliable response
    /// without a usable `RSeq` or CSeq (it cannot be acknowledged: the caller drops it).
    pub fn reliable_provisional(
        &mut self,
        id: &DialogId,
        response: &Response,
    ) -> Result<Provisional, DialogError> {
        if !is_reliable(response) {
            return Ok(Provisional::Unreliable);
        }
        let h = response.headers();
        let cseq = h.cseq()?;
        let Some(number) = rseq(h)? else {
            return Err(DialogError::Malformed(mss_sip::ParseError::in_header(
                mss_sip::ParseErrorKind::MissingHeader,
                crate::reliable::rseq_header(),
                0,
            )));
        };
        let entry = find_id_mut(&mut self.by_call_id, id).ok_or(DialogError::UnknownDialog)?;
        if cseq.method != Method::Invite || !check_order(entry.usage.their_rseq, number) {
            return Ok(Provisional::Repeated);
        }
        entry.usage.their_rseq = Some(number);
        Ok(Provisional::Acknowledge {
            rseq: number,
            cseq: cseq.seq,
        })
    }

    /// The PRACK of dialog `id` for the reliable provisional response with `rseq` to our
    /// INVITE `invite_cseq` (RFC 3262 §7.2 `RAck`), a new request of the dialog
    /// ([`Dialogs::request`]). Start a client transaction for it; its answer changes
    /// nothing in the dialog (a `405`/`501` from a peer that does not take PRACK after all
    /// leaves the call as it was).
    ///
    /// # Errors
    /// As [`Dialogs::request`].
    pub fn prack(
        &mut self,
        id: &DialogId,
        rseq: u32,
        invite_cseq: u32,
        rng: &mut dyn RngCore,
    ) -> Result<Request, DialogError> {
        let mut request = self.request(id, Method::Prack, rng)?;
        let rack = RAck {
            rseq,
            cseq: invite_cseq,
            method: Method::Invite,
        };
        request.headers_mut().push(rack_header(), rack.value());
        Ok(request)
    }
}
