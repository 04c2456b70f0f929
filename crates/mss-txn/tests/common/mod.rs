//! A simulated-time harness for the transaction table: it jumps `now` straight to
//! `poll_timeout()`, so 32 s of Timer B run in microseconds.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, ConnectionId, Flow, Message, Request, Response, Transport};
use mss_txn::{Config, Event, Output, TransactionId, Transactions};

/// One transmission seen by the harness.
#[derive(Debug, Clone)]
pub struct Sent {
    /// When, since the start of the test.
    pub at: Duration,
    pub to: Flow,
    /// The local address to send from, when the transaction has one.
    pub local: Option<std::net::SocketAddr>,
    pub text: String,
    pub transaction: Option<TransactionId>,
}

impl Sent {
    /// The first line (request line or status line).
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

pub struct Harness {
    pub txns: Transactions,
    pub start: Instant,
    pub now: Instant,
    pub sent: Vec<Sent>,
    pub events: Vec<(Duration, Event)>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Harness {
        let start = Instant::now();
        Harness {
            txns: Transactions::new(config),
            start,
            now: start,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Collects every output.
    pub fn drain(&mut self) {
        while let Some(out) = self.txns.poll_output() {
            let at = self.elapsed();
            match out {
                Output::Transmit(t) => self.sent.push(Sent {
                    at,
                    to: t.to,
                    local: t.local,
                    text: String::from_utf8(t.bytes.to_vec()).unwrap(),
                    transaction: t.transaction,
                }),
                Output::Event(e) => self.events.push((at, e)),
            }
        }
    }

    /// Jumps to the next timer and fires it. False when no timer is armed.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.txns.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(t);
        self.txns.handle_timeout(self.now);
        self.drain();
        true
    }

    /// Runs every timer due in the next `d`, then sets the clock to the end of it.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.txns.poll_timeout() {
            if t > end {
                break;
            }
            self.step();
        }
        self.now = end;
    }

    /// Runs until no timer is left (bounded: at most 10,000 steps).
    pub fn run_idle(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("timers never ran out");
    }

    pub fn receive(&mut self, text: &str, from: Flow) {
        let msg = parse(text);
        self.txns.handle_message(self.now, msg, from);
        self.drain();
    }

    pub fn take_sent(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}

pub fn parse(text: &str) -> Message {
    let wire = text.replace('\n', "\r\n");
    parse_datagram(Bytes::from(wire)).unwrap()
}

pub fn parse_request(text: &str) -> Request {
    match parse(text) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

pub fn parse_response(text: &str) -> Response {
    match parse(text) {
        Message::Response(r) => r,
        Message::Request(_) => panic!("not a response"),
    }
}

pub fn peer() -> SocketAddr {
    "192.0.2.10:5060".parse().unwrap()
}

pub fn udp() -> Flow {
    Flow::udp(peer())
}

pub fn tcp() -> Flow {
    Flow {
        transport: Transport::Tcp,
        remote: peer(),
        connection: Some(ConnectionId(7)),
    }
}

/// A request in the style of RFC 3261 §24.2. `branch` goes in the top Via.
pub fn request(method: &str, branch: &str, transport: &str, cseq: u32) -> String {
    format!(
        "{method} sip:bob@biloxi.example SIP/2.0\n\
         Via: SIP/2.0/{transport} pc33.atlanta.example:5060;branch={branch}\n\
         Max-Forwards: 70\n\
         To: Bob <sip:bob@biloxi.example>\n\
         From: Alice <sip:alice@atlanta.example>;tag=1928301774\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example\n\
         CSeq: {cseq} {method}\n\
         Content-Length: 0\n\n"
    )
}

/// A response to [`request`] with the same Via, CSeq and a To tag.
pub fn response(code: u16, method: &str, branch: &str, transport: &str, cseq: u32) -> String {
    format!(
        "SIP/2.0 {code} Whatever\n\
         Via: SIP/2.0/{transport} pc33.atlanta.example:5060;branch={branch}\n\
         To: Bob <sip:bob@biloxi.example>;tag=a6c85cf\n\
         From: Alice <sip:alice@atlanta.example>;tag=1928301774\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example\n\
         CSeq: {cseq} {method}\n\
         Content-Length: 0\n\n"
    )
}

/// A response the TU builds for a received request (§8.2.6.2), with a To tag.
pub fn answer(req: &str, code: u16) -> Response {
    let to_tagged = req.replace(
        "To: Bob <sip:bob@biloxi.example>\n",
        "To: Bob <sip:bob@biloxi.example>;tag=uas-tag\n",
    );
    let mut lines = to_tagged.lines();
    let first = lines.next().unwrap();
    let method = first.split(' ').next().unwrap();
    let mut text = format!("SIP/2.0 {code} Answer\n");
    for l in lines {
        if ["Via:", "To:", "From:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|p| l.starts_with(p))
        {
            text.push_str(l);
            text.push('\n');
        }
    }
    text.push_str("Content-Length: 0\n\n");
    let _ = method;
    parse_response(&text)
}

/// Milliseconds of each transmission whose first line starts with `prefix`.
pub fn times_ms(sent: &[Sent], prefix: &str) -> Vec<u128> {
    sent.iter()
        .filter(|s| s.first_line().starts_with(prefix))
        .map(|s| s.at.as_millis())
        .collect()
}
