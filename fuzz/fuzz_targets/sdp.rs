//! Arbitrary bytes as an SDP body: parsing, every typed read, the relay's rewrites and
//! writing back must never panic; what parses writes back byte for byte, and what a
//! rewrite made must parse again.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mss_sdp::{check_answer, Direction, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let Ok(sdp) = SessionDescription::parse(body.clone()) else {
        return;
    };
    let mut written = Vec::new();
    sdp.write_to(&mut written);
    assert_eq!(written, data, "an untouched description writes back as it came");
    assert_eq!(sdp.to_bytes(), body);

    let _ = (sdp.origin(), sdp.connection(), sdp.direction(), sdp.is_on_hold());
    let _ = sdp.attributes().count();
    for stream in sdp.streams() {
        let _ = (stream.connection(), stream.direction(), stream.is_on_hold());
        let m = stream.media();
        let _ = (m.media_type(), m.port(), m.port_count(), m.proto(), m.ptime());
        let _ = (m.connection(), m.direction(), m.rtcp(), m.has_telephone_event());
        for pt in m.payload_types() {
            let _ = (m.rtpmap(pt), m.fmtp(pt));
        }
        let _ = (m.formats().count(), m.rtpmaps().count(), m.attributes().count());
    }
    assert!(check_answer(&sdp, &sdp).is_ok(), "a description answers itself");

    let mut leg = sdp.clone();
    let relay = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));
    leg.set_connection_address(relay);
    leg.set_origin_address(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let _ = leg.bump_session_version();
    leg.set_session_direction(Direction::SendRecv);
    leg.remove_session_attributes("ice-ufrag");
    for (i, m) in leg.media_mut().iter_mut().enumerate() {
        let port = 30000 + 2 * i as u16;
        let _ = m.set_port(port);
        m.set_rtcp(port + 1, Some(relay));
        m.set_direction(m.direction().unwrap_or(Direction::SendRecv).answer());
        m.remove_attributes("candidate");
    }
    let again = SessionDescription::parse(leg.to_bytes());
    assert!(again.is_ok(), "a rewritten description parses again");
});
