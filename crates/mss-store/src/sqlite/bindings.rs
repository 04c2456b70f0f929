//! SQL for registrar bindings. Plain functions over a `Connection`; the caller supplies the
//! transaction (the writer's group commit), so one REGISTER's changes land together.

use rusqlite::{params, Connection, Row};

use crate::records::{BindingChange, BindingRecord, UnixMillis};

/// Applies `changes` for `user`. Upserts are stored under `user`, whatever their own
/// `user` field says, so one call can only touch one user's bindings.
pub(crate) fn apply_changes(
    conn: &Connection,
    user: &str,
    changes: &[BindingChange],
) -> rusqlite::Result<()> {
    for change in changes {
        match change {
            BindingChange::Upsert(b) => {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO bindings (user, binding_key, contact, instance,
                         reg_id, q_milli, expires_at, call_id, cseq, transport, source,
                         user_agent, registered_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?
                .execute(params![
                    user,
                    b.key().to_column(),
                    b.contact,
                    b.instance,
                    b.reg_id,
                    b.q_milli,
                    b.expires_at,
                    b.call_id,
                    b.cseq,
                    b.transport,
                    b.source,
                    b.user_agent,
                    b.registered_at,
                ])?;
            }
            BindingChange::Remove(key) => {
                conn.prepare_cached("DELETE FROM bindings WHERE user = ?1 AND binding_key = ?2")?
                    .execute(params![user, key.to_column()])?;
            }
        }
    }
    Ok(())
}

/// Deletes every binding of `user`; returns how many.
pub(crate) fn delete_user(conn: &Connection, user: &str) -> rusqlite::Result<u64> {
    let n = conn
        .prepare_cached("DELETE FROM bindings WHERE user = ?1")?
        .execute([user])?;
    Ok(n as u64)
}

/// The keys of the bindings with `expires_at <= now`: a scan of the whole table (there is
/// no expiry index, see schema version 3), run on a reader thread so that the writer never
/// waits for it.
pub(crate) fn expired_keys(
    conn: &Connection,
    now: UnixMillis,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT user, binding_key FROM bindings WHERE expires_at <= ?1")?;
    let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Deletes those of `keys` (from [`expired_keys`]) that are still expired at `now`: a
/// binding refreshed since the scan stays. Returns how many were deleted.
pub(crate) fn delete_expired_keys(
    conn: &Connection,
    keys: &[(String, String)],
    now: UnixMillis,
) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM bindings WHERE user = ?1 AND binding_key = ?2 AND expires_at <= ?3",
    )?;
    let mut deleted = 0;
    for (user, key) in keys {
        deleted += stmt.execute(params![user, key, now])? as u64;
    }
    Ok(deleted)
}

/// Every binding with `expires_at > now`, by user then registration time.
pub(crate) fn load(conn: &Connection, now: UnixMillis) -> rusqlite::Result<Vec<BindingRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user, contact, instance, reg_id, q_milli, expires_at, call_id, cseq,
                transport, source, user_agent, registered_at
         FROM bindings WHERE expires_at > ?1
         ORDER BY user, registered_at, binding_key",
    )?;
    let rows = stmt.query_map([now], from_row)?;
    rows.collect()
}

/// Reads one row of the `SELECT` in [`load`]. Out-of-range numbers (a negative CSeq) are
/// conversion errors, not panics.
fn from_row(r: &Row<'_>) -> rusqlite::Result<BindingRecord> {
    Ok(BindingRecord {
        user: r.get(0)?,
        contact: r.get(1)?,
        instance: r.get(2)?,
        reg_id: r.get(3)?,
        q_milli: r.get(4)?,
        expires_at: r.get(5)?,
        call_id: r.get(6)?,
        cseq: r.get(7)?,
        transport: r.get(8)?,
        source: r.get(9)?,
        user_agent: r.get(10)?,
        registered_at: r.get(11)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::records::BindingKey;
    use crate::sqlite::schema::migrate;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    fn binding(user: &str, contact: &str, expires_at: i64) -> BindingRecord {
        BindingRecord {
            user: user.into(),
            contact: contact.into(),
            instance: None,
            reg_id: None,
            q_milli: Some(700),
            expires_at,
            call_id: "abc@host".into(),
            cseq: 3,
            transport: "TCP".into(),
            source: "127.0.0.1:40000".into(),
            user_agent: Some("baresip".into()),
            registered_at: 10,
        }
    }

    #[test]
    fn upsert_refresh_remove() {
        let conn = db();
        let mut a = binding("101", "sip:101@10.0.0.1", 1000);
        let b = binding("101", "sip:101@10.0.0.2", 1000);
        apply_changes(
            &conn,
            "101",
            &[
                BindingChange::Upsert(a.clone()),
                BindingChange::Upsert(b.clone()),
            ],
        )
        .unwrap();
        assert_eq!(load(&conn, 0).unwrap(), vec![a.clone(), b.clone()]);

        a.expires_at = 5000;
        a.cseq = 4;
        apply_changes(
            &conn,
            "101",
            &[
                BindingChange::Upsert(a.clone()),
                BindingChange::Remove(b.key()),
            ],
        )
        .unwrap();
        assert_eq!(load(&conn, 0).unwrap(), vec![a]);
    }

    #[test]
    fn instance_key_replaces_old_contact() {
        let conn = db();
        let mut a = binding("101", "sip:101@10.0.0.1", 1000);
        a.instance = Some("<urn:uuid:1>".into());
        a.reg_id = Some(1);
        apply_changes(&conn, "101", &[BindingChange::Upsert(a.clone())]).unwrap();
        let mut moved = a.clone();
        moved.contact = "sip:101@10.0.0.9".into();
        apply_changes(&conn, "101", &[BindingChange::Upsert(moved.clone())]).unwrap();
        assert_eq!(load(&conn, 0).unwrap(), vec![moved]);
        let key = BindingKey::Instance {
            instance: "<urn:uuid:1>".into(),
            reg_id: Some(1),
        };
        apply_changes(&conn, "101", &[BindingChange::Remove(key)]).unwrap();
        assert!(load(&conn, 0).unwrap().is_empty());
    }

    #[test]
    fn upsert_is_stored_under_the_given_user() {
        let conn = db();
        let a = binding("999", "sip:x@10.0.0.1", 1000);
        apply_changes(&conn, "101", &[BindingChange::Upsert(a)]).unwrap();
        let loaded = load(&conn, 0).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].user, "101");
    }

    #[test]
    fn expiry_and_user_delete() {
        let conn = db();
        apply_changes(
            &conn,
            "101",
            &[
                BindingChange::Upsert(binding("101", "sip:a@h", 100)),
                BindingChange::Upsert(binding("101", "sip:b@h", 200)),
            ],
        )
        .unwrap();
        apply_changes(
            &conn,
            "102",
            &[BindingChange::Upsert(binding("102", "sip:c@h", 300))],
        )
        .unwrap();
        assert_eq!(
            load(&conn, 100).unwrap().len(),
            2,
            "expires_at == now is expired"
        );
        let expired = expired_keys(&conn, 100).unwrap();
        assert_eq!(expired, [("101".to_owned(), "c:sip:a@h".to_owned())]);
        assert_eq!(delete_expired_keys(&conn, &expired, 100).unwrap(), 1);
        assert_eq!(delete_expired_keys(&conn, &expired, 100).unwrap(), 0);
        assert_eq!(delete_user(&conn, "101").unwrap(), 1);
        assert_eq!(delete_user(&conn, "101").unwrap(), 0);
        let left = load(&conn, 0).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].user, "102");
    }

    #[test]
    fn binding_refreshed_after_the_scan_is_not_deleted() {
        let conn = db();
        let mut a = binding("101", "sip:a@h", 100);
        apply_changes(&conn, "101", &[BindingChange::Upsert(a.clone())]).unwrap();
        let expired = expired_keys(&conn, 100).unwrap();
        a.expires_at = 5000;
        apply_changes(&conn, "101", &[BindingChange::Upsert(a.clone())]).unwrap();
        assert_eq!(delete_expired_keys(&conn, &expired, 100).unwrap(), 0);
        assert_eq!(load(&conn, 0).unwrap(), vec![a]);
    }

    #[test]
    fn damaged_row_is_an_error_not_a_panic() {
        let conn = db();
        apply_changes(
            &conn,
            "101",
            &[BindingChange::Upsert(binding("101", "sip:a@h", 100))],
        )
        .unwrap();
        conn.execute("UPDATE bindings SET cseq = -1", []).unwrap();
        assert!(load(&conn, 0).is_err());
    }
}
