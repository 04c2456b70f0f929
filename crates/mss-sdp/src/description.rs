//! A whole session description: the session part (`v=`, `o=`, `s=` and what follows up
//! to the first `m=`) and its media sections, with reads and rewrites at session level.

use std::net::IpAddr;

use bytes::Bytes;

use crate::attribute::Attribute;
use crate::connection::{AddrType, Connection};
use crate::direction::Direction;
use crate::error::SdpError;
use crate::line::{splice, Line, LineEnding};
use crate::media::Media;
use crate::origin::{Origin, OriginSpans};
use crate::section::Section;
use crate::stream::Stream;

/// A parsed session description (RFC 8866), made with [`SessionDescription::parse`].
///
/// Every line is a slice of the received body until a rewrite replaces it; lines no
/// rewrite touched are written back byte for byte with their own line terminator, and an
/// untouched description writes back as the very body it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The body as received.
    pub(crate) body: Bytes,
    /// `v=0`.
    pub(crate) version: Line,
    /// `o=`.
    pub(crate) origin: Line,
    /// Where the fields of `o=` are.
    pub(crate) origin_spans: OriginSpans,
    /// The session-level lines after `o=`.
    pub(crate) session: Section,
    /// The media sections, at least one.
    pub(crate) media: Vec<Media>,
}

impl SessionDescription {
    /// The terminator of the first line, which lines added by rewrites get.
    pub fn line_ending(&self) -> LineEnding {
        self.session.ending
    }

    /// The `o=` line.
    pub fn origin(&self) -> Origin<'_> {
        self.origin_spans.read(&self.origin.text)
    }

    /// The session-level `c=`, if there is one.
    pub fn connection(&self) -> Option<Connection<'_>> {
        self.session.connection()
    }

    /// The session-level direction attribute, if there is one; media sections without
    /// their own inherit it.
    pub fn direction(&self) -> Option<Direction> {
        self.session.direction()
    }

    /// Every session-level attribute, in order.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'_>> {
        self.session.attributes()
    }

    /// The first session-level attribute called `name` (ASCII case ignored).
    pub fn attribute(&self, name: &str) -> Option<Attribute<'_>> {
        self.attributes()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The media sections, in order (at least one).
    pub fn media(&self) -> &[Media] {
        &self.media
    }

    /// The media sections, to rewrite them.
    pub fn media_mut(&mut self) -> &mut [Media] {
        &mut self.media
    }

    /// Each media section with the session-level `c=` and direction it inherits.
    pub fn streams(&self) -> impl Iterator<Item = Stream<'_>> {
        (0..self.media.len()).filter_map(|index| self.stream(index))
    }

    /// The stream of media section `index` (counted from 0).
    pub fn stream(&self, index: usize) -> Option<Stream<'_>> {
        Some(Stream::new(index, self, self.media.get(index)?))
    }

    /// Whether the description puts the call on hold: at least one stream is not
    /// rejected, and every such stream is on hold ([`Stream::is_on_hold`]).
    pub fn is_on_hold(&self) -> bool {
        let mut active = self
            .streams()
            .filter(|s| !s.media().is_rejected())
            .peekable();
        active.peek().is_some() && active.all(|s| s.is_on_hold())
    }

    /// Whether a rewrite changed anything since parsing.
    pub fn is_modified(&self) -> bool {
        self.session.modified || self.media.iter().any(Media::is_modified)
    }

    /// Points every connection at `ip` (a media relay's address): the session-level
    /// `c=` if there is one, and every media-level `c=`. A media section with no `c=` of
    /// its own gets one only if there is no session-level `c=` it would inherit.
    pub fn set_connection_address(&mut self, ip: IpAddr) {
        let session_has_one = self.session.replace_connection(ip);
        for media in &mut self.media {
            if !media.section.replace_connection(ip) && !session_has_one {
                media.section.set_connection(ip);
            }
        }
    }

    /// Sets the `o=` session version; the rest of the line stays as it was.
    pub fn set_session_version(&mut self, version: u64) {
        let text = splice(
            &self.origin.text,
            self.origin_spans.session_version,
            &version.to_string(),
        );
        self.replace_origin(text);
    }

    /// Increments the `o=` session version by one, as RFC 3264 §8 asks of every changed
    /// offer or answer; returns the new version.
    pub fn bump_session_version(&mut self) -> Result<u64, SdpError> {
        let version = self.origin().session_version;
        let next = version
            .checked_add(1)
            .ok_or(SdpError::VersionOverflow(version))?;
        self.set_session_version(next);
        Ok(next)
    }

    /// Sets the address type and address of `o=` to `ip`.
    pub fn set_origin_address(&mut self, ip: IpAddr) {
        let fields = format!("{} {}", AddrType::of(ip).as_str(), ip);
        let text = splice(
            &self.origin.text,
            self.origin_spans.addr_type_and_address(),
            &fields,
        );
        self.replace_origin(text);
    }

    /// Sets the session-level direction: replaces the direction attribute, or adds one
    /// after the last session-level line.
    pub fn set_session_direction(&mut self, direction: Direction) {
        self.session.set_direction(direction);
    }

    /// Removes every session-level attribute called `name` (like `ice-ufrag`); returns
    /// how many lines went.
    pub fn remove_session_attributes(&mut self, name: &str) -> usize {
        self.session.remove_attributes(name)
    }

    /// Puts new text on the `o=` line if it reads; every text given here does.
    fn replace_origin(&mut self, text: Vec<u8>) {
        if text == self.origin.text {
            return;
        }
        let Some(spans) = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| OriginSpans::parse(t).ok())
        else {
            return;
        };
        self.origin.text = text.into();
        self.origin_spans = spans;
        self.session.modified = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PJSUA: &[u8] = include_bytes!("../testdata/pjsua-offer.sdp");
    const BARESIP: &[u8] = include_bytes!("../testdata/baresip-offer.sdp");
    const LINPHONE: &[u8] = include_bytes!("../testdata/linphone-offer.sdp");
    const IPV6: &[u8] = include_bytes!("../testdata/ipv6-offer.sdp");
    const ASTERISK_LF: &[u8] = include_bytes!("../testdata/asterisk-lf.sdp");

    fn parse(body: &'static [u8]) -> SessionDescription {
        SessionDescription::parse(Bytes::from_static(body)).unwrap()
    }

    fn lines(sdp: &SessionDescription) -> Vec<String> {
        String::from_utf8(sdp.to_bytes().to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn pjsua_offer_reads() {
        let sdp = parse(PJSUA);
        let o = sdp.origin();
        assert_eq!(
            (o.username, o.session_id, o.session_version),
            ("-", "3920459871", 3920459871)
        );
        assert_eq!(
            (o.net_type, o.addr_type, o.address),
            ("IN", "IP4", "192.0.2.10")
        );
        assert_eq!(sdp.connection(), None);
        assert_eq!(sdp.attribute("X-nat").unwrap().value, Some("0"));
        let [audio] = sdp.media() else { panic!() };
        assert_eq!(audio.media_type(), "audio");
        assert_eq!(audio.port(), 4000);
        assert_eq!(audio.direction(), Some(Direction::SendRecv));
        assert_eq!(
            audio.connection().unwrap().ip(),
            Some("192.0.2.10".parse().unwrap())
        );
        let rtcp = audio.rtcp().unwrap();
        assert_eq!(rtcp.port, 4001);
        assert_eq!(
            rtcp.connection.unwrap().ip(),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(audio.rtpmap(96).unwrap().encoding, "opus");
        assert_eq!(audio.rtpmap(0).unwrap().encoding, "PCMU");
        assert_eq!(audio.fmtp(96), Some("useinbandfec=1"));
        assert_eq!(audio.fmtp(102), Some("0-16"));
        let events: Vec<_> = audio
            .telephone_events()
            .map(|m| (m.payload_type, m.clock_rate))
            .collect();
        assert_eq!(events, [(101, 48000), (102, 8000)]);
        assert_eq!(audio.ptime(), None);
    }

    #[test]
    fn baresip_offer_has_session_connection_and_ptime() {
        let sdp = parse(BARESIP);
        assert_eq!(
            sdp.connection().unwrap().ip(),
            Some("192.0.2.20".parse().unwrap())
        );
        let audio = &sdp.media()[0];
        assert_eq!(audio.connection(), None);
        assert_eq!(audio.ptime(), Some(20));
        assert_eq!(audio.rtpmap(9).unwrap().encoding_params, Some("1"));
        assert!(audio.has_telephone_event());
        assert_eq!(audio.rtcp(), None);
    }

    #[test]
    fn linphone_offer_has_two_streams_with_rtcp_and_ice() {
        let sdp = parse(LINPHONE);
        assert_eq!(sdp.attribute("ice-ufrag").unwrap().value, Some("0cf7a2f3"));
        let [audio, video] = sdp.media() else {
            panic!()
        };
        assert_eq!(audio.rtcp().unwrap().port, 7079);
        assert_eq!(audio.rtcp().unwrap().connection, None);
        assert_eq!(video.media_type(), "video");
        assert_eq!(video.rtcp().unwrap().port, 9079);
        assert_eq!(audio.fmtp(18), Some("annexb=yes"));
        assert_eq!(audio.telephone_events().count(), 3);
        assert!(!video.has_telephone_event());
        assert_eq!(
            audio.attributes().filter(|a| a.name == "candidate").count(),
            4
        );
    }

    #[test]
    fn ipv6_offer_reads() {
        let sdp = parse(IPV6);
        assert_eq!(sdp.origin().addr_type, "IP6");
        let c = sdp.connection().unwrap();
        assert_eq!(c.addr_type, AddrType::Ip6);
        let rtcp = sdp.media()[0].rtcp().unwrap();
        assert_eq!(rtcp.connection.unwrap().addr_type, AddrType::Ip6);
    }

    #[test]
    fn an_untouched_description_is_the_received_body() {
        for body in [PJSUA, BARESIP, LINPHONE, IPV6, ASTERISK_LF] {
            let bytes = Bytes::from_static(body);
            let sdp = SessionDescription::parse(bytes.clone()).unwrap();
            assert!(!sdp.is_modified());
            let out = sdp.to_bytes();
            assert_eq!(out, bytes);
            assert_eq!(out.as_ptr(), bytes.as_ptr(), "no copy");
        }
    }

    #[test]
    fn connection_address_replaces_existing_lines_only() {
        // pjsua: no session c=, one media c=.
        let mut sdp = parse(PJSUA);
        sdp.set_connection_address("203.0.113.5".parse().unwrap());
        let out = lines(&sdp);
        assert_eq!(out.iter().filter(|l| l.starts_with("c=")).count(), 1);
        assert_eq!(out[7], "c=IN IP4 203.0.113.5");
        // baresip: session c= only; no media c= is added.
        let mut sdp = parse(BARESIP);
        sdp.set_connection_address("2001:db8::5".parse().unwrap());
        let out = lines(&sdp);
        assert_eq!(out.iter().filter(|l| l.starts_with("c=")).count(), 1);
        assert_eq!(out[3], "c=IN IP6 2001:db8::5");
        assert_eq!(sdp.media()[0].connection(), None);
    }

    #[test]
    fn connection_address_is_added_where_nothing_would_apply() {
        let body = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\ni=voice\r\na=sendrecv\r\nm=video 0 RTP/AVP 31\r\n";
        let mut sdp = SessionDescription::parse_slice(body).unwrap();
        sdp.set_connection_address("203.0.113.5".parse().unwrap());
        assert_eq!(
            lines(&sdp)[4..],
            [
                "m=audio 4000 RTP/AVP 0",
                "i=voice",
                "c=IN IP4 203.0.113.5",
                "a=sendrecv",
                "m=video 0 RTP/AVP 31",
                "c=IN IP4 203.0.113.5",
            ]
        );
    }

    #[test]
    fn session_version_and_origin_address() {
        let mut sdp = parse(PJSUA);
        assert_eq!(sdp.bump_session_version(), Ok(3920459872));
        assert_eq!(
            lines(&sdp)[1],
            "o=- 3920459871 3920459872 IN IP4 192.0.2.10"
        );
        sdp.set_origin_address("2001:db8::5".parse().unwrap());
        assert_eq!(
            lines(&sdp)[1],
            "o=- 3920459871 3920459872 IN IP6 2001:db8::5"
        );
        assert_eq!(sdp.origin().address, "2001:db8::5");
        sdp.set_session_version(u64::MAX);
        assert_eq!(
            sdp.bump_session_version(),
            Err(SdpError::VersionOverflow(u64::MAX))
        );
    }

    #[test]
    fn session_direction_and_attribute_removal() {
        let mut sdp = parse(LINPHONE);
        assert_eq!(sdp.remove_session_attributes("ice-pwd"), 1);
        assert_eq!(sdp.remove_session_attributes("ice-ufrag"), 1);
        assert_eq!(sdp.media_mut()[0].remove_attributes("candidate"), 4);
        assert_eq!(sdp.media_mut()[1].remove_attributes("candidate"), 2);
        sdp.set_session_direction(Direction::SendOnly);
        let out = lines(&sdp);
        assert!(!out
            .iter()
            .any(|l| l.starts_with("a=ice-") || l.starts_with("a=candidate")));
        assert_eq!(out[7], "a=sendonly");
        assert_eq!(out[8], "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100");
        assert_eq!(sdp.direction(), Some(Direction::SendOnly));
    }

    #[test]
    fn bare_lf_is_written_back_with_bare_lf() {
        let mut sdp = parse(ASTERISK_LF);
        assert_eq!(sdp.line_ending(), LineEnding::Lf);
        sdp.media_mut()[0].set_rtcp(12001, None);
        sdp.media_mut()[0].set_port(12000).unwrap();
        let out = sdp.to_bytes();
        assert!(!out.contains(&b'\r'));
        assert!(out.ends_with(b"a=sendrecv\na=rtcp:12001\n"));
    }
}
