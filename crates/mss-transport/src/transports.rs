//! [`Transports`]: binds the configured sockets, runs their tasks, and sends messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use mss_sip::net::{Flow, Transport};
use tokio::sync::{mpsc, watch};

use crate::config::{ListenSpec, TransportConfig};
use crate::error::TransportError;
use crate::shared::{ConnectFailure, Received, Shared, UdpEndpoint, FAILURE_QUEUE, MAX_TLS_PEERS};
use crate::stats::{self, TransportStats};
use crate::tls::TlsPeer;
use crate::{tcp, tls_connect, udp};

/// The running transports: a cheap, cloneable handle (`Arc` inside).
///
/// Dropping the last handle, or calling [`Transports::shutdown`], stops every task.
#[derive(Debug, Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    /// Only handles hold the sender: when the last one goes, the tasks see it and stop.
    shutdown: watch::Sender<bool>,
    /// The bound addresses, with real ports, in configuration order.
    bound: Vec<ListenSpec>,
    /// Failed outbound connections, until someone takes the receiver.
    failures: Mutex<Option<mpsc::Receiver<ConnectFailure>>>,
}

impl Transports {
    /// Binds every listen address of `config` and starts one receive loop per UDP socket
    /// and one accept loop per TCP, TLS, WS or WSS listener. Must be called inside a tokio
    /// runtime.
    ///
    /// # Returns
    /// The handle, and the receiving end of the channel every received message goes to.
    ///
    /// # Errors
    /// `NoListener` for an empty list, `TlsNotConfigured` for a TLS or WSS listener
    /// without [`TransportConfig::tls`], `Bind` when an address cannot be bound. Nothing
    /// keeps running after an error.
    pub async fn bind(
        config: TransportConfig,
    ) -> Result<(Transports, mpsc::Receiver<Received>), TransportError> {
        if config.listen.is_empty() {
            return Err(TransportError::NoListener);
        }
        let mut udp_sockets = Vec::new();
        let mut tcp_listeners = Vec::new();
        let mut bound = Vec::new();
        for spec in &config.listen {
            let bind_err = |source| TransportError::Bind {
                spec: *spec,
                source,
            };
            let local = match spec.transport {
                Transport::Udp => {
                    let socket =
                        udp::bind(spec.addr, config.udp_recv_buffer, config.udp_send_buffer)
                            .map_err(bind_err)?;
                    let local = socket.local_addr().map_err(bind_err)?;
                    udp_sockets.push(UdpEndpoint {
                        socket: Arc::new(socket),
                        local,
                    });
                    local
                }
                Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => {
                    let secure = matches!(spec.transport, Transport::Tls | Transport::Wss);
                    if secure && config.tls.is_none() {
                        return Err(TransportError::TlsNotConfigured(*spec));
                    }
                    let listener = tcp::bind(spec.addr).map_err(bind_err)?;
                    let local = listener.local_addr().map_err(bind_err)?;
                    tcp_listeners.push((listener, local, spec.transport));
                    local
                }
            };
            tracing::info!(transport = %spec.transport, %local, "listening");
            bound.push(ListenSpec::new(spec.transport, local));
        }
        let (tx, rx) = mpsc::channel(config.receive_queue.max(1));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let tcp_addrs = tcp_listeners
            .iter()
            .filter(|(_, _, transport)| *transport == Transport::Tcp)
            .map(|(_, local, _)| *local)
            .collect();
        let (failures_tx, failures) = mpsc::channel(FAILURE_QUEUE);
        let shared = Arc::new(Shared::new(
            config,
            tx,
            shutdown_rx,
            udp_sockets,
            tcp_addrs,
            failures_tx,
        ));
        for endpoint in &shared.udp {
            let socket = Arc::clone(&endpoint.socket);
            shared.spawn(udp::receive_loop(
                Arc::clone(&shared),
                socket,
                endpoint.local,
            ));
        }
        for (listener, local, transport) in tcp_listeners {
            shared.spawn(tcp::accept_loop(
                Arc::clone(&shared),
                listener,
                local,
                transport,
            ));
        }
        let inner = Inner {
            shared,
            shutdown,
            bound,
            failures: Mutex::new(Some(failures)),
        };
        Ok((
            Transports {
                inner: Arc::new(inner),
            },
            rx,
        ))
    }

    /// Sends `data` on `flow`; see [`Transports::send_from`].
    ///
    /// # Errors
    /// As [`Transports::send_from`].
    pub fn send(&self, flow: &Flow, data: Bytes) -> Result<(), TransportError> {
        self.send_from(None, flow, data).map(|_| ())
    }

    /// Sends `data` on `flow` without waiting, and returns the flow actually used.
    ///
    /// - UDP: one datagram to `flow.remote`, from the socket bound at `from` when given
    ///   (RFC 3581 §4: a response leaves from where its request arrived; pass
    ///   [`Received::local`]), otherwise from the first socket of the destination's address
    ///   family.
    /// - TCP: queued on `flow.connection` while it is open. Otherwise on an open connection
    ///   to `flow.remote`, or on a new outbound connection to it, opened in the background
    ///   (its messages come back as [`Received`] with its id, which the returned flow
    ///   names). Over a new connection, a connect failure is only logged and counted; use
    ///   [`Transports::connect`] first to learn about it.
    /// - TLS: as TCP, but a new connection is opened only to a peer registered with
    ///   [`Transports::set_tls_peer`], verifying its certificate (a failure comes out of
    ///   [`Transports::connect_failures`]); to any other peer without an open TLS
    ///   connection the send fails with `NoConnection`. Never in plaintext instead.
    /// - WS and WSS: as TCP, except that no connection is opened: without an open
    ///   connection of that transport to the peer the send fails with `NoConnection`. A
    ///   WebSocket message carries the whole of `data` (one SIP message).
    ///
    /// # Errors
    /// `Shutdown`; `NoSocketForFamily`; `UdpSend` (including a full kernel buffer) and
    /// `DatagramTooLarge`; `QueueFull` when the connection's peer does not keep up;
    /// `ConnectionLimit`; `NoConnection` for WS, WSS and TLS to an unregistered peer.
    /// Each failure is counted.
    pub fn send_from(
        &self,
        from: Option<SocketAddr>,
        flow: &Flow,
        data: Bytes,
    ) -> Result<Flow, TransportError> {
        let shared = &self.inner.shared;
        let len = data.len();
        let result = if shared.is_shut_down() {
            Err(TransportError::Shutdown)
        } else {
            match flow.transport {
                Transport::Udp => udp::send(shared, from, flow.remote, &data).map(|()| *flow),
                Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => {
                    self.send_stream(flow, data)
                }
            }
        };
        match &result {
            Ok(_) => {
                stats::bump(&shared.stats.messages_sent);
                stats::add(&shared.stats.bytes_sent, len);
            }
            Err(e) => {
                stats::bump(&shared.stats.send_errors);
                tracing::debug!(%flow, error = %e, "send failed");
            }
        }
        result
    }

    /// Sends UDP datagrams together: in order, with one `sendmmsg` system call per run of
    /// datagrams that leave from the same socket (the worker's outputs of a batch of
    /// inputs). `failed` gets the index in `batch` and the error of each datagram that did
    /// not go out (the errors of [`Transports::send_from`] for UDP). Each datagram is
    /// counted as [`Transports::send_from`] counts it.
    pub fn send_udp_batch(
        &self,
        batch: &[udp::UdpDatagram],
        mut failed: impl FnMut(usize, TransportError),
    ) {
        let shared = &self.inner.shared;
        let (mut failures, mut failed_bytes) = (0usize, 0usize);
        let mut report = |i: usize, e: TransportError| {
            failures += 1;
            failed_bytes += batch.get(i).map_or(0, |d| d.data.len());
            stats::bump(&shared.stats.send_errors);
            tracing::debug!(error = %e, "send failed");
            failed(i, e);
        };
        if shared.is_shut_down() {
            for i in 0..batch.len() {
                report(i, TransportError::Shutdown);
            }
        } else {
            udp::send_batch(shared, batch, &mut report);
        }
        let sent = batch.len().saturating_sub(failures);
        if sent > 0 {
            let bytes = batch.iter().map(|d| d.data.len()).sum::<usize>();
            stats::add(&shared.stats.messages_sent, sent);
            stats::add(&shared.stats.bytes_sent, bytes.saturating_sub(failed_bytes));
        }
    }

    /// A TCP, TLS or WebSocket send: on the flow's connection, or another one of its
    /// transport to the same peer; else a new TCP connection, or a new TLS connection to
    /// a registered TLS peer (none for the others).
    fn send_stream(&self, flow: &Flow, data: Bytes) -> Result<Flow, TransportError> {
        let shared = &self.inner.shared;
        let named = flow
            .connection
            .and_then(|id| Some((id, shared.table.get(id)?)))
            .filter(|(_, entry)| entry.transport == flow.transport);
        let existing = named.or_else(|| shared.table.find_remote(flow.transport, flow.remote));
        if let Some((id, entry)) = existing {
            match entry.tx.try_send(data) {
                Ok(()) => {
                    return Ok(Flow {
                        transport: entry.transport,
                        remote: entry.remote,
                        connection: Some(id),
                    })
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(TransportError::QueueFull {
                        remote: entry.remote,
                    })
                }
                // The connection is closing: open a new one below.
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    shared.table.remove(id);
                    return self.open_and_send(flow, back);
                }
            }
        }
        self.open_and_send(flow, data)
    }

    /// A new outbound TCP connection to `flow.remote` with `data` queued, or a TLS one to
    /// a registered TLS peer; for anything else, `NoConnection`.
    fn open_and_send(&self, flow: &Flow, data: Bytes) -> Result<Flow, TransportError> {
        let shared = &self.inner.shared;
        let remote = flow.remote;
        let no_connection = || TransportError::NoConnection {
            transport: flow.transport,
            remote,
        };
        let id = match flow.transport {
            Transport::Tcp => tcp::open_queued(shared, remote, data)?,
            Transport::Tls => {
                let peer = shared.tls_peer(remote).ok_or_else(no_connection)?;
                tls_connect::open_queued(shared, remote, peer, data)?
            }
            Transport::Udp | Transport::Ws | Transport::Wss => return Err(no_connection()),
        };
        Ok(Flow {
            transport: flow.transport,
            remote,
            connection: Some(id),
        })
    }

    /// Lets sends of TLS flows to `remote` open a connection when none is open, verifying
    /// the peer's certificate with `peer` (its roots and the name it must carry, RFC 5922).
    /// Replaces what was registered for `remote` before; open connections keep theirs.
    /// At most a few thousand peers are kept: beyond that, the call is refused (logged).
    pub fn set_tls_peer(&self, remote: SocketAddr, peer: TlsPeer) {
        let mut peers = self
            .inner
            .shared
            .tls_peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if peers.len() >= MAX_TLS_PEERS && !peers.contains_key(&remote) {
            tracing::warn!(peer = %remote, to = %peer.label, "too many TLS peers; not registered");
            return;
        }
        peers.insert(remote, peer);
    }

    /// The receiver of failed outbound connections (connect or TLS handshake failures,
    /// [`ConnectFailure`]); `None` after the first call. Reports that nobody reads are
    /// dropped once a small queue is full.
    pub fn connect_failures(&self) -> Option<mpsc::Receiver<ConnectFailure>> {
        self.inner
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Opens a TCP connection to `remote` (or finds an open one) and waits until it is
    /// established; messages from the peer come back as [`Received`] on the returned flow.
    ///
    /// # Errors
    /// `Shutdown`, `ConnectionLimit`, or `Connect` when the connect fails or times out.
    pub async fn connect(&self, remote: SocketAddr) -> Result<Flow, TransportError> {
        let shared = &self.inner.shared;
        if shared.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        let id = match shared.table.find_remote(Transport::Tcp, remote) {
            Some((id, _)) => id,
            None => tcp::open(shared, remote).await?,
        };
        Ok(Flow {
            transport: Transport::Tcp,
            remote,
            connection: Some(id),
        })
    }

    /// Whether the TCP connection of `flow` is still open (UDP flows are always usable).
    pub fn is_open(&self, flow: &Flow) -> bool {
        match flow.connection {
            Some(id) => self.inner.shared.table.get(id).is_some(),
            None => !flow.transport.is_reliable(),
        }
    }

    /// Every bound address, with the real port when port 0 was asked for.
    pub fn local_addrs(&self) -> &[ListenSpec] {
        &self.inner.bound
    }

    /// The first bound address of `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.inner
            .bound
            .iter()
            .find(|s| s.transport == transport)
            .map(|s| s.addr)
    }

    /// The host and port mss puts in its Via sent-by and Contact for a message to
    /// `destination` over `transport` (RFC 3261 §18.1.1).
    ///
    /// That is the bound address of the first listener of that transport and address
    /// family; when it is the unspecified address (`0.0.0.0`, `[::]`), the address the
    /// kernel would send from to reach `destination` (found with a connected UDP socket;
    /// no packet is sent).
    ///
    /// # Errors
    /// `NoSocketForFamily` when nothing of that transport and family is bound; `Socket`
    /// when the route lookup fails (no route to `destination`).
    pub fn sent_by(
        &self,
        transport: Transport,
        destination: SocketAddr,
    ) -> Result<SocketAddr, TransportError> {
        let bound = self
            .inner
            .bound
            .iter()
            .find(|s| s.transport == transport && s.addr.is_ipv4() == destination.is_ipv4())
            .ok_or(TransportError::NoSocketForFamily {
                transport,
                remote: destination,
            })?
            .addr;
        if !bound.ip().is_unspecified() {
            return Ok(bound);
        }
        let ip = route_source(destination)?;
        Ok(SocketAddr::new(ip, bound.port()))
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.inner.shared.stats)
    }

    /// TCP, TLS and WebSocket connections open now (TLS ones once their handshake is
    /// done, WebSocket ones once upgraded).
    pub fn connection_count(&self) -> usize {
        self.inner.shared.table.len()
    }

    /// Stops every loop and connection and waits until their tasks have ended.
    /// Sends after this fail with `Shutdown`. Dropping every handle also stops the tasks,
    /// without waiting.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.shared.tasks.wait().await;
    }
}

/// The local address the kernel would use to reach `destination`: `connect` on a UDP
/// socket selects a route and a source address without sending anything.
fn route_source(destination: SocketAddr) -> Result<IpAddr, TransportError> {
    let any = if destination.is_ipv4() {
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)
    } else {
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)
    };
    let socket_err = |context| move |source| TransportError::Socket { context, source };
    let probe = std::net::UdpSocket::bind(any).map_err(socket_err("bind route probe"))?;
    probe
        .connect(destination)
        .map_err(socket_err("find route to destination"))?;
    Ok(probe
        .local_addr()
        .map_err(socket_err("read route source"))?
        .ip())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Transports>();
    }

    #[test]
    fn route_source_of_loopback_is_loopback() {
        let ip = route_source("127.0.0.1:5060".parse().unwrap()).unwrap();
        assert_eq!(ip, IpAddr::from(Ipv4Addr::LOCALHOST));
    }

    #[tokio::test]
    async fn unsupported_flows_are_refused_and_counted() {
        let config = TransportConfig::with_listen(vec!["udp:127.0.0.1:0".parse().unwrap()]);
        let (t, _rx) = Transports::bind(config).await.unwrap();
        let flow = Flow {
            transport: Transport::Tls,
            remote: "127.0.0.1:5061".parse().unwrap(),
            connection: None,
        };
        let err = t.send(&flow, Bytes::from_static(b"x")).unwrap_err();
        assert!(matches!(
            err,
            TransportError::NoConnection {
                transport: Transport::Tls,
                ..
            }
        ));
        let v6 = Flow::udp("[::1]:5060".parse().unwrap());
        let err = t.send(&v6, Bytes::from_static(b"x")).unwrap_err();
        assert!(matches!(err, TransportError::NoSocketForFamily { .. }));
        let ws = Flow {
            transport: Transport::Ws,
            ..flow
        };
        let err = t.send(&ws, Bytes::from_static(b"x")).unwrap_err();
        assert!(matches!(
            err,
            TransportError::NoConnection {
                transport: Transport::Ws,
                ..
            }
        ));
        assert_eq!(t.stats().snapshot().send_errors, 3);
        assert!(t.is_open(&Flow::udp("127.0.0.1:1".parse().unwrap())));
        assert_eq!(t.local_addr(Transport::Tcp), None);
    }

    #[tokio::test]
    async fn tls_and_wss_listeners_need_a_certificate() {
        for spec in ["tls:127.0.0.1:0", "wss:127.0.0.1:0"] {
            let spec: ListenSpec = spec.parse().unwrap();
            let err = Transports::bind(TransportConfig::with_listen(vec![spec]))
                .await
                .unwrap_err();
            assert!(matches!(err, TransportError::TlsNotConfigured(_)), "{err}");
            assert!(err.to_string().contains("no TLS certificate"), "{err}");
        }
        // A ws: listener needs none.
        let spec: ListenSpec = "ws:127.0.0.1:0".parse().unwrap();
        let (t, _rx) = Transports::bind(TransportConfig::with_listen(vec![spec]))
            .await
            .unwrap();
        assert!(t.local_addr(Transport::Ws).is_some());
    }
}
