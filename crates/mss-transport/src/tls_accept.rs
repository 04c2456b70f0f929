//! An accepted TLS connection: the handshake, bounded in time, then the same framing,
//! keep-alives and send queue as a TCP connection (`connection::serve`). `wss:`
//! listeners use the same handshake before their WebSocket upgrade.

use std::net::SocketAddr;
use std::sync::Arc;

use mss_sip::net::{ConnectionId, Flow, Transport};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::connection;
use crate::shared::{ConnectionGuard, Shared};
use crate::stats;
use crate::table::Entry;

/// Runs the handshake of an accepted connection and then the connection itself.
///
/// The connection enters the table only once the handshake is done, so nothing is
/// queued for a peer that never completes it.
pub(crate) async fn run(
    shared: Arc<Shared>,
    guard: ConnectionGuard,
    stream: TcpStream,
    remote: SocketAddr,
) {
    let id = guard.id;
    let Some(local) = connection::prepare(&stream, remote) else {
        return;
    };
    let Some(stream) = handshake(&shared, stream, remote, id).await else {
        return;
    };
    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
    shared.table.insert(
        id,
        Entry {
            transport: Transport::Tls,
            remote,
            tx: tx.clone(),
        },
    );
    let flow = Flow {
        transport: Transport::Tls,
        remote,
        connection: Some(id),
    };
    let (read_half, write_half) = tokio::io::split(stream);
    connection::serve(shared, guard, read_half, write_half, local, flow, rx, tx).await;
}

/// The server side of a TLS handshake on an accepted connection; `None` (counted and
/// logged) when it fails (garbage, an unknown protocol version, a client that refuses
/// the certificate), does not finish within `tls_handshake_timeout`, or shutdown comes.
pub(crate) async fn handshake(
    shared: &Shared,
    stream: TcpStream,
    remote: SocketAddr,
    id: ConnectionId,
) -> Option<TlsStream<TcpStream>> {
    // `Transports::bind` refuses a TLS or WSS listener without a certificate.
    let tls = shared.config.tls.as_ref()?;
    let acceptor = TlsAcceptor::from(tls.config());
    let handshake =
        tokio::time::timeout(shared.config.tls_handshake_timeout, acceptor.accept(stream));
    let outcome = tokio::select! {
        () = shared.stopped() => return None,
        outcome = handshake => outcome,
    };
    match outcome {
        Ok(Ok(stream)) => {
            stats::bump(&shared.stats.tls_handshakes);
            Some(stream)
        }
        Ok(Err(e)) => {
            stats::bump(&shared.stats.tls_handshake_failures);
            tracing::debug!(peer = %remote, connection = id.0, error = %e, "TLS handshake failed, closing");
            None
        }
        Err(_elapsed) => {
            stats::bump(&shared.stats.tls_handshake_timeouts);
            tracing::debug!(peer = %remote, connection = id.0, "TLS handshake not finished in time, closing");
            None
        }
    }
}
