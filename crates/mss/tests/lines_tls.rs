//! External lines over TLS with the real binary (RFC 3261 §26, RFC 5922): the "provider"
//! is a small rustls TLS server in this test, its certificate made with rcgen and its CA
//! written to the file the line's `tls_ca_file` names.
//!
//! - A provider whose certificate carries the line's `tls_server_name`: the REGISTER comes
//!   over TLS (`Via: SIP/2.0/TLS`, Contact `;transport=tls`), is challenged with `401`,
//!   the digest answer checks out, the `200` brings the line `online`; the provider's own
//!   request (an OPTIONS) comes back over the connection mss opened, which is the only one.
//! - A provider whose certificate names another host: the handshake is refused, the line
//!   is `unreachable` with the reason (name mismatch) in `GET /api/lines`, the failure is
//!   logged naming the line's registrar and counted; every connection mss opened began with
//!   a TLS ClientHello and no plaintext ever arrived.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod lines_common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{wait_for, Server};
use lines_common::{line, line_ini, wait_state, PASSWORD, USER};
use mss_sip::{parse_datagram, HeaderName, Message, Request};
use rcgen::{BasicConstraints, CertificateParams, CertifiedKey, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How long the provider keeps serving (every loop below is bounded by it).
const PROVIDER_LIFETIME: Duration = Duration::from_secs(60);
/// The provider's digest realm and nonce.
const REALM: &str = "provider.test";
const NONCE: &str = "tls-nonce-1";

/// A CA, and a server certificate for `name` signed by it: (CA PEM, rustls config).
fn provider_pki(name: &str) -> (String, Arc<ServerConfig>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Provider Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = CertifiedKey {
        cert: ca_params.self_signed(&ca_key).unwrap(),
        key_pair: ca_key,
    };
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca.cert, &ca.key_pair)
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    (ca.cert.pem(), Arc::new(config))
}

/// What the provider saw.
#[derive(Debug, Default)]
struct Log {
    /// The first byte of every accepted connection (0x16: a TLS handshake record).
    first_bytes: Vec<u8>,
    /// Handshakes that failed, with rustls' words.
    handshake_errors: Vec<String>,
    /// Every REGISTER received, as text.
    registers: Vec<String>,
    /// Digest answers that were checked: whether each was right.
    digest_ok: Vec<bool>,
    /// The status of mss's answer to the provider's OPTIONS over the line's connection.
    options_answer: Option<u16>,
}

/// The provider: a TLS listener on loopback served by one thread, one connection at a time.
struct Provider {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Provider {
    fn start(config: Arc<ServerConfig>) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (Arc::clone(&log), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let until = Instant::now() + PROVIDER_LIFETIME;
            while !s.load(Ordering::Relaxed) && Instant::now() < until {
                match listener.accept() {
                    Ok((sock, _)) => serve(sock, &config, &l, &s, until),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => break,
                }
            }
        });
        Provider {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.lock().unwrap())
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection: the TLS handshake, then REGISTERs (401, then 200 for a right
/// digest answer), then one OPTIONS of ours over the same connection.
fn serve(
    sock: TcpStream,
    config: &Arc<ServerConfig>,
    log: &Mutex<Log>,
    stop: &AtomicBool,
    until: Instant,
) {
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // What came first on the wire, before any TLS: mss never speaks plaintext here.
    let mut first = [0u8; 1];
    let peek_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < peek_until {
        match sock.peek(&mut first) {
            Ok(1) => {
                log.lock().unwrap().first_bytes.push(first[0]);
                break;
            }
            Ok(_) => return,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
    let conn = ServerConnection::new(Arc::clone(config)).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    let hs_until = Instant::now() + Duration::from_secs(5);
    while tls.conn.is_handshaking() && Instant::now() < hs_until {
        match tls.conn.complete_io(&mut tls.sock) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                log.lock().unwrap().handshake_errors.push(e.to_string());
                return;
            }
        }
    }
    if tls.conn.is_handshaking() {
        log.lock()
            .unwrap()
            .handshake_errors
            .push("handshake not finished".into());
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut asked = false;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        while let Some(n) = frame(&buf) {
            let data: Vec<u8> = buf.drain(..n).collect();
            match parse_datagram(Bytes::from(data.clone())) {
                Ok(Message::Request(req)) if req.method().as_str() == "REGISTER" => {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    let answer = register_answer(&req, &text, log);
                    tls.write_all(answer.as_bytes()).unwrap();
                    tls.flush().unwrap();
                    if answer.starts_with("SIP/2.0 200") && !asked {
                        asked = true;
                        tls.write_all(options_to_mss().as_bytes()).unwrap();
                        tls.flush().unwrap();
                    }
                }
                Ok(Message::Response(rsp)) => {
                    log.lock().unwrap().options_answer = Some(rsp.status().as_u16());
                }
                _ => {}
            }
        }
        let mut chunk = [0u8; 8192];
        match tls.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// `401` for a REGISTER without credentials; `200` (60 s) for a right digest answer,
/// `403` for a wrong one.
fn register_answer(req: &Request, text: &str, log: &Mutex<Log>) -> String {
    log.lock().unwrap().registers.push(text.to_owned());
    let h = req.headers();
    let Ok(auth) = h.auth(&HeaderName::Authorization) else {
        return reply(req, "403 Forbidden", "");
    };
    let Some(creds) = auth.first() else {
        return reply(
            req,
            "401 Unauthorized",
            &format!(
                "WWW-Authenticate: Digest realm=\"{REALM}\", nonce=\"{NONCE}\", qop=auth, algorithm=MD5\r\n"
            ),
        );
    };
    let get = |name: &str| {
        creds
            .params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let nc = u32::from_str_radix(&get("nc"), 16).unwrap_or(0);
    let challenge = [
        ("realm", REALM),
        ("nonce", NONCE),
        ("qop", "auth"),
        ("algorithm", "MD5"),
    ];
    let expected = mss_auth::authorize(
        challenge,
        "REGISTER",
        &get("uri"),
        USER,
        PASSWORD,
        &get("cnonce"),
        nc,
    )
    .unwrap();
    let want = format!("response=\"{}\"", get("response"));
    let ok = get("username") == USER
        && get("realm") == REALM
        && get("nonce") == NONCE
        && expected.contains(&want);
    log.lock().unwrap().digest_ok.push(ok);
    if !ok {
        return reply(req, "403 Forbidden", "");
    }
    let contact =
        String::from_utf8_lossy(h.get(&HeaderName::Contact).unwrap_or_default()).into_owned();
    reply(req, "200 OK", &format!("Contact: {contact};expires=60\r\n"))
}

/// A response to `req` with `status` ("200 OK") and `extra` header lines.
fn reply(req: &Request, status: &str, extra: &str) -> String {
    let h = req.headers();
    let mut out = format!("SIP/2.0 {status}\r\n");
    for via in h.values(&HeaderName::Via) {
        out.push_str(&format!("Via: {}\r\n", String::from_utf8_lossy(via)));
    }
    let get = |n: &HeaderName| String::from_utf8_lossy(h.get(n).unwrap_or_default()).into_owned();
    out.push_str(&format!(
        "From: {}\r\nTo: {};tag=prov\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        get(&HeaderName::From),
        get(&HeaderName::To),
        get(&HeaderName::CallId),
        get(&HeaderName::CSeq),
    ));
    out
}

/// The provider's OPTIONS to mss, sent over the connection mss opened.
fn options_to_mss() -> String {
    "OPTIONS sip:2001@pbx.test SIP/2.0\r\nVia: SIP/2.0/TLS provider.test;branch=z9hG4bK-prov-opt1\r\n\
     Max-Forwards: 70\r\nFrom: <sip:probe@provider.test>;tag=po1\r\nTo: <sip:2001@pbx.test>\r\n\
     Call-ID: provider-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        .to_owned()
}

/// The length of the first whole message in `buf` (head and Content-Length body), CRLF
/// keep-alives skipped by the caller's framing of what follows.
fn frame(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    (buf.len() >= head_end + len).then_some(head_end + len)
}

/// Starts mss (with a `tls:` listener) with line `p1` over TLS to `provider`, trusting
/// `ca_pem` (written next to `mss.ini` and named relatively) for `provider.test`.
fn start_mss(dir: &std::path::Path, provider: SocketAddr, ca_pem: &str) -> Server {
    std::fs::write(dir.join("provider-ca.pem"), ca_pem).unwrap();
    let extra = "transport = tls\ntls_ca_file = provider-ca.pem\ntls_server_name = provider.test\n\
                 expires = 60\nretry_min = 2s\nretry_max = 4s\n";
    Server::start_tls(dir, &line_ini(provider, extra))
}

fn metric(server: &Server, name: &str) -> u64 {
    let (_, text) = server.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn a_tls_line_registers_at_a_verified_provider_and_the_provider_reaches_mss_over_that_connection() {
    let (ca_pem, config) = provider_pki("provider.test");
    let provider = Provider::start(config);
    let dir = tempfile::tempdir().unwrap();
    let s = start_mss(dir.path(), provider.addr, &ca_pem);
    let context = || {
        format!(
            "{:#?}\nmss log:\n{}",
            provider.log(|l| format!("{l:?}")),
            s.stderr()
        )
    };
    let online = wait_state(&s, "online", Duration::from_secs(15), &context);
    assert!(online["expires_at"].is_number(), "{online}");

    let (registers, digest_ok, first_bytes, errors) = provider.log(|l| {
        (
            l.registers.clone(),
            l.digest_ok.clone(),
            l.first_bytes.clone(),
            l.handshake_errors.clone(),
        )
    });
    assert!(registers.len() >= 2, "{registers:?}");
    for r in &registers {
        assert!(r.contains("\r\nVia: SIP/2.0/TLS 127.0.0.1:"), "{r}");
        assert!(r.contains(";transport=tls>"), "{r}");
        assert!(r.starts_with("REGISTER sip:127.0.0.1:"), "{r}");
    }
    assert!(!registers[0].contains("Authorization:"), "{}", registers[0]);
    assert_eq!(digest_ok, vec![true], "{registers:?}");
    // One connection, TLS from its first byte, reused for the authenticated REGISTER.
    assert_eq!(first_bytes, vec![0x16], "{errors:?}");
    assert!(errors.is_empty(), "{errors:?}");

    // The provider's request came over the connection mss opened, and was answered there.
    let answer = wait_for(Duration::from_secs(5), || {
        provider.log(|l| l.options_answer)
    });
    assert_eq!(answer, Some(200), "{}", context());
    assert_eq!(provider.log(|l| l.first_bytes.len()), 1);
    assert_eq!(metric(&s, "mss_transport_tls_client_handshakes_total"), 1);
    assert_eq!(metric(&s, "mss_transport_tls_client_failures_total"), 0);
}

#[test]
fn a_provider_certificate_for_another_name_makes_the_line_unreachable_and_nothing_goes_in_plaintext(
) {
    let (ca_pem, config) = provider_pki("other.test");
    let provider = Provider::start(config);
    let dir = tempfile::tempdir().unwrap();
    let s = start_mss(dir.path(), provider.addr, &ca_pem);
    let context = || {
        format!(
            "{:#?}\nmss log:\n{}",
            provider.log(|l| format!("{l:?}")),
            s.stderr()
        )
    };
    let v = wait_state(&s, "unreachable", Duration::from_secs(10), &context);
    let reason = v["last_failure"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("certificate name mismatch")
            && reason.contains("provider.test")
            && reason.contains("other.test"),
        "{v}"
    );
    assert!(
        reason.starts_with(&format!("TLS to {}: ", provider.addr)),
        "{v}"
    );
    assert!(v["last_failure"]["code"].is_null(), "{v}");

    // It retries (retry_min = 2 s), over TLS again, and never gets further.
    let retried = wait_for(Duration::from_secs(10), || {
        (provider.log(|l| l.first_bytes.len()) >= 2).then_some(())
    });
    assert!(retried.is_some(), "{}", context());
    assert_eq!(line(&s)["state"], "unreachable");
    provider.log(|l| {
        assert!(l.first_bytes.iter().all(|&b| b == 0x16), "{l:?}");
        assert!(l.registers.is_empty(), "{l:?}");
        assert!(!l.handshake_errors.is_empty(), "{l:?}");
    });
    // The provider has seen the second attempt; mss counts its failure once it has read
    // the provider's alert, a moment later.
    let counted = wait_for(Duration::from_secs(10), || {
        (metric(&s, "mss_transport_tls_client_failures_total") >= 2).then_some(())
    });
    assert!(counted.is_some(), "{}", context());
    assert_eq!(metric(&s, "mss_transport_tls_client_handshakes_total"), 0);
    let log = s.stderr();
    assert!(
        log.contains("TLS connection to line p1 (registrar 127.0.0.1)")
            && log.contains("certificate name mismatch"),
        "{log}"
    );
}
