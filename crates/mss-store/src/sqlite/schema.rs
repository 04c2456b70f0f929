//! The SQLite schema and its migrations, applied by version number.
//!
//! `schema_version` holds one row with the version of the schema in the file. Each entry of
//! [`MIGRATIONS`] brings the schema from the version before it to its own; at open, every
//! migration above the stored version runs in its own transaction together with the update
//! of `schema_version`, so a crash mid-way leaves a consistent, resumable file. Never edit a
//! released migration: append a new one.

use rusqlite::{Connection, OptionalExtension};

/// `(version, SQL)` in ascending order; the last version is the current schema.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "
    -- Registrar bindings. binding_key is BindingKey::to_column(): the instance and reg-id
    -- when the contact has +sip.instance, the contact URI otherwise (RFC 5626 §6).
    CREATE TABLE bindings (
        user          TEXT    NOT NULL,
        binding_key   TEXT    NOT NULL,
        contact       TEXT    NOT NULL,
        instance      TEXT,
        reg_id        INTEGER,
        q_milli       INTEGER,
        expires_at    INTEGER NOT NULL,
        call_id       TEXT    NOT NULL,
        cseq          INTEGER NOT NULL,
        transport     TEXT    NOT NULL,
        source        TEXT    NOT NULL,
        user_agent    TEXT,
        registered_at INTEGER NOT NULL,
        PRIMARY KEY (user, binding_key)
    );
    CREATE INDEX bindings_by_expiry ON bindings (expires_at);

    -- Offline instant messages. AUTOINCREMENT: ids are never reused, so id order is
    -- arrival order even after deletions.
    CREATE TABLE offline_messages (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient    TEXT    NOT NULL,
        sender       TEXT    NOT NULL,
        original_to  TEXT,
        content_type TEXT    NOT NULL,
        body         BLOB    NOT NULL,
        received_at  INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL
    );
    CREATE INDEX offline_messages_by_recipient ON offline_messages (recipient, id);
    CREATE INDEX offline_messages_by_expiry ON offline_messages (expires_at);

    -- Registration dialog state of external lines.
    CREATE TABLE lines (
        name       TEXT    PRIMARY KEY NOT NULL,
        call_id    TEXT    NOT NULL,
        from_tag   TEXT    NOT NULL,
        last_cseq  INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );

    -- Small named secrets (digest nonce key, generated passwords).
    CREATE TABLE secrets (
        name  TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL
    );
    ",
    ),
    (
        2,
        "
    -- The Call-ID policy a line used when its row was written (LineRecord::call_id_mode),
    -- so that an `auto` line that switched to fresh Call-IDs stays switched after a
    -- restart. NULL in rows of version 1.
    ALTER TABLE lines ADD COLUMN call_id_mode TEXT;
    ",
    ),
    (
        3,
        "
    -- Bindings in one B-tree: the rows live in their primary key's order (WITHOUT ROWID),
    -- with no separate key index and no expiry index, so storing a REGISTER dirties one
    -- page instead of three (every dirty page is a WAL frame written and checksummed at
    -- each commit). The expired rows are found by a scan on a reader thread instead
    -- (`bindings::expired_keys`), which never holds up the writer.
    CREATE TABLE bindings_v3 (
        user          TEXT    NOT NULL,
        binding_key   TEXT    NOT NULL,
        contact       TEXT    NOT NULL,
        instance      TEXT,
        reg_id        INTEGER,
        q_milli       INTEGER,
        expires_at    INTEGER NOT NULL,
        call_id       TEXT    NOT NULL,
        cseq          INTEGER NOT NULL,
        transport     TEXT    NOT NULL,
        source        TEXT    NOT NULL,
        user_agent    TEXT,
        registered_at INTEGER NOT NULL,
        PRIMARY KEY (user, binding_key)
    ) WITHOUT ROWID;
    INSERT INTO bindings_v3 (user, binding_key, contact, instance, reg_id, q_milli,
        expires_at, call_id, cseq, transport, source, user_agent, registered_at)
    SELECT user, binding_key, contact, instance, reg_id, q_milli,
        expires_at, call_id, cseq, transport, source, user_agent, registered_at
    FROM bindings;
    DROP TABLE bindings;
    ALTER TABLE bindings_v3 RENAME TO bindings;
    ",
    ),
    (
        4,
        "
    -- Call records (DESIGN §8): one row per call attempt, written at answer (ended_at and
    -- disposition NULL) and replaced when the call ends. A row still open at start is a
    -- call a crash interrupted.
    CREATE TABLE calls (
        id             TEXT    PRIMARY KEY NOT NULL,
        started_at     INTEGER NOT NULL,
        answered_at    INTEGER,
        ended_at       INTEGER,
        caller         TEXT    NOT NULL,
        callee         TEXT    NOT NULL,
        answered_by    TEXT,
        direction      TEXT    NOT NULL,
        line           TEXT,
        disposition    TEXT,
        sip_code       INTEGER,
        ended_by       TEXT,
        forwarded_from TEXT
    );
    CREATE INDEX calls_by_start ON calls (started_at);
    ",
    ),
    (
        5,
        "
    -- The user who transferred the call (REFER), NULL for a call nobody transferred.
    ALTER TABLE calls ADD COLUMN transferred_by TEXT;
    ",
    ),
];

/// The schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Why [`migrate`] stopped.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// SQLite failed during the named step.
    Sql(String, rusqlite::Error),
    /// The file's schema is newer than this build.
    TooNew(i64),
}

/// Brings the schema of `conn` to [`latest_version`]; returns the version found before.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, MigrateError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(|e| MigrateError::Sql("create schema_version".into(), e))?;
    let found: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()
        .map_err(|e| MigrateError::Sql("read schema_version".into(), e))?
        .flatten()
        .unwrap_or(0);
    if found > latest_version() {
        return Err(MigrateError::TooNew(found));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        let step = format!("migrate to version {version}");
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| MigrateError::Sql(step.clone(), e))?;
        tx.execute_batch(sql)
            .and_then(|()| tx.execute("DELETE FROM schema_version", []))
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [version],
                )
            })
            .and_then(|_| tx.commit())
            .map_err(|e| MigrateError::Sql(step, e))?;
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn fresh_database_gets_latest() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(version(&conn), latest_version());
    }

    #[test]
    fn migrate_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), latest_version());
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(MigrateError::TooNew(99))));
    }

    /// A version-4 file with a call record keeps it, without `transferred_by`, at version 5.
    #[test]
    fn version_4_call_records_survive_the_transferred_by_column() {
        use crate::{block_on, SqliteStore, Store, DB_FILE};
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 4) {
                conn.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("v{v}: {e}"));
            }
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (4);
                 INSERT INTO calls (id, started_at, answered_at, ended_at, caller, callee,
                     answered_by, direction, line, disposition, sip_code, ended_by,
                     forwarded_from)
                 VALUES ('c-1', 1000, 2000, 9000, '100', '101', '101', 'internal', NULL,
                     'answered', 200, 'caller', NULL);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let calls = block_on(store.list_calls(None, 10)).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].transferred_by.as_deref()),
            ("c-1", None)
        );
    }

    /// A database file as a version-1 build left it, with one line row and two bindings.
    fn write_v1_file(path: &std::path::Path) {
        let conn = Connection::open(path).unwrap();
        let (v1, sql) = MIGRATIONS[0];
        assert_eq!(v1, 1);
        conn.execute_batch(sql).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (1);
             INSERT INTO lines (name, call_id, from_tag, last_cseq, updated_at)
             VALUES ('p1', 'cid', 'tag', 41, 5);
             INSERT INTO bindings VALUES ('101', 'i:1:<urn:uuid:1>', 'sip:101@10.0.0.1', '<urn:uuid:1>',
                 1, 500, 9000, 'cid-1', 7, 'TCP', '10.0.0.1:5060', 'phone', 20);
             INSERT INTO bindings VALUES ('102', 'c:sip:102@10.0.0.2', 'sip:102@10.0.0.2', NULL,
                 NULL, NULL, 50, 'cid-2', 1, 'UDP', '10.0.0.2:5060', NULL, 10);",
        )
        .unwrap();
    }

    #[test]
    fn version_1_file_is_upgraded_and_keeps_its_lines_and_bindings() {
        use crate::{block_on, BindingRecord, LineRecord, SqliteStore, Store, DB_FILE};
        let dir = tempfile::tempdir().unwrap();
        write_v1_file(&dir.path().join(DB_FILE));
        let v1_row = LineRecord {
            name: "p1".into(),
            call_id: "cid".into(),
            from_tag: "tag".into(),
            last_cseq: 41,
            updated_at: 5,
            call_id_mode: None,
        };
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            assert_eq!(
                block_on(store.get_line("p1")).unwrap(),
                Some(v1_row.clone())
            );
            let switched = LineRecord {
                last_cseq: 42,
                call_id_mode: Some("auto_fresh".into()),
                ..v1_row.clone()
            };
            block_on(store.put_line(switched)).unwrap();
            let bindings = block_on(store.load_bindings(0)).unwrap();
            assert_eq!(
                bindings[0],
                BindingRecord {
                    user: "101".into(),
                    contact: "sip:101@10.0.0.1".into(),
                    instance: Some("<urn:uuid:1>".into()),
                    reg_id: Some(1),
                    q_milli: Some(500),
                    expires_at: 9000,
                    call_id: "cid-1".into(),
                    cseq: 7,
                    transport: "TCP".into(),
                    source: "10.0.0.1:5060".into(),
                    user_agent: Some("phone".into()),
                    registered_at: 20,
                }
            );
            assert_eq!(bindings.len(), 2);
            assert_eq!(block_on(store.delete_expired_bindings(100)).unwrap(), 1);
        }
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        assert_eq!(version(&conn), latest_version());
        drop(conn);
        let store = SqliteStore::open(dir.path()).unwrap();
        let got = block_on(store.get_line("p1")).unwrap().unwrap();
        assert_eq!(
            (got.last_cseq, got.call_id_mode.as_deref()),
            (42, Some("auto_fresh"))
        );
    }

    #[test]
    fn version_2_adds_a_nullable_line_column() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (1);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 1);
        assert_eq!(version(&conn), latest_version());
        let nullable: i64 = conn
            .query_row(
                "SELECT \"notnull\" FROM pragma_table_info('lines') WHERE name = 'call_id_mode'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(nullable, 0);
    }

    #[test]
    fn version_3_keeps_bindings_in_one_btree() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bindings'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0);
        assert!(
            conn.prepare("SELECT rowid FROM bindings").is_err(),
            "WITHOUT ROWID"
        );
    }

    #[test]
    fn versions_ascend() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(MIGRATIONS.iter().all(|(v, _)| *v > 0));
    }
}
