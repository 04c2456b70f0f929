//! The server side: challenges and verification of credentials
//! (RFC 7616 §3.3–3.6, RFC 8760 §2.3, RFC 3261 §22.4).
//!
//! Policies, and why:
//! - **Order of challenges**: most preferred first (RFC 8760 §2.3), by
//!   default SHA-256 then MD5; [`ServerConfig::algorithms`] changes it, e.g.
//!   MD5 first for peers that only read the first header.
//! - **Replayed `nc`** → [`Verdict::Replay`]. The digest was right, so the
//!   sender knows the password or replays a captured request; answer with a
//!   fresh challenge and `stale=true` ([`Verdict::is_stale`]): an honest
//!   client retries without user interaction, a replayer gains nothing.
//! - **No `qop`** (RFC 2617 / RFC 2069 form): accepted at most once per
//!   nonce when [`ServerConfig::allow_no_qop`] is set (default), since
//!   such a response carries no count to detect a replay; refused
//!   ([`Verdict::Invalid`]) otherwise.
//! - **Expired nonce**: `Stale` only when the digest is right (RFC 7616
//!   §3.3: "only set stale to TRUE if … a valid digest for that nonce");
//!   with a wrong digest it is `Invalid`.
//! - **Whose failure**: every nonce carries the [`Origin`] it was sent to,
//!   under its MAC (`nonce.rs`); [`DigestServer::issued_to`] tells an
//!   `Invalid` answer to a nonce sent to the answering origin (a failed
//!   guess by whoever is there) from one carrying a nonce got elsewhere, so
//!   the caller can count the first kind against the origin and ignore the
//!   second, which a spoofed source can send. The verdicts do not change.

use rand::RngCore;

use crate::challenge::challenge_value;
use crate::ha2_cache::Ha2Cache;
use crate::nonce::{Nonces, Origin, DEFAULT_NONCE_LIFETIME_SECS};
use crate::params::check_quotable;
use crate::replay::{NonceCounts, DEFAULT_MAX_TRACKED_NONCES};
use crate::{Algorithm, AuthError, Ha1, NonceSecret};

/// Settings of a [`DigestServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Seconds a nonce stays fresh (default 300).
    pub nonce_lifetime_secs: u64,
    /// Algorithms offered, one challenge each, most preferred first
    /// (default [`Algorithm::PREFERENCE`]: SHA-256, MD5). Credentials using
    /// an algorithm not listed are `Invalid`.
    pub algorithms: Vec<Algorithm>,
    /// Most nonces whose counts are remembered (default 65 536).
    pub max_tracked_nonces: usize,
    /// Accept a response without `qop` once per nonce (default `true`).
    pub allow_no_qop: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            nonce_lifetime_secs: DEFAULT_NONCE_LIFETIME_SECS,
            algorithms: Algorithm::PREFERENCE.to_vec(),
            max_tracked_nonces: DEFAULT_MAX_TRACKED_NONCES,
            allow_no_qop: true,
        }
    }
}

/// Issues challenges and verifies credentials; owns the nonce-count table.
///
/// Sans-IO: time (`now_unix_secs`) and randomness are inputs.
pub struct DigestServer {
    pub(crate) nonces: Nonces,
    pub(crate) counts: NonceCounts,
    pub(crate) config: ServerConfig,
    /// Password checked for unknown users (see [`DigestServer::verify_unknown_user`]).
    pub(crate) dummy_password: String,
    /// HA1s of the stand-in password, MD5 then SHA-256 (see
    /// [`DigestServer::verify_unknown_user_ha1`]).
    pub(crate) dummy_ha1: [Ha1; 2],
    /// The last HA2 computed.
    pub(crate) ha2: Ha2Cache,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("nonces", &self.nonces)
            .field("tracked_nonces", &self.counts.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// A server signing nonces with `secret`.
    pub fn new(secret: NonceSecret, config: ServerConfig) -> DigestServer {
        let nonces = Nonces::new(secret, config.nonce_lifetime_secs);
        let dummy_password = nonces.dummy_password("unknown user");
        let dummy_ha1 = [Algorithm::Md5, Algorithm::Sha256]
            .map(|alg| Ha1::compute(alg, "unknown user", "", &dummy_password));
        DigestServer {
            counts: NonceCounts::new(config.max_tracked_nonces),
            nonces,
            config,
            dummy_password,
            dummy_ha1,
            ha2: Ha2Cache::default(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// A fresh nonce for `realm`.
    pub fn issue_nonce<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        now_unix_secs: u64,
        rng: &mut R,
    ) -> String {
        self.nonces.issue(realm, now_unix_secs, rng)
    }

    /// A fresh nonce for `realm`, sent to `origin` (see [`DigestServer::issued_to`]).
    pub fn issue_nonce_to<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        now_unix_secs: u64,
        rng: &mut R,
        origin: Origin,
    ) -> String {
        self.nonces.issue_to(realm, now_unix_secs, rng, origin)
    }

    /// Whether `nonce` is one this server issued for `realm` to `origin` (at any age): a
    /// wrong answer to it comes from someone who received our challenge there, while a
    /// forged nonce, or one issued to another origin, may come from anyone (a spoofed UDP
    /// source). One HMAC; meant for answers that failed.
    pub fn issued_to(&self, nonce: &str, realm: &str, origin: Origin) -> bool {
        self.nonces.issued_to(nonce, realm, origin)
    }

    /// The challenges for a `401`/`407`, one per configured algorithm in
    /// preference order, sharing one fresh nonce (as RFC 7616 §3.9.1 does).
    /// Each string is one `WWW-Authenticate` / `Proxy-Authenticate` value.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidParam`] when `realm` cannot be sent in a quoted-string.
    pub fn challenges<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        stale: bool,
        now_unix_secs: u64,
        rng: &mut R,
    ) -> Result<Vec<String>, AuthError> {
        self.challenges_for(realm, stale, &self.config.algorithms, now_unix_secs, rng)
    }

    /// As [`DigestServer::challenges`] with the algorithms (and their order)
    /// given per call, e.g. MD5 alone for a user known to use SIPp, which
    /// answers only MD5. Algorithms outside [`ServerConfig::algorithms`] are
    /// not accepted by [`DigestServer::verify`], so keep to a subset.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidParam`] when `realm` cannot be sent in a quoted-string.
    pub fn challenges_for<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        stale: bool,
        algorithms: &[Algorithm],
        now_unix_secs: u64,
        rng: &mut R,
    ) -> Result<Vec<String>, AuthError> {
        let mut values = Vec::with_capacity(algorithms.len());
        let origin = Origin::NONE;
        self.challenge_values(realm, stale, algorithms, now_unix_secs, rng, origin, |v| {
            values.push(String::from_utf8_lossy(&v).into_owned());
        })?;
        Ok(values)
    }

    /// As [`DigestServer::challenges_for`], with the nonce sent to `origin` (the
    /// requester: see [`DigestServer::issued_to`]), handing each value to `push` as bytes
    /// in a buffer of exactly its length (so it becomes a `bytes::Bytes` without a copy or
    /// a second allocation). The nonce is built on the stack; one allocation per value.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidParam`] when `realm` cannot be sent in a quoted-string.
    #[allow(clippy::too_many_arguments)]
    pub fn challenge_values<R: RngCore + ?Sized>(
        &self,
        realm: &str,
        stale: bool,
        algorithms: &[Algorithm],
        now_unix_secs: u64,
        rng: &mut R,
        origin: Origin,
        mut push: impl FnMut(Vec<u8>),
    ) -> Result<(), AuthError> {
        check_quotable("realm", realm)?;
        let nonce = self.nonces.issue_text(realm, now_unix_secs, rng, origin);
        for alg in algorithms {
            push(challenge_value(realm, &nonce, *alg, stale));
        }
        Ok(())
    }

    /// Drops the counts of expired nonces; call now and then (e.g. with the
    /// registrar's expiry sweep). Verification also does it when the table is full.
    pub fn handle_timeout(&mut self, now_unix_secs: u64) {
        self.counts
            .purge_expired(now_unix_secs, self.nonces.lifetime_secs());
    }

    /// Number of nonces whose counts are remembered.
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::response_hex;
    use crate::{Challenge, Credentials, QopAuth, UserSecret, Verdict};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const REALM: &str = "pbx.example.com";
    const URI: &str = "sip:pbx.example.com";

    fn server() -> DigestServer {
        DigestServer::new(NonceSecret::from_bytes([1; 32]), ServerConfig::default())
    }

    /// The credentials a client would send in answer to `challenge`
    /// (the header text round trip is tested in `tests/round_trip.rs`).
    fn answer(challenge: &Challenge, password: &str, nc: u32) -> Credentials {
        let ha1 = Ha1::compute(challenge.algorithm(), "100", challenge.realm(), password);
        let qop = challenge.qop_auth().then(|| QopAuth {
            cnonce: "c0ffee".to_owned(),
            nc,
            nc_text: format!("{nc:08x}"),
        });
        let response = response_hex(
            &ha1,
            challenge.nonce(),
            qop.as_ref()
                .map(|q| (q.nc_text.as_str(), q.cnonce.as_str())),
            "REGISTER",
            URI,
        );
        Credentials {
            username: "100".to_owned(),
            realm: challenge.realm().to_owned(),
            nonce: challenge.nonce().to_owned(),
            uri: URI.to_owned(),
            algorithm: challenge.algorithm(),
            qop,
            opaque: None,
            response,
        }
    }

    fn challenge_at(s: &DigestServer, alg: Algorithm, now: u64, seed: u64) -> Challenge {
        let nonce = s.issue_nonce(REALM, now, &mut StdRng::seed_from_u64(seed));
        Challenge::new(REALM, &nonce, alg).unwrap()
    }

    #[test]
    fn round_trip_both_algorithms() {
        let mut s = server();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let c = challenge_at(&s, alg, 1_000, alg as u64);
            let creds = answer(&c, "s3cret", 1);
            assert_eq!(creds.algorithm, alg);
            assert_eq!(
                s.verify(
                    &creds,
                    "REGISTER",
                    UserSecret::Password("s3cret"),
                    REALM,
                    1_010
                ),
                Verdict::Ok
            );
            let ha1 = Ha1::compute(alg, "100", REALM, "s3cret");
            let creds2 = answer(&c, "s3cret", 2);
            assert_eq!(
                s.verify(&creds2, "REGISTER", UserSecret::Ha1(&ha1), REALM, 1_020),
                Verdict::Ok
            );
        }
    }

    #[test]
    fn challenges_in_configured_order() {
        let s = server();
        let mut rng = StdRng::seed_from_u64(9);
        let v = s.challenges(REALM, false, 5, &mut rng).unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].contains("algorithm=SHA-256"));
        assert!(v[1].contains("algorithm=MD5"));
        assert!(v[0].starts_with(r#"Digest realm="pbx.example.com", nonce=""#));
        assert!(v[0].ends_with(r#"qop="auth""#));
        let md5_first = DigestServer::new(
            NonceSecret::from_bytes([1; 32]),
            ServerConfig {
                algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
                ..ServerConfig::default()
            },
        );
        let v = md5_first.challenges(REALM, true, 5, &mut rng).unwrap();
        assert!(v[0].contains("stale=true, algorithm=MD5"));
        let v = s
            .challenges_for(REALM, false, &[Algorithm::Md5], 5, &mut rng)
            .unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("algorithm=MD5"));
        assert!(s.challenges(r#"bad"realm\n"#, false, 5, &mut rng).is_ok());
        assert!(s.challenges("bad\nrealm", false, 5, &mut rng).is_err());
    }

    #[test]
    fn wrong_password_and_unknown_user_are_invalid() {
        let mut s = server();
        let c = challenge_at(&s, Algorithm::Sha256, 0, 1);
        let creds = answer(&c, "guess", 1);
        assert_eq!(
            s.verify(&creds, "REGISTER", UserSecret::Password("s3cret"), REALM, 0),
            Verdict::Invalid
        );
        assert_eq!(
            s.verify_unknown_user(&creds, "REGISTER", REALM, 0),
            Verdict::Invalid
        );
        // Also for an expired nonce: no stale hint without a right digest.
        assert_eq!(
            s.verify_unknown_user(&creds, "REGISTER", REALM, 10_000),
            Verdict::Invalid
        );
        assert_eq!(
            s.verify(
                &creds,
                "REGISTER",
                UserSecret::Password("s3cret"),
                REALM,
                10_000
            ),
            Verdict::Invalid
        );
        // Failed attempts leave no state behind.
        assert_eq!(s.tracked_nonces(), 0);
        // Method is covered by the digest.
        let ok = answer(&c, "s3cret", 1);
        assert_eq!(
            s.verify(&ok, "INVITE", UserSecret::Password("s3cret"), REALM, 0),
            Verdict::Invalid
        );
    }

    #[test]
    fn a_failure_is_told_apart_by_the_origin_the_nonce_was_sent_to() {
        let mut s = server();
        let here = Origin([0, 0, 0, 0, 198, 51, 100, 4]);
        let there = Origin([0, 0, 0, 0, 198, 51, 100, 5]);
        let nonce = s.issue_nonce_to(REALM, 0, &mut StdRng::seed_from_u64(11), here);
        let c = Challenge::new(REALM, &nonce, Algorithm::Md5).unwrap();
        let pw = UserSecret::Password("s3cret");
        // Valid wherever it is used: the origin changes no verdict.
        assert_eq!(
            s.verify(&answer(&c, "s3cret", 1), "REGISTER", pw, REALM, 1),
            Verdict::Ok
        );
        let wrong = answer(&c, "guess", 2);
        assert_eq!(s.verify(&wrong, "REGISTER", pw, REALM, 1), Verdict::Invalid);
        assert!(s.issued_to(&wrong.nonce, REALM, here));
        assert!(!s.issued_to(&wrong.nonce, REALM, there));
        assert!(!s.issued_to(&wrong.nonce, "other.example", here));
        let nonce_of = |v: &str| {
            let rest = v.split("nonce=\"").nth(1).unwrap();
            rest.split('"').next().unwrap().to_owned()
        };
        let mut rng = StdRng::seed_from_u64(12);
        let anyone = s
            .challenges_for(REALM, false, &[Algorithm::Md5], 0, &mut rng)
            .unwrap();
        assert!(!s.issued_to(&nonce_of(&anyone[0]), REALM, here));
        let mut sent = Vec::new();
        s.challenge_values(REALM, false, &[Algorithm::Md5], 0, &mut rng, here, |v| {
            sent.push(String::from_utf8(v).unwrap());
        })
        .unwrap();
        assert!(s.issued_to(&nonce_of(&sent[0]), REALM, here));
        assert!(!s.issued_to(&nonce_of(&sent[0]), REALM, there));
    }

    #[test]
    fn stale_after_lifetime() {
        let mut s = server();
        let c = challenge_at(&s, Algorithm::Md5, 1_000, 2);
        let creds = answer(&c, "s3cret", 1);
        let v = s.verify(
            &creds,
            "REGISTER",
            UserSecret::Password("s3cret"),
            REALM,
            1_301,
        );
        assert_eq!(v, Verdict::Stale);
        assert!(v.is_stale());
        assert_eq!(s.tracked_nonces(), 0);
    }

    #[test]
    fn replayed_nc_refused() {
        let mut s = server();
        let c = challenge_at(&s, Algorithm::Sha256, 0, 3);
        let creds = answer(&c, "s3cret", 1);
        let pw = UserSecret::Password("s3cret");
        assert_eq!(s.verify(&creds, "REGISTER", pw, REALM, 1), Verdict::Ok);
        let again = s.verify(&creds, "REGISTER", pw, REALM, 2);
        assert_eq!(again, Verdict::Replay);
        assert!(again.is_stale());
        assert_eq!(
            s.verify(&answer(&c, "s3cret", 2), "REGISTER", pw, REALM, 3),
            Verdict::Ok
        );
    }

    #[test]
    fn tampered_nonce_is_invalid_not_stale() {
        let mut s = server();
        let c = challenge_at(&s, Algorithm::Md5, 0, 4);
        let mut nonce = c.nonce().to_owned().into_bytes();
        nonce[5] = if nonce[5] == b'x' { b'y' } else { b'x' };
        let forged =
            Challenge::new(REALM, std::str::from_utf8(&nonce).unwrap(), Algorithm::Md5).unwrap();
        // The client computes a correct digest over the forged nonce.
        let creds = answer(&forged, "s3cret", 1);
        let pw = UserSecret::Password("s3cret");
        assert_eq!(s.verify(&creds, "REGISTER", pw, REALM, 1), Verdict::Invalid);
        assert_eq!(
            s.verify(&creds, "REGISTER", pw, REALM, 100_000),
            Verdict::Invalid
        );
        // A nonce of another realm is forged for this one.
        let other = s.issue_nonce("other.example", 0, &mut StdRng::seed_from_u64(5));
        let c = Challenge::new(REALM, &other, Algorithm::Md5).unwrap();
        assert_eq!(
            s.verify(&answer(&c, "s3cret", 1), "REGISTER", pw, REALM, 1),
            Verdict::Invalid
        );
    }

    #[test]
    fn realm_algorithm_and_ha1_mismatches_are_invalid() {
        let mut s = DigestServer::new(
            NonceSecret::from_bytes([1; 32]),
            ServerConfig {
                algorithms: vec![Algorithm::Sha256],
                ..ServerConfig::default()
            },
        );
        let pw = UserSecret::Password("s3cret");
        // MD5 not offered.
        let c = challenge_at(&s, Algorithm::Md5, 0, 6);
        assert_eq!(
            s.verify(&answer(&c, "s3cret", 1), "REGISTER", pw, REALM, 1),
            Verdict::Invalid
        );
        // HA1 of the wrong algorithm.
        let c = challenge_at(&s, Algorithm::Sha256, 0, 7);
        let md5_ha1 = Ha1::compute(Algorithm::Md5, "100", REALM, "s3cret");
        assert_eq!(
            s.verify(
                &answer(&c, "s3cret", 1),
                "REGISTER",
                UserSecret::Ha1(&md5_ha1),
                REALM,
                1
            ),
            Verdict::Invalid
        );
        // Credentials for another realm.
        assert_eq!(
            s.verify(&answer(&c, "s3cret", 2), "REGISTER", pw, "elsewhere", 1),
            Verdict::Invalid
        );
    }

    #[test]
    fn no_qop_once_or_never() {
        let mut s = server();
        let nonce = s.issue_nonce(REALM, 0, &mut StdRng::seed_from_u64(8));
        let c = Challenge::from_params([("realm", REALM), ("nonce", nonce.as_str())]).unwrap();
        assert!(!c.qop_auth());
        let creds = answer(&c, "s3cret", 1);
        assert!(creds.qop.is_none());
        let pw = UserSecret::Password("s3cret");
        assert_eq!(s.verify(&creds, "REGISTER", pw, REALM, 1), Verdict::Ok);
        assert_eq!(s.verify(&creds, "REGISTER", pw, REALM, 2), Verdict::Replay);

        let mut strict = DigestServer::new(
            NonceSecret::from_bytes([1; 32]),
            ServerConfig {
                allow_no_qop: false,
                ..ServerConfig::default()
            },
        );
        let nonce = strict.issue_nonce(REALM, 0, &mut StdRng::seed_from_u64(8));
        let c = Challenge::from_params([("realm", REALM), ("nonce", nonce.as_str())]).unwrap();
        assert_eq!(
            strict.verify(&answer(&c, "s3cret", 1), "REGISTER", pw, REALM, 1),
            Verdict::Invalid
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let s = server();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(&s.dummy_password));
    }
}
