//! Self-verifying, time-limited server nonces (RFC 7616 §3.3 "nonce", §5.4).
//!
//! A nonce is `base64url(issued_at || random || origin || mac)` where
//! `issued_at` is the issue time in Unix seconds (8 bytes, big-endian),
//! `random` 10 random bytes, `origin` the 8 bytes of the [`Origin`] it was
//! sent to, and `mac` the first 16 bytes of
//! `HMAC-SHA256(secret, issued_at || random || origin || realm)`. The server
//! needs no table to know that a nonce is its own, for which realm, to whom
//! it was sent and how old it is; keeping the [`NonceSecret`] across restarts
//! keeps issued nonces valid.
//!
//! The origin does not change whether a nonce is valid: a phone whose
//! address changed between the challenge and its answer still
//! authenticates. It tells a wrong answer to a nonce sent to that very
//! origin ([`Nonces::issued_to`]) from one carrying a nonce obtained
//! elsewhere: only the first can come from someone who receives packets
//! there, so only the first may count against it (a spoofed UDP source
//! cannot get its victim banned). The origin is in the clear — it is the
//! requester's own address — and the MAC covers it, so nobody can make a
//! nonce for another origin; checking it costs nothing when the nonce is
//! issued, and one HMAC after a failed answer.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::Sha256;

/// Default nonce lifetime in seconds.
pub const DEFAULT_NONCE_LIFETIME_SECS: u64 = 300;

const TS_LEN: usize = 8;
const RANDOM_LEN: usize = 10;
const ORIGIN_LEN: usize = 8;
/// What the MAC covers besides the realm: time, randomness and origin.
const HEAD_LEN: usize = TS_LEN + RANDOM_LEN + ORIGIN_LEN;
const MAC_LEN: usize = 16;
const RAW_LEN: usize = HEAD_LEN + MAC_LEN;
/// Length of an encoded nonce: 42 bytes in unpadded base64.
pub(crate) const ENCODED_LEN: usize = RAW_LEN / 3 * 4;

/// Whom a nonce is sent to: 8 bytes of the caller's choosing (mss puts the requester's
/// IPv4 address, or the /64 prefix of its IPv6 address). See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Origin(pub [u8; ORIGIN_LEN]);

impl Origin {
    /// No one in particular (all zero).
    pub const NONE: Origin = Origin([0; ORIGIN_LEN]);
}

/// What identifies an authentic nonce in the nonce-count table: its MAC.
pub(crate) type NonceKey = [u8; MAC_LEN];

/// The 32-byte key nonces are signed with.
///
/// `Debug` does not print the key.
#[derive(Clone)]
pub struct NonceSecret([u8; 32]);

impl NonceSecret {
    /// Draws a fresh key from a cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> NonceSecret {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        NonceSecret(key)
    }

    /// Restores a key persisted with [`NonceSecret::as_bytes`].
    pub fn from_bytes(key: [u8; 32]) -> NonceSecret {
        NonceSecret(key)
    }

    /// The raw key, to persist it so that nonces survive a restart.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An HMAC-SHA256 keyed with the secret. The key is zero-padded to the
    /// 64-byte block size, which is exactly what HMAC does with a shorter key
    /// (RFC 2104 §2), so the fixed-size, infallible constructor fits.
    fn mac(&self) -> Hmac<Sha256> {
        let mut block = [0u8; 64];
        for (dst, src) in block.iter_mut().zip(self.0.iter()) {
            *dst = *src;
        }
        <Hmac<Sha256> as Mac>::new(&block.into())
    }
}

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(<redacted>)")
    }
}

/// What [`Nonces::check`] found out about a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours, for this realm, within its lifetime.
    Fresh {
        /// When it was issued (Unix seconds).
        issued_at: u64,
    },
    /// Ours and for this realm, but past its lifetime: answer `stale=true`
    /// if the digest is right (RFC 7616 §3.3 "stale").
    Expired {
        /// When it was issued (Unix seconds).
        issued_at: u64,
    },
    /// Not ours, not for this realm, or damaged (HMAC mismatch, bad encoding).
    Forged,
}

/// Issues and checks nonces for any number of realms.
#[derive(Clone)]
pub struct Nonces {
    secret: NonceSecret,
    /// The HMAC with the secret's inner and outer pads already absorbed: cloning it saves
    /// two of the four SHA-256 blocks each nonce would otherwise hash.
    keyed: Hmac<Sha256>,
    lifetime_secs: u64,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("secret", &self.secret)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces signed with `secret`, valid for `lifetime_secs` seconds.
    pub fn new(secret: NonceSecret, lifetime_secs: u64) -> Nonces {
        Nonces {
            keyed: secret.mac(),
            secret,
            lifetime_secs,
        }
    }

    /// How long a nonce stays fresh, in seconds.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    /// A new nonce for `realm`, issued at `now_unix_secs` to no one in particular
    /// ([`Origin::NONE`]).
    pub fn issue<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        now_unix_secs: u64,
        rng: &mut R,
    ) -> String {
        self.issue_to(realm, now_unix_secs, rng, Origin::NONE)
    }

    /// A new nonce for `realm`, issued at `now_unix_secs` to `origin`.
    pub fn issue_to<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        now_unix_secs: u64,
        rng: &mut R,
        origin: Origin,
    ) -> String {
        let text = self.issue_text(realm, now_unix_secs, rng, origin);
        String::from_utf8_lossy(&text).into_owned()
    }

    /// As [`Nonces::issue_to`], the text in a stack buffer (base64url is ASCII).
    pub(crate) fn issue_text<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        now_unix_secs: u64,
        rng: &mut R,
        origin: Origin,
    ) -> [u8; ENCODED_LEN] {
        let mut raw = [0u8; RAW_LEN];
        let (head, mac_out) = raw.split_at_mut(HEAD_LEN);
        let (ts, rest) = head.split_at_mut(TS_LEN);
        ts.copy_from_slice(&now_unix_secs.to_be_bytes());
        let (random, origin_out) = rest.split_at_mut(RANDOM_LEN);
        rng.fill_bytes(random);
        origin_out.copy_from_slice(&origin.0);
        let tag = self.tag(head, realm);
        for (dst, src) in mac_out.iter_mut().zip(tag.iter()) {
            *dst = *src;
        }
        let mut text = [0u8; ENCODED_LEN];
        // 42 bytes always encode to 56 characters; the buffer is exactly that long.
        let _ = URL_SAFE_NO_PAD.encode_slice(raw, &mut text);
        text
    }

    /// Checks a nonce received in credentials for `realm` at `now_unix_secs`.
    ///
    /// A nonce issued later than `now` (the clock went back) counts as fresh
    /// while it is less than a lifetime ahead, and as expired beyond that.
    pub fn check(&self, nonce: &str, realm: &str, now_unix_secs: u64) -> NonceCheck {
        self.check_keyed(nonce, realm, now_unix_secs).0
    }

    /// As [`Nonces::check`], with the nonce's MAC for an authentic nonce: 16 bytes
    /// that tell it from every other nonce, so the nonce-count table can key on them
    /// instead of the text. The HMAC is computed once.
    pub(crate) fn check_keyed(
        &self,
        nonce: &str,
        realm: &str,
        now_unix_secs: u64,
    ) -> (NonceCheck, NonceKey) {
        let forged = (NonceCheck::Forged, [0u8; MAC_LEN]);
        if nonce.len() != ENCODED_LEN {
            return forged;
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return forged,
        }
        let (head, mac_in) = raw.split_at(HEAD_LEN);
        let mut mac = self.keyed.clone();
        mac.update(head);
        mac.update(realm.as_bytes());
        if mac.verify_truncated_left(mac_in).is_err() {
            return forged;
        }
        let mut key = [0u8; MAC_LEN];
        for (dst, src) in key.iter_mut().zip(mac_in) {
            *dst = *src;
        }
        let mut ts = [0u8; TS_LEN];
        for (dst, src) in ts.iter_mut().zip(head.iter()) {
            *dst = *src;
        }
        let issued_at = u64::from_be_bytes(ts);
        let age = now_unix_secs.abs_diff(issued_at);
        let state = if age <= self.lifetime_secs {
            NonceCheck::Fresh { issued_at }
        } else {
            NonceCheck::Expired { issued_at }
        };
        (state, key)
    }

    /// Whether `nonce` is one of ours for `realm` (at any age) that was issued to
    /// `origin`. A forged or damaged nonce, one of another realm, and one issued to
    /// another origin are not.
    pub fn issued_to(&self, nonce: &str, realm: &str, origin: Origin) -> bool {
        if nonce.len() != ENCODED_LEN {
            return false;
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return false,
        }
        let (head, mac_in) = raw.split_at(HEAD_LEN);
        let mut mac = self.keyed.clone();
        mac.update(head);
        mac.update(realm.as_bytes());
        mac.verify_truncated_left(mac_in).is_ok()
            && head.get(TS_LEN + RANDOM_LEN..) == Some(&origin.0[..])
    }

    /// `HMAC(secret, "mss-auth dummy password" || label)` in hex: a stable,
    /// secret-dependent stand-in password for users that do not exist.
    pub(crate) fn dummy_password(&self, label: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(b"mss-auth dummy password");
        mac.update(label.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn tag(&self, head: &[u8], realm: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(head);
        mac.update(realm.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn nonces() -> Nonces {
        Nonces::new(NonceSecret::from_bytes([7; 32]), 300)
    }

    #[test]
    fn fresh_then_expired() {
        let n = nonces();
        let mut rng = StdRng::seed_from_u64(1);
        let nonce = n.issue("pbx", 1_000, &mut rng);
        assert_eq!(nonce.len(), ENCODED_LEN);
        let (state, key) = n.check_keyed(&nonce, "pbx", 1_000);
        assert_eq!(state, NonceCheck::Fresh { issued_at: 1_000 });
        assert_eq!(URL_SAFE_NO_PAD.decode(&nonce).unwrap()[HEAD_LEN..], key);
        assert_eq!(
            n.check(&nonce, "pbx", 1_000),
            NonceCheck::Fresh { issued_at: 1_000 }
        );
        assert_eq!(
            n.check(&nonce, "pbx", 1_300),
            NonceCheck::Fresh { issued_at: 1_000 }
        );
        assert_eq!(
            n.check(&nonce, "pbx", 1_301),
            NonceCheck::Expired { issued_at: 1_000 }
        );
        // Clock went back a little: still fresh; a lot: expired.
        assert_eq!(
            n.check(&nonce, "pbx", 900),
            NonceCheck::Fresh { issued_at: 1_000 }
        );
        assert_eq!(
            n.check(&nonce, "pbx", 0),
            NonceCheck::Expired { issued_at: 1_000 }
        );
    }

    #[test]
    fn bound_to_realm_and_secret() {
        let n = nonces();
        let mut rng = StdRng::seed_from_u64(2);
        let nonce = n.issue("pbx", 50, &mut rng);
        assert_eq!(n.check(&nonce, "other", 50), NonceCheck::Forged);
        let other = Nonces::new(NonceSecret::from_bytes([8; 32]), 300);
        assert_eq!(other.check(&nonce, "pbx", 50), NonceCheck::Forged);
        // Survives a "restart" with the persisted secret.
        let restored = Nonces::new(NonceSecret::from_bytes(*n.secret.as_bytes()), 300);
        assert_eq!(
            restored.check(&nonce, "pbx", 60),
            NonceCheck::Fresh { issued_at: 50 }
        );
    }

    #[test]
    fn tampered_nonce_is_forged() {
        let n = nonces();
        let mut rng = StdRng::seed_from_u64(3);
        let nonce = n.issue("pbx", 50, &mut rng);
        // Flip one character of the timestamp part (push expiry out).
        let mut bytes = nonce.into_bytes();
        bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(n.check(&tampered, "pbx", 50), NonceCheck::Forged);
        assert_eq!(n.check("", "pbx", 50), NonceCheck::Forged);
        assert_eq!(
            n.check(&"!".repeat(ENCODED_LEN), "pbx", 50),
            NonceCheck::Forged
        );
    }

    #[test]
    fn the_origin_is_told_but_does_not_change_validity() {
        let n = nonces();
        let mut rng = StdRng::seed_from_u64(5);
        let a = Origin([0, 0, 0, 0, 203, 0, 113, 7]);
        let b = Origin([0, 0, 0, 0, 203, 0, 113, 8]);
        let nonce = n.issue_to("pbx", 50, &mut rng, a);
        assert_eq!(nonce.len(), ENCODED_LEN);
        assert_eq!(
            n.check(&nonce, "pbx", 60),
            NonceCheck::Fresh { issued_at: 50 }
        );
        assert!(n.issued_to(&nonce, "pbx", a));
        assert!(!n.issued_to(&nonce, "pbx", b));
        assert!(!n.issued_to(&nonce, "pbx", Origin::NONE));
        assert!(!n.issued_to(&nonce, "other", a));
        // At any age: an expired nonce is still the one sent to `a`.
        assert_eq!(
            n.check(&nonce, "pbx", 10_000),
            NonceCheck::Expired { issued_at: 50 }
        );
        // Not by another secret, nor once its origin is rewritten (the MAC covers it).
        let other = Nonces::new(NonceSecret::from_bytes([8; 32]), 300);
        assert!(!other.issued_to(&nonce, "pbx", a));
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        raw[TS_LEN + RANDOM_LEN + ORIGIN_LEN - 1] = 8;
        let rewritten = URL_SAFE_NO_PAD.encode(raw);
        assert!(!n.issued_to(&rewritten, "pbx", b));
        assert_eq!(n.check(&rewritten, "pbx", 60), NonceCheck::Forged);
        assert!(!n.issued_to("short", "pbx", a));
        assert!(!n.issued_to(&"!".repeat(ENCODED_LEN), "pbx", a));
        // A nonce issued to no one in particular.
        let plain = n.issue("pbx", 50, &mut rng);
        assert!(n.issued_to(&plain, "pbx", Origin::NONE));
        assert!(!n.issued_to(&plain, "pbx", a));
    }

    #[test]
    fn nonces_differ_and_secret_is_redacted() {
        let n = nonces();
        let mut rng = StdRng::seed_from_u64(4);
        assert_ne!(n.issue("pbx", 1, &mut rng), n.issue("pbx", 1, &mut rng));
        let dbg = format!("{:?}", n);
        assert!(dbg.contains("redacted"));
        assert!(!dbg.contains("7, 7"));
        let secret = NonceSecret::generate(&mut rand::rngs::OsRng);
        assert_ne!(secret.as_bytes(), &[0; 32]);
    }
}
