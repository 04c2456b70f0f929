//! Message framing (RFC 3261 §7.5, §18.3): where a message ends in a UDP datagram or in
//! a TCP byte stream. Pure functions, no I/O.

use bytes::Bytes;

use crate::error::{ParseError, ParseErrorKind};
use crate::message::Message;
use crate::name::HeaderName;
use crate::parse::parse_head;

/// Size limits applied while framing and parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line, headers and body), in bytes.
    pub max_message_len: usize,
    /// Most header lines (folded lines count once).
    pub max_headers: usize,
    /// Longest single line, in bytes.
    pub max_line_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_len: 64 * 1024,
            max_headers: 256,
            max_line_len: 16 * 1024,
        }
    }
}

/// What [`frame`] found at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// More bytes are needed before anything can be taken.
    Incomplete,
    /// A whole message of this many bytes is at the start of the buffer.
    Message(usize),
    /// This many bytes of CRLF keep-alive (RFC 5626 §3.5.1) come first: skip them.
    KeepAlive(usize),
}

/// A stream cannot be framed; the connection should be closed (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The message (or its header block so far) is larger than the limit.
    #[error("message larger than {limit} bytes")]
    MessageTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A message on a stream has no Content-Length (required on streams, RFC 3261 §18.3).
    #[error("missing Content-Length on a stream")]
    MissingContentLength,
    /// Content-Length is not a non-negative decimal number.
    #[error("malformed Content-Length at offset {offset}")]
    BadContentLength {
        /// Offset of the bad header line.
        offset: usize,
    },
    /// Several Content-Length headers or values.
    #[error("several Content-Length values")]
    ConflictingContentLength,
    /// More header lines than the limit.
    #[error("more than {limit} header lines")]
    TooManyHeaders {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A line longer than the limit.
    #[error("line longer than {limit} bytes at offset {offset}")]
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
        /// Offset of the line.
        offset: usize,
    },
}

/// Parses a Content-Length value: decimal digits only (leading/trailing whitespace
/// allowed), at most 10 digits. `None` for anything else (`-999`, `1,2`, empty).
pub fn parse_content_length(v: &[u8]) -> Option<usize> {
    let v = crate::headers::trim_lws(v);
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

fn is_content_length_name(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")
}

/// Looks at the start of a stream buffer (TCP, TLS) and says whether a whole message is
/// there (RFC 3261 §18.3: Content-Length is required on streams).
///
/// Leading CR/LF bytes are keep-alives ([`Framed::KeepAlive`]); the caller drops them and
/// calls again. After [`Framed::Message`]`(n)` the caller takes `n` bytes and parses them
/// with [`parse_datagram`].
///
/// # Errors
/// A [`FramingError`] when the stream can never be framed; the caller closes it.
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Framed, FramingError> {
    let ka = buf
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    if ka > 0 {
        return Ok(Framed::KeepAlive(ka));
    }
    let mut pos = 0usize;
    let mut headers = 0usize;
    let mut content_length: Option<usize> = None;
    let mut first = true;
    loop {
        let rest = buf.get(pos..).unwrap_or(&[]);
        let Some(lf) = memchr::memchr(b'\n', rest) else {
            if rest.len() > limits.max_line_len {
                return Err(FramingError::LineTooLong {
                    limit: limits.max_line_len,
                    offset: pos,
                });
            }
            if buf.len() > limits.max_message_len {
                return Err(FramingError::MessageTooLarge {
                    limit: limits.max_message_len,
                });
            }
            return Ok(Framed::Incomplete);
        };
        let line = rest.get(..lf).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > limits.max_line_len {
            return Err(FramingError::LineTooLong {
                limit: limits.max_line_len,
                offset: pos,
            });
        }
        let line_start = pos;
        pos += lf + 1;
        if pos > limits.max_message_len {
            return Err(FramingError::MessageTooLarge {
                limit: limits.max_message_len,
            });
        }
        if first {
            first = false;
            continue;
        }
        if line.is_empty() {
            let cl = content_length.ok_or(FramingError::MissingContentLength)?;
            let total = pos.saturating_add(cl);
            if total > limits.max_message_len {
                return Err(FramingError::MessageTooLarge {
                    limit: limits.max_message_len,
                });
            }
            return Ok(if buf.len() >= total {
                Framed::Message(total)
            } else {
                Framed::Incomplete
            });
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue; // folded continuation line
        }
        headers += 1;
        if headers > limits.max_headers {
            return Err(FramingError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = crate::headers::trim_lws(line.get(..colon).unwrap_or(&[]));
            if is_content_length_name(name) {
                if content_length.is_some() {
                    return Err(FramingError::ConflictingContentLength);
                }
                let value = line.get(colon + 1..).unwrap_or(&[]);
                if crate::headers::top_level_comma(value).is_some() {
                    return Err(FramingError::ConflictingContentLength);
                }
                content_length = Some(
                    parse_content_length(value)
                        .ok_or(FramingError::BadContentLength { offset: line_start })?,
                );
            }
        }
    }
}

/// Parses one UDP datagram as one message (RFC 3261 §18.3), with default [`Limits`].
///
/// The body is Content-Length bytes; bytes after it are ignored. Without Content-Length
/// the body is the rest of the datagram (allowed over UDP). A Content-Length larger than
/// what arrived is `ContentLengthExceedsMessage`.
///
/// Also parses a message cut out of a stream by [`frame`].
///
/// # Errors
/// A [`ParseError`] when the start line, a header line or Content-Length is malformed.
/// Header values are not checked here: see [`crate::validate_core`].
pub fn parse_datagram(buf: Bytes) -> Result<Message, ParseError> {
    parse_datagram_with(buf, &Limits::default())
}

/// [`parse_datagram`] with explicit limits.
///
/// # Errors
/// As [`parse_datagram`], plus the limit errors.
pub fn parse_datagram_with(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    if buf.len() > limits.max_message_len {
        return Err(ParseError::new(
            ParseErrorKind::MessageTooLarge,
            limits.max_message_len,
        ));
    }
    let (mut msg, body_start) = parse_head(&buf, limits)?;
    let available = buf.len().saturating_sub(body_start);
    let mut cl: Option<usize> = None;
    for v in msg.headers().get_all(&HeaderName::ContentLength) {
        let conflict = || {
            ParseError::in_header(
                ParseErrorKind::ConflictingContentLength,
                HeaderName::ContentLength,
                0,
            )
        };
        if cl.is_some() || crate::headers::top_level_comma(v).is_some() {
            return Err(conflict());
        }
        cl = Some(parse_content_length(v).ok_or_else(|| {
            ParseError::in_header(
                ParseErrorKind::BadContentLength,
                HeaderName::ContentLength,
                0,
            )
        })?);
    }
    let body_len = match cl {
        Some(n) if n > available => {
            return Err(ParseError::in_header(
                ParseErrorKind::ContentLengthExceedsMessage,
                HeaderName::ContentLength,
                body_start,
            ))
        }
        Some(n) => n,
        None => available,
    };
    let body = buf.slice(body_start..body_start + body_len);
    match &mut msg {
        Message::Request(r) => r.body = body,
        Message::Response(r) => r.body = body,
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    #[test]
    fn stream_framing() {
        let l = Limits::default();
        assert_eq!(frame(b"", &l), Ok(Framed::Incomplete));
        assert_eq!(frame(b"\r\n\r\nINV", &l), Ok(Framed::KeepAlive(4)));
        assert_eq!(frame(&MSG[..30], &l), Ok(Framed::Incomplete));
        assert_eq!(frame(&MSG[..MSG.len() - 1], &l), Ok(Framed::Incomplete));
        assert_eq!(frame(MSG, &l), Ok(Framed::Message(MSG.len())));
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(frame(&two, &l), Ok(Framed::Message(MSG.len())));
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\n\r\n", &l),
            Err(FramingError::MissingContentLength)
        );
        assert_eq!(
            frame(
                b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\n",
                &l
            ),
            Err(FramingError::ConflictingContentLength)
        );
        assert!(matches!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nl: -999\r\n\r\n", &l),
            Err(FramingError::BadContentLength { .. })
        ));
        let small = Limits {
            max_message_len: 40,
            ..l
        };
        assert!(matches!(
            frame(MSG, &small),
            Err(FramingError::MessageTooLarge { .. })
        ));
        let big = vec![b'a'; 70_000];
        assert!(frame(&big, &l).is_err());
    }

    #[test]
    fn datagram_bodies() {
        let m = parse_datagram(Bytes::from_static(MSG)).unwrap();
        assert_eq!(&m.body()[..], b"hello");
        let mut extra = MSG.to_vec();
        extra.extend_from_slice(b"garbage");
        let m = parse_datagram(Bytes::from(extra)).unwrap();
        assert_eq!(&m.body()[..], b"hello");
        let m = parse_datagram(Bytes::from_static(b"OPTIONS sip:a SIP/2.0\r\n\r\nrest")).unwrap();
        assert_eq!(&m.body()[..], b"rest");
        let e = parse_datagram(Bytes::from_static(
            b"OPTIONS sip:a SIP/2.0\r\nl: 9\r\n\r\nrest",
        ))
        .unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::ContentLengthExceedsMessage);
        assert_eq!(e.reason_phrase(), "Content-Length Exceeds Message");
        assert_eq!(parse_content_length(b" 12 "), Some(12));
        assert_eq!(parse_content_length(b"99999999999"), None);
    }
}
