//! Time as the ban table keeps it: microseconds since the first reading it was given, in
//! 8 bytes where an `Instant` takes 16 (the table holds tens of thousands of entries, each
//! with several times), and a counter over a window of time.

use std::time::{Duration, Instant};

/// Microseconds since the table's epoch (its first reading of the clock). `Tick(0)` also
/// stands for "never" in a deadline: every reading is at or after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Tick(u64);

impl Tick {
    /// `d` later.
    pub(crate) fn plus(self, d: Duration) -> Tick {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Tick(self.0.saturating_add(micros))
    }

    /// How long after `earlier` this is (zero when it is not after it).
    pub(crate) fn since(self, earlier: Tick) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// The signed number of milliseconds from this tick to `t` (negative: `t` is earlier).
    pub(crate) fn millis_to(self, t: Tick) -> i64 {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if t >= self {
            ms(t.since(self))
        } else {
            -ms(self.since(t))
        }
    }

    /// The microseconds.
    pub(crate) fn micros(self) -> u64 {
        self.0
    }

    /// A tick from microseconds.
    pub(crate) fn from_micros(micros: u64) -> Tick {
        Tick(micros)
    }
}

/// Turns instants into [`Tick`]s and back.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Clock {
    epoch: Option<Instant>,
}

impl Clock {
    /// `now` as a tick; the first call sets the epoch.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        let epoch = *self.epoch.get_or_insert(now);
        Tick(u64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX))
    }
}

/// Events counted from the first one, for as long as the window after it lasts: "`n`
/// within `window` of the first". Past the window the count starts again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    start: Tick,
    count: u32,
}

impl Window {
    /// Counts one event at `t` and returns the count in the current window.
    pub(crate) fn add(&mut self, t: Tick, window: Duration) -> u32 {
        if self.count == 0 || t >= self.start.plus(window) {
            self.start = t;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }

    /// Whether the window still holds a count at `t`.
    pub(crate) fn is_open(&self, t: Tick, window: Duration) -> bool {
        self.count > 0 && t < self.start.plus(window)
    }

    /// Forgets the count.
    pub(crate) fn reset(&mut self) {
        *self = Window::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_from_its_first_event() {
        let w = Duration::from_secs(60);
        let mut win = Window::default();
        let at = |s: u64| Tick::default().plus(Duration::from_secs(s));
        assert!(!win.is_open(at(0), w));
        assert_eq!(win.add(at(10), w), 1);
        assert_eq!(win.add(at(40), w), 2);
        assert_eq!(win.add(at(69), w), 3);
        assert!(win.is_open(at(69), w));
        assert!(!win.is_open(at(70), w));
        // 60 s after the first: a new window.
        assert_eq!(win.add(at(70), w), 1);
        win.reset();
        assert!(!win.is_open(at(70), w));
    }

    #[test]
    fn ticks_are_microseconds_since_the_first_reading() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        assert_eq!(c.tick(t0 + Duration::from_secs(1)), Tick(0));
        let t = c.tick(t0 + Duration::from_millis(3500));
        assert_eq!(t.micros(), 2_500_000);
        assert_eq!(c.tick(t0), Tick(0), "before the epoch");
        assert_eq!(t.millis_to(Tick(0)), -2_500);
        assert_eq!(Tick(0).millis_to(t), 2_500);
        assert_eq!(t.since(Tick(0)), Duration::from_millis(2500));
        assert_eq!(Tick(0).since(t), Duration::ZERO);
        assert_eq!(Tick::from_micros(7).micros(), 7);
    }
}
