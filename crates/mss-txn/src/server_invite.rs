//! The INVITE server transaction, RFC 3261 §17.2.1 as changed by RFC 6026 §7.1, §8.5-§8.8
//! (Figure 7 of RFC 6026).
//!
//! Proceeding → Completed → Confirmed → Terminated for non-2xx finals, Proceeding → Accepted
//! → Terminated for 2xx. Timers:
//! - "Trying" (200 ms, [`crate::Timers::trying_delay`]): §17.2.1 says the transaction MUST
//!   send 100 (Trying) unless it knows the TU answers within 200 ms. We do not make the TU
//!   promise anything: if it has sent no response 200 ms after the INVITE, the transaction
//!   sends a 100 itself. A retransmitted INVITE before that gets the 100 at once, since its
//!   purpose is to quench retransmissions.
//! - G: re-sends a non-2xx final on unreliable transports (T1, doubling, capped at T2).
//! - H: 64·T1 wait for the ACK; firing informs the TU of the failure.
//! - I: T4 (zero on reliable transports) in Confirmed to absorb ACK retransmissions.
//! - L: 64·T1 in Accepted to absorb INVITE retransmissions (RFC 6026 §7.1). 2xx
//!   retransmissions are the TU's job; the transaction just sends each one it is given.

use std::time::{Duration, Instant};

use crate::machine::{arm, retransmit, take_if_due, AcceptedMark, Action, ResponseClass, State};
use crate::timers::{Timer, Timers};

/// State and timers of one INVITE server transaction.
#[derive(Debug)]
pub(crate) struct ServerInvite {
    state: State,
    /// Whether the transport is reliable: no Timer G, Timer I zero (§17.2.1).
    reliable: bool,
    /// Whether any provisional response (ours or the TU's) went out.
    provisional_sent: bool,
    /// Counted in `Transactions::accepted_len` since it entered Accepted.
    pub(crate) accepted: AcceptedMark,
    /// The interval Timer G was last armed with.
    interval: Duration,
    timer_trying: Option<Instant>,
    timer_g: Option<Instant>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
}

impl ServerInvite {
    /// Enters "Proceeding" (§17.2.1): the request goes to the TU and the 100 (Trying) timer
    /// is armed.
    pub(crate) fn start(
        now: Instant,
        timers: &Timers,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Self {
        out.push(Action::PassUp);
        let mut m = ServerInvite {
            state: State::Proceeding,
            reliable,
            provisional_sent: false,
            accepted: AcceptedMark::default(),
            interval: timers.t1,
            timer_trying: None,
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
        };
        arm(
            &mut m.timer_trying,
            Timer::Trying,
            now,
            timers.trying_delay,
            out,
        );
        m
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// A retransmission of the INVITE arrived (it matched by §17.2.3).
    pub(crate) fn on_request(&mut self, out: &mut Vec<Action>) {
        match self.state {
            // §17.2.1: re-send the most recent provisional response.
            State::Proceeding if self.provisional_sent => out.push(Action::Retransmit),
            State::Proceeding => self.send_trying(out),
            // §17.2.1: re-send the final response.
            State::Completed => out.push(Action::Retransmit),
            // Confirmed: nothing to do. Accepted: absorbed, not passed to the TU
            // (RFC 6026 §8.7).
            _ => {}
        }
    }

    /// An ACK matched this transaction. Returns `true` when it must be passed to the TU
    /// (RFC 6026 §8.7: in Accepted), `false` when the transaction absorbs it.
    pub(crate) fn on_ack(&mut self, now: Instant, timers: &Timers, out: &mut Vec<Action>) -> bool {
        match self.state {
            State::Completed => {
                // §17.2.1: Confirmed; Timer G stops; Timer I is T4 or zero.
                self.state = State::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                if self.reliable {
                    self.terminate(out);
                } else {
                    arm(&mut self.timer_i, Timer::I, now, timers.t4, out);
                }
                false
            }
            State::Accepted => true,
            _ => false,
        }
    }

    /// The TU passes a response. Returns `false` when the machine discards it.
    pub(crate) fn on_tu_response(
        &mut self,
        class: ResponseClass,
        now: Instant,
        timers: &Timers,
        out: &mut Vec<Action>,
    ) -> bool {
        match (self.state, class) {
            (State::Proceeding, ResponseClass::Provisional) => {
                out.push(Action::SendResponse);
                self.provisional_sent = true;
                self.timer_trying = None;
                true
            }
            (State::Proceeding, ResponseClass::Success) => {
                // RFC 6026 §8.5, §8.7: send, Accepted, Timer L = 64·T1 on all transports.
                out.push(Action::SendResponse);
                self.state = State::Accepted;
                self.timer_trying = None;
                arm(&mut self.timer_l, Timer::L, now, timers.t1x64(), out);
                true
            }
            (State::Proceeding, ResponseClass::Failure) => {
                // §17.2.1: send, Completed, Timer G (unreliable only) and Timer H.
                out.push(Action::SendResponse);
                self.state = State::Completed;
                self.timer_trying = None;
                if !self.reliable {
                    self.interval = timers.t1;
                    arm(&mut self.timer_g, Timer::G, now, timers.t1, out);
                }
                arm(&mut self.timer_h, Timer::H, now, timers.t1x64(), out);
                true
            }
            // RFC 6026 §8.7: each 2xx retransmission from the TU is sent.
            (State::Accepted, ResponseClass::Success) => {
                out.push(Action::SendResponse);
                true
            }
            _ => false,
        }
    }

    /// A timer armed by this machine fired; `at` is the instant it was armed for.
    pub(crate) fn on_timer(
        &mut self,
        timer: Timer,
        at: Instant,
        now: Instant,
        timers: &Timers,
        out: &mut Vec<Action>,
    ) {
        match timer {
            // Only while no provisional response went out yet.
            Timer::Trying
                if take_if_due(&mut self.timer_trying, at)
                    && self.state == State::Proceeding
                    && !self.provisional_sent =>
            {
                self.send_trying(out);
            }
            Timer::G if take_if_due(&mut self.timer_g, at) => {
                let next = timers.backoff_capped(self.interval);
                retransmit(
                    &mut self.timer_g,
                    Timer::G,
                    &mut self.interval,
                    next,
                    now,
                    out,
                );
            }
            Timer::H if take_if_due(&mut self.timer_h, at) => {
                // §17.2.1: the ACK never came; tell the TU.
                out.push(Action::TimedOut(Timer::H));
                self.terminate(out);
            }
            Timer::I if take_if_due(&mut self.timer_i, at) => self.terminate(out),
            Timer::L if take_if_due(&mut self.timer_l, at) => self.terminate(out),
            _ => {}
        }
    }

    fn send_trying(&mut self, out: &mut Vec<Action>) {
        out.push(Action::SendTrying);
        self.provisional_sent = true;
        self.timer_trying = None;
    }

    fn terminate(&mut self, out: &mut Vec<Action>) {
        self.state = State::Terminated;
        self.timer_trying = None;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
        out.push(Action::Terminate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::armed_at;

    #[test]
    fn sends_trying_after_200ms_or_on_retransmission() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ServerInvite::start(t0, &t, false, &mut out);
        let at = armed_at(&out, Timer::Trying).unwrap();
        assert_eq!(at - t0, Duration::from_millis(200));
        out.clear();
        m.on_timer(Timer::Trying, at, at, &t, &mut out);
        assert_eq!(out, [Action::SendTrying]);
        out.clear();
        m.on_request(&mut out);
        assert_eq!(out, [Action::Retransmit]);

        let mut m = ServerInvite::start(t0, &t, false, &mut out);
        out.clear();
        m.on_request(&mut out);
        assert_eq!(out, [Action::SendTrying]);
        out.clear();
        m.on_timer(Timer::Trying, at, at, &t, &mut out);
        assert!(out.is_empty(), "only one 100");
    }

    #[test]
    fn timer_g_doubles_to_t2_and_h_fails() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ServerInvite::start(t0, &t, false, &mut out);
        out.clear();
        assert!(m.on_tu_response(ResponseClass::Failure, t0, &t, &mut out));
        let h = armed_at(&out, Timer::H).unwrap();
        let mut at = armed_at(&out, Timer::G).unwrap();
        let mut gaps = Vec::new();
        while at < h {
            out.clear();
            m.on_timer(Timer::G, at, at, &t, &mut out);
            assert_eq!(out[0], Action::Retransmit);
            let next = armed_at(&out, Timer::G).unwrap();
            gaps.push((next - at).as_millis());
            at = next;
        }
        assert_eq!(gaps[..5], [1000, 2000, 4000, 4000, 4000]);
        out.clear();
        m.on_timer(Timer::H, h, h, &t, &mut out);
        assert_eq!(out, [Action::TimedOut(Timer::H), Action::Terminate]);
    }

    #[test]
    fn ack_confirms_then_timer_i() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ServerInvite::start(t0, &t, false, &mut out);
        assert!(m.on_tu_response(ResponseClass::Failure, t0, &t, &mut out));
        out.clear();
        assert!(!m.on_ack(t0, &t, &mut out));
        assert_eq!(m.state(), State::Confirmed);
        assert_eq!(out, [Action::Arm(Timer::I, t0 + t.t4)]);
        out.clear();
        assert!(!m.on_ack(t0, &t, &mut out), "ACK retransmission absorbed");
        m.on_request(&mut out);
        assert!(out.is_empty());
        m.on_timer(Timer::I, t0 + t.t4, t0 + t.t4, &t, &mut out);
        assert_eq!(out, [Action::Terminate]);

        let mut tcp = ServerInvite::start(t0, &t, true, &mut out);
        out.clear();
        assert!(tcp.on_tu_response(ResponseClass::Failure, t0, &t, &mut out));
        assert_eq!(armed_at(&out, Timer::G), None, "no Timer G on TCP");
        out.clear();
        tcp.on_ack(t0, &t, &mut out);
        assert_eq!(out, [Action::Terminate], "Timer I zero on TCP");
    }

    #[test]
    fn accepted_absorbs_invite_passes_ack_and_2xx_until_l() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ServerInvite::start(t0, &t, true, &mut out);
        out.clear();
        assert!(m.on_tu_response(ResponseClass::Success, t0, &t, &mut out));
        assert_eq!(
            out,
            [Action::SendResponse, Action::Arm(Timer::L, t0 + t.t1x64())]
        );
        out.clear();
        m.on_request(&mut out);
        assert!(out.is_empty(), "INVITE retransmission absorbed");
        assert!(m.on_ack(t0, &t, &mut out), "ACK goes to the TU");
        assert!(m.on_tu_response(ResponseClass::Success, t0, &t, &mut out));
        assert!(!m.on_tu_response(ResponseClass::Failure, t0, &t, &mut out));
        out.clear();
        m.on_timer(Timer::L, t0 + t.t1x64(), t0 + t.t1x64(), &t, &mut out);
        assert_eq!(out, [Action::Terminate]);
    }
}
