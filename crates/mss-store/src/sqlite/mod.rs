//! `SqliteStore`: the embedded [`Store`] over one SQLite file in WAL mode.
//!
//! Threads: one writer (group commit: all queued writes in one transaction), two readers and
//! a checkpointer (`checkpoint.rs`), each with its own connection. The handle only holds the
//! two queues, so it is cheap to clone and never blocks an async task: every method
//! enqueues and returns a future that waits on a oneshot channel.

mod answer;
mod bindings;
mod calls;
mod checkpoint;
mod connection;
mod lines;
mod messages;
mod queue;
mod reader;
pub(crate) mod schema;
mod transaction;
mod writer;

use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::call_record::CallRecord;
use crate::error::StoreError;
use crate::records::{
    BindingChange, BindingRecord, InsertOutcome, LineRecord, NewMessage, StoreStats, StoredMessage,
    UnixMillis, UserMessageCount,
};
use crate::store::{Store, StoreFuture};
use answer::{wait, Reply};
use connection::Role;
use queue::WriteQueue;
use reader::ReadJob;
use writer::{Counters, Durability, Pending};

/// Name of the database file inside the data folder.
pub const DB_FILE: &str = "mss.db";

/// The SQLite store. Clone it freely: clones share the threads, which stop when the last
/// clone is dropped. That drop waits until every queued write is committed and the threads
/// have closed their connections, so a reopen right after it finds the file closed.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// What the clones share.
struct Inner {
    /// The database file, for error messages (shared with every job).
    path: Arc<Path>,
    /// Queue of the writer thread.
    writes: Arc<WriteQueue>,
    /// Queue of the reader threads; `None` only while dropping.
    reads: Option<Sender<ReadJob>>,
    /// Group-commit counters, written by the writer thread.
    counters: Arc<Counters>,
    /// The reader threads, joined on drop (first: a read may queue a write).
    readers: Vec<JoinHandle<()>>,
    /// The writer and checkpointer threads, joined on drop after the readers, so that a
    /// reopen after drop finds the file closed.
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir` and `data_dir/mss.db`, brings the schema up to
    /// date and starts the writer, reader and checkpointer threads.
    ///
    /// # Errors
    ///
    /// [`StoreError::CreateDir`] if the folder cannot be created, [`StoreError::Open`] if
    /// the file cannot be opened, configured (WAL, `synchronous=FULL`) or migrated,
    /// [`StoreError::SchemaTooNew`] if a newer mss wrote it.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = data_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let mut conn = connection::open(&path, Role::Writer)?;
        match schema::migrate(&mut conn) {
            Ok(found) if found < schema::latest_version() => tracing::info!(
                path = %path.display(),
                from = found,
                to = schema::latest_version(),
                "store schema migrated"
            ),
            Ok(_) => {}
            Err(schema::MigrateError::TooNew(found)) => {
                return Err(StoreError::SchemaTooNew {
                    path,
                    found,
                    supported: schema::latest_version(),
                })
            }
            Err(schema::MigrateError::Sql(step, source)) => {
                return Err(StoreError::Open { path, step, source })
            }
        }

        let mut readers = Vec::with_capacity(reader::READERS);
        for _ in 0..reader::READERS {
            readers.push(connection::open(&path, Role::Reader)?);
        }
        let checkpointer = connection::open(&path, Role::Checkpointer)?;

        let counters = Arc::new(Counters::default());
        let writes = Arc::new(WriteQueue::default());
        let (read_tx, read_rx) = mpsc::channel::<ReadJob>();
        let read_rx = Arc::new(Mutex::new(read_rx));
        let (nudge_tx, nudge_rx) = mpsc::channel::<()>();
        let checkpoint_shared = Arc::new(checkpoint::Shared::default());
        let checkpoints = checkpoint::Checkpoints::new(nudge_tx, Arc::clone(&checkpoint_shared));
        let mut threads = Vec::with_capacity(2);
        let mut reader_threads = Vec::with_capacity(readers.len());
        let spawn_err = |source: std::io::Error| StoreError::CreateDir {
            path: path.clone(),
            source,
        };
        let writer_counters = Arc::clone(&counters);
        threads.push(
            std::thread::Builder::new()
                .name("mss-store-writer".into())
                .spawn({
                    let queue = Arc::clone(&writes);
                    move || {
                        // Also when a write panics: later writes then fail instead of
                        // waiting for a writer that is gone.
                        let _abandon = queue::AbandonOnDrop(&queue);
                        writer::run(conn, &queue, writer_counters, checkpoints)
                    }
                })
                .map_err(spawn_err)?,
        );
        // Stops when the writer drops its nudge sender.
        threads.push(
            std::thread::Builder::new()
                .name("mss-store-checkpointer".into())
                .spawn(move || checkpoint::run(checkpointer, nudge_rx, checkpoint_shared))
                .map_err(spawn_err)?,
        );
        for (i, conn) in readers.into_iter().enumerate() {
            let queue = Arc::clone(&read_rx);
            reader_threads.push(
                std::thread::Builder::new()
                    .name(format!("mss-store-reader-{i}"))
                    .spawn(move || reader::run(conn, queue))
                    .map_err(spawn_err)?,
            );
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: Arc::from(path),
                writes,
                reads: Some(read_tx),
                counters,
                readers: reader_threads,
                threads,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `write` for the next group commit; the future resolves after the commit has
    /// been synced to disk.
    fn write<T, F>(&self, op: &'static str, write: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_with(op, Durability::Synced, write)
    }

    /// Queues `write` for the next group commit with the given promise (see
    /// [`writer`](self::writer) for what each one survives).
    fn write_with<T, F>(&self, op: &'static str, durability: Durability, write: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let path = Arc::clone(&self.inner.path);
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            op,
            path: Arc::clone(&path),
            durability,
            write,
            result: None,
            reply: Some(reply),
        });
        let sent = self.inner.writes.push(job).is_ok();
        let notify = sent.then(|| Arc::clone(&self.inner.writes));
        wait(op, path, "writer", notify, sent.then_some(answer))
    }

    /// Queues `read` for a reader thread.
    fn read<T, F>(&self, op: &'static str, read: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let path = Arc::clone(&self.inner.path);
        let (reply, answer) = oneshot::channel();
        let job_path = Arc::clone(&path);
        let job: ReadJob = Box::new(move |conn| {
            let result = read(conn).map_err(|source| StoreError::Sqlite {
                op,
                path: job_path.to_path_buf(),
                source,
            });
            let _ = reply.send(Reply::only(result));
        });
        let sent = self
            .inner
            .reads
            .as_ref()
            .is_some_and(|queue| queue.send(job).is_ok());
        wait(op, path, "reader", None, sent.then_some(answer))
    }
}

impl SqliteStore {
    /// Queues `read` for a reader thread, which then queues `write` of what it read for
    /// the writer (with [`Durability::Committed`]), unless the read found nothing
    /// (`Vec` empty: the answer is then `0` at once). Both are submitted by this call, as
    /// the [`Store`] contract asks: the reader submits the write whether or not the future
    /// is still awaited.
    fn read_then_write<K, R, W>(&self, op: &'static str, read: R, write: W) -> StoreFuture<u64>
    where
        K: Send + 'static,
        R: FnOnce(&Connection) -> rusqlite::Result<Vec<K>> + Send + 'static,
        W: Fn(&Connection, &[K]) -> rusqlite::Result<u64> + Send + 'static,
    {
        let path = Arc::clone(&self.inner.path);
        let (reply, answer) = oneshot::channel();
        let writes = Arc::clone(&self.inner.writes);
        let job_path = Arc::clone(&path);
        let job: ReadJob = Box::new(move |conn| {
            let found = match read(conn) {
                Ok(found) if found.is_empty() => {
                    let _ = reply.send(Reply::only(Ok(0)));
                    return;
                }
                Ok(found) => found,
                Err(source) => {
                    let _ = reply.send(Reply::only(Err(StoreError::Sqlite {
                        op,
                        path: job_path.to_path_buf(),
                        source,
                    })));
                    return;
                }
            };
            let job = Box::new(Pending {
                op,
                path: job_path,
                durability: Durability::Committed,
                write: move |c: &Connection| write(c, &found),
                result: None,
                reply: Some(reply),
            });
            // If the writer is gone the job, and with it `reply`, is dropped: the caller
            // hears `ThreadGone`.
            if writes.push(job).is_ok() {
                writes.notify();
            }
        });
        let sent = self
            .inner
            .reads
            .as_ref()
            .is_some_and(|queue| queue.send(job).is_ok());
        wait(op, path, "writer", None, sent.then_some(answer))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queues ends the threads once they have finished what is queued:
        // first the readers (a read may still queue a write), then the writer (whose end
        // ends the checkpointer).
        self.reads = None;
        for thread in self.readers.drain(..) {
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "store thread had panicked");
            }
        }
        self.writes.close();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "store thread had panicked");
            }
        }
    }
}

impl Store for SqliteStore {
    fn apply_binding_changes(&self, user: &str, changes: Vec<BindingChange>) -> StoreFuture<()> {
        let user = user.to_owned();
        self.write_with("apply_binding_changes", Durability::Committed, move |c| {
            bindings::apply_changes(c, &user, &changes)
        })
    }

    fn delete_user_bindings(&self, user: &str) -> StoreFuture<u64> {
        let user = user.to_owned();
        self.write_with("delete_user_bindings", Durability::Committed, move |c| {
            bindings::delete_user(c, &user)
        })
    }

    fn load_bindings(&self, now: UnixMillis) -> StoreFuture<Vec<BindingRecord>> {
        self.read("load_bindings", move |c| bindings::load(c, now))
    }

    fn delete_expired_bindings(&self, now: UnixMillis) -> StoreFuture<u64> {
        self.read_then_write(
            "delete_expired_bindings",
            move |c| bindings::expired_keys(c, now),
            move |c, keys| bindings::delete_expired_keys(c, keys, now),
        )
    }

    fn insert_message(&self, message: NewMessage) -> StoreFuture<i64> {
        self.write("insert_message", move |c| messages::insert(c, &message))
    }

    fn insert_message_if_below(
        &self,
        message: NewMessage,
        limit: u32,
    ) -> StoreFuture<InsertOutcome> {
        self.write("insert_message_if_below", move |c| {
            messages::insert_if_below(c, &message, limit)
        })
    }

    fn count_messages(&self, recipient: &str, now: UnixMillis) -> StoreFuture<u64> {
        let recipient = recipient.to_owned();
        self.read("count_messages", move |c| {
            messages::count(c, &recipient, now)
        })
    }

    fn list_messages(&self, recipient: &str, now: UnixMillis) -> StoreFuture<Vec<StoredMessage>> {
        let recipient = recipient.to_owned();
        self.read("list_messages", move |c| messages::list(c, &recipient, now))
    }

    fn message_counts(&self, now: UnixMillis) -> StoreFuture<Vec<UserMessageCount>> {
        self.read("message_counts", move |c| messages::counts(c, now))
    }

    fn delete_message(&self, id: i64) -> StoreFuture<bool> {
        self.write("delete_message", move |c| messages::delete(c, id))
    }

    fn delete_expired_messages(&self, now: UnixMillis) -> StoreFuture<u64> {
        self.write("delete_expired_messages", move |c| {
            messages::delete_expired(c, now)
        })
    }

    fn get_line(&self, name: &str) -> StoreFuture<Option<LineRecord>> {
        let name = name.to_owned();
        self.read("get_line", move |c| lines::get(c, &name))
    }

    fn list_lines(&self) -> StoreFuture<Vec<LineRecord>> {
        self.read("list_lines", lines::list)
    }

    fn put_line(&self, line: LineRecord) -> StoreFuture<()> {
        self.write("put_line", move |c| lines::put(c, &line))
    }

    fn put_call(&self, record: CallRecord) -> StoreFuture<()> {
        // The start of a call (written at answer, no disposition yet) is there so that a
        // crash of mss leaves a record the next start marks `interrupted` (DESIGN §8):
        // a commit to the WAL survives that, so it needs no fsync of its own. It is on
        // stable storage with the next synced commit or checkpoint — at the latest the
        // call's own end, whose whole record is written again, synced, before it goes to
        // the CSV file. Only a power cut of the machine in between loses it (a call still
        // in progress then has no record rather than an `interrupted` one). Nobody waits
        // for either write (the call goes on; the CSV line follows the end), so they may
        // wait up to the writer's `SYNC_WINDOW` for the end to share one fsync with the
        // ends of other calls.
        let durability = if record.disposition.is_some() {
            Durability::SyncedLazily
        } else {
            Durability::CommittedLazily
        };
        self.write_with("put_call", durability, move |c| calls::put(c, &record))
    }

    fn list_calls(&self, since: Option<UnixMillis>, limit: u32) -> StoreFuture<Vec<CallRecord>> {
        self.read("list_calls", move |c| calls::list(c, since, limit))
    }

    fn interrupt_open_calls(&self, now: UnixMillis) -> StoreFuture<Vec<CallRecord>> {
        self.write("interrupt_open_calls", move |c| {
            calls::interrupt_open(c, now)
        })
    }

    fn get_secret(&self, name: &str) -> StoreFuture<Option<Vec<u8>>> {
        let name = name.to_owned();
        self.read("get_secret", move |c| lines::get_secret(c, &name))
    }

    fn put_secret(&self, name: &str, value: Vec<u8>) -> StoreFuture<()> {
        let name = name.to_owned();
        self.write("put_secret", move |c| lines::put_secret(c, &name, &value))
    }

    fn secret_or_insert(&self, name: &str, candidate: Vec<u8>) -> StoreFuture<Vec<u8>> {
        let name = name.to_owned();
        self.write("secret_or_insert", move |c| {
            lines::secret_or_insert(c, &name, &candidate)
        })
    }

    fn stats(&self) -> StoreStats {
        self.inner.counters.snapshot()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::block_on;

    /// Records the thread that drops it.
    struct DropWitness(std::sync::mpsc::Sender<std::thread::ThreadId>);

    impl Drop for DropWitness {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }

    #[test]
    fn a_written_job_is_freed_by_the_caller_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let witness = DropWitness(tx);
        let write: StoreFuture<i64> = store.write("test_witness", move |c| {
            let _keep = &witness;
            c.query_row("SELECT 1", [], |r| r.get(0))
        });
        assert_eq!(block_on(write).unwrap(), 1);
        assert_eq!(rx.recv().unwrap(), std::thread::current().id());
    }

    #[test]
    fn dead_writer_gives_errors_not_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let doomed: StoreFuture<()> = store.write("test_panic", |_| panic!("simulated bug"));
        assert!(matches!(
            block_on(doomed),
            Err(StoreError::ThreadGone {
                thread: "writer",
                ..
            })
        ));
        let err = block_on(store.put_secret("k", vec![1])).unwrap_err();
        assert!(matches!(
            err,
            StoreError::ThreadGone {
                op: "put_secret",
                ..
            }
        ));
        assert!(err.to_string().contains("mss.db"), "{err}");
        // Reads still work, and dropping the store joins the dead thread without panicking.
        assert_eq!(block_on(store.get_secret("k")).unwrap(), None);
    }

    #[test]
    fn newer_schema_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute("UPDATE schema_version SET version = 1000", [])
            .unwrap();
        drop(conn);
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 1000, .. }),
            "{err:?}"
        );
    }
}
