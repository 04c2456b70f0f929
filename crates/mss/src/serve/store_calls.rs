//! The store calls the worker is waiting for, polled by the worker's own task.
//!
//! A store call's future only waits on the store's reply channel (the write or read is
//! queued when the call is made), so the worker polls it itself instead of spawning a task
//! that would wake up only to forward the result through another channel: one wake-up per
//! store call instead of two.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use super::worker::Completion;

/// A store call turned into its [`Completion`].
type Call = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// Store calls in flight, in the order they were started.
#[derive(Default)]
pub(crate) struct StoreCalls {
    calls: Vec<Call>,
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
        self.calls.push(Box::pin(call));
    }

    /// Nothing is waited for.
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The first finished call, oldest first (the store answers in the order it was
    /// asked, and so the completions keep that order); pending while none has finished.
    pub(crate) fn next(&mut self) -> impl Future<Output = Completion> + '_ {
        poll_fn(move |cx| {
            let ready = self.calls.iter_mut().enumerate().find_map(|(i, call)| {
                match call.as_mut().poll(cx) {
                    Poll::Ready(c) => Some((i, c)),
                    Poll::Pending => None,
                }
            });
            match ready {
                Some((i, c)) => {
                    drop(self.calls.remove(i));
                    Poll::Ready(c)
                }
                None => Poll::Pending,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn completions_come_oldest_first_as_they_finish() {
        let mut calls = StoreCalls::default();
        assert!(calls.is_empty());
        let mut senders = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel::<Result<u64, mss_store::StoreError>>();
            senders.push(tx);
            calls.push(async move { Completion::Swept(rx.await.unwrap_or(Ok(0))) });
        }
        // Only the second has finished: it comes, the others wait.
        let second = senders.remove(1);
        second.send(Ok(2)).unwrap();
        let c = calls.next().await;
        assert!(matches!(c, Completion::Swept(Ok(2))), "{c:?}");
        // Both left finish together: the older comes first.
        for (tx, n) in senders.into_iter().zip([1, 3]) {
            tx.send(Ok(n)).unwrap();
        }
        let c = calls.next().await;
        assert!(matches!(c, Completion::Swept(Ok(1))), "{c:?}");
        let c = calls.next().await;
        assert!(matches!(c, Completion::Swept(Ok(3))), "{c:?}");
        assert!(calls.is_empty());
        // Nothing in flight: still pending.
        let none = tokio::time::timeout(std::time::Duration::from_millis(10), calls.next()).await;
        assert!(none.is_err());
    }
}
