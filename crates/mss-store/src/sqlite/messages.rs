//! SQL for offline instant messages.

use rusqlite::{params, Connection, Row};

use crate::records::{InsertOutcome, NewMessage, StoredMessage, UnixMillis, UserMessageCount};

/// Inserts `m`; returns its id (AUTOINCREMENT: never reused).
pub(crate) fn insert(conn: &Connection, m: &NewMessage) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO offline_messages (recipient, sender, original_to, content_type, body,
             received_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        m.recipient,
        m.sender,
        m.original_to,
        m.content_type,
        m.body,
        m.received_at,
        m.expires_at,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Inserts `m` unless its recipient has `limit` or more messages unexpired at
/// `m.received_at`. Atomic when run inside the writer's transaction: all writes go through
/// that one connection, one after another.
pub(crate) fn insert_if_below(
    conn: &Connection,
    m: &NewMessage,
    limit: u32,
) -> rusqlite::Result<InsertOutcome> {
    let stored = count(conn, &m.recipient, m.received_at)?;
    if stored >= u64::from(limit) {
        return Ok(InsertOutcome::Full { stored });
    }
    insert(conn, m).map(InsertOutcome::Stored)
}

/// Number of `recipient`'s messages with `expires_at > now`.
pub(crate) fn count(conn: &Connection, recipient: &str, now: UnixMillis) -> rusqlite::Result<u64> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM offline_messages WHERE recipient = ?1 AND expires_at > ?2",
        )?
        .query_row(params![recipient, now], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `recipient`'s messages with `expires_at > now`, oldest (lowest id) first.
pub(crate) fn list(
    conn: &Connection,
    recipient: &str,
    now: UnixMillis,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, recipient, sender, original_to, content_type, body, received_at, expires_at
         FROM offline_messages WHERE recipient = ?1 AND expires_at > ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![recipient, now], from_row)?;
    rows.collect()
}

/// Per user with unexpired messages, how many; by user.
pub(crate) fn counts(
    conn: &Connection,
    now: UnixMillis,
) -> rusqlite::Result<Vec<UserMessageCount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT recipient, COUNT(*) FROM offline_messages WHERE expires_at > ?1
         GROUP BY recipient ORDER BY recipient",
    )?;
    let rows = stmt.query_map([now], |r| {
        Ok(UserMessageCount {
            user: r.get(0)?,
            stored: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        })
    })?;
    rows.collect()
}

/// Deletes message `id`; `true` if it existed.
pub(crate) fn delete(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM offline_messages WHERE id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}

/// Deletes the messages with `expires_at <= now`; returns how many.
pub(crate) fn delete_expired(conn: &Connection, now: UnixMillis) -> rusqlite::Result<u64> {
    let n = conn
        .prepare_cached("DELETE FROM offline_messages WHERE expires_at <= ?1")?
        .execute([now])?;
    Ok(n as u64)
}

/// Reads one row of the `SELECT` in [`list`].
fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        message: NewMessage {
            recipient: r.get(1)?,
            sender: r.get(2)?,
            original_to: r.get(3)?,
            content_type: r.get(4)?,
            body: r.get(5)?,
            received_at: r.get(6)?,
            expires_at: r.get(7)?,
        },
    })
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

    fn msg(to: &str, body: &[u8], received_at: i64, expires_at: i64) -> NewMessage {
        NewMessage {
            recipient: to.into(),
            sender: "\"Alice\" <sip:101@pbx>;tag=a1".into(),
            original_to: Some("<sip:102@pbx>".into()),
            content_type: "text/plain;charset=UTF-8".into(),
            body: body.to_vec(),
            received_at,
            expires_at,
        }
    }

    #[test]
    fn insert_list_oldest_first_bytes_exact() {
        let conn = db();
        let body = [0u8, 0xff, b'h', b'i', 0xc3];
        let a = insert(&conn, &msg("102", &body, 1, 100)).unwrap();
        let b = insert(&conn, &msg("102", b"second", 2, 100)).unwrap();
        insert(&conn, &msg("103", b"other", 3, 100)).unwrap();
        assert!(b > a);
        let got = list(&conn, "102", 0).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, a);
        assert_eq!(got[0].message, msg("102", &body, 1, 100));
        assert_eq!(got[1].id, b);
        assert_eq!(count(&conn, "102", 0).unwrap(), 2);
        assert_eq!(count(&conn, "nobody", 0).unwrap(), 0);
    }

    #[test]
    fn ids_are_not_reused_after_delete() {
        let conn = db();
        let a = insert(&conn, &msg("102", b"x", 1, 100)).unwrap();
        assert!(delete(&conn, a).unwrap());
        let b = insert(&conn, &msg("102", b"y", 1, 100)).unwrap();
        assert!(b > a);
    }

    #[test]
    fn delete_is_idempotent() {
        let conn = db();
        let a = insert(&conn, &msg("102", b"x", 1, 100)).unwrap();
        assert!(delete(&conn, a).unwrap());
        assert!(!delete(&conn, a).unwrap());
        assert!(!delete(&conn, 12345).unwrap());
    }

    #[test]
    fn limit_counts_unexpired_only() {
        let conn = db();
        insert(&conn, &msg("102", b"old", 1, 50)).unwrap();
        insert(&conn, &msg("102", b"a", 1, 500)).unwrap();
        let out = insert_if_below(&conn, &msg("102", b"b", 60, 500), 2).unwrap();
        assert!(matches!(out, InsertOutcome::Stored(_)));
        let out = insert_if_below(&conn, &msg("102", b"c", 60, 500), 2).unwrap();
        assert_eq!(out, InsertOutcome::Full { stored: 2 });
        let out = insert_if_below(&conn, &msg("102", b"c", 60, 500), 0).unwrap();
        assert_eq!(out, InsertOutcome::Full { stored: 2 });
    }

    #[test]
    fn counts_and_expiry() {
        let conn = db();
        insert(&conn, &msg("103", b"a", 1, 100)).unwrap();
        insert(&conn, &msg("102", b"b", 1, 100)).unwrap();
        insert(&conn, &msg("102", b"c", 1, 200)).unwrap();
        let c = counts(&conn, 0).unwrap();
        assert_eq!(
            c,
            vec![
                UserMessageCount {
                    user: "102".into(),
                    stored: 2
                },
                UserMessageCount {
                    user: "103".into(),
                    stored: 1
                },
            ]
        );
        assert_eq!(counts(&conn, 100).unwrap().len(), 1);
        assert_eq!(list(&conn, "102", 100).unwrap().len(), 1);
        assert_eq!(delete_expired(&conn, 100).unwrap(), 2);
        assert_eq!(count(&conn, "102", 0).unwrap(), 1);
    }
}
