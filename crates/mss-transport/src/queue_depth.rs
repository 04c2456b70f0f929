//! How much a UDP socket has waiting in the kernel, for the backlog rules of the per-source
//! limit (`source_limit.rs`).
//!
//! The receive loop used to count the datagrams it read since the socket last ran empty.
//! Under a steady load that count is not a depth: the loop reads 64 datagrams, lets the
//! worker run, and finds the few that came meanwhile, so the socket never runs empty and
//! the count grows past the "deep" mark while a handful of datagrams wait. A benchmark
//! client at 3,000 calls/s (one address) then lost its requests for a second or two at a
//! time to the fair-share rule (issue 14). `SO_MEMINFO` (Linux 4.6) tells how many bytes
//! the socket's receive queue holds; the loop asks it each time it has read
//! [`crate::udp`]'s batch without the socket running empty, and the rules see that depth.

#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

/// Bytes of the kernel's receive-queue accounting counted as one queued datagram. A
/// datagram is charged its buffer's true size: on Linux 6.x, 1,280 bytes for one of up to
/// about 700 bytes (a REGISTER, an ACK, a BYE) and 2,304 for one of 900–1,400 (an
/// INVITE with its SDP); so [`crate::source_limit::DEEP_BACKLOG_STREAK`] (2,048) is about
/// half of the 8 MiB the kernel grants for mss's 4 MiB `SO_RCVBUF`.
pub(crate) const QUEUED_DATAGRAM_BYTES: usize = 2_048;

/// The datagrams waiting on `socket`, estimated from the bytes its receive queue holds;
/// `None` where the kernel does not say.
pub(crate) fn queued_datagrams(socket: &impl AsRawFd) -> Option<usize> {
    queued_bytes(socket).map(|b| b / QUEUED_DATAGRAM_BYTES)
}

/// The bytes `socket`'s receive queue holds (`SK_MEMINFO_RMEM_ALLOC`).
#[cfg(target_os = "linux")]
fn queued_bytes(socket: &impl AsRawFd) -> Option<usize> {
    // The kernel fills as many of its counters (9 today) as fit; index 0 is the receive
    // queue's allocation.
    let mut info = [0u32; 16];
    let mut len = libc::socklen_t::try_from(std::mem::size_of_val(&info)).ok()?;
    // SAFETY: `info` is a live, writable buffer of `len` bytes for the whole call; the
    // kernel writes at most `len` bytes into it and stores the length written in `len`,
    // a live `socklen_t`. The descriptor is borrowed from `socket`, open for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || len < 4 {
        return None;
    }
    usize::try_from(info[0]).ok()
}

#[cfg(not(target_os = "linux"))]
fn queued_bytes(_socket: &impl AsRawFd) -> Option<usize> {
    None
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_follows_what_waits_unread() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(queued_datagrams(&rx), Some(0));
        // REGISTER-sized datagrams, left unread.
        let payload = vec![b'x'; 600];
        for _ in 0..200 {
            tx.send_to(&payload, rx.local_addr().unwrap()).unwrap();
        }
        let depth = queued_datagrams(&rx).unwrap();
        assert!((100..=400).contains(&depth), "{depth} for 200 datagrams");
        let mut buf = [0u8; 2048];
        rx.set_nonblocking(true).unwrap();
        while rx.recv_from(&mut buf).is_ok() {}
        assert_eq!(queued_datagrams(&rx), Some(0));
    }
}
