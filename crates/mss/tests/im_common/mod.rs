//! Helpers of the instant-message integration tests (`tests/im_*.rs`): a server with users
//! 100–102, a sender that answers the `407` challenge, a raw UDP user agent that registers
//! and receives MESSAGEs, and the admin API's stored messages.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, HeaderName, Message, Request, Response};

use crate::common::{authorization, digest_answer, register, Peer, Server};

/// The local users of every IM test, with their passwords.
pub const USERS: [(&str, &str); 4] = [
    ("100", "pw-100"),
    ("101", "pw-101"),
    ("102", "pw-102"),
    ("103", "pw-103"),
];

/// The password of `user`.
pub fn password(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .unwrap()
}

/// Starts mss with [`USERS`], MD5 challenges only (SIPp and baresip 1.0 answer MD5 alone)
/// and no per-sender rate limit, plus `im_keys` in `[im]`.
pub fn start(dir: &Path, im_keys: &str) -> Server {
    start_with_sections(dir, im_keys, "")
}

/// As [`start`], with more `sections` (such as `[line:…]`) after `[im]`.
pub fn start_with_sections(dir: &Path, im_keys: &str, sections: &str) -> Server {
    let users: String = USERS
        .iter()
        .map(|(u, p)| format!("[user:{u}]\npassword = {p}\n"))
        .collect();
    Server::start_with(
        dir,
        "digest_algorithms = md5\n",
        &format!("{users}\n[im]\nrate_limit_per_minute = 0\n{im_keys}\n{sections}"),
    )
}

/// The folder of the SIPp scenarios.
pub fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp")
}

static CALLS: AtomicU32 = AtomicU32::new(0);

/// A fresh Call-ID for this test process.
pub fn call_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a test MESSAGE says: from `from` to `to` (local users at pbx.test);
/// `content_type: None` leaves the header out.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// `d` as a MESSAGE sent from `peer`; `extra` are header lines ending in CRLF.
pub fn message_text(peer: &Peer, d: &Draft<'_>, call_id: &str, cseq: u32, extra: &str) -> Vec<u8> {
    let me = peer.addr();
    let (from, to) = (d.from, d.to);
    let ct = d
        .content_type
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    let mut out = format!(
        "MESSAGE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{from}@pbx.test>;tag=t{cseq}\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} MESSAGE\r\n{ct}{extra}Content-Length: {}\r\n\r\n",
        d.body.len()
    )
    .into_bytes();
    out.extend_from_slice(d.body);
    out
}

/// Sends a MESSAGE from `from` to `to`, answers the `407` with `from`'s password, and
/// returns the final response to the authenticated request.
pub fn send_message(
    server: SocketAddr,
    peer: &Peer,
    from: &str,
    to: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    let d = Draft {
        from,
        to,
        content_type,
        body,
    };
    let cid = call_id("im");
    let first = transact(peer, server, &message_text(peer, &d, &cid, 1, ""));
    assert_eq!(first.status().as_u16(), 407, "{first:?}");
    let auth = proxy_authorization(&first, to, from);
    transact(peer, server, &message_text(peer, &d, &cid, 2, &auth))
}

/// The `Proxy-Authorization` header line (with CRLF) answering the MD5 challenge of
/// `challenge` as `user`, for a MESSAGE to `to`@pbx.test.
pub fn proxy_authorization(challenge: &Response, to: &str, user: &str) -> String {
    let auth = digest_answer(
        challenge,
        &HeaderName::ProxyAuthenticate,
        "MESSAGE",
        &format!("sip:{to}@pbx.test"),
        user,
        password(user),
        1,
    );
    format!("Proxy-Authorization: {auth}\r\n")
}

/// Sends `bytes` and returns the first final response within 15 s (a relayed MESSAGE may
/// wait up to the relay timeout of 10 s before it is stored).
pub fn transact(peer: &Peer, to: SocketAddr, bytes: &[u8]) -> Response {
    peer.send(to, bytes);
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Some(r) = peer.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if r.status().as_u16() >= 200 {
            return r;
        }
    }
    panic!("no final response to:\n{}", String::from_utf8_lossy(bytes));
}

/// The reason phrase of `rsp` as text.
pub fn reason(rsp: &Response) -> String {
    String::from_utf8_lossy(rsp.reason()).into_owned()
}

/// A header of `msg` as text (first value).
pub fn header(h: &mss_sip::Headers, name: &HeaderName) -> Option<String> {
    h.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A user agent on a raw UDP socket: registers as a local user and answers MESSAGEs.
pub struct Ua {
    pub peer: Peer,
    pub user: String,
}

impl Ua {
    /// A user agent for `user` on a fresh loopback port (not registered yet).
    pub fn new(user: &str) -> Ua {
        Ua {
            peer: Peer::new(),
            user: user.to_string(),
        }
    }

    /// Registers (401 → credentials → 200) for 300 s.
    pub fn register(&self, server: SocketAddr) {
        let cid = call_id("reg");
        let first = transact(
            &self.peer,
            server,
            register(server, &self.peer, &self.user, &cid, 1, "").as_bytes(),
        );
        assert_eq!(first.status().as_u16(), 401, "{first:?}");
        let auth = authorization(&first, server, &self.user, password(&self.user), 1);
        let ok = transact(
            &self.peer,
            server,
            register(
                server,
                &self.peer,
                &self.user,
                &cid,
                2,
                &format!("Authorization: {auth}\r\n"),
            )
            .as_bytes(),
        );
        assert_eq!(ok.status().as_u16(), 200, "{ok:?}");
    }

    /// The next request received within `timeout` (responses are skipped).
    pub fn recv_request(&self, timeout: Duration) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let raw = self.peer.recv_raw(left.max(Duration::from_millis(1)))?;
            if let Ok(Message::Request(r)) = parse_datagram(Bytes::from(raw)) {
                return Some(r);
            }
        }
    }

    /// Answers `req` (received from `server`) with `code`, echoing Via, From, To (with a
    /// tag), Call-ID and CSeq (RFC 3261 §8.2.6.2).
    pub fn answer(&self, server: SocketAddr, req: &Request, code: u16, reason: &str) {
        let h = req.headers();
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for v in h.values(&HeaderName::Via) {
            out.push_str(&format!("Via: {}\r\n", String::from_utf8_lossy(v)));
        }
        for (name, value) in [
            ("From", header(h, &HeaderName::From)),
            (
                "To",
                header(h, &HeaderName::To).map(|t| format!("{t};tag=ua")),
            ),
            ("Call-ID", header(h, &HeaderName::CallId)),
            ("CSeq", header(h, &HeaderName::CSeq)),
        ] {
            out.push_str(&format!("{name}: {}\r\n", value.unwrap()));
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        self.peer.send(server, out.as_bytes());
    }
}

/// `GET /api/messages` as `(user, stored)` pairs.
pub fn counts(s: &Server) -> Vec<(String, u64)> {
    let (status, body) = s.get("/api/messages");
    assert_eq!(status, 200, "{body}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    v.iter()
        .map(|c| {
            (
                c["user"].as_str().unwrap().to_string(),
                c["stored"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// How many messages `user` has stored, per `GET /api/messages`.
pub fn stored(s: &Server, user: &str) -> u64 {
    counts(s)
        .into_iter()
        .find(|(u, _)| u == user)
        .map_or(0, |(_, n)| n)
}

/// `GET /api/messages/{user}`: the stored messages as JSON.
pub fn messages(s: &Server, user: &str) -> Vec<serde_json::Value> {
    let (status, body) = s.get(&format!("/api/messages/{user}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}
