//! The kernel's receive stamps (`SO_TIMESTAMPNS`, socket(7)): the moment a datagram was
//! queued on the socket, read with `recvmsg` from its control message.
//!
//! The far side takes arrival from these, not from the moment its thread got to read the
//! datagram: the tool's receiving thread shares the cores with the relay it measures, and
//! its waits for a CPU are no part of what a relay adds.
//!
//! The kernel turns stamping on in deferred work when the first socket asks; a datagram
//! that arrives before then is stamped when it is read — the moment the tool measured
//! before, never an earlier one. The tool asks when it binds its endpoints, long before
//! the first packet (the relay and the calls are set up in between).
//!
//! `unsafe` is allowed here only: `setsockopt` and `recvmsg` with its control messages
//! have no safe wrapper in the crates the tool uses.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::AsRawFd;

/// Room for the control messages of one `recvmsg` (a `timespec` in a `cmsghdr`, and slack).
pub struct Control {
    buf: [u64; 16],
}

impl Control {
    /// An empty control buffer.
    pub fn new() -> Control {
        Control { buf: [0; 16] }
    }
}

impl Default for Control {
    fn default() -> Control {
        Control::new()
    }
}

/// Asks the kernel to stamp every datagram `socket` receives.
pub fn enable(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor, and a pointer to an int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads one datagram into `buf`: its length, and its receive stamp (ns of
/// `CLOCK_REALTIME`) when the kernel gave one. Non-blocking as the socket is.
pub fn recv(
    socket: &impl AsRawFd,
    buf: &mut [u8],
    control: &mut Control,
) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no control); the fields set below
    // point at live buffers of the lengths given.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>() as _;
    // SAFETY: `msg` describes buffers that outlive the call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let mut stamp = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
    // `msg_controllen`; a SCM_TIMESTAMPNS message carries a `timespec` (possibly unaligned).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = u64::try_from(ts.tv_sec)
                    .ok()
                    .zip(u64::try_from(ts.tv_nsec).ok())
                    .map(|(s, ns)| s * 1_000_000_000 + ns);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn wall() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }

    /// The kernel turns stamping on for the first socket that asks in deferred work, and
    /// until then stamps a datagram when it is read: the first tries may show the read
    /// moment, so the test sends until one datagram shows its queueing (at most 40 tries).
    #[test]
    fn a_stamp_lies_between_the_send_and_the_read() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&rx).unwrap();
        let mut seen = Vec::new();
        for _ in 0..40 {
            let before = wall();
            tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
            let mut buf = [0u8; 64];
            let mut control = Control::new();
            let (n, stamp) = recv(&rx, &mut buf, &mut control).unwrap();
            let read = wall();
            assert_eq!(&buf[..n], b"hello");
            let stamp = stamp.expect("a stamp");
            assert!(before <= stamp && stamp <= read, "{before} {stamp} {read}");
            // Queued at the send, not at the read 30 ms later.
            if read - stamp >= 25_000_000 {
                return;
            }
            seen.push(read - stamp);
        }
        panic!("every stamp was the read moment: {seen:?} ns before the read");
    }

    #[test]
    fn without_stamps_asked_for_there_is_none() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, stamp) = recv(&rx, &mut buf, &mut Control::new()).unwrap();
        assert_eq!((n, stamp), (1, None));
    }
}
