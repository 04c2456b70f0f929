//! The answers the dialog layer decides and the caller sends: `481`, `500`, `491`, `420`,
//! `400`.

use mss_sip::{HeaderName, ParseError, Request, Response, StatusCode};

/// `491 Request Pending` (RFC 3261 §21.4.27); mss-sip has no constant for it.
pub const REQUEST_PENDING: StatusCode = StatusCode(491);

/// A request the dialog layer refuses, and the answer it gets. The dialog layer says which
/// answer; the caller sends it ([`Rejection::response`]) through the request's server
/// transaction. The dialog is left as it was, except that the remote CSeq follows an
/// in-order request (RFC 3261 §12.2.2 sets it before the method is looked at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// `481 Call/Transaction Does Not Exist`: the request has a To tag but matches no
    /// dialog, or its dialog is terminated (RFC 3261 §12.2.2).
    UnknownDialog,
    /// `500`: the CSeq number is lower than the remote CSeq, the request is out of order
    /// (RFC 3261 §12.2.2).
    OutOfOrder,
    /// `491 Request Pending`: a re-INVITE arrived while our own INVITE in the dialog waits for
    /// its final response (glare, RFC 3261 §14.2).
    RequestPending,
    /// `500` with `Retry-After`: an INVITE arrived before mss sent the final response to the
    /// previous one in the dialog (RFC 3261 §14.2: a random 0-10 s).
    InviteInProgress {
        /// The Retry-After value, in seconds.
        retry_after: u32,
    },
    /// `420 Bad Extension` with `Unsupported` naming the option tags (RFC 3261 §8.2.2.3).
    BadExtension(Vec<String>),
    /// A header the dialog layer reads does not parse: the status and reason phrase of the
    /// parse error (`400 Malformed … Header`).
    Malformed(ParseError),
}

impl Rejection {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownDialog => StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST,
            Rejection::OutOfOrder | Rejection::InviteInProgress { .. } => {
                StatusCode::SERVER_INTERNAL_ERROR
            }
            Rejection::RequestPending => REQUEST_PENDING,
            Rejection::BadExtension(_) => StatusCode::BAD_EXTENSION,
            Rejection::Malformed(e) => e.status_code(),
        }
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::UnknownDialog => "Call/Transaction Does Not Exist",
            Rejection::OutOfOrder => "CSeq Out of Order",
            Rejection::RequestPending => "Request Pending",
            Rejection::InviteInProgress { .. } => "INVITE In Progress",
            Rejection::BadExtension(_) => "Bad Extension",
            Rejection::Malformed(e) => e.reason_phrase(),
        }
    }

    /// The answer to `request` (RFC 3261 §8.2.6.2): Via, From, To, Call-ID and CSeq copied,
    /// `to_tag` added to To when it has no tag (a request outside any dialog), and
    /// `Retry-After` or `Unsupported` when the rejection calls for one.
    pub fn response(&self, request: &Request, to_tag: &str) -> Response {
        let mut rsp = Response::for_request_with_to_tag(
            request,
            self.status(),
            self.reason(),
            to_tag.as_bytes(),
        );
        match self {
            Rejection::InviteInProgress { retry_after } => {
                rsp.headers_mut()
                    .push(HeaderName::RetryAfter, retry_after.to_string());
            }
            Rejection::BadExtension(tags) => {
                rsp.headers_mut()
                    .push(HeaderName::Unsupported, tags.join(", "));
            }
            _ => {}
        }
        rsp
    }
}
