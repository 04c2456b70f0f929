//! Clients known to fail on a SHA-256 digest challenge, recognised by their `User-Agent`.
//!
//! RFC 8760 §2.4 asks a client to pick the challenge it supports among several and ignore
//! the others. Some deployed clients instead give up when any challenge names an algorithm
//! they do not know. On the default `digest_algorithms` such a client gets the MD5
//! challenge alone, so that every common phone registers out of the box; every other
//! client still gets MD5 and SHA-256. An operator who sets `digest_algorithms` explicitly
//! gets exactly that list for every client (see [`crate::digest::Offer`]).
//!
//! The table, and how each entry was found:
//!
//! | client | `User-Agent` | fails before | seen |
//! |---|---|---|---|
//! | baresip (libre) | `baresip v1.0.0 (x86_64/linux)` | 3.11 | Debian's baresip 1.0 answers a `401` with MD5 and SHA-256 challenges with "Register: Function not implemented": libre's challenge handler stops at the first header whose algorithm is not MD5; SHA-256 arrived in libre/baresip 3.11 (2024) |
//! | JsSIP | `JsSIP 3.13.8` | every version (3.13.8 is the latest) | JsSIP in Chromium (`crates/mss/tests/ws_browser.rs`) fails its REGISTER with "Authentication Error" and logs `challenge with Digest algorithm different than "MD5", authentication aborted`: its parser keeps only the last `WWW-Authenticate` / `Proxy-Authenticate` of a response (`setHeader` replaces the earlier ones), which is SHA-256 after MD5, and its digest code knows MD5 alone |
//!
//! A match is a prefix of the `User-Agent` (ASCII case-insensitive) followed by a version
//! `MAJOR.MINOR…` below the one in the table (any version when no fixed one is known); a
//! recognised client whose version cannot be read is taken to be old (an MD5 challenge is
//! what every such client can answer).

/// One client family that cannot answer a SHA-256 challenge before some version.
struct Md5OnlyClient {
    /// What its `User-Agent` starts with, up to the version (lowercase).
    prefix: &'static [u8],
    /// The first `(major, minor)` version that handles SHA-256 challenges; `None` while
    /// no version does.
    fixed_in: Option<(u32, u32)>,
}

/// The clients that get the MD5 challenge alone on the default algorithms.
const MD5_ONLY: &[Md5OnlyClient] = &[
    Md5OnlyClient {
        prefix: b"baresip v",
        fixed_in: Some((3, 11)),
    },
    Md5OnlyClient {
        prefix: b"jssip ",
        fixed_in: None,
    },
];

/// Whether the client that sent `user_agent` is known to fail when a challenge names
/// SHA-256.
pub(crate) fn fails_on_sha256(user_agent: &[u8]) -> bool {
    MD5_ONLY.iter().any(|c| {
        let Some(rest) = strip_prefix_ignore_case(user_agent, c.prefix) else {
            return false;
        };
        match (version(rest), c.fixed_in) {
            (Some(v), Some(fixed)) => v < fixed,
            _ => true,
        }
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `MAJOR.MINOR` at the start of `s` (`1.0.0 (x86_64/linux)` → `(1, 0)`).
fn version(s: &[u8]) -> Option<(u32, u32)> {
    let (major, rest) = number(s)?;
    let rest = rest.strip_prefix(b".")?;
    let (minor, _) = number(rest)?;
    Some((major, minor))
}

/// A decimal number of at most 9 digits at the start of `s`, and what follows it.
fn number(s: &[u8]) -> Option<(u32, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let n = s[..digits]
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    Some((n, &s[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_baresip_is_recognised() {
        // Debian bookworm's baresip, as it writes its User-Agent.
        assert!(fails_on_sha256(b"baresip v1.0.0 (x86_64/linux)"));
        assert!(fails_on_sha256(b"baresip v2.12.0 (aarch64/Linux)"));
        assert!(fails_on_sha256(b"baresip v3.10.1 (x86_64/linux)"));
        assert!(fails_on_sha256(b"Baresip V0.6.6"));
        // Recognised, but no version to read: treated as old.
        assert!(fails_on_sha256(b"baresip v"));
        assert!(fails_on_sha256(b"baresip vx.y"));
        // A version too long to be one is unreadable, not an overflow.
        assert!(fails_on_sha256(b"baresip v99999999999.1"));
    }

    #[test]
    fn every_jssip_is_recognised() {
        assert!(fails_on_sha256(b"JsSIP 3.13.8"));
        assert!(fails_on_sha256(b"JsSIP 3.10.0"));
        assert!(fails_on_sha256(b"jssip 4.0"));
        assert!(fails_on_sha256(b"JsSIP "));
        assert!(!fails_on_sha256(b"JsSIPx 3.13.8"));
        assert!(!fails_on_sha256(b"SIP.js/0.21.2"));
    }

    #[test]
    fn new_baresip_and_other_clients_get_every_algorithm() {
        assert!(!fails_on_sha256(b"baresip v3.11.0 (x86_64/linux)"));
        assert!(!fails_on_sha256(b"baresip v4.0.0 (x86_64/linux)"));
        assert!(!fails_on_sha256(b"PJSUA v2.15 Linux-6.1/x86_64/glibc-2.36"));
        assert!(!fails_on_sha256(
            b"Linphone Desktop/5.1.2 (Debian GNU/Linux 12)"
        ));
        assert!(!fails_on_sha256(b"sipsak 0.9.8"));
        assert!(!fails_on_sha256(b""));
        assert!(!fails_on_sha256(b"baresi"));
        // Not a prefix: a product that only mentions baresip.
        assert!(!fails_on_sha256(b"my-phone (like baresip v1.0.0)"));
    }
}
