//! The `Authorization` / `Proxy-Authorization` value of the Digest scheme
//! as received by a server (RFC 7616 §3.4, RFC 3261 §22.4).

use std::fmt;

use crate::credentials_ref::{CredentialsRef, QopRef, Slot, Slots};
use crate::params::Params;
use crate::{Algorithm, AuthError};

/// The `qop=auth` part of credentials: `cnonce` and `nc` are mandatory with
/// a qop (RFC 7616 §3.4), so they travel together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopAuth {
    /// The client nonce.
    pub cnonce: String,
    /// The nonce count (`nc`), parsed from 8 hex digits; never 0.
    pub nc: u32,
    /// `nc` exactly as received, which is what the digest covers.
    pub(crate) nc_text: String,
}

/// Parsed Digest credentials.
///
/// `Debug` leaves the `response` out (digest responses are never
/// logged).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `username` (plain; `userhash=true` is refused at parse time).
    pub username: String,
    /// `realm`; the server checks it against its own.
    pub realm: String,
    /// The server nonce being answered.
    pub nonce: String,
    /// `uri`: the Request-URI the client digested. RFC 8760 §2.6 item 6
    /// leaves to the caller whether it must match the request's.
    pub uri: String,
    /// `algorithm` (MD5 when absent, RFC 7616 §3.3).
    pub algorithm: Algorithm,
    /// `qop=auth` with its `cnonce` and `nc`; `None` for an RFC 2069-style
    /// response without qop (RFC 2617 §3.2.2 compatibility).
    pub qop: Option<QopAuth>,
    /// `opaque`, echoed from the challenge.
    pub opaque: Option<String>,
    /// `response`, lower-case hex of the algorithm's length.
    pub(crate) response: String,
}

impl Credentials {
    /// Parses the auth-params of a Digest `Authorization` header (the caller
    /// has checked that the scheme is `Digest`). Names are case-insensitive;
    /// unknown params are ignored.
    ///
    /// # Errors
    ///
    /// - [`AuthError::MissingParam`]: no `username`, `realm`, `nonce`,
    ///   `uri` or `response`, or `qop` without `cnonce`/`nc`;
    /// - [`AuthError::InvalidParam`]: `nc` not 8 hex digits or zero,
    ///   `response` not hex of the right length, values too long;
    /// - [`AuthError::UnsupportedAlgorithm`] / [`AuthError::UnknownAlgorithm`];
    /// - [`AuthError::UnsupportedQop`]: a qop other than `auth`;
    /// - [`AuthError::UnsupportedParam`]: `username*` or `userhash=true`;
    /// - [`AuthError::DuplicateParam`].
    ///
    /// [`AuthError::is_rechallenge`] tells which of these are better
    /// answered with a new challenge than with `400`.
    pub fn from_params<'a, I>(params: I) -> Result<Credentials, AuthError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let p = Params::collect(params)?;
        let mut slots = Slots::default();
        for (name, value) in p.iter() {
            if let Some(slot) = Slot::of(name) {
                // `Params::collect` refused duplicate names.
                slots.set(slot, value);
            }
        }
        Ok(Credentials::from(slots.credentials()?))
    }

    /// The same credentials, borrowed (what [`DigestServer`](crate::DigestServer) checks).
    pub fn as_borrowed(&self) -> CredentialsRef<'_> {
        CredentialsRef {
            username: &self.username,
            realm: &self.realm,
            nonce: &self.nonce,
            uri: &self.uri,
            algorithm: self.algorithm,
            qop: self.qop.as_ref().map(|q| QopRef {
                cnonce: &q.cnonce,
                nc: q.nc,
                nc_text: &q.nc_text,
            }),
            opaque: self.opaque.as_deref(),
            response: &self.response,
        }
    }
}

impl From<CredentialsRef<'_>> for Credentials {
    /// Copies borrowed credentials (the `response` in lower case).
    fn from(c: CredentialsRef<'_>) -> Credentials {
        Credentials {
            username: c.username.to_owned(),
            realm: c.realm.to_owned(),
            nonce: c.nonce.to_owned(),
            uri: c.uri.to_owned(),
            algorithm: c.algorithm,
            qop: c.qop.map(|q| QopAuth {
                cnonce: q.cnonce.to_owned(),
                nc: q.nc,
                nc_text: q.nc_text.to_owned(),
            }),
            opaque: c.opaque.map(str::to_owned),
            response: c.response.to_ascii_lowercase(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("nonce", &self.nonce)
            .field("uri", &self.uri)
            .field("algorithm", &self.algorithm)
            .field("qop", &self.qop)
            .field("opaque", &self.opaque)
            .field("response", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rfc7616_md5() -> Vec<(&'static str, &'static str)> {
        vec![
            ("username", "Mufasa"),
            ("realm", "http-auth@example.org"),
            ("uri", "/dir/index.html"),
            ("algorithm", "MD5"),
            ("nonce", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
            ("nc", "00000001"),
            ("cnonce", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            ("qop", "auth"),
            ("response", "8ca523f5e9506fed4657c9700eebdbec"),
            ("opaque", "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"),
        ]
    }

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        rfc7616_md5()
            .into_iter()
            .filter(|(n, _)| *n != name)
            .collect()
    }

    fn with(name: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        let mut v = without(name);
        v.push((name, value));
        v
    }

    #[test]
    fn parses_rfc7616_example() {
        let c = Credentials::from_params(rfc7616_md5()).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.algorithm, Algorithm::Md5);
        let q = c.qop.as_ref().unwrap();
        assert_eq!(q.nc, 1);
        assert_eq!(q.cnonce, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ");
        assert_eq!(
            c.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert!(!format!("{c:?}").contains("8ca523"));
    }

    #[test]
    fn missing_params_are_named() {
        for name in [
            "username", "realm", "nonce", "uri", "response", "cnonce", "nc",
        ] {
            assert_eq!(
                Credentials::from_params(without(name)).err(),
                Some(AuthError::MissingParam {
                    name: match name {
                        "username" => "username",
                        "realm" => "realm",
                        "nonce" => "nonce",
                        "uri" => "uri",
                        "response" => "response",
                        "cnonce" => "cnonce",
                        _ => "nc",
                    }
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn algorithm_defaults_to_md5_and_no_qop_is_accepted() {
        let c = Credentials::from_params(
            without("algorithm")
                .into_iter()
                .filter(|(n, _)| *n != "qop"),
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(c.qop.is_none());
    }

    #[test]
    fn invalid_values() {
        for nc in ["1", "0000000g", "000000001", "00000000"] {
            assert!(matches!(
                Credentials::from_params(with("nc", nc)),
                Err(AuthError::InvalidParam { name: "nc", .. })
            ));
        }
        // MD5-length response with SHA-256.
        assert!(matches!(
            Credentials::from_params(with("algorithm", "SHA-256")),
            Err(AuthError::InvalidParam {
                name: "response",
                ..
            })
        ));
        assert!(matches!(
            Credentials::from_params(with("algorithm", "MD5-sess")),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Credentials::from_params(with("algorithm", "FOO")),
            Err(AuthError::UnknownAlgorithm { .. })
        ));
        assert!(matches!(
            Credentials::from_params(with("qop", "auth-int")),
            Err(AuthError::UnsupportedQop { .. })
        ));
        assert!(matches!(
            Credentials::from_params(with("userhash", "true")),
            Err(AuthError::UnsupportedParam { name: "userhash" })
        ));
        assert!(Credentials::from_params(with("userhash", "false")).is_ok());
        assert!(matches!(
            Credentials::from_params(with("username*", "UTF-8''J%C3%A4son")),
            Err(AuthError::UnsupportedParam { name: "username*" })
        ));
        let mut dup = rfc7616_md5();
        dup.push(("NONCE", "x"));
        assert!(matches!(
            Credentials::from_params(dup),
            Err(AuthError::DuplicateParam { .. })
        ));
    }

    #[test]
    fn upper_case_response_and_nc_accepted() {
        let c = Credentials::from_params(
            with("response", "8CA523F5E9506FED4657C9700EEBDBEC")
                .into_iter()
                .map(|(n, v)| if n == "nc" { (n, "0000000A") } else { (n, v) }),
        )
        .unwrap();
        assert_eq!(c.response, "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(c.qop.unwrap().nc, 10);
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(params in proptest::collection::vec((".{0,12}", ".{0,80}"), 0..40)) {
            let _ = Credentials::from_params(params.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        }

        #[test]
        fn never_panics_on_known_names(values in proptest::collection::vec(".{0,70}", 10)) {
            let names = ["username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc", "cnonce", "opaque"];
            let _ = Credentials::from_params(names.iter().zip(values.iter()).map(|(n, v)| (*n, v.as_str())));
        }
    }
}
