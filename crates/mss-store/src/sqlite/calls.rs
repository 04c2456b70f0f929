//! SQL for call records (DESIGN §8 "Records").

use rusqlite::types::Type;
use rusqlite::{params, Connection, Row};

use crate::call_record::{CallDirection, CallDisposition, CallRecord, EndedBy};
use crate::records::UnixMillis;

/// The columns every query reads, in the order [`from_row`] expects.
const COLUMNS: &str = "id, started_at, answered_at, ended_at, caller, callee, answered_by, \
                       direction, line, disposition, sip_code, ended_by, forwarded_from, \
                       transferred_by";

/// Inserts the record `r.id`, or overwrites every column of the one stored under that id.
///
/// The second write of a call (its end, over the start written at answer) updates the row
/// in place (an upsert, SQLite's `ON CONFLICT ... DO UPDATE`): `INSERT OR REPLACE` deleted
/// the row and its two index entries and inserted them anew, twice the b-tree work for the
/// same stored values. `id` is the only unique column, so the conflict target is all
/// `REPLACE` resolved. A call's start time never changes, so the update first leaves
/// `started_at` (and its index, `calls_by_start`) alone when the stored one is the same;
/// only a record whose start did change is written again with every column.
pub(crate) fn put(conn: &Connection, r: &CallRecord) -> rusqlite::Result<()> {
    let values = params![
        r.id,
        r.started_at,
        r.answered_at,
        r.ended_at,
        r.caller,
        r.callee,
        r.answered_by,
        r.direction.as_str(),
        r.line,
        r.disposition.map(|d| d.as_str()),
        r.sip_code,
        r.ended_by.map(|e| e.as_str()),
        r.forwarded_from,
        r.transferred_by,
    ];
    let written = conn
        .prepare_cached(
            "INSERT INTO calls (id, started_at, answered_at, ended_at, caller, callee,
                answered_by, direction, line, disposition, sip_code, ended_by,
                forwarded_from, transferred_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (id) DO UPDATE SET
                answered_at = excluded.answered_at, ended_at = excluded.ended_at,
                caller = excluded.caller, callee = excluded.callee,
                answered_by = excluded.answered_by, direction = excluded.direction,
                line = excluded.line, disposition = excluded.disposition,
                sip_code = excluded.sip_code, ended_by = excluded.ended_by,
                forwarded_from = excluded.forwarded_from,
                transferred_by = excluded.transferred_by
             WHERE started_at = excluded.started_at",
        )?
        .execute(values)?;
    if written == 0 {
        // Stored with another start time: every column.
        conn.prepare_cached(
            "UPDATE calls SET started_at = ?2, answered_at = ?3, ended_at = ?4, caller = ?5,
                callee = ?6, answered_by = ?7, direction = ?8, line = ?9, disposition = ?10,
                sip_code = ?11, ended_by = ?12, forwarded_from = ?13, transferred_by = ?14
             WHERE id = ?1",
        )?
        .execute(values)?;
    }
    Ok(())
}

/// At most `limit` records with `started_at >= since` (all without `since`), newest first
/// (by `started_at`, then by id, so that equal start times come in a stable order).
pub(crate) fn list(
    conn: &Connection,
    since: Option<UnixMillis>,
    limit: u32,
) -> rusqlite::Result<Vec<CallRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM calls WHERE started_at >= ?1
         ORDER BY started_at DESC, id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![since.unwrap_or(i64::MIN), limit], from_row)?;
    rows.collect()
}

/// Marks every record still open (no disposition: written at answer, never finished)
/// that started at or before `now` as `interrupted` by `mss`; `ended_at` stays unknown.
/// Returns the records as they are now stored, oldest first. Run inside the writer's
/// transaction, the read and the update are one atomic step.
pub(crate) fn interrupt_open(
    conn: &Connection,
    now: UnixMillis,
) -> rusqlite::Result<Vec<CallRecord>> {
    let open: Vec<CallRecord> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM calls WHERE disposition IS NULL AND started_at <= ?1
             ORDER BY started_at, id"
        ))?;
        let rows = stmt.query_map([now], from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if open.is_empty() {
        return Ok(open);
    }
    conn.prepare_cached(
        "UPDATE calls SET disposition = ?1, ended_by = ?2
         WHERE disposition IS NULL AND started_at <= ?3",
    )?
    .execute(params![
        CallDisposition::Interrupted.as_str(),
        EndedBy::Mss.as_str(),
        now
    ])?;
    Ok(open
        .into_iter()
        .map(|r| CallRecord {
            disposition: Some(CallDisposition::Interrupted),
            ended_by: Some(EndedBy::Mss),
            ..r
        })
        .collect())
}

/// Reads one row of `calls` ([`COLUMNS`]); a name no enum knows is a conversion error.
fn from_row(r: &Row<'_>) -> rusqlite::Result<CallRecord> {
    Ok(CallRecord {
        id: r.get(0)?,
        started_at: r.get(1)?,
        answered_at: r.get(2)?,
        ended_at: r.get(3)?,
        caller: r.get(4)?,
        callee: r.get(5)?,
        answered_by: r.get(6)?,
        direction: named(r, 7, CallDirection::parse)?,
        line: r.get(8)?,
        disposition: optional_named(r, 9, CallDisposition::parse)?,
        sip_code: r.get(10)?,
        ended_by: optional_named(r, 11, EndedBy::parse)?,
        forwarded_from: r.get(12)?,
        transferred_by: r.get(13)?,
    })
}

/// The value named by the text in column `i`.
fn named<T>(r: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    parse(&text).ok_or_else(|| unknown_name(i, &text))
}

/// The value named by the text in column `i`, or `None` for NULL.
fn optional_named<T>(
    r: &Row<'_>,
    i: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = r.get(i)?;
    text.map(|t| parse(&t).ok_or_else(|| unknown_name(i, &t)))
        .transpose()
}

/// The error for a stored name this build does not know.
fn unknown_name(i: usize, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        Type::Text,
        format!("unknown value {text:?} in column {i} of calls").into(),
    )
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

    fn record(id: &str, started_at: UnixMillis, finished: bool) -> CallRecord {
        CallRecord {
            id: id.into(),
            started_at,
            answered_at: Some(started_at + 2_000),
            ended_at: finished.then_some(started_at + 62_000),
            caller: "101".into(),
            callee: "95551234".into(),
            answered_by: Some("5551234".into()),
            direction: CallDirection::Outbound,
            line: Some("provider".into()),
            disposition: finished.then_some(CallDisposition::Answered),
            sip_code: Some(200),
            ended_by: finished.then_some(EndedBy::Caller),
            forwarded_from: None,
            transferred_by: None,
        }
    }

    #[test]
    fn put_replaces_and_list_is_newest_first() {
        let conn = db();
        put(&conn, &record("a", 1_000, false)).unwrap();
        put(&conn, &record("b", 3_000, true)).unwrap();
        put(&conn, &record("c", 2_000, true)).unwrap();
        let finished = record("a", 1_000, true);
        put(&conn, &finished).unwrap();
        let all = list(&conn, None, 100).unwrap();
        let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
        assert_eq!(all[2], finished);
    }

    /// What `put` stored before the upsert: every column of the row replaced.
    fn put_by_replacing(conn: &Connection, r: &CallRecord) {
        conn.execute(
            "INSERT OR REPLACE INTO calls (id, started_at, answered_at, ended_at, caller,
                callee, answered_by, direction, line, disposition, sip_code, ended_by,
                forwarded_from, transferred_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                r.id,
                r.started_at,
                r.answered_at,
                r.ended_at,
                r.caller,
                r.callee,
                r.answered_by,
                r.direction.as_str(),
                r.line,
                r.disposition.map(|d| d.as_str()),
                r.sip_code,
                r.ended_by.map(|e| e.as_str()),
                r.forwarded_from,
                r.transferred_by,
            ],
        )
        .unwrap();
    }

    /// The upsert leaves exactly what `INSERT OR REPLACE` left, over a sequence that
    /// writes ids again with every column changed, set and cleared.
    #[test]
    fn put_stores_what_insert_or_replace_stored() {
        let (upsert, replace) = (db(), db());
        let mut changed = record("a", 5_000, true);
        changed.caller = "102".into();
        changed.callee = "103".into();
        changed.answered_by = None;
        changed.direction = CallDirection::Inbound;
        changed.line = None;
        changed.sip_code = None;
        changed.forwarded_from = Some("104".into());
        changed.transferred_by = Some("105".into());
        let writes = [
            record("a", 1_000, false),
            record("b", 1_000, false),
            record("a", 1_000, true),
            changed.clone(),
            record("c", 500, true),
            record("b", 2_000, true),
            record("a", 1_000, false),
            changed,
        ];
        for (n, w) in writes.iter().enumerate() {
            put(&upsert, w).unwrap();
            put_by_replacing(&replace, w);
            assert_eq!(
                list(&upsert, None, 100).unwrap(),
                list(&replace, None, 100).unwrap(),
                "after write {n}"
            );
            // The index on started_at answers as the table does.
            let since = |c: &Connection| list(c, Some(1_000), 100).unwrap();
            assert_eq!(since(&upsert), since(&replace), "after write {n}");
        }
    }

    #[test]
    fn list_takes_since_and_limit() {
        let conn = db();
        for (i, at) in [1_000, 2_000, 3_000, 4_000].into_iter().enumerate() {
            put(&conn, &record(&format!("c{i}"), at, true)).unwrap();
        }
        let ids = |v: Vec<CallRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(list(&conn, Some(2_000), 100).unwrap()),
            ["c3", "c2", "c1"]
        );
        assert_eq!(ids(list(&conn, None, 2).unwrap()), ["c3", "c2"]);
        assert_eq!(ids(list(&conn, Some(2_001), 1).unwrap()), ["c3"]);
        assert!(list(&conn, Some(5_000), 100).unwrap().is_empty());
        assert!(list(&conn, None, 0).unwrap().is_empty());
    }

    #[test]
    fn open_records_become_interrupted_once() {
        let conn = db();
        put(&conn, &record("open1", 1_000, false)).unwrap();
        put(&conn, &record("done", 2_000, true)).unwrap();
        put(&conn, &record("open2", 3_000, false)).unwrap();
        put(&conn, &record("later", 9_000, false)).unwrap();
        let changed = interrupt_open(&conn, 5_000).unwrap();
        let ids: Vec<&str> = changed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["open1", "open2"]);
        for r in &changed {
            assert_eq!(r.disposition, Some(CallDisposition::Interrupted));
            assert_eq!(r.ended_by, Some(EndedBy::Mss));
            assert_eq!(r.ended_at, None, "when it died is not known");
            assert_eq!(r.duration_s(), None);
        }
        let stored = list(&conn, None, 100).unwrap();
        let by_id = |id: &str| stored.iter().find(|r| r.id == id).unwrap().clone();
        assert_eq!(by_id("open1"), changed[0]);
        assert_eq!(by_id("done"), record("done", 2_000, true));
        assert_eq!(by_id("later").disposition, None, "started after now");
        assert!(interrupt_open(&conn, 5_000).unwrap().is_empty());
    }

    #[test]
    fn an_unknown_stored_name_is_an_error() {
        let conn = db();
        put(&conn, &record("x", 1_000, true)).unwrap();
        conn.execute("UPDATE calls SET direction = 'sideways'", [])
            .unwrap();
        let err = list(&conn, None, 10).unwrap_err();
        assert!(err.to_string().contains("sideways"), "{err}");
    }
}
