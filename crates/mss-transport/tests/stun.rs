//! UDP STUN keep-alives over loopback (RFC 5626 §4.4.2, §8): a Binding request on the SIP
//! port is answered at once with the client's address, never delivered as SIP; other
//! STUN-shaped datagrams are dropped and counted; SIP on the same socket is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use mss_sip::net::Transport;
use mss_transport::stun::{self, TransactionId, MAGIC_COOKIE, XOR_MAPPED_ADDRESS};
use mss_transport::{ListenSpec, Received, TransportConfig, Transports};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

/// A Binding request without attributes, as RFC 5626 §8 keep-alives are.
fn binding_request(id: [u8; 12]) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00];
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&id);
    m
}

/// Sends a Binding request from `client` to `server` and checks the response: a Binding
/// success response from the SIP socket, with the same transaction ID and the client's
/// address in XOR-MAPPED-ADDRESS.
async fn ping(client: &UdpSocket, server: SocketAddr, id: [u8; 12]) {
    client.send_to(&binding_request(id), server).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, from) = timeout(WAIT, client.recv_from(&mut buf))
        .await
        .expect("no STUN Binding response")
        .unwrap();
    let response = &buf[..n];
    assert_eq!(from, server);
    assert!(stun::is_stun(response));
    assert_eq!(&response[..2], &stun::BINDING_SUCCESS.to_be_bytes());
    assert_eq!(stun::transaction_id(response), Some(TransactionId(id)));
    let value = stun::find_attribute(response, XOR_MAPPED_ADDRESS).unwrap();
    assert_eq!(
        stun::decode_xor_mapped_address(&TransactionId(id), value),
        Some(client.local_addr().unwrap())
    );
}

async fn nothing_delivered(rx: &mut mpsc::Receiver<Received>) {
    assert!(timeout(Duration::from_millis(50), rx.recv()).await.is_err());
}

#[tokio::test]
async fn binding_requests_are_answered_on_the_sip_port() {
    let config = TransportConfig::with_listen(vec!["udp:127.0.0.1:0".parse().unwrap()]);
    let (t, mut rx) = Transports::bind(config).await.unwrap();
    let server = t.local_addr(Transport::Udp).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    ping(&client, server, [1; 12]).await;
    ping(&client, server, [2; 12]).await;
    nothing_delivered(&mut rx).await;

    // STUN-shaped but not an answerable Binding request: an indication, a truncated
    // request, a request whose length field lies. Dropped, counted, no reply.
    let mut indication = binding_request([3; 12]);
    indication[1] = 0x11;
    let truncated = binding_request([4; 12])[..12].to_vec();
    let mut lying = binding_request([5; 12]);
    lying[3] = 8;
    for bad in [indication, truncated, lying] {
        client.send_to(&bad, server).await.unwrap();
    }
    let mut buf = [0u8; 64];
    assert!(
        timeout(Duration::from_millis(100), client.recv_from(&mut buf))
            .await
            .is_err(),
        "a bad STUN datagram was answered"
    );
    nothing_delivered(&mut rx).await;

    // SIP on the same socket still goes to the channel.
    let sip = b"OPTIONS sip:mss SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    client.send_to(sip, server).await.unwrap();
    let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(&got.data[..], sip);

    let s = t.stats().snapshot();
    assert_eq!(s.udp_stun_keepalives_answered, 2);
    assert_eq!(s.udp_stun_dropped, 3);
    assert_eq!(s.udp_datagrams_received, 6);
    assert_eq!(s.messages_sent, 0);
}

#[tokio::test]
async fn binding_requests_over_ipv6_get_an_ipv6_mapped_address() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return; // no IPv6 loopback in this sandbox
    }
    let listen = vec![ListenSpec::new(Transport::Udp, "[::1]:0".parse().unwrap())];
    let (t, mut rx) = Transports::bind(TransportConfig::with_listen(listen))
        .await
        .unwrap();
    let server = t.local_addr(Transport::Udp).unwrap();
    let client = UdpSocket::bind("[::1]:0").await.unwrap();
    ping(&client, server, [6; 12]).await;
    nothing_delivered(&mut rx).await;
    assert_eq!(t.stats().snapshot().udp_stun_keepalives_answered, 1);
}
