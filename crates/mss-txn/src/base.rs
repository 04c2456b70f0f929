//! The few header values the transaction layer reads, pulled out of a message once
//! (like ezk's `BaseHeaders`): top Via, CSeq, Call-ID and the From/To tags.
//!
//! This is a small private parser over the raw header values of [`mss_sip::Headers`]; it
//! borrows from the message and allocates nothing. It is lenient where RFC 3261 allows
//! linear whitespace (around `/` in the sent-protocol and `:` in the sent-by), and it never
//! panics on malformed input: it reports a [`TxnError`] instead.

use mss_sip::{HeaderName, Headers};

use crate::error::TxnError;

/// The magic cookie that starts every RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// The parts of the top Via the transaction layer uses (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopVia<'a> {
    /// The whole value of the top Via, trimmed (RFC 2543 matching compares it whole).
    pub(crate) raw: &'a [u8],
    /// The transport token of the sent-protocol (`UDP`, `TCP`, …).
    pub(crate) transport: &'a [u8],
    /// The sent-by, as written (may hold whitespace around `:`).
    pub(crate) sent_by: &'a [u8],
    /// The branch parameter, if any.
    pub(crate) branch: Option<&'a [u8]>,
}

impl TopVia<'_> {
    /// Whether the branch starts with the RFC 3261 magic cookie (§17.2.3).
    pub(crate) fn is_rfc3261(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }
}

/// The base headers of one message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base<'a> {
    pub(crate) via: TopVia<'a>,
    pub(crate) cseq: u32,
    pub(crate) cseq_method: &'a [u8],
    pub(crate) call_id: &'a [u8],
    pub(crate) from_tag: Option<&'a [u8]>,
    pub(crate) to_tag: Option<&'a [u8]>,
}

impl<'a> Base<'a> {
    /// Reads the base headers of a message.
    ///
    /// # Errors
    /// [`TxnError::MissingHeader`] or [`TxnError::BadHeader`] when Via, CSeq, Call-ID, From
    /// or To is absent or unusable.
    pub(crate) fn read(headers: &'a Headers) -> Result<Base<'a>, TxnError> {
        let via = top_via(headers)?;
        let cseq = headers
            .get(&HeaderName::CSeq)
            .ok_or(TxnError::MissingHeader("CSeq"))?;
        let (cseq, cseq_method) = parse_cseq(cseq)?;
        let call_id = trim(
            headers
                .get(&HeaderName::CallId)
                .ok_or(TxnError::MissingHeader("Call-ID"))?,
        );
        if call_id.is_empty() {
            return Err(TxnError::BadHeader {
                header: "Call-ID",
                reason: "empty",
            });
        }
        let from = headers
            .get(&HeaderName::From)
            .ok_or(TxnError::MissingHeader("From"))?;
        let to = headers
            .get(&HeaderName::To)
            .ok_or(TxnError::MissingHeader("To"))?;
        Ok(Base {
            via,
            cseq,
            cseq_method,
            call_id,
            from_tag: tag_of(from),
            to_tag: tag_of(to),
        })
    }
}

/// Reads only the top Via.
///
/// # Errors
/// [`TxnError::MissingHeader`] or [`TxnError::BadHeader`].
pub(crate) fn top_via(headers: &Headers) -> Result<TopVia<'_>, TxnError> {
    let v = headers
        .values(&HeaderName::Via)
        .next()
        .ok_or(TxnError::MissingHeader("Via"))?;
    parse_via(trim(v))
}

fn bad_via(reason: &'static str) -> TxnError {
    TxnError::BadHeader {
        header: "Via",
        reason,
    }
}

/// Parses one Via value: `SIP / 2.0 / UDP host [: port] *(; param)`.
fn parse_via(v: &[u8]) -> Result<TopVia<'_>, TxnError> {
    let (head, params) = match v.iter().position(|&b| b == b';') {
        Some(i) => (v.get(..i).unwrap_or(&[]), v.get(i + 1..).unwrap_or(&[])),
        None => (v, &[][..]),
    };
    // The transport follows the second '/'.
    let mut slashes = head.iter().enumerate().filter(|(_, &b)| b == b'/');
    let second = slashes
        .nth(1)
        .map(|(i, _)| i)
        .ok_or_else(|| bad_via("no sent-protocol"))?;
    let rest = trim(head.get(second + 1..).unwrap_or(&[]));
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .ok_or_else(|| bad_via("no sent-by"))?;
    let transport = rest.get(..end).unwrap_or(&[]);
    let sent_by = trim(rest.get(end..).unwrap_or(&[]));
    if transport.is_empty() || sent_by.is_empty() {
        return Err(bad_via("no sent-by"));
    }
    let branch = param(params, b"branch");
    if branch.is_some_and(|b| b.is_empty()) {
        return Err(bad_via("empty branch"));
    }
    Ok(TopVia {
        raw: v,
        transport,
        sent_by,
        branch,
    })
}

/// Finds `name` (ignoring case) among `;`-separated parameters; a flag param gives `""`.
fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    params.split(|&b| b == b';').find_map(|p| {
        let (n, v) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (p.get(..i).unwrap_or(&[]), p.get(i + 1..).unwrap_or(&[])),
            None => (p, &[][..]),
        };
        trim(n).eq_ignore_ascii_case(name).then(|| trim(v))
    })
}

/// `CSeq: 1*DIGIT LWS Method` (§20.16). The number must be below 2**31 (§8.1.1.5).
fn parse_cseq(v: &[u8]) -> Result<(u32, &[u8]), TxnError> {
    let bad = |reason| TxnError::BadHeader {
        header: "CSeq",
        reason,
    };
    let v = trim(v);
    let split = v
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .ok_or_else(|| bad("no method"))?;
    let digits = v.get(..split).unwrap_or(&[]);
    let method = trim(v.get(split..).unwrap_or(&[]));
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("bad sequence number"));
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let n = u32::try_from(n)
        .ok()
        .filter(|n| *n < 1 << 31)
        .ok_or_else(|| bad("sequence number too large"))?;
    if method.is_empty() {
        return Err(bad("no method"));
    }
    Ok((n, method))
}

/// The `tag` parameter of a From or To value (§20.20, §20.39), which follows the URI:
/// after the `>` of a name-addr, or after the first `;` of an addr-spec.
pub(crate) fn tag_of(v: &[u8]) -> Option<&[u8]> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut params_at = None;
    for (i, &b) in v.iter().enumerate() {
        if in_quotes {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => {
                let close = v.get(i..)?.iter().position(|&c| c == b'>')? + i;
                params_at = Some(close + 1);
                break;
            }
            b';' => {
                params_at = Some(i);
                break;
            }
            _ => {}
        }
    }
    param(v.get(params_at?..)?, b"tag").filter(|t| !t.is_empty())
}

/// Trims linear whitespace (SP, HTAB, CR, LF of folded lines) at both ends.
pub(crate) fn trim(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if first.is_ascii_whitespace() {
            v = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = v {
        if last.is_ascii_whitespace() {
            v = rest;
        } else {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_parts() {
        let v = parse_via(b"SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKkjshdyff;rport").unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.sent_by, b"pc33.atlanta.com");
        assert_eq!(v.branch, Some(&b"z9hG4bKkjshdyff"[..]));
        assert!(v.is_rfc3261());
        let v = parse_via(b"SIP / 2.0 / TCP host.example : 5061 ; BRANCH = abc").unwrap();
        assert_eq!(v.transport, b"TCP");
        assert_eq!(v.sent_by, b"host.example : 5061");
        assert_eq!(v.branch, Some(&b"abc"[..]));
        assert!(!v.is_rfc3261());
        assert!(parse_via(b"SIP/2.0/UDP").is_err());
        assert!(parse_via(b"garbage").is_err());
        assert!(parse_via(b"SIP/2.0/UDP h;branch=").is_err());
        assert_eq!(parse_via(b"SIP/2.0/UDP h").unwrap().branch, None);
    }

    #[test]
    fn cseq_parts() {
        assert_eq!(
            parse_cseq(b"986759 INVITE").unwrap(),
            (986759, &b"INVITE"[..])
        );
        assert_eq!(parse_cseq(b" 1\t ACK ").unwrap(), (1, &b"ACK"[..]));
        assert!(parse_cseq(b"INVITE").is_err());
        assert!(parse_cseq(b"-1 INVITE").is_err());
        assert!(parse_cseq(b"2147483648 INVITE").is_err());
        assert!(parse_cseq(b"99999999999999999999 INVITE").is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(
            tag_of(b"Alice <sip:alice@atlanta.com>;tag=88sja8x"),
            Some(&b"88sja8x"[..])
        );
        assert_eq!(
            tag_of(b"sip:alice@atlanta.com;tag=1928301774"),
            Some(&b"1928301774"[..])
        );
        assert_eq!(tag_of(b"<sip:bob@biloxi.com;tag=not-this>"), None);
        assert_eq!(
            tag_of(b"\"a;tag=x <y>\" <sip:b@c> ; TAG = z"),
            Some(&b"z"[..])
        );
        assert_eq!(tag_of(b"Bob <sip:bob@biloxi.com>"), None);
        assert_eq!(tag_of(b"<sip:unterminated;tag=x"), None);
    }

    #[test]
    fn trims() {
        assert_eq!(trim(b"  a b \r\n "), b"a b");
        assert_eq!(trim(b"   "), b"");
    }
}
