//! `sendmmsg(2)` and `recvmmsg(2)`: several UDP datagrams in one system call.
//!
//! Under call load the worker sends the datagrams of a whole batch of inputs at once
//! (`Transports::send_udp_batch`) and the receive loop finds several datagrams waiting:
//! one system call each way instead of one per datagram saves the entry, the descriptor
//! lookup and, for sends, most of the receiver's wake-ups (the datagrams of a batch reach
//! its socket back to back).
//!
//! The only `unsafe` of the crate: the two foreign calls and the reading of the source
//! addresses the kernel wrote. Every pointer handed to the kernel points into memory that
//! the calling function owns or borrows for the duration of the call, and is set again
//! before each call.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr;

use socket2::SockAddr;

/// Most datagrams one `sendmmsg` call carries (the kernel's `UIO_MAXIOV` is 1024).
pub(crate) const SEND_BATCH: usize = 64;

/// One datagram to send: where to and what.
pub(crate) struct Outgoing<'a> {
    /// The destination.
    pub(crate) to: &'a SockAddr,
    /// The payload.
    pub(crate) data: &'a [u8],
}

/// Sends `msgs` (at most [`SEND_BATCH`] are looked at) from the non-blocking socket `fd`
/// in one `sendmmsg` call. Returns how many went out, from the first: fewer than given
/// when the kernel stopped at an error, which the next call, starting at the first
/// unsent datagram, reports (`Err`, the datagram then counts as lost, like any UDP loss).
pub(crate) fn send(fd: RawFd, msgs: &[Outgoing<'_>]) -> io::Result<usize> {
    let msgs = msgs.get(..msgs.len().min(SEND_BATCH)).unwrap_or(msgs);
    if msgs.is_empty() {
        return Ok(0);
    }
    let mut iovecs: Vec<libc::iovec> = msgs
        .iter()
        .map(|m| libc::iovec {
            iov_base: m.data.as_ptr().cast_mut().cast(),
            iov_len: m.data.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(msgs.len());
    for (m, iov) in msgs.iter().zip(iovecs.iter_mut()) {
        // SAFETY: all-zero is a valid value of this plain C struct; every pointer that
        // matters is set below.
        let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
        h.msg_hdr.msg_name = m.to.as_ptr().cast_mut().cast();
        h.msg_hdr.msg_namelen = m.to.len();
        h.msg_hdr.msg_iov = ptr::from_mut(iov);
        h.msg_hdr.msg_iovlen = 1;
        headers.push(h);
    }
    let n = libc::c_uint::try_from(headers.len()).unwrap_or(0);
    // SAFETY: `headers` holds `n` initialised mmsghdr whose name pointers point at the
    // `SockAddr`s and whose iovecs (in `iovecs`) point at the payloads, all borrowed by
    // `msgs` for this call; the kernel only reads through them (and writes `msg_len` in
    // `headers`, which we own). Neither vector is moved or resized during the call.
    let r = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), n, libc::MSG_DONTWAIT) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(usize::try_from(r).unwrap_or(0))
    }
}

/// Buffers and headers for `recvmmsg` calls on one socket.
pub(crate) struct RecvBatch {
    /// One buffer per datagram, each `size` bytes long.
    buffers: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// How many datagrams the last call returned.
    received: usize,
}

// SAFETY: the raw pointers in `iovecs` and `headers` point only into this struct's own
// heap buffers (`buffers`, `addrs`, `iovecs`), which do not move when the struct does, and
// are written afresh before each call; nothing else shares them.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Room for `count` datagrams (at least 1) of up to `size` bytes each. The buffers
    /// are zeroed lazily by the kernel (`calloc`): a page costs memory once a datagram
    /// that long arrived.
    pub(crate) fn new(count: usize, size: usize) -> RecvBatch {
        let count = count.max(1);
        RecvBatch {
            buffers: (0..count).map(|_| vec![0u8; size]).collect(),
            // SAFETY: all-zero is a valid value of these plain C structs.
            addrs: vec![unsafe { mem::zeroed() }; count],
            iovecs: vec![
                libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                };
                count
            ],
            // SAFETY: as above; the pointers in it are set before each call.
            headers: vec![unsafe { mem::zeroed() }; count],
            received: 0,
        }
    }

    /// Receives the datagrams waiting on the non-blocking socket `fd`, up to the batch's
    /// room, without waiting. Nothing waiting is `WouldBlock`; `Ok(n)` has `n ≥ 1`.
    pub(crate) fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received = 0;
        let count = self.headers.len();
        for i in 0..count {
            let (Some(buf), Some(iov), Some(addr), Some(h)) = (
                self.buffers.get_mut(i),
                self.iovecs.get_mut(i),
                self.addrs.get_mut(i),
                self.headers.get_mut(i),
            ) else {
                return Ok(0);
            };
            *iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            h.msg_hdr.msg_name = ptr::from_mut(addr).cast();
            h.msg_hdr.msg_namelen =
                libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_storage>()).unwrap_or(0);
            h.msg_hdr.msg_iov = ptr::from_mut(iov);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        let n = libc::c_uint::try_from(count).unwrap_or(1);
        // SAFETY: `headers` holds `count` initialised mmsghdr whose name and iovec pointers
        // point into `addrs`, `iovecs` and `buffers` (each buffer as long as its iovec
        // says), all of length `count`, owned by `self` and neither moved nor resized
        // during the call.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                n,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = usize::try_from(r).unwrap_or(0).min(count);
        Ok(self.received)
    }

    /// Datagram `i` of the last call: its bytes (cut to the buffer's size: a longer one
    /// has `truncated` set) and its source. `None` past the last one received.
    pub(crate) fn get(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.received {
            return None;
        }
        let h = self.headers.get(i)?;
        let buf = self.buffers.get(i)?;
        let storage = *self.addrs.get(i)?;
        let len = usize::try_from(h.msg_len).unwrap_or(usize::MAX);
        // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into this
        // `sockaddr_storage` (large and aligned enough for every address family).
        let source = unsafe { SockAddr::new(storage, h.msg_hdr.msg_namelen) }.as_socket();
        Some(Received {
            data: buf.get(..len.min(buf.len()))?,
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > buf.len(),
            source,
        })
    }
}

/// One datagram of a [`RecvBatch`].
pub(crate) struct Received<'a> {
    /// Its bytes.
    pub(crate) data: &'a [u8],
    /// True when it was longer than the buffer (and cut).
    pub(crate) truncated: bool,
    /// Where it came from (`None` for an address family other than IPv4 and IPv6).
    pub(crate) source: Option<SocketAddr>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_in_with_sources() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SockAddr::from(rx.local_addr().unwrap());
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let msgs: Vec<Outgoing<'_>> = payloads
            .iter()
            .map(|p| Outgoing { to: &to, data: p })
            .collect();
        assert_eq!(send(tx.as_raw_fd(), &msgs).unwrap(), 5);
        assert_eq!(send(tx.as_raw_fd(), &[]).unwrap(), 0);

        let mut batch = RecvBatch::new(3, 64);
        assert_eq!(batch.receive(rx.as_raw_fd()).unwrap(), 3);
        for i in 0..3u8 {
            let d = batch.get(usize::from(i)).unwrap();
            assert_eq!(d.data, &payloads[usize::from(i)][..]);
            assert!(!d.truncated);
            assert_eq!(d.source, Some(tx.local_addr().unwrap()));
        }
        assert!(batch.get(3).is_none());
        assert_eq!(batch.receive(rx.as_raw_fd()).unwrap(), 2);
        assert_eq!(batch.get(1).unwrap().data, &payloads[4][..]);
        assert!(batch.get(2).is_none());
        let e = batch.receive(rx.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(batch.get(0).is_none());
    }

    #[test]
    fn a_datagram_longer_than_its_buffer_is_marked_truncated() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[7u8; 100], rx.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(2, 16);
        assert_eq!(batch.receive(rx.as_raw_fd()).unwrap(), 1);
        let d = batch.get(0).unwrap();
        assert!(d.truncated);
        assert_eq!(d.data.len(), 16);
    }

    #[test]
    fn more_than_a_batch_is_sent_a_batch_at_a_time() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SockAddr::from(rx.local_addr().unwrap());
        let msgs: Vec<Outgoing<'_>> = (0..SEND_BATCH + 3)
            .map(|_| Outgoing {
                to: &to,
                data: b"x",
            })
            .collect();
        assert_eq!(send(tx.as_raw_fd(), &msgs).unwrap(), SEND_BATCH);
    }
}
