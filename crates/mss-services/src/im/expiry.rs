//! The expiry sweep: every `expire_interval` the service asks the caller to delete the
//! stored messages that expired ([`ImOutput::Expire`]), one sweep at a time. Reads never
//! see expired messages anyway (the store filters by `expires_at`); the sweep only frees
//! the space.

use std::time::Instant;

use tracing::warn;

use crate::im::guards::{later, GuardKey, Guarded};
use crate::im::io::ImOutput;
use crate::im::outbox::Outbox;
use crate::im::settings::ImSettings;
use crate::Now;

/// When the next sweep is due, and the one in flight.
#[derive(Debug)]
pub(crate) struct ExpirySweeps {
    next_at: Instant,
    /// The guard of the sweep in flight, if one is.
    in_flight: Option<GuardKey>,
}

impl ExpirySweeps {
    /// The first sweep is due one `expire_interval` after `now`.
    pub(crate) fn new(now: Instant, settings: &ImSettings) -> ExpirySweeps {
        ExpirySweeps {
            next_at: later(now, settings.expire_interval),
            in_flight: None,
        }
    }

    /// When [`ExpirySweeps::tick`] has something to do.
    pub(crate) fn next_at(&self) -> Instant {
        self.next_at
    }

    /// At `now`: asks for a sweep when one is due, unless one is still in flight.
    pub(crate) fn tick<S>(&mut self, out: &mut Outbox<S>, settings: &ImSettings, now: Now) {
        if now.mono < self.next_at {
            return;
        }
        self.next_at = later(now.mono, settings.expire_interval);
        if self.in_flight.is_none() {
            let guard = out.arm(later(now.mono, settings.storage_guard), Guarded::Expire);
            self.in_flight = Some(guard);
            out.push(ImOutput::Expire { now: now.unix_ms });
        }
    }

    /// The sweep in flight got no answer in time: the next one may be asked for.
    pub(crate) fn guard_fired(&mut self) {
        self.in_flight = None;
    }

    /// The outcome of an [`ImOutput::Expire`]: how many stored messages expired.
    pub(crate) fn swept<S>(&mut self, out: &mut Outbox<S>, result: Result<u64, String>) {
        if let Some(guard) = self.in_flight.take() {
            out.disarm(guard);
        }
        match result {
            Ok(n) => out.stats_mut().expired += n,
            Err(e) => warn!(error = %e, "deleting expired messages failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_sweep_at_a_time_until_answered_or_its_guard_fires() {
        let settings = ImSettings::new("pbx.example.com");
        let start = Now::new(Instant::now(), 1_000);
        let mut out: Outbox<u32> = Outbox::new(7);
        let mut sweeps = ExpirySweeps::new(start.mono, &settings);
        sweeps.tick(&mut out, &settings, start);
        assert!(out.pop().is_none());
        let due = start.after(settings.expire_interval);
        assert_eq!(sweeps.next_at(), due.mono);
        sweeps.tick(&mut out, &settings, due);
        assert!(matches!(out.pop(), Some(ImOutput::Expire { now }) if now == due.unix_ms));
        // Still in flight at the next interval: no second sweep.
        let next = due.after(settings.expire_interval);
        sweeps.tick(&mut out, &settings, next);
        assert!(out.pop().is_none());
        sweeps.swept(&mut out, Ok(4));
        assert_eq!(out.stats().expired, 4);
        assert_eq!(out.next_guard_at(), None);
        let after = next.after(settings.expire_interval);
        sweeps.tick(&mut out, &settings, after);
        assert!(matches!(out.pop(), Some(ImOutput::Expire { .. })));
        // Its guard fires: the next interval asks again.
        sweeps.guard_fired();
        sweeps.tick(&mut out, &settings, after.after(Duration::from_secs(60)));
        assert!(matches!(out.pop(), Some(ImOutput::Expire { .. })));
    }
}
