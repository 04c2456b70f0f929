//! The `200 OK` to a REGISTER (RFC 3261 §10.3 step 8): every current contact of the user
//! with its remaining expiry, a `Date`, and `Require: outbound` when RFC 5626 applied.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use mss_sip::{fmt_usize, HeaderName, Response};

use super::binding::Binding;
use super::location::Location;
use crate::Now;

/// `q` in thousandths as text (`700` → `0.7`, `1000` → `1`), written into `buf`.
fn q_text(q: u16, buf: &mut [u8; 5]) -> &[u8] {
    if q >= 1000 {
        return b"1";
    }
    let digits = [
        b'0' + (q / 100) as u8,
        b'0' + (q / 10 % 10) as u8,
        b'0' + (q % 10) as u8,
    ];
    // Trailing zeros go, but one digit stays after the point (`0` → `0.0`).
    let keep = digits.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
    *buf = [b'0', b'.', digits[0], digits[1], digits[2]];
    buf.get(..2 + keep).unwrap_or(b"0.0")
}

/// One Contact value of the `200`: `<uri>;expires=N`, then `q`, `+sip.instance` and
/// `reg-id` when the binding has them; built in a buffer of exactly its length, so
/// `Bytes` takes it without another allocation.
fn contact_value(b: &Binding, expires_in: u32) -> Bytes {
    let mut expires_buf = [0u8; 20];
    let expires = fmt_usize(expires_in as usize, &mut expires_buf);
    let mut q_buf = [0u8; 5];
    let q = b.q_milli.map(|q| q_text(q, &mut q_buf));
    let mut reg_id_buf = [0u8; 20];
    let reg_id = b.reg_id.map(|id| fmt_usize(id as usize, &mut reg_id_buf));
    let len = 1
        + b.contact.len()
        + 10
        + expires.len()
        + q.map_or(0, |q| 3 + q.len())
        + b.instance.as_ref().map_or(0, |i| 16 + i.len() + 1)
        + reg_id.map_or(0, |r| 8 + r.len());
    let mut v = Vec::with_capacity(len);
    v.push(b'<');
    v.extend_from_slice(b.contact.as_bytes());
    v.extend_from_slice(b">;expires=");
    v.extend_from_slice(expires);
    if let Some(q) = q {
        v.extend_from_slice(b";q=");
        v.extend_from_slice(q);
    }
    if let Some(i) = &b.instance {
        v.extend_from_slice(b";+sip.instance=\"");
        v.extend_from_slice(i.as_bytes());
        v.push(b'"');
    }
    if let Some(r) = reg_id {
        v.extend_from_slice(b";reg-id=");
        v.extend_from_slice(r);
    }
    Bytes::from(v)
}

/// The last second an IMF-fixdate can show (9999-12-31 23:59:59).
const LAST_FIXDATE_SECS: u64 = 253_402_300_799;

/// `Date` (RFC 3261 §20.17: RFC 1123 form, always GMT) for `unix_secs`, e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`: the same text as `httpdate::fmt_http_date`, written
/// without a formatter into a buffer of exactly its length.
fn http_date(unix_secs: u64) -> Bytes {
    if unix_secs > LAST_FIXDATE_SECS {
        let at = UNIX_EPOCH
            .checked_add(Duration::from_secs(unix_secs))
            .unwrap_or(UNIX_EPOCH);
        return Bytes::from(httpdate::fmt_http_date(at));
    }
    const DAYS: &[u8; 21] = b"SunMonTueWedThuFriSat";
    const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    // 1970-01-01 was a Thursday (index 4 from Sunday).
    let weekday = ((days + 4) % 7) as usize;
    // Days to civil date (H. Hinnant's algorithm, from 0000-03-01).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (hour, minute, second) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let name = |table: &[u8], i: usize| -> [u8; 3] {
        let mut out = *b"???";
        if let Some(n) = table.get(i * 3..i * 3 + 3) {
            out.copy_from_slice(n);
        }
        out
    };
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let [w0, w1, w2] = name(DAYS, weekday);
    let [m0, m1, m2] = name(MONTHS, (month - 1) as usize);
    let [d0, d1] = two(day);
    let [y0, y1] = two(year / 100);
    let [y2, y3] = two(year);
    let [h0, h1] = two(hour);
    let [n0, n1] = two(minute);
    let [s0, s1] = two(second);
    let text: [u8; 29] = [
        w0, w1, w2, b',', b' ', d0, d1, b' ', m0, m1, m2, b' ', y0, y1, y2, y3, b' ', h0, h1, b':',
        n0, n1, b':', s0, s1, b' ', b'G', b'M', b'T',
    ];
    Bytes::copy_from_slice(&text)
}

/// Adds every live contact with its expiry, `Date` and `Require: outbound` (step 8).
pub(crate) fn ok_response(
    location: &Location,
    now: Now,
    user: &str,
    mut rsp: Response,
    outbound: bool,
) -> Response {
    let h = rsp.headers_mut();
    for b in location.live(user, now.mono) {
        h.push(
            HeaderName::Contact,
            contact_value(b, b.expires_in(now.mono)),
        );
    }
    if outbound {
        h.push(HeaderName::Require, "outbound");
    }
    let ms = u64::try_from(now.unix_ms).unwrap_or(0);
    h.push(HeaderName::Date, http_date(ms / 1000));
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_formatting() {
        for (q, want) in [
            (1000, "1"),
            (700, "0.7"),
            (5, "0.005"),
            (0, "0.0"),
            (250, "0.25"),
        ] {
            let mut buf = [0u8; 5];
            assert_eq!(q_text(q, &mut buf), want.as_bytes());
        }
    }

    #[test]
    fn date_is_the_http_date() {
        let mut secs: Vec<u64> = vec![
            0,
            59,
            86_399,
            86_400,
            784_111_777, // Sun, 06 Nov 1994 08:49:37 GMT
            951_782_400, // 2000-02-29
            951_868_799,
            4_107_542_400, // 2100-03-01
            LAST_FIXDATE_SECS,
        ];
        // Every day of a few leap cycles, at a moving time of day.
        secs.extend((0..3000u64).map(|d| 1_700_000_000 + d * 86_400 + d * 37 % 86_400));
        secs.extend((0..1500u64).map(|d| 946_684_800 - 40 * 86_400 + d * 86_399));
        for s in secs {
            let at = UNIX_EPOCH + Duration::from_secs(s);
            assert_eq!(http_date(s), httpdate::fmt_http_date(at).as_bytes(), "{s}");
        }
    }
}
