//! A call record as a line of the daily CSV file (DESIGN §8 "Records":
//! `DATA_DIR/cdr/YYYY-MM-DD.csv`).
//!
//! The format, for whoever reads the files:
//! - one header line ([`HEADER`]), then one line per finished call, in the DESIGN §8 field
//!   order; lines end with CRLF and fields are quoted as RFC 4180 says: a field that holds a
//!   comma, a double quote, CR or LF is enclosed in double quotes, with every double quote
//!   inside doubled;
//! - times are RFC 3339 in UTC to the second (`2026-12-07T05:53:37Z`); a time, duration or
//!   text that is not known is an empty field; durations are whole seconds;
//! - the file of a record is the UTC day of its `started_at`, so a call over midnight stays
//!   in the file of the day it began;
//! - formula injection (the OWASP "CSV injection" advice): a text field that a caller can
//!   influence (`caller`, `callee`, `answered_by`, `line`, `forwarded_from`) and that begins
//!   with `=`, `+`, `-`, `@`, a tab or CR would be run as a formula by a spreadsheet, so a
//!   single quote `'` is put before it (`=HYPERLINK(…)` → `'=HYPERLINK(…)`), which
//!   spreadsheets show as text. One exception keeps phone numbers as they are: `+` followed
//!   by digits only (`+4930123456`, an E.164 number) is no formula and is left alone.

use std::fmt::Write as _;

use mss_store::{CallRecord, UnixMillis};

/// The first line of every file: the DESIGN §8 field names, in order.
pub(crate) const HEADER: &str = "id,started_at,answered_at,ended_at,duration_s,billsec_s,caller,\
callee,answered_by,direction,line,disposition,sip_code,ended_by,forwarded_from\r\n";

/// The file name of `record`: the UTC day it started, `YYYY-MM-DD.csv`.
pub(crate) fn file_name(record: &CallRecord) -> String {
    let (y, m, d) = civil_date(record.started_at);
    format!("{y:04}-{m:02}-{d:02}.csv")
}

/// `record` as one CSV line, CRLF included, written field by field into one buffer.
pub(crate) fn line(r: &CallRecord) -> String {
    let mut out = String::with_capacity(192);
    push_quoted(&mut out, &r.id);
    out.push(',');
    push_rfc3339(&mut out, r.started_at);
    out.push(',');
    if let Some(t) = r.answered_at {
        push_rfc3339(&mut out, t);
    }
    out.push(',');
    if let Some(t) = r.ended_at {
        push_rfc3339(&mut out, t);
    }
    out.push(',');
    push_number(&mut out, r.duration_s());
    out.push(',');
    push_number(&mut out, r.billsec_s());
    out.push(',');
    push_text(&mut out, &r.caller);
    out.push(',');
    push_text(&mut out, &r.callee);
    out.push(',');
    push_text(&mut out, r.answered_by.as_deref().unwrap_or_default());
    out.push(',');
    push_quoted(&mut out, r.direction.as_str());
    out.push(',');
    push_text(&mut out, r.line.as_deref().unwrap_or_default());
    out.push(',');
    push_quoted(
        &mut out,
        r.disposition.map(|d| d.as_str()).unwrap_or_default(),
    );
    out.push(',');
    push_number(&mut out, r.sip_code.map(i64::from));
    out.push(',');
    push_quoted(&mut out, r.ended_by.map(|e| e.as_str()).unwrap_or_default());
    out.push(',');
    push_text(&mut out, r.forwarded_from.as_deref().unwrap_or_default());
    out.push_str("\r\n");
    out
}

/// Appends `n`, or nothing when it is not known.
fn push_number(out: &mut String, n: Option<i64>) {
    if let Some(n) = n {
        // Writing into a String cannot fail.
        let _ = write!(out, "{n}");
    }
}

/// Appends a text field a caller can influence: neutralised (see [`neutralised`]), then
/// quoted as [`push_quoted`] says.
fn push_text(out: &mut String, text: &str) {
    if needs_neutralising(text) {
        push_quoted(out, &format!("'{text}"));
    } else {
        push_quoted(out, text);
    }
}

/// Appends `field`, in double quotes (inner quotes doubled) when it holds a comma, a
/// double quote, CR or LF (RFC 4180 §2, rules 6 and 7).
fn push_quoted(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// True when a spreadsheet would take `text` for a formula (see the module docs); an
/// E.164 number (`+` and digits) is not one.
fn needs_neutralising(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let e164 = first == '+' && text.len() > 1 && text[1..].bytes().all(|b| b.is_ascii_digit());
    matches!(first, '=' | '+' | '-' | '@' | '\t' | '\r') && !e164
}

/// `text` with a `'` before it when a spreadsheet would take it for a formula (see the
/// module docs); an E.164 number (`+` and digits) is left as it is.
#[cfg(test)]
fn neutralised(text: &str) -> String {
    if needs_neutralising(text) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// `ms` as RFC 3339 in UTC, to the second: `2026-12-07T05:53:37Z`.
#[cfg(test)]
pub(crate) fn rfc3339(ms: UnixMillis) -> String {
    let mut out = String::new();
    push_rfc3339(&mut out, ms);
    out
}

/// Appends `ms` as RFC 3339 in UTC, to the second: `2026-12-07T05:53:37Z`.
///
/// Years 0–9999 (every time a call can have) are written digit by digit: `write!` with
/// six padded fields cost ~3k instructions per time, three times per record. Other years
/// keep the formatter's output ([`push_rfc3339_formatted`], which a test compares).
fn push_rfc3339(out: &mut String, ms: UnixMillis) {
    let (y, mo, d) = civil_date(ms);
    let secs_of_day = ms.div_euclid(1000).rem_euclid(86_400);
    let (h, mi, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let Ok(year) = u32::try_from(y) else {
        return push_rfc3339_formatted(out, ms);
    };
    if year > 9999 {
        return push_rfc3339_formatted(out, ms);
    }
    // Each value is below 100 (the year below 10,000) by construction.
    let two = |n: i64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut text = [0u8; 20];
    text[..4].copy_from_slice(&[
        b'0' + (year / 1000) as u8,
        b'0' + (year / 100 % 10) as u8,
        b'0' + (year / 10 % 10) as u8,
        b'0' + (year % 10) as u8,
    ]);
    text[4] = b'-';
    text[5..7].copy_from_slice(&two(i64::from(mo)));
    text[7] = b'-';
    text[8..10].copy_from_slice(&two(i64::from(d)));
    text[10] = b'T';
    text[11..13].copy_from_slice(&two(h));
    text[13] = b':';
    text[14..16].copy_from_slice(&two(mi));
    text[16] = b':';
    text[17..19].copy_from_slice(&two(s));
    text[19] = b'Z';
    // ASCII digits and separators only.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// [`push_rfc3339`] through the formatter: any year, as `{:04}` writes it.
fn push_rfc3339_formatted(out: &mut String, ms: UnixMillis) {
    let (y, mo, d) = civil_date(ms);
    let secs_of_day = ms.div_euclid(1000).rem_euclid(86_400);
    let (h, mi, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    // Writing into a String cannot fail.
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
}

/// The UTC calendar date (year, month 1–12, day 1–31) of `ms`: the proleptic Gregorian
/// calendar, after Howard Hinnant's `civil_from_days`.
fn civil_date(ms: UnixMillis) -> (i64, u32, u32) {
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use mss_store::{CallDirection, CallDisposition, EndedBy};

    use super::*;

    /// 2026-12-07T05:53:37Z.
    const T: UnixMillis = 1_796_622_817_000;

    fn record() -> CallRecord {
        CallRecord {
            id: "c-1".into(),
            started_at: T,
            answered_at: Some(T + 4_500),
            ended_at: Some(T + 65_900),
            caller: "101".into(),
            callee: "95551234".into(),
            answered_by: Some("5551234".into()),
            direction: CallDirection::Outbound,
            line: Some("provider".into()),
            disposition: Some(CallDisposition::Answered),
            sip_code: Some(200),
            ended_by: Some(EndedBy::Caller),
            forwarded_from: None,
            transferred_by: None,
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(T + 999), "2026-12-07T05:53:37Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn times_written_digit_by_digit_are_the_formatters() {
        // Every day boundary and second edge from year 0 to 10,000, plus a pseudo-random
        // walk over the whole range and beyond (the formatter's path).
        let mut seen = 0;
        let mut check = |ms: UnixMillis| {
            let (mut fast, mut formatted) = (String::new(), String::new());
            push_rfc3339(&mut fast, ms);
            push_rfc3339_formatted(&mut formatted, ms);
            assert_eq!(fast, formatted, "at {ms}");
            seen += 1;
        };
        let first = -62_167_219_200_000; // 0000-01-01T00:00:00Z
        let beyond = 253_402_300_800_000; // 10000-01-01T00:00:00Z
        let mut ms = first - 86_400_000;
        while ms < beyond + 86_400_000 {
            for edge in [-1, 0, 999, 1_000, 59_999, 3_599_999, 43_200_000] {
                check(ms + edge);
            }
            ms += 86_400_000 * 7 + 3_600_000;
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check((x % 700_000_000_000_000) as i64 - 350_000_000_000_000);
        }
        check(i64::MIN / 2);
        check(i64::MAX / 2);
        assert!(seen > 100_000);
    }

    #[test]
    fn the_file_is_the_utc_day_of_the_start() {
        let mut r = record();
        assert_eq!(file_name(&r), "2026-12-07.csv");
        r.started_at = 1_798_761_599_000; // 2026-12-31T23:59:59Z
        assert_eq!(file_name(&r), "2026-12-31.csv");
        r.started_at += 1_000;
        assert_eq!(file_name(&r), "2027-01-01.csv");
    }

    #[test]
    fn a_line_has_every_field_in_the_design_order() {
        assert_eq!(
            line(&record()),
            "c-1,2026-12-07T05:53:37Z,2026-12-07T05:53:41Z,2026-12-07T05:54:42Z,65,61,101,\
             95551234,5551234,outbound,provider,answered,200,caller,\r\n"
        );
        assert_eq!(HEADER.trim_end().split(',').count(), 15);
        assert_eq!(line(&record()).trim_end().split(',').count(), 15);
    }

    #[test]
    fn unknown_values_are_empty_fields() {
        let r = CallRecord {
            answered_at: None,
            ended_at: None,
            answered_by: None,
            line: None,
            disposition: Some(CallDisposition::Interrupted),
            sip_code: None,
            ended_by: Some(EndedBy::Mss),
            direction: CallDirection::Internal,
            ..record()
        };
        assert_eq!(
            line(&r),
            "c-1,2026-12-07T05:53:37Z,,,,,101,95551234,,internal,,interrupted,,mss,\r\n"
        );
    }

    #[test]
    fn commas_quotes_and_newlines_are_quoted() {
        let r = CallRecord {
            caller: "Smith, John".into(),
            callee: "say \"hi\"".into(),
            forwarded_from: Some("a\nb".into()),
            transferred_by: None,
            ..record()
        };
        let l = line(&r);
        assert!(l.contains(",\"Smith, John\",\"say \"\"hi\"\"\","), "{l}");
        assert!(l.ends_with(",\"a\nb\"\r\n"), "{l}");
    }

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        assert_eq!(neutralised("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralised("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralised("-2+3"), "'-2+3");
        assert_eq!(neutralised("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
        assert_eq!(neutralised("\t=1"), "'\t=1");
        assert_eq!(neutralised("+"), "'+");
        assert_eq!(neutralised("+4930123456"), "+4930123456");
        assert_eq!(neutralised("101"), "101");
        assert_eq!(neutralised(""), "");
        let r = CallRecord {
            caller: "=1+1".into(),
            callee: "+4930123456".into(),
            answered_by: Some("@x".into()),
            ..record()
        };
        let l = line(&r);
        assert!(l.contains(",'=1+1,+4930123456,'@x,"), "{l}");
        // A neutralised field with a comma is still quoted as a whole.
        let r = CallRecord {
            caller: "=A1,B1".into(),
            ..record()
        };
        assert!(line(&r).contains(",\"'=A1,B1\","));
    }
}
