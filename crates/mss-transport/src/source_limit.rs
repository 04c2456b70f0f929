//! A per-source request limit at the UDP receive loop: a datagram from an address that
//! already sent its share this second is dropped right after `recv`, before it is copied,
//! queued for the worker or parsed ([`SourceLimit`], [`SourceTable`]).
//!
//! Why here and not only in the ban table (`mss_services::bans`, which limits each
//! address's request rate precisely and bans sustained offenders): the worker and the
//! receive loop share one thread, and every datagram that reaches the worker costs a copy,
//! a channel slot and a wake-up. One address flooding at many times the server's capacity
//! fills the socket's kernel buffer and the channel, and then the kernel or the channel
//! drops datagrams of every address alike: a phone on another address loses as large a
//! share of its requests as the flood has of the traffic. Dropping the flood here, at the
//! cost of a hash and a compare, keeps the socket drained and leaves the room to everyone
//! else. The limit is coarser and higher than the ban table's (see
//! [`SourceLimit::per_second`]) so that what passes still shows the ban table that the
//! address is over its rate, and sustained floods get banned there.
//!
//! Two rules, both only for requests (a datagram starting with `SIP/` is a response to our
//! own request and always passes; anything else, garbage included, counts):
//!
//! - **The rate**: an address may send [`SourceLimit::per_second`] requests in one second
//!   (a fixed window); the rest of that second's are dropped. Addresses the configuration
//!   exempts ([`SourceLimit::exempt`], loopback by default) are not held to it.
//! - **Fair share under a backlog**: while the socket is backlogged (the receive loop read
//!   at least [`BACKLOG_STREAK`] datagrams in a row without the socket running empty, and
//!   at least that many wait in its kernel queue, measured with `SO_MEMINFO`
//!   (`queue_depth.rs`): the server is not keeping up)
//!   and more than one address sent requests within the last [`RECENT_WINDOWS`] seconds,
//!   requests of an address that sent [`BACKLOG_STREAK`] more requests this second than all
//!   the others together are dropped, exempt or not. While the backlog is deep
//!   ([`DEEP_BACKLOG_STREAK`] read in a row and waiting: the kernel's buffer is half
//!   full, and once full it drops what arrives, other senders' datagrams too, before
//!   anyone could see them), this applies even when no other sender was seen: the queue
//!   then stays below the kernel's limit, so a phone that starts while a flood fills the
//!   buffer is read in its turn and counts as present from then on. The heaviest sender
//!   loses what the server cannot take anyway, everyone else keeps getting through; as
//!   soon as the backlog is gone, its requests pass again, so it still gets whatever
//!   capacity is left. A single client (a proxy in front of mss, a benchmark tool) is
//!   held back by this rule only while the backlog is deep, never for longer: the rule
//!   once held a lone sender back at any backlog for the rest of the second after a deep
//!   one and the whole next second, and a stall of a few milliseconds under a steady
//!   5,600 calls/s from one address then cost it 17,000 requests (issue 14).
//!
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

/// Slots of a [`SourceTable`] (a power of two): 32 bytes each, 128 KiB per UDP socket.
pub const SOURCE_SLOTS: usize = 4096;

/// Length of a counting window, milliseconds.
const WINDOW_MS: u64 = 1000;

/// Datagrams waiting in the socket's kernel queue from which it counts as backlogged.
pub const BACKLOG_STREAK: usize = 64;

/// Datagrams waiting in the socket's kernel queue from which the backlog counts as deep:
/// about half of a 4 MiB socket buffer (the kernel grants 8 MiB and charges a datagram
/// 1,280–2,304 bytes, `queue_depth.rs`).
pub const DEEP_BACKLOG_STREAK: usize = 2048;

/// Windows (seconds) over which other senders count as present for the fair-share rule.
pub const RECENT_WINDOWS: usize = 8;

/// Which addresses are never limited (the configuration's ignore list).
#[derive(Clone)]
pub struct Exempt(Arc<dyn Fn(IpAddr) -> bool + Send + Sync>);

impl Exempt {
    /// Exempts the addresses for which `f` is true.
    pub fn new(f: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> Exempt {
        Exempt(Arc::new(f))
    }

    /// No address is exempt.
    pub fn none() -> Exempt {
        Exempt::new(|_| false)
    }

    /// Whether `ip` is exempt.
    pub fn contains(&self, ip: IpAddr) -> bool {
        (self.0)(ip)
    }
}

impl fmt::Debug for Exempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exempt(..)")
    }
}

/// The per-source limit of the UDP receive loops
/// ([`TransportConfig::udp_source_limit`](crate::TransportConfig::udp_source_limit)).
#[derive(Debug, Clone)]
pub struct SourceLimit {
    /// Requests one address may send in one second (a fixed window); the rest of that
    /// second's requests are dropped and counted
    /// (`TransportStats::udp_source_limited`). mss sets it to four times the ban table's
    /// `rate_limit`, above what the ban table lets through in any second (its rate plus
    /// its burst), so this limit never stops what the ban table would pass.
    pub per_second: u32,
    /// Addresses never limited.
    pub exempt: Exempt,
}

/// One address's count in the current window.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The address (IPv4 as an IPv4-mapped IPv6 address, IPv6 cut to its /64); 0 for a
    /// free slot (`::` never sends).
    key: u128,
    /// The window the count belongs to (milliseconds since the table's start ÷ window).
    window: u64,
    /// Requests counted in that window.
    count: u32,
}

/// The fixed-size table of one receive loop (sans-IO: the time and the backlog are
/// inputs).
#[derive(Debug)]
pub struct SourceTable {
    slots: Box<[Slot]>,
    hasher: RandomState,
    limit: SourceLimit,
    /// The current window.
    window: u64,
    /// Requests counted in the current window, all addresses.
    total: u32,
    /// Addresses that started a count, per window of the last [`RECENT_WINDOWS`]:
    /// `(window, count)`.
    sources: [(u64, u32); RECENT_WINDOWS],
}

impl SourceTable {
    /// A table of [`SOURCE_SLOTS`] slots for `limit`.
    pub fn new(limit: SourceLimit) -> SourceTable {
        SourceTable::with_slots(limit, SOURCE_SLOTS)
    }

    /// A table of `slots` slots (rounded up to a power of two, at least one).
    pub fn with_slots(limit: SourceLimit, slots: usize) -> SourceTable {
        let n = slots.max(1).next_power_of_two();
        SourceTable {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            hasher: RandomState::new(),
            limit,
            window: 0,
            total: 0,
            sources: [(0, 0); RECENT_WINDOWS],
        }
    }

    /// The most addresses that started a count in one of the last [`RECENT_WINDOWS`]
    /// windows (an address whose slot was taken over in between counts again).
    fn recent_sources(&self) -> u32 {
        let oldest = self.window.saturating_sub(RECENT_WINDOWS as u64 - 1);
        self.sources
            .iter()
            .filter(|(w, _)| *w >= oldest)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    }

    /// Counts one more address in the current window.
    fn count_source(&mut self) {
        let window = self.window;
        // `RECENT_WINDOWS` is small: the remainder fits.
        #[allow(clippy::cast_possible_truncation)]
        let i = (window % RECENT_WINDOWS as u64) as usize;
        if let Some(entry) = self.sources.get_mut(i) {
            if entry.0 != window {
                *entry = (window, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }

    /// Number of slots (fixed at creation).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether the datagram `payload` from `ip`, arriving `now_ms` milliseconds after
    /// some fixed start, may be handed on; `false` drops it. `depth` is the backlog the
    /// receive loop sees: the smaller of the datagrams it read since the socket last ran
    /// empty and those waiting in the socket's kernel queue.
    pub fn admit(&mut self, now_ms: u64, ip: IpAddr, payload: &[u8], depth: usize) -> bool {
        if self.limit.per_second == 0 || payload.starts_with(b"SIP/") {
            return true;
        }
        let window = now_ms / WINDOW_MS;
        if window != self.window {
            self.window = window;
            self.total = 0;
        }
        self.total = self.total.saturating_add(1);
        let key = source_key(ip);
        let mask = self.slots.len() - 1;
        // Truncating the hash to the index width is the point.
        #[allow(clippy::cast_possible_truncation)]
        let index = (self.hasher.hash_one(key) as usize) & mask;
        let Some(slot) = self.slots.get_mut(index) else {
            return true;
        };
        let fresh = slot.key != key || slot.window != window;
        if fresh {
            // A new address takes the slot over, or a new second begins.
            *slot = Slot {
                key,
                window,
                count: 0,
            };
        }
        slot.count = slot.count.saturating_add(1);
        let count = slot.count;
        if fresh {
            self.count_source();
        }
        // The heaviest sender while the socket is backlogged and others are waiting: more
        // than a backlog's worth of requests ahead of all the others together this second.
        // A deep backlog counts as others waiting (those the kernel is about to drop).
        if depth >= BACKLOG_STREAK
            && u64::from(count) * 2 > u64::from(self.total) + 2 * BACKLOG_STREAK as u64
            && (depth >= DEEP_BACKLOG_STREAK || self.recent_sources() >= 2)
        {
            return false;
        }
        // The rate; exempt addresses (checked only here, off the common path) pass.
        count <= self.limit.per_second || self.limit.exempt.contains(ip)
    }
}

/// What is counted as one source: an IPv4 address, or an IPv6 /64 (one subscriber's
/// prefix, as the ban table counts).
fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const REQ: &[u8] = b"REGISTER sip:mss SIP/2.0\r\n";

    fn table(per_second: u32) -> SourceTable {
        SourceTable::new(SourceLimit {
            per_second,
            exempt: Exempt::none(),
        })
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn a_source_gets_its_share_per_second_then_is_dropped_until_the_next() {
        let mut t = table(10);
        let flood = v4(192, 0, 2, 1);
        let passed = (0..1000).filter(|_| t.admit(5, flood, REQ, 0)).count();
        assert_eq!(passed, 10);
        // The same second, later: still over.
        assert!(!t.admit(999, flood, REQ, 0));
        // The next second: a new share.
        let passed = (0..1000).filter(|_| t.admit(1000, flood, REQ, 0)).count();
        assert_eq!(passed, 10);
    }

    #[test]
    fn one_flooding_source_does_not_limit_another() {
        let mut t = table(10);
        let flood = v4(192, 0, 2, 1);
        let phone = v4(192, 0, 2, 2);
        let mut phone_passed = 0;
        for i in 0..100_000u64 {
            t.admit(i / 100, flood, REQ, 0);
            if i % 10_000 == 0 && t.admit(i / 100, phone, REQ, 0) {
                phone_passed += 1;
            }
        }
        assert_eq!(phone_passed, 10);
    }

    #[test]
    fn responses_are_never_limited() {
        let mut t = table(1);
        let peer = v4(198, 51, 100, 7);
        assert!(t.admit(0, peer, REQ, 0));
        assert!(!t.admit(0, peer, REQ, 0));
        assert!(t.admit(0, peer, b"SIP/2.0 200 OK\r\n", DEEP_BACKLOG_STREAK));
        // Garbage counts as a request.
        assert!(!t.admit(0, peer, b"\x00\x01garbage", 0));
    }

    #[test]
    fn zero_means_no_limit() {
        let mut t = table(0);
        let peer = v4(198, 51, 100, 7);
        assert!((0..10_000).all(|_| t.admit(0, peer, REQ, 0)));
    }

    #[test]
    fn exempt_addresses_always_pass() {
        let mut t = SourceTable::new(SourceLimit {
            per_second: 2,
            exempt: Exempt::new(|ip| ip.is_loopback()),
        });
        let lo = v4(127, 0, 0, 1);
        assert!((0..10_000).all(|_| t.admit(0, lo, REQ, 0)));
        let other = v4(203, 0, 113, 1);
        assert_eq!((0..10).filter(|_| t.admit(0, other, REQ, 0)).count(), 2);
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_source() {
        let mut t = table(5);
        let passed = (0..100u16)
            .filter(|&i| {
                let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
                t.admit(0, ip, REQ, 0)
            })
            .count();
        assert_eq!(passed, 5);
    }

    /// A flood from a million distinct addresses: the table keeps its size, every datagram
    /// gets an answer (each new address passes once: it cannot be told apart from a new
    /// phone here; the ban table and the transaction caps bound what follows), nothing
    /// panics, and a source that stays over its limit is still limited afterwards.
    #[test]
    fn a_million_distinct_sources_do_not_grow_the_table() {
        let mut t = table(10);
        let slots = t.capacity();
        let mut passed = 0u64;
        for n in 0..1_000_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n));
            if t.admit(u64::from(n) / 1000, ip, REQ, 0) {
                passed += 1;
            }
        }
        assert_eq!(passed, 1_000_000);
        assert_eq!(t.capacity(), slots);
        assert_eq!(t.slots.len(), SOURCE_SLOTS);
        let flood = v4(192, 0, 2, 1);
        let now = 2_000_000;
        assert_eq!((0..100).filter(|_| t.admit(now, flood, REQ, 0)).count(), 10);
    }

    #[test]
    fn under_a_backlog_the_heaviest_sender_gives_way_to_the_others() {
        let mut t = SourceTable::new(SourceLimit {
            per_second: 400,
            exempt: Exempt::new(|ip| ip.is_loopback()),
        });
        let flood = v4(127, 0, 0, 1);
        let phone = v4(127, 0, 0, 2);
        // Alone, the flood is exempt: all of it passes, backlog or not.
        assert!((0..5_000).all(|i| t.admit(1_000, flood, REQ, (i % 2) * BACKLOG_STREAK)));
        // The phone shows up: from now on, while backlogged, the flood is dropped …
        assert!(t.admit(1_100, phone, REQ, BACKLOG_STREAK));
        assert!(!t.admit(1_100, flood, REQ, BACKLOG_STREAK));
        // … but not while the socket is drained.
        assert!(t.admit(1_100, flood, REQ, 0));
        // The phone itself always passes, backlog or not.
        assert!((0..20).all(|_| t.admit(1_200, phone, REQ, BACKLOG_STREAK)));
        // Seconds later (the phone still counts as recent), the same once the flood is
        // more than a backlog's worth ahead of the others.
        let passed = (0..10_000)
            .filter(|_| t.admit(5_000, flood, REQ, BACKLOG_STREAK))
            .count();
        assert_eq!(passed, 2 * BACKLOG_STREAK);
        assert!(t.admit(5_000, phone, REQ, BACKLOG_STREAK));
        // Once the phone has been quiet for longer than RECENT_WINDOWS, the flood is alone.
        let later = 5_000 + 1_000 * RECENT_WINDOWS as u64 + 1_000;
        assert!((0..1_000).all(|_| t.admit(later, flood, REQ, BACKLOG_STREAK)));
    }

    #[test]
    fn under_a_backlog_two_equal_senders_both_pass() {
        let mut t = table(1_000_000);
        let a = v4(192, 0, 2, 1);
        let b = v4(192, 0, 2, 2);
        let mut passed = 0;
        for _ in 0..1_000 {
            passed += usize::from(t.admit(0, a, REQ, BACKLOG_STREAK));
            passed += usize::from(t.admit(0, b, REQ, BACKLOG_STREAK));
        }
        // Neither is ever far ahead of the other.
        assert_eq!(passed, 2_000);
    }

    #[test]
    fn a_deep_backlog_holds_back_a_sender_seen_alone() {
        let mut t = SourceTable::new(SourceLimit {
            per_second: 400,
            exempt: Exempt::new(|ip| ip.is_loopback()),
        });
        let flood = v4(127, 0, 0, 1);
        // Backlogged but not deep, and alone: all passes (a single client keeps its rate).
        assert!((0..3_000).all(|_| t.admit(0, flood, REQ, BACKLOG_STREAK)));
        // Deep: the kernel is about to drop what arrives; the flood gives way even alone …
        assert!((0..1_000).all(|_| !t.admit(0, flood, REQ, DEEP_BACKLOG_STREAK)));
        // … passes again once the socket ran empty …
        assert!(t.admit(0, flood, REQ, 1));
        // … and at an ordinary backlog, in this second and the next: a stall that let the
        // queue run deep for a moment costs a lone client nothing once it is over.
        assert!((0..1_000).all(|_| t.admit(0, flood, REQ, BACKLOG_STREAK)));
        assert!((0..1_000).all(|_| t.admit(1_500, flood, REQ, BACKLOG_STREAK + 1)));
        // A second sender makes the ordinary backlog count again: the flood, far ahead,
        // gives way.
        assert!(t.admit(1_600, v4(192, 0, 2, 7), REQ, BACKLOG_STREAK));
        assert!(!t.admit(1_600, flood, REQ, BACKLOG_STREAK));
    }
}
