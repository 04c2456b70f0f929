//! The RFC 4475 torture messages over UDP and TCP: every one arrives whole over UDP; over
//! TCP each is framed or its connection closed, and the server keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mss_sip::net::Transport;
use mss_transport::{TransportConfig, Transports};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

/// Every message of the corpus (`testdata/sip-torture/`), by name.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let files: Vec<_> = mss_testdata::torture::cases()
        .into_iter()
        .map(|c| (c.name, c.bytes.to_vec()))
        .collect();
    assert_eq!(files.len(), 50, "corpus size");
    files
}

#[tokio::test]
async fn torture_messages_over_udp_and_tcp() {
    let files = corpus();
    let config = TransportConfig::with_listen(vec![
        "udp:127.0.0.1:0".parse().unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ]);
    let (t, mut rx) = Transports::bind(config).await.unwrap();
    let udp = t.local_addr(Transport::Udp).unwrap();
    let tcp = t.local_addr(Transport::Tcp).unwrap();

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (name, bytes) in &files {
        client.send_to(bytes, udp).await.unwrap();
        let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(&got.data[..], &bytes[..], "{name}");
    }

    let mut framed = 0u64;
    for (name, bytes) in &files {
        let mut conn = TcpStream::connect(tcp).await.unwrap();
        conn.write_all(bytes).await.unwrap();
        conn.shutdown().await.unwrap();
        // The server closes: at end of stream, or at once for a framing error.
        let mut rest = Vec::new();
        let _ = timeout(WAIT, conn.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{name}: connection left open"));
        while let Ok(got) = rx.try_recv() {
            let inside = bytes.windows(got.data.len()).any(|w| w == &got.data[..]);
            assert!(inside, "{name}: framed bytes come from the stream");
            framed += 1;
        }
    }
    let stats = t.stats().snapshot();
    assert!(framed + stats.framing_errors > 0);
    assert_eq!(stats.tcp_messages_received, framed);

    // Still serving.
    let mut conn = TcpStream::connect(tcp).await.unwrap();
    conn.write_all(b"OPTIONS sip:mss SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert!(got.data.starts_with(b"OPTIONS"));
}
