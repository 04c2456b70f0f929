//! Descriptions the parser must accept, made of the lines user agents write: the lines it
//! reads (at most once per section where that is the rule), shuffled among lines it keeps
//! unread, with CRLF or LF after each line.
//!
//! [`description`] uses everything the parser accepts (unknown line types, text that is
//! not UTF-8, lines in unusual places); [`conforming_description`] keeps to what a strict
//! RFC 8866 parser accepts too, for the comparison with one.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mss_sdp::Direction;
use proptest::prelude::*;

/// Which lines a generated description may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vocabulary {
    /// Anything the parser accepts.
    Lenient,
    /// Only what RFC 8866 allows where it allows it.
    Conforming,
}

pub(crate) fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
    ]
}

pub(crate) fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::SendRecv),
        Just(Direction::SendOnly),
        Just(Direction::RecvOnly),
        Just(Direction::Inactive),
    ]
}

fn connection_fields(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => format!("IN IP4 {ip}"),
        IpAddr::V6(ip) => format!("IN IP6 {ip}"),
    }
}

/// `a=<name>[:<value>]` with a name the parser does not read.
fn other_attribute(vocabulary: Vocabulary) -> BoxedStrategy<Vec<u8>> {
    let name = match vocabulary {
        Vocabulary::Lenient => "[a-z][a-z0-9-]{0,10}",
        // A name no parser knows, so none checks its value.
        Vocabulary::Conforming => "x-[a-z]{1,8}",
    }
    .prop_filter("read attributes", |n| {
        n != "rtcp" && Direction::from_attribute(n).is_none()
    });
    (name, proptest::option::of("[!-~][ -~]{0,23}"))
        .prop_map(|(n, v)| match v {
            Some(v) => format!("a={n}:{v}").into_bytes(),
            None => format!("a={n}").into_bytes(),
        })
        .boxed()
}

/// `a=rtpmap:`, `a=fmtp:` and `a=ptime:` lines.
fn codec_attribute(vocabulary: Vocabulary) -> BoxedStrategy<Vec<u8>> {
    match vocabulary {
        Vocabulary::Lenient => prop_oneof![
            ("[0-9]{1,3}", "[A-Za-z0-9-]{1,12}", "[0-9]{1,6}")
                .prop_map(|(pt, name, rate)| format!("a=rtpmap:{pt} {name}/{rate}")),
            ("[0-9]{1,3}", "[ -~]{0,16}").prop_map(|(pt, p)| format!("a=fmtp:{pt} {p}")),
            "[0-9]{1,3}".prop_map(|n| format!("a=ptime:{n}")),
        ]
        .prop_map(String::into_bytes)
        .boxed(),
        Vocabulary::Conforming => prop_oneof![
            (
                0u8..128,
                "[A-Za-z][A-Za-z0-9-]{0,11}",
                1u32..200_000,
                proptest::option::of(1u8..3)
            )
                .prop_map(|(pt, name, rate, channels)| match channels {
                    Some(c) => format!("a=rtpmap:{pt} {name}/{rate}/{c}"),
                    None => format!("a=rtpmap:{pt} {name}/{rate}"),
                }),
            (0u8..128).prop_map(|pt| format!("a=fmtp:{pt} 0-16")),
            (1u32..200).prop_map(|n| format!("a=ptime:{n}")),
        ]
        .prop_map(String::into_bytes)
        .boxed(),
    }
}

/// Lines the parser keeps without reading, in any section.
fn lenient_kept_line() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        Just(b"t=0 0".to_vec()),
        Just(Vec::new()),
        Just(b"  ".to_vec()),
        "[ -~]{0,24}".prop_map(|t| format!("i={t}").into_bytes()),
        "[0-9]{1,6}".prop_map(|n| format!("b=AS:{n}").into_bytes()),
        other_attribute(Vocabulary::Lenient),
        codec_attribute(Vocabulary::Lenient),
        ("[bdefghijklnpqrtuwxyzA-Z]", "[ -~]{0,16}")
            .prop_map(|(k, v)| format!("{k}={v}").into_bytes()),
        // Any octet but NUL, CR and LF in a text line (RFC 8866 §5, a=charset).
        proptest::collection::vec(
            any::<u8>().prop_filter("line bytes", |b| !matches!(b, 0 | b'\r' | b'\n')),
            0..16
        )
        .prop_map(|v| [b"i=".to_vec(), v].concat()),
    ]
    .boxed()
}

/// Lines of one section: `c=`, `a=rtcp:` (media only) and a direction at most once each,
/// shuffled among lines the parser keeps without reading.
fn section_lines(
    vocabulary: Vocabulary,
    media: bool,
    connection: BoxedStrategy<Option<IpAddr>>,
) -> BoxedStrategy<Vec<Vec<u8>>> {
    let kept = match (vocabulary, media) {
        (Vocabulary::Lenient, _) => lenient_kept_line(),
        (Vocabulary::Conforming, false) => other_attribute(vocabulary),
        (Vocabulary::Conforming, true) => {
            prop_oneof![other_attribute(vocabulary), codec_attribute(vocabulary)].boxed()
        }
    };
    let rtcp = (any::<u16>(), proptest::option::of(ip()));
    let rtcp = match (vocabulary, media) {
        (Vocabulary::Conforming, false) => Just(None).boxed(),
        _ => proptest::option::of(rtcp).boxed(),
    };
    (
        connection,
        rtcp,
        proptest::option::of(direction()),
        proptest::collection::vec(kept, 0..6),
    )
        .prop_flat_map(|(c, rtcp, dir, mut lines)| {
            if let Some(ip) = c {
                lines.push(format!("c={}", connection_fields(ip)).into_bytes());
            }
            if let Some((port, ip)) = rtcp {
                let line = match ip {
                    Some(ip) => format!("a=rtcp:{port} {}", connection_fields(ip)),
                    None => format!("a=rtcp:{port}"),
                };
                lines.push(line.into_bytes());
            }
            if let Some(d) = dir {
                lines.push(format!("a={d}").into_bytes());
            }
            Just(lines).prop_shuffle()
        })
        .boxed()
}

fn media_line(vocabulary: Vocabulary) -> BoxedStrategy<Vec<u8>> {
    let (types, protos): (&[&str], &[&str]) = match vocabulary {
        Vocabulary::Lenient => (
            &["audio", "video", "text", "application"],
            &["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udp"],
        ),
        Vocabulary::Conforming => (
            &["audio", "video"],
            &["RTP/AVP", "RTP/SAVP", "RTP/AVPF", "UDP/TLS/RTP/SAVPF"],
        ),
    };
    let count = match vocabulary {
        Vocabulary::Lenient => proptest::option::of(1u16..4).boxed(),
        Vocabulary::Conforming => Just(None).boxed(),
    };
    (
        proptest::sample::select(types),
        any::<u16>(),
        count,
        proptest::sample::select(protos),
        proptest::collection::vec(0u8..128, 1..6),
    )
        .prop_map(|(media, port, count, proto, formats)| {
            let count = count.map(|c| format!("/{c}")).unwrap_or_default();
            let formats: Vec<String> = formats.iter().map(u8::to_string).collect();
            format!("m={media} {port}{count} {proto} {}", formats.join(" ")).into_bytes()
        })
        .boxed()
}

/// The lines of a description the parser accepts.
fn description_lines(vocabulary: Vocabulary) -> BoxedStrategy<Vec<Vec<u8>>> {
    let session_connection = proptest::option::of(ip()).boxed();
    session_connection
        .prop_flat_map(move |session_connection| {
            // Conforming: every media section has a c= when the session has none.
            let media_connection = match (vocabulary, session_connection) {
                (Vocabulary::Conforming, None) => ip().prop_map(Some).boxed(),
                _ => proptest::option::of(ip()).boxed(),
            };
            (
                "[a-zA-Z0-9-]{1,10}",
                "[0-9]{1,19}",
                any::<u64>(),
                ip(),
                match vocabulary {
                    Vocabulary::Lenient => "[ -~]{0,12}",
                    Vocabulary::Conforming => "[!-~][ -~]{0,11}",
                },
                section_lines(vocabulary, false, Just(session_connection).boxed()),
                proptest::collection::vec(
                    (
                        media_line(vocabulary),
                        section_lines(vocabulary, true, media_connection),
                    ),
                    1..4,
                ),
            )
        })
        .prop_map(
            move |(user, id, version, origin_ip, name, session, media)| {
                let mut lines = vec![
                    b"v=0".to_vec(),
                    format!("o={user} {id} {version} {}", connection_fields(origin_ip))
                        .into_bytes(),
                    format!("s={name}").into_bytes(),
                ];
                if vocabulary == Vocabulary::Conforming {
                    lines.push(b"t=0 0".to_vec());
                }
                lines.extend(session);
                for (m, section) in media {
                    lines.push(m);
                    lines.extend(section);
                }
                lines
            },
        )
        .boxed()
}

/// A body of those lines, each with CRLF or LF, the last one maybe with neither.
fn body(vocabulary: Vocabulary) -> impl Strategy<Value = Vec<u8>> {
    description_lines(vocabulary).prop_flat_map(|lines| {
        let n = lines.len();
        (
            Just(lines),
            proptest::collection::vec(any::<bool>(), n),
            any::<bool>(),
        )
            .prop_map(|(lines, crlf, final_newline)| {
                let mut body = Vec::new();
                let last = lines.len() - 1;
                for (i, (line, crlf)) in lines.iter().zip(crlf).enumerate() {
                    body.extend_from_slice(line);
                    if i < last || final_newline {
                        body.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                    }
                }
                body
            })
    })
}

/// Any description the parser accepts.
pub(crate) fn description() -> impl Strategy<Value = Vec<u8>> {
    body(Vocabulary::Lenient)
}

/// A description that keeps to RFC 8866: `t=` after `s=`, a `c=` for every stream,
/// `a=rtcp:` and codec attributes only in media sections.
pub(crate) fn conforming_description() -> impl Strategy<Value = Vec<u8>> {
    body(Vocabulary::Conforming)
}
