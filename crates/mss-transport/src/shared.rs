//! State shared by the handle and every socket task: configuration, counters, the channel
//! of received messages, the connection table, the shutdown signal and the task count.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use mss_sip::net::{ConnectionId, Flow};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::TransportConfig;
use crate::stats::{self, TransportStats};
use crate::table::ConnectionTable;
use crate::tls::client::TlsPeer;

/// Most peers [`Shared::tls_peers`] keeps (each line's registrar addresses; a bound, not
/// a limit anyone should meet).
pub(crate) const MAX_TLS_PEERS: usize = 4096;

/// Failures [`Shared::report_failure`] queues before dropping more (nobody reads them,
/// or the reader is behind).
pub(crate) const FAILURE_QUEUE: usize = 256;

/// A message taken off the wire: one UDP datagram, or one framed message of a TCP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The bytes of the message (UDP: the whole datagram; TCP: exactly one message).
    pub data: Bytes,
    /// Where it came from; for TCP with the connection to answer on.
    pub flow: Flow,
    /// The local address it arrived at (the socket's bound address, or for TCP the
    /// connection's local address). Responses over UDP leave from here (RFC 3581 §4).
    pub local: SocketAddr,
}

/// An outbound connection mss opened to send could not be established (connect or TLS
/// handshake failed); the messages queued on it are lost. See
/// [`Transports::connect_failures`](crate::Transports::connect_failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailure {
    /// The flow that was to be opened (no connection id).
    pub flow: Flow,
    /// Why, in words (e.g. `certificate name mismatch: not valid for sip.example.net`).
    pub reason: String,
}

/// One bound UDP socket.
#[derive(Debug)]
pub(crate) struct UdpEndpoint {
    /// The socket, shared by its receive loop and senders.
    pub(crate) socket: Arc<UdpSocket>,
    /// Its bound address (with the real port when bound to port 0).
    pub(crate) local: SocketAddr,
}

/// Everything the tasks share. Tasks hold an `Arc<Shared>`; only the user-facing handle
/// holds the shutdown sender, so dropping every handle stops the tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration given to `bind`.
    pub(crate) config: TransportConfig,
    /// Counters.
    pub(crate) stats: Arc<TransportStats>,
    /// Where received messages go.
    pub(crate) tx: mpsc::Sender<Received>,
    /// Becomes `true` (or its sender is dropped) when the transports shut down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Counts live tasks so that `shutdown` can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Open TCP connections.
    pub(crate) table: ConnectionTable,
    /// Caps TCP connections in total; a permit is held by each connection's task.
    pub(crate) permits: Arc<Semaphore>,
    /// The UDP sockets.
    pub(crate) udp: Vec<UdpEndpoint>,
    /// Bound addresses of the TCP listeners.
    pub(crate) tcp: Vec<SocketAddr>,
    /// The runtime the tasks run on (so that non-async `send` can spawn).
    pub(crate) runtime: Handle,
    /// Peers that get an outbound TLS connection, by address
    /// ([`Transports::set_tls_peer`](crate::Transports::set_tls_peer)).
    pub(crate) tls_peers: Mutex<HashMap<SocketAddr, TlsPeer>>,
    /// Where failed outbound connections are reported.
    pub(crate) failures: mpsc::Sender<ConnectFailure>,
    next_connection: AtomicU64,
}

impl Shared {
    /// A new shared state; sockets are added by the caller before tasks start.
    pub(crate) fn new(
        config: TransportConfig,
        tx: mpsc::Sender<Received>,
        shutdown: watch::Receiver<bool>,
        udp: Vec<UdpEndpoint>,
        tcp: Vec<SocketAddr>,
        failures: mpsc::Sender<ConnectFailure>,
    ) -> Shared {
        let permits = Arc::new(Semaphore::new(
            config.max_tcp_connections.min(Semaphore::MAX_PERMITS),
        ));
        Shared {
            config,
            stats: Arc::new(TransportStats::default()),
            tx,
            shutdown,
            tasks: TaskTracker::default(),
            table: ConnectionTable::default(),
            permits,
            udp,
            tcp,
            runtime: Handle::current(),
            tls_peers: Mutex::new(HashMap::new()),
            failures,
            next_connection: AtomicU64::new(1),
        }
    }

    /// A fresh connection id, never reused in this process.
    pub(crate) fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    /// The TLS peer registered for `remote`, if any.
    pub(crate) fn tls_peer(&self, remote: SocketAddr) -> Option<TlsPeer> {
        self.tls_peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&remote)
            .cloned()
    }

    /// Reports a failed outbound connection; dropped (and logged) when nobody keeps up.
    pub(crate) fn report_failure(&self, failure: ConnectFailure) {
        if let Err(e) = self.failures.try_send(failure) {
            tracing::debug!(error = %e, "connection failure not reported");
        }
    }

    /// Whether shutdown was requested.
    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    /// Resolves once shutdown is requested or every handle is dropped.
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.clone();
        async move {
            // `Err` means the sender (the last handle) is gone: stop as well.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Spawns a task counted by the tracker.
    pub(crate) fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.tasks.token();
        self.runtime.spawn(async move {
            let _token = token;
            fut.await;
        });
    }
}

/// Counts running tasks; [`TaskTracker::wait`] returns when none is left.
#[derive(Debug, Default, Clone)]
pub(crate) struct TaskTracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    running: AtomicUsize,
    idle: Notify,
}

/// Held by a running task; dropping it marks the task finished.
#[derive(Debug)]
pub(crate) struct TaskToken {
    inner: Arc<TrackerInner>,
}

impl TaskTracker {
    /// Marks one more task running.
    pub(crate) fn token(&self) -> TaskToken {
        self.inner.running.fetch_add(1, Ordering::AcqRel);
        TaskToken {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Tasks running now.
    pub(crate) fn running(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Waits until no task is running.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TaskToken {
    fn drop(&mut self) {
        if self.inner.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

/// Owns what one TCP connection holds: its permit, its per-IP slot, its table entry and
/// its place in the open-connections gauge. Dropping it gives all of them back.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    shared: Arc<Shared>,
    /// The connection's id.
    pub(crate) id: ConnectionId,
    /// The source IP counted against the per-IP limit (inbound connections only).
    ip: Option<IpAddr>,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionGuard {
    /// Takes ownership of a connection's resources; counts it open.
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: ConnectionId,
        ip: Option<IpAddr>,
        permit: OwnedSemaphorePermit,
    ) -> ConnectionGuard {
        stats::bump(&shared.stats.tcp_connections_open);
        stats::bump(&shared.stats.tcp_connections_total);
        ConnectionGuard {
            shared,
            id,
            ip,
            _permit: permit,
        }
    }

    /// Removes the connection from the table, so no new message is queued for it.
    pub(crate) fn unregister(&self) {
        self.shared.table.remove(self.id);
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.unregister();
        if let Some(ip) = self.ip {
            self.shared.table.release_ip(ip);
        }
        stats::drop_one(&self.shared.stats.tcp_connections_open);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn tracker_waits_for_tokens() {
        let tracker = TaskTracker::default();
        tracker.wait().await;
        let token = tracker.token();
        let t2 = tracker.clone();
        let waiter = tokio::spawn(async move { t2.wait().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(token);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tracker.running(), 0);
    }
}
