//! The worker: the one task that drives the sans-IO [`Core`], moving bytes and results in
//! and out. It decides nothing about SIP.
//!
//! It `select!`s over the shutdown future, finished lookups and store calls, admin
//! [`Query`]s, received packets and a sleep until [`Core::poll_timeout`]; each becomes one
//! [`Input`]. After every input it carries out the core's [`Output`]s: transmits go to the
//! sockets (a failed send of a transaction goes back as [`Input::SendFailed`]), store
//! operations to the store (`serve/store_calls.rs`, results in the order of the calls; a
//! finished call record, once stored, also to the CSV writer, `serve/cdr_writer.rs`),
//! lookups to a bounded DNS task (`serve/dns.rs`), media relay commands to the relay's own
//! thread (`mss_media::io::MediaRelay`; its answers and events come back on a channel and
//! become [`Input::Media`]). The worker never touches an RTP packet.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use mss_admin::{ActiveCallView, BanView, LineView, RegistrationView};
use mss_core::{Core, Input, Network, OpId, Output, StoreOp, StoreResult};
use mss_media::io::{AllocateError, Command, MediaEvent};
use mss_services::lines::ResolveRequest;
use mss_sip::Transport;
use mss_store::{Store, StoreError, StoreFuture};
use mss_transport::{ConnectFailure, Received, TlsPeer, Transports, UdpDatagram};
use mss_txn::TransactionId;
use tokio::sync::{mpsc, oneshot};

use super::cdr_writer::{CdrSender, CDR_WAKE_DELAY};
use super::dns::{self, DnsError};
use super::memory::release_free_memory;
use super::setup::{now, ProviderAddrs};
use super::store_calls::StoreCalls;

/// How many more queued packets are handled after a wake-up before looking at the other
/// inputs again (keeps timers and completions timely under load).
///
/// The outputs of the whole batch are carried out after it, not after each packet: the
/// datagrams go out in one burst (one `sendmmsg` per socket), so that a peer woken by the
/// first is still awake for the others, and mss is not preempted by each peer it wakes
/// between two packets. At 2,000 calls/s this cut mss's CPU per call by 12-15 % (perf
/// log, calls round 5); a packet waits at most for the others of its batch (some tens of
/// microseconds each).
const RECEIVE_BATCH: usize = 64;

/// When the core has no timer at all (it always has the sweep), wake up anyway after this.
const IDLE_WAKE: Duration = Duration::from_secs(60);
/// How long commands nobody waits for may sit in the media relay's queue before its thread
/// is woken for them (see [`Worker::send_media`]).
const MEDIA_WAKE_DELAY: Duration = Duration::from_millis(1);

/// A question from the admin API, answered from the core's state (see `serve/admin.rs`).
#[derive(Debug)]
pub(crate) enum Query {
    /// `GET /api/registrations`.
    Registrations(oneshot::Sender<Vec<RegistrationView>>),
    /// `GET /api/lines`.
    Lines(oneshot::Sender<Vec<LineView>>),
    /// `GET /api/bans`.
    Bans(oneshot::Sender<Vec<BanView>>),
    /// `DELETE /api/bans/{addr}`: whether something was banned there.
    LiftBan(std::net::IpAddr, oneshot::Sender<bool>),
    /// `GET /api/calls/active`.
    ActiveCalls(oneshot::Sender<Vec<ActiveCallView>>),
}

/// The next event of the media relay; pending forever without relay.
async fn recv_media(media: &mut Option<MediaLink>) -> Option<MediaEvent> {
    match media {
        Some(link) => link.events.recv().await,
        None => std::future::pending().await,
    }
}

/// A finished lookup: its id and the addresses found (or why none).
type Lookup = (OpId, Result<Vec<SocketAddr>, DnsError>);

/// The channels the worker listens to.
#[derive(Debug)]
pub(crate) struct Inputs {
    /// Packets from the transports.
    pub(crate) received: mpsc::Receiver<Received>,
    /// Admin API questions.
    pub(crate) queries: mpsc::Receiver<Query>,
}

/// The core's [`Network`] over the running sockets: our address towards a peer is the
/// bound one, or the routing table's source address when bound to the unspecified address.
pub(crate) struct HostNetwork(pub(crate) Transports);

impl Network for HostNetwork {
    fn sent_by(&self, transport: Transport, remote: SocketAddr) -> Option<SocketAddr> {
        self.0.sent_by(transport, remote).ok()
    }
}

/// The media relay as the worker reaches it: its command sender and the channel its events
/// come back on.
pub(crate) struct MediaLink {
    /// Commands to the relay's thread.
    pub(crate) commands: mss_media::io::Commands,
    /// Its answers and events.
    pub(crate) events: mpsc::UnboundedReceiver<MediaEvent>,
}

/// The task that drives the core.
pub(crate) struct Worker {
    core: Core,
    transports: Transports,
    store: Arc<dyn Store>,
    /// Store calls being waited for, in call order.
    store_calls: StoreCalls,
    /// Finished call records, once stored, go to the CSV writer's thread.
    cdr: CdrSender,
    /// Finished lookups come back on this channel.
    lookups_tx: mpsc::UnboundedSender<Lookup>,
    lookups: mpsc::UnboundedReceiver<Lookup>,
    /// Cancels a running lookup when sent to (or dropped).
    cancels: HashMap<OpId, oneshot::Sender<()>>,
    /// The DNS resolver, built at the first name lookup.
    resolver: Option<TokioResolver>,
    /// The TLS lines' peers by registrar host (`serve/lines.rs`): registered with the
    /// transports for every address a TLS lookup of that host finds.
    tls_peers: HashMap<String, TlsPeer>,
    /// Outbound connections the transports could not make.
    failures: mpsc::Receiver<ConnectFailure>,
    /// The media relay (`None` with `relay = never`).
    media: Option<MediaLink>,
    /// A command that must not wait was queued for the media relay since its last wake-up.
    media_urgent: bool,
    /// When the media relay's thread is woken for the commands that may wait; `None`: none
    /// queued.
    media_wake_at: Option<Instant>,
    /// When the CSV writer's thread is woken for the records queued since its last
    /// wake-up (at most [`CDR_WAKE_DELAY`] after the first of them).
    cdr_wake_at: Option<Instant>,
    /// The lines' registrars' addresses, for the receive loops' per-source limit.
    providers: ProviderAddrs,
    /// The UDP datagrams of the outputs being carried out, sent together at the end
    /// ([`Worker::flush_udp`]), and the transaction of each (for a failed send).
    udp_out: Vec<UdpDatagram>,
    udp_txns: Vec<Option<TransactionId>>,
}

impl Worker {
    /// A worker driving `core` over `transports` and `store`; finished call records go to
    /// `cdr` too.
    pub(crate) fn new(
        core: Core,
        transports: Transports,
        store: Arc<dyn Store>,
        cdr: CdrSender,
        tls_peers: HashMap<String, TlsPeer>,
        media: Option<MediaLink>,
    ) -> Worker {
        let (lookups_tx, lookups) = mpsc::unbounded_channel();
        // Only one taker: a second worker on the same transports would hear of none.
        let failures = transports
            .connect_failures()
            .unwrap_or_else(|| mpsc::channel(1).1);
        Worker {
            core,
            transports,
            store,
            store_calls: StoreCalls::default(),
            cdr,
            lookups_tx,
            lookups,
            cancels: HashMap::new(),
            resolver: None,
            tls_peers,
            failures,
            media,
            media_urgent: false,
            media_wake_at: None,
            cdr_wake_at: None,
            providers: ProviderAddrs::default(),
            udp_out: Vec::new(),
            udp_txns: Vec::new(),
        }
    }

    /// Tells `providers` every address a lookup finds (every lookup is a line's
    /// registrar's).
    pub(crate) fn with_providers(mut self, providers: ProviderAddrs) -> Worker {
        self.providers = providers;
        self
    }

    /// Runs until `shutdown` has completed and the core has drained (or its drain limit
    /// passed), or until the transports are gone.
    pub(crate) async fn run(mut self, mut inputs: Inputs, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut packets_open = true;
        // What parsing the configuration (100,000 users: ~90 MB) freed goes back now.
        release_free_memory();
        // The outputs of the core's start (every line reads its stored record).
        self.execute();
        loop {
            let core_deadline = self.core.poll_timeout();
            let deadline = [core_deadline, self.media_wake_at, self.cdr_wake_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + IDLE_WAKE);
            tokio::select! {
                biased;
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    self.core.handle(now(), Input::Shutdown);
                }
                Some((id, result)) = self.lookups.recv() => self.on_lookup(id, result),
                Some(e) = recv_media(&mut self.media) => {
                    self.core.handle(now(), Input::Media(e));
                }
                Some(f) = self.failures.recv() => {
                    self.core.handle(now(), Input::ConnectFailed { flow: f.flow, reason: f.reason });
                }
                (id, result) = self.store_calls.next(), if !self.store_calls.is_empty() => {
                    self.core.handle(now(), Input::Stored { id, result });
                    // A committed call record queued for its CSV file (`start_store`).
                    if self.cdr_wake_at.is_none() && self.cdr.has_queued() {
                        self.cdr_wake_at = Some(Instant::now() + CDR_WAKE_DELAY);
                    }
                }
                Some(q) = inputs.queries.recv() => self.on_query(q),
                r = inputs.received.recv(), if packets_open => match r {
                    Some(r) => {
                        self.on_received(r);
                        for _ in 0..RECEIVE_BATCH {
                            match inputs.received.try_recv() {
                                Ok(r) => self.on_received(r),
                                Err(_) => break,
                            }
                        }
                    }
                    None => packets_open = false,
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    let at = Instant::now();
                    let media_due = self.media_wake_at.is_some_and(|t| t <= at);
                    if media_due {
                        self.wake_media();
                    }
                    let cdr_due = self.cdr_wake_at.is_some_and(|t| t <= at);
                    if cdr_due {
                        self.cdr_wake_at = None;
                        self.cdr.wake();
                    }
                    // The core's deadline, or the idle wake-up when it has none.
                    if !(media_due || cdr_due) || core_deadline.is_some_and(|t| t <= at) {
                        self.core.handle(now(), Input::Timeout);
                    }
                }
            }
            self.execute();
            if !packets_open && !stopping {
                tracing::warn!("the transports stopped; worker stops");
                break;
            }
            if stopping && self.core.is_drained(now()) {
                break;
            }
        }
        // What the CSV writer has not been woken for yet (its thread also writes what is
        // left once every sender is gone).
        self.cdr.wake();
        tracing::info!("worker stopped");
    }

    /// Hands packet `r` to the core; its outputs wait for the end of the batch
    /// ([`RECEIVE_BATCH`]).
    fn on_received(&mut self, r: Received) {
        let input = Input::Received {
            local: r.local,
            flow: r.flow,
            data: r.data,
        };
        self.core.handle(now(), input);
    }

    fn on_query(&mut self, q: Query) {
        match q {
            Query::Registrations(reply) => {
                let _ = reply.send(self.core.registrations(now()));
            }
            Query::Lines(reply) => {
                let _ = reply.send(self.core.line_views());
            }
            Query::Bans(reply) => {
                let _ = reply.send(self.core.bans(now()));
            }
            Query::LiftBan(addr, reply) => {
                let _ = reply.send(self.core.lift_ban(now(), addr));
            }
            Query::ActiveCalls(reply) => {
                let _ = reply.send(self.core.active_calls());
            }
        }
    }

    /// A lookup finished: its addresses go to the core.
    fn on_lookup(&mut self, id: OpId, result: Result<Vec<SocketAddr>, DnsError>) {
        self.cancels.remove(&id);
        let addrs = match result {
            Ok(addrs) => {
                for a in &addrs {
                    self.providers.add(a.ip());
                }
                addrs
            }
            Err(DnsError::Cancelled { .. }) => Vec::new(),
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        };
        self.core.handle(now(), Input::Resolved { id, addrs });
    }

    /// Carries out every output the core has. UDP datagrams go out together at the end
    /// (one `sendmmsg` per socket, [`Worker::flush_udp`]); their failed sends come back to
    /// the core as [`Input::SendFailed`], and whatever the core then has is carried out
    /// too.
    fn execute(&mut self) {
        loop {
            self.execute_outputs();
            if !self.flush_udp() {
                break;
            }
        }
        // One wake-up of the relay's thread for every command of this input that must not
        // wait, after the packets went out; the others wait for it or for `media_wake_at`.
        if self.media_urgent {
            self.wake_media();
        }
    }

    /// Sends the queued UDP datagrams; feeds the core a [`Input::SendFailed`] for each
    /// failed one of a transaction. True when the core got any (it may have outputs).
    fn flush_udp(&mut self) -> bool {
        if self.udp_out.is_empty() {
            return false;
        }
        let mut failed = Vec::new();
        let txns = &self.udp_txns;
        // `send_udp_batch` logs and counts each failure itself.
        self.transports.send_udp_batch(&self.udp_out, |i, _| {
            if let Some(Some(transaction)) = txns.get(i) {
                failed.push(*transaction);
            }
        });
        self.udp_out.clear();
        self.udp_txns.clear();
        for transaction in &failed {
            self.core.handle(
                now(),
                Input::SendFailed {
                    transaction: *transaction,
                },
            );
        }
        !failed.is_empty()
    }

    /// Carries out the core's outputs, queueing UDP datagrams for [`Worker::flush_udp`].
    fn execute_outputs(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit(t) if t.to.transport == Transport::Udp => {
                    self.udp_out.push(UdpDatagram {
                        from: t.local,
                        to: t.to.remote,
                        data: t.bytes,
                    });
                    self.udp_txns.push(t.transaction);
                }
                Output::Transmit(t) => {
                    if let Err(e) = self.transports.send_from(t.local, &t.to, t.bytes) {
                        tracing::debug!(peer = %t.to, error = %e, "send failed");
                        if let Some(transaction) = t.transaction {
                            self.core.handle(now(), Input::SendFailed { transaction });
                        }
                    }
                }
                Output::Store { id, op } => self.start_store(id, op),
                Output::Resolve { id, request } => self.start_lookup(id, request),
                Output::CancelResolve { id } => {
                    if let Some(cancel) = self.cancels.remove(&id) {
                        let _ = cancel.send(());
                    }
                }
                Output::Media(command) => self.send_media(command),
                Output::MemoryReleasable => release_free_memory(),
            }
        }
    }

    /// Wakes the media relay's thread for every command queued.
    fn wake_media(&mut self) {
        self.media_urgent = false;
        self.media_wake_at = None;
        if let Some(link) = &self.media {
            if link.commands.wake().is_err() {
                tracing::warn!("the media relay is not running: commands dropped");
            }
        }
    }

    /// Queues `command` for the media relay. Its thread is woken at the end of
    /// [`Self::execute`] for a command somebody waits for (an allocation, statistics, a
    /// transfer's new source), else at most [`MEDIA_WAKE_DELAY`] later or with the next
    /// such command: the thread's work for a call's INVITE (a ready session taken, the
    /// caller's address) and its answer (the callee's address, the answer's timers) then
    /// runs after the messages of that moment went through, not beside them on the other
    /// CPU (issue 16: signalling unaffected by the relay). An RTP packet can meet the
    /// relay before the callee's address by that millisecond at most, once per call: the
    /// first packet of a stream, which phones send after the answer's round trip.
    /// When the relay is gone (or not configured) an allocation is answered with an error
    /// here, so that no call waits for it.
    fn send_media(&mut self, command: Command) {
        let op = match &command {
            Command::Allocate { op } => Some(*op),
            _ => None,
        };
        let urgent = matches!(
            command,
            Command::Allocate { .. } | Command::Stats { .. } | Command::SourceChanged { .. }
        );
        let sent = match &self.media {
            Some(link) => link.commands.queue(command).is_ok(),
            None => false,
        };
        if sent {
            if urgent {
                self.media_urgent = true;
            } else if self.media_wake_at.is_none() {
                self.media_wake_at = Some(Instant::now() + MEDIA_WAKE_DELAY);
            }
            return;
        }
        tracing::warn!("the media relay is not running: command dropped");
        if let Some(op) = op {
            let result = Err(AllocateError::Bind("the media relay is not running".into()));
            self.core
                .handle(now(), Input::Media(MediaEvent::Allocated { op, result }));
        }
    }

    /// Starts store operation `id`; its result is fed back in call order.
    fn start_store(&mut self, id: OpId, op: StoreOp) {
        let s = &self.store;
        match op {
            StoreOp::ApplyBindingChanges { user, changes } => {
                let f = s.apply_binding_changes(&user, changes);
                self.wait(id, f, StoreResult::Done);
            }
            StoreOp::DeleteExpiredBindings { now } => {
                let f = s.delete_expired_bindings(now);
                self.wait(id, f, StoreResult::Count);
            }
            StoreOp::InsertMessageIfBelow { message, limit } => {
                let f = s.insert_message_if_below(message, limit);
                self.wait(id, f, StoreResult::Inserted);
            }
            StoreOp::ListMessages { user, now } => {
                let f = s.list_messages(&user, now);
                self.wait(id, f, StoreResult::Messages);
            }
            StoreOp::DeleteMessage { id: message } => {
                let f = s.delete_message(message);
                self.wait(id, f, StoreResult::Deleted);
            }
            StoreOp::DeleteExpiredMessages { now } => {
                let f = s.delete_expired_messages(now);
                self.wait(id, f, StoreResult::Count);
            }
            StoreOp::GetLine { name } => {
                let f = s.get_line(&name);
                self.wait(id, f, StoreResult::Line);
            }
            StoreOp::PutLine(record) => {
                let f = s.put_line(record);
                self.wait(id, f, StoreResult::Done);
            }
            StoreOp::PutCall(record) => {
                // A finished record goes to the day's CSV file once it is in the database:
                // the completion only queues it for the writer's thread (no disk here).
                let finished = record.disposition.is_some().then(|| record.clone());
                let f = s.put_call(record);
                let cdr = self.cdr.clone();
                self.store_calls.push(async move {
                    let result = f.await;
                    if let (Ok(()), Some(record)) = (&result, finished) {
                        cdr.queue(record);
                    }
                    (id, StoreResult::Done(result))
                });
            }
        }
    }

    /// Waits for `call` (polled by this task, `serve/store_calls.rs`: no task per call) and
    /// feeds its outcome back as `wrap` makes it.
    fn wait<T: Send + 'static>(
        &mut self,
        id: OpId,
        call: StoreFuture<T>,
        wrap: fn(Result<T, StoreError>) -> StoreResult,
    ) {
        self.store_calls.push(async move { (id, wrap(call.await)) });
    }

    /// Starts a bounded lookup in its own task; shutdown cancels it.
    fn start_lookup(&mut self, id: OpId, request: ResolveRequest) {
        let resolver = self
            .resolver
            .get_or_insert_with(dns::system_resolver)
            .clone();
        let tx = self.lookups_tx.clone();
        let (cancel, cancelled) = oneshot::channel::<()>();
        self.cancels.insert(id, cancel);
        // A TLS line's addresses get its peer (roots, name to verify) before the core
        // sends anything there.
        let tls = (request.transport == Transport::Tls)
            .then(|| self.tls_peers.get(&super::lines::host_key(&request.host)))
            .flatten()
            .map(|peer| (self.transports.clone(), peer.clone()));
        tokio::spawn(async move {
            let result = tokio::select! {
                r = dns::resolve(&resolver, &request) => r,
                _ = cancelled => Err(DnsError::Cancelled { name: request.host.clone() }),
            };
            if let (Some((transports, peer)), Ok(addrs)) = (&tls, &result) {
                for addr in addrs {
                    transports.set_tls_peer(*addr, peer.clone());
                }
            }
            // The worker is gone only at the very end of shutdown; nothing to report then.
            let _ = tx.send((id, result));
        });
    }
}
