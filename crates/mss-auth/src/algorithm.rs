//! Digest hash algorithms (RFC 7616 §3.2, §6.1; RFC 8760 §2.1) and the
//! `H()` / `KD()` functions built on them.

use std::fmt;

use md5::Md5;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::AuthError;

/// A digest algorithm this crate can compute.
///
/// The derived order is by strength: `Md5 < Sha256`, which is how the
/// client picks among several challenges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617, kept by RFC 7616 for backward compatibility).
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The order a server offers challenges in by default: most preferred
    /// first, as RFC 8760 §2.3 requires ("starting with the most preferred
    /// algorithm at the top").
    pub const PREFERENCE: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    /// Parses an `algorithm` token (case-insensitive, RFC 7616 §3.3).
    ///
    /// # Errors
    ///
    /// [`AuthError::UnsupportedAlgorithm`] for the registered names this
    /// crate does not implement (`MD5-sess`, `SHA-256-sess`, `SHA-512-256`,
    /// `SHA-512-256-sess`), [`AuthError::UnknownAlgorithm`] for anything else.
    pub fn parse(name: &str) -> Result<Algorithm, AuthError> {
        if name.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Ok(Algorithm::Sha256)
        } else if [
            "MD5-sess",
            "SHA-256-sess",
            "SHA-512-256",
            "SHA-512-256-sess",
        ]
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known))
        {
            Err(AuthError::UnsupportedAlgorithm { name: clip(name) })
        } else {
            Err(AuthError::UnknownAlgorithm { name: clip(name) })
        }
    }

    /// The token as it is sent on the wire (`MD5`, `SHA-256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Length of a digest of this algorithm in lower-case hex (RFC 8760 §2.2).
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// `H(p1 ":" p2 ":" …)` into the front of a stack buffer: the parts are fed to the hash one
/// after the other with colons between them (RFC 7616 §3.4.5), no joined string is built.
fn join_digest<D: md5::Digest>(parts: &[&[u8]]) -> [u8; MAX_DIGEST] {
    let mut d = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(part);
    }
    let mut out = [0u8; MAX_DIGEST];
    for (o, r) in out.iter_mut().zip(d.finalize()) {
        *o = r;
    }
    out
}

/// Lower-case hex of `raw` into the front of `out`; returns the written part.
fn hex_lower<'b>(raw: &[u8], out: &'b mut [u8; 2 * MAX_DIGEST]) -> &'b [u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut len = 0;
    for (pair, byte) in out.chunks_exact_mut(2).zip(raw) {
        if let [hi, lo] = pair {
            *hi = DIGITS[usize::from(byte >> 4)];
            *lo = DIGITS[usize::from(byte & 0x0f)];
            len += 2;
        }
    }
    out.get(..len).unwrap_or(&[])
}

/// Keeps an echoed peer value short enough for an error message or log.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `H(unq(username) ":" unq(realm) ":" passwd)` (RFC 7616 §3.4.2), kept
/// instead of the password when a user store does not hold passwords.
///
/// `Debug` does not print the value: an HA1 is a password equivalent.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1 {
    algorithm: Algorithm,
    /// The digest itself (MD5 uses the first 16 bytes): kept raw, not as hex text, so a
    /// directory of 100,000 users holds no heap block per HA1 (~10 MB).
    digest: [u8; MAX_DIGEST],
}

/// Bytes of the longest digest (SHA-256).
const MAX_DIGEST: usize = 32;

impl Ha1 {
    /// Computes the HA1 of a user for one algorithm.
    pub fn compute(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> Ha1 {
        let parts: [&[u8]; 3] = [username.as_bytes(), realm.as_bytes(), password.as_bytes()];
        let digest = match algorithm {
            Algorithm::Md5 => join_digest::<Md5>(&parts),
            Algorithm::Sha256 => join_digest::<Sha256>(&parts),
        };
        Ha1 { algorithm, digest }
    }

    /// Takes a stored HA1 in hex (either case).
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidParam`] (named `ha1`) when the text is not hex of
    /// the algorithm's digest length.
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Ha1, AuthError> {
        let invalid = AuthError::InvalidParam {
            name: "ha1",
            reason: "not a hex digest of the algorithm's length",
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid);
        }
        let mut digest = [0u8; MAX_DIGEST];
        let out = digest.get_mut(..hex.len() / 2).ok_or(invalid.clone())?;
        hex::decode_to_slice(hex, out).map_err(|_| invalid)?;
        Ok(Ha1 { algorithm, digest })
    }

    /// The algorithm this HA1 was computed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The HA1 as lower-case hex, e.g. to store it.
    pub fn to_hex(&self) -> String {
        let (buf, len) = self.hex_buf();
        String::from_utf8_lossy(buf.get(..len).unwrap_or(&[])).into_owned()
    }

    /// The lower-case hex in a stack buffer and its length (the digest input of
    /// `response`, RFC 7616 §3.4.1, is the hex text).
    fn hex_buf(&self) -> ([u8; 2 * MAX_DIGEST], usize) {
        let mut buf = [0u8; 2 * MAX_DIGEST];
        let len = hex_lower(self.raw(), &mut buf).len();
        (buf, len)
    }

    /// The raw digest (16 bytes for MD5, 32 for SHA-256).
    fn raw(&self) -> &[u8] {
        self.digest
            .get(..self.algorithm.hex_len() / 2)
            .unwrap_or(&self.digest)
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ha1")
            .field("algorithm", &self.algorithm)
            .field("hex", &"<redacted>")
            .finish()
    }
}

/// A raw digest in a stack buffer: the first [`RawDigest::len`] bytes are the value.
#[derive(Clone, Copy)]
pub(crate) struct RawDigest {
    bytes: [u8; MAX_DIGEST],
    len: usize,
}

impl RawDigest {
    /// The digest bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }

    /// Whether `hex` spells this digest, in either case. The comparison of the digits
    /// takes the same time wherever they differ (the lengths are not secret).
    pub(crate) fn matches_hex(&self, hex: &str) -> bool {
        let mut want = [0u8; 2 * MAX_DIGEST];
        let want = hex_lower(self.as_bytes(), &mut want);
        if hex.len() != want.len() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
        let mut got = [0u8; 2 * MAX_DIGEST];
        for (g, c) in got.iter_mut().zip(hex.bytes()) {
            // Lower-cases A-F and leaves digits alone.
            *g = c | 0x20;
        }
        // Eight bytes at a time, each word compared in constant time.
        let mut equal = subtle::Choice::from(1);
        for (g, w) in got.chunks_exact(8).zip(want.chunks_exact(8)) {
            let (mut gw, mut ww) = ([0u8; 8], [0u8; 8]);
            gw.copy_from_slice(g);
            ww.copy_from_slice(w);
            equal &= u64::from_le_bytes(gw).ct_eq(&u64::from_le_bytes(ww));
        }
        equal.into()
    }
}

/// `HA2 = H(method ":" uri)` as lower-case hex (RFC 7616 §3.4.3, `qop=auth` or none).
#[derive(Clone, Copy)]
pub(crate) struct Ha2Hex {
    buf: [u8; 2 * MAX_DIGEST],
    len: usize,
}

impl Ha2Hex {
    /// Computes HA2 with `algorithm`.
    pub(crate) fn compute(algorithm: Algorithm, method: &str, uri: &str) -> Ha2Hex {
        let parts: [&[u8]; 2] = [method.as_bytes(), uri.as_bytes()];
        let (raw, raw_len) = match algorithm {
            Algorithm::Md5 => (join_digest::<Md5>(&parts), 16),
            Algorithm::Sha256 => (join_digest::<Sha256>(&parts), 32),
        };
        let mut buf = [0u8; 2 * MAX_DIGEST];
        let len = hex_lower(raw.get(..raw_len).unwrap_or(&raw), &mut buf).len();
        Ha2Hex { buf, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&self.buf)
    }
}

/// The `response` digest (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 without qop), raw.
///
/// `qop` is `Some((nc as 8 hex digits, cnonce))` for `qop=auth`:
/// `KD(HA1, nonce:nc:cnonce:auth:HA2)`; `None` for the RFC 2069 form
/// `KD(HA1, nonce:HA2)`. `HA2 = H(method:uri)` (§3.4.3). Every part is fed to
/// the hash as it is, the hex of HA1 and HA2 is written to stack buffers: no
/// allocation.
pub(crate) fn response_digest(
    ha1: &Ha1,
    nonce: &str,
    qop: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> RawDigest {
    let ha2 = Ha2Hex::compute(ha1.algorithm, method, uri);
    response_digest_with(ha1, nonce, qop, &ha2)
}

/// As [`response_digest`] with HA2 already computed (with the HA1's algorithm).
pub(crate) fn response_digest_with(
    ha1: &Ha1,
    nonce: &str,
    qop: Option<(&str, &str)>,
    ha2: &Ha2Hex,
) -> RawDigest {
    let (ha1_buf, ha1_len) = ha1.hex_buf();
    let input = ResponseInput {
        ha1_hex: ha1_buf.get(..ha1_len).unwrap_or(&[]),
        nonce: nonce.as_bytes(),
        qop,
        ha2_hex: ha2.as_bytes(),
    };
    let (bytes, len) = match ha1.algorithm {
        Algorithm::Md5 => (input.digest::<Md5>(), 16),
        Algorithm::Sha256 => (input.digest::<Sha256>(), 32),
    };
    RawDigest { bytes, len }
}

/// What the `response` digest covers.
struct ResponseInput<'a> {
    ha1_hex: &'a [u8],
    nonce: &'a [u8],
    qop: Option<(&'a str, &'a str)>,
    ha2_hex: &'a [u8],
}

impl ResponseInput<'_> {
    fn digest<D: md5::Digest>(&self) -> [u8; MAX_DIGEST] {
        let mut d = D::new();
        d.update(self.ha1_hex);
        d.update(b":");
        d.update(self.nonce);
        d.update(b":");
        if let Some((nc, cnonce)) = self.qop {
            d.update(nc.as_bytes());
            d.update(b":");
            d.update(cnonce.as_bytes());
            d.update(b":auth:");
        }
        d.update(self.ha2_hex);
        let mut out = [0u8; MAX_DIGEST];
        for (o, r) in out.iter_mut().zip(d.finalize()) {
            *o = r;
        }
        out
    }
}

/// The `response` value as lower-case hex (what a client sends).
pub(crate) fn response_hex(
    ha1: &Ha1,
    nonce: &str,
    qop: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let digest = response_digest(ha1, nonce, qop, method, uri);
    let mut buf = [0u8; 2 * MAX_DIGEST];
    String::from_utf8_lossy(hex_lower(digest.as_bytes(), &mut buf)).into_owned()
}

/// Formats a nonce count as the 8 lower-case hex digits of `nc` (RFC 7616 §3.4).
pub(crate) fn nc_hex(nc: u32) -> String {
    format!("{nc:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!(Algorithm::parse("md5"), Ok(Algorithm::Md5));
        assert_eq!(Algorithm::parse("sha-256"), Ok(Algorithm::Sha256));
        assert!(matches!(
            Algorithm::parse("MD5-sess"),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Algorithm::parse("SHA-256-SESS"),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Algorithm::parse("SHA-512-256"),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Algorithm::parse("rot13"),
            Err(AuthError::UnknownAlgorithm { .. })
        ));
    }

    #[test]
    fn strength_order() {
        assert!(Algorithm::Sha256 > Algorithm::Md5);
        assert_eq!(Algorithm::PREFERENCE[0], Algorithm::Sha256);
    }

    #[test]
    fn sha256_of_empty_matches_rfc8760() {
        // RFC 8760 §2.6 item 7.
        let mut buf = [0u8; 64];
        assert_eq!(
            hex_lower(&join_digest::<Sha256>(&[b""]), &mut buf),
            b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hex_lower(&[0x0a, 0xf1], &mut buf), b"0af1");
    }

    #[test]
    fn rfc7616_example_responses() {
        // RFC 7616 §3.9.1.
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, want) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = Ha1::compute(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
            let got = response_hex(
                &ha1,
                nonce,
                Some(("00000001", cnonce)),
                "GET",
                "/dir/index.html",
            );
            assert_eq!(got, want, "{alg}");
        }
    }

    #[test]
    fn rfc2617_example_response() {
        // RFC 2617 §3.5.
        let ha1 = Ha1::compute(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let got = response_hex(
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(got, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn ha1_from_hex_checks_length_and_redacts() {
        let ha1 = Ha1::compute(Algorithm::Md5, "u", "r", "p");
        let again = Ha1::from_hex(Algorithm::Md5, &ha1.to_hex().to_uppercase()).unwrap();
        assert_eq!(ha1, again);
        assert!(Ha1::from_hex(Algorithm::Sha256, &ha1.to_hex()).is_err());
        assert!(Ha1::from_hex(Algorithm::Md5, &"z".repeat(32)).is_err());
        assert!(!format!("{ha1:?}").contains(&ha1.to_hex()));
    }

    #[test]
    fn digest_matches_its_hex_in_either_case_only() {
        let ha1 = Ha1::compute(Algorithm::Md5, "u", "r", "p");
        let d = response_digest(&ha1, "n", None, "REGISTER", "sip:r");
        let hex = response_hex(&ha1, "n", None, "REGISTER", "sip:r");
        assert!(d.matches_hex(&hex));
        assert!(d.matches_hex(&hex.to_uppercase()));
        assert!(!d.matches_hex(&hex[..30]));
        let mut other = hex.clone().into_bytes();
        other[31] = if other[31] == b'0' { b'1' } else { b'0' };
        assert!(!d.matches_hex(std::str::from_utf8(&other).unwrap()));
        // 0x10 | 0x20 is '0': non-hex bytes never pass for digits.
        let sneaky: String = hex
            .chars()
            .map(|c| if c == '0' { '\u{10}' } else { c })
            .collect();
        assert!(hex.contains('0') && !d.matches_hex(&sneaky));
    }

    #[test]
    fn nc_is_eight_hex_digits() {
        assert_eq!(nc_hex(1), "00000001");
        assert_eq!(nc_hex(0xabc), "00000abc");
    }
}
