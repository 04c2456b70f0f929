//! `block_on`: waits for a store future on the current thread, for sync callers and tests.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

/// Wakes the thread that is blocked in [`block_on`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the current thread, parking between polls.
///
/// Store futures need no runtime (they wait on a channel that the store's own threads
/// complete), so this is all a sync caller needs:
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = mss_store::SqliteStore::open(dir.path()).unwrap();
/// let secret = mss_store::block_on(store.secret_or_insert("nonce", b"x".to_vec())).unwrap();
/// assert_eq!(secret, b"x");
/// # use mss_store::Store;
/// ```
///
/// Do not call it on a thread of an async runtime: it blocks that thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A wake that came before this park leaves a token, so it is not lost.
        std::thread::park();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ready_future() {
        assert_eq!(block_on(async { 7 }), 7);
    }

    #[test]
    fn waits_for_other_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send(5).unwrap();
        });
        assert_eq!(block_on(rx).unwrap(), 5);
        t.join().unwrap();
    }
}
