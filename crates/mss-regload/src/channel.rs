//! A client's way to the server: a UDP socket, or a TCP connection with a TLS session.
//! Either sends a request and returns its final response (provisional responses, stray
//! answers to earlier requests and keep-alive line ends are skipped).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::LoadError;
use crate::message::{frame, status, Frame};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// One UDP socket or one TLS connection.
#[derive(Debug)]
pub enum Channel {
    /// A UDP socket bound to the client's source address.
    Udp(UdpChannel),
    /// A TLS connection, its handshake done.
    Tls(Box<TlsChannel>),
}

impl Channel {
    /// The client's end (for Via).
    pub fn local(&self) -> SocketAddr {
        match self {
            Channel::Udp(c) => c.local,
            Channel::Tls(c) => c.local,
        }
    }

    /// Sends `request` and returns the final response whose Via carries `branch`.
    ///
    /// # Errors
    /// A socket or TLS error, a timeout, the peer closing, a response that cannot be framed.
    pub fn request(&mut self, request: &[u8], branch: &str) -> Result<Vec<u8>, LoadError> {
        match self {
            Channel::Udp(c) => c.request(request, branch),
            Channel::Tls(c) => c.request(request, branch),
        }
    }

    /// Closes the channel (a TLS close_notify first).
    pub fn close(self) {
        if let Channel::Tls(mut c) = self {
            c.conn.send_close_notify();
            let _ = c.conn.complete_io(&mut c.socket);
        }
    }
}

/// Whether `message` is a final response to the request with Via branch `branch`.
fn answers(message: &[u8], branch: &str) -> bool {
    status(message).is_some_and(|s| s >= 200)
        && message
            .windows(branch.len())
            .any(|w| w == branch.as_bytes())
}

/// A UDP socket towards one server.
#[derive(Debug)]
pub struct UdpChannel {
    socket: UdpSocket,
    server: SocketAddr,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl UdpChannel {
    /// A socket bound to `source` (any port), with `timeout` on receives.
    ///
    /// # Errors
    /// [`LoadError::Io`] when the socket cannot be bound.
    pub fn open(
        source: IpAddr,
        server: SocketAddr,
        timeout: Duration,
    ) -> Result<UdpChannel, LoadError> {
        let io = |what| {
            move |source| LoadError::Io {
                what,
                peer: server,
                source,
            }
        };
        let socket = UdpSocket::bind(SocketAddr::new(source, 0)).map_err(io("bind"))?;
        socket
            .set_read_timeout(Some(timeout))
            .map_err(io("set the receive timeout"))?;
        let local = socket.local_addr().map_err(io("local address"))?;
        Ok(UdpChannel {
            socket,
            server,
            local,
            buf: vec![0; 65536],
        })
    }

    /// Sends `request` and returns the final response whose Via carries `branch`.
    ///
    /// # Errors
    /// [`LoadError::Io`] when the send fails or no answer comes within the timeout.
    pub fn request(&mut self, request: &[u8], branch: &str) -> Result<Vec<u8>, LoadError> {
        let io = |what| {
            let peer = self.server;
            move |source| LoadError::Io { what, peer, source }
        };
        self.socket
            .send_to(request, self.server)
            .map_err(io("send"))?;
        loop {
            let (n, _) = self
                .socket
                .recv_from(&mut self.buf)
                .map_err(io("receive"))?;
            let message = &self.buf[..n];
            if answers(message, branch) {
                return Ok(message.to_vec());
            }
        }
    }
}

/// A TLS connection towards one server.
#[derive(Debug)]
pub struct TlsChannel {
    conn: ClientConnection,
    socket: TcpStream,
    server: SocketAddr,
    local: SocketAddr,
    /// Received plaintext not yet framed.
    buf: Vec<u8>,
    /// Whether the handshake resumed an earlier session.
    pub resumed: bool,
}

impl TlsChannel {
    /// Connects from `source` (any port) and runs the handshake, resuming a session from
    /// `config`'s store when it has one for `name`. `timeout` bounds the connect and
    /// every read and write.
    ///
    /// # Errors
    /// [`LoadError::Io`] or [`LoadError::Tls`] when the connect or handshake fails.
    pub fn open(
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
        source: IpAddr,
        server: SocketAddr,
        timeout: Duration,
    ) -> Result<TlsChannel, LoadError> {
        let io = |what| {
            move |source| LoadError::Io {
                what,
                peer: server,
                source,
            }
        };
        let tls = |source| LoadError::Tls {
            peer: server,
            source,
        };
        let socket = Socket::new(
            Domain::for_address(server),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(io("socket"))?;
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(io("bind"))?;
        socket
            .connect_timeout(&server.into(), timeout)
            .map_err(io("connect"))?;
        let mut socket: TcpStream = socket.into();
        socket.set_nodelay(true).map_err(io("set TCP_NODELAY"))?;
        socket
            .set_read_timeout(Some(timeout))
            .map_err(io("set the read timeout"))?;
        socket
            .set_write_timeout(Some(timeout))
            .map_err(io("set the write timeout"))?;
        let local = socket.local_addr().map_err(io("local address"))?;
        let mut conn = ClientConnection::new(Arc::clone(config), name.clone()).map_err(tls)?;
        while conn.is_handshaking() {
            match conn.complete_io(&mut socket) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(LoadError::Closed { peer: server })
                }
                Ok(_) => {}
                Err(e) => return Err(io("handshake")(e)),
            }
        }
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok(TlsChannel {
            conn,
            socket,
            server,
            local,
            buf: Vec::with_capacity(READ_CHUNK),
            resumed,
        })
    }

    /// Sends `request` and returns the final response whose Via carries `branch`.
    ///
    /// # Errors
    /// A socket or TLS error, a timeout, the peer closing, a response that cannot be
    /// framed.
    pub fn request(&mut self, request: &[u8], branch: &str) -> Result<Vec<u8>, LoadError> {
        let peer = self.server;
        let io = |what| move |source| LoadError::Io { what, peer, source };
        let mut stream = rustls::Stream::new(&mut self.conn, &mut self.socket);
        stream.write_all(request).map_err(io("send"))?;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match frame(&self.buf)? {
                Frame::KeepAlive(n) => {
                    self.buf.drain(..n);
                    continue;
                }
                Frame::Message(n) => {
                    let message: Vec<u8> = self.buf.drain(..n).collect();
                    if answers(&message, branch) {
                        return Ok(message);
                    }
                    continue;
                }
                Frame::Incomplete => {}
            }
            let n = match stream.read(&mut chunk) {
                Ok(0) => return Err(LoadError::Closed { peer }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io("receive")(e)),
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_final_responses_with_the_branch_answer() {
        let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK-7\r\n\r\n";
        assert!(answers(ok, "z9hG4bK-7"));
        assert!(!answers(ok, "z9hG4bK-8"));
        assert!(!answers(
            b"SIP/2.0 100 Trying\r\nVia: x;branch=z9hG4bK-7\r\n\r\n",
            "z9hG4bK-7"
        ));
    }

    #[test]
    fn udp_requests_skip_stray_answers_and_time_out() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let mut c = UdpChannel::open(
            "127.0.0.1".parse().unwrap(),
            addr,
            Duration::from_millis(300),
        )
        .unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (_, from) = server.recv_from(&mut buf).unwrap();
            server
                .send_to(b"SIP/2.0 200 OK\r\nVia: x;branch=old\r\n\r\n", from)
                .unwrap();
            server
                .send_to(b"SIP/2.0 401 No\r\nVia: x;branch=new\r\n\r\n", from)
                .unwrap();
        });
        let got = c.request(b"REGISTER", "branch=new").unwrap();
        assert_eq!(status(&got), Some(401));
        t.join().unwrap();
        assert!(matches!(
            c.request(b"REGISTER", "branch=never"),
            Err(LoadError::Io {
                what: "receive",
                ..
            })
        ));
    }
}
