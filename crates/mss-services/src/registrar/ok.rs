//! The `200 OK` to a REGISTER (RFC 3261 §10.3 step 8): every current contact of the user
//! with its remaining expiry, a `Date`, and `Require: outbound` when RFC 5626 applied.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use mss_sip::{HeaderName, Response};

use super::location::Location;
use crate::Now;

/// `q` in thousandths as text (`700` → `0.7`, `1000` → `1`).
fn push_q(out: &mut String, q: u16) {
    if q >= 1000 {
        out.push('1');
    } else {
        let _ = write!(out, "0.{q:03}");
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.push('0');
        }
    }
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
        let mut v = String::with_capacity(b.contact.len() + 64);
        v.push('<');
        v.push_str(&b.contact);
        v.push_str(">;expires=");
        let _ = write!(v, "{}", b.expires_in(now.mono));
        if let Some(q) = b.q_milli {
            v.push_str(";q=");
            push_q(&mut v, q);
        }
        if let Some(i) = &b.instance {
            v.push_str(";+sip.instance=\"");
            v.push_str(i);
            v.push('"');
        }
        if let Some(id) = b.reg_id {
            let _ = write!(v, ";reg-id={id}");
        }
        h.push(HeaderName::Contact, Bytes::from(v));
    }
    if outbound {
        h.push(HeaderName::Require, "outbound");
    }
    let ms = u64::try_from(now.unix_ms).unwrap_or(0);
    let at = UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH);
    let date = httpdate::fmt_http_date(at);
    h.push(HeaderName::Date, Bytes::from(date));
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
            let mut s = String::new();
            push_q(&mut s, q);
            assert_eq!(s, want);
        }
    }
}
