//! One open SIP WebSocket (RFC 7118 §5): each text or binary message in is one SIP
//! message (or a CRLF keep-alive, or dropped as not SIP); each message queued for the
//! connection goes out as one text frame (binary when it is not UTF-8). WebSocket pings
//! are answered by tungstenite; mss pings a quiet peer every `ws_ping_interval` and
//! closes the connection when nothing, not even a pong, came for `tcp_idle_timeout`.
//! A message over the framing limit closes it with 1009 (Message Too Big).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mss_sip::net::{ConnectionId, Flow};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::payload::{self, Payload};
use crate::shared::{ConnectionGuard, Received, Shared};
use crate::stats;

/// How long a closing handshake (our Close frame) may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Stands for "never" in deadlines (30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Why a WebSocket connection ended.
#[derive(Debug)]
enum End {
    /// The peer closed (Close frame or end of stream).
    Closed,
    /// Nothing came for the idle timeout, not even a pong.
    Idle,
    /// A message or frame over the size limit (closed with 1009).
    TooLarge(String),
    /// A protocol or socket error on reading (counted as a framing error).
    Read(WsError),
    /// A write failed or timed out.
    Write(String),
    /// The receiver of messages is gone, or shutdown.
    Shutdown,
}

/// Runs the connection until the peer closes it, it fails, idles out, or shutdown.
/// `rx` is the connection's send queue; `flow` names its transport (WS or WSS), peer
/// and id; `local` is our end.
pub(crate) async fn serve<S>(
    shared: &Shared,
    guard: ConnectionGuard,
    mut ws: WebSocketStream<S>,
    local: SocketAddr,
    flow: Flow,
    mut rx: mpsc::Receiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = guard.id;
    let idle = shared.config.tcp_idle_timeout;
    let ping_every = shared.config.ws_ping_interval;
    let write_timeout = shared.config.tcp_write_timeout;
    let after = |t: Instant, d: Duration| t.checked_add(d).unwrap_or_else(|| t + FAR_FUTURE);
    let mut heard = Instant::now();
    let mut next_ping = after(heard, ping_every);
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    let end = loop {
        let wake = next_ping.min(after(heard, idle));
        tokio::select! {
            () = &mut stopped => break End::Shutdown,
            item = ws.next() => {
                let message = match item {
                    None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                        break End::Closed
                    }
                    Some(Err(WsError::Capacity(e))) => break End::TooLarge(e.to_string()),
                    Some(Err(e)) => break End::Read(e),
                    Some(Ok(message)) => message,
                };
                heard = Instant::now();
                next_ping = after(heard, ping_every);
                let data = match message {
                    Message::Text(text) => Bytes::from(text),
                    Message::Binary(data) => data,
                    // Pings are answered by tungstenite on the next read; a Close is
                    // answered there too, and the stream then ends.
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                        continue
                    }
                };
                stats::add(&shared.stats.bytes_received, data.len());
                match payload::classify(&data, &shared.config.framing) {
                    Payload::Message { start } => {
                        stats::bump(&shared.stats.ws_messages_received);
                        let received = Received { data: data.slice(start..), flow, local };
                        // Backpressure: a full channel makes this connection wait.
                        if shared.tx.send(received).await.is_err() {
                            break End::Shutdown;
                        }
                    }
                    Payload::KeepAlive { pongs } => {
                        for _ in 0..pongs {
                            // RFC 5626 §4.4.1 over a WebSocket: a CRLF for each double CRLF.
                            let pong = Message::Text(Utf8Bytes::from_static("\r\n"));
                            // A failed write shows again on the next read or write.
                            if timed(write_timeout, ws.send(pong)).await.is_err() {
                                break;
                            }
                            stats::bump(&shared.stats.tcp_keepalives_answered);
                        }
                    }
                    Payload::NotSip(why) => {
                        stats::bump(&shared.stats.ws_frames_dropped);
                        tracing::debug!(peer = %flow.remote, connection = id.0, bytes = data.len(), %why, "WebSocket message is not SIP, dropped");
                    }
                }
            }
            queued = rx.recv() => {
                let Some(first) = queued else { break End::Shutdown };
                if let Err(e) = timed(write_timeout, write_batch(&mut ws, first, &mut rx)).await {
                    stats::bump(&shared.stats.send_errors);
                    break End::Write(e);
                }
            }
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= after(heard, idle) {
                    break End::Idle;
                }
                next_ping = after(now, ping_every);
                if let Err(e) = timed(write_timeout, ws.send(Message::Ping(Bytes::new()))).await {
                    break End::Write(e);
                }
            }
        }
    };
    // No new messages for this connection from here on.
    guard.unregister();
    finish(shared, &mut ws, flow.remote, id, end).await;
    drop(guard);
}

/// Logs and counts how the connection ended and closes it, politely where that makes
/// sense (bounded by [`CLOSE_GRACE`]).
async fn finish<S>(
    shared: &Shared,
    ws: &mut WebSocketStream<S>,
    remote: SocketAddr,
    id: ConnectionId,
    end: End,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let close = |code: CloseCode, reason: &'static str| {
        Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })
    };
    let frame = match &end {
        End::Closed => {
            tracing::debug!(peer = %remote, connection = id.0, "WebSocket closed by the peer");
            None
        }
        End::Idle => {
            stats::bump(&shared.stats.tcp_idle_closed);
            tracing::debug!(peer = %remote, connection = id.0, "WebSocket idle, closing");
            close(CloseCode::Away, "idle")
        }
        End::TooLarge(e) => {
            stats::bump(&shared.stats.ws_oversize_closed);
            tracing::warn!(peer = %remote, connection = id.0, error = %e, "WebSocket message too large, closing with 1009");
            close(CloseCode::Size, "message too large")
        }
        End::Read(e) => {
            // Unmasked or malformed frames, a text message that is not UTF-8 …: the
            // WebSocket framing is broken, as a TCP stream's can be.
            stats::bump(&shared.stats.framing_errors);
            tracing::debug!(peer = %remote, connection = id.0, error = %e, "WebSocket read failed, closing");
            close(CloseCode::Protocol, "protocol error")
        }
        End::Write(e) => {
            tracing::debug!(peer = %remote, connection = id.0, error = %e, "WebSocket write failed, closing");
            None
        }
        End::Shutdown => {
            tracing::debug!(peer = %remote, connection = id.0, "WebSocket closed at shutdown");
            close(CloseCode::Away, "server shutting down")
        }
    };
    if let Some(frame) = frame {
        let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(Some(frame))).await;
    }
}

/// Writes `first` and whatever else is queued now, then flushes.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    first: Bytes,
    rx: &mut mpsc::Receiver<Bytes>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.feed(frame(first)).await?;
    while let Ok(more) = rx.try_recv() {
        ws.feed(frame(more)).await?;
    }
    ws.flush().await
}

/// A SIP message as a WebSocket message: text when it is UTF-8 (always, but for a body
/// in another encoding), else binary (RFC 7118 §5.1 allows both).
fn frame(data: Bytes) -> Message {
    // A clone of `Bytes` shares the buffer.
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(data),
    }
}

/// `op`, or an error once `limit` has passed.
async fn timed<F>(limit: Duration, op: F) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), WsError>>,
{
    match tokio::time::timeout(limit, op).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("write timed out (the peer does not read)".to_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sip_goes_out_as_text_and_other_bytes_as_binary() {
        let sip = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(frame(sip), Message::Text(t) if t.as_str().starts_with("SIP/2.0 200")));
        let latin1 = Bytes::from_static(b"MESSAGE sip:a@b SIP/2.0\r\n\r\n\xe9t\xe9");
        assert!(matches!(frame(latin1.clone()), Message::Binary(b) if b == latin1));
    }
}
