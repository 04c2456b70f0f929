//! An accepted WebSocket connection: for `wss:` the TLS handshake first, then the HTTP
//! upgrade within `ws_upgrade_timeout` ([`super::upgrade`] decides), then the connection
//! itself ([`super::connection::serve`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use mss_sip::net::{Flow, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::connection;
use super::upgrade::{self, Head, Refusal};
use crate::shared::{ConnectionGuard, Shared};
use crate::stats;
use crate::table::Entry;

/// Bytes read from the socket at a time during the upgrade.
const READ_CHUNK: usize = 2048;

/// The tungstenite read buffer: small, because it is allocated for every connection up
/// front and browsers send small messages (it grows for a large one).
const READ_BUFFER: usize = 4096;

/// Runs an accepted `ws:` or `wss:` connection (`transport` says which) to its end.
pub(crate) async fn run(
    shared: Arc<Shared>,
    guard: ConnectionGuard,
    stream: TcpStream,
    remote: SocketAddr,
    transport: Transport,
) {
    let id = guard.id;
    let Some(local) = crate::connection::prepare(&stream, remote) else {
        return;
    };
    if transport == Transport::Wss {
        let Some(tls) = crate::tls_accept::handshake(&shared, stream, remote, id).await else {
            return;
        };
        open(shared, guard, tls, local, remote, transport).await;
    } else {
        open(shared, guard, stream, local, remote, transport).await;
    }
}

/// The upgrade on `stream`, then the WebSocket connection.
async fn open<S>(
    shared: Arc<Shared>,
    guard: ConnectionGuard,
    mut stream: S,
    local: SocketAddr,
    remote: SocketAddr,
    transport: Transport,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = guard.id;
    let deadline = tokio::time::timeout(shared.config.ws_upgrade_timeout, upgrade(&mut stream));
    let outcome = tokio::select! {
        () = shared.stopped() => return,
        outcome = deadline => outcome,
    };
    let rest = match outcome {
        Ok(Upgrade::Open { rest }) => rest,
        Ok(Upgrade::Refused(refusal)) => {
            stats::bump(&shared.stats.ws_upgrade_failures);
            tracing::debug!(peer = %remote, connection = id.0, status = refusal.status(), reason = refusal.reason(), "WebSocket upgrade refused, closing");
            return;
        }
        Ok(Upgrade::Closed { partial }) => {
            if partial {
                stats::bump(&shared.stats.ws_upgrade_failures);
            }
            tracing::debug!(peer = %remote, connection = id.0, partial, "peer left before the WebSocket upgrade");
            return;
        }
        Ok(Upgrade::Io(e)) => {
            tracing::debug!(peer = %remote, connection = id.0, error = %e, "WebSocket upgrade failed");
            return;
        }
        Err(_elapsed) => {
            stats::bump(&shared.stats.ws_upgrade_timeouts);
            tracing::debug!(peer = %remote, connection = id.0, "WebSocket upgrade not finished in time, closing");
            return;
        }
    };
    stats::bump(&shared.stats.ws_upgrades);
    let ws =
        WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config(&shared)))
            .await;
    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
    shared.table.insert(
        id,
        Entry {
            transport,
            remote,
            tx,
        },
    );
    let flow = Flow {
        transport,
        remote,
        connection: Some(id),
    };
    tracing::debug!(peer = %remote, connection = id.0, %transport, "WebSocket open");
    connection::serve(&shared, guard, ws, local, flow, rx).await;
}

/// The tungstenite configuration: messages and frames no larger than the framing
/// limit of SIP messages, small buffers, masked client frames only (RFC 6455 §5.1).
fn config(shared: &Shared) -> WebSocketConfig {
    let max = shared.config.framing.max_message_len;
    let write_buffer = READ_BUFFER;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(write_buffer)
        // Above the write buffer by two of the largest messages: only reached while
        // writes fail, which ends the connection anyway.
        .max_write_buffer_size(write_buffer.saturating_add(max.saturating_mul(2)))
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// How an upgrade ended.
#[derive(Debug)]
enum Upgrade {
    /// `101` sent; `rest` is what the peer sent after its request head.
    Open {
        /// Bytes after the head: the start of the first frames.
        rest: Vec<u8>,
    },
    /// The request was refused with an HTTP answer (sent, as far as the peer reads).
    Refused(Refusal),
    /// The peer closed before a complete head; `partial` when it had sent something.
    Closed {
        /// Whether some bytes came.
        partial: bool,
    },
    /// A socket error.
    Io(io::Error),
}

/// Reads the request head (re-checked only when a line end arrives, so a head trickled
/// byte by byte is not rescanned per byte) and answers it.
async fn upgrade<S>(stream: &mut S) -> Upgrade
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => {
                return Upgrade::Closed {
                    partial: !buf.is_empty(),
                }
            }
            Ok(n) => n,
            Err(e) => return Upgrade::Io(e),
        };
        let got = chunk.get(..n).unwrap_or(&[]);
        buf.extend_from_slice(got);
        if !got.contains(&b'\n') && buf.len() < upgrade::MAX_HEAD {
            continue;
        }
        match upgrade::check(&buf) {
            Head::Incomplete => {}
            Head::Accepted { len, response } => {
                if let Err(e) = answer(stream, &response).await {
                    return Upgrade::Io(e);
                }
                return Upgrade::Open {
                    rest: buf.get(len..).unwrap_or(&[]).to_vec(),
                };
            }
            Head::Refused(refusal) => {
                // The peer may be gone or not reading: the refusal stands either way.
                let _ = answer(stream, &refusal.response()).await;
                let _ = stream.shutdown().await;
                return Upgrade::Refused(refusal);
            }
        }
    }
}

/// Writes an HTTP answer.
async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const REQUEST: &str = "GET / HTTP/1.1\r\nHost: pbx.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n\r\n";

    #[tokio::test]
    async fn the_upgrade_answers_101_and_keeps_early_frame_bytes() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let mut sent = REQUEST.as_bytes().to_vec();
        sent.extend_from_slice(&[0x81, 0x80]);
        client.write_all(&sent).await.unwrap();
        let Upgrade::Open { rest } = upgrade(&mut server).await else {
            panic!("not open");
        };
        assert_eq!(rest, [0x81, 0x80]);
        let mut got = vec![0u8; 1024];
        let n = client.read(&mut got).await.unwrap();
        let text = String::from_utf8_lossy(&got[..n]);
        assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    }

    #[tokio::test]
    async fn a_head_trickled_in_pieces_is_read_whole() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            for piece in REQUEST.as_bytes().chunks(7) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        assert!(matches!(upgrade(&mut server).await, Upgrade::Open { .. }));
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn garbage_gets_400_and_an_early_close_is_told_apart() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client
            .write_all(b"OPTIONS sip:pbx.test SIP/2.0\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(
            upgrade(&mut server).await,
            Upgrade::Refused(Refusal::Malformed)
        ));
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));

        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(matches!(
            upgrade(&mut server).await,
            Upgrade::Closed { partial: false }
        ));
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HT").await.unwrap();
        drop(client);
        assert!(matches!(
            upgrade(&mut server).await,
            Upgrade::Closed { partial: true }
        ));
    }
}
