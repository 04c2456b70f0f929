//! What the dialog table asks its caller to do ([`crate::Dialogs::poll_output`]).

use mss_sip::{Request, Response};

use crate::id::DialogId;

/// One thing to do, from [`crate::Dialogs::poll_output`], in the order they arose.
#[derive(Debug, Clone)]
pub enum DialogOutput {
    /// Send this response of dialog `id` to the peer: every response given to
    /// [`crate::Dialogs::send_response`] comes out once at once, and a `2xx` to an INVITE
    /// again at T1, 2·T1 … T2 until its ACK (RFC 3261 §13.3.1.4). Send it through the
    /// request's server transaction while it exists (an INVITE server transaction stays in
    /// "Accepted" for 64·T1, RFC 6026 §7.1, as long as the retransmissions last), else
    /// statelessly on the same flow.
    Response {
        /// The dialog.
        id: DialogId,
        /// The response.
        response: Response,
    },
    /// Send this ACK of dialog `id`, statelessly: the ACK for a `2xx` has no transaction
    /// (RFC 3261 §17.1.1.3). It is the one given to [`crate::Dialogs::send_ack`] (or built
    /// by [`crate::Dialogs::ack`]), once then, and again for every retransmission of the
    /// `2xx` (§13.2.2.4).
    Ack {
        /// The dialog.
        id: DialogId,
        /// The ACK.
        request: Request,
    },
    /// Our re-INVITE of dialog `id` was answered `491` and the random wait is over (RFC 3261
    /// §14.1): send it again now, built anew with [`crate::Dialogs::request`] (a new CSeq
    /// and branch) and the same offer, or give it up. No INVITE is in progress in the
    /// dialog when this comes.
    RetryReinvite {
        /// The dialog.
        id: DialogId,
    },
    /// Our `2xx` of dialog `id` got no ACK within 64·T1 (RFC 3261 §13.3.1.4): the dialog is
    /// confirmed but the session should end; send a BYE ([`crate::Dialogs::request`]).
    AckTimeout {
        /// The dialog.
        id: DialogId,
    },
    /// Our reliable provisional response in dialog `id` got no PRACK within 64·T1 (RFC
    /// 3262 §3): reject the INVITE with a `5xx` ([`crate::Dialogs::send_response`]). A `2xx`
    /// that waited for the PRACK was dropped.
    PrackTimeout {
        /// The dialog.
        id: DialogId,
    },
}
