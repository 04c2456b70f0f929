//! Is a datagram RTP or RTCP? The header checks of RFC 3550 §5.1 and §6.4, with the
//! RTP/RTCP demultiplexing of RFC 5761 §4 for RTCP sent on the RTP port (`rtcp-mux`).
//!
//! SRTP and SRTCP (RFC 3711 §3.1, §3.4) keep these headers in the clear, so they pass the
//! same checks and are relayed untouched; RFC 4733 telephone-events are RTP packets of
//! their own payload type and pass too. STUN, DTLS and anything else whose first two bits
//! are not version 2 is not RTP.

use crate::stats::DropReason;

/// The fixed RTP header (RFC 3550 §5.1).
const RTP_HEADER: usize = 12;
/// The smallest RTCP packet: a receiver report without report blocks (RFC 3550 §6.4.2).
const RTCP_MIN: usize = 8;

/// Checks `data`, received on an RTP port (`rtcp_port` false) or an RTCP port; `max` is
/// the largest length accepted. `Ok(true)`: RTCP, `Ok(false)`: RTP.
#[inline]
pub(crate) fn check(data: &[u8], rtcp_port: bool, max: usize) -> Result<bool, DropReason> {
    if data.len() > max {
        return Err(DropReason::Oversize);
    }
    let (Some(&b0), Some(&b1)) = (data.first(), data.get(1)) else {
        return Err(DropReason::NotRtp);
    };
    if b0 >> 6 != 2 {
        return Err(DropReason::NotRtp);
    }
    // RFC 5761 §4: a second byte of 192–223 is an RTCP packet type; on the RTP port those
    // payload types are not used for RTP.
    let rtcp = (192..=223).contains(&b1);
    if rtcp_port || rtcp {
        return if rtcp && data.len() >= RTCP_MIN {
            Ok(true)
        } else {
            Err(DropReason::NotRtp)
        };
    }
    let mut header = RTP_HEADER + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        // Header extension (§5.3.1): 16 bits profile, 16 bits length in 32-bit words.
        let words = match (data.get(header + 2), data.get(header + 3)) {
            (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return Err(DropReason::NotRtp),
        };
        header += 4 + 4 * words;
    }
    if data.len() < header {
        return Err(DropReason::NotRtp);
    }
    if b0 & 0x20 != 0 {
        // Padding (§5.1): the last octet counts the padding, itself included.
        let pad = usize::from(data.last().copied().unwrap_or(0));
        if pad == 0 || header + pad > data.len() {
            return Err(DropReason::NotRtp);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1500;

    /// A G.711 packet: version 2, PT 0, 160 bytes of payload.
    fn pcmu() -> Vec<u8> {
        let mut p = vec![0x80, 0x00, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        p.resize(12 + 160, 0xff);
        p
    }

    #[test]
    fn rtp_passes() {
        assert_eq!(check(&pcmu(), false, MAX), Ok(false));
        // RFC 4733 §2.5 telephone-event: PT 101, marker, 4-byte payload (digit 5, E bit).
        let dtmf = [0x80, 0xe5, 0, 2, 0, 0, 1, 0, 1, 2, 3, 4, 5, 0x80, 0, 160];
        assert_eq!(check(&dtmf, false, MAX), Ok(false));
        // Two CSRCs, an extension of one word and 3 bytes of padding.
        let mut p = vec![0xb2, 0x00, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        p.extend([0; 8]);
        p.extend([0xbe, 0xde, 0, 1, 0, 0, 0, 0]);
        p.extend([7, 7, 0, 0, 3]);
        assert_eq!(check(&p, false, MAX), Ok(false));
    }

    #[test]
    fn rtcp_passes_on_both_ports() {
        let rr = [0x80, 201, 0, 1, 1, 2, 3, 4];
        assert_eq!(check(&rr, true, MAX), Ok(true));
        assert_eq!(check(&rr, false, MAX), Ok(true), "rtcp-mux");
        assert_eq!(check(&pcmu(), true, MAX), Err(DropReason::NotRtp));
    }

    #[test]
    fn garbage_is_refused() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x80",
            b"hello world, not rtp",
            // STUN binding request: first two bits 00.
            &[
                0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            // Version 2 but shorter than the fixed header.
            &[0x80, 0, 0, 1, 0, 0],
            // CSRC count 15 in 12 bytes.
            &[0x8f, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
            // Extension bit without the extension.
            &[0x90, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
            // Padding count 0, and padding longer than the payload.
            &[0xa0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 9, 0],
            &[0xa0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 9, 9],
            // RTCP shorter than 8 bytes.
            &[0x80, 200, 0, 0],
        ];
        for c in cases {
            assert_eq!(check(c, false, MAX), Err(DropReason::NotRtp), "{c:?}");
        }
        let mut big = pcmu();
        big.resize(MAX + 1, 0);
        assert_eq!(check(&big, false, MAX), Err(DropReason::Oversize));
        big.truncate(MAX);
        assert_eq!(check(&big, false, MAX), Ok(false));
    }
}
