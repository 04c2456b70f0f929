//! SQL for external line state and small named secrets.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::records::LineRecord;

/// The stored state of line `name`.
pub(crate) fn get(conn: &Connection, name: &str) -> rusqlite::Result<Option<LineRecord>> {
    conn.prepare_cached(
        "SELECT name, call_id, from_tag, last_cseq, updated_at, call_id_mode FROM lines
         WHERE name = ?1",
    )?
    .query_row([name], from_row)
    .optional()
}

/// Every stored line state, by name.
pub(crate) fn list(conn: &Connection) -> rusqlite::Result<Vec<LineRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, call_id, from_tag, last_cseq, updated_at, call_id_mode FROM lines
         ORDER BY name",
    )?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// Inserts or replaces a line's state.
pub(crate) fn put(conn: &Connection, l: &LineRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO lines (name, call_id, from_tag, last_cseq, updated_at, call_id_mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        l.name,
        l.call_id,
        l.from_tag,
        l.last_cseq,
        l.updated_at,
        l.call_id_mode
    ])?;
    Ok(())
}

/// Reads one row of `lines`.
fn from_row(r: &Row<'_>) -> rusqlite::Result<LineRecord> {
    Ok(LineRecord {
        name: r.get(0)?,
        call_id: r.get(1)?,
        from_tag: r.get(2)?,
        last_cseq: r.get(3)?,
        updated_at: r.get(4)?,
        call_id_mode: r.get(5)?,
    })
}

/// The secret called `name`.
pub(crate) fn get_secret(conn: &Connection, name: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

/// Inserts or replaces the secret called `name`.
pub(crate) fn put_secret(conn: &Connection, name: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO secrets (name, value) VALUES (?1, ?2)")?
        .execute(params![name, value])?;
    Ok(())
}

/// The secret called `name`, storing `candidate` first if there is none.
pub(crate) fn secret_or_insert(
    conn: &Connection,
    name: &str,
    candidate: &[u8],
) -> rusqlite::Result<Vec<u8>> {
    conn.prepare_cached("INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)")?
        .execute(params![name, candidate])?;
    conn.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sqlite::schema::migrate;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    #[test]
    fn line_get_put_list() {
        let conn = db();
        assert_eq!(get(&conn, "p1").unwrap(), None);
        let mut l = LineRecord {
            name: "p1".into(),
            call_id: "cid".into(),
            from_tag: "tag".into(),
            last_cseq: 7,
            updated_at: 1,
            call_id_mode: None,
        };
        put(&conn, &l).unwrap();
        assert_eq!(get(&conn, "p1").unwrap(), Some(l.clone()));
        l.last_cseq = 8;
        l.call_id_mode = Some("auto_fresh".into());
        put(&conn, &l).unwrap();
        assert_eq!(get(&conn, "p1").unwrap(), Some(l.clone()));
        assert_eq!(list(&conn).unwrap(), vec![l]);
    }

    #[test]
    fn secrets() {
        let conn = db();
        assert_eq!(get_secret(&conn, "k").unwrap(), None);
        assert_eq!(secret_or_insert(&conn, "k", b"first").unwrap(), b"first");
        assert_eq!(secret_or_insert(&conn, "k", b"second").unwrap(), b"first");
        put_secret(&conn, "k", &[0, 1, 2]).unwrap();
        assert_eq!(get_secret(&conn, "k").unwrap(), Some(vec![0, 1, 2]));
    }
}
