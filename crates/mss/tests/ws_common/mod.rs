//! A browser phone for the integration tests: a blocking tokio-tungstenite (tungstenite)
//! client on loopback that opens a WebSocket with the `sip` subprotocol, over TCP (`ws:`)
//! or over TLS accepting any certificate (`wss:`), and sends and reads one SIP message per
//! WebSocket message, as JsSIP does.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, Message, Response};
use rustls::{ClientConnection, StreamOwned};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, WebSocket};

/// A byte stream whose TCP socket can be given a read timeout.
pub trait Socket: Read + Write {
    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for StreamOwned<ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// What the server did with the connection while we waited for a message.
#[derive(Debug)]
pub enum Next {
    /// A SIP message.
    Sip(Message),
    /// A text message that is not SIP (a CRLF keep-alive answer).
    Text(String),
    /// A Close frame (the server's code and reason), or the connection ended.
    Closed(Option<CloseFrame>),
    /// Nothing within the time.
    Nothing,
}

/// A WebSocket phone.
pub struct WsPhone<S: Socket> {
    ws: WebSocket<S>,
    local: SocketAddr,
}

/// Opens a WebSocket over `stream` to `addr` with `Sec-WebSocket-Protocol: sip`.
fn open<S: Socket>(stream: S, scheme: &str, addr: SocketAddr) -> Result<WsPhone<S>, String> {
    let local = stream.tcp().local_addr().map_err(|e| e.to_string())?;
    let mut request = format!("{scheme}://{addr}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    request
        .headers_mut()
        .insert("Origin", "http://127.0.0.1".parse().unwrap());
    let (ws, response) = tungstenite::client(request, stream).map_err(|e| e.to_string())?;
    if response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.as_bytes())
        != Some(b"sip")
    {
        return Err("the server did not choose sip".to_owned());
    }
    Ok(WsPhone { ws, local })
}

impl WsPhone<TcpStream> {
    /// A phone on `ws://addr/`.
    pub fn connect(addr: SocketAddr) -> WsPhone<TcpStream> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        open(tcp, "ws", addr).unwrap_or_else(|e| panic!("ws connect to {addr}: {e}"))
    }
}

impl WsPhone<StreamOwned<ClientConnection, TcpStream>> {
    /// A phone on `wss://addr/`.
    pub fn connect_tls(addr: SocketAddr) -> WsPhone<StreamOwned<ClientConnection, TcpStream>> {
        let tls = crate::tls_common::tls_stream(addr).unwrap();
        open(tls, "wss", addr).unwrap_or_else(|e| panic!("wss connect to {addr}: {e}"))
    }
}

impl<S: Socket> WsPhone<S> {
    /// Our end of the TCP connection.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sends `text` as one text message.
    pub fn send(&mut self, text: &str) {
        self.ws.send(tungstenite::Message::text(text)).unwrap();
    }

    /// Writes `bytes` as they are on the connection (hand-made WebSocket frames).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stream = self.ws.get_mut();
        stream.write_all(bytes).unwrap();
        stream.flush().unwrap();
    }

    /// Sends `data` as one binary message.
    pub fn send_binary(&mut self, data: Vec<u8>) {
        self.ws.send(tungstenite::Message::binary(data)).unwrap();
    }

    /// What comes next within `timeout` (pings and pongs skipped).
    pub fn next(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Next::Nothing;
            };
            self.ws
                .get_ref()
                .tcp()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    return match parse_datagram(Bytes::copy_from_slice(t.as_bytes())) {
                        Ok(m) => Next::Sip(m),
                        Err(_) => Next::Text(t.as_str().to_owned()),
                    }
                }
                Ok(tungstenite::Message::Binary(b)) => {
                    return match parse_datagram(b) {
                        Ok(m) => Next::Sip(m),
                        Err(e) => panic!("binary message that is not SIP: {e}"),
                    }
                }
                Ok(tungstenite::Message::Close(frame)) => return Next::Closed(frame),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Next::Nothing
                }
                Err(_) => return Next::Closed(None),
            }
        }
    }

    /// The next SIP message within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<Message> {
        match self.next(timeout) {
            Next::Sip(m) => Some(m),
            _ => None,
        }
    }

    /// Sends `text` and returns the first final response within 5 s.
    pub fn transact(&mut self, text: &str) -> Response {
        self.send(text);
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(m) = self.recv(deadline.saturating_duration_since(Instant::now())) {
            if let Message::Response(r) = m {
                if r.status().as_u16() >= 200 {
                    return r;
                }
            }
        }
        panic!("no final response over WebSocket to:\n{text}");
    }
}
