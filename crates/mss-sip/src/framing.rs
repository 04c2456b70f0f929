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
/// with [`parse_datagram`]. [`Framer`] does the same without rescanning bytes it has
/// already seen.
///
/// # Errors
/// A [`FramingError`] when the stream can never be framed; the caller closes it.
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Framed, FramingError> {
    Framer::new().poll(buf, limits)
}

/// Incremental [`frame`]: remembers how far it has scanned the header block, so that a
/// message arriving in many small reads is scanned once.
///
/// Give [`Framer::poll`] the same buffer, only ever appended to, until it returns
/// [`Framed::Message`] or [`Framed::KeepAlive`]; the caller then removes those bytes from
/// the front and the framer starts over on what follows.
#[derive(Debug, Clone, Default)]
pub struct Framer {
    /// Offset of the first line not scanned yet.
    pos: usize,
    /// True once the start line has been scanned.
    start_line_done: bool,
    /// Header lines counted so far.
    headers: usize,
    /// Content-Length seen so far.
    content_length: Option<usize>,
    /// Length of the head (through the empty line) once found.
    head_len: Option<usize>,
}

impl Framer {
    /// A framer at the start of a message.
    pub fn new() -> Framer {
        Framer::default()
    }

    fn done(&mut self, framed: Framed) -> Result<Framed, FramingError> {
        *self = Framer::default();
        Ok(framed)
    }

    /// Frames the start of `buf`; see [`frame`].
    ///
    /// # Errors
    /// A [`FramingError`] when the stream can never be framed; the caller closes it.
    pub fn poll(&mut self, buf: &[u8], limits: &Limits) -> Result<Framed, FramingError> {
        if let Some(head_len) = self.head_len {
            let total = head_len.saturating_add(self.content_length.unwrap_or(0));
            return if buf.len() >= total {
                self.done(Framed::Message(total))
            } else {
                Ok(Framed::Incomplete)
            };
        }
        if self.pos == 0 {
            let ka = buf
                .iter()
                .take_while(|&&c| c == b'\r' || c == b'\n')
                .count();
            if ka > 0 {
                return self.done(Framed::KeepAlive(ka));
            }
        }
        loop {
            let rest = buf.get(self.pos..).unwrap_or(&[]);
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                if rest.len() > limits.max_line_len {
                    return Err(FramingError::LineTooLong {
                        limit: limits.max_line_len,
                        offset: self.pos,
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
                    offset: self.pos,
                });
            }
            let line_start = self.pos;
            self.pos += lf + 1;
            if self.pos > limits.max_message_len {
                return Err(FramingError::MessageTooLarge {
                    limit: limits.max_message_len,
                });
            }
            if !self.start_line_done {
                self.start_line_done = true;
                continue;
            }
            if line.is_empty() {
                let cl = self
                    .content_length
                    .ok_or(FramingError::MissingContentLength)?;
                let total = self.pos.saturating_add(cl);
                if total > limits.max_message_len {
                    return Err(FramingError::MessageTooLarge {
                        limit: limits.max_message_len,
                    });
                }
                self.head_len = Some(self.pos);
                return self.poll(buf, limits);
            }
            if matches!(line.first(), Some(b' ' | b'\t')) {
                continue; // folded continuation line
            }
            self.headers += 1;
            if self.headers > limits.max_headers {
                return Err(FramingError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            // Only a line starting with C or L can be Content-Length (or its compact
            // form): the others are counted, not searched for their colon.
            if !matches!(line.first(), Some(b'C' | b'c' | b'L' | b'l')) {
                continue;
            }
            if let Some(colon) = memchr::memchr(b':', line) {
                let name = crate::headers::trim_lws(line.get(..colon).unwrap_or(&[]));
                if is_content_length_name(name) {
                    if self.content_length.is_some() {
                        return Err(FramingError::ConflictingContentLength);
                    }
                    let value = line.get(colon + 1..).unwrap_or(&[]);
                    if crate::headers::top_level_comma(value).is_some() {
                        return Err(FramingError::ConflictingContentLength);
                    }
                    self.content_length = Some(
                        parse_content_length(value)
                            .ok_or(FramingError::BadContentLength { offset: line_start })?,
                    );
                }
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
    fn incremental_framer_matches_frame() {
        let l = Limits::default();
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        let mut f = Framer::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        for &b in &stream {
            buf.push(b);
            loop {
                match f.poll(&buf, &l).unwrap() {
                    Framed::Incomplete => break,
                    Framed::KeepAlive(n) => {
                        buf.drain(..n);
                        got.push(0);
                    }
                    Framed::Message(n) => {
                        assert_eq!(&buf[..n], MSG);
                        buf.drain(..n);
                        got.push(n);
                    }
                }
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got.iter().filter(|&&n| n == MSG.len()).count(), 2);
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
