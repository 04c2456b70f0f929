//! mss's `2xx` to an INVITE, sent again until the ACK comes (RFC 3261 §13.3.1.4, RFC 6026
//! §7.1: the transaction layer sends each `2xx` once; retransmitting it is the TU's job).

use std::time::{Duration, Instant};

use mss_sip::Response;
use mss_txn::Timers;

/// A `2xx` waiting for its ACK: sent again T1 after the first send, then at intervals that
/// double up to T2 (0.5, 1, 2, 4, 4 … s with the defaults); given up 64·T1 after the first
/// send (32 s), when the caller should end the dialog with a BYE (§13.3.1.4).
#[derive(Debug, Clone)]
pub(crate) struct TwoXxRetransmission {
    /// The CSeq number of the INVITE the `2xx` answers: the ACK that stops it has it too.
    pub(crate) cseq: u32,
    response: Response,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

/// What a timeout does to a [`TwoXxRetransmission`].
#[derive(Debug, Clone)]
pub(crate) enum RetransmissionStep {
    /// Send this `2xx` once more.
    Resend(Response),
    /// 64·T1 passed without ACK.
    GiveUp,
    /// Nothing is due yet.
    NotYet,
}

impl TwoXxRetransmission {
    /// Starts the wait for the ACK of `response`, sent at `now`.
    pub(crate) fn start(now: Instant, response: Response, cseq: u32, timers: &Timers) -> Self {
        TwoXxRetransmission {
            cseq,
            response,
            next_at: now + timers.t1,
            interval: timers.t1,
            give_up_at: now + timers.t1x64(),
        }
    }

    /// When something is due next.
    pub(crate) fn deadline(&self) -> Instant {
        self.next_at.min(self.give_up_at)
    }

    /// What is due at `now`.
    pub(crate) fn on_timeout(&mut self, now: Instant, timers: &Timers) -> RetransmissionStep {
        if now >= self.give_up_at {
            RetransmissionStep::GiveUp
        } else if now >= self.next_at {
            self.interval = self.interval.saturating_mul(2).min(timers.t2);
            self.next_at = now + self.interval;
            RetransmissionStep::Resend(self.response.clone())
        } else {
            RetransmissionStep::NotYet
        }
    }
}
