//! The io_uring backend of the relay thread ([`ReceiveMode::Uring`](super::ReceiveMode)):
//! one `io_uring_enter` per loop turn submits every send of the turn and waits for what
//! arrived meanwhile.
//!
//! - Each socket has one multishot `recvmsg` (Linux 6.0) armed: the kernel receives a
//!   datagram as it arrives into a buffer it takes from a ring of provided buffers
//!   (`IORING_REGISTER_PBUF_RING`, 5.19) and posts a completion naming the buffer; no
//!   `epoll_wait`, no read call, no `WouldBlock` call per datagram.
//! - A datagram to forward is sent from the buffer it arrived in (`IORING_OP_SEND` with a
//!   destination address, 6.0); the buffer goes back to the ring when the send completes.
//!   A dropped datagram's buffer goes back at once.
//! - Commands wake the thread through mio's waker: a multishot poll on the `epoll` file
//!   that holds only the waker.
//! - Timers: the wait's timeout (`IORING_ENTER_EXT_ARG`, 5.11).
//! - Registered files (5.12, sparse table): a socket's file is registered in the slot of
//!   its port when first armed and unregistered when it closes, and its receive and sends
//!   name the slot (`IOSQE_FIXED_FILE`): no file lookup and reference count per send (4–5 %
//!   of the relay's CPU per packet in `fget` and `sock_from_file` before). Where the kernel
//!   refuses the table, or one registration, the descriptor is used as before.
//! - Coalesced wake-ups for a relay at real-time priority (Linux 6.12,
//!   `IORING_FEAT_MIN_TIMEOUT`, [`Uring::coalesce`]): while datagrams come closer together
//!   than [`COALESCE_US`], a wait sleeps that long before it returns with what arrived,
//!   unless [`COALESCE_WANT`] completions come first. Such a thread runs the moment anything
//!   arrives: without the window it woke for nearly every datagram (0.35–0.44 wake-ups per
//!   packet at 100,000 packets/s, 6.5–6.9 µs of CPU per packet against 5.1–6.0 with it).
//!   When they come further apart (a few calls), the window would only add a wake-up (the
//!   kernel sleeps it out, finds nothing, then waits for one completion): the waits are
//!   plain then. An ordinary thread needs no window (it gets the CPU a moment later and
//!   finds datagrams queued: 0.03–0.10 wake-ups per packet) and does without the added
//!   0.1 ms.
//!
//! Where any of this is missing (an older kernel, io_uring disabled by
//! `kernel.io_uring_disabled` or a seccomp filter), [`Uring::new`] fails and the thread
//! runs the `epoll` loop instead.
//!
//! `unsafe`: the ring of provided buffers is memory shared with the kernel (mapped here,
//! registered, written as the kernel's ABI says), and every pointer put in a submission
//! (the `msghdr` template, a buffer, a destination address) must stay valid until its
//! completion: all live in this struct, which outlives the ring's requests (the ring is
//! dropped, and its requests cancelled, before the memory is unmapped).

#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

/// The coalescing window of a wait, µs (see the module docs): a tenth of the 1 ms of added
/// jitter a relay may cost, far below a codec's 20-ms packet interval.
pub(super) const COALESCE_US: u32 = 100;

/// Completions that end a coalescing window early.
const COALESCE_WANT: usize = 64;

/// Whether the next wait coalesces, after a wait (`coalesced` or plain) that returned
/// `datagrams` after `slept`: a coalesced wait that gathered two datagrams or more keeps
/// coalescing, one that gathered fewer stops; a plain wait that returned a datagram
/// sooner than the window starts; a wait without datagrams (only sends done, a command,
/// a timer) changes nothing.
fn next_busy(
    coalesced: bool,
    datagrams: usize,
    slept: std::time::Duration,
    window_us: u32,
    busy: bool,
) -> bool {
    match (coalesced, datagrams) {
        (true, n) => n >= 2,
        (false, 0) => busy,
        (false, _) => slept < std::time::Duration::from_micros(u64::from(window_us)),
    }
}

/// Buffers in the provided ring (a power of two, at most 32768): datagrams received and
/// not yet sent or dropped. 4,096 × 2 KB = 8 MB, touched as used.
const BUFFERS: u16 = 4096;
/// One buffer: the kernel's `io_uring_recvmsg_out` header, the source address, the
/// datagram (room for more than the largest relayed, so that a longer one is seen as
/// longer and dropped as `oversize`).
const BUFFER: usize = 2048;
/// The buffer group id of the ring.
const GROUP: u16 = 0;
/// Submission queue entries; completion queue: 8 ×.
const ENTRIES: u32 = 1024;
/// `struct io_uring_recvmsg_out`: name length, control length, payload length, flags.
const OUT_HEADER: usize = 16;
/// The room for a source address in each buffer: a `sockaddr_in6` (IPv4 fits too).
const NAME: usize = mem::size_of::<libc::sockaddr_in6>();

/// What a completion is about: the top 2 bits of `user_data`.
const KIND_SHIFT: u32 = 62;
const RECV: u64 = 1;
const SEND: u64 = 2;
const WAKE: u64 = 3;

/// A completion, copied out of the queue so that the ring is free to take sends while it
/// is handled.
#[derive(Clone, Copy)]
pub(super) struct Completion {
    user_data: u64,
    result: i32,
    flags: u32,
}

/// What a completion says.
pub(super) enum Done {
    /// A datagram arrived on socket `slot` into buffer `buffer` (its payload and source
    /// through [`Uring::datagram`]); `rearm`: the socket's receive ended and must be armed
    /// again.
    Datagram {
        slot: usize,
        buffer: u16,
        rearm: bool,
    },
    /// The receive on `slot` ended without a datagram: arm it again if the socket is
    /// still open and `rearm` (for [`Ended::NoBuffer`]: once buffers are back,
    /// [`Uring::starved`]).
    RecvEnded {
        slot: usize,
        rearm: bool,
        why: Ended,
    },
    /// A send completed (`ok`: the datagram was taken by the kernel).
    Sent { ok: bool },
    /// The waker's poll fired (`rearm`: arm it again).
    Woken { rearm: bool },
}

/// Where a datagram lies in its buffer: (offset, length).
pub(super) type Place = (usize, usize);

/// A datagram received into a provided buffer.
pub(super) struct Received<'a> {
    /// Its bytes, writable for the relay's rewriting.
    pub(super) data: &'a mut [u8],
    /// Where they lie in the buffer (for [`Uring::send`]).
    pub(super) place: Place,
    /// Where it came from (`None`: an address family the relay does not know).
    pub(super) source: Option<SocketAddr>,
}

/// Why a receive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Every buffer was in use (`ENOBUFS`): the datagram waits in the socket.
    NoBuffer,
    /// Cancelled (its socket is being closed).
    Cancelled,
    /// Another error (counted as a receive error).
    Failed,
}

/// The ring, its provided buffers and the addresses of sends in flight.
pub(super) struct Uring {
    ring: IoUring,
    /// The provided-buffer ring (entries the kernel takes buffers from), `BUFFERS`
    /// entries, page-aligned (mmap).
    entries: *mut BufRingEntry,
    /// The buffers, `BUFFERS × BUFFER` bytes (mmap).
    memory: *mut u8,
    /// Our copy of the buffer ring's tail (the kernel reads the shared one).
    tail: u16,
    /// The `msghdr` template of the multishot receives: only `msg_namelen` is read.
    template: Box<libc::msghdr>,
    /// The destination of the send in flight from buffer `i`.
    destinations: Box<[libc::sockaddr_in6]>,
    /// Generation of the receive armed on each socket slot: a completion of an older one
    /// (a closed socket's) does not re-arm.
    generation: Vec<u16>,
    /// Completions of this turn.
    completions: Vec<Completion>,
    /// The epoll file of mio's poll (it holds only the waker).
    waker_fd: RawFd,
    /// Receives armed and not yet ended (each holds its socket's file).
    armed: usize,
    /// Buffers handed to us and not yet given back.
    in_use: usize,
    /// Sockets whose receive ended for want of a buffer, to be armed again once enough
    /// buffers are back (arming them at once would fail again, at the cost of a
    /// request set-up each, as long as every buffer is in use).
    starved: Vec<(usize, u16)>,
    /// The waker's poll is armed (else armed again before the next wait).
    waker_armed: bool,
    /// The coalescing window, µs (0: none, every completion wakes).
    coalesce_us: u32,
    /// Datagrams came close together at the last waits: the next wait coalesces.
    busy: bool,
    /// Per socket slot: its file is in the ring's file table (slot = index).
    registered: Vec<bool>,
    /// The ring has a file table of one entry per slot.
    files: bool,
}

impl Uring {
    /// A ring with its buffers registered and the waker's poll armed; fails where io_uring
    /// or one of the features used is not available.
    pub(super) fn new(slots: usize, waker_fd: RawFd) -> io::Result<Uring> {
        // Completions are posted only when this thread waits for them (`DEFER_TASKRUN`,
        // Linux ≥ 6.1): the kernel does not interrupt the thread's round to post them, which
        // took about a sixth of the CPU per relayed packet (`relay_io`, BENCHMARKS.md).
        // Older kernels get the cooperative mode instead.
        let ring = IoUring::builder()
            .setup_cqsize(8 * ENTRIES)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(ENTRIES)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(8 * ENTRIES)
                    .setup_coop_taskrun()
                    .setup_single_issuer()
                    .build(ENTRIES)
            })?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::other("io_uring without EXT_ARG (Linux < 5.11)"));
        }
        let entries_len = usize::from(BUFFERS) * mem::size_of::<BufRingEntry>();
        let entries = map(entries_len)?.cast::<BufRingEntry>();
        let memory = match map(usize::from(BUFFERS) * BUFFER) {
            Ok(m) => m,
            Err(e) => {
                unmap(entries.cast(), entries_len);
                return Err(e);
            }
        };
        // SAFETY: a zeroed msghdr is valid; the kernel reads msg_namelen and
        // msg_controllen from the template of a multishot recvmsg.
        let mut template: Box<libc::msghdr> = Box::new(unsafe { mem::zeroed() });
        template.msg_namelen = NAME as libc::socklen_t;
        let mut uring = Uring {
            ring,
            entries,
            memory,
            tail: 0,
            template,
            // SAFETY: all-zero is a valid sockaddr_in6.
            destinations: vec![unsafe { mem::zeroed() }; usize::from(BUFFERS)].into(),
            generation: vec![0; slots],
            completions: Vec::with_capacity(8 * ENTRIES as usize),
            waker_fd,
            armed: 0,
            in_use: 0,
            starved: Vec::with_capacity(slots),
            waker_armed: false,
            coalesce_us: 0,
            busy: false,
            registered: vec![false; slots],
            files: false,
        };
        uring.files = u32::try_from(slots)
            .ok()
            .is_some_and(|n| uring.ring.submitter().register_files_sparse(n).is_ok());
        // SAFETY: `entries` is page-aligned memory of BUFFERS entries that lives as long
        // as `uring`, whose Drop unregisters nothing but drops the ring first (the
        // kernel lets go of the buffer ring with the ring).
        unsafe {
            uring.ring.submitter().register_buf_ring_with_flags(
                entries as u64,
                BUFFERS,
                GROUP,
                0,
            )?;
        }
        for b in 0..BUFFERS {
            uring.provide(b);
        }
        uring.in_use = 0;
        uring.publish();
        uring.arm_waker()?;
        Ok(uring)
    }

    /// Arms the multishot receive of socket `slot` (file `fd`).
    pub(super) fn arm(&mut self, slot: usize, fd: RawFd) -> io::Result<()> {
        let Some(g) = self.generation.get_mut(slot) else {
            return Err(io::Error::other("socket slot out of range"));
        };
        *g = g.wrapping_add(1);
        let user_data = recv_data(slot, *g);
        let entry = match self.fixed(slot, fd) {
            Some(f) => opcode::RecvMsgMulti::new(f, &*self.template, GROUP).build(),
            None => opcode::RecvMsgMulti::new(Fd(fd), &*self.template, GROUP).build(),
        };
        self.push(&entry.user_data(user_data))?;
        self.armed += 1;
        Ok(())
    }

    /// Waits (at most 1 s) until every receive cancelled by [`Uring::disarm`] has ended,
    /// so that their sockets' ports are free when the thread stops: the kernel would
    /// otherwise let go of them only when it tears the ring down, later and elsewhere.
    pub(super) fn wait_disarmed(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.armed > 0 && std::time::Instant::now() < deadline {
            if self
                .submit_and_wait(Some(std::time::Duration::from_millis(10)))
                .is_err()
            {
                return;
            }
        }
    }

    /// Cancels the receive of socket `slot` before its socket is closed, and submits at
    /// once: the request holds the socket's file (its port stays bound) until cancelled.
    pub(super) fn disarm(&mut self, slot: usize) {
        let Some(&g) = self.generation.get(slot) else {
            return;
        };
        if let Some(g) = self.generation.get_mut(slot) {
            // A completion of the cancelled receive no longer matches.
            *g = g.wrapping_add(1);
        }
        let entry = opcode::AsyncCancel::new(recv_data(slot, g)).build();
        if self.push(&entry).is_ok() {
            let _ = self.ring.submit();
        }
        // The table's reference to the file goes too, or the port would stay bound.
        if let Some(r) = self.registered.get_mut(slot).filter(|r| **r) {
            *r = false;
            if let Ok(offset) = u32::try_from(slot) {
                let _ = self.ring.submitter().register_files_update(offset, &[-1]);
            }
        }
    }

    /// The registered file of `slot` (registering `fd` there first if it is not yet),
    /// `None` where the ring has no file table or the registration failed.
    fn fixed(&mut self, slot: usize, fd: RawFd) -> Option<Fixed> {
        if !self.files {
            return None;
        }
        let index = u32::try_from(slot).ok()?;
        let registered = self.registered.get_mut(slot)?;
        if !*registered {
            let ring = &self.ring;
            *registered = ring.submitter().register_files_update(index, &[fd]).ok() == Some(1);
        }
        registered.then_some(Fixed(index))
    }

    /// Queues the send of the datagram in `buffer` (`len` bytes from `offset`) from socket
    /// `slot` (file `fd`) to `to`; the buffer returns to the ring when it completes.
    pub(super) fn send(
        &mut self,
        slot: usize,
        fd: RawFd,
        buffer: u16,
        payload: Place,
        to: SocketAddr,
    ) -> io::Result<()> {
        let (offset, len) = payload;
        let b = usize::from(buffer);
        let Some(dest) = self.destinations.get_mut(b) else {
            return Err(io::Error::other("buffer id out of range"));
        };
        let dest_len = write_sockaddr(dest, to);
        let dest_ptr = ptr::from_ref(dest).cast::<libc::sockaddr>();
        // SAFETY: buffer `b` is ours (the kernel handed it over with the datagram) and
        // in bounds: offset + len <= BUFFER (checked by `datagram`).
        let data = unsafe { self.memory.add(b * BUFFER + offset) };
        let user_data = SEND << KIND_SHIFT | u64::from(buffer);
        let entry = match self.fixed(slot, fd) {
            Some(f) => opcode::Send::new(f, data, len as u32)
                .dest_addr(dest_ptr)
                .dest_addr_len(dest_len)
                .build(),
            None => opcode::Send::new(Fd(fd), data, len as u32)
                .dest_addr(dest_ptr)
                .dest_addr_len(dest_len)
                .build(),
        };
        self.push(&entry.user_data(user_data))
    }

    /// Makes each wait coalesce wake-ups over `us` µs (0: none); where the kernel cannot
    /// (before Linux 6.12) every completion keeps waking the thread.
    pub(super) fn coalesce(&mut self, us: u32) {
        let able = self.ring.params().is_feature_min_timeout();
        self.coalesce_us = if able { us } else { 0 };
    }

    /// Submits what is queued and waits for at least one completion or `timeout`
    /// (`None`: no limit; zero: do not wait); then copies the completions out.
    pub(super) fn submit_and_wait(
        &mut self,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<()> {
        if !self.waker_armed {
            let _ = self.arm_waker();
        }
        let coalesce =
            self.coalesce_us > 0 && self.busy && timeout != Some(std::time::Duration::ZERO);
        let started = (self.coalesce_us > 0).then(std::time::Instant::now);
        let (want, min_wait) = if coalesce {
            (COALESCE_WANT, self.coalesce_us)
        } else {
            (1, 0)
        };
        let r = match timeout {
            None if !coalesce => self.ring.submit_and_wait(1),
            None => {
                let args = SubmitArgs::new().min_wait_usec(min_wait);
                self.ring.submitter().submit_with_args(want, &args)
            }
            // A zero timeout too goes through GETEVENTS: with `DEFER_TASKRUN` the ring posts
            // completions only there.
            Some(t) => {
                let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                let args = SubmitArgs::new().min_wait_usec(min_wait).timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
        };
        match r {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::ETIME)
                    || e.raw_os_error() == Some(libc::EINTR)
                    || e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        self.completions.clear();
        let mut datagrams = 0usize;
        for c in self.ring.completion() {
            if c.user_data() >> KIND_SHIFT == RECV {
                if !cqueue::more(c.flags()) {
                    self.armed = self.armed.saturating_sub(1);
                }
                if cqueue::buffer_select(c.flags()).is_some() {
                    self.in_use += 1;
                    datagrams += 1;
                }
            }
            self.completions.push(Completion {
                user_data: c.user_data(),
                result: c.result(),
                flags: c.flags(),
            });
        }
        if let Some(started) = started {
            self.busy = next_busy(
                coalesce,
                datagrams,
                started.elapsed(),
                self.coalesce_us,
                self.busy,
            );
        }
        Ok(())
    }

    /// How many completions the last wait copied out.
    pub(super) fn completed(&self) -> usize {
        self.completions.len()
    }

    /// Completion `i` of the last wait, decoded; `None` for one this backend ignores (a
    /// cancellation's own result).
    pub(super) fn completion(&self, i: usize) -> Option<Done> {
        let c = *self.completions.get(i)?;
        let more = cqueue::more(c.flags);
        match c.user_data >> KIND_SHIFT {
            RECV => {
                let slot = (c.user_data & 0xffff_ffff) as usize;
                let generation = ((c.user_data >> 32) & 0xffff) as u16;
                let current = self.generation.get(slot) == Some(&generation);
                let rearm = !more && current;
                match cqueue::buffer_select(c.flags) {
                    Some(buffer) if c.result >= 0 => Some(Done::Datagram {
                        slot,
                        buffer,
                        rearm,
                    }),
                    _ => Some(Done::RecvEnded {
                        slot,
                        rearm,
                        why: match -c.result {
                            libc::ENOBUFS => Ended::NoBuffer,
                            libc::ECANCELED => Ended::Cancelled,
                            _ => Ended::Failed,
                        },
                    }),
                }
            }
            SEND => Some(Done::Sent { ok: c.result >= 0 }),
            WAKE => Some(Done::Woken { rearm: !more }),
            _ => None,
        }
    }

    /// The buffer of completion `i`, when it carries one (for giving it back).
    pub(super) fn completion_buffer(&self, i: usize) -> Option<u16> {
        let c = self.completions.get(i)?;
        let kind = c.user_data >> KIND_SHIFT;
        match kind {
            RECV => cqueue::buffer_select(c.flags),
            SEND => Some((c.user_data & 0xffff) as u16),
            _ => None,
        }
    }

    /// The length of completion `i`'s result (bytes the kernel wrote into its buffer).
    fn written(&self, i: usize) -> usize {
        self.completions
            .get(i)
            .map_or(0, |c| usize::try_from(c.result).unwrap_or(0))
    }

    /// Datagram of completion `i` in `buffer`: its bytes (writable, for the relay's
    /// rewriting), its place in the buffer (for [`Uring::send`]) and its source.
    pub(super) fn datagram(&mut self, i: usize, buffer: u16) -> Option<Received<'_>> {
        let written = self.written(i).min(BUFFER);
        let b = usize::from(buffer);
        if b >= usize::from(BUFFERS) || written < OUT_HEADER + NAME {
            return None;
        }
        // SAFETY: buffer `b` lies inside `memory` (b < BUFFERS) and is ours until given
        // back: the kernel wrote `written` bytes and handed it over in this completion.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.memory.add(b * BUFFER), BUFFER) };
        let name_len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let control_len = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let offset = OUT_HEADER + NAME + control_len;
        if offset > written {
            return None;
        }
        // SAFETY: all-zero is a valid sockaddr_storage; the name the kernel wrote is at
        // most NAME bytes (the template's msg_namelen), copied into the larger storage.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let n = name_len.min(NAME);
        // SAFETY: `n` <= NAME <= size_of::<sockaddr_storage>() and the source range lies
        // in `bytes`; the two do not overlap.
        unsafe {
            ptr::copy_nonoverlapping(
                bytes.as_ptr().add(OUT_HEADER),
                ptr::addr_of_mut!(storage).cast::<u8>(),
                n,
            );
        }
        let source = super::mmsg::to_socket_addr(&storage);
        let len = written - offset;
        Some(Received {
            data: &mut bytes[offset..written],
            place: (offset, len),
            source,
        })
    }

    /// Gives `buffer` back to the kernel (visible at the next [`Uring::publish`]).
    pub(super) fn provide(&mut self, buffer: u16) {
        let mask = BUFFERS - 1;
        let i = usize::from(self.tail & mask);
        // SAFETY: `i` < BUFFERS: an entry of the mapped ring, which only we write between
        // head and tail (the kernel reads entries up to the published tail).
        let entry = unsafe { &mut *self.entries.add(i) };
        // SAFETY: the buffer's address inside `memory` (buffer < BUFFERS by its origin:
        // this struct's ids).
        let addr = unsafe { self.memory.add(usize::from(buffer) * BUFFER) };
        entry.set_addr(addr as u64);
        entry.set_len(BUFFER as u32);
        entry.set_bid(buffer);
        self.tail = self.tail.wrapping_add(1);
        self.in_use = self.in_use.saturating_sub(1);
    }

    /// Notes that socket `slot` waits for buffers.
    pub(super) fn starve(&mut self, slot: usize) {
        if let Some(&g) = self.generation.get(slot) {
            self.starved.push((slot, g));
        }
    }

    /// How many sockets wait for buffers.
    pub(super) fn starving(&self) -> usize {
        self.starved.len()
    }

    /// The next socket to arm again now that at least a quarter of the buffers are free
    /// (`None`: none waits, or too few are free yet).
    pub(super) fn starved(&mut self) -> Option<usize> {
        if self.in_use > usize::from(BUFFERS) * 3 / 4 {
            return None;
        }
        while let Some((slot, g)) = self.starved.pop() {
            // Its socket closed (and perhaps another opened and armed there) meanwhile.
            if self.generation.get(slot) == Some(&g) {
                return Some(slot);
            }
        }
        None
    }

    /// Publishes the buffers given back since the last call (one release store).
    pub(super) fn publish(&mut self) {
        // SAFETY: the tail field of the ring (the `resv` of entry 0), a u16 the kernel
        // reads with acquire ordering; aligned (offset 14 of a page-aligned map).
        let tail = unsafe { &*BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// Arms the multishot poll on the waker's epoll file.
    pub(super) fn arm_waker(&mut self) -> io::Result<()> {
        let entry = opcode::PollAdd::new(Fd(self.waker_fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(WAKE << KIND_SHIFT);
        let armed = self.push(&entry);
        self.waker_armed = armed.is_ok();
        armed
    }

    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: every pointer in the entries built here stays valid until their
            // completion (see the module doc).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            // Full: hand what is queued to the kernel, then there is room.
            self.ring.submit()?;
        }
        Err(io::Error::other("io_uring submission queue full"))
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // The ring's requests and its registration of the buffer ring end with its file:
        // replace it with a tiny ring first (dropping the old one), then unmap.
        if let Ok(small) = IoUring::new(1) {
            drop(mem::replace(&mut self.ring, small));
            unmap(
                self.entries.cast(),
                usize::from(BUFFERS) * mem::size_of::<BufRingEntry>(),
            );
            unmap(self.memory, usize::from(BUFFERS) * BUFFER);
        }
        // Without a replacement ring the memory is left mapped (never freed while the
        // kernel may still write it).
    }
}

fn recv_data(slot: usize, generation: u16) -> u64 {
    RECV << KIND_SHIFT | u64::from(generation) << 32 | (slot as u64 & 0xffff_ffff)
}

/// Writes `to` into `dest`; its length.
fn write_sockaddr(dest: &mut libc::sockaddr_in6, to: SocketAddr) -> libc::socklen_t {
    match to {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is smaller than sockaddr_in6 and of no stricter
            // alignment; all-zero is valid for both.
            let sin = unsafe { &mut *ptr::from_mut(dest).cast::<libc::sockaddr_in>() };
            *sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            *dest = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Anonymous, page-aligned, zeroed memory of `len` bytes.
fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping with no address hint; checked for failure.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

fn unmap(p: *mut u8, len: usize) {
    // SAFETY: `p` and `len` are those of a mapping made by `map`, no longer used.
    unsafe {
        libc::munmap(p.cast(), len);
    }
}

#[cfg(test)]
mod tests {
    use super::next_busy;
    use std::time::Duration;

    #[test]
    fn waits_coalesce_while_datagrams_come_closer_than_the_window() {
        let us = Duration::from_micros;
        // Plain waits: a datagram within the window starts coalescing, a later one not.
        assert!(next_busy(false, 1, us(20), 100, false));
        assert!(!next_busy(false, 1, us(400), 100, true));
        // Only sends done (no datagram): unchanged, whatever the time.
        assert!(next_busy(false, 0, us(0), 100, true));
        assert!(!next_busy(false, 0, us(0), 100, false));
        // Coalesced waits: two datagrams or more keep it, fewer end it.
        assert!(next_busy(true, 5, us(100), 100, true));
        assert!(!next_busy(true, 1, us(900), 100, true));
        assert!(!next_busy(true, 0, us(100), 100, true));
    }
}
