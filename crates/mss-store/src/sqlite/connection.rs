//! Opening a connection with the settings its role needs.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;

/// How long a connection waits for a lock held by another process (another `mss` on the
/// same folder, or the `sqlite3` shell) before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The only connection that writes. SQLite's automatic checkpoint is off on it: the
    /// checkpointer thread does that work ([`super::checkpoint`]).
    Writer,
    /// A reader thread's connection: `query_only`.
    Reader,
    /// The checkpointer thread's connection: runs `PRAGMA wal_checkpoint` only.
    Checkpointer,
}

/// Opens one connection in WAL mode with `synchronous=FULL` (so a commit is on disk when it
/// returns, unless the writer weakens it for a batch of bindings) and foreign keys on, plus
/// what `role` needs.
pub(crate) fn open(path: &Path, role: Role) -> Result<Connection, StoreError> {
    let fail = |step: &str, source| StoreError::Open {
        path: path.to_path_buf(),
        step: step.into(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| fail("open", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail("busy_timeout", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| fail("journal_mode=WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(fail(
            "journal_mode=WAL",
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(format!("journal mode stayed {mode}")),
            ),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| fail("synchronous=FULL", e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| fail("foreign_keys=ON", e))?;
    match role {
        Role::Writer => conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| fail("wal_autocheckpoint=0", e))?,
        Role::Reader => conn
            .pragma_update(None, "query_only", "ON")
            .map_err(|e| fail("query_only=ON", e))?,
        Role::Checkpointer => {}
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn pragma(conn: &Connection, name: &str) -> i64 {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn connections_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        let writer = open(&path, Role::Writer).unwrap();
        let mode: String = writer
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(pragma(&writer, "synchronous"), 2, "FULL");
        assert_eq!(pragma(&writer, "foreign_keys"), 1);
        assert_eq!(pragma(&writer, "wal_autocheckpoint"), 0);
        let reader = open(&path, Role::Reader).unwrap();
        assert!(reader.execute_batch("CREATE TABLE x (y)").is_err());
        let checkpointer = open(&path, Role::Checkpointer).unwrap();
        assert_eq!(pragma(&checkpointer, "wal_autocheckpoint"), 1000);
    }
}
