//! A leg's SDP as the media relay needs it (DESIGN §8 "Media relay"): what it says of where
//! the leg receives media (for latching), and the same description pointed at mss for the
//! other leg.
//!
//! The rewrite changes the connection address (`c=`), the `m=` port and `a=rtcp:` (RFC
//! 3605) of each stream mss relays; every other line stays byte for byte (`mss-sdp`), the
//! `o=` version too: the rewrite of one leg's description is the same every time, so a
//! description that did not change still does not (RFC 3264 §8). A stream put on hold the
//! RFC 2543 way (`c=0.0.0.0`, RFC 3264 §8.4) keeps its zero address, so that the other
//! side still sees the hold. A stream beyond the sessions the call has gets port 0 (RFC
//! 3264 §6: disabled), as mss cannot carry it.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use mss_media::PortPair;
use mss_sdp::{Direction, SdpError, SessionDescription};

/// What one stream of a leg's description says of that leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamRemote {
    /// Where the leg receives RTP (`None`: no IP address, or a rejected stream).
    pub(crate) rtp: Option<SocketAddr>,
    /// Where it receives RTCP when `a=rtcp:` says so.
    pub(crate) rtcp: Option<SocketAddr>,
    /// The leg does not both send and receive: `sendonly`, `recvonly`, `inactive` or the
    /// zero address (RFC 3264 §8.4). The relay's `rtp_timeout` must not end such a call.
    pub(crate) hold: bool,
    /// SRTP (RFC 3711): a `SAVP`/`SAVPF` profile (RFC 3711 §12, RFC 5764) or `a=crypto`
    /// (RFC 4568). The relay never rewrites its packets.
    pub(crate) srtp: bool,
}

/// Whether a body with these headers is SDP (`Content-Type: application/sdp`).
pub(crate) fn is_sdp(headers: &mss_sip::Headers) -> bool {
    matches!(
        headers.content_type(),
        Ok(Some(ct)) if ct.mtype.eq_ignore_ascii_case("application")
            && ct.subtype.eq_ignore_ascii_case("sdp")
    )
}

/// A leg's SDP read once: what each stream says of the leg, and the description to write
/// for the other leg. A body that crosses mss is parsed here once for both.
#[derive(Debug, Clone)]
pub(crate) struct LegSdp {
    sdp: SessionDescription,
    /// What each stream (by `m=` index) says of the leg.
    streams: Vec<StreamRemote>,
    /// Whether each stream's connection address is the zero (hold) address.
    zero_address: Vec<bool>,
}

impl LegSdp {
    /// Parses a leg's SDP `body`.
    pub(crate) fn parse(body: &Bytes) -> Result<LegSdp, SdpError> {
        let sdp = SessionDescription::parse(body.clone())?;
        let (streams, zero_address) = streams_of(&sdp);
        Ok(LegSdp {
            sdp,
            streams,
            zero_address,
        })
    }

    /// What each stream (by `m=` index) says of the leg.
    pub(crate) fn streams(&self) -> &[StreamRemote] {
        &self.streams
    }

    /// The description written for the other leg: stream `i` at `address` and
    /// `ports[i]` (see the module docs).
    pub(crate) fn relay(self, address: IpAddr, ports: &[PortPair]) -> Result<Bytes, SdpError> {
        rewrite(self.sdp, &self.zero_address, address, ports)
    }
}

/// What each stream of `sdp` says of the leg that sent it, and whether its connection
/// address is the zero (hold) address. Each stream's connection and direction are read
/// once (the description reads them from its lines on every call).
fn streams_of(sdp: &SessionDescription) -> (Vec<StreamRemote>, Vec<bool>) {
    let mut streams = Vec::with_capacity(sdp.media().len());
    let mut zero_address = Vec::with_capacity(sdp.media().len());
    for stream in sdp.streams() {
        let media = stream.media();
        let connection = stream.connection();
        let conn_ip = connection.and_then(|c| c.ip());
        let zero = connection.is_some_and(|c| c.is_unspecified());
        let rejected = stream.is_rejected();
        let rtp = conn_ip
            .filter(|_| !rejected)
            .map(|ip| SocketAddr::new(ip, media.port()));
        let rtcp = media.rtcp().and_then(|r| {
            let ip = r.connection.and_then(|c| c.ip()).or(conn_ip)?;
            Some(SocketAddr::new(ip, r.port))
        });
        // `Stream::is_on_hold` (sendonly, inactive, the zero address) and recvonly.
        let hold = zero || stream.direction() != Direction::SendRecv;
        let srtp = media.proto().to_ascii_uppercase().contains("SAVP")
            || media.attribute("crypto").is_some();
        streams.push(StreamRemote {
            rtp,
            rtcp: rtcp.filter(|_| !rejected),
            hold,
            srtp,
        });
        zero_address.push(zero);
    }
    (streams, zero_address)
}

/// What each stream (by `m=` index) of a leg's SDP `body` says of that leg.
pub(crate) fn leg_streams(body: &Bytes) -> Result<Vec<StreamRemote>, SdpError> {
    Ok(LegSdp::parse(body)?.streams)
}

/// Reads `body` (a leg's SDP) and writes it for the other leg: stream `i` at `address`
/// and `ports[i]` (see the module docs).
#[cfg(test)]
fn relay_sdp(body: &Bytes, address: IpAddr, ports: &[PortPair]) -> Result<Bytes, SdpError> {
    LegSdp::parse(body)?.relay(address, ports)
}

/// `sdp` written for the other leg (`zero_address` by stream, from [`streams_of`]).
fn rewrite(
    mut sdp: SessionDescription,
    zero_address: &[bool],
    address: IpAddr,
    ports: &[PortPair],
) -> Result<Bytes, SdpError> {
    let any_zero = zero_address.iter().any(|z| *z);
    if !any_zero {
        sdp.set_connection_address(address);
    }
    for (i, media) in sdp.media_mut().iter_mut().enumerate() {
        if media.is_rejected() {
            continue;
        }
        let Some(pair) = ports.get(i) else {
            media.set_port(0)?;
            continue;
        };
        media.set_port(pair.rtp)?;
        let zero = zero_address.get(i).copied().unwrap_or(false);
        if any_zero && !zero {
            media.set_connection_address(address);
        }
        if let Some(rtcp) = media.rtcp() {
            let ip = rtcp.connection.map(|_| address);
            media.set_rtcp(pair.rtcp(), ip);
        }
    }
    Ok(sdp.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
        o=- 3920459871 3920459871 IN IP4 192.0.2.10\r\n\
        s=pjmedia\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        m=audio 4000 RTP/AVP 0 8 101\r\n\
        a=rtcp:4001 IN IP4 192.0.2.10\r\n\
        a=sendrecv\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n";

    fn pair(rtp: u16) -> PortPair {
        PortPair { rtp }
    }

    #[test]
    fn address_port_and_rtcp_change_and_nothing_else() {
        let body = Bytes::from_static(OFFER.as_bytes());
        let mss: IpAddr = "203.0.113.5".parse().unwrap();
        let r = relay_sdp(&body, mss, &[pair(30000)]).unwrap();
        assert_eq!(
            std::str::from_utf8(&r).unwrap(),
            OFFER
                .replace("c=IN IP4 192.0.2.10", "c=IN IP4 203.0.113.5")
                .replace("m=audio 4000", "m=audio 30000")
                .replace(
                    "a=rtcp:4001 IN IP4 192.0.2.10",
                    "a=rtcp:30001 IN IP4 203.0.113.5"
                )
        );
        assert_eq!(
            leg_streams(&body).unwrap(),
            [StreamRemote {
                rtp: Some("192.0.2.10:4000".parse().unwrap()),
                rtcp: Some("192.0.2.10:4001".parse().unwrap()),
                hold: false,
                srtp: false,
            }]
        );
        // SRTP: a SAVP profile or SDES keys (RFC 4568) on a plain profile.
        for (from, to) in [
            ("RTP/AVP", "RTP/SAVP"),
            ("RTP/AVP", "UDP/TLS/RTP/SAVPF"),
            (
                "a=rtcp:4001",
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=rtcp:4001",
            ),
        ] {
            let body = Bytes::from(OFFER.replace(from, to));
            let streams = leg_streams(&body).unwrap();
            assert!(streams[0].srtp, "{to}");
        }
    }

    #[test]
    fn a_zero_address_hold_stays_and_directions_count_as_hold() {
        let legacy = OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let r = relay_sdp(
            &Bytes::from(legacy.clone()),
            "203.0.113.5".parse().unwrap(),
            &[pair(30000)],
        )
        .unwrap();
        let text = String::from_utf8(r.to_vec()).unwrap();
        assert!(text.contains("c=IN IP4 0.0.0.0\r\n"), "{text}");
        assert!(text.contains("m=audio 30000 "), "{text}");
        assert!(leg_streams(&Bytes::from(legacy)).unwrap()[0].hold);
        for (dir, hold) in [
            ("sendonly", true),
            ("recvonly", true),
            ("inactive", true),
            ("sendrecv", false),
        ] {
            let body = Bytes::from(OFFER.replace("a=sendrecv", &format!("a={dir}")));
            let r = relay_sdp(&body, "203.0.113.5".parse().unwrap(), &[pair(30000)]).unwrap();
            assert_eq!(leg_streams(&body).unwrap()[0].hold, hold, "{dir}");
            assert!(String::from_utf8(r.to_vec())
                .unwrap()
                .contains(&format!("a={dir}\r\n")));
        }
    }

    #[test]
    fn streams_beyond_the_sessions_are_disabled_and_rejected_ones_stay() {
        let two = format!("{OFFER}m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
        let r = relay_sdp(
            &Bytes::from(two.clone()),
            "198.51.100.1".parse().unwrap(),
            &[pair(20000)],
        )
        .unwrap();
        let text = String::from_utf8(r.to_vec()).unwrap();
        assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{text}");
        assert!(text.contains("m=video 0 RTP/AVP 96\r\n"), "{text}");
        assert_eq!(leg_streams(&Bytes::from(two)).unwrap().len(), 2);
        let rejected = OFFER.replace("m=audio 4000", "m=audio 0");
        let r = relay_sdp(
            &Bytes::from(rejected.clone()),
            "198.51.100.1".parse().unwrap(),
            &[pair(20000)],
        )
        .unwrap();
        assert!(String::from_utf8(r.to_vec())
            .unwrap()
            .contains("m=audio 0 RTP/AVP"));
        assert_eq!(leg_streams(&Bytes::from(rejected)).unwrap()[0].rtp, None);
    }

    #[test]
    fn broken_sdp_is_an_error_and_content_types_are_told_apart() {
        assert!(relay_sdp(
            &Bytes::from_static(b"hello"),
            "192.0.2.1".parse().unwrap(),
            &[]
        )
        .is_err());
        assert_eq!(
            LegSdp::parse(&Bytes::from_static(OFFER.as_bytes()))
                .unwrap()
                .streams()
                .len(),
            1
        );
        assert!(LegSdp::parse(&Bytes::from_static(b"x")).is_err());
        assert_eq!(
            leg_streams(&Bytes::from_static(OFFER.as_bytes())).unwrap()[0].rtp,
            Some("192.0.2.10:4000".parse().unwrap())
        );
    }
}
