//! What one WebSocket message carries (RFC 7118 §5): exactly one SIP message, a CRLF
//! keep-alive, or something that is not SIP. Pure functions, no I/O.
//!
//! The WebSocket frames the messages, so `Content-Length` is optional (RFC 7118 §5.2;
//! JsSIP leaves it out of responses without a body). When it is present it must match: a WebSocket message holds
//! one SIP message, never part of one nor one and a half. What is not a SIP message is
//! dropped and counted by the caller, the connection stays.

use mss_sip::framing::{Framed, Framer, FramingError, Limits};

/// What a WebSocket data message (text or binary) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// Only CR and LF bytes (or nothing): keep-alives (RFC 5626 §3.5.1). Each double
    /// CRLF is a ping to answer with one CRLF.
    KeepAlive {
        /// Pongs to send.
        pongs: usize,
    },
    /// One SIP message, from byte `start` (after leading CRLFs) to the end.
    Message {
        /// Where the message starts.
        start: usize,
    },
    /// Not a SIP message: drop it.
    NotSip(NotSip),
}

/// Why a WebSocket message is not one SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotSip {
    /// The first line is not a SIP request or status line.
    StartLine,
    /// No empty line ends the header block.
    NoEndOfHead,
    /// `Content-Length` says more or less than the body the message carries.
    ContentLength,
    /// The header block cannot be read (too long a line, too many headers, a
    /// malformed or repeated `Content-Length`).
    Framing(FramingError),
}

impl std::fmt::Display for NotSip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotSip::StartLine => f.write_str("no SIP start line"),
            NotSip::NoEndOfHead => f.write_str("no end of the header block"),
            NotSip::ContentLength => f.write_str("Content-Length does not match the body"),
            NotSip::Framing(e) => e.fmt(f),
        }
    }
}

/// Says what `data`, one whole WebSocket message, holds.
pub(crate) fn classify(data: &[u8], limits: &Limits) -> Payload {
    let start = data
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if start == data.len() {
        let lines = data.iter().filter(|&&b| b == b'\n').count();
        return Payload::KeepAlive { pongs: lines / 2 };
    }
    let message = data.get(start..).unwrap_or(&[]);
    if !is_start_line(message) {
        return Payload::NotSip(NotSip::StartLine);
    }
    match Framer::new().poll(message, limits) {
        Ok(Framed::Message(n)) if n == message.len() => Payload::Message { start },
        Ok(Framed::Message(_)) => Payload::NotSip(NotSip::ContentLength),
        Ok(Framed::Incomplete | Framed::KeepAlive(_)) => {
            if head_complete(message) {
                Payload::NotSip(NotSip::ContentLength)
            } else {
                Payload::NotSip(NotSip::NoEndOfHead)
            }
        }
        // Allowed over WebSocket: the message is the whole frame.
        Err(FramingError::MissingContentLength) => Payload::Message { start },
        Err(e) => Payload::NotSip(NotSip::Framing(e)),
    }
}

/// Whether the head of `message` is complete (an empty line follows the start line).
fn head_complete(message: &[u8]) -> bool {
    message.windows(4).any(|w| w == b"\r\n\r\n") || message.windows(2).any(|w| w == b"\n\n")
}

/// Whether `message` begins with a SIP start line: `SIP/x.y CODE …` (a response) or
/// `METHOD URI SIP/x.y` (a request), ended by a line end. The version itself is the
/// core's to judge (`505`).
fn is_start_line(message: &[u8]) -> bool {
    let end = message
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(message.len());
    let Some(line) = message.get(..end) else {
        return false;
    };
    if end == message.len() {
        return false;
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.starts_with(b"SIP/") {
        return true;
    }
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or(&[]);
    let uri = parts.next().unwrap_or(&[]);
    let version = parts.next().unwrap_or(&[]);
    !method.is_empty()
        && method.iter().all(u8::is_ascii_graphic)
        && !uri.is_empty()
        && version.starts_with(b"SIP/")
        && parts.next().is_none()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A REGISTER shaped like JsSIP's, without Content-Length (allowed over WebSocket).
    const JSSIP: &str = "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/WSS 7b4qkmv6ckg0.invalid;branch=z9hG4bK1\r\nMax-Forwards: 69\r\nTo: <sip:101@pbx.test>\r\nFrom: <sip:101@pbx.test>;tag=a\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:x@7b4qkmv6ckg0.invalid;transport=ws>;expires=600\r\nExpires: 600\r\n\r\n";

    fn classify_text(text: &str) -> Payload {
        classify(text.as_bytes(), &Limits::default())
    }

    #[test]
    fn a_message_without_content_length_is_the_whole_frame() {
        assert_eq!(classify_text(JSSIP), Payload::Message { start: 0 });
        let with_body = "MESSAGE sip:102@pbx.test SIP/2.0\r\nVia: SIP/2.0/WS h.invalid;branch=z9hG4bK2\r\nContent-Type: text/plain\r\n\r\nhello";
        assert_eq!(classify_text(with_body), Payload::Message { start: 0 });
    }

    #[test]
    fn content_length_must_match_the_body() {
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/WS h.invalid;branch=z9hG4bK3\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(classify_text(ok), Payload::Message { start: 0 });
        let short = ok.replace("Length: 5", "Length: 9");
        assert_eq!(
            classify_text(&short),
            Payload::NotSip(NotSip::ContentLength)
        );
        let long = ok.replace("Length: 5", "Length: 2");
        assert_eq!(classify_text(&long), Payload::NotSip(NotSip::ContentLength));
        let bad = ok.replace("Length: 5", "Length: five");
        assert!(matches!(
            classify_text(&bad),
            Payload::NotSip(NotSip::Framing(FramingError::BadContentLength { .. }))
        ));
        // Two messages in one frame.
        let two = format!("{ok}{ok}");
        assert_eq!(classify_text(&two), Payload::NotSip(NotSip::ContentLength));
    }

    #[test]
    fn crlf_frames_are_keep_alives() {
        assert_eq!(classify_text("\r\n\r\n"), Payload::KeepAlive { pongs: 1 });
        assert_eq!(classify_text("\r\n"), Payload::KeepAlive { pongs: 0 });
        assert_eq!(classify_text(""), Payload::KeepAlive { pongs: 0 });
        // Leading CRLFs before a message are skipped.
        let text = format!("\r\n{JSSIP}");
        assert_eq!(classify_text(&text), Payload::Message { start: 2 });
    }

    #[test]
    fn what_is_not_sip_is_named() {
        assert_eq!(
            classify_text("{\"type\":\"hello\"}"),
            Payload::NotSip(NotSip::StartLine)
        );
        assert_eq!(
            classify_text("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Payload::NotSip(NotSip::StartLine)
        );
        assert_eq!(
            classify(&[0xff, 0x00, 0x13, b'\n'], &Limits::default()),
            Payload::NotSip(NotSip::StartLine)
        );
        assert_eq!(
            classify_text("OPTIONS sip:pbx.test SIP/2.0"),
            Payload::NotSip(NotSip::StartLine)
        );
        assert_eq!(
            classify_text("OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/WS h;branch=z9hG4bK4\r\n"),
            Payload::NotSip(NotSip::NoEndOfHead)
        );
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        assert!(matches!(
            classify(JSSIP.as_bytes(), &limits),
            Payload::NotSip(NotSip::Framing(FramingError::TooManyHeaders { .. }))
        ));
        assert_eq!(NotSip::StartLine.to_string(), "no SIP start line");
    }

    #[test]
    fn other_versions_pass_for_the_core_to_answer() {
        let text = JSSIP.replace("pbx.test SIP/2.0", "pbx.test SIP/3.0");
        assert_eq!(classify_text(&text), Payload::Message { start: 0 });
    }
}
