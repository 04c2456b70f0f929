//! What the dialog layer refuses to do, and why.

use mss_sip::{HeaderName, Method, ParseError};

/// Why a dialog operation was refused. Nothing changed in the table when one comes back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// The table holds the caller-given maximum of dialogs already.
    #[error("the dialog table is full ({max} dialogs)")]
    TableFull {
        /// The maximum.
        max: usize,
    },
    /// No dialog has this id (never created, or removed).
    #[error("no such dialog")]
    UnknownDialog,
    /// A dialog with this id exists already.
    #[error("a dialog with this id exists already")]
    DialogExists,
    /// A header the dialog needs does not parse.
    #[error("malformed message: {0}")]
    Malformed(#[from] ParseError),
    /// A header the dialog needs is absent (a Contact in an INVITE, a From tag …).
    #[error("the message has no usable {0} header")]
    Missing(HeaderName),
    /// The To header of a response has no tag: the response creates no dialog.
    #[error("the response has no To tag")]
    NoToTag,
    /// The request or response is not one that creates a dialog (an INVITE and a `101`-`299`
    /// answer to it).
    #[error("a {0} does not create a dialog")]
    NotDialogCreating(Method),
    /// A provisional `100` or a final non-`2xx` response creates no dialog (RFC 3261 §12.1).
    #[error("a {0} response creates no dialog")]
    StatusCreatesNoDialog(u16),
    /// The INVITE has a To tag: it belongs to a dialog that exists (or existed), it creates
    /// none.
    #[error("the request has a To tag: it is a request within a dialog")]
    AlreadyInDialog,
    /// The Via of our own request names a transport mss does not speak.
    #[error("unknown transport {0} in our Via")]
    UnknownTransport(String),
    /// ACK and CANCEL are not built with [`crate::Dialogs::request`]: the ACK for a `2xx` with
    /// [`crate::Dialog::ack`], CANCEL from the INVITE it cancels (RFC 3261 §9.1).
    #[error("{0} is not built as a new request of the dialog")]
    NotANewRequest(Method),
    /// [`crate::Dialogs::send_ack`] takes an ACK.
    #[error("a {0} is not an ACK")]
    NotAnAck(Method),
    /// The response does not answer the INVITE given with it: its Call-ID, From tag or CSeq
    /// differ.
    #[error("the response does not answer this INVITE")]
    ResponseMismatch,
    /// The dialog is terminated: no new request may be sent in it.
    #[error("the dialog is terminated")]
    Terminated,
    /// An INVITE transaction is in progress in the dialog, in either direction, or our `2xx`
    /// still waits for its ACK: no new INVITE may start (RFC 3261 §14.1).
    #[error("an INVITE transaction is in progress in this dialog (RFC 3261 §14.1)")]
    InviteInProgress,
    /// Our re-INVITE was answered `491` and its retry is scheduled; cancel it first with
    /// [`crate::Dialogs::cancel_reinvite_retry`].
    #[error("a re-INVITE retry after 491 is scheduled (RFC 3261 §14.1)")]
    RetryScheduled,
    /// As the callee, mss may not send BYE before the ACK of its `2xx` came or the wait for
    /// it ended (RFC 3261 §15).
    #[error("BYE must wait for the ACK of our 2xx (RFC 3261 §15)")]
    AwaitingAck,
    /// As the callee, mss may not send BYE in an early dialog: it answers the INVITE with a
    /// final response instead (RFC 3261 §15).
    #[error("the callee ends an early dialog with a final response, not BYE (RFC 3261 §15)")]
    ByeInEarlyDialog,
    /// The local CSeq reached 2^32-1: the dialog can send no further request (§8.1.1.5).
    #[error("the local CSeq number is exhausted")]
    CSeqExhausted,
}
