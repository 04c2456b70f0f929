//! Why a session description cannot be used. Every error reads as the text of the SIP
//! Warning (RFC 3261 §20.43) that goes with the `488 Not Acceptable Here` refusing it.

use std::fmt::Write as _;

use crate::direction::Direction;

/// The status code a SIP server answers an offer it cannot use with (RFC 3261 §21.4.26).
pub const NOT_ACCEPTABLE_HERE: u16 = 488;

/// What is wrong with one line of a session description.
///
/// Values taken from the input are cut to a few dozen characters, so that the message
/// stays short enough for a Warning header whatever the input was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    /// The line is neither blank nor `<letter>=<value>`.
    #[error("not of the form <type>=<value>")]
    NotTypeValue,
    /// The line holds a NUL byte or a carriage return that does not end it (RFC 8866 §5).
    #[error("NUL or carriage return inside the line")]
    ControlCharacter,
    /// A line the server must read is not UTF-8.
    #[error("{line_type} is not UTF-8")]
    NotUtf8 {
        /// The kind of line, like `o=`.
        line_type: &'static str,
    },
    /// The second line is not `o=` (RFC 8866 §5: `v=`, `o=`, `s=` come first).
    #[error("expected o= after v=")]
    ExpectedOrigin,
    /// A line that may appear once in its section appears again.
    #[error("second {line_type} line in the same section")]
    Duplicate {
        /// The kind of line, like `s=` or `c=`.
        line_type: &'static str,
    },
    /// A line has the wrong number of fields.
    #[error("{line_type} has {found} fields, needs {needed}")]
    FieldCount {
        /// The kind of line, like `o=`.
        line_type: &'static str,
        /// How many fields it has.
        found: usize,
        /// How many it needs, like `6` or `1 or 4`.
        needed: &'static str,
    },
    /// `o=` sess-id is not a decimal number.
    #[error("o= sess-id {0} is not a number")]
    BadSessionId(String),
    /// `o=` sess-version is not a decimal number that fits in 64 bits.
    #[error("o= sess-version {0} is not a number below 2^64")]
    BadSessionVersion(String),
    /// The network type is not `IN`.
    #[error("{line_type} network type {value} is not IN")]
    UnsupportedNetType {
        /// The kind of line, like `c=`.
        line_type: &'static str,
        /// The network type found.
        value: String,
    },
    /// The address type is neither `IP4` nor `IP6`.
    #[error("{line_type} address type {value} is neither IP4 nor IP6")]
    UnsupportedAddrType {
        /// The kind of line, like `c=`.
        line_type: &'static str,
        /// The address type found.
        value: String,
    },
    /// The address is neither an IP address nor a host name.
    #[error("{line_type} address {value} is not an IP address or host name")]
    BadAddress {
        /// The kind of line, like `c=`.
        line_type: &'static str,
        /// The address found.
        value: String,
    },
    /// The address is an IP address of the other family than the address type says.
    #[error("{line_type} address {value} is not of type {addr_type}")]
    AddressTypeMismatch {
        /// The kind of line, like `c=`.
        line_type: &'static str,
        /// The address type the line gives (`IP4` or `IP6`).
        addr_type: &'static str,
        /// The address found.
        value: String,
    },
    /// The multicast part after the address (`/ttl/count`) is not numbers in range.
    #[error("{line_type} multicast suffix {value} is not /ttl[/count]")]
    BadMulticast {
        /// The kind of line, like `c=`.
        line_type: &'static str,
        /// The suffix found, slash included.
        value: String,
    },
    /// `m=` has a media type and nothing else.
    #[error("m= has no port")]
    NoPort,
    /// A port is not a decimal number.
    #[error("{line_type} port {value} is not a number")]
    BadPort {
        /// The kind of line, `m=` or `a=rtcp:`.
        line_type: &'static str,
        /// The port found.
        value: String,
    },
    /// A port is a number above 65535.
    #[error("{line_type} port {value} out of range")]
    PortOutOfRange {
        /// The kind of line, `m=` or `a=rtcp:`.
        line_type: &'static str,
        /// The port found.
        value: String,
    },
    /// The `m=` number of ports (after `/`) is not a number from 1 to 65535.
    #[error("m= port count {0} is not a number from 1 to 65535")]
    BadPortCount(String),
    /// `m=` has no transport protocol.
    #[error("m= has no transport protocol")]
    NoProto,
    /// `m=` on a port other than 0 lists no format.
    #[error("m= has no format")]
    NoFormat,
    /// Two different direction attributes in one section (RFC 3264 §5.1 allows one).
    #[error("a={second} after a={first} in the same section")]
    ConflictingDirection {
        /// The direction given first.
        first: Direction,
        /// The one that contradicts it.
        second: Direction,
    },
}

impl LineProblem {
    /// The Warning code (RFC 3261 §20.43) that describes this problem best.
    pub fn warn_code(&self) -> u16 {
        match self {
            LineProblem::UnsupportedNetType { .. } => 300,
            LineProblem::UnsupportedAddrType { .. } | LineProblem::AddressTypeMismatch { .. } => {
                301
            }
            _ => 399,
        }
    }
}

/// A session description cannot be parsed, or an answer does not fit its offer.
///
/// A server refuses the offer with [`NOT_ACCEPTABLE_HERE`] and a Warning made by
/// [`SdpError::warning_value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is longer than [`Limits::max_body_len`](crate::Limits::max_body_len).
    #[error("SDP body of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Length of the body.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first line is not `v=0`.
    #[error("not SDP: missing v=0")]
    NotSdp,
    /// One line is malformed.
    #[error("SDP line {line}: {problem}")]
    Line {
        /// Line number, the first line being 1.
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// More lines than [`Limits::max_lines`](crate::Limits::max_lines).
    #[error("more than {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// The session section has no `s=` line (RFC 8866 §5.3).
    #[error("no s= line")]
    NoSessionName,
    /// The description has no media section.
    #[error("no m= line")]
    NoMedia,
    /// More media sections than [`Limits::max_media`](crate::Limits::max_media).
    #[error("more than {max} m= lines")]
    TooManyMedia {
        /// The limit.
        max: usize,
    },
    /// The answer does not have as many media sections as the offer (RFC 3264 §6).
    #[error("answer has {answer} m= lines, offer has {offer}")]
    MediaCountMismatch {
        /// m= lines in the offer.
        offer: usize,
        /// m= lines in the answer.
        answer: usize,
    },
    /// An answer's media section has another media type than the offer's (RFC 3264 §6).
    #[error("m= line {index}: answer is {answer}, offer is {offer}")]
    MediaTypeMismatch {
        /// Which m= line, the first being 1.
        index: usize,
        /// Media type in the offer.
        offer: String,
        /// Media type in the answer.
        answer: String,
    },
    /// The answer accepts a stream that the offer had rejected with port 0 (RFC 3264 §6).
    #[error("m= line {index}: offered with port 0 but accepted in the answer")]
    RejectedStreamAccepted {
        /// Which m= line, the first being 1.
        index: usize,
    },
    /// A port other than 0 cannot be set on an `m=` line that lists no format.
    #[error("cannot set port {port} on an m= line that lists no format")]
    PortWithoutFormat {
        /// The port that was to be set.
        port: u16,
    },
    /// `o=` sess-version is already the largest 64-bit number.
    #[error("o= sess-version {0} cannot be incremented")]
    VersionOverflow(u64),
}

impl SdpError {
    /// The Warning code (RFC 3261 §20.43): 300 for a network type other than `IN`, 301 for
    /// an address type other than `IP4`/`IP6`, 304 for a media type an answer changed,
    /// 399 otherwise.
    pub fn warn_code(&self) -> u16 {
        match self {
            SdpError::Line { problem, .. } => problem.warn_code(),
            SdpError::MediaTypeMismatch { .. } => 304,
            _ => 399,
        }
    }

    /// A whole Warning header value: `399 agent "SDP line 4: m= has no port"`, with `"`
    /// and `\` in the text escaped (RFC 3261 §25.1 quoted-string).
    pub fn warning_value(&self, agent: &str) -> String {
        let text = self.to_string();
        let mut out = String::with_capacity(text.len() + agent.len() + 8);
        let _ = write!(out, "{} {} \"", self.warn_code(), agent);
        for c in text.chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                // Control characters have no place in a header; they cannot come from a
                // parsed line, but the text is made safe whatever it holds.
                c if c.is_control() => out.push(' '),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

/// At most this many characters of an input value go into an error message.
const EXCERPT_CHARS: usize = 40;

/// `value` cut to [`EXCERPT_CHARS`] characters, with `...` where it was cut.
pub(crate) fn excerpt(value: &str) -> String {
    match value.char_indices().nth(EXCERPT_CHARS) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}...", &value[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_warning_text() {
        let e = SdpError::Line {
            line: 4,
            problem: LineProblem::NoPort,
        };
        assert_eq!(e.to_string(), "SDP line 4: m= has no port");
        assert_eq!(e.warn_code(), 399);
        assert_eq!(
            SdpError::Line {
                line: 7,
                problem: LineProblem::PortOutOfRange {
                    line_type: "m=",
                    value: "99999".into()
                }
            }
            .to_string(),
            "SDP line 7: m= port 99999 out of range"
        );
        assert_eq!(SdpError::NoMedia.to_string(), "no m= line");
        assert_eq!(SdpError::NotSdp.to_string(), "not SDP: missing v=0");
    }

    #[test]
    fn warn_codes_follow_rfc3261() {
        let nettype = SdpError::Line {
            line: 5,
            problem: LineProblem::UnsupportedNetType {
                line_type: "c=",
                value: "ATM".into(),
            },
        };
        assert_eq!(nettype.warn_code(), 300);
        let addrtype = SdpError::Line {
            line: 5,
            problem: LineProblem::UnsupportedAddrType {
                line_type: "c=",
                value: "NSAP".into(),
            },
        };
        assert_eq!(addrtype.warn_code(), 301);
        let media = SdpError::MediaTypeMismatch {
            index: 1,
            offer: "audio".into(),
            answer: "video".into(),
        };
        assert_eq!(media.warn_code(), 304);
    }

    #[test]
    fn warning_value_quotes_and_escapes() {
        let e = SdpError::Line {
            line: 2,
            problem: LineProblem::BadSessionId("a\"b\\c".into()),
        };
        assert_eq!(
            e.warning_value("mss.example.com"),
            r#"399 mss.example.com "SDP line 2: o= sess-id a\"b\\c is not a number""#
        );
    }

    #[test]
    fn excerpt_cuts_long_values_on_a_character_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 3);
        assert!(cut.ends_with("..."));
    }
}
