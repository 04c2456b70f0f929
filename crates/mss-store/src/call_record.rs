//! The record of one call attempt (DESIGN §8 "Records"): written when the call is answered
//! (so that a crash leaves a record that says `interrupted`) and again when it ends.

use crate::records::UnixMillis;

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallDirection {
    /// From a local user to a local user.
    Internal,
    /// From a local user out through a line.
    Outbound,
    /// From a line's provider to a local user.
    Inbound,
}

impl CallDirection {
    /// Every direction, in the order used by metrics.
    pub const ALL: [CallDirection; 3] = [
        CallDirection::Internal,
        CallDirection::Outbound,
        CallDirection::Inbound,
    ];

    /// The name stored and shown (`internal`, `outbound`, `inbound`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Internal => "internal",
            CallDirection::Outbound => "outbound",
            CallDirection::Inbound => "inbound",
        }
    }

    /// The direction named `s` ([`CallDirection::as_str`]).
    pub fn parse(s: &str) -> Option<CallDirection> {
        Some(match s {
            "internal" => CallDirection::Internal,
            "outbound" => CallDirection::Outbound,
            "inbound" => CallDirection::Inbound,
            _ => return None,
        })
    }
}

/// How a call attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallDisposition {
    /// Answered (whoever hung up).
    Answered,
    /// Nobody answered in time (`408`, `480`, a ring timeout).
    NoAnswer,
    /// Every device was busy (`486`, `600`).
    Busy,
    /// Refused or failed otherwise (`404`, `403`, `503`, …).
    Failed,
    /// The caller hung up before an answer (CANCEL).
    Cancelled,
    /// mss stopped (or crashed) while the call was up: set at the next start.
    Interrupted,
}

impl CallDisposition {
    /// Every disposition, in the order used by metrics.
    pub const ALL: [CallDisposition; 6] = [
        CallDisposition::Answered,
        CallDisposition::NoAnswer,
        CallDisposition::Busy,
        CallDisposition::Failed,
        CallDisposition::Cancelled,
        CallDisposition::Interrupted,
    ];

    /// The name stored and shown (`answered`, `no_answer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CallDisposition::Answered => "answered",
            CallDisposition::NoAnswer => "no_answer",
            CallDisposition::Busy => "busy",
            CallDisposition::Failed => "failed",
            CallDisposition::Cancelled => "cancelled",
            CallDisposition::Interrupted => "interrupted",
        }
    }

    /// The disposition named `s` ([`CallDisposition::as_str`]).
    pub fn parse(s: &str) -> Option<CallDisposition> {
        CallDisposition::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndedBy {
    /// The calling side (BYE or CANCEL from the A leg).
    Caller,
    /// The called side (BYE or a final error from the B leg).
    Callee,
    /// mss itself (a timeout, a limit, a missing ACK, shutdown).
    Mss,
}

impl EndedBy {
    /// The name stored and shown (`caller`, `callee`, `mss`).
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Caller => "caller",
            EndedBy::Callee => "callee",
            EndedBy::Mss => "mss",
        }
    }

    /// The value named `s` ([`EndedBy::as_str`]).
    pub fn parse(s: &str) -> Option<EndedBy> {
        Some(match s {
            "caller" => EndedBy::Caller,
            "callee" => EndedBy::Callee,
            "mss" => EndedBy::Mss,
            _ => return None,
        })
    }
}

/// One call attempt (DESIGN §8 "Records"). `id` is unique and chosen by mss; writing a
/// record with an `id` already stored replaces it (the start written at answer, then the
/// whole record at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The call's id (unique, e.g. `c-1f3a…`).
    pub id: String,
    /// When the INVITE arrived.
    pub started_at: UnixMillis,
    /// When the call was answered (`None`: never).
    pub answered_at: Option<UnixMillis>,
    /// When the call ended (`None`: still up, or interrupted).
    pub ended_at: Option<UnixMillis>,
    /// The caller: a local user's name, or the number a line's provider sent (From user).
    pub caller: String,
    /// What was dialled (the Request-URI user of the A leg), as dialled.
    pub callee: String,
    /// Who answered: a local user, or the number dialled out through a line.
    pub answered_by: Option<String>,
    /// Which way the call went.
    pub direction: CallDirection,
    /// The line the call used (outbound or inbound), if any.
    pub line: Option<String>,
    /// How it ended; `None` while the call is up (a record written at answer).
    pub disposition: Option<CallDisposition>,
    /// The final SIP status the caller got (`200` when answered).
    pub sip_code: Option<u16>,
    /// Who ended it.
    pub ended_by: Option<EndedBy>,
    /// The user who forwarded the call, if it was forwarded.
    pub forwarded_from: Option<String>,
    /// The user who transferred the call (REFER, RFC 3515) to someone else, if anyone did.
    pub transferred_by: Option<String>,
}

impl CallRecord {
    /// Whole seconds from start to end (`None` while not ended).
    pub fn duration_s(&self) -> Option<i64> {
        self.ended_at
            .map(|end| (end - self.started_at).max(0) / 1000)
    }

    /// Whole seconds from answer to end (0 when never answered; `None` while not ended).
    pub fn billsec_s(&self) -> Option<i64> {
        self.ended_at.map(|end| match self.answered_at {
            Some(answered) => (end - answered).max(0) / 1000,
            None => 0,
        })
    }
}
