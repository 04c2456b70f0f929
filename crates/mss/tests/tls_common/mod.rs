//! A SIP peer over TLS for the integration tests: a blocking rustls client on loopback
//! that accepts any certificate (the tests compare the certificates they were shown),
//! frames what it reads by Content-Length, and says which certificate it got.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, Message, Response};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// Accepts any certificate.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

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

/// A TLS connection to mss.
pub struct TlsPeer {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

/// A TLS connection to `addr` with its handshake done (within 5 s), accepting any
/// certificate; reads time out after 5 s.
#[allow(deprecated)]
pub fn tls_stream(addr: SocketAddr) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from("pbx.test").map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let sock =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

impl TlsPeer {
    /// Connects and completes the handshake (within 5 s), or says why not.
    pub fn try_connect(addr: SocketAddr) -> Result<TlsPeer, String> {
        Ok(TlsPeer {
            stream: tls_stream(addr)?,
            buf: Vec::new(),
        })
    }

    /// Connects, or fails the test.
    pub fn connect(addr: SocketAddr) -> TlsPeer {
        TlsPeer::try_connect(addr).unwrap_or_else(|e| panic!("TLS connect to {addr}: {e}"))
    }

    /// The server's certificate (DER).
    pub fn certificate(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// Our end of the connection.
    pub fn local(&self) -> SocketAddr {
        self.stream.sock.local_addr().unwrap()
    }

    /// Sends `text` as it is.
    pub fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next SIP message within `timeout` (CRLF keep-alives skipped), or `None` at the
    /// timeout or the end of the stream.
    pub fn recv(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(n) = frame(&self.buf) {
                let data: Vec<u8> = self.buf.drain(..n).collect();
                return parse_datagram(Bytes::from(data)).ok();
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    /// Sends `text` and returns the first final response within 5 s.
    pub fn transact(&mut self, text: &str) -> Response {
        self.send(text);
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(m) = self.recv(deadline.saturating_duration_since(Instant::now())) {
            if let Message::Response(r) = m {
                if r.status().as_u16() >= 200 {
                    return r;
                }
            }
        }
        panic!("no final response over TLS to:\n{text}");
    }

    /// Whether the server closed the connection (or reset it) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.stream
                .sock
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// The length of the first whole message in `buf` (head and Content-Length body).
fn frame(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    (buf.len() >= head_end + len).then_some(head_end + len)
}
