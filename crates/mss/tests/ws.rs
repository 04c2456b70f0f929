//! SIP over WebSocket with the real binary (RFC 7118): a browser phone speaking as JsSIP
//! does (a `.invalid` Via host and Contact, `reg-id` and `+sip.instance`,
//! `Supported: outbound`, no Content-Length on a response without a body; none on
//! REGISTER either, as RFC 7118 allows) registers with digest over `ws:` and over
//! `wss:` (the self-signed certificate), and exchanges MESSAGEs with a UDP phone both
//! ways: the one to the browser over the connection it registered on, with mss's Via
//! saying WS/WSS. An oversize WebSocket message is closed with 1009, messages that are
//! not SIP are dropped, bad upgrades are refused with HTTP errors; on `wss:`, handshake
//! garbage and a stalled handshake are dropped, a frame announcing 2 GiB and fragments
//! over the limit together are closed with 1009; all counted in /metrics, and the server
//! keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod tls_common;
mod ws_common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{digest_answer, wait_for, Peer, Server};
use mss_sip::{HeaderName, Message, Request};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use ws_common::{Next, Socket, WsPhone};

const USERS: &str = "[user:101]\npassword = pw101\n[user:102]\npassword = pw102\n";

/// The random host JsSIP puts in its Via and Contact.
const HOST: &str = "7b4qkmv6ckg0.invalid";

/// A REGISTER shaped like JsSIP 3.10's, with `extra` header lines; without Content-Length,
/// which RFC 7118 allows (JsSIP's own requests carry one, its bodiless responses do not).
fn register(transport: &str, cseq: u32, extra: &str) -> String {
    format!(
        "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/{transport} {HOST};branch=z9hG4bK-js{cseq}\r\nMax-Forwards: 69\r\nTo: <sip:101@pbx.test>\r\nFrom: \"101\" <sip:101@pbx.test>;tag=ql2ntkf6lg\r\nCall-ID: 3p8nv0p3r2n5e6r1o3ug-{transport}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:lk1dqb9d@{HOST};transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d>\";expires=600\r\nExpires: 600\r\nAllow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\nSupported: path,gruu,outbound\r\nUser-Agent: JsSIP 3.10.0\r\n{extra}\r\n"
    )
}

/// A MESSAGE from `from` to `to` with the given Via (transport and sent-by).
fn message(via: &str, from: &str, to: &str, cseq: u32, extra: &str) -> String {
    let body = format!("hello {to} from {from}");
    format!(
        "MESSAGE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK-m{from}{cseq}\r\nMax-Forwards: 69\r\nTo: <sip:{to}@pbx.test>\r\nFrom: <sip:{from}@pbx.test>;tag=m{cseq}\r\nCall-ID: ws-msg-{from}-{to}\r\nCSeq: {cseq} MESSAGE\r\nContent-Type: text/plain\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The `200 OK` a phone answers `req` with, without Content-Length as JsSIP sends it.
fn ok_for(req: &Request, content_length: bool) -> String {
    let h = req.headers();
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for via in h.values(&HeaderName::Via) {
        out.push_str(&format!("Via: {}\r\n", String::from_utf8_lossy(via)));
    }
    let get = |n: &HeaderName| {
        String::from_utf8_lossy(h.values(n).next().expect("header missing")).into_owned()
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {};tag=phone\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        get(&HeaderName::From),
        get(&HeaderName::To),
        get(&HeaderName::CallId),
        get(&HeaderName::CSeq)
    ));
    if content_length {
        out.push_str("Content-Length: 0\r\n");
    }
    out.push_str("\r\n");
    out
}

fn metric(s: &Server, name: &str) -> u64 {
    let (_, text) = s.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Registers 102 from a UDP phone.
fn udp_phone(s: &Server) -> Peer {
    let udp = Peer::new();
    let ch = udp.transact(
        s.sip(),
        &common::register(s.sip(), &udp, "102", "u102", 1, ""),
    );
    let auth = common::authorization(&ch, s.sip(), "102", "pw102", 1);
    let ok = udp.transact(
        s.sip(),
        &common::register(
            s.sip(),
            &udp,
            "102",
            "u102",
            2,
            &format!("Authorization: {auth}\r\n"),
        ),
    );
    assert_eq!(ok.status().as_u16(), 200);
    udp
}

/// The whole JsSIP scenario over `phone` (`transport` WS or WSS, listening on `port`).
fn browser_registers_and_messages_cross<S: Socket>(
    s: &Server,
    phone: &mut WsPhone<S>,
    transport: &str,
    port: u16,
) {
    // REGISTER: 401, then the digest answer, then 200 with the contact as registered.
    let challenge = phone.transact(&register(transport, 1, ""));
    assert_eq!(challenge.status().as_u16(), 401);
    let via = String::from_utf8_lossy(challenge.headers().values(&HeaderName::Via).next().unwrap())
        .into_owned();
    // RFC 3261 §18.2.1: the .invalid sent-by gets the source address in `received`.
    assert!(via.contains("received=127.0.0.1"), "{via}");
    let auth = digest_answer(
        &challenge,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:pbx.test",
        "101",
        "pw101",
        1,
    );
    let ok = phone.transact(&register(
        transport,
        2,
        &format!("Authorization: {auth}\r\n"),
    ));
    assert_eq!(ok.status().as_u16(), 200, "{}", s.stderr());
    let contact = String::from_utf8_lossy(
        ok.headers()
            .values(&HeaderName::Contact)
            .next()
            .expect("no Contact in the 200"),
    )
    .into_owned();
    assert!(contact.contains(HOST), "{contact}");
    let regs = s.registrations();
    let r = regs.iter().find(|r| r["user"] == "101").unwrap();
    assert_eq!(r["transport"], transport, "{r}");
    assert_eq!(
        r["source"],
        phone.local().to_string(),
        "the binding keeps the connection's address: {r}"
    );

    let udp = udp_phone(s);

    // Browser → UDP phone: 407, the answer, the UDP phone gets it and its 200 comes back
    // over the WebSocket.
    let me = format!("{transport} {HOST}");
    let ch = phone.transact(&message(&me, "101", "102", 1, ""));
    assert_eq!(ch.status().as_u16(), 407);
    let auth = digest_answer(
        &ch,
        &HeaderName::ProxyAuthenticate,
        "MESSAGE",
        "sip:102@pbx.test",
        "101",
        "pw101",
        1,
    );
    phone.send(&message(
        &me,
        "101",
        "102",
        2,
        &format!("Proxy-Authorization: {auth}\r\n"),
    ));
    let raw = udp
        .recv_raw(Duration::from_secs(5))
        .expect("no MESSAGE at the UDP phone");
    let Ok(Message::Request(req)) = mss_sip::parse_datagram(bytes::Bytes::from(raw)) else {
        panic!("not a request at the UDP phone");
    };
    assert_eq!(req.method().as_str(), "MESSAGE");
    assert_eq!(&req.body()[..], b"hello 102 from 101");
    udp.send(s.sip(), ok_for(&req, true).as_bytes());
    let relayed = loop {
        match phone.recv(Duration::from_secs(5)) {
            Some(Message::Response(r)) if r.status().as_u16() >= 200 => break r,
            Some(_) => {}
            None => panic!("no answer over {transport}:\n{}", s.stderr()),
        }
    };
    assert_eq!(relayed.status().as_u16(), 200);

    // UDP phone → browser: mss sends over the connection the browser registered on
    // (flow reuse; the .invalid contact is never looked up), its own Via saying WS/WSS.
    let ch = udp.transact(
        s.sip(),
        &message(&format!("UDP {}", udp.addr()), "102", "101", 1, ""),
    );
    assert_eq!(ch.status().as_u16(), 407);
    let auth = digest_answer(
        &ch,
        &HeaderName::ProxyAuthenticate,
        "MESSAGE",
        "sip:101@pbx.test",
        "102",
        "pw102",
        1,
    );
    udp.send(
        s.sip(),
        message(
            &format!("UDP {}", udp.addr()),
            "102",
            "101",
            2,
            &format!("Proxy-Authorization: {auth}\r\n"),
        )
        .as_bytes(),
    );
    let req = match phone.recv(Duration::from_secs(5)) {
        Some(Message::Request(r)) => r,
        other => panic!("no MESSAGE over {transport}: {other:?}\n{}", s.stderr()),
    };
    assert_eq!(req.method().as_str(), "MESSAGE");
    assert_eq!(&req.body()[..], b"hello 101 from 102");
    let uri = String::from_utf8_lossy(req.uri_bytes()).into_owned();
    assert!(uri.contains(HOST), "to the registered contact: {uri}");
    let top_via = String::from_utf8_lossy(req.headers().values(&HeaderName::Via).next().unwrap())
        .into_owned();
    assert!(
        top_via.starts_with(&format!("SIP/2.0/{transport} 127.0.0.1:{port}")),
        "{top_via}"
    );
    // JsSIP answers without Content-Length.
    phone.send(&ok_for(&req, false));
    let answer = udp
        .recv_timeout(Duration::from_secs(5))
        .expect("no answer at the UDP phone");
    assert_eq!(answer.status().as_u16(), 200);
}

#[test]
fn a_browser_registers_over_ws_and_messages_cross_with_a_udp_phone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_ws(dir.path(), USERS);
    let mut phone = WsPhone::connect(s.ws());
    browser_registers_and_messages_cross(&s, &mut phone, "WS", s.ws().port());
    assert_eq!(metric(&s, "mss_transport_ws_upgrades_total"), 1);
    // REGISTER twice, MESSAGE twice, the 200 to the MESSAGE from 102.
    assert_eq!(metric(&s, "mss_transport_ws_messages_received_total"), 5);
    assert_eq!(metric(&s, "mss_transport_tls_handshakes_total"), 0);
}

#[test]
fn a_browser_registers_over_wss_with_the_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_ws(dir.path(), USERS);
    assert!(
        s.stdout().contains("created a self-signed TLS certificate"),
        "{}",
        s.stdout()
    );
    let mut phone = WsPhone::connect_tls(s.wss());
    browser_registers_and_messages_cross(&s, &mut phone, "WSS", s.wss().port());
    assert_eq!(metric(&s, "mss_transport_ws_upgrades_total"), 1);
    assert_eq!(metric(&s, "mss_transport_tls_handshakes_total"), 1);
}

/// Sends `request` on a raw TCP connection and returns the answer until the close.
fn raw_upgrade(addr: std::net::SocketAddr, request: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn oversize_not_sip_and_bad_upgrades_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_ws(dir.path(), USERS);
    // Over the 64 KiB limit of a SIP message: closed with 1009.
    let mut big = WsPhone::connect(s.ws());
    let mut text = register("WS", 1, "");
    text.push_str(&"a".repeat(70 * 1024));
    big.send(&text);
    match big.next(Duration::from_secs(5)) {
        Next::Closed(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("no 1009 close: {other:?}"),
    }
    // Not SIP: dropped, the connection stays and still works.
    let mut phone = WsPhone::connect(s.ws());
    phone.send("{\"jsonrpc\":\"2.0\"}");
    phone.send_binary(vec![0xff, 0x00, 0x7f, b'\n']);
    phone.send("\r\n\r\n");
    match phone.next(Duration::from_secs(5)) {
        Next::Text(t) => assert_eq!(t, "\r\n"),
        other => panic!("no keep-alive answer: {other:?}"),
    }
    let challenge = phone.transact(&register("WS", 1, ""));
    assert_eq!(challenge.status().as_u16(), 401);
    // Bad upgrades: HTTP errors, then the close.
    let base = "GET / HTTP/1.1\r\nHost: pbx.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let no_sip = raw_upgrade(s.ws(), &format!("{base}\r\n"));
    assert!(no_sip.starts_with("HTTP/1.1 400 "), "{no_sip}");
    assert!(no_sip.contains("Sec-WebSocket-Protocol: sip"), "{no_sip}");
    let garbage = raw_upgrade(
        s.ws(),
        "OPTIONS sip:pbx.test SIP/2.0\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
    let plain = raw_upgrade(s.ws(), "GET / HTTP/1.1\r\nHost: pbx.test\r\n\r\n");
    assert!(plain.starts_with("HTTP/1.1 426 "), "{plain}");
    assert_eq!(metric(&s, "mss_transport_ws_oversize_closed_total"), 1);
    assert_eq!(metric(&s, "mss_transport_ws_frames_dropped_total"), 2);
    assert_eq!(metric(&s, "mss_transport_ws_upgrade_failures_total"), 3);
    assert_eq!(metric(&s, "mss_transport_ws_upgrades_total"), 2);
    // Still serving over UDP.
    let peer = Peer::new();
    let r = peer.transact(
        s.sip(),
        &String::from_utf8(common::options(s.sip(), &peer, "after")).unwrap(),
    );
    assert_eq!(r.status().as_u16(), 200);
}

/// A client-to-server WebSocket frame header (masked, key 0 so the payload goes as it is):
/// `fin`, `opcode`, and the payload length it announces.
fn frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xffff => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// Reads `conn` until the server closes it (at most 5 s).
fn read_until_closed(conn: &mut std::net::TcpStream) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

#[test]
fn wss_drops_handshake_garbage_stalls_oversize_frames_and_not_sip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_ws(
        dir.path(),
        &format!("{USERS}[tls]\nhandshake_timeout = 1s\n"),
    );
    // An HTTP upgrade in clear on the wss: port: not a ClientHello, dropped at once.
    let mut clear = std::net::TcpStream::connect(s.wss()).unwrap();
    clear
        .write_all(b"GET / HTTP/1.1\r\nHost: pbx.test\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    read_until_closed(&mut clear);
    // Half a ClientHello, then nothing: dropped at the handshake timeout.
    let mut stalled = std::net::TcpStream::connect(s.wss()).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    read_until_closed(&mut stalled);
    assert_eq!(metric(&s, "mss_transport_tls_handshake_failures_total"), 1);
    assert_eq!(metric(&s, "mss_transport_tls_handshake_timeouts_total"), 1);

    // A frame announcing 2 GiB: closed with 1009 from its header, nothing buffered.
    let mut huge = WsPhone::connect_tls(s.wss());
    huge.send_raw(&frame_header(true, 0x1, 1 << 31));
    match huge.next(Duration::from_secs(5)) {
        Next::Closed(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("no 1009 close for a 2 GiB frame: {other:?}"),
    }
    // Fragments of 40 KiB each, over the 64 KiB message limit together: 1009.
    let mut pieces = WsPhone::connect_tls(s.wss());
    let chunk = vec![b'a'; 40 * 1024];
    let mut first = frame_header(false, 0x1, chunk.len() as u64);
    first.extend_from_slice(&chunk);
    pieces.send_raw(&first);
    let mut second = frame_header(false, 0x0, chunk.len() as u64);
    second.extend_from_slice(&chunk);
    pieces.send_raw(&second);
    match pieces.next(Duration::from_secs(5)) {
        Next::Closed(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("no 1009 close for 80 KiB in fragments: {other:?}"),
    }
    // Not SIP over wss: dropped, the connection stays and still registers.
    let mut phone = WsPhone::connect_tls(s.wss());
    phone.send("GET / HTTP/1.1\r\n\r\n");
    phone.send_binary(vec![0x16, 0x03, 0x01, 0x00, 0x00]);
    let challenge = phone.transact(&register("WSS", 1, ""));
    assert_eq!(challenge.status().as_u16(), 401);

    assert_eq!(metric(&s, "mss_transport_ws_oversize_closed_total"), 2);
    assert_eq!(metric(&s, "mss_transport_ws_frames_dropped_total"), 2);
    assert_eq!(metric(&s, "mss_transport_ws_upgrades_total"), 3);
    assert_eq!(metric(&s, "mss_transport_tls_handshakes_total"), 3);
    // Only the good phone's connection is left open.
    let open = wait_for(Duration::from_secs(5), || {
        (metric(&s, "mss_transport_tcp_connections_open") == 1).then_some(())
    });
    assert!(open.is_some(), "connections left open:\n{}", s.stderr());
    let peer = Peer::new();
    let r = peer.transact(
        s.sip(),
        &String::from_utf8(common::options(s.sip(), &peer, "after-wss")).unwrap(),
    );
    assert_eq!(r.status().as_u16(), 200);
}
