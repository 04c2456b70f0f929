//! What the far side counts for each stream, and the transit-time histogram.
//!
//! For every packet that arrives: is it the stream's next one (sequence number and
//! timestamp as the sender wrote them, nothing lost in between), a duplicate, or late
//! (reordered: an index below the highest seen so far)? Loss is what was sent and never
//! arrived. Jitter is RFC 3550 §6.4.1's interarrival jitter (the running estimate
//! `J += (|D| - J) / 16` of the transit-time difference `D` between consecutive packets,
//! in timestamp units, computed on the arrival order as Appendix A.8 does); transit time
//! is the arrival minus the send moment stamped in the payload (one host, one clock), so
//! its spread through a relay minus its spread on the direct path is the jitter the relay
//! adds.

use serde::{Deserialize, Serialize};

use crate::rtp::{Received, StreamHeader};

/// Nanoseconds per RTP timestamp unit at 8 kHz.
const NS_PER_UNIT: f64 = 1e9 / 8000.0;

/// The far side's account of one stream.
#[derive(Debug, Clone)]
pub struct StreamCheck {
    header: StreamHeader,
    /// One bit per index that arrived.
    seen: Vec<u64>,
    planned: u32,
    received: u64,
    duplicates: u64,
    reordered: u64,
    highest: Option<u32>,
    seq_mismatch: u64,
    timestamp_mismatch: u64,
    ssrc_mismatch: u64,
    beyond_plan: u64,
    /// RFC 3550 jitter estimate, in timestamp units.
    jitter: f64,
    /// The previous packet's transit in timestamp units (arrival − RTP timestamp).
    last_transit: Option<f64>,
}

impl StreamCheck {
    /// A stream whose sender writes `header`'s values and sends at most `planned` packets.
    pub fn new(header: StreamHeader, planned: u32) -> StreamCheck {
        StreamCheck {
            header,
            seen: vec![0; (planned as usize).div_ceil(64)],
            planned,
            received: 0,
            duplicates: 0,
            reordered: 0,
            highest: None,
            seq_mismatch: 0,
            timestamp_mismatch: 0,
            ssrc_mismatch: 0,
            beyond_plan: 0,
            jitter: 0.0,
            last_transit: None,
        }
    }

    /// Accounts for packet `r` that arrived at `arrival_ns` (same epoch as its send stamp).
    pub fn on_packet(&mut self, r: &Received, arrival_ns: u64) {
        if r.index >= self.planned {
            self.beyond_plan += 1;
            return;
        }
        let (word, bit) = ((r.index / 64) as usize, 1u64 << (r.index % 64));
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.received += 1;
        if r.seq != self.header.seq(r.index) {
            self.seq_mismatch += 1;
        }
        if r.timestamp != self.header.timestamp(r.index) {
            self.timestamp_mismatch += 1;
        }
        if r.ssrc != self.header.ssrc {
            self.ssrc_mismatch += 1;
        }
        match self.highest {
            Some(h) if r.index < h => self.reordered += 1,
            _ => self.highest = Some(r.index),
        }
        // RFC 3550 §6.4.1 / A.8: transit in timestamp units, relative to the stream's first
        // timestamp so that the 32-bit wrap never shows.
        let rtp = f64::from(r.timestamp.wrapping_sub(self.header.first_timestamp));
        let transit = arrival_ns as f64 / NS_PER_UNIT - rtp;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Distinct packets that arrived.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The RFC 3550 jitter estimate now, in ms.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * NS_PER_UNIT / 1e6
    }

    /// Adds this stream's counts to `totals`, given that its sender sent `sent` packets.
    pub fn add_to(&self, sent: u64, totals: &mut Totals) {
        totals.streams += 1;
        totals.sent += sent;
        totals.received += self.received;
        totals.lost += sent.saturating_sub(self.received);
        totals.duplicates += self.duplicates;
        totals.reordered += self.reordered;
        totals.seq_mismatch += self.seq_mismatch;
        totals.timestamp_mismatch += self.timestamp_mismatch;
        totals.ssrc_mismatch += self.ssrc_mismatch;
        totals.beyond_plan += self.beyond_plan;
        let j = self.jitter_ms();
        totals.jitter_sum_ms += j;
        totals.jitter_max_ms = totals.jitter_max_ms.max(j);
    }
}

/// Every stream's counts added up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Streams (two per call).
    pub streams: u64,
    /// Packets sent (send errors not counted).
    pub sent: u64,
    /// Distinct packets that arrived.
    pub received: u64,
    /// Sent and never arrived.
    pub lost: u64,
    /// Arrived more than once (the extra copies).
    pub duplicates: u64,
    /// Arrived after a later packet of the same stream.
    pub reordered: u64,
    /// Arrived with another sequence number than the sender wrote.
    pub seq_mismatch: u64,
    /// Arrived with another timestamp than the sender wrote.
    pub timestamp_mismatch: u64,
    /// Arrived with another SSRC than the sender wrote.
    pub ssrc_mismatch: u64,
    /// Claimed an index the sender never sends (a corrupted payload).
    pub beyond_plan: u64,
    /// Sum of the streams' RFC 3550 jitter, ms (÷ `streams` for the mean).
    pub jitter_sum_ms: f64,
    /// The largest stream's RFC 3550 jitter, ms.
    pub jitter_max_ms: f64,
}

impl Totals {
    /// The mean RFC 3550 jitter of the streams, ms.
    pub fn jitter_mean_ms(&self) -> f64 {
        if self.streams == 0 {
            0.0
        } else {
            self.jitter_sum_ms / self.streams as f64
        }
    }
}

/// Transit times in 1-µs buckets up to [`Histogram::LIMIT_US`], and a count above.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    above: u64,
    count: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    /// The largest transit with a bucket of its own, µs (100 ms).
    pub const LIMIT_US: usize = 100_000;

    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            buckets: vec![0; Histogram::LIMIT_US],
            above: 0,
            count: 0,
            max_ns: 0,
            sum_ns: 0,
        }
    }

    /// Records one transit time.
    pub fn record(&mut self, ns: u64) {
        let us = (ns / 1000) as usize;
        match self.buckets.get_mut(us) {
            Some(b) => *b += 1,
            None => self.above += 1,
        }
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += u128::from(ns);
    }

    /// Adds `other`'s samples.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.above += other.above;
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in µs, as the upper edge of its bucket; samples above the
    /// limit count as the largest one seen. `None` without samples.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (us, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some((us + 1) as f64);
            }
        }
        Some(self.max_ns as f64 / 1000.0)
    }

    /// The summary written into the report.
    pub fn summary(&self) -> TransitSummary {
        let q = |x| self.quantile_us(x).unwrap_or(0.0);
        TransitSummary {
            samples: self.count,
            mean_us: if self.count == 0 {
                0.0
            } else {
                (self.sum_ns / u128::from(self.count)) as f64 / 1000.0
            },
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: self.max_ns as f64 / 1000.0,
        }
    }
}

/// Transit times (send stamp to arrival at the far side), µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransitSummary {
    /// Packets measured.
    pub samples: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median (bucket upper edge, 1-µs buckets).
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{self, StreamHeader};

    const MS: u64 = 1_000_000;

    fn packet(stream: u32, index: u32, sent_ns: u64) -> Received {
        let h = StreamHeader::for_stream(stream);
        let mut p = rtp::new_packet();
        rtp::write_packet(&mut p, stream, &h, index);
        rtp::stamp(&mut p, sent_ns);
        rtp::parse(&p).unwrap()
    }

    fn totals(c: &StreamCheck, sent: u64) -> Totals {
        let mut t = Totals::default();
        c.add_to(sent, &mut t);
        t
    }

    #[test]
    fn a_clean_stream_has_no_loss_reorder_or_jitter() {
        let mut c = StreamCheck::new(StreamHeader::for_stream(3), 100);
        for i in 0..100 {
            let sent = u64::from(i) * 20 * MS;
            c.on_packet(&packet(3, i, sent), sent + 50_000);
        }
        let t = totals(&c, 100);
        assert_eq!(
            (t.received, t.lost, t.reordered, t.duplicates),
            (100, 0, 0, 0)
        );
        assert_eq!(
            (t.seq_mismatch, t.timestamp_mismatch, t.ssrc_mismatch),
            (0, 0, 0)
        );
        assert!(c.jitter_ms() < 1e-9, "{}", c.jitter_ms());
    }

    #[test]
    fn gaps_are_loss_late_packets_are_reordered_copies_are_duplicates() {
        let mut c = StreamCheck::new(StreamHeader::for_stream(4), 10);
        for i in [0, 1, 3, 2, 2, 5, 4, 7] {
            c.on_packet(&packet(4, i, 0), 0);
        }
        let t = totals(&c, 10);
        assert_eq!(t.received, 7);
        assert_eq!(t.lost, 3); // 6, 8, 9
        assert_eq!(t.reordered, 2); // 2 after 3, 4 after 5
        assert_eq!(t.duplicates, 1);
    }

    #[test]
    fn rewritten_headers_are_counted() {
        let mut c = StreamCheck::new(StreamHeader::for_stream(5), 10);
        let mut r = packet(5, 0, 0);
        r.seq = r.seq.wrapping_add(1);
        c.on_packet(&r, 0);
        let mut r = packet(5, 1, 0);
        r.timestamp = r.timestamp.wrapping_add(1);
        r.ssrc ^= 1;
        c.on_packet(&r, 0);
        c.on_packet(&packet(5, 10, 0), 0);
        let t = totals(&c, 2);
        assert_eq!((t.seq_mismatch, t.timestamp_mismatch), (1, 1));
        assert_eq!((t.ssrc_mismatch, t.beyond_plan), (1, 1));
    }

    #[test]
    fn jitter_follows_rfc3550() {
        // Transit alternating 0 and 1 ms: |D| = 1 ms = 8 units each time after the first,
        // so J converges on 8 units = 1 ms: J_n = 8 (1 - (15/16)^n).
        let mut c = StreamCheck::new(StreamHeader::for_stream(6), 1000);
        for i in 0..1000u32 {
            let sent = u64::from(i) * 20 * MS;
            let extra = if i % 2 == 0 { 0 } else { MS };
            c.on_packet(&packet(6, i, sent), sent + extra);
        }
        assert!((c.jitter_ms() - 1.0).abs() < 1e-6, "{}", c.jitter_ms());
        let mut c = StreamCheck::new(StreamHeader::for_stream(6), 2);
        c.on_packet(&packet(6, 0, 0), 0);
        c.on_packet(&packet(6, 1, 20 * MS), 20 * MS + MS);
        // one step: J = |D| / 16 = 8 / 16 units = 62.5 µs
        assert!((c.jitter_ms() - 0.0625).abs() < 1e-9, "{}", c.jitter_ms());
    }

    #[test]
    fn the_sequence_number_wraps_without_a_mismatch() {
        let h = StreamHeader {
            first_seq: 65_534,
            first_timestamp: u32::MAX - 100,
            ssrc: 9,
        };
        let mut c = StreamCheck::new(h, 5);
        for i in 0..5u32 {
            let r = Received {
                stream: 0,
                index: i,
                sent_ns: 0,
                seq: h.seq(i),
                timestamp: h.timestamp(i),
                ssrc: 9,
            };
            c.on_packet(&r, u64::from(i) * 20 * MS);
        }
        let t = totals(&c, 5);
        assert_eq!(
            (t.received, t.seq_mismatch, t.timestamp_mismatch),
            (5, 0, 0)
        );
        assert!(c.jitter_ms() < 1e-9);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=100u64 {
            h.record(us * 1000 - 1);
        }
        assert_eq!(h.quantile_us(0.5), Some(50.0));
        assert_eq!(h.quantile_us(0.99), Some(99.0));
        assert_eq!(h.quantile_us(1.0), Some(100.0));
        let mut g = Histogram::new();
        g.record(500 * MS);
        h.merge(&g);
        assert_eq!(h.count(), 101);
        assert_eq!(h.quantile_us(1.0), Some(500_000.0));
        assert_eq!(h.summary().max_us, 500_000.0);
    }
}
