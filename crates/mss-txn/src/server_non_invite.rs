//! The non-INVITE server transaction, RFC 3261 §17.2.2 (Figure 8).
//!
//! Trying → Proceeding → Completed → Terminated. Request retransmissions are absorbed in
//! Trying and answered with the last provisional (Proceeding) or the final response
//! (Completed). Timer J (64·T1 on unreliable transports, zero on reliable ones) ends
//! Completed.

use std::time::Instant;

use crate::machine::{arm, take_if_due, Action, ResponseClass, State};
use crate::timers::{Timer, Timers};

/// State and timers of one non-INVITE server transaction.
#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    state: State,
    /// Whether the transport is reliable: Timer J zero (§17.2.2).
    reliable: bool,
    timer_j: Option<Instant>,
}

impl ServerNonInvite {
    /// Enters "Trying" (§17.2.2); the table passes the request to the TU.
    pub(crate) fn start(reliable: bool, out: &mut Vec<Action>) -> Self {
        out.push(Action::PassUp);
        ServerNonInvite {
            state: State::Trying,
            reliable,
            timer_j: None,
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// A retransmission of the request arrived (it matched by §17.2.3).
    pub(crate) fn on_request(&mut self, out: &mut Vec<Action>) {
        match self.state {
            // §17.2.2: discarded in Trying; the last provisional or the final response is
            // re-sent in Proceeding and Completed.
            State::Proceeding | State::Completed => out.push(Action::Retransmit),
            _ => {}
        }
    }

    /// The TU passes a response. Returns `false` when the machine discards it (§17.2.2: any
    /// other final response in Completed is discarded).
    pub(crate) fn on_tu_response(
        &mut self,
        class: ResponseClass,
        now: Instant,
        timers: &Timers,
        out: &mut Vec<Action>,
    ) -> bool {
        match (self.state, class) {
            (State::Trying | State::Proceeding, ResponseClass::Provisional) => {
                out.push(Action::SendResponse);
                self.state = State::Proceeding;
                true
            }
            (State::Trying | State::Proceeding, _) => {
                out.push(Action::SendResponse);
                self.state = State::Completed;
                // §17.2.2: Timer J is 64·T1 on unreliable transports, zero on reliable ones.
                if self.reliable {
                    self.terminate(out);
                } else {
                    arm(&mut self.timer_j, Timer::J, now, timers.t1x64(), out);
                }
                true
            }
            _ => false,
        }
    }

    /// A timer armed by this machine fired; `at` is the instant it was armed for.
    pub(crate) fn on_timer(&mut self, timer: Timer, at: Instant, out: &mut Vec<Action>) {
        if timer == Timer::J && take_if_due(&mut self.timer_j, at) {
            self.terminate(out);
        }
    }

    fn terminate(&mut self, out: &mut Vec<Action>) {
        self.state = State::Terminated;
        self.timer_j = None;
        out.push(Action::Terminate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_absorbed_then_answered_with_last_response() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ServerNonInvite::start(false, &mut out);
        assert_eq!(out, [Action::PassUp]);
        out.clear();
        m.on_request(&mut out);
        assert!(out.is_empty(), "absorbed in Trying");
        assert!(m.on_tu_response(ResponseClass::Provisional, t0, &t, &mut out));
        assert_eq!(out, [Action::SendResponse]);
        out.clear();
        m.on_request(&mut out);
        assert_eq!(out, [Action::Retransmit]);
        out.clear();
        assert!(m.on_tu_response(ResponseClass::Success, t0, &t, &mut out));
        assert_eq!(
            out,
            [Action::SendResponse, Action::Arm(Timer::J, t0 + t.t1x64())]
        );
        assert_eq!(m.state(), State::Completed);
        out.clear();
        assert!(!m.on_tu_response(ResponseClass::Failure, t0, &t, &mut out));
        m.on_request(&mut out);
        assert_eq!(out, [Action::Retransmit]);
        out.clear();
        m.on_timer(Timer::J, t0 + t.t1x64(), &mut out);
        assert_eq!(out, [Action::Terminate]);
    }

    #[test]
    fn reliable_final_terminates_at_once() {
        let t = Timers::default();
        let mut out = Vec::new();
        let mut m = ServerNonInvite::start(true, &mut out);
        out.clear();
        assert!(m.on_tu_response(ResponseClass::Failure, Instant::now(), &t, &mut out));
        assert_eq!(out, [Action::SendResponse, Action::Terminate]);
    }
}
