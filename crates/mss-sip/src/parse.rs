//! Line-level parsing: start line and header lines in one pass (RFC 3261 §7.1–§7.3).
//!
//! This level only finds the structure: the start line, each header's name and value
//! span (joining folded continuation lines) and where the body starts. Header values are
//! parsed later, on demand.

use bytes::Bytes;

use crate::error::{ParseError, ParseErrorKind};
use crate::framing::Limits;
use crate::headers::{Headers, Span};
use crate::message::{Message, Request, Response};
use crate::method::Method;
use crate::name::{lookup_known, HeaderName, OtherName};
use crate::status::StatusCode;

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
}

static TOKEN: [bool; 256] = token_table();

/// RFC 3261 §25.1 `token` characters.
#[inline]
pub(crate) fn is_token_char(c: u8) -> bool {
    TOKEN[c as usize]
}

fn err(kind: ParseErrorKind, offset: usize) -> ParseError {
    ParseError::new(kind, offset)
}

/// Finds the CRLF ending the line that starts at `from`; returns the index of its CR.
/// `Ok(None)` when no line end is present; a bare LF is an error.
fn line_end(buf: &[u8], from: usize) -> Result<Option<usize>, ParseError> {
    let rest = buf.get(from..).unwrap_or(&[]);
    match memchr::memchr(b'\n', rest) {
        None => Ok(None),
        Some(i) => {
            let lf = from + i;
            if i >= 1 && buf.get(lf - 1) == Some(&b'\r') {
                Ok(Some(lf - 1))
            } else {
                Err(err(ParseErrorKind::BadHeaderLine, lf))
            }
        }
    }
}

/// True when `v` is `SIP/` 1*DIGIT `.` 1*DIGIT (case-insensitive `SIP`).
pub(crate) fn is_sip_version(v: &[u8]) -> bool {
    let Some((prefix, rest)) = v.split_at_checked(4) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let mut parts = rest.splitn(2, |&c| c == b'.');
    let major = parts.next().unwrap_or(&[]);
    let minor = parts.next().unwrap_or(&[]);
    !major.is_empty()
        && !minor.is_empty()
        && major.iter().all(u8::is_ascii_digit)
        && minor.iter().all(u8::is_ascii_digit)
}

/// Parses the start line and headers of `buf`. Returns the message (empty body) and the
/// offset where the body starts.
pub(crate) fn parse_head(buf: &Bytes, limits: &Limits) -> Result<(Message, usize), ParseError> {
    let b: &[u8] = buf;
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let mut start = 0;
    while b.get(start..start + 2) == Some(b"\r\n") {
        start += 2;
    }
    let le =
        line_end(b, start)?.ok_or_else(|| err(ParseErrorKind::UnterminatedHeaders, b.len()))?;
    if le - start > limits.max_line_len {
        return Err(err(ParseErrorKind::LineTooLong, start));
    }
    let line = b.get(start..le).unwrap_or(&[]);
    let is_response = line.len() >= 5
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
        && line.get(4).is_some_and(u8::is_ascii_digit);
    // The start line first, so that its errors win over header errors.
    let mut msg = if is_response {
        Message::Response(parse_status_line(buf, start, le, Headers::new())?)
    } else {
        Message::Request(parse_request_line(buf, start, le, Headers::new())?)
    };
    let capacity = header_lines(b.get(le + 2..).unwrap_or(&[]), limits.max_headers);
    let (headers, body_start) = parse_headers(buf, le + 2, limits, capacity)?;
    *msg.headers_mut() = headers;
    Ok((msg, body_start))
}

/// How many lines the header block at the start of `rest` has (an upper bound of its
/// headers, folded lines counted apart), at most `max`: the header index is allocated
/// once at its size. A few hundred bytes of index fit the allocator's fast per-thread
/// cache; the fixed 24 entries it replaced (~2 KB) did not.
fn header_lines(rest: &[u8], max: usize) -> usize {
    let mut lines = 0usize;
    for lf in memchr::memchr_iter(b'\n', rest) {
        lines += 1;
        // The blank line that ends the header block.
        if lines >= max || rest.get(lf + 1..lf + 3) == Some(b"\r\n") {
            break;
        }
    }
    lines.clamp(1, max.max(1))
}

fn parse_request_line(
    buf: &Bytes,
    start: usize,
    end: usize,
    headers: Headers,
) -> Result<Request, ParseError> {
    let line = buf.get(start..end).unwrap_or(&[]);
    let mut lax = false;
    let sp1 = memchr::memchr(b' ', line).ok_or_else(|| err(ParseErrorKind::BadStartLine, start))?;
    let method = line.get(..sp1).unwrap_or(&[]);
    if method.is_empty() || !method.iter().all(|&c| is_token_char(c)) {
        return Err(err(ParseErrorKind::BadMethod, start));
    }
    let mut i = sp1;
    let skip_spaces = |i: &mut usize, lax: &mut bool| {
        let from = *i;
        while line.get(*i) == Some(&b' ') {
            *i += 1;
        }
        if *i - from > 1 {
            *lax = true;
        }
    };
    skip_spaces(&mut i, &mut lax);
    let uri_start = i;
    while line.get(i).is_some_and(|&c| c != b' ') {
        i += 1;
    }
    let uri_end = i;
    if uri_end == uri_start {
        return Err(err(ParseErrorKind::BadRequestUri, start + uri_start));
    }
    skip_spaces(&mut i, &mut lax);
    let v_start = i;
    while line.get(i).is_some_and(|&c| c != b' ') {
        i += 1;
    }
    let version = line.get(v_start..i).unwrap_or(&[]);
    if !is_sip_version(version) {
        return Err(err(ParseErrorKind::BadStartLine, start + v_start));
    }
    if i < line.len() {
        // Trailing spaces (RFC 4475 §3.1.2.10).
        if line.get(i..).is_some_and(|t| t.iter().all(|&c| c == b' ')) {
            lax = true;
        } else {
            return Err(err(ParseErrorKind::BadStartLine, start + i));
        }
    }
    let method =
        Method::known(method).unwrap_or_else(|| Method::Other(buf.slice(start..start + sp1)));
    Ok(Request {
        method,
        uri: buf.slice(start + uri_start..start + uri_end),
        version: buf.slice(start + v_start..start + i),
        lax_start_line: lax,
        headers,
        body: Bytes::new(),
    })
}

fn parse_status_line(
    buf: &Bytes,
    start: usize,
    end: usize,
    headers: Headers,
) -> Result<Response, ParseError> {
    let line = buf.get(start..end).unwrap_or(&[]);
    let sp = memchr::memchr(b' ', line).ok_or_else(|| err(ParseErrorKind::BadStartLine, start))?;
    let version = line.get(..sp).unwrap_or(&[]);
    if !is_sip_version(version) {
        return Err(err(ParseErrorKind::BadStartLine, start));
    }
    let rest = line.get(sp + 1..).unwrap_or(&[]);
    let code_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let after = rest.get(code_len).copied();
    if code_len != 3 || !(after.is_none() || after == Some(b' ')) {
        return Err(err(ParseErrorKind::BadStatusCode, start + sp + 1));
    }
    let code = rest
        .get(..3)
        .unwrap_or(&[])
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    if !(100..=699).contains(&code) {
        return Err(err(ParseErrorKind::BadStatusCode, start + sp + 1));
    }
    let reason_start = (start + sp + 1 + 4).min(end);
    Ok(Response {
        status: StatusCode(code),
        reason: buf.slice(reason_start..end),
        version: buf.slice(start..start + sp),
        headers,
        body: Bytes::new(),
    })
}

fn parse_headers(
    buf: &Bytes,
    mut pos: usize,
    limits: &Limits,
    capacity: usize,
) -> Result<(Headers, usize), ParseError> {
    let b: &[u8] = buf;
    let mut headers = Headers::with_buffer(buf.clone(), capacity);
    let mut count = 0usize;
    loop {
        let le =
            line_end(b, pos)?.ok_or_else(|| err(ParseErrorKind::UnterminatedHeaders, b.len()))?;
        if le == pos {
            return Ok((headers, le + 2));
        }
        if le - pos > limits.max_line_len {
            return Err(err(ParseErrorKind::LineTooLong, pos));
        }
        let line = b.get(pos..le).unwrap_or(&[]);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A continuation line with no header before it.
            return Err(err(ParseErrorKind::BadHeaderLine, pos));
        }
        let colon =
            memchr::memchr(b':', line).ok_or_else(|| err(ParseErrorKind::BadHeaderLine, pos))?;
        let mut name_end = colon;
        while name_end > 0 && matches!(line.get(name_end - 1), Some(b' ' | b'\t')) {
            name_end -= 1;
        }
        let name = line.get(..name_end).unwrap_or(&[]);
        if name.is_empty() || !name.iter().all(|&c| is_token_char(c)) {
            return Err(err(ParseErrorKind::BadHeaderLine, pos));
        }
        // Join folded continuation lines (RFC 3261 §7.3.1).
        let mut end = le;
        let mut next = le + 2;
        while matches!(b.get(next), Some(b' ' | b'\t')) {
            let le2 = line_end(b, next)?
                .ok_or_else(|| err(ParseErrorKind::UnterminatedHeaders, b.len()))?;
            if le2 - next > limits.max_line_len {
                return Err(err(ParseErrorKind::LineTooLong, next));
            }
            end = le2;
            next = le2 + 2;
        }
        let mut vs = pos + colon + 1;
        while vs < end && matches!(b.get(vs), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            vs += 1;
        }
        let mut ve = end;
        while ve > vs && matches!(b.get(ve - 1), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            ve -= 1;
        }
        count += 1;
        if count > limits.max_headers {
            return Err(err(ParseErrorKind::TooManyHeaders, pos));
        }
        let hname = match lookup_known(name) {
            Some(k) => k,
            None => HeaderName::Other(OtherName(buf.slice(pos..pos + name_end))),
        };
        headers.push_parsed(hname, Span::new(pos, end), Span::new(vs, ve));
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &'static [u8]) -> Result<(Message, usize), ParseError> {
        parse_head(&Bytes::from_static(s), &Limits::default())
    }

    #[test]
    fn request_line_and_folding() {
        let (m, body) = head(b"OPTIONS sip:a@b SIP/2.0\r\nVia : SIP/2.0/UDP\r\n  h;branch=z9hG4bKx\r\nX-A:\r\n\r\nbody").unwrap();
        let Message::Request(r) = m else { panic!() };
        assert_eq!(r.method(), &Method::Options);
        assert_eq!(r.uri_bytes(), b"sip:a@b");
        assert_eq!(
            r.headers().get(&HeaderName::Via),
            Some(&b"SIP/2.0/UDP\r\n  h;branch=z9hG4bKx"[..])
        );
        assert_eq!(
            r.headers().get(&HeaderName::from_static("x-a")),
            Some(&b""[..])
        );
        assert_eq!(body, 73);
    }

    #[test]
    fn the_index_is_sized_by_the_header_lines() {
        assert_eq!(header_lines(b"A: 1\r\nB: 2\r\n\r\nbody\nmore\n", 70), 2);
        assert_eq!(header_lines(b"\r\n", 70), 1);
        assert_eq!(header_lines(b"A: 1\r\n", 70), 1);
        assert_eq!(header_lines(b"A\r\nB\r\nC\r\nD\r\n\r\n", 3), 3);
        let (m, _) =
            head(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nl: 0\r\n\r\n").unwrap();
        assert_eq!(m.headers().len(), 2);
    }

    #[test]
    fn status_lines() {
        let (m, _) = head(b"SIP/2.0 100 \r\n\r\n").unwrap();
        let Message::Response(r) = m else { panic!() };
        assert_eq!(r.status(), StatusCode(100));
        assert_eq!(r.reason(), b"");
        assert!(head(b"SIP/2.0 4294967301 Huge\r\n\r\n").is_err());
        assert!(head(b"SIP/2.0 099 Low\r\n\r\n").is_err());
    }

    #[test]
    fn bad_lines() {
        assert_eq!(
            head(b"INVITE sip:a@b\r\n\r\n").unwrap_err().kind,
            ParseErrorKind::BadStartLine
        );
        assert_eq!(
            head(b"INVITE sip:a@b SIP/2.0\r\nFoo bar\r\n\r\n")
                .unwrap_err()
                .kind,
            ParseErrorKind::BadHeaderLine
        );
        assert_eq!(
            head(b"INVITE sip:a@b SIP/2.0\r\nl: 0\r\n")
                .unwrap_err()
                .kind,
            ParseErrorKind::UnterminatedHeaders
        );
        let (m, _) = head(b"INVITE  sip:a@b  SIP/2.0 \r\n\r\n").unwrap();
        assert!(matches!(m, Message::Request(ref r) if r.lax_start_line));
    }
}
