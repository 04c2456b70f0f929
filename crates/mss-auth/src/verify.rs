//! Verification of credentials by [`DigestServer`] (RFC 7616 §3.4–3.5, RFC 2617 §3.2.2),
//! policies in `server.rs`.
//!
//! The common path allocates nothing: the credentials are borrowed
//! ([`CredentialsRef`]), HA1 and HA2 are hex-encoded into stack buffers and fed to the
//! hash piece by piece (HA2 reused while method and URI repeat), the client's `response` is decoded to raw bytes on the stack and
//! compared in constant time, the nonce's HMAC is computed once and its MAC keys the
//! nonce-count table.

use crate::algorithm::response_digest_with;
use crate::nonce::NonceCheck;
use crate::replay::{CountCheck, NonceUse};
use crate::{Algorithm, Credentials, CredentialsRef, DigestServer, Ha1, UserSecret, Verdict};

impl DigestServer {
    /// Checks `creds` sent with a request of `method` against a known
    /// user's secret, for our `expected_realm`, at `now_unix_secs`.
    ///
    /// The response is compared in constant time. A nonce count is recorded
    /// only when the digest is right.
    pub fn verify(
        &mut self,
        creds: &Credentials,
        method: &str,
        secret: UserSecret<'_>,
        expected_realm: &str,
        now_unix_secs: u64,
    ) -> Verdict {
        self.verify_ref(
            &creds.as_borrowed(),
            method,
            secret,
            expected_realm,
            now_unix_secs,
        )
    }

    /// As [`DigestServer::verify`] for borrowed credentials.
    pub fn verify_ref(
        &mut self,
        creds: &CredentialsRef<'_>,
        method: &str,
        secret: UserSecret<'_>,
        expected_realm: &str,
        now_unix_secs: u64,
    ) -> Verdict {
        match secret {
            UserSecret::Password(password) => {
                let ha1 = Ha1::compute(creds.algorithm, creds.username, creds.realm, password);
                self.check(creds, method, Some(&ha1), expected_realm, now_unix_secs)
            }
            UserSecret::Ha1(ha1) => {
                self.check(creds, method, Some(ha1), expected_realm, now_unix_secs)
            }
        }
    }

    /// Runs the same work as [`DigestServer::verify`] with a password against a
    /// stand-in password, for a `username` that does not exist, and returns
    /// [`Verdict::Invalid`] — exactly what a wrong password gives, so
    /// neither the answer nor its timing reveals which users exist.
    pub fn verify_unknown_user(
        &mut self,
        creds: &Credentials,
        method: &str,
        expected_realm: &str,
        now_unix_secs: u64,
    ) -> Verdict {
        let creds = creds.as_borrowed();
        let ha1 = Ha1::compute(
            creds.algorithm,
            creds.username,
            creds.realm,
            &self.dummy_password,
        );
        let _ = self.check(&creds, method, Some(&ha1), expected_realm, now_unix_secs);
        Verdict::Invalid
    }

    /// The unknown-user counterpart of [`DigestServer::verify_ref`] with
    /// [`UserSecret::Ha1`], for a directory that keeps HA1s: the same work
    /// against an HA1 computed once from a stand-in password, and always
    /// [`Verdict::Invalid`], as for a wrong password.
    pub fn verify_unknown_user_ha1(
        &mut self,
        creds: &CredentialsRef<'_>,
        method: &str,
        expected_realm: &str,
        now_unix_secs: u64,
    ) -> Verdict {
        let _ = self.check(creds, method, None, expected_realm, now_unix_secs);
        Verdict::Invalid
    }

    /// The common path of verification. `ha1 == None` (unknown user) uses the
    /// stand-in HA1 of the credentials' algorithm and forces `Invalid` after
    /// doing the same work; so does an HA1 of another algorithm.
    fn check(
        &mut self,
        creds: &CredentialsRef<'_>,
        method: &str,
        ha1: Option<&Ha1>,
        expected_realm: &str,
        now: u64,
    ) -> Verdict {
        let (ha1, usable) = match ha1 {
            Some(ha1) => (ha1, ha1.algorithm() == creds.algorithm),
            None => {
                let [md5, sha256] = &self.dummy_ha1;
                let dummy = match creds.algorithm {
                    Algorithm::Md5 => md5,
                    Algorithm::Sha256 => sha256,
                };
                (dummy, false)
            }
        };
        let (nonce_state, key) = self.nonces.check_keyed(creds.nonce, expected_realm, now);
        let qop = creds.qop.map(|q| (q.nc_text, q.cnonce));
        let ha2 = self.ha2.get(ha1.algorithm(), method, creds.uri);
        let expected = response_digest_with(ha1, creds.nonce, qop, &ha2);
        // Different lengths (an HA1 of another algorithm) never match.
        let digest_ok = expected.matches_hex(creds.response);

        let acceptable = usable
            && digest_ok
            && creds.realm == expected_realm
            && self.config.algorithms.contains(&creds.algorithm)
            && (creds.qop.is_some() || self.config.allow_no_qop);
        if !acceptable {
            return Verdict::Invalid;
        }
        let issued_at = match nonce_state {
            NonceCheck::Forged => return Verdict::Invalid,
            NonceCheck::Expired { .. } => return Verdict::Stale,
            NonceCheck::Fresh { issued_at } => issued_at,
        };
        let use_ = match creds.qop {
            Some(q) => NonceUse::Count(q.nc),
            None => NonceUse::NoQop,
        };
        match self.counts.check_and_record_key(
            key,
            issued_at,
            use_,
            now,
            self.nonces.lifetime_secs(),
        ) {
            CountCheck::Accepted => Verdict::Ok,
            CountCheck::Replayed => Verdict::Replay,
            CountCheck::Forgotten => Verdict::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NonceSecret, ServerConfig};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const REALM: &str = "pbx.example.com";

    fn header(server: &DigestServer, alg: Algorithm, password: &str, upper: bool) -> String {
        let nonce = server.issue_nonce(REALM, 100, &mut StdRng::seed_from_u64(1));
        let challenge = crate::Challenge::new(REALM, &nonce, alg).unwrap();
        let v = crate::authorization(&challenge, "REGISTER", "sip:x", "100", password, "cn", 1)
            .unwrap();
        if upper {
            // Only the response is hex; upper-case it alone.
            let (head, tail) = v.split_once("response=\"").unwrap();
            let (resp, rest) = tail.split_once('"').unwrap();
            format!("{head}response=\"{}\"{rest}", resp.to_ascii_uppercase())
        } else {
            v
        }
    }

    #[test]
    fn borrowed_credentials_from_the_header_verify() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            for upper in [false, true] {
                let mut s =
                    DigestServer::new(NonceSecret::from_bytes([2; 32]), ServerConfig::default());
                let v = header(&s, alg, "pw", upper);
                let c = CredentialsRef::from_header_value(&v).unwrap();
                let ha1 = Ha1::compute(alg, "100", REALM, "pw");
                assert_eq!(
                    s.verify_ref(&c, "REGISTER", UserSecret::Ha1(&ha1), REALM, 101),
                    Verdict::Ok
                );
                assert_eq!(
                    s.verify_ref(&c, "REGISTER", UserSecret::Ha1(&ha1), REALM, 102),
                    Verdict::Replay
                );
                let wrong = Ha1::compute(alg, "100", REALM, "other");
                assert_eq!(
                    s.verify_ref(&c, "REGISTER", UserSecret::Ha1(&wrong), REALM, 101),
                    Verdict::Invalid
                );
            }
        }
    }

    #[test]
    fn reused_ha2_follows_method_and_uri() {
        let mut s = DigestServer::new(NonceSecret::from_bytes([2; 32]), ServerConfig::default());
        let nonce = s.issue_nonce(REALM, 100, &mut StdRng::seed_from_u64(1));
        let challenge = crate::Challenge::new(REALM, &nonce, Algorithm::Md5).unwrap();
        let ha1 = Ha1::compute(Algorithm::Md5, "100", REALM, "pw");
        let mut nc = 0;
        for uri in ["sip:x", "sip:x", "sip:y", "sip:x"] {
            nc += 1;
            let v =
                crate::authorization(&challenge, "REGISTER", uri, "100", "pw", "cn", nc).unwrap();
            let c = CredentialsRef::from_header_value(&v).unwrap();
            // The same credentials for another method: the digest does not match.
            assert_eq!(
                s.verify_ref(&c, "INVITE", UserSecret::Ha1(&ha1), REALM, 101),
                Verdict::Invalid
            );
            assert_eq!(
                s.verify_ref(&c, "REGISTER", UserSecret::Ha1(&ha1), REALM, 101),
                Verdict::Ok,
                "{uri}"
            );
        }
    }

    #[test]
    fn unknown_user_with_ha1_directory_is_invalid_and_leaves_no_state() {
        let mut s = DigestServer::new(NonceSecret::from_bytes([2; 32]), ServerConfig::default());
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let v = header(&s, alg, "pw", false);
            let c = CredentialsRef::from_header_value(&v).unwrap();
            assert_eq!(
                s.verify_unknown_user_ha1(&c, "REGISTER", REALM, 101),
                Verdict::Invalid
            );
            // Even a password equal to the stand-in's does not get in.
            let v = header(&s, alg, &s.dummy_password.clone(), false);
            let c = CredentialsRef::from_header_value(&v).unwrap();
            assert_eq!(
                s.verify_unknown_user_ha1(&c, "REGISTER", REALM, 101),
                Verdict::Invalid
            );
        }
        assert_eq!(s.tracked_nonces(), 0);
    }
}
