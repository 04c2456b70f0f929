//! SIP over TLS with the real binary (RFC 3261 §26): sipsak registers over TLS; a TLS
//! phone (a rustls client) and a UDP phone exchange MESSAGEs both ways, the one to the TLS
//! phone over the connection it registered on; a certificate reload (admin API and
//! SIGHUP) serves the new certificate to the next handshake while an established
//! connection stays, and a broken file keeps the old one; handshake garbage and a stalled
//! handshake are dropped and counted; the self-signed certificate of the defaults is made
//! once and reused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod tls_common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{digest_answer, require_tool, run_bounded, send_signal, wait_for, Peer, Server};
use mss_sip::{HeaderName, Message, Response};
use tls_common::TlsPeer;

const USERS: &str =
    "[user:101]\npassword = pw101\n[user:102]\npassword = pw102\n[user:103]\npassword = pw103\n";

/// A REGISTER of `user` from the TLS peer, with `extra` header lines.
fn tls_register(peer: &TlsPeer, user: &str, cseq: u32, extra: &str) -> String {
    let me = peer.local();
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS {me};branch=z9hG4bK-tr{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=t{cseq}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: tls-reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me};transport=tls>\r\nExpires: 300\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// Registers `user` over `peer`'s connection (401, then the answer, then 200).
fn register_over_tls(peer: &mut TlsPeer, user: &str, password: &str) -> Response {
    let challenge = peer.transact(&tls_register(peer, user, 1, ""));
    assert_eq!(challenge.status().as_u16(), 401);
    let auth = digest_answer(
        &challenge,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:127.0.0.1",
        user,
        password,
        1,
    );
    peer.transact(&tls_register(
        peer,
        user,
        2,
        &format!("Authorization: {auth}\r\n"),
    ))
}

/// A MESSAGE from `from` to `to` with the given Via transport and address.
fn message(via: &str, me: SocketAddr, from: &str, to: &str, cseq: u32, extra: &str) -> String {
    let body = format!("hello {to} from {from}");
    format!(
        "MESSAGE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/{via} {me};branch=z9hG4bK-m{from}{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{from}@pbx.test>;tag=m{cseq}\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: tls-msg-{from}-{to}\r\nCSeq: {cseq} MESSAGE\r\nContent-Type: text/plain\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The `200 OK` a phone answers `req` with (Via, From, To with a tag, Call-ID, CSeq).
fn ok_for(req: &mss_sip::Request) -> String {
    let h = req.headers();
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for via in h.values(&HeaderName::Via) {
        out.push_str(&format!("Via: {}\r\n", String::from_utf8_lossy(via)));
    }
    let get = |n: &HeaderName| {
        String::from_utf8_lossy(h.values(n).next().expect("header missing")).into_owned()
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {};tag=phone\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        get(&HeaderName::From),
        get(&HeaderName::To),
        get(&HeaderName::CallId),
        get(&HeaderName::CSeq)
    ));
    out
}

fn metric(s: &Server, name: &str) -> u64 {
    let (_, text) = s.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn sipsak_registers_over_tls_and_messages_cross_between_tls_and_udp() {
    let sipsak = require_tool("sipsak");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_tls(dir.path(), USERS);
    // sipsak (gnutls) over TLS, ignoring the self-signed certificate. sipsak 0.9.8 takes
    // the session tickets a TLS 1.3 server sends after the handshake for a failed read
    // ("nothing received, select returned error"): its gnutls is kept to TLS 1.2 here.
    let priority = dir.path().join("gnutls-priority.conf");
    std::fs::write(&priority, "[overrides]\ndisabled-version = tls1.3\n").unwrap();
    let (ok, out, err) = run_bounded(
        Command::new(sipsak)
            .env("GNUTLS_SYSTEM_PRIORITY_FILE", &priority)
            .args([
                "-U",
                "-i",
                "-E",
                "tls",
                "--tls-ignore-cert-failure",
                "-x",
                "300",
                "-u",
                "103",
                "-a",
                "pw103",
                "-s",
            ])
            .arg(format!("sip:103@127.0.0.1:{}", s.tls().port())),
        Duration::from_secs(20),
    );
    assert!(ok, "sipsak failed:\n{out}\n{err}\n{}", s.stderr());
    let regs = s.registrations();
    let r = regs.iter().find(|r| r["user"] == "103").unwrap();
    assert_eq!(r["transport"], "TLS", "{r}");

    // A TLS phone for 101, a UDP phone for 102.
    let mut tls = TlsPeer::connect(s.tls());
    let ok = register_over_tls(&mut tls, "101", "pw101");
    assert_eq!(ok.status().as_u16(), 200);
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
    let regs = s.registrations();
    let r = regs.iter().find(|r| r["user"] == "101").unwrap();
    assert_eq!(r["transport"], "TLS", "{r}");

    // TLS → UDP: 407, the answer, the UDP phone gets it and its 200 comes back over TLS.
    let me = tls.local();
    let ch = tls.transact(&message("TLS", me, "101", "102", 1, ""));
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
    tls.send(&message(
        "TLS",
        me,
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
    udp.send(s.sip(), ok_for(&req).as_bytes());
    let relayed = loop {
        match tls.recv(Duration::from_secs(5)) {
            Some(Message::Response(r)) if r.status().as_u16() >= 200 => break r,
            Some(_) => {}
            None => panic!("no answer over TLS:\n{}", s.stderr()),
        }
    };
    assert_eq!(relayed.status().as_u16(), 200);

    // UDP → TLS: mss sends over the connection 101 registered on (flow reuse), with its
    // own Via saying TLS.
    let ch = udp.transact(s.sip(), &message("UDP", udp.addr(), "102", "101", 1, ""));
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
            "UDP",
            udp.addr(),
            "102",
            "101",
            2,
            &format!("Proxy-Authorization: {auth}\r\n"),
        )
        .as_bytes(),
    );
    let req = match tls.recv(Duration::from_secs(5)) {
        Some(Message::Request(r)) => r,
        other => panic!("no MESSAGE over TLS: {other:?}\n{}", s.stderr()),
    };
    assert_eq!(&req.body()[..], b"hello 101 from 102");
    let top_via = String::from_utf8_lossy(req.headers().values(&HeaderName::Via).next().unwrap())
        .into_owned();
    assert!(
        top_via.starts_with(&format!("SIP/2.0/TLS 127.0.0.1:{}", s.tls().port())),
        "{top_via}"
    );
    tls.send(&ok_for(&req));
    let answer = udp
        .recv_timeout(Duration::from_secs(5))
        .expect("no answer at the UDP phone");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(metric(&s, "mss_transport_tls_handshakes_total"), 2);
}

/// Writes a fresh self-signed certificate and key for `name` into `dir`.
fn write_pair(dir: &Path, name: &str) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.key_pair.serialize_pem()).unwrap();
}

fn options(peer: &TlsPeer, n: u32) -> String {
    let me = peer.local();
    format!(
        "OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TLS {me};branch=z9hG4bK-o{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@pbx.test>;tag=o{n}\r\nTo: <sip:pbx.test>\r\nCall-ID: tls-options-{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_reload_serves_the_new_certificate_to_the_next_handshake_while_connections_stay() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "one.test");
    let s = Server::start_tls(
        dir.path(),
        "[tls]\ncertificate = cert.pem\nprivate_key = key.pem\n",
    );
    let mut old = TlsPeer::connect(s.tls());
    let first = old.certificate();
    assert_eq!(old.transact(&options(&old, 1)).status().as_u16(), 200);

    // New files, reloaded through the admin API.
    write_pair(dir.path(), "two.test");
    let admin = SocketAddr::from(([127, 0, 0, 1], s.admin_port));
    let (status, body) = common::http_request(admin, "POST", "/api/tls/reload");
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let new = TlsPeer::connect(s.tls());
    let second = new.certificate();
    assert_ne!(second, first);
    let (_, now) = s.get("/api/tls");
    let now: serde_json::Value = serde_json::from_str(&now).unwrap();
    assert_eq!(now["fingerprint_sha256"], view["fingerprint_sha256"]);
    // The connection made before the reload still works.
    assert_eq!(old.transact(&options(&old, 2)).status().as_u16(), 200);

    // A broken key: the reload fails and says why, the certificate in use stays.
    std::fs::write(dir.path().join("key.pem"), "not a key\n").unwrap();
    let (status, body) = common::http_request(admin, "POST", "/api/tls/reload");
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("key.pem") && body.contains("previous certificate stays"),
        "{body}"
    );
    assert_eq!(TlsPeer::connect(s.tls()).certificate(), second);
    assert!(s.stderr().contains("TLS certificate not reloaded"));

    // SIGHUP reloads too.
    write_pair(dir.path(), "three.test");
    send_signal(s.pid(), "HUP");
    let third = wait_for(Duration::from_secs(5), || {
        let c = TlsPeer::connect(s.tls()).certificate();
        (c != second).then_some(c)
    })
    .unwrap_or_else(|| panic!("SIGHUP did not reload:\n{}", s.stderr()));
    assert_ne!(third, first);
    assert!(s.stderr().contains("trigger=\"SIGHUP\""), "{}", s.stderr());
    assert_eq!(old.transact(&options(&old, 3)).status().as_u16(), 200);
    assert_eq!(old.certificate(), first);
}

#[test]
fn handshake_garbage_and_stalls_are_dropped_and_counted() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_tls(dir.path(), "[tls]\nhandshake_timeout = 1s\n");
    let read_until_closed = |conn: &mut std::net::TcpStream| {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    // Plain SIP on the TLS port.
    let mut garbage = std::net::TcpStream::connect(s.tls()).unwrap();
    garbage
        .write_all(b"OPTIONS sip:pbx.test SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    read_until_closed(&mut garbage);
    // Half a ClientHello, then nothing.
    let started = std::time::Instant::now();
    let mut stalled = std::net::TcpStream::connect(s.tls()).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    read_until_closed(&mut stalled);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(metric(&s, "mss_transport_tls_handshake_failures_total"), 1);
    assert_eq!(metric(&s, "mss_transport_tls_handshake_timeouts_total"), 1);
    // Still serving, over TLS and UDP.
    let mut ok = TlsPeer::connect(s.tls());
    assert_eq!(ok.transact(&options(&ok, 1)).status().as_u16(), 200);
    let peer = Peer::new();
    let r = peer.transact(
        s.sip(),
        &String::from_utf8(common::options(s.sip(), &peer, "after")).unwrap(),
    );
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(metric(&s, "mss_transport_tcp_connections_open"), 1);
}

#[test]
fn the_defaults_make_a_self_signed_certificate_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_embedded_tls(dir.path());
    let cert = s.data.join("tls-cert.pem");
    let key = s.data.join("tls-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        s.stdout().contains("created a self-signed TLS certificate"),
        "{}",
        s.stdout()
    );
    let pem = std::fs::read(&cert).unwrap();
    let first = TlsPeer::connect(s.tls()).certificate();
    let mut peer = TlsPeer::connect(s.tls());
    let ok = register_over_tls(&mut peer, "100", &s.default_password("100"));
    assert_eq!(ok.status().as_u16(), 200);
    drop(peer);
    // A restart reuses the files.
    s.terminate();
    s.spawn();
    assert!(
        !s.stdout().contains("created a self-signed"),
        "{}",
        s.stdout()
    );
    assert_eq!(std::fs::read(&cert).unwrap(), pem);
    assert_eq!(TlsPeer::connect(s.tls()).certificate(), first);
}
