//! A media stream as the description means it: one media section with what it inherits
//! from the session part (`c=` and the direction, RFC 8866 §5.7 and RFC 3264 §5.1), and
//! whether it is on hold (RFC 3264 §8.4).

use crate::connection::Connection;
use crate::description::SessionDescription;
use crate::direction::Direction;
use crate::media::Media;

/// One media section read with the session-level defaults that apply to it.
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a> {
    index: usize,
    session: &'a SessionDescription,
    media: &'a Media,
}

impl<'a> Stream<'a> {
    pub(crate) fn new(index: usize, session: &'a SessionDescription, media: &'a Media) -> Self {
        Stream {
            index,
            session,
            media,
        }
    }

    /// Which media section this is, counted from 0 (the m-line index of RFC 3264 §6).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The media section.
    pub fn media(&self) -> &'a Media {
        self.media
    }

    /// The connection in effect: the media-level `c=`, else the session-level one.
    pub fn connection(&self) -> Option<Connection<'a>> {
        self.media
            .connection()
            .or_else(|| self.session.connection())
    }

    /// The direction in effect: the media-level attribute, else the session-level one,
    /// else `sendrecv` (RFC 3264 §5.1).
    pub fn direction(&self) -> Direction {
        self.media
            .direction()
            .or_else(|| self.session.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// Whether the stream is rejected or disabled (port 0).
    pub fn is_rejected(&self) -> bool {
        self.media.is_rejected()
    }

    /// Whether the stream is on hold: its direction is `sendonly` or `inactive`, or its
    /// connection address is `0.0.0.0`, the RFC 2543 form RFC 3264 §8.4 still asks a
    /// receiver to understand (`::` is taken the same way).
    pub fn is_on_hold(&self) -> bool {
        matches!(self.direction(), Direction::SendOnly | Direction::Inactive)
            || self.connection().is_some_and(|c| c.is_unspecified())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Direction, SessionDescription};

    const PJSUA_HOLD: &[u8] = include_bytes!("../testdata/pjsua-hold.sdp");
    const LEGACY_HOLD: &[u8] = include_bytes!("../testdata/legacy-hold.sdp");
    const PJSUA: &[u8] = include_bytes!("../testdata/pjsua-offer.sdp");
    const BARESIP: &[u8] = include_bytes!("../testdata/baresip-offer.sdp");
    const REJECTED: &[u8] = include_bytes!("../testdata/linphone-answer-video-rejected.sdp");

    fn parse(body: &[u8]) -> SessionDescription {
        SessionDescription::parse_slice(body).unwrap()
    }

    #[test]
    fn sendonly_re_invite_is_hold() {
        let sdp = parse(PJSUA_HOLD);
        let stream = sdp.stream(0).unwrap();
        assert_eq!(stream.direction(), Direction::SendOnly);
        assert!(stream.is_on_hold());
        assert!(sdp.is_on_hold());
        assert!(!parse(PJSUA).is_on_hold());
    }

    #[test]
    fn zero_address_is_hold_without_a_direction() {
        let sdp = parse(LEGACY_HOLD);
        let stream = sdp.stream(0).unwrap();
        assert_eq!(stream.direction(), Direction::SendRecv);
        assert!(stream.connection().unwrap().is_unspecified());
        assert!(stream.is_on_hold());
        assert!(sdp.is_on_hold());
    }

    #[test]
    fn session_connection_and_direction_are_inherited() {
        let sdp = parse(BARESIP);
        let stream = sdp.stream(0).unwrap();
        assert_eq!(
            stream.connection().unwrap().ip(),
            Some("192.0.2.20".parse().unwrap())
        );
        let body = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\na=inactive\r\nm=audio 1 RTP/AVP 0\r\nm=audio 2 RTP/AVP 0\r\na=sendrecv\r\n";
        let sdp = parse(body);
        let directions: Vec<_> = sdp.streams().map(|s| s.direction()).collect();
        assert_eq!(directions, [Direction::Inactive, Direction::SendRecv]);
        assert!(!sdp.is_on_hold(), "one stream still flows");
    }

    #[test]
    fn rejected_streams_do_not_count_for_hold() {
        let sdp = parse(REJECTED);
        let [audio, video] = [sdp.stream(0).unwrap(), sdp.stream(1).unwrap()];
        assert!(!audio.is_rejected());
        assert!(video.is_rejected());
        assert_eq!(video.index(), 1);
        assert!(!sdp.is_on_hold());
        assert!(sdp.stream(2).is_none());
    }
}
