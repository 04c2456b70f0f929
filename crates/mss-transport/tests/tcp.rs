//! TCP over loopback: framing, keep-alives, bad peers, limits, idle timeout, flow reuse
//! and outbound connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mss_sip::net::{Flow, Transport};
use mss_transport::{Received, TransportConfig, TransportError, Transports};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn tcp_config() -> TransportConfig {
    TransportConfig::with_listen(vec!["tcp:127.0.0.1:0".parse().unwrap()])
}

async fn start(config: TransportConfig) -> (Transports, mpsc::Receiver<Received>, SocketAddr) {
    let (t, rx) = Transports::bind(config).await.unwrap();
    let addr = t.local_addr(Transport::Tcp).unwrap();
    (t, rx, addr)
}

fn message(tag: &str) -> Vec<u8> {
    let body = format!("body of {tag}");
    format!(
        "MESSAGE sip:101@mss SIP/2.0\r\nVia: SIP/2.0/TCP ua;branch=z9hG4bK{tag}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn next(rx: &mut mpsc::Receiver<Received>) -> Received {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

/// Reads until the peer closes the connection (or resets it); returns what was read.
async fn read_to_close(conn: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = timeout(WAIT, conn.read_to_end(&mut out)).await.unwrap();
    out
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn two_messages_in_one_write_are_two_received() {
    let (t, mut rx, addr) = start(tcp_config()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let (a, b) = (message("a"), message("b"));
    conn.write_all(&[a.clone(), b.clone()].concat())
        .await
        .unwrap();
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!(&first.data[..], &a[..]);
    assert_eq!(&second.data[..], &b[..]);
    assert_eq!(first.flow.transport, Transport::Tcp);
    assert_eq!(first.flow.remote, conn.local_addr().unwrap());
    assert!(first.flow.connection.is_some());
    assert_eq!(first.flow, second.flow);
    assert_eq!(first.local, addr);
    assert_eq!(t.stats().snapshot().tcp_messages_received, 2);
}

#[tokio::test]
async fn a_message_split_over_many_writes_is_reassembled() {
    let (_t, mut rx, addr) = start(tcp_config()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.set_nodelay(true).unwrap();
    let m = message("split");
    for chunk in m.chunks(7) {
        conn.write_all(chunk).await.unwrap();
        conn.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = next(&mut rx).await;
    assert_eq!(&got.data[..], &m[..]);
    assert!(timeout(Duration::from_millis(50), rx.recv()).await.is_err());
}

#[tokio::test]
async fn double_crlf_ping_gets_a_single_crlf_pong() {
    let (t, mut rx, addr) = start(tcp_config()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    timeout(WAIT, conn.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    // A ping split in two, then a message: one more pong, and the message is intact.
    conn.write_all(b"\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    conn.write_all(&[&b"\r\n"[..], &message("after-ping")].concat())
        .await
        .unwrap();
    timeout(WAIT, conn.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    assert_eq!(&next(&mut rx).await.data[..], &message("after-ping")[..]);
    assert_eq!(t.stats().snapshot().tcp_keepalives_answered, 2);
    // A single CRLF before a message (RFC 3261 §7.5) is no ping: nothing comes back.
    conn.write_all(&[&b"\r\n"[..], &message("lone")].concat())
        .await
        .unwrap();
    assert_eq!(&next(&mut rx).await.data[..], &message("lone")[..]);
    let mut extra = [0u8; 1];
    assert!(timeout(Duration::from_millis(50), conn.read(&mut extra))
        .await
        .is_err());
}

#[tokio::test]
async fn bad_peers_are_disconnected_and_others_keep_working() {
    let (t, mut rx, addr) = start(tcp_config()).await;
    let mut good = TcpStream::connect(addr).await.unwrap();
    // No Content-Length on a stream (RFC 3261 §18.3).
    let mut no_length = TcpStream::connect(addr).await.unwrap();
    no_length
        .write_all(b"OPTIONS sip:mss SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n\r\n")
        .await
        .unwrap();
    // Announces a body larger than 64 KiB.
    let mut oversize = TcpStream::connect(addr).await.unwrap();
    oversize
        .write_all(b"MESSAGE sip:mss SIP/2.0\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    // Binary garbage with no line end, past the line limit.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    let junk: Vec<u8> = (0..40_000u32).map(|i| (i % 200) as u8 + 20).collect();
    let _ = garbage.write_all(&junk).await;

    assert!(read_to_close(&mut no_length).await.is_empty());
    assert!(read_to_close(&mut oversize).await.is_empty());
    assert!(read_to_close(&mut garbage).await.is_empty());
    assert_eq!(t.stats().snapshot().framing_errors, 3);

    good.write_all(&message("still-fine")).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(&got.data[..], &message("still-fine")[..]);
    let ok: &[u8] = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    t.send(&got.flow, Bytes::from_static(ok)).unwrap();
    let mut buf = vec![0u8; ok.len()];
    timeout(WAIT, good.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, ok);
    eventually("bad connections to close", || t.connection_count() == 1).await;
}

#[tokio::test]
async fn per_ip_limit_refuses_the_extra_connection() {
    let mut config = tcp_config();
    config.max_tcp_connections_per_ip = 2;
    let (t, mut rx, addr) = start(config).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    eventually("two connections", || t.connection_count() == 2).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(read_to_close(&mut third).await.is_empty());
    let s = t.stats().snapshot();
    assert_eq!(s.tcp_connections_refused, 1);
    assert_eq!(s.tcp_connections_open, 2);
    // The admitted ones still work, and a slot frees up when one closes.
    first.write_all(&message("ok")).await.unwrap();
    assert_eq!(&next(&mut rx).await.data[..], &message("ok")[..]);
    drop(first);
    eventually("slot released", || t.connection_count() == 1).await;
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    fourth.write_all(&message("fourth")).await.unwrap();
    assert_eq!(&next(&mut rx).await.data[..], &message("fourth")[..]);
}

#[tokio::test]
async fn total_limit_refuses_connections() {
    let mut config = tcp_config();
    config.max_tcp_connections = 1;
    let (t, _rx, addr) = start(config).await;
    let _first = TcpStream::connect(addr).await.unwrap();
    eventually("one connection", || t.connection_count() == 1).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(read_to_close(&mut second).await.is_empty());
    assert_eq!(t.stats().snapshot().tcp_connections_refused, 1);
    // Outbound connections count too.
    let err = t.send(
        &Flow {
            transport: Transport::Tcp,
            remote: "127.0.0.1:9".parse().unwrap(),
            connection: None,
        },
        Bytes::from_static(b"x"),
    );
    assert!(matches!(err, Err(TransportError::ConnectionLimit { .. })));
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut config = tcp_config();
    config.tcp_idle_timeout = Duration::from_millis(600);
    let (t, _rx, addr) = start(config).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut busy = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // Keep-alives are traffic: `busy` stays open while `idle` times out.
    for _ in 0..9 {
        busy.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        busy.read_exact(&mut pong).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(read_to_close(&mut idle).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(t.stats().snapshot().tcp_idle_closed, 1);
    assert_eq!(t.connection_count(), 1);
    assert!(read_to_close(&mut busy).await.is_empty());
    assert_eq!(t.stats().snapshot().tcp_idle_closed, 2);
}

#[tokio::test]
async fn requests_reuse_the_connection_a_register_came_on() {
    // DESIGN §7: a client behind TCP advertises an ephemeral port in Contact; requests to
    // it go back over its connection (RFC 5626 flow reuse).
    let (t, mut rx, addr) = start(tcp_config()).await;
    let mut ua = TcpStream::connect(addr).await.unwrap();
    ua.write_all(&message("register")).await.unwrap();
    let register = next(&mut rx).await;
    let request = message("to-ua");
    t.send(&register.flow, Bytes::from(request.clone()))
        .unwrap();
    let mut buf = vec![0u8; request.len()];
    timeout(WAIT, ua.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, request);
    // A flow naming no connection finds the open one to that address as well.
    let by_address = Flow {
        connection: None,
        ..register.flow
    };
    let used = t
        .send_from(None, &by_address, Bytes::from(request.clone()))
        .unwrap();
    assert_eq!(used.connection, register.flow.connection);
    timeout(WAIT, ua.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(t.is_open(&register.flow));
}

#[tokio::test]
async fn closed_connection_is_replaced_by_an_outbound_one() {
    let (t, mut rx, _addr) = start(tcp_config()).await;
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();

    // No connection yet: mss connects out; the peer's answer comes back on that flow.
    let flow = Flow {
        transport: Transport::Tcp,
        remote: peer_addr,
        connection: None,
    };
    let first = t
        .send_from(None, &flow, Bytes::from(message("one")))
        .unwrap();
    let old = first.connection.unwrap();
    let (mut conn1, _) = timeout(WAIT, peer.accept()).await.unwrap().unwrap();
    let mut buf = vec![0u8; message("one").len()];
    conn1.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, message("one"));
    conn1.write_all(&message("reply")).await.unwrap();
    let reply = next(&mut rx).await;
    assert_eq!(reply.flow.connection, Some(old));
    assert_eq!(reply.flow.remote, peer_addr);

    // The peer closes it; a send naming the dead connection opens a new one.
    drop(conn1);
    eventually("connection to close", || !t.is_open(&first)).await;
    let second = t
        .send_from(None, &first, Bytes::from(message("two")))
        .unwrap();
    assert_ne!(second.connection, Some(old));
    let (mut conn2, _) = timeout(WAIT, peer.accept()).await.unwrap().unwrap();
    let mut buf = vec![0u8; message("two").len()];
    conn2.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, message("two"));
    assert_eq!(t.stats().snapshot().tcp_connections_total, 2);
}

#[tokio::test]
async fn failed_outbound_connect_is_reported() {
    let (t, _rx, _addr) = start(tcp_config()).await;
    // A port nobody listens on: take one and release it.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = t.connect(closed).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    // The background variant queues, fails, and counts the lost message.
    let flow = Flow {
        transport: Transport::Tcp,
        remote: closed,
        connection: None,
    };
    t.send(&flow, Bytes::from_static(b"lost")).unwrap();
    let stats = t.stats();
    eventually("failed connect to be counted", || {
        stats.snapshot().send_errors >= 1 && t.connection_count() == 0
    })
    .await;
}

#[tokio::test]
async fn connect_then_send_and_receive() {
    let (t, mut rx, _addr) = start(tcp_config()).await;
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flow = t.connect(peer.local_addr().unwrap()).await.unwrap();
    let (mut conn, _) = timeout(WAIT, peer.accept()).await.unwrap().unwrap();
    // Connecting again reuses the open connection.
    assert_eq!(t.connect(flow.remote).await.unwrap(), flow);
    t.send(&flow, Bytes::from(message("hi"))).unwrap();
    let mut buf = vec![0u8; message("hi").len()];
    conn.read_exact(&mut buf).await.unwrap();
    conn.write_all(&message("back")).await.unwrap();
    assert_eq!(next(&mut rx).await.flow, flow);
}

#[tokio::test]
async fn tcp_readers_wait_when_the_channel_is_full() {
    let mut config = tcp_config();
    config.receive_queue = 1;
    let (t, mut rx, addr) = start(config).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let all: Vec<u8> = (0..20).flat_map(|i| message(&format!("m{i}"))).collect();
    conn.write_all(&all).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        assert_eq!(
            &next(&mut rx).await.data[..],
            &message(&format!("m{i}"))[..]
        );
    }
    assert_eq!(t.stats().snapshot().udp_datagrams_dropped, 0);
}

#[tokio::test]
async fn a_message_trickled_too_slowly_is_cut_off() {
    let mut config = tcp_config();
    config.tcp_message_timeout = Duration::from_millis(300);
    let (t, mut rx, addr) = start(config).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.set_nodelay(true).unwrap();
    let started = Instant::now();
    // Each byte is traffic, so the idle timeout never fires; the message timeout does.
    let m = message("slow");
    let mut closed = false;
    for b in m.iter().take(40) {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if t.connection_count() == 0 {
            closed = true;
            break;
        }
    }
    assert!(closed, "slow peer still connected");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(t.stats().snapshot().framing_errors, 1);
    // A message sent at a normal pace is unaffected.
    let mut fast = TcpStream::connect(addr).await.unwrap();
    fast.write_all(&message("fast")).await.unwrap();
    assert_eq!(&next(&mut rx).await.data[..], &message("fast")[..]);
}

#[tokio::test]
async fn many_connections_keep_their_messages_apart() {
    const CONNS: usize = 40;
    const PER_CONN: usize = 25;
    let (t, mut rx, addr) = start(tcp_config()).await;
    let mut clients = Vec::new();
    for c in 0..CONNS {
        clients.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            let local = conn.local_addr().unwrap();
            for i in 0..PER_CONN {
                conn.write_all(&message(&format!("c{c}-m{i}")))
                    .await
                    .unwrap();
            }
            // Each client gets back one answer per message, in order, on its connection.
            for i in 0..PER_CONN {
                let want = message(&format!("answer-c{c}-m{i}"));
                let mut buf = vec![0u8; want.len()];
                timeout(WAIT, conn.read_exact(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(buf, want);
            }
            local
        }));
    }
    let mut seen = std::collections::HashMap::new();
    for _ in 0..CONNS * PER_CONN {
        let got = next(&mut rx).await;
        let text = String::from_utf8(got.data.to_vec()).unwrap();
        let tag = text
            .split("branch=z9hG4bK")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        let (c, i) = tag.split_once('-').unwrap();
        // Messages of one connection arrive in order, all with the same flow.
        let entry = seen.entry(c.to_owned()).or_insert((got.flow, 0usize));
        assert_eq!(entry.0, got.flow);
        assert_eq!(i, format!("m{}", entry.1));
        entry.1 += 1;
        t.send(&got.flow, Bytes::from(message(&format!("answer-{tag}"))))
            .unwrap();
    }
    for client in clients {
        let local = timeout(WAIT, client).await.unwrap().unwrap();
        assert!(seen.values().any(|(flow, _)| flow.remote == local));
    }
    assert_eq!(seen.len(), CONNS);
    assert_eq!(t.stats().snapshot().tcp_connections_total, CONNS as u64);
}
