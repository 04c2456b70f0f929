//! An accepted TLS connection: the handshake, bounded in time, then the same framing,
//! keep-alives and send queue as a TCP connection (`connection::serve`).

use std::net::SocketAddr;
use std::sync::Arc;

use mss_sip::net::{Flow, Transport};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::connection;
use crate::shared::{ConnectionGuard, Shared};
use crate::stats;
use crate::table::Entry;

/// Runs the handshake of an accepted connection and then the connection itself.
///
/// A handshake that fails (garbage, an unknown protocol version, a client that refuses
/// the certificate) or does not finish within `tls_handshake_timeout` drops the
/// connection and is counted; the connection enters the table only once it is done, so
/// nothing is queued for a peer that never completes it.
pub(crate) async fn run(
    shared: Arc<Shared>,
    guard: ConnectionGuard,
    stream: TcpStream,
    remote: SocketAddr,
) {
    let id = guard.id;
    let Some(tls) = shared.config.tls.as_ref() else {
        // `Transports::bind` refuses a TLS listener without a certificate.
        return;
    };
    let Some(local) = connection::prepare(&stream, remote) else {
        return;
    };
    let acceptor = TlsAcceptor::from(tls.config());
    let handshake =
        tokio::time::timeout(shared.config.tls_handshake_timeout, acceptor.accept(stream));
    let outcome = tokio::select! {
        () = shared.stopped() => return,
        outcome = handshake => outcome,
    };
    let stream = match outcome {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            stats::bump(&shared.stats.tls_handshake_failures);
            tracing::debug!(peer = %remote, connection = id.0, error = %e, "TLS handshake failed, closing");
            return;
        }
        Err(_elapsed) => {
            stats::bump(&shared.stats.tls_handshake_timeouts);
            tracing::debug!(peer = %remote, connection = id.0, "TLS handshake not finished in time, closing");
            return;
        }
    };
    stats::bump(&shared.stats.tls_handshakes);
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
