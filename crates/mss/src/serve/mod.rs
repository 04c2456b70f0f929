//! `mss serve`: load the configuration, prepare the data folder, start everything, run
//! until SIGINT/SIGTERM, shut down in order.
//!
//! Every SIP decision is made by the sans-IO [`mss_core::Core`]; this module builds it from
//! the configuration and runs the I/O around it.
//!
//! - this file: [`prepare`], [`run`] (start-up and shutdown order), [`main`];
//! - `setup.rs`: the core's parts built from the configuration, the clock reading;
//! - `lines.rs`: a `[line:NAME]` section → the line machine's settings;
//! - `worker.rs`: the one task that drives the core: sockets, store, lookups, admin queries;
//! - `store_calls.rs`: the store calls the worker waits for, polled by its own task;
//! - `dns.rs`: the lookup of a line's registrar (SRV, A/AAAA; RFC 3263 §4);
//! - `admin.rs`: the admin API's data source;
//! - `stats.rs`: the core's, the transport's and the store's series of `/metrics`;
//! - `tls.rs`: the certificate of the `tls:` and `wss:` listeners, its reload on SIGHUP
//!   and from the admin API;
//! - `memory.rs`: giving freed memory back to the system;
//! - `names.rs`: the set of user names the admin API checks against;
//! - `cdr_writer.rs`: the thread that appends finished call records to the daily CSV files;
//! - `cdr_csv.rs`: a call record as a CSV line (RFC 4180, formula injection neutralised).
//!
//! Start-up: store → nonce key → users, domains, registrar → restore bindings → call
//! records left open by a crash marked `interrupted` → admin
//! socket → SIP sockets → who has stored messages → core and worker → admin API.
//! Shutdown (when the future given to [`run`] completes): the core drains (services say
//! goodbye, pending store writes finish), the admin API stops, the transports close, and
//! the last store handle is dropped on a blocking thread, which waits for the final commit.

mod admin;
mod cdr_csv;
mod cdr_writer;
mod dns;
mod lines;
mod memory;
mod names;
mod setup;
mod stats;
mod store_calls;
mod tls;
mod worker;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mss_admin::Metrics;
use mss_auth::NonceSecret;
use mss_core::{Core, CoreParts, CoreStats};
use mss_store::{SqliteStore, Store, StoreError};
use mss_transport::{TransportConfig, TransportError, Transports};
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::cli::ServeArgs;
use crate::config::{self, default_users, self_signed, ConfigError, Loaded};
use crate::local_addrs;

/// SO_RCVBUF / SO_SNDBUF asked for each UDP socket: a burst of requests must wait in the
/// kernel, not be dropped there (bench/README.md, pitfalls). The kernel may grant less (`rmem_max`).
const UDP_BUFFER: usize = 8 * 1024 * 1024;

/// Why `mss serve` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration could not be loaded; every problem is listed.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A command-line option has a bad value.
    #[error("--{option}: {message}")]
    Option {
        /// The option, without dashes.
        option: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The data folder could not be created.
    #[error("cannot create the data folder {}: {source}", path.display())]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The store could not be opened or read at start.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The stored digest nonce key is not 32 bytes long.
    #[error(
        "the stored digest nonce key has {0} bytes, not 32; delete the secret or the database"
    )]
    NonceKey(usize),
    /// The certificate of the `tls:` and `wss:` listeners cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] mss_transport::TlsIdentityError),
    /// rustls refused its configuration.
    #[error("{0}")]
    TlsSetup(#[from] mss_transport::TlsSetupError),
    /// A TLS line's roots (its `tls_ca_file`, or the system roots) or name cannot be used.
    #[error("line {line}: {message}")]
    LineTls {
        /// The line's name.
        line: String,
        /// What is wrong.
        message: String,
    },
    /// The SIP sockets could not be bound.
    #[error("SIP transport: {0}")]
    Transport(#[from] TransportError),
    /// The admin API could not listen or stopped with an error.
    #[error("{0}")]
    Admin(#[from] mss_admin::AdminError),
    /// A thread of the server could not be started.
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        /// What the thread does.
        name: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A task of the server ended abnormally.
    #[error("the {0} task failed")]
    Task(&'static str),
}

/// The configuration ready to run, and what to tell the operator once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Configuration, variable parameters and their files.
    pub loaded: Loaded,
    /// Printed to stdout at start: the generated default passwords at first start, or
    /// where they are kept (empty with a configuration file).
    pub announcement: String,
}

/// Loads the configuration for `args`, applies `--data-dir`, `--listen` and `--admin`,
/// creates the data folder and, on embedded defaults, the default users; when something
/// listens on `tls:` or `wss:` and `[tls]` names no certificate, the self-signed one of the data
/// folder (generated at first start).
///
/// # Errors
/// [`ServeError::Config`], [`ServeError::Option`] or [`ServeError::DataDir`].
pub fn prepare(args: &ServeArgs) -> Result<Prepared, ServeError> {
    let mut loaded = config::load(args.config.as_deref(), args.var.as_deref())?;
    if let Some(dir) = &args.data_dir {
        loaded.config.server.data_dir = dir.clone();
    }
    if let Some(list) = &args.listen {
        loaded.config.server.listen =
            config::parse_listen(list).map_err(|message| ServeError::Option {
                option: "listen",
                message,
            })?;
    }
    if let Some(admin) = args.admin {
        loaded.config.server.admin = admin;
    }
    let data_dir = loaded.config.server.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let mut announcement = String::new();
    if loaded.is_embedded() {
        let defaults = default_users::load_or_create(&data_dir)?;
        announcement = defaults.announcement();
        loaded.config.users = defaults.users;
    }
    if loaded.config.server.uses_certificate() && loaded.config.tls.files.is_none() {
        let names = tls::certificate_names(&loaded.config, &local_addrs::local_ips());
        let generated = self_signed::load_or_create(&data_dir, &names)?;
        if generated.created {
            announcement.push_str(&format!(
                "mss: created a self-signed TLS certificate {} for {}\n",
                generated.files.certificate.display(),
                names.join(", ")
            ));
        }
        loaded.config.tls.files = Some(generated.files);
    }
    Ok(Prepared {
        loaded,
        announcement,
    })
}

/// Runs the server with a prepared configuration until `shutdown` completes ([`main`]
/// passes SIGINT or SIGTERM; a test can pass any future and stop a whole server
/// in-process).
///
/// # Errors
/// Whatever stops start-up (store, sockets, admin address), or a task that failed.
pub async fn run(
    prepared: Prepared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let c = &prepared.loaded.config;
    tracing::info!(
        domain = %c.server.domain,
        users = c.users.len(),
        lines = c.lines.len(),
        data_dir = %c.server.data_dir.display(),
        "configuration loaded"
    );
    for w in prepared.loaded.warnings() {
        tracing::warn!("{w}");
    }
    let dir = c.server.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(dir))
        .await
        .map_err(|_| ServeError::Task("store opening"))??;
    tracing::info!(path = %store.path().display(), "store open");
    let store: Arc<dyn Store> = Arc::new(store);
    let (cdr, cdr_thread) =
        cdr_writer::start(&c.server.data_dir).map_err(|source| ServeError::Thread {
            name: "call records CSV writer",
            source,
        })?;
    // `serve` drops every sender of finished records (the worker's too) before it returns.
    let result = serve(prepared.loaded, Arc::clone(&store), cdr, shutdown).await;
    if tokio::task::spawn_blocking(move || cdr_thread.join())
        .await
        .is_err()
    {
        tracing::warn!("the CSV writer of call records did not stop cleanly");
    }
    // Dropping the last handle waits for the writer's final commit: off the async threads.
    let flushed = tokio::task::spawn_blocking(move || drop(store)).await;
    if flushed.is_err() {
        tracing::warn!("the store did not close cleanly");
    } else {
        tracing::info!("store closed");
    }
    result
}

/// Everything between opening and closing the store.
async fn serve(
    mut loaded: Loaded,
    store: Arc<dyn Store>,
    cdr: cdr_writer::CdrSender,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let c = &loaded.config;
    let mut candidate = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut candidate);
    let key = store
        .secret_or_insert(setup::NONCE_SECRET_NAME, candidate)
        .await?;
    let key: [u8; 32] = key
        .as_slice()
        .try_into()
        .map_err(|_| ServeError::NonceKey(key.len()))?;
    let domains = setup::local_domains(c, &local_addrs::local_ips());
    let (registrar, mut directory) = setup::registrar(
        c,
        domains.clone(),
        NonceSecret::from_bytes(key),
        rand::rngs::OsRng.next_u64(),
    );
    let started = Instant::now();
    let now = setup::now();
    let records = store.load_bindings(now.unix_ms).await?;
    let restored = directory.restore(&records, now);
    tracing::info!(
        restored,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "bindings restored"
    );
    let interrupted = interrupt_open_calls(store.as_ref(), now.unix_ms).await?;

    let admin_listener =
        TcpListener::bind(c.server.admin)
            .await
            .map_err(|source| mss_admin::AdminError::Bind {
                addr: c.server.admin,
                source,
            })?;
    // Before binding anything: a TLS line whose roots cannot be read stops the start.
    let tls_peers = lines::tls_peers(&c.lines)?;
    let mut tc = TransportConfig::with_listen(setup::listen_specs(&c.server.listen));
    tc.udp_recv_buffer = UDP_BUFFER;
    tc.udp_send_buffer = UDP_BUFFER;
    let providers = setup::ProviderAddrs::default();
    tc.udp_source_limit = setup::udp_source_limit(c, &providers);
    let tls = match (&c.tls.files, c.server.uses_certificate()) {
        (Some(files), true) => Some(Arc::new(tls::Certificate::load(files.clone())?)),
        _ => None,
    };
    tc.tls = tls.as_ref().map(|t| t.server());
    tc.tls_handshake_timeout = c.tls.handshake_timeout;
    let (transports, received) = Transports::bind(tc).await?;

    let metrics = Arc::new(Metrics::new());
    metrics.set_registered_contacts(u64::try_from(restored).unwrap_or(u64::MAX));
    for record in interrupted {
        if let Some(disposition) = record.disposition {
            metrics.call_ended(record.direction, disposition);
        }
        cdr.write(record);
    }
    let core_stats = Arc::new(CoreStats::default());
    // The media relay's thread (DESIGN §8): it owns the RTP sockets; the worker only
    // passes commands and events.
    let (media, media_link) = match setup::media_options(c, rand::rngs::OsRng.next_u64()) {
        Some(options) => {
            let (events_tx, events) = mpsc::unbounded_channel();
            let relay = mss_media::io::MediaRelay::start(options, move |e| {
                // The answer to a release carries nothing the call service uses (the
                // counters of the view came with `Stats`): not worth waking the worker
                // for, once per call.
                if matches!(e, mss_media::io::MediaEvent::Released { .. }) {
                    return;
                }
                // Runs on the relay's thread: an unbounded send never blocks.
                let _ = events_tx.send(e);
            })
            .map_err(|source| ServeError::Thread {
                name: "media relay",
                source,
            })?;
            let scheduling = relay.scheduling();
            let (io, fallback) = relay.receive();
            tracing::info!(
                ports = %c.media.rtp_ports,
                address = %c.media.rtp_address,
                scheduling = %scheduling.applied,
                io = if io == mss_media::io::ReceiveMode::Uring { "io_uring" } else { "epoll" },
                "media relay running"
            );
            if let Some(why) = fallback {
                tracing::warn!("media relay thread: {why}");
            }
            // Asked for by default (`auto`), the real-time class is often refused (not
            // root, no `CAP_SYS_NICE` or `LimitRTPRIO=`): that is information, not a fault.
            if let Some(refused) = &scheduling.realtime_refused {
                if c.media.realtime_priority.is_none() {
                    tracing::info!(
                        "media relay thread: {refused}; runs with a short slice (grant CAP_SYS_NICE or LimitRTPRIO=, or set mss.ini [media] realtime_priority = 0 to not ask)"
                    );
                } else {
                    tracing::warn!(
                        "media relay thread: {refused} (mss.ini [media] realtime_priority)"
                    );
                }
            }
            if let Some(refused) = &scheduling.slice_refused {
                tracing::warn!("media relay thread: {refused}");
            }
            let link = worker::MediaLink {
                commands: relay.commands(),
                events,
            };
            (Some(relay), Some(link))
        }
        None => (None, None),
    };
    let media_counters = media.as_ref().map(|m| m.counters());
    let mut core = Core::new(
        CoreParts {
            registrar,
            directory,
            domains,
            answer: setup::answer(c),
            precheck: setup::precheck(),
            lines: setup::lines(&loaded),
            im: setup::im_settings(c, &im_via_host(c, &transports)),
            calls: setup::call_settings(c),
            metrics: Arc::clone(&metrics),
            stats: Arc::clone(&core_stats),
            network: Box::new(worker::HostNetwork(transports.clone())),
            seed: rand::rngs::OsRng.next_u64(),
        },
        now,
    );
    let counts = store.message_counts(now.unix_ms).await?;
    core.set_completed_budget(c.server.completed_transactions_bytes);
    core.set_stored_users(counts.into_iter().filter(|c| c.stored > 0).map(|c| c.user));

    let (queries_tx, queries) = mpsc::channel(64);
    let (shutdown_tx, stop) = watch::channel(false);
    let worker = worker::Worker::new(
        core,
        transports.clone(),
        Arc::clone(&store),
        cdr,
        tls_peers,
        media_link,
    )
    .with_providers(providers);
    let mut worker_stop = stop.clone();
    let worker_task = tokio::spawn(
        worker.run(worker::Inputs { received, queries }, async move {
            let _ = worker_stop.wait_for(|stop| *stop).await;
        }),
    );

    // The registrar holds the users' HA1s now: the configured users (passwords and all,
    // 100,000 of them in the scale check) are not kept beyond their names.
    let users = names::NameSet::new(
        std::mem::take(&mut loaded.config.users)
            .into_iter()
            .map(|u| u.name),
    );
    let user_count = users.len();
    let source = admin::Source {
        queries: queries_tx,
        store,
        users,
        metrics,
        core: core_stats,
        transport: transports.stats(),
        tls: tls.clone(),
        media: media_counters,
    };
    let mut hangup_stop = stop.clone();
    let hangup_task = tokio::spawn(tls::reload_on_hangup(tls, async move {
        let _ = hangup_stop.wait_for(|stop| *stop).await;
    }));
    let mut admin_stop = stop;
    let mut admin_task = tokio::spawn(mss_admin::serve_listener(
        admin_listener,
        mss_admin::router(Arc::new(source)),
        async move {
            let _ = admin_stop.wait_for(|stop| *stop).await;
        },
    ));
    tracing::info!(users = user_count, "mss is running");

    let mut outcome = Ok(());
    let mut admin_done = false;
    tokio::select! {
        () = shutdown => tracing::info!("shutting down"),
        r = &mut admin_task => {
            admin_done = true;
            outcome = match r {
                Ok(Ok(())) => Err(ServeError::Task("admin API")),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(ServeError::Task("admin API")),
            };
            tracing::error!("the admin API stopped; shutting down");
        }
    }
    shutdown_tx.send_replace(true);
    let _ = hangup_task.await;
    if worker_task.await.is_err() {
        outcome = outcome.and(Err(ServeError::Task("SIP worker")));
    }
    if !admin_done && !matches!(admin_task.await, Ok(Ok(()))) {
        outcome = outcome.and(Err(ServeError::Task("admin API")));
    }
    if let Some(relay) = media {
        // The worker released every call's ports; the thread closes what is left.
        match tokio::task::spawn_blocking(move || relay.stop()).await {
            Ok(Ok(())) => tracing::info!("media relay stopped"),
            _ => tracing::warn!("the media relay did not stop cleanly"),
        }
    }
    transports.shutdown().await;
    tracing::info!("transports closed");
    outcome
}

/// Marks the call records a crash or kill left open (written at answer, never finished) as
/// `interrupted` (DESIGN §8 "Records"), before the core runs, and logs one line per call.
///
/// # Errors
/// The store's, which stops the start like any store failure at start.
async fn interrupt_open_calls(
    store: &dyn Store,
    now: mss_store::UnixMillis,
) -> Result<Vec<mss_store::CallRecord>, StoreError> {
    let interrupted = store.interrupt_open_calls(now).await?;
    for r in &interrupted {
        tracing::warn!(
            caller = %r.caller,
            callee = %r.callee,
            started_at = r.started_at,
            "call {} interrupted: it was up when mss stopped without ending it",
            r.id
        );
    }
    Ok(interrupted)
}

/// The Via sent-by of requests mss sends when the transports cannot name one for a peer:
/// the first bound address if it is a specific one, else the domain.
fn im_via_host(c: &config::Config, transports: &Transports) -> String {
    transports
        .local_addrs()
        .iter()
        .map(|l| l.addr)
        .find(|a| !a.ip().is_unspecified())
        .map_or_else(|| c.server.domain.clone(), |a| a.to_string())
}

/// Waits for SIGINT or SIGTERM and logs it. If the handlers cannot be installed, waits
/// for Ctrl-C alone.
async fn shutdown_signal() {
    let signal = signal_name().await;
    tracing::info!(signal, "signal received");
}

async fn signal_name() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// `mss serve`: prepares, prints the announcement, and runs on a single-threaded runtime.
///
/// One thread is enough: the SIP work is one worker task, and the store and DNS have their
/// own threads. A multi-threaded runtime handed every packet from the socket task to the
/// worker task across threads; the wake-ups and context switches cost ~20% more CPU per
/// registration, and the per-thread malloc arenas ~30% more memory (BENCHMARKS.md, "Server
/// profile").
///
/// # Errors
/// Whatever [`prepare`] or [`run`] return, or a failure to start the runtime.
pub fn main(args: &ServeArgs) -> Result<(), ServeError> {
    let prepared = prepare(args)?;
    if !prepared.announcement.is_empty() {
        print!("{}", prepared.announcement);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(run(prepared, shutdown_signal()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_with_a_config_file_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        std::fs::write(&cfg, "[user:101]\npassword = x\n").unwrap();
        let data = dir.path().join("elsewhere");
        let p = prepare(&ServeArgs {
            config: Some(cfg.clone()),
            var: None,
            data_dir: Some(data.clone()),
            listen: Some("udp:127.0.0.1:5070".into()),
            admin: Some("127.0.0.1:5081".parse().unwrap()),
        })
        .unwrap();
        assert_eq!(p.loaded.config.server.data_dir, data);
        assert_eq!(p.loaded.config.server.listen.len(), 1);
        assert_eq!(p.loaded.config.server.admin.port(), 5081);
        assert!(data.is_dir());
        assert!(p.announcement.is_empty());
        assert!(!data.join(default_users::DEFAULT_USERS_FILE).exists());
        let e = prepare(&ServeArgs {
            config: Some(cfg),
            listen: Some("sctp:1.2.3.4:5".into()),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--listen: "), "{e}");
    }

    /// A record written at answer and never finished.
    fn open_call(id: &str) -> mss_store::CallRecord {
        mss_store::CallRecord {
            id: id.into(),
            started_at: 1_000,
            answered_at: Some(2_000),
            ended_at: None,
            caller: "101".into(),
            callee: "102".into(),
            answered_by: Some("102".into()),
            direction: mss_store::CallDirection::Internal,
            line: None,
            disposition: None,
            sip_code: Some(200),
            ended_by: None,
            forwarded_from: None,
            transferred_by: None,
        }
    }

    #[test]
    fn open_call_records_are_interrupted_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        mss_store::block_on(store.put_call(open_call("c-1"))).unwrap();
        let done = mss_store::block_on(interrupt_open_calls(&store, 5_000)).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(
            done[0].disposition,
            Some(mss_store::CallDisposition::Interrupted)
        );
        assert!(mss_store::block_on(interrupt_open_calls(&store, 5_000))
            .unwrap()
            .is_empty());
    }

    /// A port free on 127.0.0.1 for UDP and TCP right now.
    fn free_port() -> u16 {
        loop {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }

    async fn exchange(sock: &tokio::net::UdpSocket, text: String) -> mss_sip::Response {
        let to = sock.peer_addr().unwrap();
        sock.send_to(text.as_bytes(), to).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            let bytes = bytes::Bytes::copy_from_slice(&buf[..n]);
            if let Ok(mss_sip::Message::Response(r)) = mss_sip::parse_datagram(bytes) {
                if r.status().as_u16() >= 200 {
                    return r;
                }
            }
        }
    }

    fn register(me: std::net::SocketAddr, cseq: u32, auth: &str) -> String {
        format!(
            "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-run{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=t\r\nTo: <sip:100@pbx.test>\r\nCall-ID: run-test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:100@{me}>\r\nExpires: 120\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    }

    /// A whole server in-process: started by [`run`], a REGISTER answered `200` only with
    /// its binding durable, stopped by completing the shutdown future (mini-redis style).
    #[test]
    fn run_serves_until_its_shutdown_future_completes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        let sip = free_port();
        let admin = free_port();
        std::fs::write(
            &cfg,
            format!(
                "[server]\ndomain = pbx.test\nlisten = udp:127.0.0.1:{sip}\nadmin = 127.0.0.1:{admin}\ndigest_algorithms = md5\n[user:100]\npassword = pw\n"
            ),
        )
        .unwrap();
        let prepared = prepare(&ServeArgs {
            config: Some(cfg),
            ..ServeArgs::default()
        })
        .unwrap();
        let data = prepared.loaded.config.server.data_dir.clone();
        // A call that was up when an earlier run was killed.
        {
            let store = SqliteStore::open(&data).unwrap();
            mss_store::block_on(store.put_call(open_call("c-killed"))).unwrap();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(run(prepared, async move {
                let _ = stopped.await;
            }));
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sock.connect(("127.0.0.1", sip)).await.unwrap();
            let me = sock.local_addr().unwrap();
            // The server may still be binding: retry the first request.
            let mut challenge = None;
            for _ in 0..50 {
                let text = register(me, 1, "");
                let _ = sock.send(text.as_bytes()).await;
                let mut buf = vec![0u8; 65_536];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(std::time::Duration::from_millis(100), sock.recv(&mut buf))
                        .await
                {
                    let bytes = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if let Ok(mss_sip::Message::Response(r)) = mss_sip::parse_datagram(bytes) {
                        challenge = Some(r);
                        break;
                    }
                }
                assert!(!server.is_finished(), "the server stopped at start");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let challenge = challenge.expect("no answer from the server");
            assert_eq!(challenge.status().as_u16(), 401);
            let ch = challenge
                .headers()
                .auth(&mss_sip::HeaderName::WwwAuthenticate)
                .unwrap();
            let params = ch[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
            let auth =
                mss_auth::authorize(params, "REGISTER", "sip:pbx.test", "100", "pw", "c0", 1)
                    .unwrap();
            let ok = exchange(
                &sock,
                register(me, 2, &format!("Authorization: {auth}\r\n")),
            )
            .await;
            assert_eq!(ok.status().as_u16(), 200);
            // The admin API: the killed call among the records, none active, counted.
            let api = format!("127.0.0.1:{admin}");
            let get = |path: &'static str| {
                let api = api.clone();
                tokio::task::spawn_blocking(move || {
                    let timeout = std::time::Duration::from_secs(5);
                    let rsp = crate::status::http::get(&api, path, timeout).unwrap();
                    (rsp.status, String::from_utf8(rsp.body).unwrap())
                })
            };
            let (status, body) = get("/api/calls?limit=10").await.unwrap();
            assert_eq!(status, 200, "{body}");
            let calls: Vec<mss_admin::CallRecordView> = serde_json::from_str(&body).unwrap();
            assert_eq!(calls.len(), 1, "{body}");
            assert_eq!(calls[0].id, "c-killed");
            assert_eq!(calls[0].disposition.as_deref(), Some("interrupted"));
            let (status, body) = get("/api/calls?limit=0").await.unwrap();
            assert_eq!(status, 400, "{body}");
            let (status, body) = get("/api/calls/active").await.unwrap();
            assert_eq!((status, body.as_str()), (200, "[]"));
            let (_, body) = get("/metrics").await.unwrap();
            assert!(
                body.contains(
                    "mss_calls_total{direction=\"internal\",disposition=\"interrupted\"} 1\n"
                ),
                "{body}"
            );
            stop.send(()).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(10), server)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        });
        // Durable: a new store on the same folder has the binding.
        let store = SqliteStore::open(&data).unwrap();
        let bindings = mss_store::block_on(store.load_bindings(0)).unwrap();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].user, "100");
        // The killed call: interrupted in the database and in its day's CSV file.
        let calls = mss_store::block_on(store.list_calls(None, 10)).unwrap();
        assert_eq!(
            calls[0].disposition,
            Some(mss_store::CallDisposition::Interrupted)
        );
        let csv = std::fs::read_to_string(data.join("cdr").join("1970-01-01.csv")).unwrap();
        assert!(csv.starts_with("id,started_at,"), "{csv}");
        assert!(
            csv.contains("c-killed,1970-01-01T00:00:01Z,1970-01-01T00:00:02Z,,,,101,102,102,internal,,interrupted,200,mss,\r\n"),
            "{csv}"
        );
    }
}
