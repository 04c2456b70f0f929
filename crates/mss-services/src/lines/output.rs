//! What a line's [`Registration`](crate::lines::Registration) asks its caller to do.

use mss_sip::Request;
use mss_store::LineRecord;

use crate::lines::state::LineStatus;
use crate::lines::targets::{ResolveRequest, Target};

/// One thing to do, from [`Registration::poll_output`](crate::lines::Registration::poll_output).
#[derive(Debug, Clone)]
pub enum LineOutput {
    /// Look the registrar up (SRV then A/AAAA as the request says) and answer with
    /// [`Registration::handle_resolved`](crate::lines::Registration::handle_resolved), an
    /// empty list on failure.
    Resolve(ResolveRequest),
    /// Start a client transaction for `request` towards `target`; feed its responses to
    /// [`Registration::handle_response`](crate::lines::Registration::handle_response) and its
    /// timeout (Timer F) or transport error to
    /// [`Registration::handle_transaction_timeout`](crate::lines::Registration::handle_transaction_timeout).
    Send {
        /// The complete REGISTER.
        request: Box<Request>,
        /// Where to send it.
        target: Target,
    },
    /// Store the line's Call-ID, From tag and last CSeq (`Store::put_line`). It comes before
    /// the `Send` that uses the new CSeq; writing it before sending keeps a restart from
    /// reusing a CSeq the registrar has seen.
    Persist(LineRecord),
    /// The line's state changed (also on a switch of the Call-ID policy): log a line and
    /// update metrics.
    StateChanged(LineStatus),
    /// Something the admin should read, in words, for `tracing` at `level` with a `line` field.
    Log(LineLog),
}

/// How loud a [`LineLog`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Worth knowing (a failover, a `423`).
    Info,
    /// Needs the admin's attention (a detected registrar quirk, a contradictory answer).
    Warn,
}

/// A message for the log; never contains a password or digest response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineLog {
    /// How loud.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}
