//! Borrowed Digest credentials, and the checks that turn the auth-params of an
//! `Authorization` / `Proxy-Authorization` value into credentials (RFC 7616 §3.4).
//!
//! Both readers ([`Credentials::from_params`](crate::Credentials::from_params) and the
//! single-pass [`CredentialsRef::from_header_value`]) put the params they know into
//! [`Slots`] and call [`Slots::credentials`], so they accept and refuse exactly alike.

use std::fmt;

use crate::{Algorithm, AuthError};

/// The `qop=auth` part of borrowed credentials (see [`QopAuth`](crate::QopAuth)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopRef<'a> {
    /// The client nonce.
    pub cnonce: &'a str,
    /// The nonce count (`nc`), parsed from 8 hex digits; never 0.
    pub nc: u32,
    /// `nc` exactly as received (trimmed), which is what the digest covers.
    pub(crate) nc_text: &'a str,
}

/// Parsed Digest credentials whose values borrow from the header text (or from a
/// [`Credentials`](crate::Credentials)): reading them copies nothing.
///
/// `Debug` leaves the `response` out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CredentialsRef<'a> {
    /// `username` (plain; `userhash=true` is refused).
    pub username: &'a str,
    /// `realm`; the server checks it against its own.
    pub realm: &'a str,
    /// The server nonce being answered.
    pub nonce: &'a str,
    /// `uri`: the Request-URI the client digested.
    pub uri: &'a str,
    /// `algorithm` (MD5 when absent, RFC 7616 §3.3).
    pub algorithm: Algorithm,
    /// `qop=auth` with its `cnonce` and `nc`; `None` for the RFC 2069 form.
    pub qop: Option<QopRef<'a>>,
    /// `opaque`, echoed from the challenge.
    pub opaque: Option<&'a str>,
    /// `response`: hex of the algorithm's digest length, in either case.
    pub(crate) response: &'a str,
}

impl fmt::Debug for CredentialsRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsRef")
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

/// The values of the auth-params that credentials are made of (names matched
/// without regard to case by the reader that fills them).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Slots<'a> {
    /// `username*` was present (its value does not matter).
    pub(crate) username_star: bool,
    pub(crate) userhash: Option<&'a str>,
    pub(crate) username: Option<&'a str>,
    pub(crate) realm: Option<&'a str>,
    pub(crate) nonce: Option<&'a str>,
    pub(crate) uri: Option<&'a str>,
    pub(crate) response: Option<&'a str>,
    pub(crate) algorithm: Option<&'a str>,
    pub(crate) qop: Option<&'a str>,
    pub(crate) cnonce: Option<&'a str>,
    pub(crate) nc: Option<&'a str>,
    pub(crate) opaque: Option<&'a str>,
}

/// Which slot a param name (any case) fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    UsernameStar,
    Userhash,
    Username,
    Realm,
    Nonce,
    Uri,
    Response,
    Algorithm,
    Qop,
    Cnonce,
    Nc,
    Opaque,
}

impl Slot {
    /// The slot of `name` (any case), `None` for a param credentials do not use.
    pub(crate) fn of(name: &str) -> Option<Slot> {
        // Length and first letter pick the one candidate (the fifth letter tells
        // `username` from `userhash`); clients send names in lower case, so an exact
        // comparison settles most names before the case-blind one.
        let b = name.as_bytes();
        let lower = |i: usize| b.get(i).map_or(0, u8::to_ascii_lowercase);
        let (want, slot) = match (b.len(), lower(0)) {
            (2, b'n') => ("nc", Slot::Nc),
            (3, b'u') => ("uri", Slot::Uri),
            (3, b'q') => ("qop", Slot::Qop),
            (5, b'n') => ("nonce", Slot::Nonce),
            (5, b'r') => ("realm", Slot::Realm),
            (6, b'c') => ("cnonce", Slot::Cnonce),
            (6, b'o') => ("opaque", Slot::Opaque),
            (8, b'r') => ("response", Slot::Response),
            (8, b'u') if lower(4) == b'h' => ("userhash", Slot::Userhash),
            (8, b'u') => ("username", Slot::Username),
            (9, b'a') => ("algorithm", Slot::Algorithm),
            (9, b'u') => ("username*", Slot::UsernameStar),
            _ => return None,
        };
        (b == want.as_bytes() || name.eq_ignore_ascii_case(want)).then_some(slot)
    }
}

impl<'a> Slots<'a> {
    /// Stores the value of `slot`; `false` when it already has one (a duplicate param,
    /// RFC 7235 §2.1).
    pub(crate) fn set(&mut self, slot: Slot, value: &'a str) -> bool {
        let place = match slot {
            Slot::UsernameStar => {
                let first = !self.username_star;
                self.username_star = true;
                return first;
            }
            Slot::Userhash => &mut self.userhash,
            Slot::Username => &mut self.username,
            Slot::Realm => &mut self.realm,
            Slot::Nonce => &mut self.nonce,
            Slot::Uri => &mut self.uri,
            Slot::Response => &mut self.response,
            Slot::Algorithm => &mut self.algorithm,
            Slot::Qop => &mut self.qop,
            Slot::Cnonce => &mut self.cnonce,
            Slot::Nc => &mut self.nc,
            Slot::Opaque => &mut self.opaque,
        };
        if place.is_some() {
            return false;
        }
        *place = Some(value);
        true
    }

    /// The credentials these params make (the checks of
    /// [`Credentials::from_params`](crate::Credentials::from_params), which see).
    ///
    /// # Errors
    ///
    /// As `Credentials::from_params`, apart from duplicates and size limits, which the
    /// readers check while filling the slots.
    pub(crate) fn credentials(&self) -> Result<CredentialsRef<'a>, AuthError> {
        if self.username_star {
            // RFC 7616 §3.4: the extended notation of RFC 5987.
            return Err(AuthError::UnsupportedParam { name: "username*" });
        }
        if self
            .userhash
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            // We never offer userhash (RFC 7616 §3.4.4).
            return Err(AuthError::UnsupportedParam { name: "userhash" });
        }
        let username = require(self.username, "username")?;
        let realm = require(self.realm, "realm")?;
        let nonce = require(self.nonce, "nonce")?;
        let uri = require(self.uri, "uri")?;
        let response = require(self.response, "response")?;
        let algorithm = match self.algorithm {
            Some(a) => Algorithm::parse(a.trim())?,
            None => Algorithm::Md5,
        };
        if response.len() != algorithm.hex_len() || !response.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(AuthError::InvalidParam {
                name: "response",
                reason: "not a hex digest of the algorithm's length",
            });
        }
        let qop = match self.qop {
            None => None,
            Some(q) if q.trim().eq_ignore_ascii_case("auth") => {
                let cnonce = require(self.cnonce, "cnonce")?;
                let nc_text = require(self.nc, "nc")?.trim();
                Some(QopRef {
                    cnonce,
                    nc: parse_nc(nc_text)?,
                    nc_text,
                })
            }
            Some(q) => {
                return Err(AuthError::UnsupportedQop {
                    value: q.chars().take(40).collect(),
                })
            }
        };
        Ok(CredentialsRef {
            username,
            realm,
            nonce,
            uri,
            algorithm,
            qop,
            opaque: self.opaque,
            response,
        })
    }
}

fn require<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, AuthError> {
    value.ok_or(AuthError::MissingParam { name })
}

/// `nc` is exactly 8 hex digits (RFC 7616 §3.4, RFC 2617 §3.2.2 `nc-value`).
fn parse_nc(text: &str) -> Result<u32, AuthError> {
    let invalid = |reason| AuthError::InvalidParam { name: "nc", reason };
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("not 8 hex digits"));
    }
    match u32::from_str_radix(text, 16) {
        Ok(0) => Err(invalid("nonce count 0")),
        Ok(nc) => Ok(nc),
        Err(_) => Err(invalid("not 8 hex digits")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_names_in_any_case() {
        assert_eq!(Slot::of("NC"), Some(Slot::Nc));
        assert_eq!(Slot::of("Uri"), Some(Slot::Uri));
        assert_eq!(Slot::of("qop"), Some(Slot::Qop));
        assert_eq!(Slot::of("REALM"), Some(Slot::Realm));
        assert_eq!(Slot::of("UserName"), Some(Slot::Username));
        assert_eq!(Slot::of("username*"), Some(Slot::UsernameStar));
        assert_eq!(Slot::of("userhash"), Some(Slot::Userhash));
        assert_eq!(Slot::of("domain"), None);
        assert_eq!(Slot::of("usernamE"), Some(Slot::Username));
        assert_eq!(Slot::of("USERHASH"), Some(Slot::Userhash));
        assert_eq!(Slot::of("userhasx"), None);
        assert_eq!(Slot::of("nx"), None);
        assert_eq!(Slot::of("responsa"), None);
        for name in [
            "nc",
            "uri",
            "qop",
            "nonce",
            "realm",
            "cnonce",
            "opaque",
            "response",
            "userhash",
            "username",
            "algorithm",
            "username*",
        ] {
            assert!(Slot::of(name).is_some(), "{name}");
            assert!(Slot::of(&name.to_uppercase()).is_some(), "{name}");
        }
        assert_eq!(Slot::of(""), None);
        let mut s = Slots::default();
        assert!(s.set(Slot::Realm, "a"));
        assert!(!s.set(Slot::Realm, "b"));
        assert!(s.set(Slot::UsernameStar, "x"));
        assert!(!s.set(Slot::UsernameStar, "y"));
        assert_eq!(s.realm, Some("a"));
    }

    #[test]
    fn debug_hides_the_response() {
        let s = Slots {
            username: Some("u"),
            realm: Some("r"),
            nonce: Some("n"),
            uri: Some("sip:r"),
            response: Some("8ca523f5e9506fed4657c9700eebdbec"),
            ..Slots::default()
        };
        let c = s.credentials().unwrap();
        assert!(c.qop.is_none());
        assert!(!format!("{c:?}").contains("8ca523"));
    }
}
