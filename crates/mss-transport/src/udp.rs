//! UDP: binding a socket with large kernel buffers, the receive loop, and sending.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::net::Flow;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;

use crate::error::TransportError;
use crate::mmsg;
use crate::queue_depth;
use crate::shared::{Received, Shared, UdpEndpoint};
use crate::source_limit::SourceTable;
use crate::stats::{self, TransportStats};
use crate::stun;

/// Room for the largest datagram: 65,535 bytes less the IPv6 and UDP headers fit in it
/// (RFC 3261 §18.1.1: "implementations MUST be able to handle messages up to the maximum
/// datagram packet size").
const RECV_BUFFER: usize = 65_536;

/// The largest UDP payload (IPv4: 65,535 − 20 − 8).
pub(crate) const MAX_DATAGRAM: usize = 65_507;

/// Datagrams read in a row before the receive loop lets the other tasks run.
const YIELD_EVERY: usize = 64;

/// Datagrams read per `recvmmsg` call (`mmsg.rs`); each has a [`RECV_BUFFER`] of room.
const RECV_BATCH: usize = 16;

/// Pause after a failed `recv_from`, so that a persistent error cannot spin the loop.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(5);

/// Binds a UDP socket at `addr` with the given kernel buffer sizes.
///
/// IPv6 sockets are IPv6-only, so that `udp:0.0.0.0:5060` and `udp:[::]:5060` can both be
/// bound. A buffer size the kernel caps (`net.core.rmem_max`) is logged, not an error.
pub(crate) fn bind(addr: SocketAddr, recv_buf: usize, send_buf: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if let Err(e) = socket.set_recv_buffer_size(recv_buf) {
        tracing::warn!(%addr, error = %e, "cannot set SO_RCVBUF");
    }
    if let Err(e) = socket.set_send_buffer_size(send_buf) {
        tracing::warn!(%addr, error = %e, "cannot set SO_SNDBUF");
    }
    // Linux reports twice the usable size; a granted size below the request means a cap.
    match socket.recv_buffer_size() {
        Ok(granted) if granted < recv_buf => tracing::warn!(
            %addr, requested = recv_buf, granted,
            "UDP receive buffer capped by the kernel (raise net.core.rmem_max)"
        ),
        Ok(granted) => tracing::debug!(%addr, granted, "UDP receive buffer"),
        Err(_) => {}
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Reads datagrams from one socket until shutdown and hands each one over whole; STUN
/// datagrams (RFC 5626 §8) are answered or dropped here and never handed over.
///
/// Never waits for the channel: when it is full the datagram is dropped and counted, so a
/// flood cannot stall the socket (the sender retransmits, RFC 3261 §17.1.2.2). With a
/// per-source limit configured, a request from an address over it is dropped before it
/// is copied (`source_limit.rs`), so one flooding address cannot fill the channel.
pub(crate) async fn receive_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>, local: SocketAddr) {
    let mut batch = mmsg::RecvBatch::new(RECV_BATCH, RECV_BUFFER);
    let fd = socket.as_raw_fd();
    let mut sources = shared.config.udp_source_limit.clone().map(SourceTable::new);
    let start = Instant::now();
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    // Datagrams read since the socket last ran empty.
    let mut streak = 0usize;
    // The datagrams waiting in the kernel (`queue_depth.rs`), measured each time the loop
    // has read `YIELD_EVERY` of them without the socket running empty, 0 once it does.
    // The per-source limit's backlog rules (`source_limit::BACKLOG_STREAK`) see the
    // smaller of it and the streak: a backlog counts as deep only once the loop has read
    // that many in a row *and* that many still wait (a flood's first reads pass, so that
    // the ban table sees it over its rate; a steady load that never lets the socket run
    // empty, with a handful waiting, is no backlog).
    let mut depth = 0usize;
    // Datagrams read since the loop last let the other tasks run.
    let mut since_yield = 0usize;
    loop {
        // `try_io` clears tokio's readiness when the call finds nothing, so that
        // `readable()` below waits for the next datagram.
        let count = match socket.try_io(Interest::READABLE, || batch.receive(fd)) {
            Ok(count) => count,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                streak = 0;
                depth = 0;
                tokio::select! {
                    biased;
                    () = &mut stopped => break,
                    ready = socket.readable() => {
                        if let Err(e) = ready {
                            tracing::debug!(%local, error = %e, "UDP socket not readable");
                            tokio::time::sleep(RECV_ERROR_PAUSE).await;
                        }
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(%local, error = %e, "UDP receive error");
                tokio::time::sleep(RECV_ERROR_PAUSE).await;
                continue;
            }
        };
        for i in 0..count {
            let Some(datagram) = batch.get(i) else {
                break;
            };
            let Some(remote) = datagram.source else {
                continue;
            };
            if datagram.truncated {
                // Longer than any UDP payload over IPv4 (an IPv6 jumbogram): not SIP.
                tracing::debug!(%local, peer = %remote, "oversized UDP datagram dropped");
                continue;
            }
            streak += 1;
            if sources.is_some() && streak.is_multiple_of(YIELD_EVERY) {
                depth = queue_depth::queued_datagrams(&*socket).unwrap_or(streak);
            }
            if !on_datagram(
                &shared,
                &socket,
                local,
                &mut sources,
                start,
                depth.min(streak),
                remote,
                datagram.data,
            ) {
                tracing::debug!(%local, "UDP receive loop stopped");
                return;
            }
        }
        // The worker shares this thread: let it run now and then while the socket never
        // runs empty (reading does not use up tokio's budget).
        since_yield += count;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
            if shared.is_shut_down() {
                break;
            }
        }
    }
    tracing::debug!(%local, "UDP receive loop stopped");
}

/// Handles one received datagram: counts it, answers STUN, applies the per-source limit
/// and hands a SIP message over. False when the channel is closed (the worker is gone).
#[allow(clippy::too_many_arguments)]
fn on_datagram(
    shared: &Shared,
    socket: &UdpSocket,
    local: SocketAddr,
    sources: &mut Option<SourceTable>,
    start: Instant,
    backlog: usize,
    remote: SocketAddr,
    payload: &[u8],
) -> bool {
    let st = &shared.stats;
    stats::bump(&st.udp_datagrams_received);
    stats::add(&st.bytes_received, payload.len());
    if stun::is_stun(payload) {
        answer_stun(st, socket, local, remote, payload);
        return true;
    }
    if let Some(table) = sources {
        let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !table.admit(now_ms, remote.ip(), payload, backlog) {
            stats::bump(&st.udp_source_limited);
            return true;
        }
    }
    let received = Received {
        data: Bytes::copy_from_slice(payload),
        flow: Flow::udp(remote),
        local,
    };
    match shared.tx.try_send(received) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            stats::bump(&st.udp_datagrams_dropped);
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// Answers a STUN datagram in place (RFC 5626 §8): a Binding request gets its Binding
/// response at once from the socket it came to, so a keep-alive never waits behind SIP
/// traffic in the channel; anything else STUN-shaped is dropped. Never waits: a full
/// kernel buffer loses the response, like any UDP loss (the phone retransmits).
fn answer_stun(
    st: &TransportStats,
    socket: &UdpSocket,
    local: SocketAddr,
    remote: SocketAddr,
    payload: &[u8],
) {
    match stun::binding_response(payload, remote) {
        Ok(response) => match send_now(socket, &response, remote) {
            Ok(_) => stats::bump(&st.udp_stun_keepalives_answered),
            Err(e) => {
                stats::bump(&st.send_errors);
                tracing::debug!(%local, peer = %remote, error = %e, "STUN response not sent");
            }
        },
        Err(e) => {
            stats::bump(&st.udp_stun_dropped);
            tracing::debug!(%local, peer = %remote, error = %e, "STUN datagram dropped");
        }
    }
}

/// Picks the socket to send from: the one bound at `from` if given and bound, otherwise the
/// first one of the destination's address family.
pub(crate) fn pick(
    sockets: &[UdpEndpoint],
    from: Option<SocketAddr>,
    remote: SocketAddr,
) -> Option<&UdpEndpoint> {
    let same_family = |e: &&UdpEndpoint| e.local.is_ipv4() == remote.is_ipv4();
    from.and_then(|from| sockets.iter().filter(same_family).find(|e| e.local == from))
        .or_else(|| sockets.iter().find(same_family))
}

/// Sends one datagram without waiting: a full kernel buffer is an error, like a loss.
pub(crate) fn send(
    shared: &Shared,
    from: Option<SocketAddr>,
    remote: SocketAddr,
    data: &Bytes,
) -> Result<(), TransportError> {
    let endpoint = endpoint_for(shared, from, remote, data.len())?;
    send_now(&endpoint.socket, data, remote)
        .map_err(|source| TransportError::UdpSend { remote, source })?;
    Ok(())
}

/// The socket a datagram of `len` bytes to `remote` leaves from ([`pick`]), or why it
/// cannot be sent: too large, or no socket of its address family.
fn endpoint_for(
    shared: &Shared,
    from: Option<SocketAddr>,
    remote: SocketAddr,
    len: usize,
) -> Result<&UdpEndpoint, TransportError> {
    if len > MAX_DATAGRAM {
        return Err(TransportError::DatagramTooLarge { remote, size: len });
    }
    pick(&shared.udp, from, remote).ok_or(TransportError::NoSocketForFamily {
        transport: mss_sip::net::Transport::Udp,
        remote,
    })
}

/// A UDP datagram for [`crate::Transports::send_udp_batch`].
#[derive(Debug, Clone)]
pub struct UdpDatagram {
    /// The local address to send from (the socket bound there), or `None` for the first
    /// socket of the destination's address family.
    pub from: Option<SocketAddr>,
    /// The destination.
    pub to: SocketAddr,
    /// The payload.
    pub data: Bytes,
}

/// Sends `batch` in order with as few `sendmmsg` calls as the sockets allow (one per run
/// of datagrams leaving from the same socket, at most [`mmsg::SEND_BATCH`] each), and
/// calls `failed` with the index and the error of each datagram that did not go out: no
/// socket for its family, too large, or refused by the kernel (a full send buffer
/// included, like [`send`]).
pub(crate) fn send_batch(
    shared: &Shared,
    batch: &[UdpDatagram],
    failed: &mut dyn FnMut(usize, TransportError),
) {
    // The socket and the destination of every datagram that can be sent, in order.
    let mut ready: Vec<(usize, &UdpEndpoint, SockAddr)> = Vec::with_capacity(batch.len());
    for (i, d) in batch.iter().enumerate() {
        match endpoint_for(shared, d.from, d.to, d.data.len()) {
            Ok(endpoint) => ready.push((i, endpoint, SockAddr::from(d.to))),
            Err(e) => failed(i, e),
        }
    }
    let mut start = 0;
    while let Some(&(_, endpoint, _)) = ready.get(start) {
        let run = ready
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .take_while(|(_, e, _)| std::ptr::eq(*e, endpoint))
            .count();
        let fd = endpoint.socket.as_raw_fd();
        let mut sent = 0;
        while sent < run {
            let chunk = ready.get(start + sent..start + run).unwrap_or(&[]);
            let msgs: Vec<mmsg::Outgoing<'_>> = chunk
                .iter()
                .take(mmsg::SEND_BATCH)
                .filter_map(|(i, _, to)| {
                    let data = &batch.get(*i)?.data;
                    Some(mmsg::Outgoing { to, data })
                })
                .collect();
            match mmsg::send(fd, &msgs) {
                Ok(0) => {
                    // Nothing to send, or the kernel took none without an error: treat
                    // the first as lost rather than loop.
                    if let Some(&(i, _, _)) = chunk.first() {
                        failed(i, udp_send_error(batch, i, io::ErrorKind::WriteZero.into()));
                    }
                    sent += 1;
                }
                Ok(n) => sent += n,
                Err(source) => {
                    if let Some(&(i, _, _)) = chunk.first() {
                        failed(i, udp_send_error(batch, i, source));
                    }
                    sent += 1;
                }
            }
        }
        start += run;
    }
}

fn udp_send_error(batch: &[UdpDatagram], i: usize, source: io::Error) -> TransportError {
    TransportError::UdpSend {
        remote: batch
            .get(i)
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |d| d.to),
        source,
    }
}

/// One non-blocking `sendto` straight to the kernel.
///
/// Not `UdpSocket::try_send_to`: tokio answers that with `WouldBlock` until its driver has
/// seen the socket writable once, which on a busy single-threaded runtime means the first
/// datagrams of a fresh socket (a line's first REGISTER at start-up) were refused although
/// the kernel had room. A UDP send never waits for writability, so the cached readiness
/// has nothing to offer; only a really full send buffer gives `WouldBlock` here.
fn send_now(socket: &UdpSocket, data: &[u8], remote: SocketAddr) -> std::io::Result<()> {
    socket2::SockRef::from(socket)
        .send_to(data, &remote.into())
        .map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn endpoint(addr: &str) -> UdpEndpoint {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        UdpEndpoint {
            socket: Arc::new(UdpSocket::from_std(socket).unwrap()),
            local: addr.parse().unwrap(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_fresh_socket_sends_before_the_runtime_has_polled_it() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let ep = endpoint("127.0.0.1:0");
        // No await between creating the socket and sending: tokio has not seen it yet.
        send_now(&ep.socket, b"ping", peer.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
    }

    #[tokio::test]
    async fn picks_by_family_and_prefers_the_receiving_socket() {
        let eps = vec![
            endpoint("0.0.0.0:5060"),
            endpoint("[::]:5060"),
            endpoint("127.0.0.1:5070"),
        ];
        let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        assert_eq!(pick(&eps, None, v4).unwrap().local, eps[0].local);
        assert_eq!(pick(&eps, None, v6).unwrap().local, eps[1].local);
        let from = Some(eps[2].local);
        assert_eq!(pick(&eps, from, v4).unwrap().local, eps[2].local);
        // A `from` of the wrong family or not bound falls back to the family's first.
        assert_eq!(pick(&eps, from, v6).unwrap().local, eps[1].local);
        let unknown = Some("10.9.9.9:5060".parse().unwrap());
        assert_eq!(pick(&eps, unknown, v4).unwrap().local, eps[0].local);
        assert!(pick(&eps[..1], None, v6).is_none());
    }

    #[tokio::test]
    async fn bind_sets_large_buffers() {
        let s = bind("127.0.0.1:0".parse().unwrap(), 1 << 20, 1 << 20).unwrap();
        assert_ne!(s.local_addr().unwrap().port(), 0);
        let sock = socket2::SockRef::from(&s);
        // The kernel may cap the size, but it is never below the system default (~200 KiB).
        assert!(sock.recv_buffer_size().unwrap() > 100_000);
    }
}
