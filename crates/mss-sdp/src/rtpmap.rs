//! The RTP payload type map (RFC 8866 §6.6): `a=rtpmap:<payload type> <encoding
//! name>/<clock rate>[/<encoding parameters>]`.

/// A parsed `a=rtpmap:` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpMap<'a> {
    /// The RTP payload type (0 to 127).
    pub payload_type: u8,
    /// The encoding name as written, like `PCMU`, `opus` or `telephone-event`.
    pub encoding: &'a str,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// What follows the clock rate, like the channel count `2` of `opus/48000/2`.
    pub encoding_params: Option<&'a str>,
}

impl<'a> RtpMap<'a> {
    /// Parses the attribute value (what follows `a=rtpmap:`); `None` when it is malformed
    /// (such a line is kept, not read).
    pub(crate) fn parse(value: &'a str) -> Option<RtpMap<'a>> {
        let (payload_type, encoding) = value.trim().split_once([' ', '\t'])?;
        let payload_type = payload_type.parse::<u8>().ok().filter(|pt| *pt <= 127)?;
        let mut parts = encoding.trim_start().splitn(3, '/');
        let encoding = parts.next().filter(|e| !e.is_empty())?;
        let clock_rate = parts.next()?.parse().ok()?;
        Some(RtpMap {
            payload_type,
            encoding,
            clock_rate,
            encoding_params: parts.next(),
        })
    }

    /// Whether this is RFC 4733 telephone-event (DTMF digits as RTP events).
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_rates_and_parameters() {
        assert_eq!(
            RtpMap::parse("96 opus/48000/2"),
            Some(RtpMap {
                payload_type: 96,
                encoding: "opus",
                clock_rate: 48000,
                encoding_params: Some("2"),
            })
        );
        let pcmu = RtpMap::parse("0 PCMU/8000").unwrap();
        assert_eq!((pcmu.encoding, pcmu.encoding_params), ("PCMU", None));
        assert!(RtpMap::parse("101 telephone-event/8000")
            .unwrap()
            .is_telephone_event());
        assert!(RtpMap::parse("101 Telephone-Event/8000 ")
            .unwrap()
            .is_telephone_event());
    }

    #[test]
    fn malformed_maps_are_not_read() {
        for bad in [
            "",
            "0",
            "0 PCMU",
            "128 x/8000",
            "x PCMU/8000",
            "0 /8000",
            "0 PCMU/x",
        ] {
            assert_eq!(RtpMap::parse(bad), None, "{bad}");
        }
    }
}
