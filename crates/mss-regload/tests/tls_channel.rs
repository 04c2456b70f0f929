//! The client's TLS channel against a small rustls server on loopback: a request gets its
//! answer, and a second connection from the same configuration resumes its session (TLS
//! 1.3 tickets, TLS 1.2 tickets, TLS 1.2 session ids), which the channel reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use mss_regload::channel::TlsChannel;
use mss_regload::message::status;
use mss_regload::tls::{client_config, server_name, ResumeWith, TlsVersions};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A server answering every request on a connection with a `200` carrying the request's
/// Via, until the client closes; `connections` connections, then the thread ends.
fn serve(connections: usize) -> SocketAddr {
    let cert = rcgen::generate_simple_self_signed(vec!["bench.test".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let (tcp, _) = listener.accept().unwrap();
            let conn = ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut reader = BufReader::new(StreamOwned::new(conn, tcp));
            let mut via = String::new();
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.starts_with("Via:") {
                    via = line;
                } else if line == "\r\n" {
                    let answer = format!("SIP/2.0 200 OK\r\n{via}Content-Length: 0\r\n\r\n");
                    let stream = reader.get_mut();
                    stream.write_all(answer.as_bytes()).unwrap();
                    stream.flush().unwrap();
                }
            }
        }
    });
    addr
}

fn request(branch: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:bench.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch={branch}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_second_connection_resumes_and_says_so() {
    let cases = [
        (TlsVersions::Tls13, ResumeWith::Tickets, true),
        (TlsVersions::Tls12, ResumeWith::Tickets, true),
        (TlsVersions::Tls12, ResumeWith::SessionIds, true),
        (TlsVersions::Tls13, ResumeWith::Nothing, false),
    ];
    let addr = serve(2 * cases.len());
    let name = server_name("bench.test").unwrap();
    let source = "127.0.0.1".parse().unwrap();
    for (versions, resume, resumes) in cases {
        let config = client_config(versions, resume).unwrap();
        let mut seen = Vec::new();
        for i in 0..2 {
            let mut c =
                TlsChannel::open(&config, &name, source, addr, Duration::from_secs(5)).unwrap();
            let branch = format!("z9hG4bK-{versions:?}-{resume:?}-{i}.r");
            let answer = c.request(&request(&branch), &branch).unwrap();
            assert_eq!(status(&answer), Some(200));
            seen.push(c.resumed);
            mss_regload::channel::Channel::Tls(Box::new(c)).close();
        }
        assert_eq!(seen, [false, resumes], "{versions:?}, {resume:?}");
    }
}
