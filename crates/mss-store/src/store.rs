//! The `Store` trait: the storage operations the services use, free of any database.
//!
//! SQLite ([`crate::SqliteStore`]) is the embedded default; PostgreSQL is meant to be a second
//! implementation behind the same trait. The trait is object-safe, so the wiring can hold an
//! `Arc<dyn Store>` and the services never name a backend.

use std::future::Future;
use std::pin::Pin;

use crate::call_record::CallRecord;
use crate::error::StoreError;
use crate::records::{
    BindingChange, BindingRecord, InsertOutcome, LineRecord, NewMessage, StoreStats, StoredMessage,
    UnixMillis, UserMessageCount,
};

/// The future every [`Store`] operation returns. It owns everything it needs (`'static`),
/// so it can be moved into a task.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Durable storage of mss.
///
/// # Contract for implementations
///
/// - An operation is submitted when the method is called, not when the future is first
///   polled: its place among the writes is fixed then. An implementation may hold off
///   starting it until the future is first polled or dropped (SQLite does, to commit a
///   caller's burst of writes together); dropping the future does not cancel a submitted
///   write.
/// - A write's future resolves `Ok` only after the write is committed, so a `202` or a `200`
///   to REGISTER may be sent as soon as it resolves (DESIGN §3, §5). Offline messages,
///   line state and secrets are also synced to stable storage first (they survive a crash
///   of the machine); registrar bindings are committed without waiting for the sync (they
///   survive a crash or kill of mss, and a phone re-registers after a power cut anyway), so
///   a slow disk never sits in every REGISTER's answer time.
/// - A read issued after a write's future resolved sees that write.
/// - No method panics or hangs when the database or its threads fail: they return
///   [`StoreError`].
pub trait Store: Send + Sync + 'static {
    /// Applies one REGISTER's changes to `user`'s bindings, all or nothing.
    ///
    /// Everything is stored under `user`: the `user` field of an upserted record is not
    /// consulted, so one call can never touch another user's bindings.
    fn apply_binding_changes(&self, user: &str, changes: Vec<BindingChange>) -> StoreFuture<()>;

    /// Removes every binding of `user` (`Contact: *` with `Expires: 0`); returns how many.
    fn delete_user_bindings(&self, user: &str) -> StoreFuture<u64>;

    /// Every binding with `expires_at > now`, ordered by user then registration time; read
    /// at start to restore the registrar.
    fn load_bindings(&self, now: UnixMillis) -> StoreFuture<Vec<BindingRecord>>;

    /// Deletes the bindings with `expires_at <= now`; returns how many.
    fn delete_expired_bindings(&self, now: UnixMillis) -> StoreFuture<u64>;

    /// Stores an offline message durably; returns its id.
    fn insert_message(&self, message: NewMessage) -> StoreFuture<i64>;

    /// Stores an offline message unless its recipient already has `limit` or more unexpired
    /// messages (unexpired at `message.received_at`). The check and the insert are one
    /// atomic step, so concurrent callers can never push a recipient past `limit`.
    fn insert_message_if_below(
        &self,
        message: NewMessage,
        limit: u32,
    ) -> StoreFuture<InsertOutcome>;

    /// Number of `recipient`'s messages with `expires_at > now`.
    fn count_messages(&self, recipient: &str, now: UnixMillis) -> StoreFuture<u64>;

    /// `recipient`'s messages with `expires_at > now`, oldest first.
    fn list_messages(&self, recipient: &str, now: UnixMillis) -> StoreFuture<Vec<StoredMessage>>;

    /// For every user with unexpired messages, how many; ordered by user.
    fn message_counts(&self, now: UnixMillis) -> StoreFuture<Vec<UserMessageCount>>;

    /// Deletes one message; `true` if it existed. Two racing deliveries of the same message
    /// see `true` exactly once.
    fn delete_message(&self, id: i64) -> StoreFuture<bool>;

    /// Deletes the messages with `expires_at <= now`; returns how many.
    fn delete_expired_messages(&self, now: UnixMillis) -> StoreFuture<u64>;

    /// The stored dialog state of line `name`, if any.
    fn get_line(&self, name: &str) -> StoreFuture<Option<LineRecord>>;

    /// Every stored line state, ordered by name.
    fn list_lines(&self) -> StoreFuture<Vec<LineRecord>>;

    /// Stores (inserts or replaces) a line's dialog state.
    fn put_line(&self, line: LineRecord) -> StoreFuture<()>;

    /// Stores (inserts or replaces) the record of a call attempt, by its id: the start at
    /// answer, the whole record when the call ends (DESIGN §8 "Records").
    fn put_call(&self, record: CallRecord) -> StoreFuture<()>;

    /// At most `limit` call records with `started_at >= since` (every record without
    /// `since`), newest first by `started_at` (`GET /api/calls`).
    fn list_calls(&self, since: Option<UnixMillis>, limit: u32) -> StoreFuture<Vec<CallRecord>>;

    /// Called once at start, before any call: every record still open (no disposition:
    /// written at answer and never finished, because mss crashed or was killed) that
    /// started at or before `now` becomes `interrupted`, ended by `mss`; its `ended_at`
    /// stays `None` (when mss died is not known). Returns the changed records, oldest
    /// first. The read and the update are one atomic step.
    fn interrupt_open_calls(&self, now: UnixMillis) -> StoreFuture<Vec<CallRecord>>;

    /// The secret called `name`, if any.
    fn get_secret(&self, name: &str) -> StoreFuture<Option<Vec<u8>>>;

    /// Stores (inserts or replaces) the secret called `name`.
    fn put_secret(&self, name: &str, value: Vec<u8>) -> StoreFuture<()>;

    /// Returns the secret called `name`, first storing `candidate` under it if there is
    /// none. Atomic: when two callers race, both get the same value.
    fn secret_or_insert(&self, name: &str, candidate: Vec<u8>) -> StoreFuture<Vec<u8>>;

    /// Counters for `/metrics` and tests.
    fn stats(&self) -> StoreStats;
}
