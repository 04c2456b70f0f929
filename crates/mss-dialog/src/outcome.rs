//! What a received request or response meant to the dialogs.

use std::time::Instant;

use crate::id::DialogId;
use crate::rejection::Rejection;

/// What [`crate::Dialogs::handle_request`] made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// No To tag: the request is outside any dialog. An INVITE the caller accepts creates a
    /// dialog with [`crate::Dialogs::create_uas`].
    OutOfDialog,
    /// A request of dialog `id`, in order and accepted by the dialog layer: the caller acts on
    /// it and answers through [`crate::Dialogs::send_response`]. After a BYE the dialog is
    /// terminated (answer `200`, then remove it); after a re-INVITE the dialog waits for
    /// the final response to it.
    InDialog {
        /// The dialog.
        id: DialogId,
        /// True when a re-INVITE or UPDATE moved the remote target to its Contact (RFC 3261
        /// §12.2.2).
        target_refreshed: bool,
    },
    /// The ACK for our `2xx` in dialog `id`: its retransmissions stopped. `first` is false
    /// for a repeated ACK (nothing new: an answer in its body was delivered with the first).
    Ack {
        /// The dialog.
        id: DialogId,
        /// True for the first ACK of the `2xx`.
        first: bool,
    },
    /// An ACK that matches no dialog or no `2xx` of ours: drop it (an ACK is never answered).
    StrayAck,
    /// Answer with this rejection ([`Rejection::response`]).
    Reject(Rejection),
}

/// What [`crate::Dialogs::handle_response`] and [`crate::Dialogs::handle_invite_response`]
/// made of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// The response belongs to no dialog and creates none: a `100`, a response without To
    /// tag, one to a request sent outside dialogs, or one for a dialog no longer in the
    /// table.
    NoDialog,
    /// The response belongs to dialog `id` and was applied.
    Applied {
        /// The dialog.
        id: DialogId,
        /// What it did.
        effect: ResponseEffect,
    },
    /// A final non-`2xx` response to the INVITE that created these early dialogs: they are
    /// terminated (RFC 3261 §12.3, §13.2.2.3). Remove them.
    EarlyDialogsEnded(Vec<DialogId>),
}

/// What a response did to its dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEffect {
    /// A provisional response with a To tag to the INVITE: the dialog is early; `created`
    /// when this response created it (a new fork, told apart by its To tag).
    Early {
        /// True when the response created the dialog.
        created: bool,
    },
    /// A `2xx` to our INVITE with CSeq number `cseq` that has no ACK yet: the dialog is
    /// confirmed (created by it when `created`), its remote target refreshed from the
    /// Contact (and an early dialog's route set computed again, §13.2.2.4). ACK it with
    /// [`crate::Dialogs::ack`] or [`crate::Dialogs::send_ack`]; a dialog the caller does not
    /// want (a late fork) is then ended with BYE.
    AckNeeded {
        /// The CSeq number of the INVITE; the ACK carries it.
        cseq: u32,
        /// True when the response created the dialog.
        created: bool,
    },
    /// A retransmission of a `2xx` mss has acknowledged: the same ACK is out again
    /// ([`crate::DialogOutput::Ack`]).
    AckRepeated,
    /// `491` to our re-INVITE (glare): [`crate::DialogOutput::RetryReinvite`] comes at
    /// `retry_at` (RFC 3261 §14.1). The caller does not pass the `491` on.
    GlareRetry {
        /// When the retry is due.
        retry_at: Instant,
    },
    /// The dialog is terminated: the final response to our BYE, or a `481`/`408` to a
    /// request in it (RFC 3261 §12.2.1.2). Remove it.
    Terminated,
    /// Applied, with no change the caller must act on: a provisional response in a confirmed
    /// dialog, a `2xx` to UPDATE (the remote target refreshed), a non-`2xx` final response
    /// to a re-INVITE (the session stays as it was) …
    Processed,
}
