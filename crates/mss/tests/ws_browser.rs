//! A real browser phone: JsSIP (npm, bundled by `scripts/install-test-js.sh`) in headless
//! Chromium (Debian `chromium`) registers over `wss:` with mss's self-signed certificate
//! (Chromium told to ignore certificate errors), gets a MESSAGE from a UDP phone and
//! answers it with a MESSAGE that the UDP phone gets; both cross mss's digest challenges.
//!
//! The test serves the page (`tests/browser/phone.html`) and the JsSIP bundle from an HTTP
//! server of its own on loopback; the page reports each step (`POST /report`), which is
//! what the test reads. Every wait is bounded. When Chromium or the JsSIP bundle is
//! missing the test says so and passes without running, unless `MSS_REQUIRE_ALL_PEERS` is
//! set (`scripts/test.sh` sets it, so CI always runs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{digest_answer, wait_for, Peer, Server};
use mss_sip::{HeaderName, Message, Request};

const USERS: &str = "[user:101]\npassword = pw101\n[user:102]\npassword = pw102\n";

/// The page the browser runs (JsSIP's phone), from the repository.
const PAGE: &str = include_str!("browser/phone.html");

/// Whether a missing peer must fail the test instead of skipping it.
fn peers_required() -> bool {
    std::env::var_os("MSS_REQUIRE_ALL_PEERS").is_some_and(|v| !v.is_empty())
}

/// `what` is missing: fails the test when peers are required, else says why it is skipped.
/// Returns `None` so that the caller can return.
fn missing(what: &str) -> Option<PathBuf> {
    let text = format!("{what}; run scripts/install-test-deps.sh and scripts/install-test-js.sh");
    assert!(!peers_required(), "{text} (MSS_REQUIRE_ALL_PEERS is set)");
    eprintln!("SKIPPED ws_browser: {text}");
    None
}

/// Debian's Chromium binary, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
        .or_else(|| missing("Chromium is not installed (Debian package chromium)"))
}

/// The JsSIP bundle made by `scripts/install-test-js.sh` (or `$MSS_JSSIP_JS`).
fn jssip_bundle() -> Option<PathBuf> {
    let path = std::env::var_os("MSS_JSSIP_JS")
        .map(PathBuf::from)
        .or_else(|| {
            let dir = std::env::var_os("MSS_TEST_JS_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    let cache = std::env::var_os("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .or_else(|| {
                            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache"))
                        })?;
                    Some(cache.join("mss-test-deps").join("jssip"))
                })?;
            Some(dir.join("jssip.min.js"))
        });
    match path {
        Some(p) if p.is_file() => Some(p),
        Some(p) => missing(&format!("no JsSIP bundle at {}", p.display())),
        None => missing("no JsSIP bundle (neither HOME nor XDG_CACHE_HOME is set)"),
    }
}

/// The test's HTTP server: `GET /` the page, `GET /jssip.min.js` the bundle,
/// `POST /report` a line of the page's report, kept in order.
struct PageServer {
    addr: SocketAddr,
    reports: Arc<Mutex<Vec<String>>>,
}

impl PageServer {
    fn start(bundle: Vec<u8>) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&reports);
        let bundle = Arc::new(bundle);
        // Ends with the test process; each request is answered and closed.
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let bundle = Arc::clone(&bundle);
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || serve(conn, &bundle, &kept));
            }
        });
        PageServer { addr, reports }
    }

    fn reports(&self) -> Vec<String> {
        self.reports.lock().unwrap().clone()
    }

    /// The first report starting with `event` within `limit`.
    fn wait_report(&self, event: &str, limit: Duration) -> Option<String> {
        let prefix = format!("{event} ");
        wait_for(limit, || {
            self.reports()
                .into_iter()
                .find_map(|r| r.strip_prefix(&prefix).map(str::to_owned))
        })
    }
}

/// Answers one HTTP/1.1 request on `conn`.
fn serve(conn: TcpStream, bundle: &[u8], reports: &Mutex<Vec<String>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(conn);
    let mut start = String::new();
    if reader.read_line(&mut start).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(65_536)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let target = start.split(' ').nth(1).unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let (status, kind, content): (&str, &str, &[u8]) = match (start.split(' ').next(), path) {
        (Some("GET"), "/") => ("200 OK", "text/html; charset=utf-8", PAGE.as_bytes()),
        (Some("GET"), "/jssip.min.js") => ("200 OK", "text/javascript", bundle),
        (Some("POST"), "/report") => {
            reports
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            ("204 No Content", "text/plain", b"")
        }
        _ => ("404 Not Found", "text/plain", b"not found"),
    };
    let mut conn = reader.into_inner();
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        content.len()
    );
    let _ = conn.write_all(content);
}

/// Headless Chromium on `url`, in a process group of its own (its helper processes
/// included) that is killed when this is dropped.
struct Browser {
    child: Child,
    log: PathBuf,
}

impl Browser {
    fn open(chromium: &Path, profile: &Path, log: PathBuf, url: &str) -> Browser {
        let child = Command::new(chromium)
            .args([
                "--headless",
                // Running as root in a container: Chromium's sandbox needs namespaces it
                // may not get.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                // mss's self-signed certificate of the wss: listener.
                "--ignore-certificate-errors",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        Browser { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the browser and its renderer, GPU and zygote processes.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A MESSAGE from the UDP phone 102 to 101, with `extra` header lines.
fn message_to_browser(udp: &Peer, cseq: u32, extra: &str) -> String {
    let me = udp.addr();
    let body = "hello 101 from the UDP phone";
    format!(
        "MESSAGE sip:101@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-b{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:102@pbx.test>;tag=b{cseq}\r\nTo: <sip:101@pbx.test>\r\nCall-ID: browser-msg-102\r\nCSeq: {cseq} MESSAGE\r\nContent-Type: text/plain\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The `200 OK` the UDP phone answers `req` with.
fn ok_for(req: &Request) -> String {
    let h = req.headers();
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for via in h.values(&HeaderName::Via) {
        out.push_str(&format!("Via: {}\r\n", String::from_utf8_lossy(via)));
    }
    let get = |n: &HeaderName| {
        String::from_utf8_lossy(h.values(n).next().expect("header missing")).into_owned()
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {};tag=udp\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        get(&HeaderName::From),
        get(&HeaderName::To),
        get(&HeaderName::CallId),
        get(&HeaderName::CSeq)
    ));
    out
}

/// Registers 102 from a UDP phone.
fn udp_phone(s: &Server) -> Peer {
    let udp = Peer::new();
    let ch = udp.transact(
        s.sip(),
        &common::register(s.sip(), &udp, "102", "b102", 1, ""),
    );
    let auth = common::authorization(&ch, s.sip(), "102", "pw102", 1);
    let ok = udp.transact(
        s.sip(),
        &common::register(
            s.sip(),
            &udp,
            "102",
            "b102",
            2,
            &format!("Authorization: {auth}\r\n"),
        ),
    );
    assert_eq!(ok.status().as_u16(), 200);
    udp
}

#[test]
fn jssip_in_chromium_registers_over_wss_and_messages_cross_with_a_udp_phone() {
    let (Some(chromium), Some(bundle)) = (chromium(), jssip_bundle()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_ws(dir.path(), USERS);
    let udp = udp_phone(&s);
    let pages = PageServer::start(std::fs::read(&bundle).unwrap());
    // debug=1: JsSIP's log comes with the reports, for the message of a failure.
    let url = format!(
        "http://{}/?debug=1&wss={}&uri={}&password={}&peer={}",
        pages.addr,
        encode(&format!("wss://127.0.0.1:{}/", s.wss().port())),
        encode("sip:101@pbx.test"),
        encode("pw101"),
        encode("sip:102@pbx.test"),
    );
    let profile = dir.path().join("chromium-profile");
    let browser = Browser::open(&chromium, &profile, dir.path().join("chromium.log"), &url);
    let context = |what: &str| {
        format!(
            "{what}\npage reports: {:?}\nchromium:\n{}\nmss:\n{}",
            pages.reports(),
            browser.log(),
            s.stderr()
        )
    };

    // Chromium's start on a loaded 2-core machine takes seconds; the whole test is bounded.
    let started = pages.wait_report("started", Duration::from_secs(60));
    assert!(started.is_some(), "{}", context("the page did not start"));
    let registered = wait_for(Duration::from_secs(30), || {
        pages.reports().into_iter().find(|r| {
            r.starts_with("registered ")
                || r.starts_with("registrationFailed ")
                || r.starts_with("error ")
        })
    });
    assert_eq!(
        registered.as_deref(),
        Some("registered "),
        "{}",
        context("JsSIP did not register")
    );
    let regs = s.registrations();
    let r = regs
        .iter()
        .find(|r| r["user"] == "101")
        .unwrap_or_else(|| panic!("{}", context("no binding of 101")));
    assert_eq!(r["transport"], "WSS", "{r}");
    assert!(
        r["user_agent"].as_str().unwrap_or("").starts_with("JsSIP"),
        "{r}"
    );

    // UDP phone → browser: 407, the answer, then JsSIP's 200 comes back.
    let ch = udp.transact(s.sip(), &message_to_browser(&udp, 1, ""));
    assert_eq!(ch.status().as_u16(), 407);
    let auth = digest_answer(
        &ch,
        &HeaderName::ProxyAuthenticate,
        "MESSAGE",
        "sip:101@pbx.test",
        "102",
        "pw102",
        1,
    );
    // JsSIP's 200 and its own MESSAGE may come in either order.
    udp.send(
        s.sip(),
        message_to_browser(&udp, 2, &format!("Proxy-Authorization: {auth}\r\n")).as_bytes(),
    );
    let (mut answer, mut echo) = (None, None);
    let _ = wait_for(Duration::from_secs(15), || {
        let raw = udp.recv_raw(Duration::from_millis(200))?;
        match mss_sip::parse_datagram(bytes::Bytes::from(raw)) {
            Ok(Message::Response(r)) if r.status().as_u16() >= 200 => answer = Some(r),
            Ok(Message::Request(r)) if r.method().as_str() == "MESSAGE" => echo = Some(r),
            _ => {}
        }
        (answer.is_some() && echo.is_some()).then_some(())
    });
    let answer =
        answer.unwrap_or_else(|| panic!("{}", context("no answer to the MESSAGE to JsSIP")));
    assert_eq!(
        answer.status().as_u16(),
        200,
        "{}",
        context("MESSAGE to JsSIP")
    );
    let got = pages.wait_report("received", Duration::from_secs(10));
    assert_eq!(
        got.as_deref(),
        Some("hello 101 from the UDP phone"),
        "{}",
        context("the page did not report the MESSAGE")
    );

    // Browser → UDP phone: JsSIP answered mss's 407 itself; the UDP phone got the MESSAGE
    // and its 200 reaches the page.
    let req =
        echo.unwrap_or_else(|| panic!("{}", context("no MESSAGE from JsSIP at the UDP phone")));
    assert_eq!(req.method().as_str(), "MESSAGE");
    assert_eq!(&req.body()[..], b"echo: hello 101 from the UDP phone");
    let from = String::from_utf8_lossy(req.headers().values(&HeaderName::From).next().unwrap())
        .into_owned();
    assert!(from.contains("sip:101@pbx.test"), "{from}");
    udp.send(s.sip(), ok_for(&req).as_bytes());
    let sent = wait_for(Duration::from_secs(10), || {
        pages
            .reports()
            .into_iter()
            .find(|r| r.starts_with("sent ") || r.starts_with("sendFailed "))
    });
    assert_eq!(
        sent.as_deref(),
        Some("sent "),
        "{}",
        context("JsSIP did not see its MESSAGE succeed")
    );
    let errors: Vec<String> = pages
        .reports()
        .into_iter()
        .filter(|r| r.starts_with("error "))
        .collect();
    assert!(errors.is_empty(), "{}", context("errors on the page"));
}
