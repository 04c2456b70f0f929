//! Telling requests within a dialog from new ones, and the answer when the dialog is unknown
//! (RFC 3261 §12.2.2).

use mss_sip::{Method, Request};

use crate::rejection::Rejection;

/// True when `request` belongs to a dialog: its To header has a tag (RFC 3261 §12.2.2,
/// §8.2.2.2). A To header that does not parse counts as no tag.
pub fn is_in_dialog(request: &Request) -> bool {
    request.headers().to_tag().is_ok_and(|tag| tag.is_some())
}

/// The answer to a request with a To tag whose dialog mss does not know (RFC 3261 §12.2.2):
/// `481 Call/Transaction Does Not Exist`, except for an ACK, which is never answered
/// (`None`: drop it). CANCEL is the transaction layer's: it answers `481` itself when the
/// CANCEL matches no transaction (§9.2).
pub fn unknown_dialog_answer(request: &Request) -> Option<Rejection> {
    (*request.method() != Method::Ack).then_some(Rejection::UnknownDialog)
}
