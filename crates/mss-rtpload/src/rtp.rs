//! The packets the tool sends: a 12-byte RTP header (RFC 3550 §5.1) and a 160-byte
//! payload (20 ms of G.711 at 8 kHz), 172 bytes in all.
//!
//! The payload starts with what the far side needs to check the stream without trusting
//! the header: the stream's number, the packet's index in the stream and the moment it was
//! sent (nanoseconds since the run's epoch, on the same host's monotonic clock). The rest
//! is G.711 silence (`0xd5`). The header carries the sequence number and timestamp a phone
//! would send: `first_seq + index` and `first_timestamp + 160 × index`, so a relay that
//! rewrote, dropped or reordered packets shows at the far side.

/// Length of the RTP header the tool sends (no CSRC, no extension).
pub const HEADER: usize = 12;
/// G.711 payload of 20 ms at 8,000 samples/s.
pub const PAYLOAD: usize = 160;
/// A whole packet.
pub const PACKET: usize = HEADER + PAYLOAD;
/// RTP timestamp units per packet (8 kHz × 20 ms).
pub const TIMESTAMP_STEP: u32 = 160;
/// Payload type 0 (PCMU).
pub const PAYLOAD_TYPE: u8 = 0;

/// What the far side reads back from a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The stream's number (from the payload).
    pub stream: u32,
    /// The packet's index in its stream (from the payload).
    pub index: u32,
    /// When it was sent, ns since the run's epoch (from the payload).
    pub sent_ns: u64,
    /// The header's sequence number.
    pub seq: u16,
    /// The header's timestamp.
    pub timestamp: u32,
    /// The header's SSRC.
    pub ssrc: u32,
}

/// The header values of one stream: chosen per stream so that streams differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    /// Sequence number of index 0.
    pub first_seq: u16,
    /// Timestamp of index 0.
    pub first_timestamp: u32,
    /// The stream's SSRC.
    pub ssrc: u32,
}

impl StreamHeader {
    /// Deterministic, well-spread header values for stream `stream` (a relay must not care:
    /// the values are only compared with what arrives). The first sequence number is near
    /// the top of its range for some streams so that the 16-bit wrap is crossed.
    pub fn for_stream(stream: u32) -> StreamHeader {
        let h = mix(u64::from(stream));
        StreamHeader {
            first_seq: (h >> 16) as u16,
            first_timestamp: (h >> 32) as u32,
            ssrc: (h as u32) ^ stream,
        }
    }

    /// The sequence number of packet `index`.
    pub fn seq(&self, index: u32) -> u16 {
        self.first_seq.wrapping_add(index as u16)
    }

    /// The timestamp of packet `index`.
    pub fn timestamp(&self, index: u32) -> u32 {
        self.first_timestamp
            .wrapping_add(index.wrapping_mul(TIMESTAMP_STEP))
    }
}

/// SplitMix64's finaliser: spreads a counter over 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Writes packet `index` of `stream` into `buf` (the payload filled with silence once, by
/// [`new_packet`]); `sent_ns` is stamped last, just before the send.
pub fn write_packet(buf: &mut [u8; PACKET], stream: u32, header: &StreamHeader, index: u32) {
    buf[0] = 0x80; // version 2, no padding, no extension, no CSRC
    buf[1] = PAYLOAD_TYPE;
    buf[2..4].copy_from_slice(&header.seq(index).to_be_bytes());
    buf[4..8].copy_from_slice(&header.timestamp(index).to_be_bytes());
    buf[8..12].copy_from_slice(&header.ssrc.to_be_bytes());
    buf[HEADER..HEADER + 4].copy_from_slice(&stream.to_be_bytes());
    buf[HEADER + 4..HEADER + 8].copy_from_slice(&index.to_be_bytes());
}

/// Stamps the send time into a packet written by [`write_packet`].
pub fn stamp(buf: &mut [u8; PACKET], sent_ns: u64) {
    buf[HEADER + 8..HEADER + 16].copy_from_slice(&sent_ns.to_be_bytes());
}

/// A packet buffer with its payload set to G.711 silence.
pub fn new_packet() -> [u8; PACKET] {
    [0xd5; PACKET]
}

/// Reads a packet the tool sent; `None` when it is not one (too short, not version 2).
pub fn parse(data: &[u8]) -> Option<Received> {
    if data.len() < HEADER + 16 || data[0] >> 6 != 2 {
        return None;
    }
    let be32 = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let mut sent = [0u8; 8];
    sent.copy_from_slice(&data[HEADER + 8..HEADER + 16]);
    Some(Received {
        stream: be32(HEADER),
        index: be32(HEADER + 4),
        sent_ns: u64::from_be_bytes(sent),
        seq: u16::from_be_bytes([data[2], data[3]]),
        timestamp: be32(4),
        ssrc: be32(8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_packet_reads_back() {
        let h = StreamHeader::for_stream(7);
        let mut p = new_packet();
        write_packet(&mut p, 7, &h, 70_000);
        stamp(&mut p, 123_456_789);
        let r = parse(&p).unwrap();
        assert_eq!(r.stream, 7);
        assert_eq!(r.index, 70_000);
        assert_eq!(r.sent_ns, 123_456_789);
        assert_eq!(r.seq, h.first_seq.wrapping_add(70_000u32 as u16));
        assert_eq!(r.timestamp, h.first_timestamp.wrapping_add(70_000 * 160));
        assert_eq!(r.ssrc, h.ssrc);
        assert_eq!(p.len(), 172);
        assert!(p[HEADER + 16..].iter().all(|&b| b == 0xd5));
    }

    #[test]
    fn short_or_foreign_data_is_not_a_packet() {
        assert_eq!(parse(&[0x80; 20]), None);
        let mut p = new_packet();
        write_packet(&mut p, 1, &StreamHeader::for_stream(1), 0);
        p[0] = 0x40;
        assert_eq!(parse(&p), None);
    }

    #[test]
    fn streams_get_different_headers() {
        let a = StreamHeader::for_stream(0);
        let b = StreamHeader::for_stream(1);
        assert_ne!(a.ssrc, b.ssrc);
        assert_ne!(a.first_seq, b.first_seq);
    }
}
