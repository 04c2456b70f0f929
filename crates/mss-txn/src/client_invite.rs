//! The INVITE client transaction, RFC 3261 §17.1.1 as changed by RFC 6026 §7.2 / §8.4
//! (Figure 5 of RFC 6026).
//!
//! Calling → Proceeding → Completed | Accepted → Terminated. Timer A retransmits the INVITE
//! on unreliable transports (T1, doubling, no cap, only while Calling); Timer B (64·T1) times
//! the transaction out while Calling; Timer D (≥ 32 s unreliable, zero reliable) keeps
//! Completed alive to re-send the ACK for retransmitted non-2xx finals; Timer M (64·T1) keeps
//! Accepted alive so retransmitted or forked 2xx responses still reach the TU.

use std::time::{Duration, Instant};

use crate::machine::{arm, retransmit, take_if_due, AcceptedMark, Action, ResponseClass, State};
use crate::timers::{Timer, Timers};

/// State and timers of one INVITE client transaction.
#[derive(Debug)]
pub(crate) struct ClientInvite {
    state: State,
    /// Whether the transport is reliable: no Timer A, Timer D zero (§17.1.1.2).
    reliable: bool,
    /// The interval Timer A was last armed with.
    interval: Duration,
    timer_a: Option<Instant>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
    /// Counted in `Transactions::accepted_len` since it entered Accepted.
    pub(crate) accepted: AcceptedMark,
}

impl ClientInvite {
    /// Enters "Calling" (§17.1.1.2): the table sends the INVITE; Timer B is set to 64·T1 and,
    /// on an unreliable transport, Timer A to T1.
    pub(crate) fn start(
        now: Instant,
        timers: &Timers,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Self {
        let mut m = ClientInvite {
            state: State::Calling,
            reliable,
            interval: timers.t1,
            timer_a: None,
            timer_b: None,
            timer_d: None,
            timer_m: None,
            accepted: AcceptedMark::default(),
        };
        arm(&mut m.timer_b, Timer::B, now, timers.t1x64(), out);
        if !reliable {
            arm(&mut m.timer_a, Timer::A, now, timers.t1, out);
        }
        m
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// A response matching this transaction (§17.1.3) arrived.
    pub(crate) fn on_response(
        &mut self,
        class: ResponseClass,
        now: Instant,
        timers: &Timers,
        out: &mut Vec<Action>,
    ) {
        match (self.state, class) {
            (State::Calling | State::Proceeding, ResponseClass::Provisional) => {
                // §17.1.1.2: no more retransmissions once Proceeding; every 1xx goes up.
                out.push(Action::PassUp);
                self.state = State::Proceeding;
                self.timer_a = None;
                self.timer_b = None;
            }
            (State::Calling | State::Proceeding, ResponseClass::Success) => {
                // RFC 6026 §8.4: pass the 2xx up, no ACK (the TU's job), Accepted, Timer M.
                out.push(Action::PassUp);
                self.state = State::Accepted;
                self.clear_a_b();
                arm(&mut self.timer_m, Timer::M, now, timers.t1x64(), out);
            }
            (State::Calling | State::Proceeding, ResponseClass::Failure) => {
                // §17.1.1.2: pass up, ACK even on reliable transports, Completed, Timer D.
                out.push(Action::PassUp);
                out.push(Action::SendAck);
                self.state = State::Completed;
                self.clear_a_b();
                if self.reliable {
                    self.terminate(out);
                } else {
                    arm(&mut self.timer_d, Timer::D, now, timers.timer_d, out);
                }
            }
            // §17.1.1.2: a retransmitted non-2xx final re-sends the ACK and is not passed up.
            (State::Completed, ResponseClass::Failure) => out.push(Action::SendAck),
            // RFC 6026 §8.4: every 2xx in Accepted goes to the TU (retransmissions and other
            // branches of a fork); the machine takes no other action.
            (State::Accepted, ResponseClass::Success) => out.push(Action::PassUp),
            // A 2xx after a non-2xx final can only come from another branch of a forked
            // INVITE. RFC 6026 does not name this transition; we pass it up so a UAC core can
            // ACK and BYE it (§13.2.2.4) rather than leave the UAS retransmitting.
            (State::Completed, ResponseClass::Success) => out.push(Action::PassUp),
            // Late provisionals and non-2xx in Accepted are absorbed.
            _ => {}
        }
    }

    /// A timer armed by this machine fired; `at` is the instant it was armed for.
    pub(crate) fn on_timer(
        &mut self,
        timer: Timer,
        at: Instant,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        match timer {
            Timer::A if take_if_due(&mut self.timer_a, at) => {
                // §17.1.1.2: retransmit and double, without the T2 cap of Timer E.
                let next = self.interval.saturating_mul(2);
                retransmit(
                    &mut self.timer_a,
                    Timer::A,
                    &mut self.interval,
                    next,
                    now,
                    out,
                );
            }
            Timer::B if take_if_due(&mut self.timer_b, at) => {
                // §17.1.1.2: inform the TU, no ACK.
                out.push(Action::TimedOut(Timer::B));
                self.terminate(out);
            }
            Timer::D if take_if_due(&mut self.timer_d, at) => self.terminate(out),
            Timer::M if take_if_due(&mut self.timer_m, at) => self.terminate(out),
            _ => {}
        }
    }

    /// The transport failed to send the INVITE or the ACK (§17.1.4, Figure 5): inform the
    /// TU and terminate. RFC 6026 §7.2: no need to keep client state after such an error.
    pub(crate) fn on_transport_error(&mut self, out: &mut Vec<Action>) {
        if matches!(
            self.state,
            State::Calling | State::Proceeding | State::Completed
        ) {
            self.terminate(out);
        }
    }

    fn clear_a_b(&mut self) {
        self.timer_a = None;
        self.timer_b = None;
    }

    fn terminate(&mut self, out: &mut Vec<Action>) {
        self.state = State::Terminated;
        self.clear_a_b();
        self.timer_d = None;
        self.timer_m = None;
        out.push(Action::Terminate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::armed_at;

    #[test]
    fn timer_a_doubles_without_cap_until_b() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ClientInvite::start(t0, &t, false, &mut out);
        let b = armed_at(&out, Timer::B).unwrap();
        assert_eq!(b - t0, Duration::from_secs(32));
        let mut at = armed_at(&out, Timer::A).unwrap();
        let mut gaps = Vec::new();
        while at < b {
            out.clear();
            m.on_timer(Timer::A, at, at, &mut out);
            let next = armed_at(&out, Timer::A).unwrap();
            gaps.push((next - at).as_millis());
            at = next;
        }
        // 0.5 + 1 + 2 + 4 + 8 + 16 = 31.5 s: six retransmissions, seven sends in all.
        assert_eq!(gaps, [1000, 2000, 4000, 8000, 16000, 32000]);
        out.clear();
        m.on_timer(Timer::B, b, b, &mut out);
        assert_eq!(out, [Action::TimedOut(Timer::B), Action::Terminate]);
    }

    #[test]
    fn non_2xx_sends_ack_and_again_on_retransmission() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ClientInvite::start(t0, &t, false, &mut out);
        out.clear();
        m.on_response(ResponseClass::Provisional, t0, &t, &mut out);
        assert_eq!(out, [Action::PassUp]);
        out.clear();
        m.on_response(ResponseClass::Failure, t0, &t, &mut out);
        assert_eq!(
            out,
            [
                Action::PassUp,
                Action::SendAck,
                Action::Arm(Timer::D, t0 + Duration::from_secs(32))
            ]
        );
        out.clear();
        m.on_response(ResponseClass::Failure, t0, &t, &mut out);
        assert_eq!(out, [Action::SendAck]);
        out.clear();
        m.on_timer(Timer::D, t0 + Duration::from_secs(32), t0, &mut out);
        assert_eq!(out, [Action::Terminate]);
    }

    #[test]
    fn reliable_non_2xx_acks_and_terminates() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ClientInvite::start(t0, &t, true, &mut out);
        assert_eq!(armed_at(&out, Timer::A), None);
        out.clear();
        m.on_response(ResponseClass::Failure, t0, &t, &mut out);
        assert_eq!(out, [Action::PassUp, Action::SendAck, Action::Terminate]);
    }

    #[test]
    fn accepted_passes_every_2xx_up_until_m() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ClientInvite::start(t0, &t, false, &mut out);
        out.clear();
        m.on_response(ResponseClass::Success, t0, &t, &mut out);
        assert_eq!(out, [Action::PassUp, Action::Arm(Timer::M, t0 + t.t1x64())]);
        assert_eq!(m.state(), State::Accepted);
        out.clear();
        m.on_response(ResponseClass::Success, t0, &t, &mut out);
        assert_eq!(out, [Action::PassUp]);
        // Timer A was disarmed: its old entry is stale.
        out.clear();
        m.on_timer(Timer::A, t0 + t.t1, t0 + t.t1, &mut out);
        assert!(out.is_empty());
        m.on_timer(Timer::M, t0 + t.t1x64(), t0 + t.t1x64(), &mut out);
        assert_eq!(out, [Action::Terminate]);
    }
}
