//! A whole server in simulated time: the [`Core`], a clock that moves only when the test
//! says so, the real SQLite store in a temporary folder (operations run at once, or held
//! back to test what waits for them), lookups answered from a table, and the test itself
//! as every peer: it sends datagrams to mss and reads what mss sent.
//!
//! Nothing touches the network: "sending" is the core's [`Output::Transmit`] parsed into
//! [`Sent`]. A scenario that takes minutes of protocol time runs in milliseconds.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod calls;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_admin::Metrics;
use mss_auth::NonceSecret;
use mss_core::{
    Core, CoreParts, CoreStats, FixedAddress, Input, LineSetup, OpId, Output, StoreOp, StoreResult,
};
use mss_services::im::ImSettings;
use mss_services::lines::LineSettings;
use mss_services::registrar::{Registrar, RegistrarConfig};
use mss_services::{
    Answer, BanSettings, Bans, DigestGuard, Directory, GuardConfig, LocalDomains, Now, Offer,
    Precheck, Users,
};
use mss_sip::{parse_datagram, Flow, HeaderName, Message, Method, Request, Response};
use mss_store::{block_on, SqliteStore, Store, StoreError};

/// mss's own address in every simulation.
pub const MSS: &str = "127.0.0.1:5060";
/// Our domain.
pub const DOMAIN: &str = "pbx.test";

/// The wall clock at the simulation's start (unix ms).
const EPOCH_MS: i64 = 1_800_000_000_000;

pub fn mss() -> SocketAddr {
    MSS.parse().unwrap()
}

/// What mss sent: where to, and the parsed message.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: Flow,
    pub message: Message,
}

impl Sent {
    pub fn request(&self) -> Option<&Request> {
        match &self.message {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    pub fn response(&self) -> Option<&Response> {
        match &self.message {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }
}

/// How a simulated server is configured.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Local users and their passwords.
    pub users: Vec<(String, String)>,
    /// External lines.
    pub lines: Vec<LineSetup>,
    /// Messaging settings.
    pub im: ImSettings,
    /// Seed of the core's randomness.
    pub seed: u64,
    /// The ban table's settings (the default ones ignore loopback, where most scenarios
    /// run; ban scenarios use documentation addresses).
    pub bans: BanSettings,
    /// mss has no IPv6 socket: our address towards an IPv6 peer is unknown.
    pub ipv4_only: bool,
    /// The call service's settings.
    pub calls: mss_core::CallSettings,
    /// The media relay's ports and timeouts (used when `calls.media` is set).
    pub relay: mss_media::RelayConfig,
    /// Sessions the relay keeps allocated ahead and hands to the core as
    /// `MediaEvent::Ready` (as `mss_media::io::MediaOptions::ready`); 0: none.
    pub media_ready: usize,
}

/// A host with one IPv4 address and no IPv6 socket.
struct Ipv4Only;

impl mss_core::Network for Ipv4Only {
    fn sent_by(&self, _: mss_sip::Transport, remote: SocketAddr) -> Option<SocketAddr> {
        remote.is_ipv4().then(mss)
    }
}

impl Default for Setup {
    fn default() -> Setup {
        let mut im = ImSettings::new(DOMAIN);
        // Stands in only where the host cannot name our address; the network here always
        // can, so this never shows in a Via.
        im.via_host = "via-host.invalid".to_owned();
        im.rate_limit = None;
        Setup {
            users: vec![
                ("100".into(), "pw-100".into()),
                ("101".into(), "pw-101".into()),
            ],
            lines: Vec::new(),
            im,
            seed: 7,
            bans: BanSettings::default(),
            ipv4_only: false,
            calls: mss_core::CallSettings::default(),
            relay: mss_media::RelayConfig::new(mss_media::PortRange::new(20000, 20099).unwrap()),
            media_ready: 0,
        }
    }
}

impl Setup {
    /// A line `name` with `number` registering at `registrar` (`host:port`, an IP), owned by
    /// `owner`, retrying between 30 s and 30 min.
    pub fn line(mut self, name: &str, registrar: &str, number: &str, owner: Option<&str>) -> Setup {
        let addr: SocketAddr = registrar.parse().unwrap();
        let mut settings = LineSettings::new(name, &addr.ip().to_string(), number, "line-secret");
        settings.port = Some(addr.port());
        settings.expires = 600;
        settings.user_agent = "mss-sim".into();
        self.lines.push(LineSetup {
            settings,
            owner: owner.map(str::to_owned),
            outgoing: true,
        });
        self
    }

    /// Changes the last line's settings.
    pub fn with_line(mut self, f: impl FnOnce(&mut LineSettings)) -> Setup {
        if let Some(l) = self.lines.last_mut() {
            f(&mut l.settings);
        }
        self
    }
}

/// One simulated server and everything around it.
pub struct Sim {
    pub core: Core,
    pub setup: Setup,
    t0: Instant,
    elapsed: Duration,
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<CoreStats>,
    /// What mss sent and the test has not read yet.
    pub sent: VecDeque<Sent>,
    /// Store operations are held instead of run while set.
    pub hold_store: bool,
    /// Held store operations, in order.
    pub held: VecDeque<(OpId, StoreOp)>,
    /// The next store operation fails.
    pub fail_next_store: bool,
    /// Every store operation the core asked for, by kind (`GetLine`, `PutLine`, …).
    pub store_log: Vec<String>,
    /// Addresses of names that lookups find.
    pub dns: HashMap<String, Vec<SocketAddr>>,
    /// Lookups not answered yet (names not in `dns` wait here).
    pub lookups: Vec<OpId>,
    /// The media relay the core drives (the real sans-IO port table, answered at once),
    /// when `setup.calls.media` is set.
    pub relay: Option<mss_media::Relay>,
    /// Allocations are held instead of answered while set.
    pub hold_media: bool,
    /// Held allocations, in order.
    pub held_media: VecDeque<u64>,
    /// Every command the core gave the relay.
    pub media_log: Vec<mss_media::io::Command>,
    /// Every relay event fed to the core.
    pub media_events: Vec<mss_media::io::MediaEvent>,
    /// The relay's ready sessions not taken yet ([`Setup::media_ready`]).
    pub media_ready: Vec<mss_media::SessionId>,
}

impl Sim {
    /// A server with `setup`, its store in a new temporary folder, started at time zero.
    pub fn start(setup: Setup) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        Sim::start_on(setup, dir, store, Duration::ZERO, HashMap::new())
    }

    /// [`Sim::start`] with lookups of `names` answered with their addresses from the start.
    pub fn start_with_dns(setup: Setup, names: &[(&str, &[&str])]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let dns = names
            .iter()
            .map(|(n, addrs)| {
                let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
                ((*n).to_owned(), addrs)
            })
            .collect();
        Sim::start_on(setup, dir, store, Duration::ZERO, dns)
    }

    /// Stops this server (as after a crash: nothing is said to anyone) and starts a new one
    /// on the same store, `after` later.
    pub fn restart(self, after: Duration) -> Sim {
        let Sim {
            setup,
            dir,
            store,
            elapsed,
            dns,
            ..
        } = self;
        let path: PathBuf = dir.path().to_path_buf();
        drop(store);
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        Sim::start_on(setup, dir, store, elapsed + after, dns)
    }

    fn start_on(
        setup: Setup,
        dir: tempfile::TempDir,
        store: Arc<SqliteStore>,
        elapsed: Duration,
        dns: HashMap<String, Vec<SocketAddr>>,
    ) -> Sim {
        let t0 = Instant::now();
        let now = Now::new(t0 + elapsed, EPOCH_MS + ms(elapsed));
        let metrics = Arc::new(Metrics::new());
        let stats = Arc::new(CoreStats::default());
        let (registrar, mut directory) = registrar(&setup.users, &setup.bans);
        let records = block_on(store.load_bindings(now.unix_ms)).unwrap();
        directory.restore(&records, now);
        let core = Core::new(
            CoreParts {
                registrar,
                directory,
                domains: domains(),
                answer: Answer::new(DOMAIN),
                precheck: precheck(),
                lines: setup.lines.clone(),
                im: setup.im.clone(),
                calls: setup.calls.clone(),
                metrics: Arc::clone(&metrics),
                stats: Arc::clone(&stats),
                network: if setup.ipv4_only {
                    Box::new(Ipv4Only)
                } else {
                    Box::new(FixedAddress(mss()))
                },
                seed: setup.seed,
            },
            now,
        );
        let mut sim = Sim {
            core,
            setup,
            t0,
            elapsed,
            dir,
            store,
            metrics,
            stats,
            sent: VecDeque::new(),
            hold_store: false,
            held: VecDeque::new(),
            fail_next_store: false,
            store_log: Vec::new(),
            dns,
            lookups: Vec::new(),
            relay: None,
            hold_media: false,
            held_media: VecDeque::new(),
            media_log: Vec::new(),
            media_events: Vec::new(),
            media_ready: Vec::new(),
        };
        if sim.setup.calls.media.is_some() {
            sim.relay = Some(mss_media::Relay::new(
                sim.setup.relay.clone(),
                sim.setup.seed,
            ));
            sim.refill_media();
        }
        let counts = block_on(sim.store.message_counts(now.unix_ms)).unwrap();
        sim.core
            .set_stored_users(counts.into_iter().filter(|c| c.stored > 0).map(|c| c.user));
        sim.pump();
        sim
    }

    /// The simulated time.
    pub fn now(&self) -> Now {
        Now::new(self.t0 + self.elapsed, EPOCH_MS + ms(self.elapsed))
    }

    /// Time since the simulation's (first) start.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Feeds one input and carries out everything that follows.
    pub fn input(&mut self, input: Input) {
        let now = self.now();
        self.core.handle(now, input);
        self.pump();
    }

    /// `text` arrives over UDP from `from`.
    pub fn receive(&mut self, from: SocketAddr, text: &str) {
        self.receive_bytes(Flow::udp(from), Bytes::from(text.to_owned()));
    }

    /// `data` arrives on `flow`.
    pub fn receive_bytes(&mut self, flow: Flow, data: Bytes) {
        self.input(Input::Received {
            local: mss(),
            flow,
            data,
        });
    }

    /// Lets `d` of simulated time pass, firing every timer that falls within it, in order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.elapsed + d;
        while let Some(at) = self.next_timeout() {
            let at = at.saturating_duration_since(self.t0);
            if at > end {
                break;
            }
            self.elapsed = self.elapsed.max(at);
            let now = self.now();
            if let Some(relay) = self.relay.as_mut() {
                if relay.poll_timeout().is_some_and(|t| t <= now.mono) {
                    relay.handle_timeout(now.mono);
                    self.relay_events();
                    continue;
                }
            }
            self.input(Input::Timeout);
        }
        self.elapsed = end;
    }

    /// The earliest timer of the core and the relay.
    pub fn next_timeout(&self) -> Option<Instant> {
        let relay = self.relay.as_ref().and_then(|r| r.poll_timeout());
        [self.core.poll_timeout(), relay]
            .into_iter()
            .flatten()
            .min()
    }

    /// Feeds the relay's queued events to the core.
    fn relay_events(&mut self) {
        while let Some(e) = self.relay.as_mut().and_then(|r| r.poll_event()) {
            self.media_input(mss_media::io::MediaEvent::Relay(e));
        }
    }

    fn media_input(&mut self, event: mss_media::io::MediaEvent) {
        self.media_events.push(event.clone());
        let now = self.now();
        self.core.handle(now, Input::Media(event));
    }

    /// Answers every held allocation.
    pub fn release_media(&mut self) {
        self.hold_media = false;
        while let Some(op) = self.held_media.pop_front() {
            self.allocate(op);
            self.pump();
        }
    }

    fn allocate(&mut self, op: u64) {
        let Some(relay) = self.relay.as_mut() else {
            panic!("the core asked a relay it does not have for ports");
        };
        let result = relay
            .allocate()
            .map_err(|_| mss_media::io::AllocateError::Exhausted);
        self.media_input(mss_media::io::MediaEvent::Allocated { op, result });
    }

    /// Reserves ready sessions up to [`Setup::media_ready`] while ports are free, each
    /// fed to the core as `MediaEvent::Ready` (as the relay thread does at its start and
    /// after every take or release).
    pub fn refill_media(&mut self) {
        while self.media_ready.len() < self.setup.media_ready {
            let Some(relay) = self.relay.as_mut() else {
                return;
            };
            let Ok(a) = relay.reserve() else {
                return;
            };
            self.media_ready.push(a.session);
            self.media_input(mss_media::io::MediaEvent::Ready(a));
        }
    }

    /// Carries out a command of the core on the relay.
    fn media_command(&mut self, cmd: mss_media::io::Command) {
        use mss_media::io::{Command, MediaEvent};
        self.media_log.push(cmd.clone());
        let now = self.now();
        if let Command::Allocate { op } = cmd {
            if self.hold_media {
                self.held_media.push_back(op);
            } else {
                self.allocate(op);
            }
            return;
        }
        if let Command::Taken { session } = cmd {
            let relay = self.relay.as_mut().expect("a relay");
            relay.take(session).expect("a ready session is taken");
            let before = self.media_ready.len();
            self.media_ready.retain(|s| *s != session);
            assert_eq!(self.media_ready.len() + 1, before, "{session} was ready");
            self.refill_media();
            return;
        }
        let Some(relay) = self.relay.as_mut() else {
            panic!("the core gave a relay it does not have {cmd:?}");
        };
        // A command for a session already released is refused by the relay (and harmless).
        let event = match cmd {
            Command::Allocate { .. } | Command::Taken { .. } => None,
            Command::SetRemote {
                session,
                leg,
                remote,
            } => {
                let _ = relay.set_remote(session, leg, remote);
                None
            }
            Command::SourceChanged { session, leg } => {
                let _ = relay.new_source(session, leg);
                None
            }
            Command::SetHold {
                session,
                leg,
                on_hold,
            } => {
                let _ = relay.set_hold(now.mono, session, leg, on_hold);
                None
            }
            Command::Answered { session } => {
                let _ = relay.answered(now.mono, session);
                None
            }
            Command::Release { session } => Some(MediaEvent::Released {
                session,
                stats: relay.release(session).ok(),
            }),
            Command::Stats { session } => Some(MediaEvent::Stats {
                session,
                stats: relay.session_stats(session),
            }),
        };
        let released = matches!(event, Some(MediaEvent::Released { .. }));
        if let Some(e) = event {
            self.media_input(e);
        }
        if released {
            self.refill_media();
        }
        self.relay_events();
    }

    /// The relay's view of a session's leg.
    pub fn relay_leg(
        &self,
        session: mss_media::SessionId,
        leg: mss_media::Leg,
    ) -> mss_media::LegInfo {
        self.relay.as_ref().unwrap().leg(session, leg).unwrap()
    }

    /// Sessions live in the relay (the ready ones not taken by a call left out).
    pub fn relay_sessions(&self) -> Vec<mss_media::SessionId> {
        self.relay
            .as_ref()
            .map(|r| {
                r.sessions()
                    .filter(|s| !self.media_ready.contains(s))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One RTP packet from `from` to local port `port` of the relay; where it is sent.
    pub fn rtp(&mut self, port: u16, from: SocketAddr) -> mss_media::Decision {
        let now = self.now();
        let mut pkt = [0u8; 172];
        pkt[0] = 0x80;
        pkt[1] = 0x00;
        let d = self
            .relay
            .as_mut()
            .unwrap()
            .handle_packet(now.mono, port, from, &mut pkt);
        self.relay_events();
        d
    }

    /// Advances in steps of `step` until `f` finds something in what mss sent (kept for
    /// later reads otherwise), at most `limit`; `None` when nothing came.
    pub fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut f: impl FnMut(&Sent) -> Option<T>,
    ) -> Option<T> {
        let end = self.elapsed + limit;
        loop {
            if let Some(i) = self.sent.iter().position(|s| f(s).is_some()) {
                let s = self.sent.remove(i)?;
                return f(&s);
            }
            if self.elapsed >= end {
                return None;
            }
            let next = self
                .next_timeout()
                .map_or(end, |t| (t.saturating_duration_since(self.t0)).min(end))
                .max(self.elapsed + Duration::from_millis(1));
            let step = next.saturating_sub(self.elapsed);
            self.advance(step);
        }
    }

    /// The next request with `method` mss sent (waiting up to `limit`).
    pub fn next_request(&mut self, method: Method, limit: Duration) -> Option<(Flow, Request)> {
        self.wait_for(limit, |s| {
            s.request()
                .filter(|r| *r.method() == method)
                .map(|r| (s.to, r.clone()))
        })
    }

    /// The next response mss sent to `to` (waiting up to a second).
    pub fn response_to(&mut self, to: SocketAddr) -> Option<Response> {
        self.wait_for(Duration::from_secs(1), |s| {
            s.response().filter(|_| s.to.remote == to).cloned()
        })
    }

    /// Drops everything mss sent so far.
    pub fn forget_sent(&mut self) {
        self.sent.clear();
    }

    /// Runs every held store operation.
    pub fn release_store(&mut self) {
        self.hold_store = false;
        while let Some((id, op)) = self.held.pop_front() {
            let result = self.run_store(op);
            self.input(Input::Stored { id, result });
        }
    }

    /// Carries out the core's outputs until it has none.
    fn pump(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let message = parse_datagram(t.bytes)
                        .unwrap_or_else(|e| panic!("mss sent something unparsable: {e}"));
                    self.sent.push_back(Sent { to: t.to, message });
                }
                Output::Store { id, op } => {
                    self.store_log.push(op_name(&op).to_owned());
                    if self.hold_store {
                        self.held.push_back((id, op));
                    } else {
                        let result = self.run_store(op);
                        let now = self.now();
                        self.core.handle(now, Input::Stored { id, result });
                    }
                }
                Output::Resolve { id, request } => match self.lookup(&request) {
                    Some(addrs) => {
                        let now = self.now();
                        self.core.handle(now, Input::Resolved { id, addrs });
                    }
                    None => self.lookups.push(id),
                },
                Output::CancelResolve { id } => {
                    if let Some(i) = self.lookups.iter().position(|l| *l == id) {
                        self.lookups.remove(i);
                        let now = self.now();
                        self.core.handle(
                            now,
                            Input::Resolved {
                                id,
                                addrs: Vec::new(),
                            },
                        );
                    }
                }
                Output::Media(cmd) => self.media_command(cmd),
                Output::MemoryReleasable => {}
            }
        }
    }

    /// What a lookup finds: an IP literal is its own answer (as in the driver), a name is
    /// looked up in [`Sim::dns`].
    fn lookup(&self, request: &mss_services::lines::ResolveRequest) -> Option<Vec<SocketAddr>> {
        match request.host.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(vec![SocketAddr::new(ip, request.default_port())]),
            Err(_) => self.dns.get(&request.host).cloned(),
        }
    }

    fn run_store(&mut self, op: StoreOp) -> StoreResult {
        if std::mem::take(&mut self.fail_next_store) {
            let e = || StoreError::ThreadGone {
                op: "simulated failure",
                path: PathBuf::from("sim"),
                thread: "writer",
            };
            return match op {
                StoreOp::ApplyBindingChanges { .. } | StoreOp::PutLine(_) | StoreOp::PutCall(_) => {
                    StoreResult::Done(Err(e()))
                }
                StoreOp::DeleteExpiredBindings { .. } | StoreOp::DeleteExpiredMessages { .. } => {
                    StoreResult::Count(Err(e()))
                }
                StoreOp::InsertMessageIfBelow { .. } => StoreResult::Inserted(Err(e())),
                StoreOp::ListMessages { .. } => StoreResult::Messages(Err(e())),
                StoreOp::DeleteMessage { .. } => StoreResult::Deleted(Err(e())),
                StoreOp::GetLine { .. } => StoreResult::Line(Err(e())),
            };
        }
        let s = &self.store;
        match op {
            StoreOp::ApplyBindingChanges { user, changes } => {
                StoreResult::Done(block_on(s.apply_binding_changes(&user, changes)))
            }
            StoreOp::DeleteExpiredBindings { now } => {
                StoreResult::Count(block_on(s.delete_expired_bindings(now)))
            }
            StoreOp::InsertMessageIfBelow { message, limit } => {
                StoreResult::Inserted(block_on(s.insert_message_if_below(message, limit)))
            }
            StoreOp::ListMessages { user, now } => {
                StoreResult::Messages(block_on(s.list_messages(&user, now)))
            }
            StoreOp::DeleteMessage { id } => StoreResult::Deleted(block_on(s.delete_message(id))),
            StoreOp::DeleteExpiredMessages { now } => {
                StoreResult::Count(block_on(s.delete_expired_messages(now)))
            }
            StoreOp::GetLine { name } => StoreResult::Line(block_on(s.get_line(&name))),
            StoreOp::PutLine(record) => StoreResult::Done(block_on(s.put_line(record))),
            StoreOp::PutCall(record) => StoreResult::Done(block_on(s.put_call(record))),
        }
    }

    /// Stops the server: shutdown, then time passes until the core has drained.
    pub fn shutdown(&mut self) {
        self.input(Input::Shutdown);
        for _ in 0..1000 {
            if self.core.is_drained(self.now()) {
                return;
            }
            self.advance(Duration::from_millis(50));
        }
        panic!("the core did not drain");
    }

    /// The admin view of line `index`.
    pub fn line(&self, index: usize) -> mss_admin::LineView {
        self.core.line_views().swap_remove(index)
    }

    /// The admin API state name of line `index`.
    pub fn line_state(&self, index: usize) -> String {
        self.line(index).state.as_str().to_owned()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}

fn op_name(op: &StoreOp) -> &'static str {
    match op {
        StoreOp::ApplyBindingChanges { .. } => "ApplyBindingChanges",
        StoreOp::DeleteExpiredBindings { .. } => "DeleteExpiredBindings",
        StoreOp::InsertMessageIfBelow { .. } => "InsertMessageIfBelow",
        StoreOp::ListMessages { .. } => "ListMessages",
        StoreOp::DeleteMessage { .. } => "DeleteMessage",
        StoreOp::DeleteExpiredMessages { .. } => "DeleteExpiredMessages",
        StoreOp::GetLine { .. } => "GetLine",
        StoreOp::PutLine(_) => "PutLine",
        StoreOp::PutCall(_) => "PutCall",
    }
}

fn domains() -> LocalDomains {
    let mut d = LocalDomains::new(DOMAIN).with_alias("localhost");
    d.add_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    d
}

fn registrar(users: &[(String, String)], bans: &BanSettings) -> (Registrar, Directory) {
    let mut dir = Users::new(DOMAIN);
    for (name, password) in users {
        dir.insert(name, password, None);
    }
    let guard = DigestGuard::new(
        dir,
        NonceSecret::from_bytes([9; 32]),
        GuardConfig {
            offer: Offer::Configured(vec![mss_auth::Algorithm::Md5]),
            ..GuardConfig::default()
        },
        3,
    );
    let config = RegistrarConfig {
        min_expires: 10,
        ..RegistrarConfig::default()
    };
    (
        Registrar::new(config, domains(), Answer::new(DOMAIN)),
        Directory::with_bans(guard, Bans::new(bans.clone())),
    )
}

fn precheck() -> Precheck {
    Precheck::new(vec![
        Method::Register,
        Method::Options,
        Method::Message,
        Method::Invite,
        Method::Bye,
        Method::Update,
        Method::Info,
        Method::Refer,
        Method::Subscribe,
        Method::Notify,
        Method::Prack,
    ])
}

/// The value of an `Authorization` / `Proxy-Authorization` header answering the first
/// challenge of `challenge`'s `header` for `method` to `uri` as `user` with `password`.
pub fn digest_answer(
    challenge: &Response,
    header: &HeaderName,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    let ch = challenge.headers().auth(header).unwrap();
    let params = ch[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
    mss_auth::authorize(params, method, uri, user, password, "c0ffee", nc).unwrap()
}

/// A phone of local user `user` at `addr`, as the test plays it.
pub struct Phone {
    pub user: String,
    pub password: String,
    pub addr: SocketAddr,
    cseq: u32,
    /// The last REGISTER sent, as sent (to play a retransmission).
    pub last_register: String,
}

impl Phone {
    pub fn new(user: &str, password: &str, addr: &str) -> Phone {
        Phone {
            user: user.into(),
            password: password.into(),
            addr: addr.parse().unwrap(),
            cseq: 0,
            last_register: String::new(),
        }
    }

    fn register_text(&mut self, expires: u32, auth: &str) -> String {
        self.cseq += 1;
        let Phone {
            user, addr, cseq, ..
        } = self;
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK-r{user}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=p{user}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: reg-{user}@{addr}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{addr}>\r\nExpires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    }

    /// Sends a REGISTER, answers the `401`, and returns mss's final answer to the
    /// authenticated REGISTER (`None` if none came within a second).
    pub fn register(&mut self, sim: &mut Sim, expires: u32) -> Option<Response> {
        let text = self.register_text(expires, "");
        sim.receive(self.addr, &text);
        let challenge = sim.response_to(self.addr)?;
        assert_eq!(challenge.status().as_u16(), 401, "{challenge:?}");
        let auth = digest_answer(
            &challenge,
            &HeaderName::WwwAuthenticate,
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &self.user,
            &self.password,
            1,
        );
        let text = self.register_text(expires, &format!("Authorization: {auth}\r\n"));
        sim.receive(self.addr, &text);
        self.last_register = text;
        sim.response_to(self.addr)
    }

    /// Sends a MESSAGE with `body` to `to`, answers the `407`, and returns mss's final answer
    /// (waiting up to a minute of simulated time).
    pub fn message(&mut self, sim: &mut Sim, to: &str, body: &str) -> Option<Response> {
        let challenged = self.message_start(sim, to, body);
        assert_eq!(challenged, 407);
        let me = self.addr;
        sim.wait_for(Duration::from_secs(60), |s| {
            s.response()
                .filter(|r| s.to.remote == me && r.status().as_u16() >= 200)
                .cloned()
        })
    }

    /// Sends a MESSAGE with `body` to `to` and answers the challenge; returns the status of
    /// the challenge. mss's answer to the authenticated MESSAGE is left to the test.
    pub fn message_start(&mut self, sim: &mut Sim, to: &str, body: &str) -> u16 {
        self.cseq += 1;
        let text = self.message_text(to, body, "");
        sim.receive(self.addr, &text);
        let Some(challenge) = sim.response_to(self.addr) else {
            return 0;
        };
        if challenge.status().as_u16() != 407 {
            return challenge.status().as_u16();
        }
        let auth = digest_answer(
            &challenge,
            &HeaderName::ProxyAuthenticate,
            "MESSAGE",
            &format!("sip:{to}@{DOMAIN}"),
            &self.user,
            &self.password,
            1,
        );
        self.cseq += 1;
        let text = self.message_text(to, body, &format!("Proxy-Authorization: {auth}\r\n"));
        sim.receive(self.addr, &text);
        407
    }

    fn message_text(&self, to: &str, body: &str, auth: &str) -> String {
        let Phone {
            user, addr, cseq, ..
        } = self;
        format!(
            "MESSAGE sip:{to}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK-m{user}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=m{user}\r\nTo: <sip:{to}@{DOMAIN}>\r\nCall-ID: msg-{user}-{cseq}@{addr}\r\nCSeq: {cseq} MESSAGE\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }
}

/// The response `code reason` to `req`, as a peer writes it: Via, From, To (with a tag),
/// Call-ID and CSeq copied, plus `extra` header lines.
pub fn reply(req: &Request, code: u16, reason: &str, extra: &str) -> String {
    let h = req.headers();
    let get = |n: &HeaderName| String::from_utf8_lossy(h.get(n).unwrap()).into_owned();
    let vias: String = h
        .get_all(&HeaderName::Via)
        .map(|v| format!("Via: {}\r\n", String::from_utf8_lossy(v)))
        .collect();
    let to = get(&HeaderName::To);
    let to = if to.contains(";tag=") {
        to
    } else {
        format!("{to};tag=peer")
    };
    format!(
        "SIP/2.0 {code} {reason}\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        get(&HeaderName::From),
        get(&HeaderName::CallId),
        get(&HeaderName::CSeq),
    )
}
