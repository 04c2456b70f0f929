//! Errors of the transaction layer.

use mss_sip::ParseError;

use crate::machine::State;

/// Why the transaction layer refused a message or a call from the TU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// A header the transaction layer needs (Via, CSeq, Call-ID, From, To) is missing or
    /// malformed.
    #[error("cannot match the message to a transaction: {0}")]
    Header(#[from] ParseError),
    /// A request from the TU has no branch in its top Via (RFC 3261 §8.1.1.7 requires one).
    #[error("the top Via of the request has no branch parameter")]
    MissingBranch,
    /// A request from the TU reuses the branch and method of a live client transaction.
    #[error("a client transaction with branch {branch:?} and this method already exists")]
    DuplicateTransaction {
        /// The branch in use.
        branch: String,
    },
    /// The TU tried to start a client transaction for an ACK (RFC 3261 §17: an ACK for a
    /// 2xx is sent without a transaction; an ACK for a non-2xx is the transaction's job).
    #[error("ACK requests are not sent through a client transaction")]
    AckTransaction,
    /// The server transaction named by the TU does not exist (any more).
    #[error("no such server transaction (terminated or never created)")]
    UnknownTransaction,
    /// The status code is outside 100-699.
    #[error("status code {0} is outside 100-699")]
    BadStatus(u16),
    /// The server transaction's state does not accept this response (for instance a second
    /// final response, RFC 3261 §17.2.2; or a non-2xx after a 2xx, RFC 6026 §8.7).
    #[error("a {code} response is not allowed in state {state:?}")]
    ResponseRefused {
        /// The status code the TU passed.
        code: u16,
        /// The transaction's state.
        state: State,
    },
}
