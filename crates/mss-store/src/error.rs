//! `StoreError`: every failure of the storage layer, with the operation and the database path.

use std::path::PathBuf;
use std::sync::Arc;

/// A storage failure. Every variant names what was being done and, where there is one, the
/// database file, so a log line alone tells the admin what broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data folder could not be created.
    #[error("cannot create data folder {path}: {source}")]
    CreateDir {
        /// The folder that was to be created.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The database file could not be opened or configured (permissions, full disk, not a
    /// database, pragma refused).
    #[error("cannot open database {path} ({step}): {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What was being done: "open", "journal_mode=WAL", "migrate to version 1", ...
        step: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer mss whose schema this build does not know.
    #[error("database {path} has schema version {found}, this build knows up to {supported}")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in `schema_version`.
        found: i64,
        /// Highest version this build can migrate to.
        supported: i64,
    },
    /// One operation failed inside SQLite; other operations of the same group commit are
    /// not affected.
    #[error("{op} failed on {path}: {source}")]
    Sqlite {
        /// The store operation, e.g. "insert_message".
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The transaction that carried this operation could not begin or commit, so the
    /// operation is not durable. Every operation of that group commit gets this error.
    #[error("{op} not committed on {path}: {source}")]
    Commit {
        /// The store operation whose write was lost.
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error, shared by every operation of the failed batch.
        source: Arc<rusqlite::Error>,
    },
    /// The writer or reader thread is gone (it stopped or panicked), so the operation was
    /// not carried out or its outcome is unknown.
    #[error("{op} on {path}: the {thread} thread is gone")]
    ThreadGone {
        /// The store operation.
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// "writer" or "reader".
        thread: &'static str,
    },
}
