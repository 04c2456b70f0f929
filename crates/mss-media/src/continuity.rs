//! One RTP stream out of a leg whose source changes: SSRC, sequence number and timestamp
//! continuity across a transfer.
//!
//! When the party behind a leg is replaced (a transfer, an INVITE with Replaces) the phone
//! on the other leg keeps its session; without help it would see a new SSRC with its own
//! random sequence numbers and timestamps (RFC 3550 §5.1 makes both start at random
//! values) in the middle of its stream, and many phones mute it, or play it late while
//! their jitter buffer resynchronises. The relay then acts as a "media switching"
//! middlebox of RFC 7667 §3.2.2, an RTP translator of RFC 3550 §7: whichever source sends
//! into the leg, what leaves toward the other phone is one stream with one SSRC (the first
//! the leg sent), sequence numbers that go on by one, and timestamps that advance by the
//! time that passed between the old source's last packet and the new source's first.
//!
//! The controller turns it on for a leg ([`crate::Relay::new_source`]) when it points the
//! leg at another party; from then on every SSRC change on the leg is a new source
//! (latching accepts one source address at a time, so two sources never interleave). A leg
//! that was never switched is left alone: a phone that sends two SSRCs at once (RFC 4588
//! retransmissions as a separate stream) keeps working as long as it is not transferred.
//!
//! RTCP follows the rewrite both ways (RFC 3550 §7.2): the new source's SR, RR, SDES, BYE,
//! APP, feedback (RFC 4585) and XR packets carry the old SSRC, the SR its RTP timestamp
//! shifted like the data; reception reports and feedback that the other phone sends
//! about the stream name the new source's real SSRC again and the extended highest
//! sequence number shifted back. The SR's packet and octet counts are not adjusted (they
//! restart with the new source; receivers use them for statistics only).
//!
//! All of it works in place on the datagram and allocates nothing.

use std::time::Instant;

/// The clock rates a stream's timestamps can run at (RFC 3551 §4.5 and §5, the dynamic
/// audio and video codecs in use): the rate of a source is estimated from its packets and
/// rounded to the nearest of these.
const CLOCK_RATES: [u32; 7] = [8_000, 16_000, 24_000, 32_000, 44_100, 48_000, 90_000];
/// The rate assumed when a source sent for too short a time to estimate it (G.711).
const DEFAULT_RATE: u32 = 8_000;
/// How long a source must have sent for its clock rate to be estimated, in microseconds.
const MIN_SPAN_US: u128 = 100_000;

/// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611 §2).
const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;
const RTPFB: u8 = 205;
const PSFB: u8 = 206;

/// The output state of the stream a leg sends: what the other phone has seen of it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Continuity {
    /// The controller said the leg's party changes: SSRC changes are new sources.
    switching: bool,
    /// Whether a packet went out yet (the fields below mean something).
    started: bool,
    /// The SSRC of the source sending now.
    in_ssrc: u32,
    /// The SSRC the other phone sees: the first the leg sent.
    out_ssrc: u32,
    /// Added to the source's sequence numbers.
    seq_delta: u16,
    /// Added to the source's timestamps.
    ts_delta: u32,
    /// The last packet out: sequence number, timestamp and when.
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
    /// The first packet out of the current source: timestamp and when (its clock rate).
    first_ts: u32,
    first_at: Option<Instant>,
}

impl Continuity {
    /// The controller points the leg at another party: its next new SSRC is mapped.
    pub(crate) fn switch(&mut self) {
        self.switching = true;
    }

    /// Whether packets of the current source are rewritten.
    #[inline]
    fn rewrites(&self) -> bool {
        self.in_ssrc != self.out_ssrc || self.seq_delta != 0 || self.ts_delta != 0
    }

    /// An RTP packet from the leg (already checked: at least the 12 bytes of the fixed
    /// header) goes out at `now`: rewrites its header for continuity, notes what left.
    #[inline]
    pub(crate) fn rtp(&mut self, now: Instant, data: &mut [u8]) {
        let (Some(seq), Some(ts), Some(ssrc)) = (be16(data, 2), be32(data, 4), be32(data, 8))
        else {
            return;
        };
        if !self.started || (ssrc != self.in_ssrc && !self.switching) {
            // The first packet, or the phone itself changed its SSRC (RFC 3550 §8.2): the
            // other phone sees exactly what it sends.
            *self = Continuity {
                switching: self.switching,
                started: true,
                in_ssrc: ssrc,
                out_ssrc: ssrc,
                first_ts: ts,
                first_at: Some(now),
                ..Continuity::default()
            };
        } else if ssrc != self.in_ssrc {
            self.new_source(now, ssrc, seq, ts);
        }
        let (seq, ts) = (
            seq.wrapping_add(self.seq_delta),
            ts.wrapping_add(self.ts_delta),
        );
        if self.rewrites() {
            put16(data, 2, seq);
            put32(data, 4, ts);
            put32(data, 8, self.out_ssrc);
        }
        self.last_seq = seq;
        self.last_ts = ts;
        self.last_at = Some(now);
    }

    /// `ssrc` replaces the source that sent before: its first packet (`seq`, `ts`) at
    /// `now` follows the last one out.
    fn new_source(&mut self, now: Instant, ssrc: u32, seq: u16, ts: u32) {
        let rate = self.clock_rate();
        let gap = self
            .last_at
            .map(|last| now.saturating_duration_since(last).as_micros())
            .unwrap_or(0);
        // At least one tick: a timestamp never repeats across the switch.
        let ticks = (gap * u128::from(rate) / 1_000_000).clamp(1, u128::from(u32::MAX / 2));
        let next_ts = self.last_ts.wrapping_add(ticks as u32);
        self.in_ssrc = ssrc;
        self.seq_delta = self.last_seq.wrapping_add(1).wrapping_sub(seq);
        self.ts_delta = next_ts.wrapping_sub(ts);
        self.first_ts = next_ts;
        self.first_at = Some(now);
    }

    /// The clock rate of the source that sent last, estimated from its timestamps.
    fn clock_rate(&self) -> u32 {
        let (Some(first), Some(last)) = (self.first_at, self.last_at) else {
            return DEFAULT_RATE;
        };
        let span = last.saturating_duration_since(first).as_micros();
        let ticks = u128::from(self.last_ts.wrapping_sub(self.first_ts));
        if span < MIN_SPAN_US || ticks > u128::from(u32::MAX / 2) {
            return DEFAULT_RATE;
        }
        let estimate = ticks * 1_000_000 / span;
        CLOCK_RATES
            .into_iter()
            .min_by_key(|&r| estimate.abs_diff(u128::from(r)))
            .unwrap_or(DEFAULT_RATE)
    }

    /// An RTCP packet (compound or not) from the leg: the source's SSRC becomes the one
    /// the other phone knows, an SR's RTP timestamp moves with the data.
    pub(crate) fn rtcp_from(&self, data: &mut [u8]) {
        if !self.started || !self.rewrites() {
            return;
        }
        let (from, to) = (self.in_ssrc, self.out_ssrc);
        for_each_rtcp(data, |pt, count, p| match pt {
            SDES => {
                let mut at = 4;
                for _ in 0..count {
                    replace32(p, at, from, to);
                    // Items (type, length, text) up to a null item, then to a 32-bit
                    // boundary (RFC 3550 §6.5).
                    at += 4;
                    loop {
                        match p.get(at) {
                            None => return,
                            Some(0) => break,
                            Some(_) => at += 2 + usize::from(p.get(at + 1).copied().unwrap_or(0)),
                        }
                    }
                    at = (at + 4) & !3;
                }
            }
            BYE => {
                for i in 0..usize::from(count) {
                    replace32(p, 4 + 4 * i, from, to);
                }
            }
            _ => {
                if replace32(p, 4, from, to) && pt == SR {
                    if let Some(ts) = be32(p, 16) {
                        put32(p, 16, ts.wrapping_add(self.ts_delta));
                    }
                }
            }
        });
    }

    /// An RTCP packet that the other leg's phone sends about this leg's stream: its
    /// reception reports and feedback name the source's real SSRC and sequence numbers.
    pub(crate) fn rtcp_about(&self, data: &mut [u8]) {
        if !self.started || !self.rewrites() {
            return;
        }
        let (from, to) = (self.out_ssrc, self.in_ssrc);
        for_each_rtcp(data, |pt, count, p| {
            let blocks = match pt {
                SR => 28,
                RR => 8,
                RTPFB | PSFB => {
                    replace32(p, 8, from, to);
                    return;
                }
                _ => return,
            };
            for i in 0..usize::from(count) {
                let at = blocks + 24 * i;
                if replace32(p, at, from, to) {
                    // The extended highest sequence number received (§6.4.1): 16 bits of
                    // cycles, kept (the two numberings have no common count of cycles),
                    // and the sequence number, shifted back.
                    if let Some(seq) = be16(p, at + 10) {
                        put16(p, at + 10, seq.wrapping_sub(self.seq_delta));
                    }
                }
            }
        });
    }
}

/// Calls `f(packet type, count field, packet)` for each packet of a compound RTCP packet
/// (RFC 3550 §6.1: each with its length in 32-bit words minus one); stops at the first
/// that does not fit.
fn for_each_rtcp(data: &mut [u8], mut f: impl FnMut(u8, u8, &mut [u8])) {
    let mut rest = data;
    while rest.len() >= 4 {
        let (b0, pt) = (rest[0], rest[1]);
        let Some(words) = be16(rest, 2) else {
            return;
        };
        let len = 4 * (usize::from(words) + 1);
        if b0 >> 6 != 2 || len > rest.len() {
            return;
        }
        let (packet, tail) = rest.split_at_mut(len);
        f(pt, b0 & 0x1f, packet);
        rest = tail;
    }
}

#[inline]
fn be16(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(p.get(at..at + 2)?.try_into().ok()?))
}

#[inline]
fn be32(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(at..at + 4)?.try_into().ok()?))
}

#[inline]
fn put16(p: &mut [u8], at: usize, v: u16) {
    if let Some(b) = p.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn put32(p: &mut [u8], at: usize, v: u32) {
    if let Some(b) = p.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes `to` over the 32-bit word at `at` if it is `from`; whether it was.
fn replace32(p: &mut [u8], at: usize, from: u32, to: u32) -> bool {
    if be32(p, at) == Some(from) {
        put32(p, at, to);
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend(seq.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend(ssrc.to_be_bytes());
        p.resize(172, 0xff);
        p
    }

    fn header(p: &[u8]) -> (u16, u32, u32) {
        (
            be16(p, 2).unwrap_or(0),
            be32(p, 4).unwrap_or(0),
            be32(p, 8).unwrap_or(0),
        )
    }

    #[test]
    fn an_unswitched_leg_is_never_rewritten() {
        let t0 = Instant::now();
        let mut c = Continuity::default();
        for (i, ssrc) in [(0u16, 1u32), (1, 1), (2, 2), (3, 1)] {
            let mut p = rtp(100 + i, 1000 + 160 * u32::from(i), ssrc);
            let before = p.clone();
            c.rtp(t0 + Duration::from_millis(20 * u64::from(i)), &mut p);
            assert_eq!(p, before);
        }
    }

    #[test]
    fn a_new_source_continues_the_old_stream() {
        let t0 = Instant::now();
        let mut c = Continuity::default();
        // 1 s of 16 kHz audio (320 ticks a packet) from SSRC 7, sequence numbers wrapping.
        for i in 0..50u16 {
            let mut p = rtp(
                65_530u16.wrapping_add(i),
                4_000_000_000 + 320 * u32::from(i),
                7,
            );
            c.rtp(t0 + Duration::from_millis(20 * u64::from(i)), &mut p);
            assert_eq!(header(&p).2, 7);
        }
        c.switch();
        // The new source starts 500 ms after the last packet with its own numbers.
        let start = t0 + Duration::from_millis(20 * 49 + 500);
        for i in 0..3u16 {
            let mut p = rtp(9 + i, 77 + 320 * u32::from(i), 0xabcd);
            c.rtp(start + Duration::from_millis(20 * u64::from(i)), &mut p);
            let last_ts = 4_000_000_000u32.wrapping_add(320 * 49);
            assert_eq!(
                header(&p),
                (
                    65_530u16.wrapping_add(50 + i),
                    last_ts.wrapping_add(8_000 + 320 * u32::from(i)),
                    7
                ),
                "packet {i}"
            );
        }
    }

    #[test]
    fn rtcp_follows_both_ways() {
        let t0 = Instant::now();
        let mut c = Continuity::default();
        let mut p = rtp(10, 1000, 7);
        c.rtp(t0, &mut p);
        c.switch();
        let mut p = rtp(500, 90_000, 8);
        c.rtp(t0 + Duration::from_millis(20), &mut p);
        assert_eq!(header(&p), (11, 1160, 7));
        // From the new source: SR (no blocks) + SDES (one chunk, CNAME "ab") + BYE.
        let mut sr = vec![0x80, SR, 0, 6];
        sr.extend(8u32.to_be_bytes());
        sr.extend([0; 8]);
        sr.extend(90_160u32.to_be_bytes());
        sr.extend([0; 8]);
        sr.extend([0x81, SDES, 0, 3]);
        sr.extend(8u32.to_be_bytes());
        sr.extend([1, 2, b'a', b'b']);
        sr.extend([0, 0, 0, 0]);
        sr.extend([0x81, BYE, 0, 1]);
        sr.extend(8u32.to_be_bytes());
        // An SDES item claiming to run past the packet is not followed.
        sr.extend([0x81, SDES, 0, 1, 0, 0, 0, 8]);
        c.rtcp_from(&mut sr);
        assert_eq!(be32(&sr, 4), Some(7));
        assert_eq!(be32(&sr, 16), Some(1320));
        assert_eq!(be32(&sr, 32), Some(7), "SDES chunk");
        assert_eq!(be32(&sr, 48), Some(7), "BYE");
        assert_eq!(be32(&sr, 56), Some(7), "last SDES");
        // From the other phone: an RR with a block about SSRC 7 and one about another.
        let mut rr = vec![0x82, RR, 0, 13];
        rr.extend(99u32.to_be_bytes());
        for ssrc in [7u32, 5] {
            rr.extend(ssrc.to_be_bytes());
            rr.extend([0; 4]);
            rr.extend(0x0001_0020u32.to_be_bytes());
            rr.extend([0; 12]);
        }
        let mut fb = vec![0x81, RTPFB, 0, 2];
        fb.extend(99u32.to_be_bytes());
        fb.extend(7u32.to_be_bytes());
        rr.extend(&fb);
        c.rtcp_about(&mut rr);
        assert_eq!(be32(&rr, 8), Some(8));
        // Out 11 is in 500: the sequence number 0x20 goes back 489 up, the cycles stay.
        assert_eq!(be32(&rr, 16), Some(0x0001_0020 + 489));
        assert_eq!(be32(&rr, 32), Some(5), "another source's block stays");
        assert_eq!(be32(&rr, 40), Some(0x0001_0020));
        assert_eq!(be32(&rr, 64), Some(8), "feedback media SSRC");
    }

    #[test]
    fn truncated_rtcp_is_left_as_it_is() {
        let t0 = Instant::now();
        let mut c = Continuity::default();
        c.rtp(t0, &mut rtp(1, 1, 1));
        c.switch();
        c.rtp(t0, &mut rtp(9, 9, 2));
        for len in 0..40 {
            let mut p = vec![0x80, SR, 0, 20, 0, 0, 0, 2];
            p.resize(len.max(8), 0);
            p.truncate(len);
            let before = p.clone();
            c.rtcp_from(&mut p);
            c.rtcp_about(&mut p);
            assert_eq!(p, before, "{len}");
        }
    }
}
