//! What a dialog keeps about its INVITE transactions: which one is in progress in each
//! direction, our `2xx` waiting for its ACK, our ACK for the peer's `2xx`, and the wait
//! before a re-INVITE that met glare goes out again (RFC 3261 §13, §14).

use std::time::Instant;

use mss_sip::Request;

use crate::reliable::ReliableUas;
use crate::retransmission::TwoXxRetransmission;

/// An INVITE mss sent in the dialog that has no final response yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OurInvite {
    /// Its CSeq number.
    pub(crate) cseq: u32,
    /// True for the INVITE that created the dialog (the dialog is early while it waits).
    pub(crate) initial: bool,
}

/// When a re-INVITE answered `491` may go out again (RFC 3261 §14.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReinviteRetry {
    /// At this instant (the random wait).
    At(Instant),
    /// The wait is over but an INVITE of the peer was in progress: as soon as it ends.
    WhenIdle,
}

/// The INVITE side of one dialog.
#[derive(Debug, Clone, Default)]
pub(crate) struct InviteUsage {
    /// Our INVITE waiting for its final response.
    pub(crate) ours: Option<OurInvite>,
    /// The CSeq number of the peer's INVITE mss has not yet answered with a final response.
    pub(crate) theirs: Option<u32>,
    /// Our `2xx` to the peer's INVITE, sent again until its ACK comes. This and the other
    /// large parts that most dialogs lack or hold only for moments (`our_ack`,
    /// `reliable`) are boxed: a dialog lives for the whole call and would otherwise carry
    /// ~850 bytes of empty space.
    pub(crate) unacked_2xx: Option<Box<TwoXxRetransmission>>,
    /// The CSeq number of the last INVITE whose `2xx` got its ACK (a repeated ACK matches it).
    pub(crate) acked_cseq: Option<u32>,
    /// Our ACK to the peer's `2xx`, with the INVITE's CSeq number: every retransmission of
    /// that `2xx` gets it again (RFC 3261 §13.2.2.4).
    pub(crate) our_ack: Option<Box<(u32, Request)>>,
    /// The wait after a `491`.
    pub(crate) retry: Option<ReinviteRetry>,
    /// mss's reliable provisional responses to the peer's initial INVITE (RFC 3262 §3),
    /// when it knows 100rel.
    pub(crate) reliable: Option<Box<ReliableUas>>,
    /// The RSeq of the last reliable provisional response of the peer mss acknowledged
    /// (RFC 3262 §4).
    pub(crate) their_rseq: Option<u32>,
}

impl InviteUsage {
    /// True while no new INVITE may start in the dialog (RFC 3261 §14.1): an INVITE in
    /// progress in either direction, or our `2xx` still waiting for its ACK.
    pub(crate) fn invite_in_progress(&self) -> bool {
        self.ours.is_some() || self.theirs.is_some() || self.unacked_2xx.is_some()
    }

    /// The next instant a timer of this usage is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let retransmit = self
            .unacked_2xx
            .as_deref()
            .map(TwoXxRetransmission::deadline);
        let retry = match self.retry {
            Some(ReinviteRetry::At(at)) => Some(at),
            _ => None,
        };
        let reliable = self.reliable.as_deref().and_then(ReliableUas::deadline);
        [retransmit, retry, reliable].into_iter().flatten().min()
    }

    /// Ends a wait that was only waiting for the dialog to be idle; true when the retry is
    /// due now.
    pub(crate) fn take_retry_if_idle(&mut self) -> bool {
        if self.retry == Some(ReinviteRetry::WhenIdle) && !self.invite_in_progress() {
            self.retry = None;
            true
        } else {
            false
        }
    }
}
