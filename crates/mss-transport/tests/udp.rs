//! UDP over loopback: round trip, the largest datagram, drops under a full channel,
//! sent-by, and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use mss_sip::net::{Flow, Transport};
use mss_transport::{
    ListenSpec, Received, TransportConfig, TransportError, Transports, UdpDatagram,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

async fn start(config: TransportConfig) -> (Transports, mpsc::Receiver<Received>) {
    Transports::bind(config).await.unwrap()
}

fn udp_config() -> TransportConfig {
    TransportConfig::with_listen(vec!["udp:127.0.0.1:0".parse().unwrap()])
}

async fn next(rx: &mut mpsc::Receiver<Received>) -> Received {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn udp_round_trip() {
    let (t, mut rx) = start(udp_config()).await;
    let server = t.local_addr(Transport::Udp).unwrap();
    assert_ne!(server.port(), 0);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let request = b"OPTIONS sip:mss SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    client.send_to(request, server).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(&got.data[..], request);
    assert_eq!(got.flow, Flow::udp(client.local_addr().unwrap()));
    assert_eq!(got.local, server);

    let used = t
        .send_from(
            Some(got.local),
            &got.flow,
            Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
        )
        .unwrap();
    assert_eq!(used, got.flow);
    let mut buf = [0u8; 100];
    let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"SIP/2.0 200 OK\r\n\r\n");
    assert_eq!(
        from, server,
        "the response leaves from the socket the request came to"
    );

    let s = t.stats().snapshot();
    assert_eq!(s.udp_datagrams_received, 1);
    assert_eq!(s.bytes_received, request.len() as u64);
    assert_eq!(s.messages_sent, 1);
}

#[tokio::test]
async fn largest_datagram_arrives_whole() {
    let (t, mut rx) = start(udp_config()).await;
    let server = t.local_addr(Transport::Udp).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // 65,535 − 20 (IPv4) − 8 (UDP): the largest payload there is.
    let big: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    client.send_to(&big, server).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.data.len(), big.len());
    assert_eq!(&got.data[..], &big[..]);

    // And mss can send one too; one byte more cannot be a datagram.
    let to = Flow::udp(client.local_addr().unwrap());
    t.send(&to, Bytes::from(big.clone())).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, _) = timeout(WAIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, big.len());
    let too_big = Bytes::from(vec![b'x'; 65_508]);
    assert!(matches!(
        t.send(&to, too_big),
        Err(TransportError::DatagramTooLarge { size: 65_508, .. })
    ));
    assert_eq!(t.stats().snapshot().send_errors, 1);
}

#[tokio::test]
async fn a_batch_goes_out_in_order_and_its_failures_are_named() {
    let (t, mut rx) = start(udp_config()).await;
    let server = t.local_addr(Transport::Udp).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = client.local_addr().unwrap();
    let v6: SocketAddr = "[::1]:5060".parse().unwrap();
    let mut batch: Vec<UdpDatagram> = (0..70u8)
        .map(|i| UdpDatagram {
            from: None,
            to,
            data: Bytes::from(vec![i; 1 + usize::from(i)]),
        })
        .collect();
    // Two that cannot go: too large, and no IPv6 socket bound.
    batch[3].data = Bytes::from(vec![b'x'; 65_508]);
    batch[50].to = v6;
    let mut failed = Vec::new();
    t.send_udp_batch(&batch, |i, e| failed.push((i, e)));
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].0, 3);
    assert!(matches!(
        failed[0].1,
        TransportError::DatagramTooLarge { .. }
    ));
    assert_eq!(failed[1].0, 50);
    assert!(matches!(
        failed[1].1,
        TransportError::NoSocketForFamily { .. }
    ));
    let mut buf = [0u8; 100];
    for i in (0..70u8).filter(|i| *i != 3 && *i != 50) {
        let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, server);
        assert_eq!(&buf[..n], &vec![i; 1 + usize::from(i)][..], "datagram {i}");
    }
    let s = t.stats().snapshot();
    assert_eq!(s.messages_sent, 68);
    assert_eq!(s.send_errors, 2);

    // A burst the other way arrives whole and in order (read in batches).
    for i in 0..40u8 {
        client.send_to(&[i; 3], server).await.unwrap();
    }
    for i in 0..40u8 {
        let got = next(&mut rx).await;
        assert_eq!(&got.data[..], &[i; 3]);
        assert_eq!(got.flow, Flow::udp(to));
    }
    assert_eq!(t.stats().snapshot().udp_datagrams_received, 40);
}

#[tokio::test]
async fn full_channel_drops_datagrams_and_counts_them() {
    let mut config = udp_config();
    config.receive_queue = 4;
    let (t, mut rx) = start(config).await;
    let server = t.local_addr(Transport::Udp).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..50u32 {
        client
            .send_to(format!("m{i}").as_bytes(), server)
            .await
            .unwrap();
    }
    let stats = t.stats();
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats.udp_datagrams_received.load(Ordering::Relaxed) < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "datagrams not all read"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = stats.snapshot();
    assert_eq!(s.udp_datagrams_dropped, 46);
    // The receive loop is still alive and the first four are queued in order.
    for i in 0..4u32 {
        assert_eq!(next(&mut rx).await.data, format!("m{i}").as_bytes());
    }
    client.send_to(b"after", server).await.unwrap();
    assert_eq!(&next(&mut rx).await.data[..], b"after");
}

#[tokio::test]
async fn sent_by_names_the_bound_or_the_routed_address() {
    let config = TransportConfig::with_listen(vec![
        "udp:0.0.0.0:0".parse().unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ]);
    let (t, _rx) = start(config).await;
    let udp_port = t.local_addr(Transport::Udp).unwrap().port();
    let dest: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    assert_eq!(
        t.sent_by(Transport::Udp, dest).unwrap(),
        SocketAddr::new("127.0.0.1".parse().unwrap(), udp_port)
    );
    assert_eq!(
        t.sent_by(Transport::Tcp, dest).unwrap(),
        t.local_addr(Transport::Tcp).unwrap()
    );
    let v6: SocketAddr = "[::1]:5060".parse().unwrap();
    assert!(matches!(
        t.sent_by(Transport::Udp, v6),
        Err(TransportError::NoSocketForFamily { .. })
    ));
    assert_eq!(t.local_addrs().len(), 2);
    assert_eq!(t.local_addrs()[0].transport, Transport::Udp);
}

#[tokio::test]
async fn ipv6_and_ipv4_sockets_side_by_side() {
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let mut listen = vec![ListenSpec::new(
        Transport::Udp,
        "127.0.0.1:0".parse().unwrap(),
    )];
    if v6 {
        listen.push("udp:[::1]:0".parse().unwrap());
    }
    let (t, mut rx) = start(TransportConfig::with_listen(listen)).await;
    if !v6 {
        return; // no IPv6 loopback in this sandbox
    }
    let server6 = t.local_addrs()[1].addr;
    let client = UdpSocket::bind("[::1]:0").await.unwrap();
    client.send_to(b"v6", server6).await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.local, server6);
    // The reply picks the IPv6 socket by the destination's family.
    t.send(&got.flow, Bytes::from_static(b"back")).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"back"[..], server6));
}

#[tokio::test]
async fn shutdown_stops_the_loops() {
    let config = TransportConfig::with_listen(vec![
        "udp:127.0.0.1:0".parse().unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ]);
    let (t, mut rx) = start(config).await;
    let tcp = t.local_addr(Transport::Tcp).unwrap();
    let mut conn = tokio::net::TcpStream::connect(tcp).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while t.connection_count() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    timeout(WAIT, t.shutdown()).await.unwrap();
    // The connection is closed, sends fail, and the channel ends once the tasks are gone.
    let mut buf = [0u8; 8];
    let n = timeout(WAIT, tokio::io::AsyncReadExt::read(&mut conn, &mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    let flow = Flow::udp("127.0.0.1:9".parse().unwrap());
    assert!(matches!(
        t.send(&flow, Bytes::from_static(b"x")),
        Err(TransportError::Shutdown)
    ));
    drop(t);
    assert!(timeout(WAIT, rx.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_tasks() {
    let (t, mut rx) = start(udp_config()).await;
    drop(t);
    assert!(timeout(WAIT, rx.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn bind_errors_name_the_address() {
    let (t, _rx) = start(udp_config()).await;
    let taken = t.local_addr(Transport::Udp).unwrap();
    let err = Transports::bind(TransportConfig::with_listen(vec![ListenSpec::new(
        Transport::Udp,
        taken,
    )]))
    .await
    .unwrap_err();
    assert!(err.to_string().contains(&taken.to_string()), "{err}");
    let err = Transports::bind(TransportConfig::with_listen(vec!["tls:127.0.0.1:0"
        .parse()
        .unwrap()]))
    .await
    .unwrap_err();
    assert!(matches!(err, TransportError::TlsNotConfigured(_)));
    let err = Transports::bind(TransportConfig::with_listen(vec!["wss:127.0.0.1:0"
        .parse()
        .unwrap()]))
    .await
    .unwrap_err();
    assert!(matches!(err, TransportError::TlsNotConfigured(_)));
    let err = Transports::bind(TransportConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::NoListener));
}
