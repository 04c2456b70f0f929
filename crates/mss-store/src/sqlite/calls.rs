//! SQL for call records (DESIGN §8 "Records").

use rusqlite::{params, Connection};

use crate::call_record::CallRecord;

/// Inserts or replaces the record `r.id`.
pub(crate) fn put(conn: &Connection, r: &CallRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO calls (id, started_at, answered_at, ended_at, caller, callee,
            answered_by, direction, line, disposition, sip_code, ended_by, forwarded_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
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
    ])?;
    Ok(())
}
