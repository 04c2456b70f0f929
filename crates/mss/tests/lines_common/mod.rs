//! Shared by the external-line tests (`lines_kamailio.rs`, `lines_sipp.rs`): an `mss.ini`
//! with one `[line:p1]`, `GET /api/lines` as JSON, bounded waits on a line's state, and a
//! UDP [`Spy`] between mss and a provider that records every request the provider gets.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{wait_for, Server};

/// The line's user and password at the fake providers.
pub const USER: &str = "2001";
/// See [`USER`].
pub const PASSWORD: &str = "secret";

/// `[user:101]` plus `[line:p1]` registering at `registrar` with `extra` keys (lines
/// ending in `\n`).
pub fn line_ini(registrar: SocketAddr, extra: &str) -> String {
    format!(
        "[user:101]\npassword = pw101\n\n[line:p1]\nregistrar = {registrar}\nnumber = {USER}\npassword = {PASSWORD}\nowner = 101\n{extra}"
    )
}

/// Starts mss in `dir` with one line; `var` is written to `mss_var_param.ini` when given.
pub fn start_mss(dir: &Path, registrar: SocketAddr, extra: &str, var: Option<&str>) -> Server {
    if let Some(v) = var {
        std::fs::write(dir.join("mss_var_param.ini"), v).unwrap();
    }
    Server::start(dir, &line_ini(registrar, extra))
}

/// `GET /api/lines` → the line called `p1`.
pub fn line(server: &Server) -> Value {
    let (status, body) = server.get("/api/lines");
    assert_eq!(status, 200, "{body}");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    all.into_iter()
        .find(|l| l["name"] == "p1")
        .unwrap_or_else(|| panic!("no line p1 in {body}"))
}

/// Waits (at most `limit`) until line `p1` is in `state`; panics with the line, the mss log
/// and `context` otherwise. Returns the line as seen then.
pub fn wait_state(
    server: &Server,
    state: &str,
    limit: Duration,
    context: &dyn Fn() -> String,
) -> Value {
    let started = Instant::now();
    let mut last = Value::Null;
    wait_for(limit, || {
        last = line(server);
        (last["state"] == state).then(|| last.clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "line p1 not {state} within {limit:?} (waited {:?}): {last}\n--- mss log ---\n{}\n--- provider ---\n{}",
            started.elapsed(),
            server.stderr(),
            context()
        )
    })
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One request as the provider got it, or one of its answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method, or the status code of an answer.
    pub method: String,
    /// The Call-ID.
    pub call_id: String,
    /// The CSeq number.
    pub cseq: u32,
    /// The Expires header, if any.
    pub expires: Option<u32>,
    /// Whether it carried credentials.
    pub authorized: bool,
}

/// A UDP relay on 127.0.0.1 between mss and a provider: requests from mss go on to the
/// provider and are recorded, answers come back (mss's Via has `rport`, so the provider
/// answers the relay). Stops when dropped.
pub struct Spy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn header<'a>(text: &'a str, names: &[&str]) -> Option<&'a str> {
    text.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            names
                .iter()
                .any(|want| n.trim().eq_ignore_ascii_case(want))
                .then_some(v.trim())
        })
}

/// A request (`method` = its method) or a response (`method` = its status code).
fn parse_message(raw: &[u8]) -> Option<Seen> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut words = text.split(' ');
    let first = words.next()?;
    let method = if first.starts_with("SIP/") {
        words.next()?.to_owned()
    } else {
        first.to_owned()
    };
    let cseq = header(text, &["CSeq"])?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Seen {
        method,
        call_id: header(text, &["Call-ID", "i"])?.to_owned(),
        cseq,
        expires: header(text, &["Expires"]).and_then(|v| v.parse().ok()),
        authorized: header(text, &["Authorization", "Proxy-Authorization"]).is_some(),
    })
}

impl Spy {
    /// A relay in front of `provider`.
    pub fn new(provider: SocketAddr) -> Spy {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = front.local_addr().unwrap().port();
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let (front2, back2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let mut threads = Vec::new();
        {
            let (seen, stop, client) = (seen.clone(), stop.clone(), client.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        let data = &buf[..n];
                        *client.lock().unwrap() = Some(from);
                        if let Some(s) = parse_message(data) {
                            seen.lock().unwrap().push(s);
                        }
                        let _ = back.send_to(data, provider);
                    }
                }
            }));
        }
        {
            let (seen, stop, client) = (seen.clone(), stop.clone(), client.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = back2.recv_from(&mut buf) {
                        if let Some(s) = parse_message(&buf[..n]) {
                            seen.lock().unwrap().push(s);
                        }
                        if let Some(to) = *client.lock().unwrap() {
                            let _ = front2.send_to(&buf[..n], to);
                        }
                    }
                }
            }));
        }
        Spy {
            port,
            seen,
            stop,
            threads,
        }
    }

    /// Where mss should send: the relay.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The provider's answers so far (`method` is the status code), in order.
    pub fn answers(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method.bytes().all(|b| b.is_ascii_digit()))
            .cloned()
            .collect()
    }

    /// The REGISTERs the provider got so far, in order.
    pub fn registers(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "REGISTER")
            .cloned()
            .collect()
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The distinct REGISTER transactions (a UDP retransmission repeats Call-ID and CSeq).
pub fn transactions(seen: &[Seen]) -> Vec<Seen> {
    let mut out: Vec<Seen> = Vec::new();
    for s in seen {
        if !out
            .iter()
            .any(|o| o.call_id == s.call_id && o.cseq == s.cseq)
        {
            out.push(s.clone());
        }
    }
    out
}
