//! The writer's queue, woken once per burst of writes rather than once per write.
//!
//! A write is queued (in call order) when the store method is called, but the writer is
//! only woken when the write's future is first polled or dropped ([`WriteQueue::notify`]).
//! The worker of `mss serve` queues the writes of everything it received in one turn of its
//! event loop and polls their futures only after that turn: so the writer, parked, wakes
//! once and commits them together, instead of waking for the first, committing it alone
//! and parking again while the next ones arrive. Each wake of a parked thread costs a
//! futex call on the waking side and a context switch on the other (a third of the
//! writer's CPU in a registration benchmark before this queue); fewer, larger commits also
//! share their `BEGIN`, `COMMIT`, locks and WAL pages.
//!
//! A write is never lost for want of a poll: dropping its future notifies too, and a
//! writer that is busy takes everything queued when it finishes its batch.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::writer::WriteJob;

/// The queue shared by the store handles (producers) and the writer thread (consumer).
#[derive(Default)]
pub(crate) struct WriteQueue {
    state: Mutex<State>,
    wake: Condvar,
}

/// What the mutex guards.
#[derive(Default)]
struct State {
    jobs: Vec<Box<dyn WriteJob>>,
    /// No more jobs are accepted; the writer stops once the queue is empty.
    closed: bool,
    /// The writer is waiting on the condition variable and nobody has woken it yet.
    parked: bool,
}

impl std::fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteQueue").finish_non_exhaustive()
    }
}

impl WriteQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job never runs under this lock, so a poisoned lock cannot hold a broken state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job` without waking the writer; `Err(job)` once the queue is closed.
    pub(crate) fn push(&self, job: Box<dyn WriteJob>) -> Result<(), Box<dyn WriteJob>> {
        let mut state = self.lock();
        if state.closed {
            return Err(job);
        }
        state.jobs.push(job);
        Ok(())
    }

    /// Wakes the writer if it is parked and something is queued. Only the first of several
    /// notifies before the writer runs makes the wake-up call (a system call each).
    pub(crate) fn notify(&self) {
        let wake = {
            let mut state = self.lock();
            let wake = state.parked && !state.jobs.is_empty();
            if wake {
                state.parked = false;
            }
            wake
        };
        // Outside the lock, which the woken writer takes at once.
        if wake {
            self.wake.notify_one();
        }
    }

    /// Refuses further jobs and drops the queued ones unanswered (their callers hear that
    /// the writer is gone).
    pub(crate) fn abandon(&self) {
        let jobs = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.jobs)
        };
        drop(jobs);
    }

    /// Refuses further jobs and wakes the writer so that it finishes what is queued.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Takes up to `max` queued jobs, oldest first. When nothing is queued it calls
    /// `idle` once, then parks until notified. `None` when the queue is closed and empty.
    /// For a batch of writes that may wait ([`Durability::SyncedLazily`]): takes up to
    /// `max` more queued jobs, waiting until `until` for them as long as every job taken
    /// so far satisfies `lazy`. Returns at once with what is queued when a job that is not
    /// lazy is among them (its caller is waiting), when `max` are taken, at `until`, or
    /// when the queue is closed.
    ///
    /// [`Durability::SyncedLazily`]: super::writer::Durability::SyncedLazily
    pub(crate) fn take_lazily_until(
        &self,
        until: Instant,
        max: usize,
        lazy: impl Fn(&dyn WriteJob) -> bool,
    ) -> Vec<Box<dyn WriteJob>> {
        let mut taken: Vec<Box<dyn WriteJob>> = Vec::new();
        let mut state = self.lock();
        loop {
            let n = state.jobs.len().min(max.saturating_sub(taken.len()));
            taken.extend(state.jobs.drain(..n));
            let now = Instant::now();
            let done = taken.len() >= max
                || state.closed
                || now >= until
                || taken.iter().any(|j| !lazy(j.as_ref()));
            if done {
                return taken;
            }
            state.parked = true;
            let (next, _) = self
                .wake
                .wait_timeout(state, until.saturating_duration_since(now))
                .unwrap_or_else(|p| p.into_inner());
            state = next;
            state.parked = false;
        }
    }

    pub(crate) fn take(
        &self,
        max: usize,
        mut idle: impl FnMut(),
    ) -> Option<Vec<Box<dyn WriteJob>>> {
        let mut state = self.lock();
        if state.jobs.is_empty() && !state.closed {
            drop(state);
            idle();
            state = self.lock();
        }
        loop {
            if !state.jobs.is_empty() {
                let n = state.jobs.len().min(max);
                return Some(state.jobs.drain(..n).collect());
            }
            if state.closed {
                return None;
            }
            state.parked = true;
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            state.parked = false;
        }
    }
}

/// Abandons the queue when dropped: held by the writer thread, so that a panic in a write
/// fails the writes queued after it instead of leaving them waiting forever.
pub(crate) struct AbandonOnDrop<'a>(pub(crate) &'a WriteQueue);

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rusqlite::Connection;

    use super::*;
    use crate::sqlite::writer::{Durability, Outcome};

    /// A write that does nothing, with the given promise.
    struct Job(Durability);

    impl WriteJob for Job {
        fn run(&mut self, _: &Connection) -> bool {
            true
        }
        fn failed(&self) -> bool {
            false
        }
        fn complete(self: Box<Self>, _: Outcome<'_>) {}
        fn durability(&self) -> Durability {
            self.0
        }
    }

    /// A write somebody waits for (a binding).
    const NOP: Job = Job(Durability::Committed);
    /// A write nobody waits for (a call record's end).
    const LAZY: Job = Job(Durability::SyncedLazily);

    fn lazy(job: &dyn WriteJob) -> bool {
        job.durability() == Durability::SyncedLazily
    }

    #[test]
    fn lazily_returns_at_once_when_a_job_somebody_waits_for_is_queued() {
        let q = WriteQueue::default();
        q.push(Box::new(LAZY)).ok().unwrap();
        q.push(Box::new(NOP)).ok().unwrap();
        q.push(Box::new(LAZY)).ok().unwrap();
        // A deadline far away: the waited-for job ends the wait, not the clock.
        let until = Instant::now() + Duration::from_secs(3_600);
        assert_eq!(q.take_lazily_until(until, 10, lazy).len(), 3);
    }

    #[test]
    fn lazily_gathers_what_is_pushed_while_it_waits() {
        let q = Arc::new(WriteQueue::default());
        let writer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(3_600);
                q.take_lazily_until(until, 2, lazy).len()
            })
        };
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(20));
            q.push(Box::new(LAZY)).ok().unwrap();
            q.notify();
        }
        // Returns once it holds `max` jobs.
        assert_eq!(writer.join().unwrap(), 2);
    }

    #[test]
    fn lazily_returns_what_is_queued_once_the_deadline_passed() {
        let q = WriteQueue::default();
        assert!(q.take_lazily_until(Instant::now(), 10, lazy).is_empty());
        q.push(Box::new(LAZY)).ok().unwrap();
        assert_eq!(q.take_lazily_until(Instant::now(), 10, lazy).len(), 1);
        q.push(Box::new(LAZY)).ok().unwrap();
        q.close();
        let until = Instant::now() + Duration::from_secs(3_600);
        assert_eq!(
            q.take_lazily_until(until, 10, lazy).len(),
            1,
            "closed: no wait"
        );
    }

    #[test]
    fn takes_in_order_up_to_max_and_calls_idle_only_when_empty() {
        let q = WriteQueue::default();
        for _ in 0..5 {
            assert!(q.push(Box::new(NOP)).is_ok());
        }
        let mut idles = 0;
        assert_eq!(q.take(3, || idles += 1).unwrap().len(), 3);
        assert_eq!(q.take(3, || idles += 1).unwrap().len(), 2);
        assert_eq!(idles, 0);
        q.close();
        assert!(q.take(3, || idles += 1).is_none());
        assert!(q.push(Box::new(NOP)).is_err(), "closed");
    }

    #[test]
    fn parked_writer_waits_for_notify_and_takes_the_whole_burst() {
        let q = Arc::new(WriteQueue::default());
        let writer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.take(100, || {}).map(|b| b.len()))
        };
        // Let it park, then queue three writes: it stays parked until notified.
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..3 {
            q.push(Box::new(NOP)).ok().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!writer.is_finished());
        q.notify();
        assert_eq!(writer.join().unwrap(), Some(3));
    }

    #[test]
    fn close_wakes_a_parked_writer() {
        let q = Arc::new(WriteQueue::default());
        let writer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.take(100, || {}).is_none())
        };
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert!(writer.join().unwrap());
    }
}
