//! What the four state machines share: the actions they ask the table to take, the class of
//! a response, and the state names of RFC 3261 §17 / RFC 6026.
//!
//! The machines never see a SIP message: they get "a response of class X arrived", "the TU
//! passed a response of class X", "timer T set for instant `at` fired", and answer with a
//! list of [`Action`]s. [`crate::Transactions`] owns the messages and turns actions into
//! transmissions and events. That keeps each machine a small, exhaustively testable table.

use std::time::{Duration, Instant};

use crate::timers::Timer;

/// The state of a live transaction, by its RFC name. A terminated transaction is destroyed at
/// once (RFC 3261 §17.1.1.2, §17.2.1), so "Terminated" is never observed from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// INVITE client, request sent, no response yet (§17.1.1.2).
    Calling,
    /// Non-INVITE client or server, no provisional response yet (§17.1.2.2, §17.2.2).
    Trying,
    /// A provisional response was received (client) or can be sent (server).
    Proceeding,
    /// A final response was received (client) or sent (server); absorbing retransmissions.
    Completed,
    /// INVITE server: the ACK for a non-2xx final response arrived (§17.2.1).
    Confirmed,
    /// INVITE, after a 2xx (RFC 6026 §7.1, §7.2).
    Accepted,
    /// Destroyed (only seen inside the table for an instant).
    Terminated,
}

/// The class of a status code, which is all a transaction machine needs to know of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    /// 100-199.
    Provisional,
    /// 200-299.
    Success,
    /// 300-699.
    Failure,
}

impl ResponseClass {
    /// Classifies a status code. Codes outside 100-699 give `None` (RFC 3261 §7.2 only
    /// defines 1xx-6xx; a parser should have refused them already).
    pub fn of(code: u16) -> Option<ResponseClass> {
        match code {
            100..=199 => Some(ResponseClass::Provisional),
            200..=299 => Some(ResponseClass::Success),
            300..=699 => Some(ResponseClass::Failure),
            _ => None,
        }
    }

    /// Whether this is a final response (200-699).
    pub fn is_final(self) -> bool {
        !matches!(self, ResponseClass::Provisional)
    }
}

/// One thing a machine asks the table to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Client: send the request again. Server: send the last response again.
    Retransmit,
    /// INVITE client: send the ACK for the non-2xx final response (built on the first use,
    /// re-sent on every retransmission of that response, §17.1.1.2).
    SendAck,
    /// Server: transmit the response the TU just passed, and remember it as the last one.
    SendResponse,
    /// INVITE server: send a 100 (Trying) built by the transaction (§17.2.1).
    SendTrying,
    /// Pass the message being handled up to the TU.
    PassUp,
    /// Tell the TU the transaction failed because this timer fired (B, F: timeout; H: no ACK).
    TimedOut(Timer),
    /// Arm a timer for an instant. Stale entries are dropped lazily by the table.
    Arm(Timer, Instant),
    /// The machine reached "Terminated": destroy it.
    Terminate,
}

/// Records the deadline `now + delay` in the machine and asks the table to arm it.
/// Saturates instead of panicking if a configured delay overflows `Instant`.
/// Whether an INVITE machine is counted in `Transactions::accepted_len`: from the moment
/// it is seen in Accepted (RFC 6026) until the transaction is removed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AcceptedMark(bool);

impl AcceptedMark {
    /// Marks a machine now in `state`; true the first time that state is Accepted (the
    /// count goes up then, once).
    pub(crate) fn count(&mut self, state: State) -> bool {
        let newly = state == State::Accepted && !self.0;
        self.0 |= newly;
        newly
    }

    /// Whether [`AcceptedMark::count`] counted it.
    pub(crate) fn counted(self) -> bool {
        self.0
    }
}

pub(crate) fn arm(
    slot: &mut Option<Instant>,
    timer: Timer,
    now: Instant,
    delay: Duration,
    out: &mut Vec<Action>,
) {
    let at = now
        .checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
        .unwrap_or(now);
    *slot = Some(at);
    out.push(Action::Arm(timer, at));
}

/// One firing of a retransmission timer (A, E, G; RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1):
/// asks the table to send again, remembers `next` as the current interval and re-arms the
/// timer that far from `now`. Each machine computes `next` by its own rule (doubling,
/// capped at T2, flat T2).
pub(crate) fn retransmit(
    slot: &mut Option<Instant>,
    timer: Timer,
    interval: &mut Duration,
    next: Duration,
    now: Instant,
    out: &mut Vec<Action>,
) {
    out.push(Action::Retransmit);
    *interval = next;
    arm(slot, timer, now, next, out);
}

/// Whether a popped timer entry is the live one: the machine still holds this deadline.
/// Consumes it so a timer fires at most once per arming.
pub(crate) fn take_if_due(slot: &mut Option<Instant>, at: Instant) -> bool {
    if *slot == Some(at) {
        *slot = None;
        true
    } else {
        false
    }
}

/// For the machines' tests: the instant the first [`Action::Arm`] of `timer` in `out` is for.
#[cfg(test)]
pub(crate) fn armed_at(out: &[Action], timer: Timer) -> Option<Instant> {
    out.iter().find_map(|a| match a {
        Action::Arm(t, at) if *t == timer => Some(*at),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(ResponseClass::of(100), Some(ResponseClass::Provisional));
        assert_eq!(ResponseClass::of(183), Some(ResponseClass::Provisional));
        assert_eq!(ResponseClass::of(200), Some(ResponseClass::Success));
        assert_eq!(ResponseClass::of(487), Some(ResponseClass::Failure));
        assert_eq!(ResponseClass::of(699), Some(ResponseClass::Failure));
        assert_eq!(ResponseClass::of(99), None);
        assert_eq!(ResponseClass::of(700), None);
        assert!(ResponseClass::Success.is_final());
        assert!(!ResponseClass::Provisional.is_final());
    }

    #[test]
    fn retransmit_sends_and_rearms_with_next_interval() {
        let now = Instant::now();
        let mut slot = None;
        let mut interval = Duration::from_millis(500);
        let mut out = Vec::new();
        let next = Duration::from_secs(1);
        retransmit(&mut slot, Timer::G, &mut interval, next, now, &mut out);
        assert_eq!(out, [Action::Retransmit, Action::Arm(Timer::G, now + next)]);
        assert_eq!(interval, next);
        assert_eq!(slot, Some(now + next));
    }

    #[test]
    fn stale_deadlines_do_not_fire() {
        let now = Instant::now();
        let mut slot = None;
        let mut out = Vec::new();
        arm(&mut slot, Timer::E, now, Duration::ZERO, &mut out);
        assert!(!take_if_due(&mut slot, now + Duration::from_millis(1)));
        assert!(take_if_due(&mut slot, now));
        arm(&mut slot, Timer::F, now, Duration::MAX, &mut out);
        assert!(slot.is_some_and(|at| at > now), "saturates, no panic");
        let far = slot.unwrap();
        assert!(take_if_due(&mut slot, far));
        assert!(!take_if_due(&mut slot, now), "fires once");
    }
}
