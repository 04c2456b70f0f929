//! The relay's settings: the `[media]` keys of DESIGN §8 the relay itself uses.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The UDP ports the relay may use (`rtp_ports = 20000-30000`): pairs of an even port for
/// RTP and the next odd port for RTCP (RFC 3550 §11), both inside the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    base: u16,
    pairs: u32,
}

/// A port range that holds no RTP/RTCP pair or is written wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// Not `FIRST-LAST` with two port numbers.
    #[error("expected FIRST-LAST, e.g. 20000-30000")]
    Syntax,
    /// The range holds no even port whose next port is in it too.
    #[error("the range {0}-{1} holds no RTP/RTCP pair (an even port and the next)")]
    Empty(u16, u16),
}

impl PortRange {
    /// The pairs inside `first..=last`: the first even port at or after `first`, then every
    /// second port while its RTCP port (+1) is still `<= last`. Port 0 is never used.
    pub fn new(first: u16, last: u16) -> Result<PortRange, PortRangeError> {
        let first = first.max(2);
        let base = u32::from(first).next_multiple_of(2);
        if base + 1 > u32::from(last) {
            return Err(PortRangeError::Empty(first, last));
        }
        // Pairs whose RTCP port (base + 2i + 1) is <= last.
        let pairs = (u32::from(last) - base).div_ceil(2);
        let base = u16::try_from(base).map_err(|_| PortRangeError::Empty(first, last))?;
        Ok(PortRange { base, pairs })
    }

    /// The first RTP port.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// How many RTP/RTCP pairs the range holds (one per leg).
    pub fn pairs(&self) -> u32 {
        self.pairs
    }

    /// The RTP port of pair `index` (`index < pairs()`).
    pub(crate) fn rtp_port(&self, index: u32) -> u16 {
        // index < pairs, so base + 2·index + 1 <= last <= u16::MAX.
        (u32::from(self.base) + 2 * index) as u16
    }

    /// The pair a local port belongs to and whether it is the RTCP port of it.
    #[inline]
    pub(crate) fn locate(&self, port: u16) -> Option<(u32, bool)> {
        let offset = u32::from(port.checked_sub(self.base)?);
        let pair = offset >> 1;
        (pair < self.pairs).then_some((pair, offset & 1 == 1))
    }
}

impl Default for PortRange {
    /// DESIGN §8's `rtp_ports = 20000-30000`: 5000 pairs from 20000.
    fn default() -> PortRange {
        PortRange {
            base: 20000,
            pairs: 5000,
        }
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    /// `20000-30000` (spaces around the numbers allowed).
    fn from_str(s: &str) -> Result<PortRange, PortRangeError> {
        let (a, b) = s.split_once('-').ok_or(PortRangeError::Syntax)?;
        let a = a.trim().parse().map_err(|_| PortRangeError::Syntax)?;
        let b = b.trim().parse().map_err(|_| PortRangeError::Syntax)?;
        PortRange::new(a, b)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = u32::from(self.base) + 2 * self.pairs - 1;
        write!(f, "{}-{}", self.base, last)
    }
}

/// What the sans-IO relay needs to know (DESIGN §8, `[media]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// `rtp_ports`.
    pub ports: PortRange,
    /// `rtp_timeout`: an answered session with no RTP from either leg for this long (and
    /// not on hold) times out.
    pub rtp_timeout: Duration,
    /// `hold_timeout`: a session on hold this long times out.
    pub hold_timeout: Duration,
    /// How long after the answer a leg that sent no RTP (and is not on hold) is flagged
    /// `no_rtp_from` (DESIGN §8: 5 s).
    pub no_rtp_after: Duration,
    /// Datagrams longer than this are dropped (`oversize`).
    pub max_packet: usize,
}

/// The default `rtp_timeout`.
pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(60);
/// The default `hold_timeout`.
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// When a silent leg is flagged after the answer.
pub const NO_RTP_AFTER: Duration = Duration::from_secs(5);
/// The largest datagram relayed: an Ethernet MTU's payload.
pub const MAX_PACKET: usize = 1500;

impl RelayConfig {
    /// The defaults of DESIGN §8 for `ports`.
    pub fn new(ports: PortRange) -> RelayConfig {
        RelayConfig {
            ports,
            rtp_timeout: DEFAULT_RTP_TIMEOUT,
            hold_timeout: DEFAULT_HOLD_TIMEOUT,
            no_rtp_after: NO_RTP_AFTER,
            max_packet: MAX_PACKET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_even_pairs() {
        let r: PortRange = "20000-30000".parse().unwrap();
        assert_eq!((r.base(), r.pairs()), (20000, 5000));
        assert_eq!(r.to_string(), "20000-29999");
        let r = PortRange::new(20001, 20004).unwrap();
        assert_eq!((r.base(), r.pairs()), (20002, 1));
        assert_eq!(r.locate(20002), Some((0, false)));
        assert_eq!(r.locate(20003), Some((0, true)));
        assert_eq!(r.locate(20004), None);
        assert_eq!(r.locate(20001), None);
        assert_eq!(
            PortRange::new(20001, 20002),
            Err(PortRangeError::Empty(20001, 20002))
        );
        let r = PortRange::new(65534, 65535).unwrap();
        assert_eq!((r.rtp_port(0), r.locate(65535)), (65534, Some((0, true))));
        assert_eq!(PortRange::new(0, 3).unwrap().base(), 2);
        assert_eq!("20000".parse::<PortRange>(), Err(PortRangeError::Syntax));
        assert_eq!(" 10 - 13 ".parse::<PortRange>().unwrap().pairs(), 2);
        assert_eq!(Ok(PortRange::default()), "20000-30000".parse::<PortRange>());
    }
}
