//! An independent parser as the oracle: Mozilla's webrtc-sdp (a dev-dependency only) reads
//! every sample and many generated descriptions, and both parsers must agree on the media
//! sections, their ports, connection addresses, directions, `a=rtcp:` and `a=rtpmap:`, and
//! on the `o=` version. Where the two decide differently on purpose, a test says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod generate;
mod samples;

use std::net::IpAddr;

use mss_sdp::SessionDescription;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use webrtc_sdp::address::Address;
use webrtc_sdp::attribute_type::SdpAttribute;
use webrtc_sdp::error::SdpParserError;
use webrtc_sdp::media_type::SdpMedia;

/// What both parsers must read the same way.
#[derive(Debug, PartialEq)]
struct Reading {
    session_version: u64,
    streams: Vec<StreamReading>,
}

#[derive(Debug, PartialEq)]
struct StreamReading {
    media_type: String,
    port: u16,
    connection: Option<IpAddr>,
    direction: String,
    rtcp: Option<(u16, Option<IpAddr>)>,
    rtpmaps: Vec<(u8, String, u32)>,
}

fn ours(body: &[u8]) -> Reading {
    let sdp = SessionDescription::parse_slice(body).unwrap();
    Reading {
        session_version: sdp.origin().session_version,
        streams: sdp
            .streams()
            .map(|s| {
                let m = s.media();
                StreamReading {
                    media_type: m.media_type().to_owned(),
                    port: m.port(),
                    connection: s.connection().and_then(|c| c.ip()),
                    direction: s.direction().to_string(),
                    rtcp: m
                        .rtcp()
                        .map(|r| (r.port, r.connection.and_then(|c| c.ip()))),
                    rtpmaps: m
                        .rtpmaps()
                        .map(|r| (r.payload_type, r.encoding.to_owned(), r.clock_rate))
                        .collect(),
                }
            })
            .collect(),
    }
}

fn ip(address: impl Into<Address>) -> Option<IpAddr> {
    match address.into() {
        Address::Ip(ip) => Some(ip),
        Address::Fqdn(_) => None,
    }
}

fn direction(attributes: &[SdpAttribute]) -> Option<&'static str> {
    attributes.iter().find_map(|a| match a {
        SdpAttribute::Sendrecv => Some("sendrecv"),
        SdpAttribute::Sendonly => Some("sendonly"),
        SdpAttribute::Recvonly => Some("recvonly"),
        SdpAttribute::Inactive => Some("inactive"),
        _ => None,
    })
}

fn theirs(body: &str) -> Result<Reading, String> {
    let sdp = webrtc_sdp::parse_sdp(body, false).map_err(|e| e.to_string())?;
    // webrtc-sdp drops a line it does not support (like `m=` with protocol `udp`) with a
    // warning: such a description cannot be compared.
    for warning in &sdp.warnings {
        if let SdpParserError::Unsupported { line, .. } = warning {
            let compared = [
                "m=",
                "c=",
                "a=rtcp:",
                "a=rtpmap:",
                "a=send",
                "a=recv",
                "a=inac",
            ];
            if compared.iter().any(|p| line.starts_with(p)) {
                return Err(format!("unsupported: {line}"));
            }
        }
    }
    let session_connection = sdp.connection.as_ref().and_then(|c| ip(c.address.clone()));
    let session_direction = direction(&sdp.attribute);
    let stream = |m: &SdpMedia| StreamReading {
        media_type: m.get_type().to_string(),
        port: u16::try_from(m.get_port()).unwrap(),
        connection: match m.get_connection() {
            Some(c) => ip(c.address.clone()),
            None => session_connection,
        },
        direction: direction(m.get_attributes())
            .or(session_direction)
            .unwrap_or("sendrecv")
            .to_owned(),
        rtcp: m.get_attributes().iter().find_map(|a| match a {
            SdpAttribute::Rtcp(r) => Some((r.port, r.unicast_addr.clone().and_then(ip))),
            _ => None,
        }),
        rtpmaps: m
            .get_attributes()
            .iter()
            .filter_map(|a| match a {
                SdpAttribute::Rtpmap(r) => {
                    Some((r.payload_type, r.codec_name.clone(), r.frequency))
                }
                _ => None,
            })
            .collect(),
    };
    Ok(Reading {
        session_version: sdp.origin.session_version,
        streams: sdp.media.iter().map(stream).collect(),
    })
}

#[test]
fn both_parsers_read_every_sample_alike() {
    for (name, body) in samples::ALL {
        let text = std::str::from_utf8(body).unwrap();
        let theirs = theirs(text).unwrap_or_else(|e| panic!("{name}: webrtc-sdp: {e}"));
        assert_eq!(ours(body), theirs, "{name}");
    }
}

#[test]
fn both_parsers_read_generated_descriptions_alike() {
    let mut runner = TestRunner::deterministic();
    let strategy = generate::conforming_description();
    let (mut compared, mut refused) = (0, 0);
    for _ in 0..2000 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(text) = std::str::from_utf8(&body) else {
            continue;
        };
        match theirs(text) {
            Ok(reading) => {
                assert_eq!(ours(&body), reading, "\n{text}");
                compared += 1;
            }
            Err(e) => {
                refused += 1;
                if std::env::var("ORACLE_WHY").is_ok() {
                    eprintln!("REFUSED {}", e.split('\n').next().unwrap_or(""));
                }
            }
        }
    }
    eprintln!(
        "oracle: {compared} generated descriptions compared, {refused} refused by webrtc-sdp"
    );
    assert!(compared >= 100, "too few comparisons: {compared}");
}

/// Where mss-sdp decides otherwise than webrtc-sdp, on purpose: a B2BUA refuses what it
/// cannot read one way only, and keeps streams it does not relay so the answer can
/// reject them by index.
#[test]
fn deliberate_differences() {
    let base = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
    let both = |media: &str| {
        let body = format!("{base}{media}");
        let ours = SessionDescription::parse_slice(body.as_bytes()).map_err(|e| e.to_string());
        let theirs = webrtc_sdp::parse_sdp(&body, false);
        (ours, theirs)
    };
    // Two directions that contradict each other: which one holds is a guess.
    let (ours, theirs) = both("m=audio 4000 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n");
    assert_eq!(
        ours.unwrap_err(),
        "SDP line 8: a=recvonly after a=sendonly in the same section"
    );
    assert!(theirs.is_ok());
    // Two RTCP ports for one stream: the same.
    let (ours, theirs) = both("m=audio 4000 RTP/AVP 0\r\na=rtcp:4001\r\na=rtcp:4003\r\n");
    assert_eq!(
        ours.unwrap_err(),
        "SDP line 8: second a=rtcp: line in the same section"
    );
    assert!(theirs.is_ok());
    // A rejected stream that lists no format is harmless and is kept.
    let (ours, theirs) = both("m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP\r\n");
    assert_eq!(ours.unwrap().media().len(), 2);
    assert!(theirs.is_err());
    // A protocol webrtc-sdp does not know: it drops the m= line, which would shift every
    // m-line index after it; mss-sdp keeps it.
    let (ours, theirs) = both("m=message 7394 TCP/MSRP *\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(ours.unwrap().media().len(), 2);
    assert_eq!(theirs.unwrap().media.len(), 1);
}
