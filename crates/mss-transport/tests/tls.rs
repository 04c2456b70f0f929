//! TLS over loopback (RFC 3261 §26.2): messages framed as over TCP and answered on their
//! connection, flow reuse by address, handshake garbage and stalls dropped and counted,
//! and a certificate replaced while a connection stays open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mss_sip::net::{Flow, Transport};
use mss_transport::{
    Received, TlsIdentity, TlsServer, TransportConfig, TransportError, Transports,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(5);

fn identity(name: &str) -> TlsIdentity {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    TlsIdentity::from_pem(
        c.cert.pem().as_bytes(),
        c.key_pair.serialize_pem().as_bytes(),
    )
    .unwrap()
}

fn tls_config(server: &TlsServer) -> TransportConfig {
    let mut c = TransportConfig::with_listen(vec!["tls:127.0.0.1:0".parse().unwrap()]);
    c.tls = Some(server.clone());
    c.tls_handshake_timeout = Duration::from_millis(300);
    c
}

async fn start(server: &TlsServer) -> (Transports, mpsc::Receiver<Received>, SocketAddr) {
    let (t, rx) = Transports::bind(tls_config(server)).await.unwrap();
    let addr = t.local_addr(Transport::Tls).unwrap();
    (t, rx, addr)
}

/// Accepts any certificate: the tests compare the certificates they were shown.
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

#[allow(deprecated)]
async fn connect(addr: SocketAddr) -> TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("pbx.test").unwrap();
    timeout(
        WAIT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap()
}

fn leaf(conn: &TlsStream<TcpStream>) -> Vec<u8> {
    conn.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn message(tag: &str) -> Vec<u8> {
    format!(
        "MESSAGE sip:101@mss SIP/2.0\r\nVia: SIP/2.0/TLS ua;branch=z9hG4bK{tag}\r\n\
         Content-Length: 2\r\n\r\nhi"
    )
    .into_bytes()
}

async fn next(rx: &mut mpsc::Receiver<Received>) -> Received {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

async fn read_exact(conn: &mut TlsStream<TcpStream>, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    timeout(WAIT, conn.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn messages_are_framed_and_answered_on_their_connection() {
    let server = TlsServer::new(identity("pbx.test")).unwrap();
    let (t, mut rx, addr) = start(&server).await;
    let mut conn = connect(addr).await;
    let mut two = message("a");
    two.extend_from_slice(&message("b"));
    conn.write_all(&two).await.unwrap();
    conn.flush().await.unwrap();
    let a = next(&mut rx).await;
    let b = next(&mut rx).await;
    assert_eq!(&a.data[..], &message("a")[..]);
    assert_eq!(&b.data[..], &message("b")[..]);
    assert_eq!(a.flow.transport, Transport::Tls);
    assert!(a.flow.connection.is_some());
    assert_eq!(a.local, addr);
    // The answer goes back on the connection the request came on.
    t.send(&a.flow, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"))
        .unwrap();
    assert_eq!(read_exact(&mut conn, 18).await, b"SIP/2.0 200 OK\r\n\r\n");
    // A request to the peer's address without a connection id finds the same one
    // (RFC 5626 flow reuse, as for TCP).
    let by_address = Flow {
        connection: None,
        ..a.flow
    };
    let used = t
        .send_from(None, &by_address, Bytes::from_static(b"\r\n\r\n"))
        .unwrap();
    assert_eq!(used, a.flow);
    assert_eq!(read_exact(&mut conn, 4).await, b"\r\n\r\n");
    // A double-CRLF ping is answered as over TCP.
    conn.write_all(b"\r\n\r\n").await.unwrap();
    conn.flush().await.unwrap();
    assert_eq!(read_exact(&mut conn, 2).await, b"\r\n");
    let stats = t.stats().snapshot();
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.tcp_messages_received, 2);
    assert_eq!(t.connection_count(), 1);
    // mss opens no TLS connection: without one, the send fails.
    drop(conn);
    eventually("the connection to close", || t.connection_count() == 0).await;
    let err = t.send(&a.flow, Bytes::from_static(b"x")).unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::NoConnection {
                transport: Transport::Tls,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn garbage_and_stalled_handshakes_are_dropped_and_counted() {
    let server = TlsServer::new(identity("pbx.test")).unwrap();
    let (t, _rx, addr) = start(&server).await;
    // Plain SIP on the TLS port is not a ClientHello.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&message("plain")).await.unwrap();
    let mut out = Vec::new();
    let _ = timeout(WAIT, garbage.read_to_end(&mut out)).await.unwrap();
    eventually("the failure to be counted", || {
        t.stats().snapshot().tls_handshake_failures == 1
    })
    .await;
    // A client that connects and says nothing is dropped after the handshake timeout.
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let n = timeout(WAIT, silent.read(&mut [0u8; 16]))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(250));
    // One that stops half-way through its ClientHello too.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .await
        .unwrap();
    let n = timeout(WAIT, half.read(&mut [0u8; 16]))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    eventually("the timeouts to be counted", || {
        t.stats().snapshot().tls_handshake_timeouts == 2
    })
    .await;
    // The listener still serves a real client, and nothing is left behind.
    let _ok = connect(addr).await;
    eventually("the handshake", || t.stats().snapshot().tls_handshakes == 1).await;
    eventually("the dropped ones to be released", || {
        t.stats().snapshot().tcp_connections_open == 1
    })
    .await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_the_next_handshake_only() {
    let first = identity("one.test");
    let second = identity("two.test");
    let server = TlsServer::new(first.clone()).unwrap();
    let (t, mut rx, addr) = start(&server).await;
    let mut old = connect(addr).await;
    assert_eq!(leaf(&old), first.leaf_der().unwrap());
    server.replace(second.clone());
    let new = connect(addr).await;
    assert_eq!(leaf(&new), second.leaf_der().unwrap());
    // The connection made before the replacement still carries messages both ways.
    old.write_all(&message("old")).await.unwrap();
    old.flush().await.unwrap();
    let got = next(&mut rx).await;
    assert_eq!(&got.data[..], &message("old")[..]);
    t.send(&got.flow, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"))
        .unwrap();
    assert_eq!(read_exact(&mut old, 18).await, b"SIP/2.0 200 OK\r\n\r\n");
    assert_eq!(t.connection_count(), 2);
}

/// A client configuration offering `versions` that resumes from its own session store
/// (tickets, or for TLS 1.2 `session_ids_only`).
#[allow(deprecated)]
fn resuming_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    session_ids_only: bool,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let mut resumption = rustls::client::Resumption::in_memory_sessions(8);
    if session_ids_only {
        resumption = resumption.tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    }
    config.resumption = resumption;
    Arc::new(config)
}

/// Connects with `config`, exchanges a keep-alive (which also delivers TLS 1.3 tickets,
/// sent after the handshake), closes, and tells what the handshake was.
async fn handshake_kind(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> (rustls::ProtocolVersion, rustls::HandshakeKind) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("pbx.test").unwrap();
    let mut conn = timeout(
        WAIT,
        TlsConnector::from(Arc::clone(config)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap();
    conn.write_all(b"\r\n\r\n").await.unwrap();
    conn.flush().await.unwrap();
    assert_eq!(read_exact(&mut conn, 2).await, b"\r\n");
    let session = conn.get_ref().1;
    let seen = (
        session.protocol_version().unwrap(),
        session.handshake_kind().unwrap(),
    );
    conn.shutdown().await.unwrap();
    seen
}

#[tokio::test]
async fn a_second_connection_resumes_the_session_over_tls_1_3_and_1_2() {
    use rustls::version::{TLS12, TLS13};
    use rustls::{HandshakeKind, ProtocolVersion};
    let server = TlsServer::new(identity("pbx.test")).unwrap();
    let (t, _rx, addr) = start(&server).await;
    let cases: [(
        &[&'static rustls::SupportedProtocolVersion],
        bool,
        ProtocolVersion,
    ); 3] = [
        // TLS 1.3: a stateless ticket (PSK with a new ECDHE, RFC 8446 §2.2).
        (&[&TLS13], false, ProtocolVersion::TLSv1_3),
        // TLS 1.2 with RFC 5077 tickets: the abbreviated handshake, no key exchange.
        (&[&TLS12], false, ProtocolVersion::TLSv1_2),
        // TLS 1.2 by session id (RFC 5246 §7.3): mss's session cache.
        (&[&TLS12], true, ProtocolVersion::TLSv1_2),
    ];
    for (versions, session_ids_only, version) in cases {
        let config = resuming_client(versions, session_ids_only);
        let first = handshake_kind(addr, &config).await;
        assert_eq!(first, (version, HandshakeKind::Full));
        let second = handshake_kind(addr, &config).await;
        assert_eq!(
            second,
            (version, HandshakeKind::Resumed),
            "{version:?}, session ids only: {session_ids_only}"
        );
        // A client without the session does a full handshake again.
        let other = resuming_client(versions, session_ids_only);
        assert_eq!(handshake_kind(addr, &other).await.1, HandshakeKind::Full);
    }
    eventually("all connections to close", || t.connection_count() == 0).await;
    assert_eq!(t.stats().snapshot().tls_handshakes, 9);
}
