//! Finding the digest credentials of a request (RFC 3261 §22.4, RFC 7616 §3.4).
//!
//! The common case (one `Authorization` / `Proxy-Authorization` line, Digest, our realm,
//! in the form clients send) is read in a single pass into borrowed
//! [`CredentialsRef`], without allocating. Anything else takes the general path:
//! `mss-sip`'s header parser for every line, the first Digest value for our realm (or
//! without a realm), [`Credentials::from_params`]. The fast reader accepts only what the
//! general path accepts with the same values (tested below), so the answer is the same
//! either way; only the general path is slower.

use mss_auth::{Credentials, CredentialsRef};
use mss_sip::Request;

use crate::digest::{AuthKind, Refusal};

/// Credentials found in a request: borrowed from it, or parsed by the general path.
pub(crate) enum Found<'a> {
    /// Read in one pass from the single header line.
    Borrowed(CredentialsRef<'a>),
    /// Parsed by the general path.
    Parsed(Credentials),
}

impl Found<'_> {
    /// The credentials, borrowed.
    pub(crate) fn get(&self) -> CredentialsRef<'_> {
        match self {
            Found::Borrowed(c) => *c,
            Found::Parsed(c) => c.as_borrowed(),
        }
    }
}

/// The credentials of `req` for `realm`.
///
/// # Errors
///
/// [`Refusal::Challenge`] when there are none for our realm (or they call for a new
/// challenge), [`Refusal::Malformed`] for a header that is not well formed.
pub(crate) fn find_credentials<'a>(
    req: &'a Request,
    kind: AuthKind,
    realm: &str,
) -> Result<Found<'a>, Refusal> {
    let name = kind.credentials_header();
    let mut lines = req.headers().get_all(&name);
    let Some(first) = lines.next() else {
        return Err(Refusal::Challenge { stale: false });
    };
    if lines.next().is_none() {
        let fast = std::str::from_utf8(first)
            .ok()
            .and_then(CredentialsRef::from_header_value)
            .filter(|c| c.realm == realm);
        if let Some(creds) = fast {
            return Ok(Found::Borrowed(creds));
        }
    }
    general(req, kind, realm).map(Found::Parsed)
}

/// The general path: every line parsed, the first Digest value for our realm.
fn general(req: &Request, kind: AuthKind, realm: &str) -> Result<Credentials, Refusal> {
    let name = kind.credentials_header();
    let headers = req
        .headers()
        .auth(&name)
        .map_err(|e| Refusal::Malformed(e.reason_phrase().to_owned()))?;
    // The first Digest header for our realm (or without a realm: then it is malformed).
    let Some(h) = headers
        .iter()
        .find(|h| h.is_digest() && h.param("realm").is_none_or(|r| r == realm))
    else {
        return Err(Refusal::Challenge { stale: false });
    };
    Credentials::from_params(h.params.iter().map(|(n, v)| (*n, v.as_ref()))).map_err(|e| {
        if e.is_rechallenge() {
            Refusal::Challenge { stale: false }
        } else {
            Refusal::Malformed(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::tests::req;
    use proptest::prelude::*;

    const REALM: &str = "bench.test";

    fn register(auth_lines: &[String]) -> Request {
        let lines: String = auth_lines
            .iter()
            .map(|v| format!("Authorization: {v}\r\n"))
            .collect();
        req(&format!("REGISTER sip:bench.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:100@bench.test>;tag=1\r\nTo: <sip:100@bench.test>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\n{lines}Content-Length: 0\r\n\r\n"))
    }

    fn outcome(r: Result<Found<'_>, Refusal>) -> Result<Credentials, String> {
        match r {
            Ok(f) => Ok(Credentials::from(f.get())),
            Err(Refusal::Challenge { stale }) => Err(format!("challenge {stale}")),
            Err(Refusal::Malformed(why)) => Err(format!("400 {why}")),
        }
    }

    const SIPP: &str = "Digest username=\"100\",realm=\"bench.test\",uri=\"sip:bench.test\",nonce=\"AAAAAGVT8QCx1Q5kZyQ2bV0D8bHcs7TZtyQfzR4nVYk4\",response=\"8ca523f5e9506fed4657c9700eebdbec\",algorithm=MD5,cnonce=\"6b8b4567\",qop=auth,nc=00000001";

    #[test]
    fn the_common_case_is_borrowed() {
        let r = register(&[SIPP.to_owned()]);
        let found = find_credentials(&r, AuthKind::Www, REALM);
        assert!(matches!(found, Ok(Found::Borrowed(_))));
        assert_eq!(
            outcome(found),
            outcome(general(&r, AuthKind::Www, REALM).map(Found::Parsed))
        );
    }

    #[test]
    fn the_rest_takes_the_general_path_with_its_answers() {
        let other = SIPP.replace("bench.test\",uri", "elsewhere\",uri");
        let escaped = SIPP.replace("\"100\"", "\"1\\00\"");
        for (lines, want) in [
            (vec![], "challenge false"),
            (vec![other.clone()], "challenge false"),
            (vec!["Basic dXNlcjpwYXNz".to_owned()], "challenge false"),
            (vec!["Digest realm=\"open".to_owned()], "400"),
            (
                vec![SIPP.replace(",qop=auth", ",qop=auth-int")],
                "challenge false",
            ),
            (vec![SIPP.replace(",nc=00000001", "")], "400"),
            (vec![other, SIPP.to_owned()], "ok"),
            (vec![escaped], "ok"),
        ] {
            let r = register(&lines);
            let got = outcome(find_credentials(&r, AuthKind::Www, REALM));
            match want {
                "ok" => assert!(got.is_ok(), "{lines:?}: {got:?}"),
                w => assert!(
                    got.as_ref().err().is_some_and(|e| e.starts_with(w)),
                    "{lines:?}: {got:?}"
                ),
            }
        }
    }

    /// A param that is not `token "=" ( token / quoted-string )` (here `0==`: name `0`,
    /// value `=`, which `mss-sip` reads as a misplaced token68) is malformed on both paths;
    /// found by `fast_and_general_paths_agree`.
    #[test]
    fn a_value_that_is_not_a_token_is_malformed_on_both_paths() {
        let value = "Digest username=\"100\",0==,realm=\"bench.test\",nonce=\"AAAAAGVT8QCx1Q5kZyQ2bV0D8bHcs7TZtyQfzR4nVYk4\",uri=\"sip:bench.test\",response=\"8ca523f5e9506fed4657c9700eebdbec\"";
        let r = register(&[value.to_owned()]);
        let fast = outcome(find_credentials(&r, AuthKind::Www, REALM));
        let slow = outcome(general(&r, AuthKind::Www, REALM).map(Found::Parsed));
        assert!(
            fast.as_ref().is_err_and(|e| e.starts_with("400")),
            "{fast:?}"
        );
        assert_eq!(fast, slow);
        // Other params with a value outside `token` agree the same way, whichever the answer.
        for junk in [
            "x==", "x=a=b", "x=a<b", "x=a>b", "x=a(b)", "x=a\\b", "x=\"a\"b", "x", "=1",
        ] {
            let r = register(&[value.replace("0==", junk)]);
            let fast = outcome(find_credentials(&r, AuthKind::Www, REALM));
            let slow = outcome(general(&r, AuthKind::Www, REALM).map(Found::Parsed));
            assert_eq!(fast, slow, "{junk}");
        }
    }

    proptest! {
        /// The two paths give the same answer, whatever the header holds.
        #[test]
        fn fast_and_general_paths_agree(
            order in Just((0..10).collect::<Vec<usize>>()).prop_shuffle(),
            keep in proptest::collection::vec(any::<bool>(), 10),
            ws in "( |\\t)?",
            scheme in "(Digest|digest|DIGEST|Basic)",
            junk in "[a-z0-9\"=,<>() \\\\]{0,10}",
            junk_at in 0usize..12,
        ) {
            let all = [
                "username=\"100\"".to_owned(),
                "realm=\"bench.test\"".to_owned(),
                "nonce=\"AAAAAGVT8QCx1Q5kZyQ2bV0D8bHcs7TZtyQfzR4nVYk4\"".to_owned(),
                "uri=\"sip:bench.test\"".to_owned(),
                "response=\"8ca523f5e9506fed4657c9700eebdbec\"".to_owned(),
                "algorithm=MD5".to_owned(),
                "qop=auth".to_owned(),
                format!("nc{ws}={ws}00000001"),
                "cnonce=\"6b8b4567\"".to_owned(),
                "opaque=\"o\"".to_owned(),
            ];
            let mut body: Vec<String> = order
                .iter()
                .filter(|&&i| i < 5 || keep.get(i) == Some(&true))
                .filter_map(|&i| all.get(i).cloned())
                .collect();
            if junk_at < body.len() {
                body.insert(junk_at, junk);
            }
            let value = format!("{scheme} {}", body.join(&format!("{ws},{ws}")));
            // Values a request cannot carry (line breaks) are not the point here.
            prop_assume!(!value.contains(['\r', '\n']));
            let r = register(&[value]);
            let fast = outcome(find_credentials(&r, AuthKind::Www, REALM));
            let slow = outcome(general(&r, AuthKind::Www, REALM).map(Found::Parsed));
            prop_assert_eq!(fast, slow);
        }
    }
}
