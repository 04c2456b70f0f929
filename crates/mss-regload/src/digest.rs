//! HTTP digest for SIP (RFC 3261 §22.4, RFC 2617 §3.2): the challenge of a `401` read, and
//! the `Authorization` header that answers it with MD5, `qop=auth` when offered.

use md5::{Digest, Md5};

use crate::error::LoadError;

/// What a `WWW-Authenticate: Digest …` challenge asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back when present.
    pub opaque: Option<String>,
    /// Whether `qop` lists `auth` (then the answer uses it, with a cnonce and nc).
    pub qop_auth: bool,
}

impl Challenge {
    /// The first digest challenge of `response` (a whole SIP message).
    ///
    /// # Errors
    /// [`LoadError::Challenge`] when there is none, it is not MD5, or it has no realm or
    /// nonce.
    pub fn parse(response: &[u8]) -> Result<Challenge, LoadError> {
        let text = String::from_utf8_lossy(response);
        let value = text
            .split("\r\n")
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("WWW-Authenticate")
                    .then_some(value.trim())
            })
            .ok_or(LoadError::Challenge("no WWW-Authenticate header"))?;
        let params = value
            .strip_prefix("Digest")
            .ok_or(LoadError::Challenge("not a Digest challenge"))?;
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut qop_auth = false;
        let mut algorithm_md5 = true;
        for (name, value) in params_of(params) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "qop" => qop_auth = value.split(',').any(|q| q.trim() == "auth"),
                "algorithm" => algorithm_md5 = value.eq_ignore_ascii_case("MD5"),
                _ => {}
            }
        }
        if !algorithm_md5 {
            return Err(LoadError::Challenge("the challenge's algorithm is not MD5"));
        }
        Ok(Challenge {
            realm: realm.ok_or(LoadError::Challenge("the challenge has no realm"))?,
            nonce: nonce.ok_or(LoadError::Challenge("the challenge has no nonce"))?,
            opaque,
            qop_auth,
        })
    }

    /// The `Authorization` header line (with its CRLF) for `method` `uri` by `user`
    /// with `password`; `cnonce` and `nc` are used when the challenge offers `qop=auth`.
    pub fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let ha1 = md5_hex(&format!("{user}:{}:{password}", self.realm));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let mut line = format!(
            "Authorization: Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", ",
            self.realm, self.nonce
        );
        if self.qop_auth {
            let nc = format!("{nc:08x}");
            let response = md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce));
            line.push_str(&format!(
                "response=\"{response}\", algorithm=MD5, cnonce=\"{cnonce}\", qop=auth, nc={nc}"
            ));
        } else {
            let response = md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce));
            line.push_str(&format!("response=\"{response}\", algorithm=MD5"));
        }
        if let Some(opaque) = &self.opaque {
            line.push_str(&format!(", opaque=\"{opaque}\""));
        }
        line.push_str("\r\n");
        line
    }
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The `name=value` pairs of a challenge, quotes removed; commas inside quotes (a `qop`
/// list) stay in their value.
fn params_of(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_owned(), n),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.push((name, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn response_param(line: &str) -> &str {
        let at = line.find("response=\"").unwrap() + "response=\"".len();
        &line[at..at + 32]
    }

    #[test]
    fn answers_the_rfc_2617_example() {
        let msg = b"SIP/2.0 401 Unauthorized\r\nCall-ID: x\r\nWWW-Authenticate: Digest \
realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"\r\n\
Content-Length: 0\r\n\r\n";
        let c = Challenge::parse(msg).unwrap();
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert!(c.qop_auth);
        let line = c.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        // RFC 2617 §3.5.
        assert_eq!(response_param(&line), "6629fae49393a05397450978507c4ef1");
        assert!(line.contains("nc=00000001"));
        assert!(line.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert!(line.ends_with("\r\n"));
    }

    #[test]
    fn without_qop_the_rfc_2069_form_is_used() {
        let msg =
            b"SIP/2.0 401 Unauthorized\r\nwww-authenticate: Digest realm=testrealm@host.com, \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", algorithm=MD5\r\n\r\n";
        let c = Challenge::parse(msg).unwrap();
        assert!(!c.qop_auth);
        let line = c.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert_eq!(response_param(&line), "670fd8c2df070c60b045671b8b24ff02");
        assert!(!line.contains("qop"));
    }

    #[test]
    fn a_response_without_a_usable_challenge_is_an_error() {
        assert!(Challenge::parse(b"SIP/2.0 401 Unauthorized\r\n\r\n").is_err());
        assert!(
            Challenge::parse(b"SIP/2.0 401 x\r\nWWW-Authenticate: Basic realm=\"a\"\r\n\r\n")
                .is_err()
        );
        assert!(Challenge::parse(
            b"SIP/2.0 401 x\r\nWWW-Authenticate: Digest realm=\"a\", nonce=\"n\", algorithm=SHA-256\r\n\r\n"
        )
        .is_err());
    }
}
