//! The `WWW-Authenticate` / `Proxy-Authenticate` value of the Digest scheme
//! (RFC 7616 §3.3, RFC 8760 §2.3): built by the server, parsed by the client.

use std::fmt;

use crate::params::{check_quotable, push_quoted, push_token, Params};
use crate::{Algorithm, AuthError};

/// One Digest challenge.
///
/// Build one with [`Challenge::new`] and the `with_*` methods, then format
/// it with `to_string()`:
///
/// ```
/// use mss_auth::{Algorithm, Challenge};
/// let c = Challenge::new("pbx.example.com", "abc", Algorithm::Md5)?.with_stale(true);
/// assert_eq!(
///     c.to_string(),
///     r#"Digest realm="pbx.example.com", nonce="abc", stale=true, algorithm=MD5, qop="auth""#
/// );
/// # Ok::<(), mss_auth::AuthError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    realm: String,
    nonce: String,
    algorithm: Algorithm,
    opaque: Option<String>,
    stale: bool,
    /// `qop="auth"` offered. RFC 8760 §2.6 item 8: a UAS MUST always send it;
    /// `false` only describes a received RFC 2069-style challenge.
    qop_auth: bool,
}

impl Challenge {
    /// A challenge offering `qop="auth"`, not stale, without `opaque`.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidParam`] when realm or nonce cannot be carried in
    /// a quoted-string (control characters) or is too long.
    pub fn new(realm: &str, nonce: &str, algorithm: Algorithm) -> Result<Challenge, AuthError> {
        check_quotable("realm", realm)?;
        check_quotable("nonce", nonce)?;
        Ok(Challenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            algorithm,
            opaque: None,
            stale: false,
            qop_auth: true,
        })
    }

    /// Adds an `opaque` value that the client must echo (RFC 7616 §3.3).
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidParam`] when it cannot be carried in a quoted-string.
    pub fn with_opaque(mut self, opaque: &str) -> Result<Challenge, AuthError> {
        check_quotable("opaque", opaque)?;
        self.opaque = Some(opaque.to_owned());
        Ok(self)
    }

    /// Sets `stale=true`: the previous nonce was authentic but expired, the
    /// client should retry without asking the user (RFC 7616 §3.3).
    pub fn with_stale(mut self, stale: bool) -> Challenge {
        self.stale = stale;
        self
    }

    /// Parses the auth-params of a received Digest challenge (the caller has
    /// checked that the scheme is `Digest`). Unknown params are ignored, as
    /// are `domain` and `charset`.
    ///
    /// # Errors
    ///
    /// - [`AuthError::MissingParam`] without `realm` or `nonce`;
    /// - [`AuthError::UnsupportedAlgorithm`] / [`AuthError::UnknownAlgorithm`];
    /// - [`AuthError::UnsupportedQop`] when `qop` is offered but lacks `auth`;
    /// - [`AuthError::DuplicateParam`], [`AuthError::InvalidParam`].
    pub fn from_params<'a, I>(params: I) -> Result<Challenge, AuthError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let p = Params::collect(params)?;
        let realm = p.require("realm")?;
        let nonce = p.require("nonce")?;
        let algorithm = match p.get("algorithm") {
            Some(a) => Algorithm::parse(a.trim())?,
            // RFC 7616 §3.3: "If this is not present, it is assumed to be MD5".
            None => Algorithm::Md5,
        };
        let qop_auth = match p.get("qop") {
            None => false,
            Some(list) => {
                if list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    true
                } else {
                    return Err(AuthError::UnsupportedQop {
                        value: list.chars().take(40).collect(),
                    });
                }
            }
        };
        let stale = p
            .get("stale")
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("true"));
        let mut challenge = Challenge::new(realm, nonce, algorithm)?.with_stale(stale);
        challenge.qop_auth = qop_auth;
        if let Some(opaque) = p.get("opaque") {
            challenge = challenge.with_opaque(opaque)?;
        }
        Ok(challenge)
    }

    /// The protection space (`realm`).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The server nonce.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The algorithm to answer with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `opaque` value to echo, if any.
    pub fn opaque(&self) -> Option<&str> {
        self.opaque.as_deref()
    }

    /// Whether the server said the previous nonce was stale.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// Whether `qop=auth` was offered (otherwise the RFC 2069 form is used).
    pub fn qop_auth(&self) -> bool {
        self.qop_auth
    }
}

impl fmt::Display for Challenge {
    /// `Digest realm="…", nonce="…"[, opaque="…"][, stale=true],
    /// algorithm=…, qop="auth"`: realm, nonce, opaque and qop quoted,
    /// stale and algorithm not (RFC 7616 §3.3 "For historical reasons").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("Digest ");
        // Values were checked to be quotable when they were set.
        push_quoted(&mut out, "realm", &self.realm).map_err(|_| fmt::Error)?;
        push_quoted(&mut out, "nonce", &self.nonce).map_err(|_| fmt::Error)?;
        if let Some(opaque) = &self.opaque {
            push_quoted(&mut out, "opaque", opaque).map_err(|_| fmt::Error)?;
        }
        if self.stale {
            push_token(&mut out, "stale", "true");
        }
        push_token(&mut out, "algorithm", self.algorithm.as_str());
        if self.qop_auth {
            push_quoted(&mut out, "qop", "auth").map_err(|_| fmt::Error)?;
        }
        f.write_str(&out)
    }
}

/// The value [`Challenge`]'s `Display` gives for a challenge without `opaque` that offers
/// `qop="auth"`, written straight into a buffer of exactly its length. `realm` must be
/// quotable (checked by the caller); `nonce` is base64url, which needs no escaping.
pub(crate) fn challenge_value(
    realm: &str,
    nonce: &[u8],
    algorithm: Algorithm,
    stale: bool,
) -> Vec<u8> {
    const STALE: &[u8] = b", stale=true";
    const QOP: &[u8] = b", qop=\"auth\"";
    let escapes = realm.bytes().filter(|&c| c == b'"' || c == b'\\').count();
    let alg = algorithm.as_str().as_bytes();
    let len = "Digest realm=\"".len()
        + realm.len()
        + escapes
        + "\", nonce=\"".len()
        + nonce.len()
        + 1
        + if stale { STALE.len() } else { 0 }
        + ", algorithm=".len()
        + alg.len()
        + QOP.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"Digest realm=\"");
    if escapes == 0 {
        out.extend_from_slice(realm.as_bytes());
    } else {
        for c in realm.bytes() {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
    }
    out.extend_from_slice(b"\", nonce=\"");
    out.extend_from_slice(nonce);
    out.push(b'"');
    if stale {
        out.extend_from_slice(STALE);
    }
    out.extend_from_slice(b", algorithm=");
    out.extend_from_slice(alg);
    out.extend_from_slice(QOP);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_on_garbage(params in proptest::collection::vec(("(realm|nonce|qop|algorithm|stale|opaque|.{0,8})", ".{0,60}"), 0..12)) {
            if let Ok(c) = Challenge::from_params(params.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
                // Whatever was accepted can be formatted again.
                prop_assert!(c.to_string().starts_with("Digest realm=\""));
            }
        }
    }

    #[test]
    fn formats_with_quoting_rules() {
        let c = Challenge::new("pbx.example.com", "n0nce", Algorithm::Sha256)
            .unwrap()
            .with_opaque(r#"op"aq\ue"#)
            .unwrap();
        assert_eq!(
            c.to_string(),
            r#"Digest realm="pbx.example.com", nonce="n0nce", opaque="op\"aq\\ue", algorithm=SHA-256, qop="auth""#
        );
        assert!(Challenge::new("bad\nrealm", "n", Algorithm::Md5).is_err());
    }

    #[test]
    fn direct_value_matches_display_and_is_exactly_sized() {
        for realm in ["pbx.example.com", r#"a"b\c"#, ""] {
            for alg in [Algorithm::Md5, Algorithm::Sha256] {
                for stale in [false, true] {
                    let nonce = "AAAAAGVT8QCx1Q5kZyQ2bV0D8bHcs7TZtyQfzR4nVYk4";
                    let v = challenge_value(realm, nonce.as_bytes(), alg, stale);
                    let want = Challenge::new(realm, nonce, alg)
                        .unwrap()
                        .with_stale(stale)
                        .to_string();
                    assert_eq!(String::from_utf8(v.clone()).unwrap(), want);
                    assert_eq!(v.len(), v.capacity());
                }
            }
        }
    }

    #[test]
    fn parses_rfc7616_challenge() {
        let c = Challenge::from_params([
            ("realm", "http-auth@example.org"),
            ("qop", "auth, auth-int"),
            ("algorithm", "SHA-256"),
            ("nonce", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
            ("opaque", "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"),
        ])
        .unwrap();
        assert_eq!(c.algorithm(), Algorithm::Sha256);
        assert!(c.qop_auth());
        assert!(!c.stale());
        assert_eq!(c.realm(), "http-auth@example.org");
        assert_eq!(
            c.opaque(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }

    #[test]
    fn parse_defaults_and_errors() {
        let c =
            Challenge::from_params([("Realm", "r"), ("NONCE", "n"), ("stale", "TRUE")]).unwrap();
        assert_eq!(c.algorithm(), Algorithm::Md5);
        assert!(!c.qop_auth());
        assert!(c.stale());
        assert_eq!(
            Challenge::from_params([("realm", "r")]).err(),
            Some(AuthError::MissingParam { name: "nonce" })
        );
        assert!(matches!(
            Challenge::from_params([("realm", "r"), ("nonce", "n"), ("qop", "auth-int")]),
            Err(AuthError::UnsupportedQop { .. })
        ));
        assert!(matches!(
            Challenge::from_params([("realm", "r"), ("nonce", "n"), ("algorithm", "MD5-sess")]),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn round_trips_through_params() {
        let c = Challenge::new("r", "n", Algorithm::Md5)
            .unwrap()
            .with_opaque("o")
            .unwrap()
            .with_stale(true);
        let parsed = Challenge::from_params([
            ("realm", "r"),
            ("nonce", "n"),
            ("opaque", "o"),
            ("stale", "true"),
            ("algorithm", "MD5"),
            ("qop", "auth"),
        ])
        .unwrap();
        assert_eq!(c, parsed);
    }
}
