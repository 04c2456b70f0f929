//! The futures the store hands out: waiting for a queued job's answer, and for a write,
//! waking the writer first ([`super::queue`]).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::queue::WriteQueue;
use crate::error::StoreError;
use crate::store::StoreFuture;

/// A write's future: wakes the writer the first time it is polled or when it is dropped
/// unpolled ([`super::queue`]), then waits for the answer.
pub(crate) struct Notifying<T> {
    /// Notified once, then `None`.
    pub(crate) queue: Option<Arc<WriteQueue>>,
    /// The answer, from [`wait`].
    pub(crate) answer: StoreFuture<T>,
}

impl<T> Notifying<T> {
    fn notify(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.notify();
        }
    }
}

impl<T> Future for Notifying<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.notify();
        self.answer.as_mut().poll(cx)
    }
}

impl<T> Drop for Notifying<T> {
    fn drop(&mut self) {
        self.notify();
    }
}

/// The future that waits for a queued job's answer. If the job could not be queued, or its
/// thread dropped it unanswered (the thread died), the answer is [`StoreError::ThreadGone`].
pub(crate) fn wait<T: Send + 'static>(
    op: &'static str,
    path: PathBuf,
    thread: &'static str,
    sent: bool,
    answer: oneshot::Receiver<Result<T, StoreError>>,
) -> StoreFuture<T> {
    Box::pin(async move {
        let gone = || StoreError::ThreadGone { op, path, thread };
        if !sent {
            return Err(gone());
        }
        answer.await.unwrap_or_else(|_| Err(gone()))
    })
}
