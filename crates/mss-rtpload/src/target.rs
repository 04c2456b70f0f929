//! The relays under test, each set up for the tool's calls: where each endpoint sends, and
//! whose CPU time and memory count.
//!
//! - [`Target::Direct`]: no relay, A sends to B and B to A: the baseline transit time.
//! - [`Target::Mss`]: `mss_media::io::MediaRelay`, the relay thread mss runs, started in
//!   this process; a session per call, both legs' remotes set to the tool's endpoints,
//!   answered — what the call service does. Its CPU is the `mss-media` thread's.
//! - [`Target::Rtpengine`]: a `rtpengine` daemon this tool starts (userspace forwarding
//!   only: `--table=-1`, on loopback), each call set up with an ng `offer` and `answer`
//!   (bencode over UDP); its CPU is the whole process's (all its threads).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mss_media::io::{Command, MediaEvent, MediaOptions, MediaRelay, ReceiveMode, Scheduling};
use mss_media::{Leg, PortRange, RelayConfig, Remote};

use crate::bencode::Value;
use crate::procfs;

/// Why a target could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The mss relay thread did not start or answer.
    #[error("mss relay: {0}")]
    Mss(String),
    /// rtpengine did not start, answer or allocate.
    #[error("rtpengine: {0}")]
    Rtpengine(String),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> TargetError {
    let context = context.into();
    move |source| TargetError::Io { context, source }
}

/// How to start rtpengine.
#[derive(Debug, Clone)]
pub struct RtpengineOptions {
    /// The executable.
    pub binary: String,
    /// Its ng control address (UDP).
    pub ng: SocketAddr,
    /// Its RTP port range.
    pub ports: (u16, u16),
    /// `--num-threads` (`None`: its default, one per CPU).
    pub threads: Option<u32>,
    /// Where its log goes (`None`: discarded).
    pub log: Option<std::path::PathBuf>,
    /// A file to append its PID to (so a harness can stop it if this tool dies).
    pub pidfile: Option<std::path::PathBuf>,
}

/// Which relay to set up.
#[derive(Debug, Clone)]
pub enum TargetKind {
    /// No relay.
    Direct,
    /// The mss relay thread in this process, on `address` with `ports`.
    Mss {
        /// Its name in reports (see [`TargetKind::name`]).
        name: &'static str,
        /// The address its sockets bind.
        address: IpAddr,
        /// Its port range.
        ports: PortRange,
        /// How it reads and sends (io_uring, `recvmmsg` batches or `recv_from`).
        receive: ReceiveMode,
        /// How its thread is scheduled.
        scheduling: Scheduling,
    },
    /// A rtpengine daemon.
    Rtpengine(RtpengineOptions),
}

impl TargetKind {
    /// The name in reports: `direct`, an mss relay's own name (`mss`: what `mss serve`
    /// runs; the variants the command line lists), `rtpengine` (its default worker
    /// threads, one per CPU), `rtpengine-1t` (one).
    pub fn name(&self) -> &'static str {
        match self {
            TargetKind::Direct => "direct",
            TargetKind::Mss { name, .. } => name,
            TargetKind::Rtpengine(o) if o.threads == Some(1) => "rtpengine-1t",
            TargetKind::Rtpengine(_) => "rtpengine",
        }
    }
}

/// A started relay.
pub enum Target {
    /// No relay.
    Direct,
    /// The mss relay thread.
    Mss {
        /// The running thread.
        relay: MediaRelay,
        /// Its events.
        events: mpsc::Receiver<MediaEvent>,
        /// The address its sockets bind.
        address: IpAddr,
    },
    /// rtpengine.
    Rtpengine {
        /// The daemon.
        child: Child,
        /// The ng client socket.
        control: UdpSocket,
        /// The ng address.
        ng: SocketAddr,
        /// The next ng cookie.
        cookie: u64,
    },
}

/// Where each endpoint of a call sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Where A sends (the relay's port for leg A, or B itself).
    pub a_to: SocketAddr,
    /// Where B sends.
    pub b_to: SocketAddr,
}

impl Target {
    /// Starts `kind` (nothing for `Direct`); rtpengine is waited for until it answers `ping`.
    pub fn start(kind: &TargetKind) -> Result<Target, TargetError> {
        match kind {
            TargetKind::Direct => Ok(Target::Direct),
            TargetKind::Mss {
                address,
                ports,
                receive,
                scheduling,
                ..
            } => {
                let mut options = MediaOptions::new(RelayConfig::new(*ports), *address, 16);
                options.receive = *receive;
                options.scheduling = *scheduling;
                let (tx, events) = mpsc::channel();
                let relay = MediaRelay::start(options, move |e| {
                    let _ = tx.send(e);
                })
                .map_err(|e| TargetError::Mss(format!("cannot start the relay thread: {e}")))?;
                Ok(Target::Mss {
                    relay,
                    events,
                    address: *address,
                })
            }
            TargetKind::Rtpengine(o) => start_rtpengine(o),
        }
    }

    /// Sets up one call between endpoints `a` and `b`.
    pub fn add_call(&mut self, a: SocketAddr, b: SocketAddr) -> Result<Route, TargetError> {
        match self {
            Target::Direct => Ok(Route { a_to: b, b_to: a }),
            Target::Mss {
                relay,
                events,
                address,
            } => mss_call(relay, events, *address, a, b),
            Target::Rtpengine {
                control,
                ng,
                cookie,
                ..
            } => rtpengine_call(control, *ng, cookie, a, b),
        }
    }

    /// CPU time the relay has used so far and the time it waited for a CPU (`None` for
    /// `Direct`).
    pub fn sched(&self) -> Option<procfs::Sched> {
        match self {
            Target::Direct => None,
            Target::Mss { .. } => procfs::own_thread_sched("mss-media"),
            Target::Rtpengine { child, .. } => procfs::process_sched(child.id()),
        }
    }

    /// Resident memory of the relay's process, kB (for mss: this whole process).
    pub fn rss_kb(&self) -> Option<u64> {
        match self {
            Target::Direct => None,
            Target::Mss { .. } => procfs::rss_kb("self"),
            Target::Rtpengine { child, .. } => procfs::rss_kb(&child.id().to_string()),
        }
    }

    /// Packets the relay says it forwarded, when it says (mss).
    pub fn relayed(&self) -> Option<u64> {
        match self {
            Target::Mss { relay, .. } => Some(relay.counters().snapshot().relay.relayed),
            _ => None,
        }
    }

    /// Stops the relay: the mss thread is joined, rtpengine is killed and reaped.
    pub fn stop(self) -> Result<(), TargetError> {
        match self {
            Target::Direct => Ok(()),
            Target::Mss { relay, .. } => relay
                .stop()
                .map_err(|e| TargetError::Mss(format!("stopping the relay thread: {e}"))),
            Target::Rtpengine { mut child, .. } => {
                let _ = child.kill();
                child.wait().map_err(io_err("waiting for rtpengine"))?;
                Ok(())
            }
        }
    }
}

fn mss_call(
    relay: &MediaRelay,
    events: &mpsc::Receiver<MediaEvent>,
    address: IpAddr,
    a: SocketAddr,
    b: SocketAddr,
) -> Result<Route, TargetError> {
    let commands = relay.commands();
    let stopped = |e| TargetError::Mss(format!("{e}"));
    commands
        .send(Command::Allocate { op: 1 })
        .map_err(stopped)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let allocation = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(MediaEvent::Allocated { result, .. }) => {
                break result.map_err(|e| TargetError::Mss(format!("allocate: {e}")))?
            }
            Ok(_) => continue, // latching events of earlier calls
            Err(_) => return Err(TargetError::Mss("no answer to Allocate within 5 s".into())),
        }
    };
    let session = allocation.session;
    for (leg, addr) in [(Leg::A, a), (Leg::B, b)] {
        commands
            .send(Command::SetRemote {
                session,
                leg,
                // The signalling source is the endpoint's host, as a phone's would be.
                remote: Remote::new(addr.ip(), addr),
            })
            .map_err(stopped)?;
    }
    commands
        .send(Command::Answered { session })
        .map_err(stopped)?;
    let relay_ip = |port| SocketAddr::new(address, port);
    Ok(Route {
        a_to: relay_ip(allocation.a.rtp),
        b_to: relay_ip(allocation.b.rtp),
    })
}

fn start_rtpengine(o: &RtpengineOptions) -> Result<Target, TargetError> {
    // Another program on the ng port would answer our ping and be measured in its place.
    drop(UdpSocket::bind(o.ng).map_err(|e| {
        TargetError::Rtpengine(format!("the ng address {} is not free: {e}", o.ng))
    })?);
    let mut cmd = Process::new(&o.binary);
    cmd.arg("--config-file=none")
        .arg("--table=-1") // no kernel forwarding: userspace only
        .arg("--foreground")
        .arg("--log-stderr")
        .arg("--log-level=4")
        .arg(format!("--interface={}", o.ng.ip()))
        .arg(format!("--listen-ng={}", o.ng))
        .arg(format!("--port-min={}", o.ports.0))
        .arg(format!("--port-max={}", o.ports.1))
        .arg("--timeout=60")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(t) = o.threads {
        cmd.arg(format!("--num-threads={t}"));
    }
    match &o.log {
        Some(path) => {
            let f = std::fs::File::create(path).map_err(io_err(format!(
                "creating the rtpengine log {}",
                path.display()
            )))?;
            cmd.stderr(f);
        }
        None => {
            cmd.stderr(Stdio::null());
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        TargetError::Rtpengine(format!(
            "cannot run {} ({e}); Debian: apt-get install rtpengine-daemon",
            o.binary
        ))
    })?;
    if let Some(p) = &o.pidfile {
        use std::io::Write;
        let line = format!("{}\n", child.id());
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
    let control = UdpSocket::bind("127.0.0.1:0").map_err(io_err("binding the ng socket"))?;
    let mut cookie = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(TargetError::Rtpengine(format!(
                "exited at start ({status}); see its log"
            )));
        }
        let ping = Value::dict([("command", Value::str("ping"))]);
        match ng_request(
            &control,
            o.ng,
            &mut cookie,
            &ping,
            Duration::from_millis(300),
        ) {
            Ok(reply) if reply.get("result").and_then(Value::as_bytes) == Some(b"pong") => break,
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TargetError::Rtpengine(format!(
                    "no pong on {} within 10 s",
                    o.ng
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Ok(Target::Rtpengine {
        child,
        control,
        ng: o.ng,
        cookie,
    })
}

/// One ng request and its reply (same cookie), tried 3 times.
fn ng_request(
    control: &UdpSocket,
    ng: SocketAddr,
    cookie: &mut u64,
    request: &Value,
    timeout: Duration,
) -> Result<Value, TargetError> {
    *cookie += 1;
    let prefix = format!("{cookie} ");
    let mut message = prefix.clone().into_bytes();
    request.encode(&mut message);
    control
        .set_read_timeout(Some(timeout))
        .map_err(io_err("ng socket"))?;
    let mut buf = vec![0u8; 65_536];
    for _ in 0..3 {
        control
            .send_to(&message, ng)
            .map_err(io_err("sending an ng request"))?;
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            let Ok((n, _)) = control.recv_from(&mut buf) else {
                break;
            };
            // A late reply to an earlier cookie is skipped.
            if let Some(body) = buf[..n].strip_prefix(prefix.as_bytes()) {
                return Value::decode(body)
                    .map_err(|e| TargetError::Rtpengine(format!("bad ng reply: {e}")));
            }
        }
    }
    Err(TargetError::Rtpengine(format!("no ng reply from {ng}")))
}

/// A phone's SDP offering PCMU from `addr`.
fn sdp(addr: SocketAddr, session: u64) -> String {
    let ip = addr.ip();
    format!(
        "v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        addr.port()
    )
}

/// The address an SDP body offers (its `c=` and first `m=audio` port).
pub fn sdp_address(body: &str) -> Option<SocketAddr> {
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for line in body.lines() {
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = ip.or(c.trim().parse().ok());
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            port = port.or(m.split_whitespace().next().and_then(|p| p.parse().ok()));
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

fn rtpengine_call(
    control: &UdpSocket,
    ng: SocketAddr,
    cookie: &mut u64,
    a: SocketAddr,
    b: SocketAddr,
) -> Result<Route, TargetError> {
    let call_id = format!("rtpload-{}-{}", a.port(), b.port());
    let step = |cookie: &mut u64, command: &str, body: String| {
        let mut pairs = vec![
            ("command", Value::str(command)),
            ("call-id", Value::str(&call_id)),
            ("from-tag", Value::str("a")),
            ("sdp", Value::str(&body)),
        ];
        if command == "answer" {
            pairs.push(("to-tag", Value::str("b")));
        }
        let reply = ng_request(
            control,
            ng,
            cookie,
            &Value::dict(pairs),
            Duration::from_secs(1),
        )?;
        if reply.get("result").and_then(Value::as_bytes) != Some(b"ok") {
            return Err(TargetError::Rtpengine(format!(
                "{command} refused: {:?}",
                reply
                    .get("error-reason")
                    .and_then(Value::as_bytes)
                    .map(String::from_utf8_lossy)
            )));
        }
        reply
            .get("sdp")
            .and_then(Value::as_bytes)
            .and_then(|s| sdp_address(&String::from_utf8_lossy(s)))
            .ok_or_else(|| TargetError::Rtpengine(format!("{command}: no address in its SDP")))
    };
    // The offer's answer is what B is told: where B sends. The answer's: where A sends.
    let b_to = step(cookie, "offer", sdp(a, *cookie))?;
    let a_to = step(cookie, "answer", sdp(b, *cookie))?;
    Ok(Route { a_to, b_to })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake ng server: answers `requests` requests as `answer` says, each first with a
    /// stale reply of another cookie (which the client must skip).
    fn fake_ng(
        requests: usize,
        answer: fn(&Value) -> Value,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<Value>>) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = server.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65_536];
            for _ in 0..requests {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let text = &buf[..n];
                let space = text.iter().position(|&b| b == b' ').unwrap();
                let (cookie, body) = (&text[..space], &text[space + 1..]);
                let request = Value::decode(body).unwrap();
                let mut stale = b"0 ".to_vec();
                Value::dict([("result", Value::str("ok"))]).encode(&mut stale);
                server.send_to(&stale, from).unwrap();
                let mut reply = cookie.to_vec();
                reply.push(b' ');
                answer(&request).encode(&mut reply);
                server.send_to(&reply, from).unwrap();
                seen.push(request);
            }
            seen
        });
        (addr, handle)
    }

    #[test]
    fn an_rtpengine_call_is_an_offer_and_an_answer() {
        let (ng, server) = fake_ng(2, |request| {
            let port = if request.get("command").and_then(Value::as_bytes) == Some(b"offer") {
                41000
            } else {
                41016
            };
            Value::dict([
                ("result", Value::str("ok")),
                (
                    "sdp",
                    Value::str(&sdp(SocketAddr::from(([127, 0, 0, 1], port)), 1)),
                ),
            ])
        });
        let control = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut cookie = 0;
        let a: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:6000".parse().unwrap();
        let route = rtpengine_call(&control, ng, &mut cookie, a, b).unwrap();
        assert_eq!(route.b_to, "127.0.0.1:41000".parse().unwrap());
        assert_eq!(route.a_to, "127.0.0.1:41016".parse().unwrap());
        let seen = server.join().unwrap();
        let text = |v: &Value, k: &str| {
            String::from_utf8_lossy(v.get(k).unwrap().as_bytes().unwrap()).into_owned()
        };
        assert_eq!(text(&seen[0], "command"), "offer");
        assert!(text(&seen[0], "sdp").contains("m=audio 5000 "));
        assert_eq!(text(&seen[1], "command"), "answer");
        assert_eq!(text(&seen[1], "to-tag"), "b");
        assert!(text(&seen[1], "sdp").contains("c=IN IP4 127.0.0.3"));
        assert_eq!(text(&seen[0], "call-id"), text(&seen[1], "call-id"));
    }

    #[test]
    fn a_refused_offer_is_an_error() {
        let (ng, server) = fake_ng(1, |_| {
            Value::dict([
                ("result", Value::str("error")),
                ("error-reason", Value::str("no ports")),
            ])
        });
        let control = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut cookie = 0;
        let a: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let e = rtpengine_call(&control, ng, &mut cookie, a, a).unwrap_err();
        assert!(e.to_string().contains("no ports"), "{e}");
        assert_eq!(server.join().unwrap().len(), 1);
    }

    #[test]
    fn the_address_of_an_sdp() {
        let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                    m=audio 41016 RTP/AVP 0\r\na=rtcp:41017\r\n";
        assert_eq!(sdp_address(body), Some("127.0.0.1:41016".parse().unwrap()));
        assert_eq!(sdp_address("v=0\r\n"), None);
        let offer = sdp("127.0.0.2:5000".parse().unwrap(), 1);
        assert_eq!(sdp_address(&offer), Some("127.0.0.2:5000".parse().unwrap()));
    }
}
