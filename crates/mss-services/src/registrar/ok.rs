//! The `200 OK` to a REGISTER (RFC 3261 §10.3 step 8): every current contact of the user
//! with its remaining expiry, a `Date`, and `Require: outbound` when RFC 5626 applied.

use std::cell::Cell;
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

/// The `Date` value (RFC 3261 §20.17: RFC 1123 form, always GMT) of the second being
/// answered: `httpdate` formats it once per second, and every `200` of that second shares
/// the text.
#[derive(Default)]
pub(crate) struct DateCache(Cell<Option<(u64, Bytes)>>);

impl std::fmt::Debug for DateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DateCache")
    }
}

impl DateCache {
    /// `Date` for `unix_secs`, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub(crate) fn get(&self, unix_secs: u64) -> Bytes {
        let text = match self.0.take() {
            Some((secs, text)) if secs == unix_secs => text,
            _ => {
                let at = UNIX_EPOCH
                    .checked_add(Duration::from_secs(unix_secs))
                    .unwrap_or(UNIX_EPOCH);
                Bytes::from(httpdate::fmt_http_date(at))
            }
        };
        self.0.set(Some((unix_secs, text.clone())));
        text
    }
}

/// Adds every live contact with its expiry, `Date` and `Require: outbound` (step 8).
pub(crate) fn ok_response(
    location: &Location,
    dates: &DateCache,
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
    h.push(HeaderName::Date, dates.get(ms / 1000));
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
            4_107_542_400,   // 2100-03-01
            253_402_300_799, // 9999-12-31 23:59:59
        ];
        // Every day of a few leap cycles, at a moving time of day.
        secs.extend((0..3000u64).map(|d| 1_700_000_000 + d * 86_400 + d * 37 % 86_400));
        secs.extend((0..1500u64).map(|d| 946_684_800 - 40 * 86_400 + d * 86_399));
        let dates = DateCache::default();
        // Each second twice: formatted, then shared.
        for s in secs.into_iter().flat_map(|s| [s, s]) {
            let at = UNIX_EPOCH + Duration::from_secs(s);
            assert_eq!(dates.get(s), httpdate::fmt_http_date(at).as_bytes(), "{s}");
        }
    }
}
