//! A flood from one address does not crowd out a phone on another: the real `mss` binary
//! on loopback, one thread sending unauthenticated REGISTERs from 127.0.0.1 as fast as it
//! can (bounded in count and time), a phone on 127.0.0.2 registering meanwhile with the
//! retransmissions of RFC 3261 §17.1.2.2. Every one of the phone's registrations gets its
//! `200` and is listed afterwards, and `/metrics` shows the flood dropped on arrival by the
//! per-source limit (`mss_transport_udp_source_limited_total`) and by the ban table's rate
//! limit.
//!
//! Loopback is on the default `ignore` list, so the first test sets `ignore = none`; the
//! second keeps the default: the flood's address is exempt from the rate limit, and only
//! the fair-share rule of the receive loop (the heaviest sender gives way while the socket
//! is backlogged) keeps the phone's requests from being lost in the kernel's buffer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{authorization, Server};
use mss_sip::framing::parse_datagram;
use mss_sip::{Message, Response};

const PASSWORD: &str = "phone-pw-1";
/// Most datagrams the flood sends (it also stops when the phone is done).
const FLOOD_MAX: u64 = 2_000_000;
/// Longest the flood runs.
const FLOOD_LIMIT: Duration = Duration::from_secs(30);
/// Registrations the phone makes during the flood.
const REGISTRATIONS: u32 = 5;

/// Sends `text` and waits for its final response, retransmitting at T1, 2·T1, 4·T1 and
/// waiting 4 s more after the last (RFC 3261 §17.1.2.2 with T1 = 500 ms); `None` when
/// nothing final came.
fn transact(sock: &UdpSocket, to: SocketAddr, text: &str, branch: &str) -> Option<Response> {
    let waits = [500, 1000, 2000, 4000].map(Duration::from_millis);
    let mut buf = vec![0u8; 65_536];
    for wait in waits {
        sock.send_to(text.as_bytes(), to).unwrap();
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                break;
            };
            let Ok(Message::Response(r)) = parse_datagram(Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            let ours = r
                .headers()
                .get(&mss_sip::HeaderName::Via)
                .is_some_and(|v| String::from_utf8_lossy(v).contains(branch));
            if ours && r.status().as_u16() >= 200 {
                return Some(r);
            }
        }
    }
    None
}

fn register_text(server: SocketAddr, me: SocketAddr, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-ph{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=ph\r\nTo: <sip:100@pbx.test>\r\nCall-ID: phone-{me}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:100@{me}>\r\nExpires: 300\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// The sum of every sample of metric `name` in the `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs the flood and the phone against a server with `security` as its `[security]`
/// section; returns the `/metrics` text afterwards.
fn flood_and_phone(security: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &format!("[user:100]\npassword = {PASSWORD}\n\n[security]\n{security}"),
    );
    let to = server.sip();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let me = sock.local_addr().unwrap();
            let start = Instant::now();
            let mut n = 0u64;
            while n < FLOOD_MAX && start.elapsed() < FLOOD_LIMIT && !stop.load(Ordering::Relaxed) {
                let text = format!(
                    "REGISTER sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-fl{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=fl{n}\r\nTo: <sip:100@pbx.test>\r\nCall-ID: flood-{n}\r\nCSeq: 1 REGISTER\r\nContact: <sip:100@{me}>\r\nContent-Length: 0\r\n\r\n"
                );
                // A full socket buffer on our side is the kernel's business; go on.
                let _ = sock.send_to(text.as_bytes(), to);
                n += 1;
            }
            sent.store(n, Ordering::Relaxed);
        })
    };
    // Let the flood get going.
    std::thread::sleep(Duration::from_millis(300));

    let phone = UdpSocket::bind("127.0.0.2:0").unwrap();
    let me = phone.local_addr().unwrap();
    let mut cseq = 0;
    let mut ok = 0;
    for _ in 0..REGISTRATIONS {
        cseq += 1;
        let challenge = transact(
            &phone,
            to,
            &register_text(to, me, cseq, ""),
            &format!("ph{cseq}"),
        )
        .expect("an answer to the REGISTER");
        assert_eq!(challenge.status().as_u16(), 401, "{challenge:?}");
        let auth = authorization(&challenge, to, "100", PASSWORD, 1);
        cseq += 1;
        let text = register_text(to, me, cseq, &format!("Authorization: {auth}\r\n"));
        let rsp = transact(&phone, to, &text, &format!("ph{cseq}")).expect("an answer");
        assert_eq!(rsp.status().as_u16(), 200, "{rsp:?}");
        ok += 1;
    }
    let flooding = !flood.is_finished();
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    assert_eq!(ok, REGISTRATIONS);
    assert!(flooding, "the flood ended before the phone was done");

    let regs = server.registrations();
    assert!(
        regs.iter().any(|r| r["contact"]
            .as_str()
            .is_some_and(|c| c.contains(&me.to_string()))),
        "{regs:?}"
    );
    let (status, m) = server.get("/metrics");
    assert_eq!(status, 200);
    let limited = metric(&m, "mss_transport_udp_source_limited_total");
    let flood_sent = sent.load(Ordering::Relaxed) as f64;
    assert!(limited <= flood_sent, "{limited} of {flood_sent}");
    m
}

#[test]
fn a_phone_registers_through_a_flood_from_another_address() {
    let m = flood_and_phone("ignore = none\n");
    let limited = metric(&m, "mss_transport_udp_source_limited_total");
    let rate_dropped = metric(&m, "mss_bans_dropped_total");
    assert!(limited > 0.0, "nothing limited on arrival:\n{m}");
    assert!(
        rate_dropped > 0.0,
        "nothing over the ban table's rate:\n{m}"
    );
}

#[test]
fn a_phone_registers_through_a_flood_from_an_exempt_address() {
    // Loopback stays on the ignore list: the flood is never rate-limited or banned.
    let m = flood_and_phone("");
    let limited = metric(&m, "mss_transport_udp_source_limited_total");
    assert!(limited > 0.0, "the flood never gave way:\n{m}");
    assert_eq!(metric(&m, "mss_bans_dropped_total"), 0.0, "{m}");
}
