//! TCP: binding listeners, the accept loop with its connection limits (for TCP, TLS, WS
//! and WSS listeners alike), and outbound TCP connections opened to send a message (the
//! connect of outbound TLS connections too, `tls_connect`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mss_sip::net::{ConnectionId, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::connection;
use crate::error::TransportError;
use crate::shared::{ConnectionGuard, Shared};
use crate::stats;
use crate::table::Entry;
use crate::tls_accept;
use crate::ws;

/// Pending connections the kernel queues for `accept`.
const BACKLOG: i32 = 1024;
/// First pause after a failed `accept`; doubled up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause after failed `accept`s (EMFILE and the like).
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Binds a TCP listener at `addr` (SO_REUSEADDR so a restart finds the port free;
/// IPv6-only for IPv6 addresses).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until shutdown. Errors are retried with a doubling pause, never
/// ending the loop. A connection over the total or per-IP limit is closed at once.
/// `transport` is what the listener serves: TCP, TLS (a handshake comes first), WS (an
/// HTTP upgrade comes first) or WSS (both).
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: SocketAddr,
    transport: Transport,
) {
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stopped => break,
            res = listener.accept() => res,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                admit(&shared, stream, remote, transport);
            }
            Err(e) => {
                stats::bump(&shared.stats.tcp_accept_errors);
                tracing::warn!(%local, error = %e, pause_ms = backoff.as_millis(), "accept failed");
                tokio::select! {
                    () = &mut stopped => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    tracing::debug!(%local, %transport, "accept loop stopped");
}

/// Checks the limits for a new inbound connection and starts its task, or closes it.
/// A TLS or WebSocket connection enters the table only once its handshake and upgrade
/// are done (`tls_accept`, `ws::accept`).
fn admit(shared: &Arc<Shared>, stream: TcpStream, remote: SocketAddr, transport: Transport) {
    let refuse = |why: &str| {
        stats::bump(&shared.stats.tcp_connections_refused);
        tracing::warn!(peer = %remote, limit = why, "connection refused");
    };
    let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
        refuse("max_tcp_connections");
        return;
    };
    let ip = remote.ip();
    if !shared
        .table
        .reserve_ip(ip, shared.config.max_tcp_connections_per_ip)
    {
        refuse("max_tcp_connections_per_ip");
        return;
    }
    let id = shared.next_connection_id();
    let guard = ConnectionGuard::new(Arc::clone(shared), id, Some(ip), permit);
    tracing::debug!(peer = %remote, connection = id.0, %transport, "connection accepted");
    match transport {
        Transport::Tls => {
            shared.spawn(tls_accept::run(Arc::clone(shared), guard, stream, remote));
            return;
        }
        Transport::Ws | Transport::Wss => {
            shared.spawn(ws::accept::run(
                Arc::clone(shared),
                guard,
                stream,
                remote,
                transport,
            ));
            return;
        }
        Transport::Udp | Transport::Tcp => {}
    }
    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
    shared.table.insert(
        id,
        Entry {
            transport: Transport::Tcp,
            remote,
            tx: tx.clone(),
        },
    );
    shared.spawn(connection::run(
        Arc::clone(shared),
        guard,
        stream,
        remote,
        rx,
        tx,
    ));
}

/// Opens a connection to `remote` in the background and queues `first` on it.
///
/// The connection is in the table at once, so further messages to `remote` queue behind
/// `first` instead of opening more connections. If the connect fails, the queued messages
/// are lost: logged and counted as send errors (RFC 3261 §18.4).
///
/// # Errors
/// `ConnectionLimit` when `max_tcp_connections` connections are open.
pub(crate) fn open_queued(
    shared: &Arc<Shared>,
    remote: SocketAddr,
    first: Bytes,
) -> Result<ConnectionId, TransportError> {
    let permit = take_permit(shared, remote)?;
    let id = shared.next_connection_id();
    let guard = ConnectionGuard::new(Arc::clone(shared), id, None, permit);
    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
    // A fresh queue of capacity ≥ 1 always takes the first message.
    let _ = tx.try_send(first);
    shared.table.insert(
        id,
        Entry {
            transport: Transport::Tcp,
            remote,
            tx: tx.clone(),
        },
    );
    let task_shared = Arc::clone(shared);
    shared.spawn(async move {
        let stream = tokio::select! {
            () = task_shared.stopped() => return,
            res = dial(&task_shared, remote) => res,
        };
        match stream {
            Ok(stream) => {
                tracing::debug!(peer = %remote, connection = id.0, "outbound connection open");
                connection::run(Arc::clone(&task_shared), guard, stream, remote, rx, tx).await;
            }
            Err(e) => {
                let lost = rx.len();
                drop(guard);
                stats::add(&task_shared.stats.send_errors, lost);
                tracing::warn!(peer = %remote, error = %e, lost, "outbound connection failed");
            }
        }
    });
    Ok(id)
}

/// Opens a connection to `remote`, waiting until it is established, and starts its task.
///
/// # Errors
/// `ConnectionLimit`, or `Connect` when the connect fails or times out.
pub(crate) async fn open(
    shared: &Arc<Shared>,
    remote: SocketAddr,
) -> Result<ConnectionId, TransportError> {
    let permit = take_permit(shared, remote)?;
    let stream = dial(shared, remote).await?;
    let id = shared.next_connection_id();
    let guard = ConnectionGuard::new(Arc::clone(shared), id, None, permit);
    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
    shared.table.insert(
        id,
        Entry {
            transport: Transport::Tcp,
            remote,
            tx: tx.clone(),
        },
    );
    shared.spawn(connection::run(
        Arc::clone(shared),
        guard,
        stream,
        remote,
        rx,
        tx,
    ));
    Ok(id)
}

pub(crate) fn take_permit(
    shared: &Arc<Shared>,
    remote: SocketAddr,
) -> Result<OwnedSemaphorePermit, TransportError> {
    Arc::clone(&shared.permits)
        .try_acquire_owned()
        .map_err(|_| {
            stats::bump(&shared.stats.send_errors);
            TransportError::ConnectionLimit { remote }
        })
}

/// Connects to `remote` within the connect timeout, from the TCP listener's address when
/// the listener is bound to one specific address of that family (so that the peer sees the
/// address mss puts in its Via).
pub(crate) async fn dial(shared: &Shared, remote: SocketAddr) -> Result<TcpStream, TransportError> {
    let connect_err = |source| TransportError::Connect { remote, source };
    let socket = if remote.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(connect_err)?;
    let source_ip = shared
        .tcp
        .iter()
        .find(|l| l.is_ipv4() == remote.is_ipv4())
        .map(|l| l.ip())
        .filter(|ip| !ip.is_unspecified());
    if let Some(ip) = source_ip {
        socket.bind(SocketAddr::new(ip, 0)).map_err(connect_err)?;
    }
    match tokio::time::timeout(shared.config.tcp_connect_timeout, socket.connect(remote)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(connect_err(e)),
        Err(_) => Err(connect_err(io::Error::new(
            io::ErrorKind::TimedOut,
            "connect timed out",
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_listens_and_can_rebind_after_close() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Close with the server side first, leaving TIME_WAIT behind.
        drop(server);
        drop(client);
        drop(listener);
        // SO_REUSEADDR lets a restarted server bind the same port at once.
        let again = bind(addr).unwrap();
        assert_eq!(again.local_addr().unwrap(), addr);
    }

    #[test]
    fn backoff_is_bounded() {
        let mut b = ACCEPT_BACKOFF_MIN;
        for _ in 0..20 {
            b = (b * 2).min(ACCEPT_BACKOFF_MAX);
        }
        assert_eq!(b, ACCEPT_BACKOFF_MAX);
    }
}
