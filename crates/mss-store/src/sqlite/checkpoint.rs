//! Checkpoints, done beside the writer instead of inside its commits.
//!
//! In WAL mode a commit appends the pages it changed to `mss.db-wal`; a checkpoint copies
//! them back into `mss.db`, syncing the log first (with `synchronous=NORMAL` its frames
//! were never synced) and the database file after. SQLite's automatic checkpoint runs
//! inside the commit that takes the log past 1,000 pages, on the writer thread: at 1,000
//! registrations/s that held the writer for ~3 ms every ~0.4 s (most of it the fsync of
//! 4 MB of log), and every REGISTER queued behind it waited as long: the slowest 1 % of
//! the answers.
//!
//! So the writer's connection has `wal_autocheckpoint=0`, and a checkpointer thread with
//! its own connection runs a `PASSIVE` checkpoint each time the writer has committed about
//! [`CHECKPOINT_EVERY`] units of log growth. A passive checkpoint never blocks the writer:
//! commits go on appending while it syncs and copies.
//!
//! What it cannot do is start the log over: SQLite rewinds the log only when a write
//! transaction begins while every frame has been copied back, and under steady load the
//! writer always appended more during the checkpoint. So once the log has grown past
//! [`RESTART_AT`] frames the checkpointer asks the writer to finish: the next time its
//! queue is empty (or after [`FINISH_WITHIN`] more batches) the writer runs one passive
//! checkpoint itself, which has only the frames appended since the checkpointer's pass to
//! sync and copy, and its next transaction rewinds the log.
//!
//! Durability is SQLite's: a frame is overwritten only after its page is synced into the
//! database file. If the checkpointer thread is gone or keeps failing, the writer
//! checkpoints by itself once the log has grown [`WRITER_CHECKPOINT_AT`] units.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use rusqlite::Connection;

/// Log growth between two checkpointer passes, counted as commits plus writes (a commit
/// appends at least one frame, and a write about one more unless its batch shares pages).
pub(crate) const CHECKPOINT_EVERY: u64 = 2_000;

/// Log length in frames (4 KiB each) from which the writer is asked to finish.
pub(crate) const RESTART_AT: i64 = 2_000;

/// Batches the writer runs with a finish requested before it finishes although its queue
/// never emptied.
pub(crate) const FINISH_WITHIN: u32 = 64;

/// Log growth, without a completed checkpointer pass, after which the writer checkpoints by
/// itself.
pub(crate) const WRITER_CHECKPOINT_AT: u64 = 16 * CHECKPOINT_EVERY;

/// What the checkpointer thread tells the writer.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The log has grown past [`RESTART_AT`]: the writer should finish a checkpoint.
    finish: AtomicBool,
    /// Completed checkpointer passes.
    passes: AtomicU64,
}

/// The writer's side: counts log growth, nudges the checkpointer, finishes when asked.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    /// Wakes the checkpointer; `None` without one.
    nudge: Option<Sender<()>>,
    shared: Arc<Shared>,
    /// Growth since the last nudge.
    growth: u64,
    /// Growth since the last completed pass the writer saw (or its own checkpoint).
    unchecked: u64,
    /// `Shared::passes` when last looked at.
    seen_passes: u64,
    /// Batches run since a finish was requested.
    waited: u32,
}

impl Checkpoints {
    /// The writer's side of a checkpointer thread that waits on `nudge`'s receiver.
    pub(crate) fn new(nudge: Sender<()>, shared: Arc<Shared>) -> Self {
        Checkpoints {
            nudge: Some(nudge),
            shared,
            ..Checkpoints::alone()
        }
    }

    /// No checkpointer: the writer checkpoints by itself every
    /// [`WRITER_CHECKPOINT_AT`] units.
    pub(crate) fn alone() -> Self {
        Checkpoints {
            nudge: None,
            shared: Arc::default(),
            growth: 0,
            unchecked: 0,
            seen_passes: 0,
            waited: 0,
        }
    }

    /// A batch of `writes` writes was committed.
    pub(crate) fn committed(&mut self, writes: u64) {
        let units = 1 + writes;
        self.growth += units;
        self.unchecked += units;
        if self.growth >= CHECKPOINT_EVERY {
            self.growth = 0;
            if let Some(nudge) = &self.nudge {
                // A gone checkpointer is covered by `unchecked`.
                let _ = nudge.send(());
            }
        }
    }

    /// Runs the writer's own checkpoint when it is due: asked for and the queue is empty
    /// (`idle`) or has not emptied for [`FINISH_WITHIN`] batches, or the checkpointer has
    /// not completed a pass for too long. Called between batches.
    pub(crate) fn between_batches(&mut self, conn: &Connection, idle: bool) {
        let passes = self.shared.passes.load(Ordering::Acquire);
        if passes != self.seen_passes {
            self.seen_passes = passes;
            self.unchecked = 0;
        }
        let asked = self.shared.finish.load(Ordering::Acquire);
        if asked && !idle {
            self.waited += 1;
        }
        let due = (asked && (idle || self.waited >= FINISH_WITHIN))
            || self.unchecked >= WRITER_CHECKPOINT_AT;
        if !due {
            return;
        }
        self.shared.finish.store(false, Ordering::Release);
        self.waited = 0;
        self.unchecked = 0;
        if let Err(e) = checkpoint(conn) {
            tracing::warn!(error = %e, "writer's checkpoint failed");
        }
    }
}

/// One `PASSIVE` checkpoint: `(log frames, frames checkpointed)`; `-1`s when the file is not
/// in WAL mode, and nothing done when another connection is checkpointing.
pub(crate) fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

/// The checkpointer thread's loop: one pass per nudge (nudges that came during a pass
/// are merged), until the writer drops its sender.
pub(crate) fn run(conn: Connection, nudges: Receiver<()>, shared: Arc<Shared>) {
    while nudges.recv().is_ok() {
        while nudges.try_recv().is_ok() {}
        match checkpoint(&conn) {
            Ok((log, _)) => {
                if log >= RESTART_AT {
                    shared.finish.store(true, Ordering::Release);
                }
                shared.passes.fetch_add(1, Ordering::Release);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sqlite::connection::{self, Role};

    /// A writer and a checkpointer connection on a fresh file with one table.
    fn files() -> (tempfile::TempDir, Connection, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = connection::open(&path, Role::Writer).unwrap();
        // Thousands of one-row commits: not each synced.
        writer.pragma_update(None, "synchronous", "OFF").unwrap();
        writer
            .execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY, y BLOB)")
            .unwrap();
        let checkpointer = connection::open(&path, Role::Checkpointer).unwrap();
        (dir, writer, checkpointer)
    }

    /// Commits `n` rows of 3 KiB, one per transaction: at least one frame each.
    fn commit_rows(conn: &Connection, n: usize) {
        for _ in 0..n {
            conn.execute("INSERT INTO t (y) VALUES (zeroblob(3000))", [])
                .unwrap();
        }
    }

    /// Length of the log file. It only grows when frames are appended past its end: after
    /// the log is started over, commits overwrite it from the start.
    fn wal_len(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len()
    }

    #[test]
    fn writer_commits_never_checkpoint_by_themselves() {
        let (dir, writer, _checkpointer) = files();
        commit_rows(&writer, 1_200);
        // Past SQLite's default of 1,000 pages, the log was never started over.
        assert!(wal_len(&dir) > 1_200 * 4_096);
    }

    #[test]
    fn checkpointer_pass_then_writer_finish_rewinds_the_log() {
        let (dir, writer, checkpointer) = files();
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::default());
        let mut side = Checkpoints::new(tx, Arc::clone(&shared));
        commit_rows(&writer, 2_100);
        for _ in 0..2_100 {
            side.committed(1);
        }
        // The writer nudged; the pass finds a long log and asks the writer to finish.
        drop(side.nudge.take());
        run(checkpointer, rx, Arc::clone(&shared));
        assert_eq!(shared.passes.load(Ordering::Relaxed), 1);
        assert!(shared.finish.load(Ordering::Relaxed));
        // Busy: not yet.
        side.between_batches(&writer, false);
        assert!(shared.finish.load(Ordering::Relaxed));
        assert_eq!(side.unchecked, 0, "the pass was seen");
        side.between_batches(&writer, true);
        assert!(!shared.finish.load(Ordering::Relaxed));
        // Everything is copied back: the next commits start the log over.
        let len = wal_len(&dir);
        commit_rows(&writer, 10);
        assert_eq!(wal_len(&dir), len);
    }

    #[test]
    fn busy_writer_finishes_after_a_while() {
        let (_dir, writer, _checkpointer) = files();
        let shared = Arc::new(Shared::default());
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut side = Checkpoints::new(tx, Arc::clone(&shared));
        shared.finish.store(true, Ordering::Relaxed);
        for _ in 1..FINISH_WITHIN {
            side.between_batches(&writer, false);
            assert!(shared.finish.load(Ordering::Relaxed));
        }
        side.between_batches(&writer, false);
        assert!(!shared.finish.load(Ordering::Relaxed));
    }

    #[test]
    fn writer_alone_checkpoints_by_itself() {
        let (dir, writer, _checkpointer) = files();
        let mut side = Checkpoints::alone();
        commit_rows(&writer, 20);
        for _ in 0..WRITER_CHECKPOINT_AT / 2 - 1 {
            side.committed(1);
            side.between_batches(&writer, true);
        }
        let len = wal_len(&dir);
        commit_rows(&writer, 1);
        assert!(wal_len(&dir) > len, "no checkpoint yet: appended");
        side.committed(1);
        side.between_batches(&writer, true);
        let len = wal_len(&dir);
        commit_rows(&writer, 10);
        assert_eq!(
            wal_len(&dir),
            len,
            "rewound after the writer's own checkpoint"
        );
    }
}
