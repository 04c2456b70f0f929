//! The non-INVITE client transaction, RFC 3261 §17.1.2 (Figure 6).
//!
//! Trying → Proceeding → Completed → Terminated, with Timer E (request retransmission on
//! unreliable transports: T1, doubling, capped at T2; T2 flat once Proceeding), Timer F
//! (64·T1 transaction timeout) and Timer K (T4 in Completed on unreliable transports, zero
//! on reliable ones).

use std::time::{Duration, Instant};

use crate::machine::{arm, retransmit, take_if_due, Action, ResponseClass, State};
use crate::timers::{Timer, Timers};

/// State and timers of one non-INVITE client transaction.
#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    state: State,
    /// Whether the transport is reliable: no Timer E, Timer K zero (§17.1.2.2).
    reliable: bool,
    /// The interval Timer E was last armed with.
    interval: Duration,
    timer_e: Option<Instant>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
}

impl ClientNonInvite {
    /// Enters "Trying" (§17.1.2.2): the table sends the request, Timer F is set to 64·T1 and,
    /// on an unreliable transport, Timer E to T1.
    pub(crate) fn start(
        now: Instant,
        timers: &Timers,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Self {
        let mut m = ClientNonInvite {
            state: State::Trying,
            reliable,
            interval: timers.t1,
            timer_e: None,
            timer_f: None,
            timer_k: None,
        };
        arm(&mut m.timer_f, Timer::F, now, timers.t1x64(), out);
        if !reliable {
            arm(&mut m.timer_e, Timer::E, now, timers.t1, out);
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
            (State::Trying | State::Proceeding, ResponseClass::Provisional) => {
                out.push(Action::PassUp);
                self.state = State::Proceeding;
            }
            (State::Trying | State::Proceeding, _) => {
                out.push(Action::PassUp);
                self.state = State::Completed;
                self.timer_e = None;
                self.timer_f = None;
                // §17.1.2.2: Timer K is T4 on unreliable transports, zero on reliable ones;
                // a zero timer terminates at once.
                if self.reliable {
                    self.terminate(out);
                } else {
                    arm(&mut self.timer_k, Timer::K, now, timers.t4, out);
                }
            }
            // Completed: response retransmissions are absorbed (§17.1.2.2).
            _ => {}
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
            Timer::E if take_if_due(&mut self.timer_e, at) => {
                // §17.1.2.2: MIN(2·interval, T2) in Trying, T2 in Proceeding.
                let next = match self.state {
                    State::Proceeding => timers.t2,
                    _ => timers.backoff_capped(self.interval),
                };
                retransmit(
                    &mut self.timer_e,
                    Timer::E,
                    &mut self.interval,
                    next,
                    now,
                    out,
                );
            }
            Timer::F if take_if_due(&mut self.timer_f, at) => {
                out.push(Action::TimedOut(Timer::F));
                self.terminate(out);
            }
            Timer::K if take_if_due(&mut self.timer_k, at) => self.terminate(out),
            _ => {}
        }
    }

    /// The transport failed to send the request (§17.1.4): inform the TU, terminate.
    pub(crate) fn on_transport_error(&mut self, out: &mut Vec<Action>) {
        if matches!(self.state, State::Trying | State::Proceeding) {
            self.terminate(out);
        }
    }

    fn terminate(&mut self, out: &mut Vec<Action>) {
        self.state = State::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
        out.push(Action::Terminate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arms(out: &[Action]) -> Vec<(Timer, Instant)> {
        out.iter()
            .filter_map(|a| match a {
                Action::Arm(t, at) => Some((*t, *at)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn timer_e_doubles_then_flat_t2_in_proceeding() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ClientNonInvite::start(t0, &t, false, &mut out);
        assert_eq!(
            arms(&out),
            [(Timer::F, t0 + t.t1x64()), (Timer::E, t0 + t.t1)]
        );
        let mut at = t0 + t.t1;
        let mut gaps = Vec::new();
        for _ in 0..4 {
            out.clear();
            m.on_timer(Timer::E, at, at, &t, &mut out);
            assert_eq!(out[0], Action::Retransmit);
            let (_, next) = arms(&out)[0];
            gaps.push((next - at).as_millis());
            at = next;
        }
        assert_eq!(gaps, [1000, 2000, 4000, 4000]);
        out.clear();
        m.on_response(ResponseClass::Provisional, at, &t, &mut out);
        assert_eq!(out, [Action::PassUp]);
        assert_eq!(m.state(), State::Proceeding);
    }

    #[test]
    fn final_response_arms_k_on_udp_and_terminates_on_tcp() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut udp = ClientNonInvite::start(t0, &t, false, &mut out);
        out.clear();
        udp.on_response(ResponseClass::Success, t0, &t, &mut out);
        assert_eq!(out, [Action::PassUp, Action::Arm(Timer::K, t0 + t.t4)]);
        out.clear();
        udp.on_response(ResponseClass::Success, t0, &t, &mut out);
        assert!(out.is_empty(), "retransmission absorbed");
        // Stale Timer E/F entries do nothing any more.
        udp.on_timer(Timer::F, t0 + t.t1x64(), t0 + t.t1x64(), &t, &mut out);
        assert!(out.is_empty());

        let mut tcp = ClientNonInvite::start(t0, &t, true, &mut out);
        assert_eq!(
            arms(&out),
            [(Timer::F, t0 + t.t1x64())],
            "no Timer E on TCP"
        );
        out.clear();
        tcp.on_response(ResponseClass::Failure, t0, &t, &mut out);
        assert_eq!(out, [Action::PassUp, Action::Terminate]);
    }

    #[test]
    fn timer_f_times_out() {
        let t = Timers::default();
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut m = ClientNonInvite::start(t0, &t, true, &mut out);
        out.clear();
        let f = t0 + t.t1x64();
        m.on_timer(Timer::F, f, f, &t, &mut out);
        assert_eq!(out, [Action::TimedOut(Timer::F), Action::Terminate]);
    }
}
