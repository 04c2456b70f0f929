//! The writer thread and its group commit.
//!
//! One thread owns the only write connection. It waits for queued writes ([`WriteQueue`]),
//! takes whatever is queued (up to [`MAX_BATCH`]), runs them all in one `BEGIN IMMEDIATE`
//! transaction, commits, and only then answers each caller. Many concurrent inserts thus
//! share one fsync. A failing write is rolled back alone: the batch is run again without
//! it ([`transaction`](super::transaction)).
//!
//! How far a commit goes before the callers hear of it depends on what the batch holds
//! ([`Durability`]): a batch with any [`Durability::Synced`] write commits with
//! `synchronous=FULL` (the WAL is fsynced before `COMMIT` returns: a `202` for a stored
//! message survives a power cut); a batch of only [`Durability::Committed`] writes
//! (registrar bindings, the start of a call record) commits with `synchronous=NORMAL`: in
//! WAL mode the commit is atomic and survives a crash or `kill -9` of mss, but not a power
//! cut of the machine — where a phone re-registers anyway, and a call's start only has to
//! outlive a crash of mss (its finished record is synced). That keeps a disk whose fsyncs
//! stall for tens of milliseconds under other load out of every REGISTER's answer time.
//!
//! A finished call record is synced too, but nobody waits for it ([`Durability::SyncedLazily`]):
//! a batch of nothing else, taken less than [`SYNC_WINDOW`] after the last synced commit,
//! waits for the rest of that window (or for any other write to arrive) and gathers what
//! comes meanwhile into the same synced commit. Under a steady call load the writer then
//! syncs about once per window instead of once per batch (nearly every batch held a
//! call's end: hundreds of fsyncs per second at 4,000 calls/s), and every record is still
//! on stable storage before its caller hears of it. The starts of calls
//! ([`Durability::CommittedLazily`]) may join such a batch; a write somebody waits for (a
//! REGISTER's binding, a stored message) ends the wait at once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::answer::Reply;
use super::checkpoint::Checkpoints;
use super::queue::WriteQueue;
use super::transaction;
use crate::error::StoreError;
use crate::records::StoreStats;

/// Most writes committed in one transaction: bounds the time the first caller of a batch
/// waits and the size of the WAL a batch appends.
pub(crate) const MAX_BATCH: usize = 512;

/// The shortest time between two synced commits made for [`Durability::SyncedLazily`]
/// writes alone: the most such a write waits beyond its own commit.
pub(crate) const SYNC_WINDOW: Duration = Duration::from_millis(50);

/// What a caller is promised once its write's commit returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// On stable storage: survives a crash of the machine (`synchronous=FULL`).
    Synced,
    /// Committed to the WAL: survives a crash or kill of mss, not of the machine
    /// (`synchronous=NORMAL`).
    Committed,
    /// On stable storage, like [`Durability::Synced`], but the caller does not wait for
    /// it: the write may wait up to [`SYNC_WINDOW`] to share its fsync with later ones.
    SyncedLazily,
    /// Committed, like [`Durability::Committed`], and the caller does not wait for it: it
    /// may ride along in a batch that waits for [`Durability::SyncedLazily`] writes.
    CommittedLazily,
}

impl Durability {
    /// The `synchronous` pragma value that gives this promise in WAL mode.
    fn pragma(self) -> &'static str {
        match self {
            Durability::Synced | Durability::SyncedLazily => "FULL",
            Durability::Committed | Durability::CommittedLazily => "NORMAL",
        }
    }

    /// Whether the caller may be answered late (see [`SYNC_WINDOW`]).
    fn may_wait(self) -> bool {
        matches!(self, Durability::SyncedLazily | Durability::CommittedLazily)
    }

    /// What a batch of writes with these promises needs: the strongest one.
    fn of_batch(batch: &[Box<dyn WriteJob>]) -> Durability {
        let mut needed = Durability::Committed;
        for job in batch {
            match job.durability() {
                Durability::Synced => return Durability::Synced,
                Durability::SyncedLazily => needed = Durability::SyncedLazily,
                Durability::Committed | Durability::CommittedLazily => {}
            }
        }
        needed
    }
}

/// How the transaction that carried a write ended.
pub(crate) enum Outcome<'a> {
    /// Committed and synced.
    Committed,
    /// The transaction could not begin or commit, or had to be rolled back.
    Failed(&'a Arc<rusqlite::Error>),
}

/// One queued write: run inside the batch transaction, then completed once the fate of
/// that transaction is known.
pub(crate) trait WriteJob: Send {
    /// Runs the write on the writer connection inside the batch transaction; `false` if it
    /// failed. A write may be run more than once (the batch is run again when another
    /// write of it fails): only the last run's result counts, the earlier ones were
    /// rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Its last run failed: it is answered with that error and not run again.
    fn failed(&self) -> bool;
    /// Answers the caller.
    fn complete(self: Box<Self>, outcome: Outcome<'_>);
    /// What the caller is promised at commit.
    fn durability(&self) -> Durability;
}

/// A [`WriteJob`] made from a closure, answering through a oneshot channel. Once answered,
/// its box (with the closure and what the closure captured) goes back to the caller with
/// the answer, to be freed on the caller's thread ([`super::answer`]).
pub(crate) struct Pending<T, F> {
    /// The store operation, for errors.
    pub(crate) op: &'static str,
    /// The database file, for errors (shared: no copy per write).
    pub(crate) path: Arc<Path>,
    /// What the commit must achieve before the caller is answered.
    pub(crate) durability: Durability,
    /// The write (`Fn`: it may run again if the batch is retried).
    pub(crate) write: F,
    /// Its result, kept until the commit.
    pub(crate) result: Option<rusqlite::Result<T>>,
    /// Where the caller waits; taken when answering.
    pub(crate) reply: Option<oneshot::Sender<Reply<T>>>,
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.write)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn failed(&self) -> bool {
        matches!(self.result, Some(Err(_)))
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn complete(mut self: Box<Self>, outcome: Outcome<'_>) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        let op = self.op;
        let answer = match (outcome, self.result.take()) {
            (Outcome::Committed, Some(Ok(value))) => Ok(value),
            // The write's own error says more than the rollback it caused.
            (_, Some(Err(source))) => Err(StoreError::Sqlite {
                op,
                path: self.path.to_path_buf(),
                source,
            }),
            (Outcome::Failed(source), _) => Err(StoreError::Commit {
                op,
                path: self.path.to_path_buf(),
                source: Arc::clone(source),
            }),
            // Committed without having run: cannot happen, but never claim durability.
            (Outcome::Committed, None) => Err(StoreError::ThreadGone {
                op,
                path: self.path.to_path_buf(),
                thread: "writer",
            }),
        };
        let spent: Box<dyn Send> = self;
        // The caller may have stopped waiting; the write stays committed either way (and
        // the job is then freed here).
        let _ = reply.send(Reply {
            answer,
            spent: Some(spent),
        });
    }
}

/// Counters shared between the writer thread and [`crate::SqliteStore::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    largest_batch: AtomicU64,
    failed_commits: AtomicU64,
}

impl Counters {
    /// A snapshot.
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
        }
    }
}

/// The writer thread's loop: runs until the queue is closed and empty. Between batches it
/// gives `checkpoints` its turn ([`super::checkpoint`]).
pub(crate) fn run(
    conn: Connection,
    queue: &WriteQueue,
    counters: Arc<Counters>,
    mut checkpoints: Checkpoints,
) {
    // The connection is opened with `synchronous=FULL`.
    let mut current = "FULL";
    // When the last synced commit ended.
    let mut last_sync: Option<Instant> = None;
    while let Some(mut batch) = queue.take(MAX_BATCH, || checkpoints.between_batches(&conn, true)) {
        let mut needed = Durability::of_batch(&batch);
        let nobody_waits = batch.iter().all(|j| j.durability().may_wait());
        if needed == Durability::SyncedLazily && nobody_waits {
            // Only writes nobody waits for want the fsync: share it with what the rest of
            // the window brings, unless a write somebody waits for arrives first.
            if let Some(until) = last_sync.map(|t| t + SYNC_WINDOW) {
                let room = MAX_BATCH.saturating_sub(batch.len());
                batch.extend(queue.take_lazily_until(until, room, |j| j.durability().may_wait()));
                needed = Durability::of_batch(&batch);
            }
        }
        if needed.pragma() != current {
            // Outside any transaction, as SQLite requires. A failed switch keeps the old
            // setting: a failed weakening leaves FULL (still keeps every promise); a failed
            // strengthening cannot keep this batch's promise, so the batch is refused.
            match conn.pragma_update(None, "synchronous", needed.pragma()) {
                Ok(()) => current = needed.pragma(),
                Err(e) if needed.pragma() == "FULL" => {
                    tracing::error!(error = %e, "cannot switch the store to synchronous=FULL");
                    let e = Arc::new(e);
                    counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                    for job in batch {
                        job.complete(Outcome::Failed(&e));
                    }
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "store stays at synchronous=FULL"),
            }
        }
        let size = batch.len() as u64;
        if commit_batch(&conn, batch, &counters) {
            checkpoints.committed(size);
            if current == "FULL" {
                last_sync = Some(Instant::now());
            }
        }
        checkpoints.between_batches(&conn, false);
    }
}

/// Runs `batch` in one transaction and answers every job; `true` if it committed.
fn commit_batch(conn: &Connection, mut batch: Vec<Box<dyn WriteJob>>, counters: &Counters) -> bool {
    let size = batch.len() as u64;
    match transaction::run(conn, &mut batch) {
        Ok(()) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.writes.fetch_add(size, Ordering::Relaxed);
            counters.largest_batch.fetch_max(size, Ordering::Relaxed);
            for job in batch {
                job.complete(Outcome::Committed);
            }
            true
        }
        Err(e) => {
            counters.failed_commits.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, writes = size, "store transaction failed");
            let e = Arc::new(e);
            for job in batch {
                job.complete(Outcome::Failed(&e));
            }
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn job(
        write: impl Fn(&Connection) -> rusqlite::Result<i64> + Send + 'static,
    ) -> (Box<dyn WriteJob>, oneshot::Receiver<Reply<i64>>) {
        job_with(Durability::Synced, write)
    }

    fn job_with(
        durability: Durability,
        write: impl Fn(&Connection) -> rusqlite::Result<i64> + Send + 'static,
    ) -> (Box<dyn WriteJob>, oneshot::Receiver<Reply<i64>>) {
        let (reply, rx) = oneshot::channel();
        let p = Pending {
            op: "test",
            path: Arc::from(Path::new(":memory:")),
            durability,
            write,
            result: None,
            reply: Some(reply),
        };
        (Box::new(p), rx)
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// The `synchronous` setting a write sees while it runs inside its batch.
    fn synchronous_seen(c: &Connection) -> rusqlite::Result<i64> {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0))
    }

    #[test]
    fn batch_commits_as_durably_as_its_most_demanding_write() {
        const NORMAL: i64 = 1;
        const FULL: i64 = 2;
        let conn = db();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        let queue = Arc::new(WriteQueue::default());
        let counters = Arc::new(Counters::default());
        let writer = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || run(conn, &queue, counters, Checkpoints::alone()))
        };
        let tx = |j| {
            queue.push(j).ok().unwrap();
            queue.notify();
        };
        let send = |durability| {
            let (j, rx) = job_with(durability, synchronous_seen);
            tx(j);
            rx.blocking_recv().unwrap().answer.unwrap()
        };
        // Bindings alone: committed without an fsync.
        assert_eq!(send(Durability::Committed), NORMAL);
        // A stored message: synced.
        assert_eq!(send(Durability::Synced), FULL);
        assert_eq!(send(Durability::Committed), NORMAL);
        // A batch holding both is synced for all of them.
        let (a, ra) = job_with(Durability::Committed, synchronous_seen);
        let (b, rb) = job_with(Durability::Synced, synchronous_seen);
        let (j, rj) = job(|c| c.execute("INSERT INTO t VALUES (9)", []).map(|n| n as i64));
        // Hold the writer busy so that a queues behind a synced write whichever batch it
        // lands in.
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let (hold, rh) = job(move |_| {
            let _ = gate_rx.recv();
            Ok(0)
        });
        tx(hold);
        tx(a);
        tx(b);
        tx(j);
        gate_tx.send(()).unwrap();
        assert_eq!(rh.blocking_recv().unwrap().answer.unwrap(), 0);
        assert_eq!(ra.blocking_recv().unwrap().answer.unwrap(), FULL);
        assert_eq!(rb.blocking_recv().unwrap().answer.unwrap(), FULL);
        assert_eq!(rj.blocking_recv().unwrap().answer.unwrap(), 1);
        // A call's start, nobody waiting: committed; its end: synced.
        assert_eq!(send(Durability::CommittedLazily), NORMAL);
        assert_eq!(send(Durability::SyncedLazily), FULL);
        queue.close();
        writer.join().unwrap();
    }

    #[test]
    fn writes_nobody_waits_for_share_the_fsync_of_their_window() {
        let conn = db();
        let queue = Arc::new(WriteQueue::default());
        let counters = Arc::new(Counters::default());
        let writer = {
            let (queue, counters) = (Arc::clone(&queue), Arc::clone(&counters));
            std::thread::spawn(move || run(conn, &queue, counters, Checkpoints::alone()))
        };
        let tx = |j| {
            queue.push(j).ok().unwrap();
            queue.notify();
        };
        let insert = |n: i64| {
            move |c: &Connection| {
                c.execute("INSERT INTO t VALUES (?1)", [n])
                    .map(|k| k as i64)
            }
        };
        // A synced commit starts the window.
        let (first, r0) = job_with(Durability::SyncedLazily, insert(1));
        tx(first);
        assert_eq!(r0.blocking_recv().unwrap().answer.unwrap(), 1);
        // The next end waits for the window; so does a start that comes meanwhile, and a
        // write somebody waits for ends the wait: one commit for the three.
        let (end, r1) = job_with(Durability::SyncedLazily, insert(2));
        let (start, r2) = job_with(Durability::CommittedLazily, insert(3));
        let (message, r3) = job_with(Durability::Synced, insert(4));
        // Each pushed while the writer waits (the window is 50 ms from the first commit;
        // without the wait each would be a commit of its own).
        tx(end);
        std::thread::sleep(Duration::from_millis(5));
        tx(start);
        std::thread::sleep(Duration::from_millis(5));
        tx(message);
        for r in [r1, r2, r3] {
            assert_eq!(r.blocking_recv().unwrap().answer.unwrap(), 1);
        }
        assert_eq!(counters.commits.load(Ordering::Relaxed), 2);
        assert_eq!(counters.largest_batch.load(Ordering::Relaxed), 3);
        queue.close();
        writer.join().unwrap();
    }

    #[test]
    fn failing_job_is_rolled_back_alone() {
        let conn = db();
        let counters = Counters::default();
        let (a, mut ra) = job(|c| c.execute("INSERT INTO t VALUES (1)", []).map(|n| n as i64));
        let (b, mut rb) = job(|c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            c.execute("INSERT INTO t VALUES (1)", []).map(|n| n as i64)
        });
        let (d, mut rd) = job(|c| c.execute("INSERT INTO t VALUES (3)", []).map(|n| n as i64));
        commit_batch(&conn, vec![a, b, d], &counters);
        assert_eq!(ra.try_recv().unwrap().answer.unwrap(), 1);
        assert!(matches!(
            rb.try_recv().unwrap().answer,
            Err(StoreError::Sqlite { .. })
        ));
        assert_eq!(rd.try_recv().unwrap().answer.unwrap(), 1);
        assert_eq!(rows(&conn), 2, "row 2 of the failed job was rolled back");
        let s = counters.snapshot();
        assert_eq!((s.commits, s.writes, s.largest_batch), (1, 3, 3));
    }

    #[test]
    fn failed_begin_fails_every_job() {
        let conn = db();
        conn.execute_batch("BEGIN").unwrap(); // a BEGIN inside a transaction fails
        let counters = Counters::default();
        let (a, mut ra) = job(|_| Ok(1));
        commit_batch(&conn, vec![a], &counters);
        assert!(matches!(
            ra.try_recv().unwrap().answer,
            Err(StoreError::Commit { .. })
        ));
        assert_eq!(counters.snapshot().failed_commits, 1);
    }

    #[test]
    fn queue_is_drained_into_batches() {
        let queue = WriteQueue::default();
        let mut replies = Vec::new();
        for i in 0..100 {
            let (j, r) = job(move |c| {
                c.execute("INSERT INTO t VALUES (?1)", [i])
                    .map(|n| n as i64)
            });
            queue.push(j).ok().unwrap();
            replies.push(r);
        }
        queue.close();
        let counters = Arc::new(Counters::default());
        run(db(), &queue, Arc::clone(&counters), Checkpoints::alone());
        for mut r in replies {
            assert_eq!(r.try_recv().unwrap().answer.unwrap(), 1);
        }
        assert_eq!(
            counters.snapshot().commits,
            1,
            "all 100 were queued before the run"
        );
    }
}
