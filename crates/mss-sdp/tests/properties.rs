//! Property tests: no input makes parsing, a read or a rewrite panic; whatever parses
//! writes back byte for byte; rewrites give the values they set when parsed again and
//! leave every other line as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod generate;
mod samples;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use generate::{conforming_description, description, direction, ip};

use bytes::Bytes;
use mss_sdp::{check_answer, Direction, SessionDescription};
use proptest::prelude::*;

/// Calls every read and a few rewrites; only panics and broken invariants matter.
fn touch_everything(sdp: &SessionDescription) {
    let _ = (
        sdp.origin(),
        sdp.connection(),
        sdp.direction(),
        sdp.line_ending(),
    );
    let _ = sdp.attributes().count();
    let _ = sdp.is_on_hold();
    for stream in sdp.streams() {
        let _ = (stream.connection(), stream.direction(), stream.is_on_hold());
        let m = stream.media();
        let _ = (m.media_type(), m.port(), m.port_count(), m.proto());
        let _ = (m.formats().count(), m.payload_types().count());
        let _ = (m.connection(), m.direction(), m.rtcp(), m.ptime());
        let _ = (m.rtpmaps().count(), m.telephone_events().count());
        for pt in m.payload_types() {
            let _ = (m.rtpmap(pt), m.fmtp(pt));
        }
        let _ = m.attributes().count();
    }
    check_answer(sdp, sdp).expect("a description answers itself");

    let mut out = Vec::new();
    sdp.write_to(&mut out);
    assert_eq!(out, sdp.to_bytes());

    let mut changed = sdp.clone();
    changed.set_connection_address(IpAddr::V6(Ipv6Addr::LOCALHOST));
    changed.set_session_direction(Direction::Inactive);
    let _ = changed.bump_session_version();
    changed.set_origin_address(IpAddr::V4(Ipv4Addr::LOCALHOST));
    for m in changed.media_mut() {
        let _ = m.set_port(m.port().wrapping_add(1));
        m.set_rtcp(9, None);
        m.set_direction(Direction::SendOnly);
        m.remove_attributes("rtpmap");
    }
    let again = SessionDescription::parse(changed.to_bytes())
        .expect("a rewritten description parses again");
    assert_eq!(again.media().len(), sdp.media().len());
}

/// Bytes as text for failure messages.
fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A sample, or a generated description.
fn any_description() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::sample::select(samples::ALL).prop_map(|(_, b)| b.to_vec()),
        2 => description(),
        1 => conforming_description(),
    ]
}

// ----- Rewrites and what they must leave ------------------------------------------------

#[derive(Debug, Clone)]
enum Rewrite {
    ConnectionAddress(IpAddr),
    Port(usize, u16),
    Rtcp(usize, u16, Option<IpAddr>),
    RemoveRtcp(usize),
    Direction(usize, Direction),
    SessionDirection(Direction),
    BumpVersion,
    OriginAddress(IpAddr),
}

fn rewrite() -> impl Strategy<Value = Rewrite> {
    prop_oneof![
        ip().prop_map(Rewrite::ConnectionAddress),
        (0usize..4, any::<u16>()).prop_map(|(m, p)| Rewrite::Port(m, p)),
        (0usize..4, any::<u16>(), proptest::option::of(ip()))
            .prop_map(|(m, p, ip)| Rewrite::Rtcp(m, p, ip)),
        (0usize..4).prop_map(Rewrite::RemoveRtcp),
        (0usize..4, direction()).prop_map(|(m, d)| Rewrite::Direction(m, d)),
        direction().prop_map(Rewrite::SessionDirection),
        Just(Rewrite::BumpVersion),
        ip().prop_map(Rewrite::OriginAddress),
    ]
}

/// What the rewrites should have left in a media section.
#[derive(Debug, Clone, Default)]
struct ExpectedMedia {
    port: Option<u16>,
    rtcp: Option<Option<(u16, Option<IpAddr>)>>,
    direction: Option<Direction>,
}

/// Which kinds of line the rewrites may have changed, to compare all the others.
#[derive(Debug, Default)]
struct Touched {
    connection: bool,
    rtcp: bool,
    direction: bool,
    origin: bool,
}

impl Touched {
    /// The line as it must still be found after the rewrites, or `None` if it may have
    /// changed. `m=` lines are kept without their port, so sections still line up.
    fn keep(&self, line: &[u8]) -> Option<Vec<u8>> {
        let attribute = line.strip_prefix(b"a=");
        let name = attribute.and_then(|a| a.split(|b| *b == b':').next());
        let rtcp = name.is_some_and(|n| n.eq_ignore_ascii_case(b"rtcp"));
        let direction = attribute.is_some_and(|a| {
            ["sendrecv", "sendonly", "recvonly", "inactive"]
                .iter()
                .any(|d| a.eq_ignore_ascii_case(d.as_bytes()))
        });
        if (self.connection && line.starts_with(b"c="))
            || (self.rtcp && rtcp)
            || (self.direction && direction)
            || (self.origin && line.starts_with(b"o="))
        {
            return None;
        }
        if line.starts_with(b"m=") {
            let text = String::from_utf8_lossy(line);
            let mut fields: Vec<&str> = text.split(' ').collect();
            if let Some(port) = fields.get_mut(1) {
                *port = port.split_once('/').map_or("P", |_| "P/n");
            }
            return Some(fields.join(" ").into_bytes());
        }
        Some(line.to_vec())
    }
}

/// The lines of a body, without terminators.
fn split(body: &[u8]) -> Vec<&[u8]> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(sdp) = SessionDescription::parse(Bytes::from(data.clone())) {
            prop_assert_eq!(sdp.to_bytes(), data);
            touch_everything(&sdp);
        }
    }

    #[test]
    fn edited_descriptions_never_panic_and_round_trip(
        body in any_description(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut body = body;
        for (at, byte, how) in edits {
            let i = at.index(body.len() + 1);
            match how {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ if i < body.len() => { body.remove(i); }
                _ => {}
            }
        }
        if let Ok(sdp) = SessionDescription::parse_slice(&body) {
            let mut out = Vec::new();
            sdp.write_to(&mut out);
            prop_assert_eq!(show(&out), show(&body));
            prop_assert_eq!(sdp.to_bytes(), body);
            touch_everything(&sdp);
        }
    }

    #[test]
    fn generated_descriptions_parse_and_round_trip(
        body in prop_oneof![description(), conforming_description()],
    ) {
        let sdp = SessionDescription::parse_slice(&body)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", show(&body))))?;
        let mut out = Vec::new();
        sdp.write_to(&mut out);
        prop_assert_eq!(show(&out), show(&body));
        prop_assert!(!sdp.is_modified());
        touch_everything(&sdp);
    }

    #[test]
    fn rewrites_set_their_values_and_keep_every_other_line(
        body in any_description(),
        rewrites in proptest::collection::vec(rewrite(), 1..8),
    ) {
        let original = SessionDescription::parse_slice(&body).unwrap();
        let mut sdp = original.clone();
        let n = sdp.media().len();
        let mut media = vec![ExpectedMedia::default(); n];
        let mut touched = Touched::default();
        let mut connection = None;
        let mut session_direction = None;
        let mut origin_address = None;
        let mut version = original.origin().session_version;
        for rewrite in &rewrites {
            match *rewrite {
                Rewrite::ConnectionAddress(ip) => {
                    sdp.set_connection_address(ip);
                    connection = Some(ip);
                    touched.connection = true;
                }
                Rewrite::Port(m, port) => {
                    let m = m % n;
                    if sdp.media_mut()[m].set_port(port).is_ok() {
                        media[m].port = Some(port);
                    } else {
                        prop_assert_eq!(sdp.media()[m].formats().count(), 0);
                    }
                }
                Rewrite::Rtcp(m, port, ip) => {
                    sdp.media_mut()[m % n].set_rtcp(port, ip);
                    media[m % n].rtcp = Some(Some((port, ip)));
                    touched.rtcp = true;
                }
                Rewrite::RemoveRtcp(m) => {
                    sdp.media_mut()[m % n].remove_rtcp();
                    media[m % n].rtcp = Some(None);
                    touched.rtcp = true;
                }
                Rewrite::Direction(m, d) => {
                    sdp.media_mut()[m % n].set_direction(d);
                    media[m % n].direction = Some(d);
                    touched.direction = true;
                }
                Rewrite::SessionDirection(d) => {
                    sdp.set_session_direction(d);
                    session_direction = Some(d);
                    touched.direction = true;
                }
                Rewrite::BumpVersion => {
                    if let Ok(v) = sdp.bump_session_version() {
                        version = v;
                    } else {
                        prop_assert_eq!(version, u64::MAX);
                    }
                    touched.origin = true;
                }
                Rewrite::OriginAddress(ip) => {
                    sdp.set_origin_address(ip);
                    origin_address = Some(ip);
                    touched.origin = true;
                }
            }
        }
        let out = sdp.to_bytes();
        let again = SessionDescription::parse(out.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", show(&out))))?;

        // The values set.
        prop_assert_eq!(again.media().len(), n);
        prop_assert_eq!(again.origin().session_version, version);
        if let Some(ip) = origin_address {
            prop_assert_eq!(again.origin().address, ip.to_string());
        }
        if let Some(d) = session_direction {
            prop_assert_eq!(again.direction(), Some(d));
        }
        for (stream, expected) in again.streams().zip(&media) {
            let m = stream.media();
            if let Some(ip) = connection {
                prop_assert_eq!(stream.connection().and_then(|c| c.ip()), Some(ip));
            }
            if let Some(port) = expected.port {
                prop_assert_eq!(m.port(), port);
            }
            if let Some(rtcp) = expected.rtcp {
                let read = m.rtcp().map(|r| (r.port, r.connection.and_then(|c| c.ip())));
                prop_assert_eq!(read, rtcp);
            }
            if let Some(d) = expected.direction {
                prop_assert_eq!(m.direction(), Some(d));
            }
        }
        // The values not set.
        for (before, after) in original.media().iter().zip(again.media()) {
            prop_assert_eq!(before.media_type(), after.media_type());
            prop_assert_eq!(before.proto(), after.proto());
            prop_assert!(before.formats().eq(after.formats()));
            prop_assert_eq!(before.port_count(), after.port_count());
        }
        let o = (original.origin(), again.origin());
        prop_assert_eq!((o.0.username, o.0.session_id), (o.1.username, o.1.session_id));

        // Every other line, byte for byte and in order.
        let keep = |body: &[u8]| -> Vec<Vec<u8>> {
            split(body).into_iter().filter_map(|l| touched.keep(l)).collect()
        };
        let (before, after) = (keep(&body), keep(&out));
        prop_assert_eq!(
            before.iter().map(|l| show(l)).collect::<Vec<_>>(),
            after.iter().map(|l| show(l)).collect::<Vec<_>>()
        );
        // Line terminators: only those the body used (new lines take the first line's).
        let has_crlf = |b: &[u8]| b.windows(2).any(|w| w == b"\r\n");
        let has_bare_lf = |b: &[u8]| {
            b.iter().enumerate().any(|(i, c)| *c == b'\n' && (i == 0 || b[i - 1] != b'\r'))
        };
        prop_assert!(has_crlf(&body) || !has_crlf(&out));
        prop_assert!(has_bare_lf(&body) || !has_bare_lf(&out));
    }
}

#[test]
fn every_sample_round_trips_and_survives_every_read() {
    for (name, body) in samples::ALL {
        let sdp = SessionDescription::parse_slice(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sdp.to_bytes(), *body, "{name}");
        touch_everything(&sdp);
    }
}
