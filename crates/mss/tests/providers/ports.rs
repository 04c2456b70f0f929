//! Ports and readiness: a free UDP port, and waiting until a provider listens.

use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::procfs;

/// A free UDP port on 127.0.0.1, as the kernel hands out ephemeral ports.
///
/// # Errors
///
/// The bind or address lookup failure.
/// Never hands out the same port twice in one test process, so parallel
/// tests cannot collide with each other.
pub fn free_udp_port() -> io::Result<u16> {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..64 {
        let socket = UdpSocket::bind(("127.0.0.1", 0))?;
        let port = socket.local_addr()?.port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "the kernel keeps handing out ports this process already used",
    ))
}

/// Waits until something on `127.0.0.1:port` answers a SIP OPTIONS with any
/// response, resending every 200 ms, for at most `timeout`.
///
/// # Errors
///
/// `TimedOut` when nothing answered in time, or the socket error.
pub fn wait_for_udp(port: u16, timeout: Duration) -> io::Result<()> {
    let socket = UdpSocket::bind(("127.0.0.1", 0))?;
    let local = socket.local_addr()?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    let mut attempt = 0u32;
    while Instant::now() < deadline {
        attempt += 1;
        let probe = options_probe(local, port, attempt);
        // Nothing bound yet gives ECONNREFUSED on a later call: just retry.
        let _ = socket.send_to(probe.as_bytes(), ("127.0.0.1", port));
        match socket.recv_from(&mut buf) {
            Ok((n, _)) if buf.get(..n).is_some_and(|b| b.starts_with(b"SIP/2.0 ")) => {
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if is_retryable(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no SIP answer to OPTIONS on 127.0.0.1:{port} within {timeout:?}"),
    ))
}

fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::ConnectionRefused
    )
}

fn options_probe(local: SocketAddr, port: u16, attempt: u32) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};rport;branch=z9hG4bKprobe{attempt}x{pid}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe{attempt}\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: probe-{attempt}-{pid}@127.0.0.1\r\n\
         CSeq: {attempt} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        pid = std::process::id(),
    )
}

/// Waits until a UDP socket is bound to `127.0.0.1:port` (or the wildcard
/// address), as `/proc/net/udp` shows, for at most `timeout`. For SIPp,
/// which does not answer an OPTIONS probe in a REGISTER scenario.
///
/// # Errors
///
/// `TimedOut` when no socket was bound in time, or the read error.
pub fn wait_for_udp_bound(port: u16, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if !procfs::bound_inodes(port)?.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing bound to UDP 127.0.0.1:{port} within {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}
