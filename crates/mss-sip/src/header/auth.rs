//! Authorization, Proxy-Authorization, WWW-Authenticate and Proxy-Authenticate as a scheme
//! plus `name=value` auth-params (RFC 3261 §20.7, §20.27, §20.28, §20.44; RFC 7616).
//! The digest computation lives in `mss-auth`.

use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind};
use crate::headers::top_level_comma;
use crate::name::HeaderName;
use crate::params::{quoted_len, trim, unquote};
use crate::parse::is_token_char;

/// A credentials or challenge value: `Digest realm="x", nonce="y", …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader<'a> {
    /// The scheme (`Digest`, or any other token).
    pub scheme: &'a str,
    /// The auth-params in order, values with quotes removed and quoted-pairs unescaped.
    /// A scheme with a single token68 value (`Basic abc=`) gives one pair with an empty name.
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> AuthHeader<'a> {
    /// Parses one header value.
    ///
    /// # Errors
    /// `BadHeaderValue` in `name` (the header, for the error).
    pub fn parse(s: &'a str, name: &HeaderName) -> Result<AuthHeader<'a>, ParseError> {
        let bad = |o: usize| ParseError::in_header(ParseErrorKind::BadHeaderValue, name.clone(), o);
        let s = trim(s);
        let n = s.bytes().take_while(|&c| is_token_char(c)).count();
        let scheme = s.get(..n).unwrap_or("");
        if scheme.is_empty() {
            return Err(bad(0));
        }
        let mut rest = s.get(n..).unwrap_or("");
        if !rest.is_empty() && !rest.starts_with([' ', '\t', '\r', '\n']) {
            return Err(bad(n));
        }
        let mut params = Vec::with_capacity(10);
        let mut off = n;
        while !trim(rest).is_empty() {
            let end = top_level_comma(rest.as_bytes()).unwrap_or(rest.len());
            let item = trim(rest.get(..end).unwrap_or(""));
            if !item.is_empty() {
                match item.find('=') {
                    Some(eq) if !item.get(eq..).is_some_and(|t| t.bytes().all(|c| c == b'=')) => {
                        let pname = trim(item.get(..eq).unwrap_or(""));
                        let value = trim(item.get(eq + 1..).unwrap_or(""));
                        if pname.is_empty() || !pname.bytes().all(is_token_char) {
                            return Err(bad(off));
                        }
                        if value.starts_with('"') {
                            if quoted_len(value) != Some(value.len()) {
                                return Err(bad(off));
                            }
                        } else if value.is_empty()
                            // Unquoted values are read liberally (any text without
                            // whitespace or quotes); mss-auth checks what it uses.
                            || value
                                .bytes()
                                .any(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'"'))
                        {
                            return Err(bad(off));
                        }
                        params.push((pname, unquote(value)));
                    }
                    _ if params.is_empty() => params.push(("", Cow::Borrowed(item))),
                    _ => return Err(bad(off)),
                }
            }
            off += end + 1;
            rest = rest.get(end + 1..).unwrap_or("");
        }
        Ok(AuthHeader { scheme, params })
    }

    /// The value of the first auth-param named `name` (ignoring ASCII case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// True when the scheme is `Digest` (ignoring case).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_credentials() {
        let a = AuthHeader::parse(
            "Digest username=\"bob\", realm=\"a\\\"b\", nonce=\"n,1\", uri=\"sip:x\", qop=auth, nc=00000001, algorithm=MD5",
            &HeaderName::Authorization,
        )
        .unwrap();
        assert!(a.is_digest());
        assert_eq!(a.param("USERNAME"), Some("bob"));
        assert_eq!(a.param("realm"), Some("a\"b"));
        assert_eq!(a.param("nonce"), Some("n,1"));
        assert_eq!(a.param("nc"), Some("00000001"));
        let o = AuthHeader::parse(
            "NoOneKnowsThisScheme opaque-data=here",
            &HeaderName::Authorization,
        )
        .unwrap();
        assert_eq!(o.param("opaque-data"), Some("here"));
        let b = AuthHeader::parse("Basic dXNlcjpwYXNz==", &HeaderName::Authorization).unwrap();
        assert_eq!(b.params, vec![("", Cow::Borrowed("dXNlcjpwYXNz=="))]);
        assert!(AuthHeader::parse("Digest realm=\"open", &HeaderName::WwwAuthenticate).is_err());
        assert!(AuthHeader::parse("", &HeaderName::WwwAuthenticate).is_err());
    }
}
