//! The limited STUN server every SIP UDP port must offer for RFC 5626 keep-alives
//! (RFC 5626 §3.5.2, §4.4.2, §8; STUN is RFC 5389). Pure functions, no I/O.
//!
//! A phone using SIP outbound over UDP sends STUN Binding requests on the flow it
//! registered over, every 24–29 s; when no Binding response comes back (or its
//! XOR-MAPPED-ADDRESS changes) it considers the flow failed and registers again. The UDP
//! receive loop tells such datagrams from SIP with [`is_stun`] and answers a Binding
//! request with [`binding_response`]: a Binding success response with the same transaction
//! ID and an XOR-MAPPED-ADDRESS of the request's source (RFC 5389 §7.3.1, §15.2).
//!
//! Nothing is authenticated (the keep-alive usage has no credentials, RFC 5626 §8) and no
//! attribute of the request is needed, so attributes are only checked to be well framed:
//! a request with an unknown comprehension-required attribute is answered too, since an
//! error response would make the phone declare its flow failed (RFC 5626 §4.4.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The magic cookie at bytes 4..8 of every RFC 5389 message (RFC 5389 §6).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Length of the STUN header: type, length, magic cookie, transaction ID (RFC 5389 §6).
pub const HEADER_LEN: usize = 20;
/// Message type of a Binding request (method 0x001, class request).
pub const BINDING_REQUEST: u16 = 0x0001;
/// Message type of a Binding success response (method 0x001, class success response).
pub const BINDING_SUCCESS: u16 = 0x0101;
/// Attribute type of XOR-MAPPED-ADDRESS (RFC 5389 §15.2).
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// Address family codes of (XOR-)MAPPED-ADDRESS (RFC 5389 §15.1).
const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// The 96-bit transaction ID of a STUN message (RFC 5389 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

/// Why a STUN-shaped datagram gets no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than the 20-byte header, or not starting with `00` bits and the magic cookie.
    #[error("not a STUN message ({len} bytes)")]
    NotStun {
        /// Length of the datagram.
        len: usize,
    },
    /// The header's message length is not the size of what follows it, or not a
    /// multiple of 4 (RFC 5389 §6).
    #[error("STUN length field says {declared} bytes, {actual} follow the header")]
    BadLength {
        /// The message length field.
        declared: usize,
        /// Bytes after the header in the datagram.
        actual: usize,
    },
    /// An attribute runs past the end of the message (RFC 5389 §15).
    #[error("STUN attribute at offset {offset} runs past the end of the message")]
    BadAttribute {
        /// Offset of the attribute header in the datagram.
        offset: usize,
    },
    /// A well-framed STUN message that is not a Binding request (an indication, a
    /// response, another method): nothing to answer.
    #[error("STUN message type {message_type:#06x} is not a Binding request")]
    NotBindingRequest {
        /// The message type.
        message_type: u16,
    },
}

/// Whether a UDP datagram is a STUN message rather than SIP: the two top bits of the first
/// byte are zero and bytes 4..8 hold the magic cookie (RFC 5389 §6, RFC 5626 §8: the first
/// byte of a SIP message is never 0 or 1).
pub fn is_stun(datagram: &[u8]) -> bool {
    match datagram {
        [first, _, _, _, c0, c1, c2, c3, ..] => {
            first & 0xC0 == 0 && u32::from_be_bytes([*c0, *c1, *c2, *c3]) == MAGIC_COOKIE
        }
        _ => false,
    }
}

/// Checks that `datagram` is one well-framed Binding request and returns its transaction
/// ID.
///
/// # Errors
/// [`StunError`] saying why it is not (too short, wrong length, bad attribute framing,
/// another message type).
pub fn parse_binding_request(datagram: &[u8]) -> Result<TransactionId, StunError> {
    let not_stun = StunError::NotStun {
        len: datagram.len(),
    };
    if !is_stun(datagram) {
        return Err(not_stun);
    }
    let (Some(header), Some(body)) = (datagram.get(..HEADER_LEN), datagram.get(HEADER_LEN..))
    else {
        return Err(not_stun);
    };
    let Ok::<&[u8; HEADER_LEN], _>(header) = header.try_into() else {
        return Err(not_stun);
    };
    let [t0, t1, l0, l1, _, _, _, _, id @ ..] = *header;
    let message_type = u16::from_be_bytes([t0, t1]);
    let declared = usize::from(u16::from_be_bytes([l0, l1]));
    if declared != body.len() || declared % 4 != 0 {
        return Err(StunError::BadLength {
            declared,
            actual: body.len(),
        });
    }
    check_attributes(body)?;
    if message_type != BINDING_REQUEST {
        return Err(StunError::NotBindingRequest { message_type });
    }
    Ok(TransactionId(id))
}

/// Walks the attributes of a message body: each is a 4-byte header (type, length) and a
/// value padded to a multiple of 4 bytes (RFC 5389 §15), and the last one ends exactly at
/// the end of the body.
fn check_attributes(body: &[u8]) -> Result<(), StunError> {
    let mut pos = 0usize;
    while pos < body.len() {
        let bad = StunError::BadAttribute {
            offset: HEADER_LEN + pos,
        };
        let len = match body.get(pos..pos + 4) {
            Some(&[_, _, l0, l1]) => usize::from(u16::from_be_bytes([l0, l1])),
            _ => return Err(bad),
        };
        let padded = len.div_ceil(4) * 4;
        pos = pos + 4 + padded;
        if pos > body.len() {
            return Err(bad);
        }
    }
    Ok(())
}

/// The Binding success response answering the Binding request `datagram`, received from
/// `source`: same transaction ID, one XOR-MAPPED-ADDRESS attribute holding `source`
/// (RFC 5389 §7.3.1.1, RFC 5626 §8).
///
/// # Errors
/// [`StunError`] when `datagram` is not a well-framed Binding request (see
/// [`parse_binding_request`]): such a datagram is dropped.
pub fn binding_response(datagram: &[u8], source: SocketAddr) -> Result<Vec<u8>, StunError> {
    let id = parse_binding_request(datagram)?;
    Ok(encode_binding_success(&id, source))
}

/// Encodes a Binding success response with one XOR-MAPPED-ADDRESS attribute.
pub fn encode_binding_success(id: &TransactionId, mapped: SocketAddr) -> Vec<u8> {
    let value = encode_xor_mapped_address(id, mapped);
    // At most 20 bytes of value: the length always fits in u16.
    let value_len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + value.len());
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&value_len.saturating_add(4).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(&id.0);
    out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    out.extend_from_slice(&value_len.to_be_bytes());
    out.extend_from_slice(&value);
    out
}

/// The value of an XOR-MAPPED-ADDRESS attribute for `addr` (RFC 5389 §15.2): a zero byte,
/// the family, the port XOR the cookie's top 16 bits, and the address XOR the cookie
/// (IPv4) or XOR the cookie followed by the transaction ID (IPv6). 8 or 20 bytes.
pub fn encode_xor_mapped_address(id: &TransactionId, addr: SocketAddr) -> Vec<u8> {
    let key = xor_key(id);
    let port = addr.port() ^ top16(MAGIC_COOKIE);
    let (family, ip): (u8, Vec<u8>) = match addr.ip() {
        IpAddr::V4(v4) => (FAMILY_IPV4, v4.octets().to_vec()),
        IpAddr::V6(v6) => (FAMILY_IPV6, v6.octets().to_vec()),
    };
    let mut out = Vec::with_capacity(4 + ip.len());
    out.extend_from_slice(&[0, family]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend(ip.iter().zip(key.iter()).map(|(a, k)| a ^ k));
    out
}

/// Decodes the value of an XOR-MAPPED-ADDRESS attribute; `None` when it is malformed.
pub fn decode_xor_mapped_address(id: &TransactionId, value: &[u8]) -> Option<SocketAddr> {
    let key = xor_key(id);
    let (Some(&[_, family, p0, p1]), Some(ip)) = (value.get(..4), value.get(4..)) else {
        return None;
    };
    let port = u16::from_be_bytes([p0, p1]) ^ top16(MAGIC_COOKIE);
    let mut octets = [0u8; 16];
    for ((o, a), k) in octets.iter_mut().zip(ip).zip(key.iter()) {
        *o = a ^ k;
    }
    let ip = match (family, ip.len()) {
        (FAMILY_IPV4, 4) => {
            let [a, b, c, d, ..] = octets;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
        (FAMILY_IPV6, 16) => IpAddr::V6(Ipv6Addr::from(octets)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Finds the first attribute of type `kind` in a whole STUN message and returns its value
/// (without padding); `None` when the message is not well framed or has none.
pub fn find_attribute(message: &[u8], kind: u16) -> Option<&[u8]> {
    let body = message.get(HEADER_LEN..)?;
    let mut pos = 0usize;
    while pos < body.len() {
        let &[t0, t1, l0, l1] = body.get(pos..pos + 4)? else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let value = body.get(pos + 4..pos + 4 + len)?;
        if u16::from_be_bytes([t0, t1]) == kind {
            return Some(value);
        }
        pos = pos + 4 + len.div_ceil(4) * 4;
    }
    None
}

/// The transaction ID of a STUN message (bytes 8..20); `None` if shorter than a header.
pub fn transaction_id(message: &[u8]) -> Option<TransactionId> {
    let bytes: [u8; 12] = message.get(8..HEADER_LEN)?.try_into().ok()?;
    Some(TransactionId(bytes))
}

/// The magic cookie followed by the transaction ID: the XOR key of addresses.
fn xor_key(id: &TransactionId) -> [u8; 16] {
    let [c0, c1, c2, c3] = MAGIC_COOKIE.to_be_bytes();
    let [i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11] = id.0;
    [
        c0, c1, c2, c3, i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11,
    ]
}

fn top16(x: u32) -> u16 {
    // The shift leaves 16 bits: the conversion cannot fail.
    u16::try_from(x >> 16).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 5769 §2.2: sample IPv4 response (SOFTWARE, XOR-MAPPED-ADDRESS 192.0.2.1:32853,
    /// MESSAGE-INTEGRITY, FINGERPRINT).
    const RFC5769_IPV4_RESPONSE: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3: sample IPv6 response (XOR-MAPPED-ADDRESS
    /// [2001:db8:1234:5678:11:2233:4455:6677]:32853).
    const RFC5769_IPV6_RESPONSE: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    const RFC5769_ID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    fn request(id: [u8; 12], attributes: &[u8]) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&u16::try_from(attributes.len()).unwrap().to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&id);
        m.extend_from_slice(attributes);
        m
    }

    #[test]
    fn xor_mapped_address_matches_rfc5769_vectors() {
        for (vector, addr) in [
            (&RFC5769_IPV4_RESPONSE[..], "192.0.2.1:32853"),
            (
                &RFC5769_IPV6_RESPONSE[..],
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            ),
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert!(is_stun(vector));
            let id = transaction_id(vector).unwrap();
            assert_eq!(id, RFC5769_ID);
            let value = find_attribute(vector, XOR_MAPPED_ADDRESS).unwrap();
            assert_eq!(decode_xor_mapped_address(&id, value), Some(addr));
            assert_eq!(encode_xor_mapped_address(&id, addr), value);
            // A response is well framed but nothing to answer.
            assert_eq!(
                parse_binding_request(vector),
                Err(StunError::NotBindingRequest {
                    message_type: BINDING_SUCCESS
                })
            );
        }
    }

    #[test]
    fn answers_a_binding_request_with_its_source() {
        let id = [7u8; 12];
        for source in ["203.0.113.9:5062", "[2001:db8::42]:40000"] {
            let source: SocketAddr = source.parse().unwrap();
            let response = binding_response(&request(id, &[]), source).unwrap();
            assert!(is_stun(&response));
            assert_eq!(&response[..2], &BINDING_SUCCESS.to_be_bytes());
            let declared = usize::from(u16::from_be_bytes([response[2], response[3]]));
            assert_eq!(declared, response.len() - HEADER_LEN);
            assert_eq!(declared % 4, 0);
            assert_eq!(transaction_id(&response), Some(TransactionId(id)));
            let value = find_attribute(&response, XOR_MAPPED_ADDRESS).unwrap();
            assert_eq!(
                decode_xor_mapped_address(&TransactionId(id), value),
                Some(source)
            );
        }
    }

    #[test]
    fn attributes_of_a_request_are_checked_for_framing_only() {
        // SOFTWARE "abc" (padded to 4) and an unknown comprehension-required 0x0077.
        let attrs = [
            0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0, 0x00, 0x77, 0x00, 0x00,
        ];
        assert!(parse_binding_request(&request([1; 12], &attrs)).is_ok());
        // Padding missing: the length field no longer matches what follows.
        let mut cut = request([1; 12], &attrs[..7]);
        assert!(matches!(
            parse_binding_request(&cut),
            Err(StunError::BadLength { .. })
        ));
        // Length field fixed up, but the attribute runs past the end.
        cut.push(0);
        cut[2..4].copy_from_slice(&8u16.to_be_bytes());
        cut[22..24].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(
            parse_binding_request(&cut),
            Err(StunError::BadAttribute { offset: 20 })
        );
    }

    #[test]
    fn drops_what_is_not_a_binding_request() {
        let good = request([2; 12], &[]);
        // Binding indication (RFC 5389 §10): no answer.
        let mut indication = good.clone();
        indication[1] = 0x11;
        assert_eq!(
            parse_binding_request(&indication),
            Err(StunError::NotBindingRequest {
                message_type: 0x0011
            })
        );
        // Truncated header, extra byte, misaligned length.
        assert!(matches!(
            parse_binding_request(&good[..19]),
            Err(StunError::NotStun { len: 19 })
        ));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            parse_binding_request(&longer),
            Err(StunError::BadLength { .. })
        ));
        let mut odd = request([2; 12], &[0; 4]);
        odd[3] = 2;
        odd.truncate(22);
        assert!(matches!(
            parse_binding_request(&odd),
            Err(StunError::BadLength { .. })
        ));
        // SIP, and bytes without the cookie, are not STUN.
        assert!(!is_stun(b"OPTIONS sip:mss SIP/2.0\r\n"));
        assert!(!is_stun(&[0, 1, 0, 0, 0x21, 0x12, 0xa4]));
        assert!(!is_stun(&[0x40, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]));
        assert!(is_stun(&[0x3f, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]));
    }

    #[test]
    fn decode_refuses_malformed_values() {
        let id = TransactionId([0; 12]);
        assert_eq!(decode_xor_mapped_address(&id, &[]), None);
        assert_eq!(decode_xor_mapped_address(&id, &[0, 1, 0, 0, 1, 2, 3]), None);
        assert_eq!(
            decode_xor_mapped_address(&id, &[0, 3, 0, 0, 1, 2, 3, 4]),
            None
        );
        assert_eq!(
            decode_xor_mapped_address(&id, &[0, 2, 0, 0, 1, 2, 3, 4]),
            None
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let source: SocketAddr = "192.0.2.1:5060".parse().unwrap();
            let _ = is_stun(&bytes);
            let _ = binding_response(&bytes, source);
            let _ = find_attribute(&bytes, XOR_MAPPED_ADDRESS);
            let _ = transaction_id(&bytes);
            let _ = decode_xor_mapped_address(&TransactionId([0; 12]), &bytes);
        }

        #[test]
        fn stun_shaped_bytes_never_panic(
            kind in any::<u16>(),
            id in any::<[u8; 12]>(),
            body in proptest::collection::vec(any::<u8>(), 0..96),
            declared in proptest::option::of(any::<u16>()),
        ) {
            // Header that passes `is_stun`, so the length and attribute walks are reached.
            let mut m = (kind & 0x3fff).to_be_bytes().to_vec();
            let len = declared.unwrap_or(u16::try_from(body.len()).unwrap());
            m.extend_from_slice(&len.to_be_bytes());
            m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            m.extend_from_slice(&id);
            m.extend_from_slice(&body);
            let source: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
            if let Ok(response) = binding_response(&m, source) {
                let value = find_attribute(&response, XOR_MAPPED_ADDRESS).unwrap();
                prop_assert_eq!(decode_xor_mapped_address(&TransactionId(id), value), Some(source));
            }
            let _ = find_attribute(&m, kind);
        }

        #[test]
        fn xor_mapped_address_round_trips(id in any::<[u8; 12]>(), v6 in any::<bool>(),
                                          raw in any::<[u8; 16]>(), port in any::<u16>()) {
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(raw))
            } else {
                IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
            };
            let addr = SocketAddr::new(ip, port);
            let id = TransactionId(id);
            let value = encode_xor_mapped_address(&id, addr);
            prop_assert_eq!(decode_xor_mapped_address(&id, &value), Some(addr));
        }
    }
}
