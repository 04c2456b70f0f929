//! One run: `connections` client threads, each with its own UDP socket or TLS connection
//! and its own users, registering in a closed loop (REGISTER → 401 → REGISTER with
//! digest → 200, RFC 3261 §10.2 and §22) until the run's end; over TLS optionally a new
//! connection every `reconnect_every` registrations, resumed from the thread's session
//! store. Meanwhile the server's CPU time is read from `/proc`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde::Serialize;

use crate::channel::{Channel, TlsChannel, UdpChannel};
use crate::digest::Challenge;
use crate::error::LoadError;
use crate::message::{status, Register};
use crate::procfs;
use crate::tls::{client_config, server_name, ResumeWith, TlsVersions};
use crate::users::User;

/// Pause after a failed registration before the next (so that a dead server is not
/// spun on).
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// UDP, or TLS with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    /// One UDP socket per thread.
    Udp,
    /// One TLS connection per thread at a time.
    Tls {
        /// The versions offered.
        versions: TlsVersions,
        /// How sessions are resumed on a new connection.
        resume: ResumeWith,
        /// A new connection after this many registrations; 0: keep it.
        reconnect_every: u32,
    },
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server's UDP or TLS address.
    pub server: SocketAddr,
    /// UDP or TLS.
    pub mode: Mode,
    /// Client threads, each with one socket or connection.
    pub connections: usize,
    /// Users `t{first_user}` … spread over the threads (thread `w` has every
    /// `connections`-th from the `w`-th).
    pub first_user: usize,
    /// How many users.
    pub users: usize,
    /// How long to register.
    pub duration: Duration,
    /// Thread `w` binds to this address + `w` (an IPv4 loopback address each, so that
    /// connections closed by the client, in TIME_WAIT, never exhaust one address's ports).
    pub source: Ipv4Addr,
    /// The SIP domain (and the TLS server name).
    pub domain: String,
    /// Contact host:port of every registration.
    pub contact: String,
    /// Makes Call-IDs and branches unique to this run.
    pub tag: String,
    /// The server's process, whose CPU time is read.
    pub server_pid: Option<u32>,
    /// Bounds every connect, send and receive.
    pub timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The mode.
    pub mode: Mode,
    /// Client threads.
    pub connections: usize,
    /// Users.
    pub users: usize,
    /// Registrations that ended in `200`.
    pub registrations: u64,
    /// Failed registrations (and failed connects).
    pub errors: u64,
    /// The first failure, in words.
    pub first_error: Option<String>,
    /// TLS handshakes done during the measured time (kept connections are opened before
    /// it starts).
    pub handshakes: u64,
    /// Of those, the resumed ones.
    pub resumed: u64,
    /// Measured time, s (from the common start to the last thread's end).
    pub seconds: f64,
    /// Registrations per second.
    pub rate: f64,
    /// The server's CPU time over the measured time, s.
    pub server_cpu_s: Option<f64>,
    /// The server's CPU time per registration, µs.
    pub server_cpu_us_per_reg: Option<f64>,
    /// This client's CPU time over the run, s.
    pub client_cpu_s: Option<f64>,
    /// This client's CPU time per registration, µs.
    pub client_cpu_us_per_reg: Option<f64>,
    /// `/proc/loadavg` at the start and at the end.
    pub loadavg: [String; 2],
}

/// What one thread counted.
#[derive(Debug, Default)]
struct Tally {
    done: u64,
    errors: u64,
    handshakes: u64,
    resumed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, e: &LoadError) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// What every thread shares.
struct Shared {
    cfg: LoadConfig,
    tls: Option<ServerName<'static>>,
    ready: Barrier,
    go: Barrier,
    deadline: OnceLock<Instant>,
}

/// Runs the load and returns its readings.
///
/// # Errors
/// [`LoadError::Settings`] for settings that cannot work (no threads, fewer users than
/// threads, a source range past 127.255.255.255, a bad server name).
pub fn run(cfg: &LoadConfig) -> Result<Report, LoadError> {
    if cfg.connections == 0 || cfg.users < cfg.connections {
        return Err(LoadError::Settings(format!(
            "{} users for {} connections: at least one user each",
            cfg.users, cfg.connections
        )));
    }
    let last = u32::from(cfg.source).checked_add(cfg.connections as u32 - 1);
    if cfg.connections > 65536 || last.is_none() {
        return Err(LoadError::Settings(format!(
            "{} source addresses from {}: past the end of IPv4",
            cfg.connections, cfg.source
        )));
    }
    let tls = match cfg.mode {
        Mode::Udp => None,
        Mode::Tls { .. } => Some(server_name(&cfg.domain)?),
    };
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        tls,
        ready: Barrier::new(cfg.connections + 1),
        go: Barrier::new(cfg.connections + 1),
        deadline: OnceLock::new(),
    });
    let mut threads = Vec::with_capacity(cfg.connections);
    for w in 0..cfg.connections {
        let shared = Arc::clone(&shared);
        let config = match cfg.mode {
            Mode::Udp => None,
            Mode::Tls {
                versions, resume, ..
            } => Some(client_config(versions, resume)?),
        };
        let handle = std::thread::Builder::new()
            .name(format!("regload-{w}"))
            .spawn(move || worker(&shared, w, config))
            .map_err(|e| LoadError::Settings(format!("cannot start a thread: {e}")))?;
        threads.push(handle);
    }
    shared.ready.wait();
    let load_start = procfs::loadavg();
    let server0 = cfg.server_pid.and_then(procfs::cpu_seconds);
    let client0 = procfs::own_cpu_seconds();
    let start = Instant::now();
    let _ = shared.deadline.set(start + cfg.duration);
    shared.go.wait();
    let mut total = Tally::default();
    for t in threads {
        let tally = t.join().unwrap_or_else(|_| Tally {
            errors: 1,
            first_error: Some("a client thread panicked".into()),
            ..Tally::default()
        });
        total.done += tally.done;
        total.errors += tally.errors;
        total.handshakes += tally.handshakes;
        total.resumed += tally.resumed;
        total.first_error = total.first_error.or(tally.first_error);
    }
    let seconds = start.elapsed().as_secs_f64();
    let server1 = cfg.server_pid.and_then(procfs::cpu_seconds);
    let client1 = procfs::own_cpu_seconds();
    let per_reg = |cpu: Option<f64>| {
        cpu.filter(|_| total.done > 0)
            .map(|c| c * 1e6 / total.done as f64)
    };
    let server_cpu = server0.zip(server1).map(|(a, b)| b - a);
    let client_cpu = client0.zip(client1).map(|(a, b)| b - a);
    Ok(Report {
        mode: cfg.mode,
        connections: cfg.connections,
        users: cfg.users,
        registrations: total.done,
        errors: total.errors,
        first_error: total.first_error,
        handshakes: total.handshakes,
        resumed: total.resumed,
        seconds,
        rate: total.done as f64 / seconds,
        server_cpu_s: server_cpu,
        server_cpu_us_per_reg: per_reg(server_cpu),
        client_cpu_s: client_cpu,
        client_cpu_us_per_reg: per_reg(client_cpu),
        loadavg: [load_start, procfs::loadavg()],
    })
}

/// One client thread: its users, its socket or connection, its closed loop.
fn worker(shared: &Shared, w: usize, tls: Option<Arc<ClientConfig>>) -> Tally {
    let cfg = &shared.cfg;
    let source = IpAddr::V4(Ipv4Addr::from(u32::from(cfg.source) + w as u32));
    let users: Vec<User> = (w..cfg.users)
        .step_by(cfg.connections)
        .map(|i| User::numbered(cfg.first_user + i))
        .collect();
    let call_ids: Vec<String> = users
        .iter()
        .map(|u| format!("{}-{}", cfg.tag, u.name))
        .collect();
    let mut cseq = vec![1u32; users.len()];
    let mut tally = Tally::default();
    let reconnect_every = match cfg.mode {
        Mode::Tls {
            reconnect_every, ..
        } => reconnect_every,
        Mode::Udp => 0,
    };
    let open = |tally: &mut Tally, counted: bool| -> Option<Channel> {
        let opened = match (&tls, &shared.tls) {
            (Some(config), Some(name)) => {
                TlsChannel::open(config, name, source, cfg.server, cfg.timeout).map(|c| {
                    if counted {
                        tally.handshakes += 1;
                        tally.resumed += u64::from(c.resumed);
                    }
                    Channel::Tls(Box::new(c))
                })
            }
            _ => UdpChannel::open(source, cfg.server, cfg.timeout).map(Channel::Udp),
        };
        opened.map_err(|e| tally.fail(&e)).ok()
    };
    // Kept connections (and UDP sockets) are set up before the measured time.
    let mut channel = if reconnect_every == 0 {
        open(&mut tally, false)
    } else {
        None
    };
    shared.ready.wait();
    shared.go.wait();
    let Some(&deadline) = shared.deadline.get() else {
        return tally;
    };
    let mut since_connect = 0u32;
    let mut sent = 0u64;
    let mut next_user = 0usize;
    let mut buf = Vec::with_capacity(1024);
    while Instant::now() < deadline {
        if channel.is_none() {
            since_connect = 0;
            channel = open(&mut tally, true);
        }
        let Some(ch) = channel.as_mut() else {
            std::thread::sleep(ERROR_PAUSE);
            continue;
        };
        let i = next_user;
        next_user = (next_user + 1) % users.len();
        let n = cseq[i];
        cseq[i] = n.wrapping_add(2);
        sent += 1;
        let step = Step {
            cfg,
            user: &users[i],
            call_id: &call_ids[i],
            cseq: n,
            branch: format!("z9hG4bK-{}-{w}-{sent}.r", cfg.tag),
        };
        match register(ch, &step, &mut buf) {
            Ok(()) => {
                tally.done += 1;
                since_connect += 1;
                if reconnect_every > 0 && since_connect >= reconnect_every {
                    if let Some(c) = channel.take() {
                        c.close();
                    }
                }
            }
            Err(e) => {
                tally.fail(&e);
                if let Some(c) = channel.take() {
                    c.close();
                }
                std::thread::sleep(ERROR_PAUSE);
            }
        }
    }
    if let Some(c) = channel.take() {
        c.close();
    }
    tally
}

/// One registration's particulars.
struct Step<'a> {
    cfg: &'a LoadConfig,
    user: &'a User,
    call_id: &'a str,
    cseq: u32,
    branch: String,
}

/// REGISTER, its `401`, the REGISTER with credentials, its `200`.
fn register(ch: &mut Channel, step: &Step<'_>, buf: &mut Vec<u8>) -> Result<(), LoadError> {
    let cfg = step.cfg;
    let transport = match ch {
        Channel::Udp(_) => "UDP",
        Channel::Tls(_) => "TLS",
    };
    let first_branch = format!("{}1", step.branch);
    let mut request = Register {
        transport,
        via: ch.local(),
        branch: &first_branch,
        user: &step.user.name,
        domain: &cfg.domain,
        call_id: step.call_id,
        cseq: step.cseq,
        contact: &cfg.contact,
        authorization: None,
    };
    buf.clear();
    request.write_to(buf);
    let challenge = ch.request(buf, &first_branch)?;
    match status(&challenge) {
        Some(401) => {}
        other => {
            return Err(LoadError::Status {
                step: "REGISTER",
                status: other.unwrap_or(0),
            })
        }
    }
    let uri = format!("sip:{}", cfg.domain);
    let auth = Challenge::parse(&challenge)?.authorization(
        &step.user.name,
        &step.user.password,
        "REGISTER",
        &uri,
        "0a4f113b",
        1,
    );
    let second_branch = format!("{}2", step.branch);
    request.branch = &second_branch;
    request.cseq = step.cseq.wrapping_add(1);
    request.authorization = Some(&auth);
    buf.clear();
    request.write_to(buf);
    let ok = ch.request(buf, &second_branch)?;
    match status(&ok) {
        Some(200) => Ok(()),
        other => Err(LoadError::Status {
            step: "authenticated REGISTER",
            status: other.unwrap_or(0),
        }),
    }
}
