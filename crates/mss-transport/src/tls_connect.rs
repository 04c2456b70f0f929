//! Outbound TLS connections: opened to send a message to a peer registered with
//! [`Transports::set_tls_peer`](crate::Transports::set_tls_peer) (a line's registrar),
//! verifying its certificate, then framed, kept and reused exactly like any other
//! connection (`connection::serve`): the peer's requests to us come back over it.
//!
//! A failed connect or handshake loses the queued messages (counted as send errors), is
//! logged once with the peer's label and the reason, counted in
//! `tls_client_failures`, and reported as a [`ConnectFailure`] so that the transaction
//! that waited on it can fail at once. Nothing is ever sent in plaintext instead.

use std::sync::Arc;

use bytes::Bytes;
use mss_sip::net::{ConnectionId, Flow, Transport};
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::connection;
use crate::error::TransportError;
use crate::shared::{ConnectFailure, ConnectionGuard, Shared};
use crate::stats;
use crate::table::Entry;
use crate::tcp;
use crate::tls::client::{failure_reason, TlsPeer};

/// Opens a TLS connection to `remote` in the background with `first` queued.
///
/// The connection is in the table at once (as TLS), so further messages to `remote`
/// queue behind `first` instead of opening more connections; they leave once the
/// handshake is done.
///
/// # Errors
/// `ConnectionLimit` when `max_tcp_connections` connections are open.
pub(crate) fn open_queued(
    shared: &Arc<Shared>,
    remote: SocketAddr,
    peer: TlsPeer,
    first: Bytes,
) -> Result<ConnectionId, TransportError> {
    let permit = tcp::take_permit(shared, remote)?;
    let id = shared.next_connection_id();
    let guard = ConnectionGuard::new(Arc::clone(shared), id, None, permit);
    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
    // A fresh queue of capacity ≥ 1 always takes the first message.
    let _ = tx.try_send(first);
    shared.table.insert(
        id,
        Entry {
            transport: Transport::Tls,
            remote,
            tx: tx.clone(),
        },
    );
    let task_shared = Arc::clone(shared);
    shared.spawn(async move {
        let shared = task_shared;
        let opened = tokio::select! {
            () = shared.stopped() => return,
            res = connect(&shared, remote, &peer) => res,
        };
        match opened {
            Ok((stream, local)) => {
                stats::bump(&shared.stats.tls_client_handshakes);
                tracing::debug!(peer = %remote, connection = id.0, name = %peer.name(),
                    "outbound TLS connection open, certificate verified");
                let flow = Flow {
                    transport: Transport::Tls,
                    remote,
                    connection: Some(id),
                };
                let (read_half, write_half) = tokio::io::split(stream);
                connection::serve(
                    Arc::clone(&shared),
                    guard,
                    read_half,
                    write_half,
                    local,
                    flow,
                    rx,
                    tx,
                )
                .await;
            }
            Err(reason) => {
                // Out of the table before anyone can queue more on it.
                drop(guard);
                let lost = rx.len();
                stats::add(&shared.stats.send_errors, lost);
                stats::bump(&shared.stats.tls_client_failures);
                tracing::warn!(peer = %remote, to = %peer.label, lost,
                    "TLS connection to {} ({remote}) failed: {reason}", peer.label);
                shared.report_failure(ConnectFailure {
                    flow: Flow {
                        transport: Transport::Tls,
                        remote,
                        connection: None,
                    },
                    reason,
                });
            }
        }
    });
    Ok(id)
}

/// Connects to `remote` and runs the client handshake, both within their timeouts;
/// the stream and our local address, or why not in words.
async fn connect(
    shared: &Shared,
    remote: SocketAddr,
    peer: &TlsPeer,
) -> Result<
    (
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    ),
    String,
> {
    let stream = tcp::dial(shared, remote)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let local = connection::prepare(&stream, remote)
        .ok_or_else(|| "connection lost before the TLS handshake".to_owned())?;
    let connector = TlsConnector::from(peer.client.config());
    let handshake = tokio::time::timeout(
        shared.config.tls_handshake_timeout,
        connector.connect(peer.server_name.clone(), stream),
    );
    match handshake.await {
        Ok(Ok(stream)) => Ok((stream, local)),
        Ok(Err(e)) => Err(failure_reason(&e, &peer.name())),
        Err(_elapsed) => Err(format!(
            "TLS handshake not finished within {} s",
            shared.config.tls_handshake_timeout.as_secs()
        )),
    }
}
