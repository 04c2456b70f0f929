//! SIP over WebSocket on loopback (RFC 7118): the upgrade with the `sip` subprotocol, one
//! SIP message per WebSocket message in both directions on the connection's flow, flow
//! reuse by address, CRLF and WebSocket keep-alives, messages that are not SIP dropped
//! and counted, an oversize message closed with 1009, bad and slow upgrades refused and
//! counted, a peer that answers no ping closed as idle, and the same over TLS (WSS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mss_sip::net::{Flow, Transport};
use mss_transport::{Received, TlsIdentity, TlsServer, TransportConfig, Transports};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(5);

/// A REGISTER shaped like JsSIP's (a `.invalid` Via host) without Content-Length, which
/// RFC 7118 allows.
const REGISTER: &str = "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/WS 7b4qkmv6ckg0.invalid;branch=z9hG4bK1\r\nMax-Forwards: 69\r\nTo: <sip:101@pbx.test>\r\nFrom: <sip:101@pbx.test>;tag=a\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:x@7b4qkmv6ckg0.invalid;transport=ws>;expires=600\r\nExpires: 600\r\n\r\n";

const OK: &str = "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/WS 7b4qkmv6ckg0.invalid;branch=z9hG4bK1;received=127.0.0.1\r\nTo: <sip:101@pbx.test>;tag=s\r\nFrom: <sip:101@pbx.test>;tag=a\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";

fn ws_config(listen: &str) -> TransportConfig {
    let mut c = TransportConfig::with_listen(vec![listen.parse().unwrap()]);
    c.ws_upgrade_timeout = Duration::from_millis(300);
    c
}

async fn start(c: TransportConfig) -> (Transports, mpsc::Receiver<Received>, SocketAddr) {
    let transport = c.listen[0].transport;
    let (t, rx) = Transports::bind(c).await.unwrap();
    let addr = t.local_addr(transport).unwrap();
    (t, rx, addr)
}

/// The WebSocket handshake over `stream` as a browser makes it, with `sip`.
async fn handshake<S>(stream: S, addr: SocketAddr, scheme: &str) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!("{scheme}://{addr}/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (ws, response) = timeout(WAIT, tokio_tungstenite::client_async(request, stream))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status().as_u16(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "sip");
    ws
}

async fn connect(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    handshake(tcp, addr, "ws").await
}

async fn recv(rx: &mut mpsc::Receiver<Received>) -> Received {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

/// The next data message from the server (pings and pongs skipped).
async fn next_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match m {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn messages_cross_on_the_connection_both_ways() {
    let (t, mut rx, addr) = start(ws_config("ws:127.0.0.1:0")).await;
    let mut ws = connect(addr).await;
    ws.send(Message::text(REGISTER)).await.unwrap();
    let got = recv(&mut rx).await;
    assert_eq!(&got.data[..], REGISTER.as_bytes());
    assert_eq!(got.flow.transport, Transport::Ws);
    assert!(got.flow.connection.is_some());
    assert_eq!(got.local, addr);
    // The answer goes back on the flow, as one text message.
    let used = t
        .send_from(
            Some(got.local),
            &got.flow,
            Bytes::from_static(OK.as_bytes()),
        )
        .unwrap();
    assert_eq!(used, got.flow);
    assert_eq!(next_text(&mut ws).await, OK);
    // A request to the browser later: found by transport and address alone too.
    let by_address = Flow {
        connection: None,
        ..got.flow
    };
    t.send(
        &by_address,
        Bytes::from_static(b"OPTIONS sip:x@h.invalid SIP/2.0\r\nContent-Length: 0\r\n\r\n"),
    )
    .unwrap();
    assert!(next_text(&mut ws).await.starts_with("OPTIONS "));
    // A binary message is SIP too.
    ws.send(Message::binary(REGISTER.as_bytes().to_vec()))
        .await
        .unwrap();
    assert_eq!(&recv(&mut rx).await.data[..], REGISTER.as_bytes());
    let s = t.stats().snapshot();
    assert_eq!(s.ws_upgrades, 1);
    assert_eq!(s.ws_messages_received, 2);
    assert_eq!(t.connection_count(), 1);
    // The browser goes: its flow is gone, and mss opens no WebSocket itself.
    ws.close(None).await.unwrap();
    drop(ws);
    eventually("connection left the table", || t.connection_count() == 0).await;
    let err = t
        .send(&got.flow, Bytes::from_static(OK.as_bytes()))
        .unwrap_err();
    assert!(err.to_string().contains("no open WS connection"), "{err}");
}

#[tokio::test]
async fn keep_alives_are_answered_and_not_sip_is_dropped() {
    let (t, mut rx, addr) = start(ws_config("ws:127.0.0.1:0")).await;
    let mut ws = connect(addr).await;
    // RFC 5626 over WebSocket, as SIP.js sends it: a double CRLF gets one CRLF.
    ws.send(Message::text("\r\n\r\n")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "\r\n");
    // A WebSocket ping gets its pong.
    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    let pong = timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(pong, Message::Pong(Bytes::from_static(b"p")));
    // Not SIP: dropped and counted, the connection stays.
    for junk in [
        "{\"hello\":1}",
        "OPTIONS sip:pbx.test SIP/2.0\r\nVia: x\r\n",
        "SIP/2.0 200 OK\r\nContent-Length: 9\r\n\r\nshort",
    ] {
        ws.send(Message::text(junk)).await.unwrap();
    }
    ws.send(Message::text(REGISTER)).await.unwrap();
    assert_eq!(&recv(&mut rx).await.data[..], REGISTER.as_bytes());
    let s = t.stats().snapshot();
    assert_eq!(s.ws_frames_dropped, 3);
    assert_eq!(s.ws_messages_received, 1);
    assert_eq!(s.tcp_keepalives_answered, 1);
}

#[tokio::test]
async fn an_oversize_message_closes_with_1009() {
    let mut c = ws_config("ws:127.0.0.1:0");
    c.framing.max_message_len = 4096;
    let (t, _rx, addr) = start(c).await;
    let mut ws = connect(addr).await;
    let big = format!("{REGISTER}{}", "a".repeat(5000));
    ws.send(Message::text(big)).await.unwrap();
    let close = loop {
        match timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Size);
    eventually("counted", || t.stats().snapshot().ws_oversize_closed == 1).await;
    eventually("closed", || t.connection_count() == 0).await;
}

/// Sends `request` on a raw TCP connection and returns what comes back until the close.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    timeout(WAIT, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn bad_and_slow_upgrades_are_refused_and_counted() {
    let (t, _rx, addr) = start(ws_config("ws:127.0.0.1:0")).await;
    let base = "GET / HTTP/1.1\r\nHost: pbx.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        (
            "OPTIONS sip:pbx.test SIP/2.0\r\nContent-Length: 0\r\n\r\n".to_owned(),
            "HTTP/1.1 400 ",
        ),
        (format!("{base}\r\n"), "HTTP/1.1 400 "),
        (
            format!("{base}Sec-WebSocket-Protocol: chat\r\n\r\n"),
            "HTTP/1.1 400 ",
        ),
        (
            "GET / HTTP/1.1\r\nHost: pbx.test\r\n\r\n".to_owned(),
            "HTTP/1.1 426 ",
        ),
        (
            base.replace("Version: 13", "Version: 8") + "Sec-WebSocket-Protocol: sip\r\n\r\n",
            "HTTP/1.1 426 ",
        ),
    ];
    for (request, expected) in &cases {
        let answer = raw(addr, request.as_bytes()).await;
        assert!(answer.starts_with(expected), "{request:?} → {answer}");
    }
    // A request head that never ends: closed at the deadline, without an answer.
    let started = Instant::now();
    let answer = raw(addr, b"GET / HTTP/1.1\r\nHost: pbx.test\r\n").await;
    assert_eq!(answer, "");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let s = t.stats().snapshot();
    assert_eq!(s.ws_upgrade_failures, cases.len() as u64);
    assert_eq!(s.ws_upgrade_timeouts, 1);
    assert_eq!(s.ws_upgrades, 0);
    assert_eq!(t.connection_count(), 0);
    assert_eq!(s.tcp_connections_open, 0);
    // Still serving.
    let mut ws = connect(addr).await;
    ws.send(Message::text("\r\n\r\n")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "\r\n");
}

#[tokio::test]
async fn a_peer_that_answers_no_ping_is_closed_as_idle() {
    let mut c = ws_config("ws:127.0.0.1:0");
    c.ws_ping_interval = Duration::from_millis(100);
    c.tcp_idle_timeout = Duration::from_millis(600);
    let (t, _rx, addr) = start(c).await;
    // A live browser reads, so tungstenite answers every ping with a pong.
    let mut live = connect(addr).await;
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        let deadline = Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, live.next()).await {
            if matches!(m, Message::Ping(_)) {
                pings += 1;
            }
        }
        (pings, live)
    });
    // A dead one never reads: no pong.
    let dead = connect(addr).await;
    eventually("dead peer closed", || {
        t.stats().snapshot().tcp_idle_closed == 1
    })
    .await;
    let (pings, live) = reader.await.unwrap();
    assert!(pings >= 5, "{pings} pings");
    // The live one outlived the idle timeout thanks to its pongs.
    assert_eq!(t.connection_count(), 1);
    drop((live, dead));
}

fn identity(name: &str) -> TlsIdentity {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    TlsIdentity::from_pem(
        c.cert.pem().as_bytes(),
        c.key_pair.serialize_pem().as_bytes(),
    )
    .unwrap()
}

/// Accepts any certificate.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
#[allow(deprecated)]
async fn wss_is_the_same_over_tls() {
    let mut c = ws_config("wss:127.0.0.1:0");
    c.tls = Some(TlsServer::new(identity("pbx.test")).unwrap());
    let (t, mut rx, addr) = start(c).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = timeout(
        WAIT,
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("pbx.test").unwrap(), tcp),
    )
    .await
    .unwrap()
    .unwrap();
    let mut ws = handshake(tls, addr, "wss").await;
    ws.send(Message::text(REGISTER.replace("/WS ", "/WSS ")))
        .await
        .unwrap();
    let got = recv(&mut rx).await;
    assert_eq!(got.flow.transport, Transport::Wss);
    t.send(&got.flow, Bytes::from_static(OK.as_bytes()))
        .unwrap();
    assert_eq!(next_text(&mut ws).await, OK);
    let s = t.stats().snapshot();
    assert_eq!((s.tls_handshakes, s.ws_upgrades), (1, 1));
    // Plain WebSocket on the WSS port is a failed TLS handshake (a TLS alert, no HTTP).
    let answer = raw(addr, b"GET / HTTP/1.1\r\nHost: pbx.test\r\n\r\n").await;
    assert!(!answer.contains("HTTP/"), "{answer:?}");
    assert_eq!(t.stats().snapshot().tls_handshake_failures, 1);
}

#[tokio::test]
async fn broken_websocket_framing_closes_and_counts() {
    let (t, _rx, addr) = start(ws_config("ws:127.0.0.1:0")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: pbx.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = timeout(WAIT, s.read(&mut head)).await.unwrap().unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101 "));
    // An unmasked text frame from a client (RFC 6455 §5.1: the server must close).
    s.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut rest = Vec::new();
    timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    eventually("counted", || t.stats().snapshot().framing_errors == 1).await;
    eventually("closed", || t.connection_count() == 0).await;
}
