//! Outbound TLS over loopback (a line's provider, RFC 5922): a send on a TLS flow to a
//! registered peer opens a verified connection, the peer's messages come back over it and
//! later sends reuse it; a certificate for another name or from an unknown CA is refused,
//! reported with the reason and counted, and nothing reaches the peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use mss_sip::net::{Flow, Transport};
use mss_transport::{
    ConnectFailure, Received, TlsClient, TlsIdentity, TlsPeer, TlsServer, TransportConfig,
    TransportError, Transports,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedKey, IsCa, KeyPair};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

/// A CA and a server certificate for `names` signed by it.
struct Pki {
    ca_pem: String,
    leaf: TlsIdentity,
}

/// A CA named `cn` (distinct names: a CA with the issuer's name but another key would
/// be a bad signature, not an unknown issuer).
fn ca(cn: &str) -> CertifiedKey {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key_pair = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    CertifiedKey { cert, key_pair }
}

fn pki(names: &[&str]) -> Pki {
    let ca = ca("Provider CA");
    let params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &ca.cert, &ca.key_pair).unwrap();
    Pki {
        ca_pem: ca.cert.pem(),
        leaf: TlsIdentity::from_pem(leaf.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap(),
    }
}

async fn provider(identity: TlsIdentity) -> (Transports, mpsc::Receiver<Received>, SocketAddr) {
    let mut c = TransportConfig::with_listen(vec!["tls:127.0.0.1:0".parse().unwrap()]);
    c.tls = Some(TlsServer::new(identity).unwrap());
    let (t, rx) = Transports::bind(c).await.unwrap();
    let addr = t.local_addr(Transport::Tls).unwrap();
    (t, rx, addr)
}

async fn client() -> (Transports, mpsc::Receiver<Received>) {
    let mut c = TransportConfig::with_listen(vec!["udp:127.0.0.1:0".parse().unwrap()]);
    c.tls_handshake_timeout = Duration::from_secs(2);
    Transports::bind(c).await.unwrap()
}

fn peer(dir: &Path, ca_pem: &str, name: &str) -> TlsPeer {
    let path = dir.join(format!("ca-{name}.pem"));
    std::fs::write(&path, ca_pem).unwrap();
    TlsPeer::new(TlsClient::with_ca_file(&path).unwrap(), name, "line p1").unwrap()
}

fn options(n: u32) -> Bytes {
    Bytes::from(format!(
        "OPTIONS sip:p.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK{n}\r\n\
         CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn tls_flow(remote: SocketAddr) -> Flow {
    Flow {
        transport: Transport::Tls,
        remote,
        connection: None,
    }
}

async fn next(rx: &mut mpsc::Receiver<Received>) -> Received {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_registered_peer_gets_a_verified_connection_that_is_reused() {
    let pki = pki(&["provider.test"]);
    let (p, mut p_rx, addr) = provider(pki.leaf.clone()).await;
    let (mss, mut mss_rx) = client().await;
    let dir = tempfile::tempdir().unwrap();
    mss.set_tls_peer(addr, peer(dir.path(), &pki.ca_pem, "provider.test"));

    let used = mss.send_from(None, &tls_flow(addr), options(1)).unwrap();
    assert_eq!(used.transport, Transport::Tls);
    let first = next(&mut p_rx).await;
    assert_eq!(first.data, options(1));
    assert_eq!(first.flow.transport, Transport::Tls);
    // The provider answers (and later sends requests) on the connection mss opened.
    p.send(&first.flow, options(100)).unwrap();
    let back = next(&mut mss_rx).await;
    assert_eq!(back.data, options(100));
    assert_eq!(back.flow.transport, Transport::Tls);
    assert_eq!(back.flow.connection, used.connection);
    // A second send without a connection id goes on the same connection.
    let again = mss.send_from(None, &tls_flow(addr), options(2)).unwrap();
    assert_eq!(again.connection, used.connection);
    let second = next(&mut p_rx).await;
    assert_eq!(second.flow.connection, first.flow.connection);
    assert_eq!(p.connection_count(), 1);
    let s = mss.stats().snapshot();
    assert_eq!((s.tls_client_handshakes, s.tls_client_failures), (1, 0));
}

async fn refused(pki_names: &[&str], trusted_ca: Option<&str>, name: &str) -> ConnectFailure {
    let pki = pki(pki_names);
    let (p, mut p_rx, addr) = provider(pki.leaf.clone()).await;
    let (mss, _mss_rx) = client().await;
    let mut failures = mss.connect_failures().unwrap();
    assert!(mss.connect_failures().is_none());
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = trusted_ca.unwrap_or(&pki.ca_pem);
    mss.set_tls_peer(addr, peer(dir.path(), ca_pem, name));
    mss.send(&tls_flow(addr), options(1)).unwrap();
    let failure = timeout(WAIT, failures.recv()).await.unwrap().unwrap();
    assert_eq!(failure.flow, tls_flow(addr));
    // Nothing reached the provider, in plaintext or otherwise.
    assert!(timeout(Duration::from_millis(200), p_rx.recv())
        .await
        .is_err());
    let s = mss.stats().snapshot();
    assert_eq!((s.tls_client_handshakes, s.tls_client_failures), (0, 1));
    assert!(s.send_errors >= 1);
    assert_eq!(mss.connection_count(), 0);
    drop(p);
    failure
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_with_the_reason() {
    let f = refused(&["other.test"], None, "provider.test").await;
    assert!(f.reason.contains("name mismatch"), "{}", f.reason);
    assert!(f.reason.contains("provider.test"), "{}", f.reason);
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused_with_the_reason() {
    let other_ca = ca("Someone else's CA").cert.pem();
    let f = refused(&["provider.test"], Some(&other_ca), "provider.test").await;
    assert!(f.reason.contains("unknown issuer"), "{}", f.reason);
}

#[tokio::test]
async fn an_ip_registrar_is_verified_against_the_ip_address() {
    let pki = pki(&["127.0.0.1"]);
    let (_p, mut p_rx, addr) = provider(pki.leaf.clone()).await;
    let (mss, _rx) = client().await;
    let dir = tempfile::tempdir().unwrap();
    mss.set_tls_peer(addr, peer(dir.path(), &pki.ca_pem, "127.0.0.1"));
    mss.send(&tls_flow(addr), options(1)).unwrap();
    assert_eq!(next(&mut p_rx).await.data, options(1));
}

#[tokio::test]
async fn an_unregistered_tls_peer_gets_no_connection() {
    let (mss, _rx) = client().await;
    let err = mss
        .send(&tls_flow("127.0.0.1:5061".parse().unwrap()), options(1))
        .unwrap_err();
    assert!(matches!(err, TransportError::NoConnection { .. }), "{err}");
}
