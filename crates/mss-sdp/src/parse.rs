//! Parsing a body into a [`SessionDescription`]: strict on what a B2BUA must understand
//! (`v=`, `o=`, `s=`, `c=`, `m=`, `a=rtcp:`, direction attributes), every other line kept
//! as it is without being read.

use bytes::Bytes;

use crate::connection::Connection;
use crate::description::SessionDescription;
use crate::direction::Direction;
use crate::error::{LineProblem, SdpError};
use crate::line::{split_lines, Line, LineEnding, Terminator};
use crate::media::Media;
use crate::origin::OriginSpans;
use crate::rtcp::Rtcp;
use crate::section::Section;

/// Bounds on the work one body can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest body, in bytes.
    pub max_body_len: usize,
    /// Most media sections (`m=` lines).
    pub max_media: usize,
    /// Most lines, blank ones included (each costs an entry in the line index).
    pub max_lines: usize,
}

impl Default for Limits {
    /// 64 KiB, 64 media sections and 4096 lines: far beyond any real call, small enough
    /// to bound the work and memory one body costs.
    fn default() -> Limits {
        Limits {
            max_body_len: 64 * 1024,
            max_media: 64,
            max_lines: 4096,
        }
    }
}

impl SessionDescription {
    /// Parses a body with the default [`Limits`]. Lines are slices of `body`; nothing is
    /// copied.
    pub fn parse(body: Bytes) -> Result<SessionDescription, SdpError> {
        SessionDescription::parse_with(body, &Limits::default())
    }

    /// Parses a borrowed body with the default [`Limits`], copying it once (after the
    /// length check).
    pub fn parse_slice(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let limits = Limits::default();
        check_len(body.len(), &limits)?;
        SessionDescription::parse_with(Bytes::copy_from_slice(body), &limits)
    }

    /// Parses a body within `limits`.
    ///
    /// The first line must be `v=0`, the second `o=`, and the session part must have one
    /// `s=`; at least one `m=` must follow. `c=`, `m=` and `a=rtcp:` are checked field by
    /// field (network type `IN`, address type `IP4`/`IP6` matching the address, ports in
    /// range), a section may have one `c=`, one `a=rtcp:` and one direction. Blank lines
    /// and lines of any other type are kept without being read. CRLF and bare LF line
    /// ends are both accepted (RFC 8866 §5), a NUL byte or a lone CR inside a line is not.
    pub fn parse_with(body: Bytes, limits: &Limits) -> Result<SessionDescription, SdpError> {
        check_len(body.len(), limits)?;
        let mut lines = split_lines(&body).zip(1..);
        let version = match lines.next() {
            Some((line, _)) if line.text == b"v=0".as_slice() => line,
            _ => return Err(SdpError::NotSdp),
        };
        let ending = match version.end {
            Terminator::Ending(ending) => ending,
            Terminator::EndOfBody => LineEnding::CrLf,
        };
        let (origin, origin_spans) = match lines.next() {
            Some((line, number)) => {
                let spans = read_origin(&line).map_err(at(number))?;
                (line, spans)
            }
            None => return Err(at(2)(LineProblem::ExpectedOrigin)),
        };

        let mut session = Section::new(ending);
        let mut media: Vec<Media> = Vec::new();
        let mut checks = SectionChecks::default();
        let mut session_names = 0;
        for (line, number) in lines {
            if number > limits.max_lines {
                return Err(SdpError::TooManyLines {
                    max: limits.max_lines,
                });
            }
            check_syntax(&line).map_err(at(number))?;
            if line.is(b'm') {
                if media.len() >= limits.max_media {
                    return Err(SdpError::TooManyMedia {
                        max: limits.max_media,
                    });
                }
                media.push(Media::parse(line, Section::new(ending)).map_err(at(number))?);
                checks = SectionChecks::default();
                continue;
            }
            let in_media = !media.is_empty();
            checks.check(&line, in_media).map_err(at(number))?;
            if !in_media && line.is(b's') {
                session_names += 1;
                if session_names > 1 {
                    return Err(at(number)(LineProblem::Duplicate { line_type: "s=" }));
                }
            }
            match media.last_mut() {
                Some(m) => m.section.lines.push(line),
                None => session.lines.push(line),
            }
        }
        if session_names == 0 {
            return Err(SdpError::NoSessionName);
        }
        if media.is_empty() {
            return Err(SdpError::NoMedia);
        }
        Ok(SessionDescription {
            body,
            version,
            origin,
            origin_spans,
            session,
            media,
        })
    }
}

fn check_len(len: usize, limits: &Limits) -> Result<(), SdpError> {
    if len > limits.max_body_len {
        return Err(SdpError::TooLarge {
            len,
            max: limits.max_body_len,
        });
    }
    Ok(())
}

/// Turns a line's problem into an error naming the line.
fn at(line: usize) -> impl Fn(LineProblem) -> SdpError {
    move |problem| SdpError::Line { line, problem }
}

/// The second line: `o=` with its six fields.
fn read_origin(line: &Line) -> Result<OriginSpans, LineProblem> {
    if !line.is(b'o') {
        return Err(LineProblem::ExpectedOrigin);
    }
    check_syntax(line)?;
    let text =
        std::str::from_utf8(&line.text).map_err(|_| LineProblem::NotUtf8 { line_type: "o=" })?;
    OriginSpans::parse(text)
}

/// Every line is blank or `<letter>=<value>`, without NUL or a lone CR.
fn check_syntax(line: &Line) -> Result<(), LineProblem> {
    if memchr::memchr2(b'\0', b'\r', &line.text).is_some() {
        return Err(LineProblem::ControlCharacter);
    }
    if line.is_blank() || line.kind().is_some_and(|k| k.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(LineProblem::NotTypeValue)
    }
}

/// What one section has shown so far, to refuse a second `c=`, a second `a=rtcp:` or a
/// contradicting direction.
#[derive(Default)]
struct SectionChecks {
    connection: bool,
    rtcp: bool,
    direction: Option<Direction>,
}

impl SectionChecks {
    fn check(&mut self, line: &Line, in_media: bool) -> Result<(), LineProblem> {
        match line.kind() {
            Some(b'v') => Err(LineProblem::Duplicate { line_type: "v=" }),
            Some(b'o') => Err(LineProblem::Duplicate { line_type: "o=" }),
            Some(b'c') => {
                if self.connection {
                    return Err(LineProblem::Duplicate { line_type: "c=" });
                }
                self.connection = true;
                let value = line
                    .value_str()
                    .ok_or(LineProblem::NotUtf8 { line_type: "c=" })?;
                Connection::parse(value, "c=").map(|_| ())
            }
            Some(b'a') if in_media && is_rtcp(line) => {
                if self.rtcp {
                    return Err(LineProblem::Duplicate {
                        line_type: "a=rtcp:",
                    });
                }
                self.rtcp = true;
                let (_, value) = line.attribute().ok_or(LineProblem::NotUtf8 {
                    line_type: "a=rtcp:",
                })?;
                Rtcp::parse(value.unwrap_or("")).map(|_| ())
            }
            Some(b'a') => {
                if let Some(second) = line.direction() {
                    match self.direction {
                        Some(first) if first != second => {
                            return Err(LineProblem::ConflictingDirection { first, second });
                        }
                        _ => self.direction = Some(second),
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Whether an `a=` line is `a=rtcp` or `a=rtcp:...`, looking at bytes (so a value that
/// is not UTF-8 is still recognised, and refused).
fn is_rtcp(line: &Line) -> bool {
    let name = line.text.get(2..).unwrap_or_default();
    let name = name.split(|b| *b == b':').next().unwrap_or_default();
    name.eq_ignore_ascii_case(b"rtcp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SdpError;

    const MINIMAL: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        SessionDescription::parse_slice(text.as_bytes())
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_description() {
        let sdp = parse(MINIMAL).unwrap();
        assert_eq!(sdp.media().len(), 1);
        assert_eq!(sdp.line_ending(), LineEnding::CrLf);
    }

    #[test]
    fn the_first_lines_must_be_v_o_s() {
        assert_eq!(error(""), "not SDP: missing v=0");
        assert_eq!(error("v=1\r\n"), "not SDP: missing v=0");
        assert_eq!(error("INVITE sip:a@b SIP/2.0\r\n"), "not SDP: missing v=0");
        assert_eq!(error("v=0\r\n"), "SDP line 2: expected o= after v=");
        assert_eq!(error("v=0\r\ns=-\r\n"), "SDP line 2: expected o= after v=");
        assert_eq!(
            error("v=0\r\no=- 1 1 IN IP4\r\n"),
            "SDP line 2: o= has 5 fields, needs 6"
        );
        assert_eq!(
            error("v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n"),
            "no s= line"
        );
        assert_eq!(
            error("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\ns=x\r\n"),
            "SDP line 4: second s= line in the same section"
        );
        assert_eq!(
            error("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nv=0\r\n"),
            "SDP line 4: second v= line in the same section"
        );
    }

    #[test]
    fn media_is_required_and_bounded() {
        assert_eq!(
            error("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n"),
            "no m= line"
        );
        let mut many = String::from("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n");
        for _ in 0..65 {
            many.push_str("m=audio 0 RTP/AVP 0\r\n");
        }
        assert_eq!(error(&many), "more than 64 m= lines");
        let limits = Limits {
            max_media: 100,
            ..Limits::default()
        };
        assert!(SessionDescription::parse_with(Bytes::from(many), &limits).is_ok());
    }

    #[test]
    fn line_count_is_bounded() {
        // MINIMAL has 6 lines.
        let blank_lines = format!("{MINIMAL}{}", "\r\n".repeat(4091));
        assert_eq!(error(&blank_lines), "more than 4096 lines");
        assert!(parse(&format!("{MINIMAL}{}", "\r\n".repeat(4090))).is_ok());
    }

    #[test]
    fn body_size_is_bounded() {
        let big = format!("{MINIMAL}a={}\r\n", "x".repeat(64 * 1024));
        assert!(matches!(parse(&big), Err(SdpError::TooLarge { .. })));
        assert!(matches!(
            SessionDescription::parse(Bytes::from(big)),
            Err(SdpError::TooLarge { .. })
        ));
    }

    #[test]
    fn line_syntax_is_checked() {
        assert_eq!(
            error(&format!("{MINIMAL}garbage\r\n")),
            "SDP line 7: not of the form <type>=<value>"
        );
        assert_eq!(
            error(&format!("{MINIMAL}==x\r\n")),
            "SDP line 7: not of the form <type>=<value>"
        );
        assert_eq!(
            error(&format!("{MINIMAL}a=x\0y\r\n")),
            "SDP line 7: NUL or carriage return inside the line"
        );
        assert_eq!(
            error(&format!("{MINIMAL}a=x\ry\r\n")),
            "SDP line 7: NUL or carriage return inside the line"
        );
        // Blank lines and unknown types are kept.
        assert!(parse(&format!("{MINIMAL}\r\nx=unknown\r\n \r\n")).is_ok());
    }

    #[test]
    fn connection_lines_are_checked() {
        let with =
            |c: &str| format!("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n{c}\r\nm=audio 1 RTP/AVP 0\r\n");
        assert_eq!(
            error(&with("c=IN IP4 999.1.1.1")),
            "SDP line 4: c= address 999.1.1.1 is not an IP address or host name"
        );
        assert_eq!(
            error(&with("c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2")),
            "SDP line 5: second c= line in the same section"
        );
        assert_eq!(
            error(&format!("{MINIMAL}c=IN IP7 192.0.2.1\r\n")),
            "SDP line 7: c= address type IP7 is neither IP4 nor IP6"
        );
        // One c= in the session and one per media section is fine.
        assert!(parse(&format!("{MINIMAL}c=IN IP4 192.0.2.2\r\n")).is_ok());
    }

    #[test]
    fn media_lines_are_checked() {
        let m = |line: &str| format!("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n{line}\r\n");
        assert_eq!(error(&m("m=audio")), "SDP line 4: m= has no port");
        assert_eq!(
            error(&m("m=audio 99999 RTP/AVP 0")),
            "SDP line 4: m= port 99999 out of range"
        );
    }

    #[test]
    fn rtcp_and_direction_are_checked() {
        assert_eq!(
            error(&format!("{MINIMAL}a=rtcp:70000\r\n")),
            "SDP line 7: a=rtcp: port 70000 out of range"
        );
        assert_eq!(
            error(&format!("{MINIMAL}a=rtcp\r\n")),
            "SDP line 7: a=rtcp: has 0 fields, needs 1 or 4"
        );
        assert_eq!(
            error(&format!("{MINIMAL}a=rtcp:4001\r\na=RTCP:4003\r\n")),
            "SDP line 8: second a=rtcp: line in the same section"
        );
        assert_eq!(
            error(&format!("{MINIMAL}a=sendonly\r\na=recvonly\r\n")),
            "SDP line 8: a=recvonly after a=sendonly in the same section"
        );
        // The same direction twice is harmless; session and media may differ.
        assert!(parse(&format!("{MINIMAL}a=sendonly\r\na=sendonly\r\n")).is_ok());
        let session_direction = MINIMAL.replace("t=0 0\r\n", "t=0 0\r\na=sendrecv\r\n");
        assert!(parse(&format!("{session_direction}a=inactive\r\n")).is_ok());
        // a=rtcp: must not be at session level (RFC 3605 §2.1); there it is kept unread.
        let session_rtcp = MINIMAL.replace("t=0 0\r\n", "t=0 0\r\na=rtcp:x\r\n");
        assert!(parse(&session_rtcp).is_ok());
    }

    #[test]
    fn rtcp_that_is_not_utf8_is_refused() {
        let mut body = MINIMAL.as_bytes().to_vec();
        body.extend_from_slice(b"a=rtcp:\xff\r\n");
        assert_eq!(
            SessionDescription::parse_slice(&body)
                .unwrap_err()
                .to_string(),
            "SDP line 7: a=rtcp: is not UTF-8"
        );
        // Other lines may hold any bytes (a=charset, RFC 8866 §6.10).
        let mut body = MINIMAL.as_bytes().to_vec();
        body.extend_from_slice(b"i=caf\xe9\r\n");
        assert!(SessionDescription::parse_slice(&body).is_ok());
    }

    #[test]
    fn line_ending_comes_from_the_first_line() {
        let lf = MINIMAL.replace("\r\n", "\n");
        assert_eq!(parse(&lf).unwrap().line_ending(), LineEnding::Lf);
    }
}
