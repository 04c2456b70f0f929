//! The reader threads: a small pool of read-only connections, so reads never wait behind
//! the writer's commit (WAL lets readers run while the writer writes).

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// A queued read: runs on one reader connection and answers its caller itself.
pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// How many reader threads [`crate::SqliteStore`] starts.
pub(crate) const READERS: usize = 2;

/// One reader thread's loop: takes the next read from the shared queue until every sender
/// is dropped.
pub(crate) fn run(conn: Connection, queue: Arc<Mutex<Receiver<ReadJob>>>) {
    loop {
        let next = {
            // A poisoned lock only means another reader panicked while waiting; the
            // receiver itself is still sound.
            let guard = queue.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        match next {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_until_senders_drop() {
        let (tx, rx) = std::sync::mpsc::channel::<ReadJob>();
        let queue = Arc::new(Mutex::new(rx));
        let (otx, orx) = std::sync::mpsc::channel();
        tx.send(Box::new(move |c: &Connection| {
            let v: i64 = c.query_row("SELECT 41 + 1", [], |r| r.get(0)).unwrap();
            otx.send(v).unwrap();
        }))
        .unwrap();
        drop(tx);
        run(Connection::open_in_memory().unwrap(), queue);
        assert_eq!(orx.recv().unwrap(), 42);
    }
}
