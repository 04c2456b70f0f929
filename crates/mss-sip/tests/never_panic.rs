//! Property tests: no input makes the parser, the framer or a typed accessor panic, and
//! well-formed messages survive serialize → parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use mss_sip::{
    frame, parse_datagram, validate_core, Framed, Framer, HeaderName, Limits, Message, Method,
    Request, Response, StatusCode,
};
use proptest::prelude::*;

/// Calls every typed accessor; results are ignored, only panics matter.
fn touch_everything(msg: &Message) {
    let h = msg.headers();
    let _ = h.via();
    let _ = h.top_via();
    let _ = h.from().map(|f| (f.tag(), f.display_name_unquoted()));
    let _ = h.to();
    let _ = h.call_id();
    let _ = h.cseq();
    if let Ok(mss_sip::Contacts::List(l)) = h.contacts() {
        for c in l {
            let _ = (c.q(), c.expires(), c.instance(), c.reg_id());
            let _ = c
                .addr
                .uri
                .as_sip()
                .map(|u| (u.user_unescaped(), u.host_ip()));
        }
    }
    let _ = h.max_forwards();
    let _ = h.expires();
    let _ = h.min_expires();
    let _ = h.content_type();
    let _ = h.content_length();
    let _ = h.route();
    let _ = h.record_route();
    let _ = h.date();
    let _ = h.warnings();
    let _ = h.retry_after();
    let _ = h.allow();
    let _ = h.supported();
    for n in [HeaderName::Authorization, HeaderName::WwwAuthenticate] {
        let _ = h.auth(&n);
    }
    let _ = h.values(&HeaderName::Contact).count();
    let _ = validate_core(msg);
    if let Message::Request(r) = msg {
        let _ = r.uri();
        let _ = r.can_build_response();
        let _ = r.clone().stamp_via("[2001:db8::7]:5070".parse().unwrap());
        let mut rsp = Response::for_request(r, StatusCode::BAD_REQUEST, "Bad Request");
        rsp.set_to_tag("x");
        let _ = rsp.to_bytes();
    }
    let again =
        parse_datagram(msg.to_bytes()).expect("a parsed message parses again after encoding");
    let cl = msg.headers().count(&HeaderName::ContentLength);
    assert!(again.headers().len() + cl >= msg.headers().len());
}

const SEED: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP [2001:db8::1]\r\n\
From: \"A \\\"q\\\"\" <sip:a@example.com>;tag=1\r\n\
To: sip:bob@example.com\r\n\
Call-ID: x@y\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:a@1.2.3.4;transport=tcp>;q=0.5;expires=30, *\r\n\
Authorization: Digest username=\"a\", realm=\"r\"\r\n\
Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
Content-Length: 4\r\n\r\nbody";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = frame(&data, &Limits::default());
        if let Ok(m) = parse_datagram(Bytes::from(data)) {
            touch_everything(&m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut data = SEED.to_vec();
        for (pos, byte) in edits {
            let i = pos % data.len();
            data[i] = byte;
        }
        data.truncate(cut % (data.len() + 1));
        let small = Limits { max_message_len: 200, max_headers: 4, max_line_len: 40 };
        let _ = frame(&data, &small);
        let _ = frame(&data, &Limits::default());
        if let Ok(m) = parse_datagram(Bytes::from(data)) {
            touch_everything(&m);
        }
    }

    #[test]
    fn incremental_framer_agrees_with_frame(
        chunks in proptest::collection::vec(1usize..40, 1..40),
        edits in proptest::collection::vec((any::<usize>(), prop::sample::select(vec![b'\r', b'\n', b' ', b':', b'0', b'x'])), 0..4),
    ) {
        let mut data = b"\r\n".to_vec();
        data.extend_from_slice(SEED);
        data.extend_from_slice(SEED);
        for (pos, byte) in edits {
            let i = pos % data.len();
            data[i] = byte;
        }
        let limits = Limits { max_message_len: 1024, max_headers: 16, max_line_len: 256 };
        let mut framer = Framer::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut src = &data[..];
        'feed: for c in chunks {
            let take = c.min(src.len());
            buf.extend_from_slice(&src[..take]);
            src = &src[take..];
            loop {
                let a = framer.poll(&buf, &limits);
                let b = frame(&buf, &limits);
                prop_assert_eq!(a, b);
                match a {
                    Ok(Framed::KeepAlive(n)) | Ok(Framed::Message(n)) => { buf.drain(..n); }
                    Ok(Framed::Incomplete) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    #[test]
    fn built_messages_round_trip(
        method in prop::sample::select(vec!["INVITE", "REGISTER", "MESSAGE", "OPTIONS", "FOO-BAR"]),
        user in "[a-z0-9]{1,12}",
        host in "[a-z]{1,10}\\.example\\.com",
        port in 1u16..,
        seq in any::<u32>(),
        tag in "[A-Za-z0-9]{1,16}",
        display in "[ A-Za-z0-9,;<>]{0,20}",
        extra in proptest::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,30}"), 0..5),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let m = Method::from_bytes(Bytes::from(method.to_string()));
        let uri = format!("sip:{user}@{host}:{port}");
        let quoted = display.replace('\\', "\\\\").replace('"', "\\\"");
        let mut b = Request::builder(m.clone(), uri.clone())
            .via(format!("SIP/2.0/UDP {host}:{port};branch=z9hG4bK{tag}"))
            .from(format!("\"{quoted}\" <sip:{user}@{host}>;tag={tag}"))
            .to(format!("<{uri}>"))
            .call_id(format!("{tag}@{host}"))
            .cseq(seq)
            .max_forwards(70);
        for (n, v) in &extra {
            b = b.header(HeaderName::from_bytes(Bytes::from(n.clone())), v.trim().to_string());
        }
        let req = b.body("application/octet-stream", body.clone()).build();
        let wire = req.to_bytes();
        prop_assert_eq!(frame(&wire, &Limits::default()), Ok(mss_sip::Framed::Message(wire.len())));
        let back = parse_datagram(wire.clone()).unwrap();
        validate_core(&back).unwrap();
        let Message::Request(back) = back else { panic!("not a request") };
        prop_assert_eq!(back.method(), &m);
        prop_assert_eq!(back.uri_bytes(), uri.as_bytes());
        prop_assert_eq!(&back.body()[..], &body[..]);
        let h = back.headers();
        prop_assert_eq!(h.cseq().unwrap().seq, seq);
        prop_assert_eq!(h.from().unwrap().tag(), Some(tag.as_str()));
        prop_assert_eq!(h.from().unwrap().display_name_unquoted().unwrap(), display.as_str());
        prop_assert_eq!(h.top_via().unwrap().port, Some(port));
        for (n, v) in &extra {
            let name = HeaderName::from_bytes(Bytes::from(n.clone()));
            prop_assert!(h.get_all(&name).any(|x| x == v.trim().as_bytes()));
        }
        // Untouched messages serialize byte for byte.
        prop_assert_eq!(back.to_bytes(), wire);
    }
}
