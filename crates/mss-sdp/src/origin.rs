//! The origin line (RFC 8866 §5.2):
//! `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.

use crate::error::{excerpt, LineProblem};
use crate::line::{fields, Span};

/// The fields of `o=`. The session version is what RFC 3264 §8 increments in every
/// changed offer or answer of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin<'a> {
    /// The user's login on the originating host, or `-`.
    pub username: &'a str,
    /// The session id: a decimal number, kept as written (it may have any length).
    pub session_id: &'a str,
    /// The session version.
    pub session_version: u64,
    /// The network type, normally `IN` (not checked: `o=` only names the session).
    pub net_type: &'a str,
    /// The address type, normally `IP4` or `IP6` (not checked).
    pub addr_type: &'a str,
    /// The originating host's address or name (not checked).
    pub address: &'a str,
}

/// Where each field of an `o=` line is, to read it and to replace one field alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OriginSpans {
    username: Span,
    session_id: Span,
    pub(crate) session_version: Span,
    version: u64,
    net_type: Span,
    pub(crate) addr_type: Span,
    pub(crate) address: Span,
}

impl OriginSpans {
    /// Parses a whole `o=` line.
    pub(crate) fn parse(line: &str) -> Result<OriginSpans, LineProblem> {
        let value = line.get(2..).unwrap_or("");
        let mut spans = [Span { start: 0, end: 0 }; 6];
        let mut found = 0;
        for (span, _) in fields(value, 2) {
            if let Some(slot) = spans.get_mut(found) {
                *slot = span;
            }
            found += 1;
        }
        if found != 6 {
            return Err(LineProblem::FieldCount {
                line_type: "o=",
                found,
                needed: "6",
            });
        }
        let [username, session_id, session_version, net_type, addr_type, address] = spans;
        let bytes = line.as_bytes();
        let id = session_id.of(bytes);
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LineProblem::BadSessionId(excerpt(id)));
        }
        let version_text = session_version.of(bytes);
        let version = version_text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| version_text.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| LineProblem::BadSessionVersion(excerpt(version_text)))?;
        Ok(OriginSpans {
            username,
            session_id,
            session_version,
            version,
            net_type,
            addr_type,
            address,
        })
    }

    /// The fields, read from the line these spans were taken from.
    pub(crate) fn read<'a>(&self, line: &'a [u8]) -> Origin<'a> {
        Origin {
            username: self.username.of(line),
            session_id: self.session_id.of(line),
            session_version: self.version,
            net_type: self.net_type.of(line),
            addr_type: self.addr_type.of(line),
            address: self.address.of(line),
        }
    }

    /// The addrtype and address fields together, to replace both at once.
    pub(crate) fn addr_type_and_address(&self) -> Span {
        Span {
            start: self.addr_type.start,
            end: self.address.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field() {
        let line = "o=alice 2155 1547 IN IP4 192.0.2.30";
        let o = OriginSpans::parse(line).unwrap().read(line.as_bytes());
        assert_eq!(
            o,
            Origin {
                username: "alice",
                session_id: "2155",
                session_version: 1547,
                net_type: "IN",
                addr_type: "IP4",
                address: "192.0.2.30",
            }
        );
    }

    #[test]
    fn long_ids_and_the_largest_version() {
        let line = "o=- 123456789012345678901234567890 18446744073709551615 IN IP6 ::1";
        let o = OriginSpans::parse(line).unwrap().read(line.as_bytes());
        assert_eq!(o.session_id, "123456789012345678901234567890");
        assert_eq!(o.session_version, u64::MAX);
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(matches!(
            OriginSpans::parse("o=- 1 1 IN IP4"),
            Err(LineProblem::FieldCount { found: 5, .. })
        ));
        assert!(matches!(
            OriginSpans::parse("o=- x1 1 IN IP4 h"),
            Err(LineProblem::BadSessionId(_))
        ));
        assert!(matches!(
            OriginSpans::parse("o=- 1 18446744073709551616 IN IP4 h"),
            Err(LineProblem::BadSessionVersion(_))
        ));
        assert!(matches!(
            OriginSpans::parse("o=- 1 +1 IN IP4 h"),
            Err(LineProblem::BadSessionVersion(_))
        ));
    }

    #[test]
    fn spans_cover_the_fields_to_replace() {
        let line = "o=- 1 2 IN IP4 192.0.2.1";
        let spans = OriginSpans::parse(line).unwrap();
        assert_eq!(spans.session_version.of(line.as_bytes()), "2");
        assert_eq!(
            spans.addr_type_and_address().of(line.as_bytes()),
            "IP4 192.0.2.1"
        );
    }
}
