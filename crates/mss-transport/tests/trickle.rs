//! TCP: a large message trickled one byte per write over loopback is framed in bounded
//! time and delivered once. The kernel may merge small writes into larger reads here; the
//! unit test `one_byte_per_read_is_framed_incrementally_and_once` in `src/connection.rs`
//! forces one byte per read and shows that the reader does not rescan its buffer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use mss_sip::net::Transport;
use mss_transport::{TransportConfig, Transports};
use tokio::time::{timeout, Instant};

/// Size of the trickled message: close to the 64 KiB framing limit.
const SIZE: usize = 60 * 1024;

/// Far above what it takes (a fraction of a second), so that a slow shared machine does
/// not fail the test.
const BOUND: Duration = Duration::from_secs(30);

/// A message of `SIZE` bytes that is nearly all header lines: the part a rescanning reader
/// would walk line by line on every read.
fn head_heavy_message() -> Vec<u8> {
    let start = "MESSAGE sip:101@mss SIP/2.0\r\nVia: SIP/2.0/TCP ua;branch=z9hG4bKtrickle\r\n";
    let end = "Content-Length: 0\r\n\r\n";
    let mut head = String::from(start);
    let line_len = 250;
    let mut i = 0;
    while head.len() + line_len + end.len() <= SIZE {
        let name = format!("X-Trickle-{i:03}: ");
        let pad = "a".repeat(line_len - name.len() - 2);
        head.push_str(&name);
        head.push_str(&pad);
        head.push_str("\r\n");
        i += 1;
    }
    // Fill the rest with one last header so the message is exactly SIZE bytes.
    let rest = SIZE - head.len() - end.len();
    head.push_str("X-Fill: ");
    head.push_str(&"b".repeat(rest - "X-Fill: ".len() - 2));
    head.push_str("\r\n");
    head.push_str(end);
    assert_eq!(head.len(), SIZE);
    head.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_kib_message_trickled_byte_by_byte_is_framed_once() {
    let config = TransportConfig::with_listen(vec!["tcp:127.0.0.1:0".parse().unwrap()]);
    let (t, mut rx) = Transports::bind(config).await.unwrap();
    let addr = t.local_addr(Transport::Tcp).unwrap();
    let m = head_heavy_message();
    let sent = m.clone();
    let started = Instant::now();
    // A plain thread writes one byte per write with Nagle off, so that the reader sees
    // many small reads while it runs on the runtime's own workers.
    let writer = std::thread::spawn(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        for b in &sent {
            conn.write_all(std::slice::from_ref(b)).unwrap();
        }
        conn
    });
    let got = timeout(BOUND, rx.recv())
        .await
        .expect("trickled message not framed in time")
        .unwrap();
    let elapsed = started.elapsed();
    let conn = writer.join().unwrap();
    assert_eq!(got.data.len(), SIZE);
    assert_eq!(&got.data[..], &m[..]);
    // Framed once: exactly one message, nothing left over, no framing error.
    assert!(timeout(Duration::from_millis(100), rx.recv())
        .await
        .is_err());
    let s = t.stats().snapshot();
    assert_eq!(s.tcp_messages_received, 1);
    assert_eq!(s.framing_errors, 0);
    assert_eq!(s.bytes_received, SIZE as u64);
    assert_eq!(t.connection_count(), 1);
    drop(conn);
    eprintln!("60 KiB trickled byte by byte, framed in {elapsed:?}");
}
