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

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{FuturesOrdered, StreamExt};
use mss_core::{OpId, StoreResult};

/// What a finished store call gives back: the core's id of the operation and its result.
pub(crate) type Completion = (OpId, StoreResult);

/// A store call turned into its [`Completion`].
type Call = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// Store calls in flight, in the order they were made.
#[derive(Default)]
pub(crate) struct StoreCalls {
    calls: FuturesOrdered<Call>,
}

impl std::fmt::Debug for StoreCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCalls")
            .field("in_flight", &self.calls.len())
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

    /// The oldest call once it has finished; pending until then.
    pub(crate) async fn next(&mut self) -> Completion {
        match self.calls.next().await {
            Some(c) => c,
            // Nothing in flight: the worker does not wait then (`is_empty`), and waiting
            // for ever is the right answer anyway.
            None => std::future::pending().await,
        }
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
        let early = tokio::time::timeout(std::time::Duration::from_millis(10), calls.next()).await;
        assert!(early.is_err(), "the second waits for the first");
        first.send(Ok(1)).unwrap();
        let c = calls.next().await;
        assert!(matches!(c, (_, StoreResult::Count(Ok(1)))), "{c:?}");
        let c = calls.next().await;
        assert!(matches!(c, (_, StoreResult::Count(Ok(2)))), "{c:?}");
        third.send(Ok(3)).unwrap();
        let c = calls.next().await;
        assert!(matches!(c, (_, StoreResult::Count(Ok(3)))), "{c:?}");
        assert!(calls.is_empty());
        // Nothing in flight: still pending.
        let none = tokio::time::timeout(std::time::Duration::from_millis(10), calls.next()).await;
        assert!(none.is_err());
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
            let c = calls.next().await;
            assert!(
                matches!(c, (_, StoreResult::Count(Ok(m))) if m == n),
                "{c:?} at {n}"
            );
        }
        assert!(calls.is_empty());
    }
}
