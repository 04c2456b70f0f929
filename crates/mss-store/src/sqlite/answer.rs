//! The futures the store hands out: waiting for a queued job's answer, and for a write,
//! waking the writer first ([`super::queue`]).
//!
//! A job is allocated by the caller's thread (the worker of `mss serve`) and run by a store
//! thread. If the store thread freed it, glibc's `free` would take the lock of the
//! caller's malloc arena, which the caller's own `malloc`s take too: the worker then waits
//! whenever the writer holds it, longest when the writer is descheduled while holding it
//! (seen as futex waits of several milliseconds under load). So a store thread sends what is
//! left of the job back with the answer ([`Reply::spent`]), and the caller's future drops
//! it on the caller's thread.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::queue::WriteQueue;
use crate::error::StoreError;
use crate::store::StoreFuture;

/// What a store thread sends back for a job.
pub(crate) struct Reply<T> {
    /// The job's answer.
    pub(crate) answer: Result<T, StoreError>,
    /// What is left of the job (its box, the data it wrote), freed by the caller's
    /// future on the caller's thread (see the module documentation).
    pub(crate) spent: Option<Box<dyn Send>>,
}

impl<T> Reply<T> {
    /// An answer with nothing to hand back.
    pub(crate) fn only(answer: Result<T, StoreError>) -> Reply<T> {
        Reply {
            answer,
            spent: None,
        }
    }
}

/// The future of a queued job: waits for its [`Reply`]. A write's future also wakes the
/// writer the first time it is polled, or when it is dropped unpolled ([`super::queue`]).
/// One allocation per call: the caller boxes this future and nothing else.
struct Waiting<T> {
    /// The writer's queue, notified once, then `None`; always `None` for a read.
    queue: Option<Arc<WriteQueue>>,
    /// The store operation, for errors.
    op: &'static str,
    /// The database file, for errors.
    path: Arc<Path>,
    /// The thread that runs the job, for errors.
    thread: &'static str,
    /// Where the answer comes; `None` when the job could not be queued.
    answer: Option<oneshot::Receiver<Reply<T>>>,
}

impl<T> Waiting<T> {
    fn notify(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.notify();
        }
    }

    fn gone(&self) -> StoreError {
        StoreError::ThreadGone {
            op: self.op,
            path: self.path.to_path_buf(),
            thread: self.thread,
        }
    }
}

impl<T> Future for Waiting<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.notify();
        let Some(answer) = self.answer.as_mut() else {
            return Poll::Ready(Err(self.gone()));
        };
        match Pin::new(answer).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Reply { answer, spent })) => {
                // Freed here, on the thread that allocated it.
                drop(spent);
                Poll::Ready(answer)
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.gone())),
        }
    }
}

impl<T> Drop for Waiting<T> {
    fn drop(&mut self) {
        self.notify();
    }
}

/// The future that waits for a queued job's answer. If the job could not be queued
/// (`answer` is `None`), or its thread dropped it unanswered (the thread died), the answer
/// is [`StoreError::ThreadGone`]. `notify`: the writer's queue, for a write (woken on the
/// first poll or on drop).
pub(crate) fn wait<T: Send + 'static>(
    op: &'static str,
    path: Arc<Path>,
    thread: &'static str,
    notify: Option<Arc<WriteQueue>>,
    answer: Option<oneshot::Receiver<Reply<T>>>,
) -> StoreFuture<T> {
    Box::pin(Waiting {
        queue: notify,
        op,
        path,
        thread,
        answer,
    })
}
