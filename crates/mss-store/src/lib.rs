//! mss-store: durable storage of mss.
//!
//! What is kept: the registrar's bindings (so registrations survive a restart), offline
//! instant messages (RFC 3428 MESSAGE to users who are not registered), the registration
//! dialog state of external lines, call records ([`CallRecord`], DESIGN §8: written at
//! answer and at the end, listed newest first, the ones a crash left open marked
//! `interrupted` at the next start) and small named secrets (the digest nonce key).
//!
//! - [`store`]: the [`Store`] trait the services use; it names no database, so PostgreSQL
//!   can be added behind it. Its futures resolve only once a write is durable, which is
//!   what lets the services send `202 Accepted` or `200 OK` to REGISTER (DESIGN §3, §5).
//! - [`records`]: the row types ([`BindingRecord`], [`BindingChange`], [`NewMessage`],
//!   [`StoredMessage`], [`LineRecord`], [`UserMessageCount`], [`StoreStats`]).
//! - [`sqlite`]: [`SqliteStore`], the embedded default: one file in WAL mode, a writer
//!   thread that group-commits every queued write in one transaction (synced with
//!   `synchronous=FULL`, or only committed with `synchronous=NORMAL` when the batch holds
//!   nothing but registrar bindings and the starts of call records), a small pool of reader threads, and a checkpointer
//!   thread that keeps WAL checkpoints out of the writer's way.
//! - [`error`]: [`StoreError`], naming the operation and the file.
//! - [`blocking`]: [`block_on`] for callers without an async runtime.
//!
//! The store needs no async runtime of its own: its futures wait on `tokio::sync::oneshot`
//! channels that its threads complete.
//!
//! ```
//! use mss_store::{block_on, NewMessage, SqliteStore, Store};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(dir.path()).unwrap();
//! let msg = NewMessage {
//!     recipient: "102".into(),
//!     sender: "<sip:101@pbx.example.com>;tag=1".into(),
//!     original_to: None,
//!     content_type: "text/plain".into(),
//!     body: b"hello".to_vec(),
//!     received_at: 1_000,
//!     expires_at: 1_000 + 7 * 86_400_000,
//! };
//! let id = block_on(store.insert_message(msg)).unwrap(); // durable once this returns
//! let stored = block_on(store.list_messages("102", 1_000)).unwrap();
//! assert_eq!(stored[0].id, id);
//! ```

pub mod blocking;
pub mod call_record;
pub mod error;
pub mod records;
pub mod sqlite;
pub mod store;

pub use blocking::block_on;
pub use call_record::{CallDirection, CallDisposition, CallRecord, EndedBy};
pub use error::StoreError;
pub use records::{
    BindingChange, BindingKey, BindingRecord, InsertOutcome, LineRecord, NewMessage, StoreStats,
    StoredMessage, UnixMillis, UserMessageCount,
};
pub use sqlite::{SqliteStore, DB_FILE};
pub use store::{Store, StoreFuture};
