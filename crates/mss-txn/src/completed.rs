//! Compact Completed non-INVITE server transactions over unreliable transports.
//!
//! RFC 3261 §17.2.2 keeps such a transaction in Completed for Timer J (64·T1, 32 s) only to
//! answer request retransmissions (matched by §17.2.3) with its final response. All it
//! needs then is that response, where to send it, and when it expires. Timer J is the same
//! for every one of them, so they expire in the order they completed: a FIFO of compact
//! entries replaces the slab slot and the timer-heap entry. The key index points at an entry
//! by its sequence number ([`KeyEntry::Completed`]).
//!
//! Their memory is bounded twice: by count ([`crate::Config::max_completed`], any method)
//! and by bytes ([`crate::Config::completed_budget`]), which ends the oldest Completed
//! REGISTERs early; [`CompletedQueues`] says why only those.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use mss_sip::{Flow, Method};

use crate::output::Event;
use crate::slab::SlotId;
use crate::transactions::{server_id, Transactions, Txn};
use crate::TransactionKey;

/// What the key index holds for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyEntry {
    /// A transaction in the slab.
    Live(SlotId),
    /// A compact Completed server transaction, by sequence number in [`CompletedQueue`].
    Completed(u64),
}

/// One compact Completed server transaction.
#[derive(Debug)]
pub(crate) struct Completed {
    /// Its key, compared by lookups and hashed to leave the key index when it expires.
    pub(crate) key: TransactionKey,
    /// The id it had while live; reported in `Event::Terminated` and on its retransmissions
    /// (the driver may route by it).
    pub(crate) id: SlotId,
    /// Where the final response went (§18.2.2).
    pub(crate) flow: Flow,
    /// The local address it left from, when the TU named one.
    pub(crate) local: Option<SocketAddr>,
    /// The final response as sent.
    pub(crate) response: Bytes,
    /// When Timer J fires.
    pub(crate) expires: Instant,
}

/// A queue this small keeps its capacity.
const MIN_SHRINK_CAPACITY: usize = 1024;

/// What an entry is charged against [`crate::Config::completed_budget`] besides its
/// response and key bytes: the entry itself and its slot in the key index (its hash and
/// [`KeyEntry`]). Container slack (the queue's and the index's spare capacity, up to as
/// much again) and the allocator's rounding come on top.
const ENTRY_OVERHEAD: usize =
    std::mem::size_of::<Completed>() + std::mem::size_of::<(u64, KeyEntry)>();

impl Completed {
    /// The bytes this entry is charged against the budget (see [`ENTRY_OVERHEAD`]).
    fn charge(&self) -> usize {
        ENTRY_OVERHEAD + self.response.len() + self.key.heap_len()
    }
}

/// The FIFO of compact Completed transactions, in order of expiry.
#[derive(Debug, Default)]
pub(crate) struct CompletedQueue {
    entries: VecDeque<Completed>,
    /// The sequence number of the front entry.
    head: u64,
}

impl CompletedQueue {
    /// Appends an entry; its expiry must not be earlier than the last one's (Timer J is
    /// the same for all and time never goes backwards). Returns its sequence number.
    pub(crate) fn push(&mut self, entry: Completed) -> u64 {
        let seq = self.head.wrapping_add(self.entries.len() as u64);
        self.entries.push_back(entry);
        seq
    }

    /// The entry with sequence number `seq`, if still queued.
    pub(crate) fn get(&self, seq: u64) -> Option<&Completed> {
        let index = usize::try_from(seq.checked_sub(self.head)?).ok()?;
        self.entries.get(index)
    }

    /// The earliest expiry.
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.entries.front().map(|e| e.expires)
    }

    /// Removes and returns the front entry with its sequence number if it expired by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u64, Completed)> {
        if self.peek()? > now {
            return None;
        }
        self.pop_front()
    }

    /// Removes and returns the front entry with its sequence number, due or not; gives
    /// back most of the queue's memory when a burst left it mostly empty.
    pub(crate) fn pop_front(&mut self) -> Option<(u64, Completed)> {
        let entry = self.entries.pop_front()?;
        let seq = self.head;
        self.head = self.head.wrapping_add(1);
        let capacity = self.entries.capacity();
        if capacity > MIN_SHRINK_CAPACITY && self.entries.len().saturating_mul(4) < capacity {
            self.entries.shrink_to(self.entries.len().saturating_mul(2));
        }
        Some((seq, entry))
    }

    /// The number of queued entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Which of the two queues of [`CompletedQueues`] an entry is in; the low bit of the
/// sequence numbers the key index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// REGISTER: may end before Timer J to keep the budget.
    Endable = 0,
    /// Every other method: ends at Timer J, or early only under `max_completed`.
    Kept = 1,
}

/// The compact Completed transactions, in two FIFOs by whether they may end before Timer
/// J to keep [`crate::Config::completed_budget`], and the bytes they are charged.
///
/// A retransmission of the request of one ended early is absorbed until its Timer J
/// (`ended.rs`), but that table is lossy (a newer early end can take a key's slot), and a
/// retransmission may then be handled as a new request. That is safe for REGISTER, the
/// bulk of them: a registrar that
/// challenges answers the retransmitted credentials (the same nonce and `nc`) as a replay,
/// `401` with `stale=true` (RFC 7616 §3.4, §5.5; mss-auth `replay.rs`), which a client whose
/// transaction already ended ignores and one whose `200` was lost answers with a fresh
/// nonce, so the binding is written once per registration; an unchallenged REGISTER repeats
/// the same binding change. A MESSAGE handled twice would be delivered twice (a line's
/// provider is not challenged and nothing else removes duplicates), a request within a
/// dialog (`REFER`, `INFO`) acted on twice: those are never ended by the budget. INVITE
/// server transactions are never compact at all.
#[derive(Debug, Default)]
pub(crate) struct CompletedQueues {
    endable: CompletedQueue,
    kept: CompletedQueue,
    /// What the queued entries are charged, both lanes.
    bytes: usize,
}

impl CompletedQueues {
    /// Appends an entry to the lane its method belongs in; returns the sequence number the
    /// key index files it under.
    pub(crate) fn push(&mut self, entry: Completed) -> u64 {
        self.bytes += entry.charge();
        if *entry.key.method() == Method::Register {
            encode(Lane::Endable, self.endable.push(entry))
        } else {
            encode(Lane::Kept, self.kept.push(entry))
        }
    }

    /// The entry filed under `seq`, if still queued.
    pub(crate) fn get(&self, seq: u64) -> Option<&Completed> {
        match decode(seq) {
            (Lane::Endable, n) => self.endable.get(n),
            (Lane::Kept, n) => self.kept.get(n),
        }
    }

    /// The earliest expiry.
    pub(crate) fn peek(&self) -> Option<Instant> {
        match (self.endable.peek(), self.kept.peek()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns an entry that expired by `now`, with its sequence number.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u64, Completed)> {
        let popped = match self.endable.pop_due(now) {
            Some((n, c)) => (encode(Lane::Endable, n), c),
            None => {
                let (n, c) = self.kept.pop_due(now)?;
                (encode(Lane::Kept, n), c)
            }
        };
        Some(self.uncharge(popped))
    }

    /// Removes and returns the entry that would expire first, either lane.
    pub(crate) fn pop_oldest(&mut self) -> Option<(u64, Completed)> {
        let endable_first = match (self.endable.peek(), self.kept.peek()) {
            (Some(a), Some(b)) => a <= b,
            (a, _) => a.is_some(),
        };
        let popped = if endable_first {
            self.endable
                .pop_front()
                .map(|(n, c)| (encode(Lane::Endable, n), c))
        } else {
            self.kept
                .pop_front()
                .map(|(n, c)| (encode(Lane::Kept, n), c))
        }?;
        Some(self.uncharge(popped))
    }

    /// Removes and returns the oldest entry that may end before Timer J, if any.
    pub(crate) fn pop_oldest_endable(&mut self) -> Option<(u64, Completed)> {
        let (n, c) = self.endable.pop_front()?;
        Some(self.uncharge((encode(Lane::Endable, n), c)))
    }

    fn uncharge(&mut self, popped: (u64, Completed)) -> (u64, Completed) {
        self.bytes = self.bytes.saturating_sub(popped.1.charge());
        popped
    }

    /// The number of queued entries, both lanes.
    pub(crate) fn len(&self) -> usize {
        self.endable.len() + self.kept.len()
    }

    /// What the queued entries are charged against the budget.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The sequence number `n` of `lane` as the key index holds it.
fn encode(lane: Lane, n: u64) -> u64 {
    (n << 1) | lane as u64
}

/// The lane and sequence number of a filed one. (A lane's numbers would need 2^63
/// entries to reach the top bit.)
fn decode(seq: u64) -> (Lane, u64) {
    let lane = if seq & 1 == 0 {
        Lane::Endable
    } else {
        Lane::Kept
    };
    (lane, seq >> 1)
}

impl Transactions {
    /// Moves the Completed non-INVITE server transaction in `slot` to the compact queue:
    /// its slot is freed, and the key index points at the queue entry until Timer J. Then
    /// ends the oldest entries early while [`crate::Config::max_completed`] (any of them)
    /// or [`crate::Config::completed_budget`] (the endable ones, see [`CompletedQueues`])
    /// is exceeded.
    pub(crate) fn compact(&mut self, now: Instant, slot: SlotId) {
        let Some(Txn::Server(s)) = self.txns.remove(slot) else {
            return;
        };
        let Some(sent) = s.last_response else {
            return;
        };
        let entry = Completed {
            key: s.key,
            id: slot,
            flow: s.flow,
            local: s.local,
            // Kept as encoded: `Response::encode` reserves the size it computes up front,
            // so the buffer has little slack, and a copy would cost more CPU than it saves.
            response: sent,
            expires: now + self.config.timers.t1x64(),
        };
        let hash = self.keys.hash(&entry.key);
        let seq = self.completed.push(entry);
        self.keys
            .replace(hash, KeyEntry::Live(slot), KeyEntry::Completed(seq));
        while self.completed.len() > self.config.max_completed {
            let Some(popped) = self.completed.pop_oldest() else {
                break;
            };
            self.end_early(now, popped);
        }
        while self.completed.bytes() > self.config.completed_budget {
            let Some(popped) = self.completed.pop_oldest_endable() else {
                break;
            };
            self.end_early(now, popped);
        }
    }

    /// Ends a compact Completed transaction before its Timer J; its key is remembered
    /// until then, so that retransmissions are still absorbed (`ended.rs`).
    fn end_early(&mut self, now: Instant, (seq, c): (u64, Completed)) {
        let hash = self.keys.hash(&c.key);
        self.keys.remove(hash, KeyEntry::Completed(seq));
        self.ended.record(hash, now, c.expires);
        self.evicted += 1;
        self.event(Event::Terminated {
            id: server_id(c.id),
        });
    }

    /// What the key index holds for `key`, a compact entry past Timer J counting as absent
    /// (the queue drops it at the next [`Transactions::handle_timeout`]).
    pub(crate) fn lookup(&self, key: &TransactionKey, now: Instant) -> Option<KeyEntry> {
        match self.find_key(key)? {
            KeyEntry::Completed(seq) => self
                .completed
                .get(seq)
                .filter(|c| c.expires > now)
                .map(|_| KeyEntry::Completed(seq)),
            live => Some(live),
        }
    }

    /// Whether `key` is that of a compact Completed transaction ended early whose Timer J
    /// has not passed at `now`: a request with it is a retransmission to absorb.
    pub(crate) fn ended_early(&self, key: &TransactionKey, now: Instant) -> bool {
        !self.ended.is_unused() && self.ended.contains(self.keys.hash(key), now)
    }

    /// A request retransmission that matched a compact Completed transaction: its final
    /// response again (§17.2.2).
    pub(crate) fn retransmit_completed(&mut self, seq: u64) {
        if let Some(c) = self.completed.get(seq) {
            let (flow, local, bytes, id) = (c.flow, c.local, c.response.clone(), server_id(c.id));
            self.transmit_from(flow, local, bytes, Some(id));
        }
    }

    /// Ends the compact Completed transactions whose Timer J fired by `now` (§17.2.2).
    pub(crate) fn expire_completed(&mut self, now: Instant) {
        let mut any = false;
        while let Some((seq, c)) = self.completed.pop_due(now) {
            // A key taken over by a newer transaction stays filed for it.
            self.keys
                .remove(self.keys.hash(&c.key), KeyEntry::Completed(seq));
            any = true;
            self.event(Event::Terminated {
                id: server_id(c.id),
            });
        }
        if any {
            self.keys.shrink_if_sparse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(expires: Instant, n: u32) -> Completed {
        let raw = format!(
            "REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK{n}\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c{n}\r\n\
             CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(mss_sip::Message::Request(req)) = mss_sip::parse_datagram(Bytes::from(raw)) else {
            panic!("parse");
        };
        Completed {
            key: TransactionKey::for_request(&req).unwrap(),
            id: SlotId {
                index: n,
                generation: 0,
            },
            flow: Flow {
                transport: mss_sip::Transport::Udp,
                remote: "127.0.0.1:5060".parse().unwrap(),
                connection: None,
            },
            local: None,
            response: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
            expires,
        }
    }

    /// What a Completed REGISTER costs besides its response bytes and its 24-byte slot in
    /// the key index (256 bytes: the key is 112, the local address 32; a slab slot was 360
    /// bytes plus a 32-byte timer-heap entry, and the key map held a second copy of the
    /// key, 128 bytes with its entry).
    #[test]
    fn an_entry_stays_small() {
        let size = std::mem::size_of::<Completed>();
        assert!(size <= 256, "Completed is {size} bytes");
    }

    #[test]
    fn drains_in_order_and_finds_by_sequence() {
        let t0 = Instant::now();
        let mut q = CompletedQueue::default();
        let a = q.push(entry(t0, 1));
        let b = q.push(entry(t0 + Duration::from_secs(1), 2));
        assert_eq!((a, b, q.len()), (0, 1, 2));
        assert_eq!(q.get(b).map(|e| e.id.index), Some(2));
        assert_eq!(q.pop_due(t0).map(|(s, e)| (s, e.id.index)), Some((0, 1)));
        assert!(q.get(a).is_none());
        assert!(q.pop_due(t0).is_none());
        assert_eq!(q.peek(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            q.pop_due(t0 + Duration::from_secs(5)).map(|(s, _)| s),
            Some(1)
        );
        assert_eq!(q.len(), 0);
        assert!(q.get(7).is_none());
    }
}
