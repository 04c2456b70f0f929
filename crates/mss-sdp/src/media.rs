//! One media section (RFC 8866 §5.14): the `m=` line and the lines under it, with the
//! typed reads and the rewrites a media relay needs.

use std::net::IpAddr;

use crate::attribute::Attribute;
use crate::connection::Connection;
use crate::direction::Direction;
use crate::error::{excerpt, LineProblem, SdpError};
use crate::line::{fields, splice, Line, Span};
use crate::rtcp::{rtcp_line, Rtcp};
use crate::rtpmap::RtpMap;
use crate::section::Section;

/// One media section: `m=<media> <port>[/<count>] <proto> <fmt> ...` and its lines.
///
/// Reads borrow from the section; rewrites change only the lines they must and keep the
/// terminator of every line they replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The `m=` line.
    line: Line,
    /// Where its fields are.
    spans: MediaSpans,
    /// The lines after it, up to the next `m=`.
    pub(crate) section: Section,
}

/// Where the fields of an `m=` line are, and the numbers it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MediaSpans {
    media: Span,
    port: Span,
    port_number: u16,
    port_count: Option<u16>,
    proto: Span,
    /// From the first format to the end of the last (empty when there is none).
    formats: Span,
}

impl MediaSpans {
    fn parse(line: &str) -> Result<MediaSpans, LineProblem> {
        let value = line.get(2..).unwrap_or("");
        let mut parts = fields(value, 2);
        let media = parts
            .next()
            .map(|(span, _)| span)
            .ok_or(LineProblem::NoPort)?;
        let (port, port_text) = parts.next().ok_or(LineProblem::NoPort)?;
        let (number, count) = match port_text.split_once('/') {
            Some((number, count)) => (number, Some(count)),
            None => (port_text, None),
        };
        let port_number = parse_port(number, "m=")?;
        let port_count = match count {
            Some(count) => Some(
                count
                    .parse::<u16>()
                    .ok()
                    .filter(|c| *c > 0 && count.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| LineProblem::BadPortCount(excerpt(count)))?,
            ),
            None => None,
        };
        let port = Span {
            start: port.start,
            end: port.start + number.len(),
        };
        let (proto, _) = parts.next().ok_or(LineProblem::NoProto)?;
        let mut formats = Span {
            start: proto.end,
            end: proto.end,
        };
        if let Some((first, _)) = parts.next() {
            formats = Span {
                start: first.start,
                end: parts.last().map_or(first.end, |(last, _)| last.end),
            };
        } else if port_number != 0 {
            return Err(LineProblem::NoFormat);
        }
        Ok(MediaSpans {
            media,
            port,
            port_number,
            port_count,
            proto,
            formats,
        })
    }
}

/// A port number: decimal digits, at most 65535.
pub(crate) fn parse_port(text: &str, line_type: &'static str) -> Result<u16, LineProblem> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineProblem::BadPort {
            line_type,
            value: excerpt(text),
        });
    }
    text.parse().map_err(|_| LineProblem::PortOutOfRange {
        line_type,
        value: excerpt(text),
    })
}

impl Media {
    /// Reads an `m=` line; the section's lines are added by the caller.
    pub(crate) fn parse(line: Line, section: Section) -> Result<Media, LineProblem> {
        let text = std::str::from_utf8(&line.text)
            .map_err(|_| LineProblem::NotUtf8 { line_type: "m=" })?;
        let spans = MediaSpans::parse(text)?;
        Ok(Media {
            line,
            spans,
            section,
        })
    }

    /// The `m=` line's text, then each line of the section.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &Line> {
        std::iter::once(&self.line).chain(&self.section.lines)
    }

    /// Whether a rewrite changed this section.
    pub(crate) fn is_modified(&self) -> bool {
        self.section.modified
    }

    /// The media type: `audio`, `video`, `text`, `application`, `message` or another.
    pub fn media_type(&self) -> &str {
        self.spans.media.of(&self.line.text)
    }

    /// The transport port; 0 marks a rejected or disabled stream (RFC 3264 §6, §8.2).
    pub fn port(&self) -> u16 {
        self.spans.port_number
    }

    /// The number of ports after `/` (RFC 8866 §5.14), if given.
    pub fn port_count(&self) -> Option<u16> {
        self.spans.port_count
    }

    /// The transport protocol, like `RTP/AVP`, `RTP/SAVP` or `UDP/TLS/RTP/SAVPF`.
    pub fn proto(&self) -> &str {
        self.spans.proto.of(&self.line.text)
    }

    /// The media formats as written: RTP payload type numbers for RTP protocols.
    pub fn formats(&self) -> impl Iterator<Item = &str> {
        fields(self.spans.formats.of(&self.line.text), 0).map(|(_, f)| f)
    }

    /// The formats that are RTP payload type numbers (0 to 127), in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
    }

    /// Whether the stream is rejected or disabled: port 0 (RFC 3264 §6).
    pub fn is_rejected(&self) -> bool {
        self.port() == 0
    }

    /// The media-level `c=` line, if there is one (else the session's applies).
    pub fn connection(&self) -> Option<Connection<'_>> {
        self.section.connection()
    }

    /// The media-level direction attribute, if there is one (else the session's applies).
    pub fn direction(&self) -> Option<Direction> {
        self.section.direction()
    }

    /// The `a=rtcp:` attribute (RFC 3605), if there is one.
    pub fn rtcp(&self) -> Option<Rtcp<'_>> {
        Rtcp::parse(self.section.attribute_values("rtcp").next()?).ok()
    }

    /// Every attribute of the section, in order.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'_>> {
        self.section.attributes()
    }

    /// The first attribute called `name` (ASCII case ignored).
    pub fn attribute(&self, name: &str) -> Option<Attribute<'_>> {
        self.attributes()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Every well-formed `a=rtpmap:` of the section, in order.
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap<'_>> {
        self.section
            .attribute_values("rtpmap")
            .filter_map(RtpMap::parse)
    }

    /// The `a=rtpmap:` of a payload type. Static payload types (RFC 3551, like 0 for
    /// PCMU) often have none.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap<'_>> {
        self.rtpmaps().find(|m| m.payload_type == payload_type)
    }

    /// The parameters of the `a=fmtp:` of a payload type, like `0-16`.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.section.attribute_values("fmtp").find_map(|value| {
            let (format, params) = value.trim_start().split_once([' ', '\t'])?;
            (format.parse::<u8>().ok()? == payload_type).then_some(params.trim())
        })
    }

    /// The packet time in whole milliseconds (`a=ptime:20`; a fraction is dropped).
    pub fn ptime(&self) -> Option<u32> {
        let value = self.section.attribute_values("ptime").next()?.trim();
        let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(whole) && digits(fraction))
            .then(|| whole.parse().ok())
            .flatten()
    }

    /// The RFC 4733 telephone-event maps whose payload type the `m=` line offers.
    pub fn telephone_events(&self) -> impl Iterator<Item = RtpMap<'_>> {
        let mut offered = [false; 128];
        for pt in self.payload_types() {
            if let Some(slot) = offered.get_mut(usize::from(pt)) {
                *slot = true;
            }
        }
        self.rtpmaps().filter(move |m| {
            m.is_telephone_event() && offered.get(usize::from(m.payload_type)) == Some(&true)
        })
    }

    /// Whether the stream carries RFC 4733 telephone-event (DTMF).
    pub fn has_telephone_event(&self) -> bool {
        self.telephone_events().next().is_some()
    }

    /// Sets the port of the `m=` line; the rest of the line stays as it was.
    ///
    /// Fails, changing nothing, only for a port other than 0 on an `m=` line that lists no
    /// format (which parsing accepts for a rejected stream alone).
    pub fn set_port(&mut self, port: u16) -> Result<(), SdpError> {
        let text = splice(&self.line.text, self.spans.port, &port.to_string());
        if text == self.line.text {
            return Ok(());
        }
        let spans = std::str::from_utf8(&text)
            .map_err(|_| LineProblem::NotUtf8 { line_type: "m=" })
            .and_then(MediaSpans::parse)
            .map_err(|_| SdpError::PortWithoutFormat { port })?;
        self.line.text = text.into();
        self.spans = spans;
        self.section.modified = true;
        Ok(())
    }

    /// Points the media-level `c=` at `ip`, adding one after `m=` (and `i=`) if there is
    /// none.
    pub fn set_connection_address(&mut self, ip: IpAddr) {
        self.section.set_connection(ip);
    }

    /// Sets `a=rtcp:` to `port` (and `ip`, when given): the existing line is replaced,
    /// or one is added after the last line of the section.
    pub fn set_rtcp(&mut self, port: u16, ip: Option<IpAddr>) {
        let text = rtcp_line(port, ip);
        match self
            .section
            .lines
            .iter()
            .position(|l| l.is_attribute("rtcp"))
        {
            Some(index) => self.section.replace(index, text),
            None => self.section.push_attribute(text),
        }
    }

    /// Removes `a=rtcp:`; returns whether there was one.
    pub fn remove_rtcp(&mut self) -> bool {
        self.section.remove_attributes("rtcp") > 0
    }

    /// Sets the media-level direction: replaces the direction attribute, or adds one after
    /// the last line of the section. A session-level direction is left as it is (the
    /// media-level one overrides it).
    pub fn set_direction(&mut self, direction: Direction) {
        self.section.set_direction(direction);
    }

    /// Removes every attribute called `name` (like `candidate` or `ice-ufrag`); returns
    /// how many lines went.
    pub fn remove_attributes(&mut self, name: &str) -> usize {
        self.section.remove_attributes(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LineEnding;

    fn media(line: &str) -> Result<Media, LineProblem> {
        Media::parse(
            Line::new(line.to_owned(), LineEnding::CrLf),
            Section::new(LineEnding::CrLf),
        )
    }

    #[test]
    fn reads_the_media_line() {
        let m = media("m=audio 4000 RTP/AVP 96 9 8 0 101").unwrap();
        assert_eq!(m.media_type(), "audio");
        assert_eq!(m.port(), 4000);
        assert_eq!(m.port_count(), None);
        assert_eq!(m.proto(), "RTP/AVP");
        assert_eq!(
            m.formats().collect::<Vec<_>>(),
            ["96", "9", "8", "0", "101"]
        );
        assert_eq!(m.payload_types().collect::<Vec<_>>(), [96, 9, 8, 0, 101]);
        assert!(!m.is_rejected());
    }

    #[test]
    fn port_counts_rejected_streams_and_other_formats() {
        let m = media("m=video 49170/2 RTP/AVP 31").unwrap();
        assert_eq!((m.port(), m.port_count()), (49170, Some(2)));
        let m = media("m=video 0 RTP/AVP 103").unwrap();
        assert!(m.is_rejected());
        let m = media("m=video 0 RTP/AVP").unwrap();
        assert!(m.is_rejected());
        assert_eq!(m.formats().count(), 0);
        let m = media("m=message 7394 TCP/MSRP *").unwrap();
        assert_eq!(m.formats().collect::<Vec<_>>(), ["*"]);
        assert_eq!(m.payload_types().count(), 0);
    }

    #[test]
    fn rejects_broken_media_lines() {
        let err = |l| media(l).unwrap_err().to_string();
        assert_eq!(err("m=audio"), "m= has no port");
        assert_eq!(err("m="), "m= has no port");
        assert_eq!(err("m=audio 99999 RTP/AVP 0"), "m= port 99999 out of range");
        assert_eq!(err("m=audio -1 RTP/AVP 0"), "m= port -1 is not a number");
        assert_eq!(
            err("m=audio 4000/0 RTP/AVP 0"),
            "m= port count 0 is not a number from 1 to 65535"
        );
        assert_eq!(err("m=audio 4000"), "m= has no transport protocol");
        assert_eq!(err("m=audio 4000 RTP/AVP"), "m= has no format");
    }

    #[test]
    fn set_port_changes_the_port_alone() {
        let mut m = media("m=audio  4000/2 RTP/AVP 0 8").unwrap();
        m.set_port(30000).unwrap();
        assert_eq!(&m.line.text[..], b"m=audio  30000/2 RTP/AVP 0 8");
        assert_eq!(
            (m.port(), m.port_count(), m.proto()),
            (30000, Some(2), "RTP/AVP")
        );
        assert_eq!(m.formats().collect::<Vec<_>>(), ["0", "8"]);
        assert!(m.is_modified());
        m.set_port(0).unwrap();
        assert!(m.is_rejected());
    }

    #[test]
    fn the_same_port_changes_nothing() {
        let mut m = media("m=audio 4000 RTP/AVP 0").unwrap();
        m.set_port(4000).unwrap();
        assert!(!m.is_modified());
    }

    #[test]
    fn a_formatless_rejected_stream_keeps_port_0() {
        let mut m = media("m=video 0 RTP/AVP").unwrap();
        assert_eq!(
            m.set_port(9000).unwrap_err().to_string(),
            "cannot set port 9000 on an m= line that lists no format"
        );
        assert!(m.is_rejected() && !m.is_modified());
        m.set_port(0).unwrap();
    }
}
