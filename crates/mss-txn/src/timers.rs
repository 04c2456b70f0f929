//! Timer values (RFC 3261 §17.1.1.1, Table 4 in Appendix A; RFC 6026 §7) and timer names.

use std::time::Duration;

/// RFC 3261 §17.1.1.1: T1, the round-trip time estimate, 500 ms by default.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 §17.1.2.2: T2, the maximum retransmission interval for non-INVITE requests and
/// INVITE responses, 4 s by default.
pub const T2: Duration = Duration::from_secs(4);
/// RFC 3261 §17.1.2.2: T4, the maximum time a message stays in the network, 5 s by default.
pub const T4: Duration = Duration::from_secs(5);
/// RFC 3261 §17.1.1.2: Timer D is "at least 32 seconds for unreliable transports".
pub const TIMER_D: Duration = Duration::from_secs(32);
/// RFC 3261 §17.2.1: an INVITE server transaction sends 100 (Trying) itself unless the TU
/// answers within 200 ms.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// The timer values a [`crate::Transactions`] table uses. `Timers::default()` gives the
/// RFC 3261 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (RFC 3261 §17.1.1.1); the base of Timers A, B, E, F, G, H, J, L, M.
    pub t1: Duration,
    /// Cap of the retransmission interval (Timers E and G, §17.1.2.2, §17.2.1).
    pub t2: Duration,
    /// How long messages stay in the network (Timers I and K, §17.1.2.2, §17.2.1).
    pub t4: Duration,
    /// Timer D on unreliable transports (§17.1.1.2: at least 32 s).
    pub timer_d: Duration,
    /// How long an INVITE server transaction waits for a provisional response from the TU
    /// before it sends 100 (Trying) on its own (§17.2.1).
    pub trying_delay: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: T1,
            t2: T2,
            t4: T4,
            timer_d: TIMER_D,
            trying_delay: TRYING_DELAY,
        }
    }
}

impl Timers {
    /// 64·T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// These values with T1 at least 1 ms and T2 at least T1: a zero T1 would make Timers
    /// A, E and G re-arm at the same instant forever.
    pub fn sanitized(self) -> Timers {
        let t1 = self.t1.max(Duration::from_millis(1));
        Timers {
            t1,
            t2: self.t2.max(t1),
            ..self
        }
    }

    /// The next retransmission interval after `current` for Timers E and G:
    /// doubling, capped at T2 (§17.1.2.2, §17.2.1).
    pub(crate) fn backoff_capped(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.t2)
    }
}

/// The timers of RFC 3261 §17 and RFC 6026, by their RFC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE client: request retransmission (§17.1.1.2).
    A,
    /// INVITE client: transaction timeout (§17.1.1.2).
    B,
    /// INVITE client: wait time for response retransmissions in Completed (§17.1.1.2).
    D,
    /// Non-INVITE client: request retransmission (§17.1.2.2).
    E,
    /// Non-INVITE client: transaction timeout (§17.1.2.2).
    F,
    /// INVITE server: response retransmission (§17.2.1).
    G,
    /// INVITE server: wait time for the ACK (§17.2.1).
    H,
    /// INVITE server: wait time for ACK retransmissions in Confirmed (§17.2.1).
    I,
    /// Non-INVITE server: wait time for request retransmissions in Completed (§17.2.2).
    J,
    /// Non-INVITE client: wait time for response retransmissions in Completed (§17.1.2.2).
    K,
    /// INVITE server: wait time for INVITE retransmissions in Accepted (RFC 6026 §7.1).
    L,
    /// INVITE client: wait time for 2xx retransmissions in Accepted (RFC 6026 §7.2).
    M,
    /// INVITE server: send 100 (Trying) when the TU has not answered in 200 ms (§17.2.1).
    Trying,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_rfc_values() {
        let t = Timers::default();
        assert_eq!(t.t1x64(), Duration::from_secs(32));
        assert_eq!(t.t2, Duration::from_secs(4));
        assert_eq!(t.t4, Duration::from_secs(5));
    }

    #[test]
    fn sanitized_keeps_retransmissions_moving() {
        let t = Timers {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            ..Timers::default()
        }
        .sanitized();
        assert_eq!(t.t1, Duration::from_millis(1));
        assert_eq!(t.t2, Duration::from_millis(1));
        assert_eq!(Timers::default().sanitized(), Timers::default());
    }

    #[test]
    fn backoff_doubles_up_to_t2() {
        let t = Timers::default();
        let mut d = t.t1;
        let mut seen = vec![d];
        for _ in 0..5 {
            d = t.backoff_capped(d);
            seen.push(d);
        }
        let ms: Vec<u128> = seen.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 4000, 4000]);
    }
}
