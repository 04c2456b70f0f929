//! `recvmmsg(2)`: up to a batch of datagrams from one socket in one system call.
//!
//! The only `unsafe` of the crate: the foreign call and the reading of the addresses the
//! kernel wrote. Every pointer handed to the kernel is set again before each call and
//! points into buffers this struct owns and keeps alive for the call.

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr;

/// Room for one datagram: more than the largest packet relayed (1500 bytes), so that a
/// longer one is seen as longer (and dropped as `oversize`) rather than cut.
pub(crate) const BUFFER: usize = 2048;

/// Buffers and headers for one `recvmmsg` call.
pub(crate) struct Batch {
    buffers: Vec<[u8; BUFFER]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Batch {
    /// Room for `n` datagrams (at least 1).
    pub(crate) fn new(n: usize) -> Batch {
        let n = n.max(1);
        Batch {
            buffers: vec![[0; BUFFER]; n],
            // SAFETY: all-zero is a valid value of these plain C structs.
            addrs: vec![unsafe { mem::zeroed() }; n],
            iovecs: vec![
                libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                };
                n
            ],
            // SAFETY: as above; the pointers in it are set before each call.
            headers: vec![unsafe { mem::zeroed() }; n],
        }
    }

    /// How many datagrams one call may return.
    pub(crate) fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// Receives up to [`Batch::capacity`] datagrams from `fd` without waiting; `Ok(0)`
    /// never happens (nothing waiting is `WouldBlock`).
    pub(crate) fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.headers.len();
        for i in 0..n {
            self.iovecs[i] = libc::iovec {
                iov_base: self.buffers[i].as_mut_ptr().cast(),
                iov_len: BUFFER,
            };
            let h = &mut self.headers[i];
            h.msg_hdr.msg_name = ptr::addr_of_mut!(self.addrs[i]).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = ptr::addr_of_mut!(self.iovecs[i]);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: `headers` holds `n` initialised mmsghdr whose name and iovec pointers
        // point into `addrs`, `iovecs` and `buffers`, all of length `n`, owned by `self`
        // and not moved during the call; the lengths given are those of the buffers.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// Datagram `i` of the last call: its bytes and its source.
    pub(crate) fn get(&mut self, i: usize) -> (&mut [u8], Option<SocketAddr>) {
        let len = (self.headers[i].msg_len as usize).min(BUFFER);
        let source = to_socket_addr(&self.addrs[i]);
        (&mut self.buffers[i][..len], source)
    }
}

pub(super) fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET); sockaddr_storage is
            // larger and aligned for every sockaddr type.
            let sin = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, a sockaddr_in6 (family AF_INET6).
            let sin6 = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn receives_a_batch_with_sources() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut batch = Batch::new(4);
        let e = batch.receive(rx.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        for i in 0..6u8 {
            tx.send_to(&[i; 10], to).unwrap();
        }
        tx.send_to(&[9; 3000], to).unwrap();
        let n = batch.receive(rx.as_raw_fd()).unwrap();
        assert_eq!(n, 4);
        for i in 0..n {
            let (data, src) = batch.get(i);
            assert_eq!(data, &[i as u8; 10]);
            assert_eq!(src, Some(tx.local_addr().unwrap()));
        }
        assert_eq!(batch.receive(rx.as_raw_fd()).unwrap(), 3);
        assert_eq!(batch.get(2).0.len(), BUFFER, "cut, so seen as too long");
    }
}
