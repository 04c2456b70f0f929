//! The store calls the worker is waiting for, polled by the worker's own task.
//!
//! A store call's future only waits on the store's reply channel (the write or read is
//! queued when the call is made), so the worker polls it itself instead of spawning a task
//! that would wake up only to forward the result through another channel: one wake-up per
//! store call instead of two.
//!
//! Completions are handed out in the order the calls were made: memory follows the store
//! in the order of the writes (two REGISTERs of one user are applied to memory in the
//! order they were committed). A call that finishes early waits for the older ones; store
//! calls take milliseconds.
//!
//! The calls sit in a `FuturesOrdered`, which polls only the calls whose reply arrived: the
//! cost of a completion does not grow with the number of calls in flight. (A plain list
//! polled from the front cost O(calls in flight) per wake-up and per removal: when the
//! store fell behind for a moment under load, thousands of calls queued up, every packet
//! the worker handled then paid for all of them, and the backlog fed itself.)
//!
//! A store call whose result nobody waits for (a call record: its completion only logs a
//! failure and hands the finished record to the CSV writer) is *quiet*: its reply does not
//! wake the worker. The worker collects finished quiet calls whenever it is awake anyway
//! ([`StoreCalls::finished_quietly`], polled with a waker that does nothing), and wakes for
//! them only when they have waited [`QUIET_LAG`] ([`StoreCalls::quiet_due`]) or when it is
//! shutting down ([`StoreCalls::next`]). Each call's two records then cost no
//! wake-up of their own (two per call before: a loop of the worker and a system call each).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use mss_core::{OpId, StoreResult};

/// The longest a finished quiet store call waits for the worker to be awake anyway: the
/// delay of a call record's line in the CSV file (and of the log line of a record that
/// could not be stored) when nothing else happens.
pub(crate) const QUIET_LAG: Duration = Duration::from_millis(20);

/// What a finished store call gives back: the core's id of the operation and its result.
pub(crate) type Completion = (OpId, StoreResult);

/// A store call turned into its [`Completion`].
type Call = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// Store calls in flight, in the order they were made.
#[derive(Default)]
pub(crate) struct StoreCalls {
    calls: FuturesOrdered<Call>,
    /// The quiet calls, in the order they were made.
    quiet: FuturesOrdered<Call>,
    /// When the worker should look at `quiet` even if nothing else wakes it; `None` when
    /// `quiet` is empty.
    quiet_due: Option<Instant>,
}

impl std::fmt::Debug for StoreCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCalls")
            .field("in_flight", &self.calls.len())
            .field("quiet", &self.quiet.len())
            .finish()
    }
}

impl StoreCalls {
    /// Starts waiting for `call`.
    pub(crate) fn push(&mut self, call: impl Future<Output = Completion> + Send + 'static) {
        self.calls.push_back(Box::pin(call));
    }

    /// Nothing is waited for.
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The oldest call once it has finished (with `quiet_too`, also the oldest quiet
    /// call, waking the worker for it: at shutdown, when nothing else would wake it);
    /// pending until then.
    pub(crate) async fn next(&mut self, quiet_too: bool) -> Completion {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(Some(c)) = self.calls.poll_next_unpin(cx) {
                return Poll::Ready(c);
            }
            if quiet_too {
                if let Poll::Ready(Some(c)) = self.quiet.poll_next_unpin(cx) {
                    if self.quiet.is_empty() {
                        self.quiet_due = None;
                    }
                    return Poll::Ready(c);
                }
            }
            // Nothing in flight: the worker does not wait then (`is_empty`), and waiting
            // for ever is the right answer anyway.
            Poll::Pending
        })
        .await
    }

    /// Starts waiting for `call` quietly (see the module documentation). Like every store
    /// call it is first polled by the worker's next look at its store calls (a store write
    /// is handed to the store's thread then: the writes of one batch of packets go
    /// together, in one commit).
    pub(crate) fn push_quiet(&mut self, call: impl Future<Output = Completion> + Send + 'static) {
        if self.quiet.is_empty() {
            self.quiet_due = Some(Instant::now() + QUIET_LAG);
        }
        self.quiet.push_back(Box::pin(call));
    }

    /// The oldest quiet call if it has finished, without waiting (and without arranging a
    /// wake-up for it); quiet calls never polled yet are polled (started) here.
    pub(crate) fn finished_quietly(&mut self) -> Option<Completion> {
        if self.quiet.is_empty() {
            return None;
        }
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        match self.quiet.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(c)) => {
                if self.quiet.is_empty() {
                    self.quiet_due = None;
                }
                Some(c)
            }
            Poll::Ready(None) | Poll::Pending => None,
        }
    }

    /// When the worker should wake up to collect quiet calls, if any is in flight.
    pub(crate) fn quiet_due(&self) -> Option<Instant> {
        self.quiet_due
    }

    /// The worker woke up at `now` for [`Self::quiet_due`] (or later): the quiet calls
    /// still in flight get another [`QUIET_LAG`].
    pub(crate) fn quiet_looked_at(&mut self, now: Instant) {
        if self.quiet_due.is_some_and(|t| t <= now) {
            self.quiet_due = (!self.quiet.is_empty()).then(|| now + QUIET_LAG);
        }
    }

    /// No quiet call is in flight.
    pub(crate) fn quiet_is_empty(&self) -> bool {
        self.quiet.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn completions_come_in_the_order_of_the_calls() {
        let mut calls = StoreCalls::default();
        assert!(calls.is_empty());
        let mut senders = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel::<Result<u64, mss_store::StoreError>>();
            senders.push(tx);
            calls.push(async move { (OpId(0), StoreResult::Count(rx.await.unwrap_or(Ok(0)))) });
        }
        // Only the second has finished: it waits for the first.
        let mut senders = senders.into_iter();
        let (first, second, third) = (
            senders.next().unwrap(),
            senders.next().unwrap(),
            senders.next().unwrap(),
        );
        second.send(Ok(2)).unwrap();
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(10), calls.next(false)).await;
        assert!(early.is_err(), "the second waits for the first");
        first.send(Ok(1)).unwrap();
        let c = calls.next(false).await;
        assert!(matches!(c, (_, StoreResult::Count(Ok(1)))), "{c:?}");
        let c = calls.next(false).await;
        assert!(matches!(c, (_, StoreResult::Count(Ok(2)))), "{c:?}");
        third.send(Ok(3)).unwrap();
        let c = calls.next(false).await;
        assert!(matches!(c, (_, StoreResult::Count(Ok(3)))), "{c:?}");
        assert!(calls.is_empty());
        // Nothing in flight: still pending.
        let none =
            tokio::time::timeout(std::time::Duration::from_millis(10), calls.next(false)).await;
        assert!(none.is_err());
    }

    /// Quiet calls: handed out in the order of the calls once finished, without waiting;
    /// a write is started by the first look; the due time is set while any is in flight.
    #[tokio::test]
    async fn quiet_calls_are_collected_without_waiting_in_the_order_of_the_calls() {
        let mut calls = StoreCalls::default();
        assert!(calls.quiet_is_empty() && calls.quiet_due().is_none());
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut senders = Vec::new();
        let before = Instant::now();
        for n in 0..3u64 {
            let (tx, rx) = oneshot::channel::<Result<u64, mss_store::StoreError>>();
            senders.push(tx);
            let started = started_tx.clone();
            calls.push_quiet(async move {
                let _ = started.send(n);
                (OpId(n), StoreResult::Count(rx.await.unwrap_or(Ok(0))))
            });
        }
        // Not polled by the push: by the first look.
        assert!(started_rx.try_recv().is_err());
        assert!(calls.quiet_due().is_some_and(|t| t >= before + QUIET_LAG));
        assert!(calls.finished_quietly().is_none());
        for n in 0..3 {
            assert_eq!(started_rx.try_recv().ok(), Some(n));
        }
        let mut senders = senders.into_iter();
        let (first, second, third) = (
            senders.next().unwrap(),
            senders.next().unwrap(),
            senders.next().unwrap(),
        );
        second.send(Ok(2)).unwrap();
        assert!(
            calls.finished_quietly().is_none(),
            "the second waits for the first"
        );
        first.send(Ok(1)).unwrap();
        let c = calls.finished_quietly();
        assert!(
            matches!(c, Some((OpId(0), StoreResult::Count(Ok(1))))),
            "{c:?}"
        );
        let c = calls.finished_quietly();
        assert!(
            matches!(c, Some((OpId(1), StoreResult::Count(Ok(2))))),
            "{c:?}"
        );
        assert!(calls.finished_quietly().is_none());
        // Looked at after its due time with one still in flight: due again later.
        let late = Instant::now() + QUIET_LAG * 2;
        calls.quiet_looked_at(late);
        assert_eq!(calls.quiet_due(), Some(late + QUIET_LAG));
        // At shutdown the last one is waited for.
        third.send(Ok(3)).unwrap();
        let c = calls.next(true).await;
        assert!(matches!(c, (OpId(2), StoreResult::Count(Ok(3)))), "{c:?}");
        assert!(calls.quiet_is_empty() && calls.quiet_due().is_none());
        assert!(calls.is_empty(), "the other calls are apart");
    }

    /// Thousands in flight, all answered at once in reverse order (more than tokio's
    /// cooperative budget lets one poll collect): handed out in the order of the calls,
    /// each exactly once.
    #[tokio::test]
    async fn many_finished_together_come_in_the_order_of_the_calls() {
        let mut calls = StoreCalls::default();
        let mut senders = Vec::new();
        for _ in 0..5_000 {
            let (tx, rx) = oneshot::channel::<Result<u64, mss_store::StoreError>>();
            senders.push(tx);
            calls.push(async move {
                (
                    OpId(0),
                    StoreResult::Count(rx.await.unwrap_or(Ok(u64::MAX))),
                )
            });
        }
        for (n, tx) in senders.into_iter().enumerate().rev() {
            tx.send(Ok(n as u64)).unwrap();
        }
        for n in 0..5_000u64 {
            let c = calls.next(false).await;
            assert!(
                matches!(c, (_, StoreResult::Count(Ok(m))) if m == n),
                "{c:?} at {n}"
            );
        }
        assert!(calls.is_empty());
    }
}
