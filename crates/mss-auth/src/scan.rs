//! A single-pass reader of `Authorization` / `Proxy-Authorization` values in the form
//! clients send (RFC 7616 §3.4, RFC 3261 §25.1 `credentials`), straight into borrowed
//! [`CredentialsRef`]: no list of params, no copies, no allocation.
//!
//! It reads a subset of the grammar on purpose: every param is `token BWS "=" BWS ( token
//! / quoted-string )` (RFC 7235 §2.1 `auth-param`), the quoted-string without a
//! quoted-pair. A quoted-pair (`\"`), an empty list element, a param without `=`, a token68
//! value, an unquoted value that is not a token (`a<b`, `a"b`, `=`, `sip:x`), text that is
//! not well formed, and credentials that [`Credentials::from_params`] would refuse all give
//! `None`. The caller then takes the general path (`mss-sip`'s header parser and
//! `from_params`), which names the problem. Whatever this reader accepts, the general path
//! accepts with the same values.
//!
//! [`Credentials::from_params`]: crate::Credentials::from_params

use crate::credentials_ref::{CredentialsRef, Slot, Slots};
use crate::params::{MAX_PARAMS, MAX_PARAM_LEN};

impl<'a> CredentialsRef<'a> {
    /// Reads one header value `Digest name=value, …` in a single pass.
    ///
    /// `None` when the scheme is not `Digest`, when the value is outside the common form
    /// this reader handles (see the module docs), or when the credentials are not
    /// acceptable (missing, duplicate or invalid params): take the general path then.
    pub fn from_header_value(value: &'a str) -> Option<CredentialsRef<'a>> {
        let b = value.as_bytes();
        let mut i = skip_lws(b, 0);
        let scheme_end = skip_token(b, i);
        if !value.get(i..scheme_end)?.eq_ignore_ascii_case("Digest") {
            return None;
        }
        i = scheme_end;
        if b.get(i).is_some_and(|c| !is_lws(*c)) {
            return None;
        }
        let mut slots = Slots::default();
        // Names of params credentials do not use, kept to refuse duplicates among them.
        let mut others: [&str; MAX_PARAMS] = [""; MAX_PARAMS];
        let mut n_others = 0;
        let mut count = 0;
        loop {
            i = skip_lws(b, i);
            if i >= b.len() {
                break;
            }
            let name_end = skip_token(b, i);
            if name_end == i {
                return None;
            }
            let name = value.get(i..name_end)?;
            i = skip_lws(b, name_end);
            if b.get(i) != Some(&b'=') {
                return None;
            }
            i = skip_lws(b, i + 1);
            let (val, end) = if b.get(i) == Some(&b'"') {
                quoted(value, i + 1)?
            } else {
                token(value, i)?
            };
            i = skip_lws(b, end);
            match b.get(i) {
                None => {}
                Some(b',') => i += 1,
                Some(_) => return None,
            }
            count += 1;
            if count > MAX_PARAMS || val.len() > MAX_PARAM_LEN {
                return None;
            }
            match Slot::of(name) {
                Some(slot) => {
                    if !slots.set(slot, val) {
                        return None;
                    }
                }
                None => {
                    let seen = others.get(..n_others)?;
                    if seen.iter().any(|o| o.eq_ignore_ascii_case(name)) {
                        return None;
                    }
                    *others.get_mut(n_others)? = name;
                    n_others += 1;
                }
            }
        }
        slots.credentials().ok()
    }
}

/// The inside of a quoted-string whose opening quote is just before `start`, and the
/// index after its closing quote; `None` without a closing quote or with a quoted-pair.
fn quoted(value: &str, start: usize) -> Option<(&str, usize)> {
    let rest = value.as_bytes().get(start..)?;
    let len = memchr::memchr2(b'"', b'\\', rest)?;
    if rest.get(len) != Some(&b'"') {
        return None;
    }
    Some((value.get(start..start + len)?, start + len + 1))
}

/// The token starting at `start` (an unquoted value), and the index after it; `None` when
/// no token starts there. The caller refuses whatever follows it other than white space, a
/// comma or the end, so a value with a character outside `token` (`=`, `<`, `"`, `\`, `:`
/// …) is never read as a shorter one.
fn token(value: &str, start: usize) -> Option<(&str, usize)> {
    let end = skip_token(value.as_bytes(), start);
    if end == start {
        return None;
    }
    Some((value.get(start..end)?, end))
}

fn skip_lws(b: &[u8], i: usize) -> usize {
    let rest = b.get(i..).unwrap_or(&[]);
    i + rest.iter().position(|&c| !is_lws(c)).unwrap_or(rest.len())
}

fn skip_token(b: &[u8], i: usize) -> usize {
    let rest = b.get(i..).unwrap_or(&[]);
    i + rest
        .iter()
        .position(|&c| !is_token_char(c))
        .unwrap_or(rest.len())
}

fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

static TOKEN: [bool; 256] = token_table();

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Credentials};
    use proptest::prelude::*;

    const SIPP: &str = "Digest username=\"100\",realm=\"bench.test\",uri=\"sip:bench.test\",\
        nonce=\"AAAAAGVT8QCx1Q5kZyQ2bV0D8bHcs7TZtyQfzR4nVYk4\",\
        response=\"8ca523f5e9506fed4657c9700eebdbec\",algorithm=MD5,\
        cnonce=\"6b8b4567\",qop=auth,nc=00000001";

    fn general(value: &str) -> Option<Credentials> {
        // A tiny general reader for the tests: split at commas outside quotes, `=`, unquote;
        // names and unquoted values are tokens (RFC 7235 §2.1), as in `mss-sip`, which also
        // refuses `x==` (read as a misplaced token68).
        let body = value.trim().strip_prefix("Digest ")?;
        let mut params = Vec::new();
        let mut in_q = false;
        let mut start = 0;
        for (i, c) in body.char_indices().chain([(body.len(), ',')]) {
            match c {
                '"' => in_q = !in_q,
                ',' if !in_q => {
                    let item = body.get(start..i)?.trim();
                    start = i + 1;
                    if item.is_empty() {
                        continue;
                    }
                    let (n, v) = item.split_once('=')?;
                    let (n, v) = (n.trim(), v.trim());
                    let is_token = |t: &str| !t.is_empty() && t.bytes().all(is_token_char);
                    if !is_token(n) {
                        return None;
                    }
                    let v = match v.strip_prefix('"') {
                        // One quoted-string, without quoted-pairs (not unescaped here).
                        Some(q) => q.strip_suffix('"').filter(|q| !q.contains(['"', '\\']))?,
                        None if is_token(v) => v,
                        None => return None,
                    };
                    params.push((n, v));
                }
                _ => {}
            }
        }
        Credentials::from_params(params).ok()
    }

    #[test]
    fn token_characters() {
        let tokens: String = (0u8..=255)
            .filter(|&c| is_token_char(c))
            .map(char::from)
            .collect();
        assert_eq!(
            tokens,
            "!%'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_`abcdefghijklmnopqrstuvwxyz~"
        );
    }

    #[test]
    fn reads_what_sipp_sends() {
        let c = CredentialsRef::from_header_value(SIPP).unwrap();
        assert_eq!(c.username, "100");
        assert_eq!(c.realm, "bench.test");
        assert_eq!(c.uri, "sip:bench.test");
        assert_eq!(c.algorithm, Algorithm::Md5);
        let q = c.qop.unwrap();
        assert_eq!((q.cnonce, q.nc, q.nc_text), ("6b8b4567", 1, "00000001"));
        assert_eq!(Some(Credentials::from(c)), general(SIPP));
    }

    #[test]
    fn white_space_and_case_are_allowed() {
        let v = "  digest  Username = \"a b\" ,\r\n\tREALM=r , nonce=\"n,1\",uri=\"sip:x\", \
                 response=8CA523F5E9506FED4657C9700EEBDBEC, Domain=\"x\"  ";
        let c = CredentialsRef::from_header_value(v).unwrap();
        assert_eq!(c.username, "a b");
        assert_eq!(c.realm, "r");
        assert_eq!(c.nonce, "n,1");
        assert!(c.qop.is_none());
        assert_eq!(c.response, "8CA523F5E9506FED4657C9700EEBDBEC");
        assert_eq!(
            Credentials::from(c).response,
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn leaves_the_rest_to_the_general_path() {
        let tail = ", nonce=\"n\", uri=\"u\", response=\"8ca523f5e9506fed4657c9700eebdbec\"";
        for head in [
            "Basic dXNlcjpwYXNz",
            "Digest",
            "Digestusername=\"u\", realm=\"r\"",
            "Digest username=\"u\\\"x\", realm=\"r\"",
            "Digest , username=\"u\", realm=\"r\"",
            "Digest username=\"u\",, realm=\"r\"",
            "Digest token68, username=\"u\", realm=\"r\"",
            "Digest username=u<x, realm=\"r\"",
            "Digest username=u\"x\", realm=\"r\"",
            "Digest username=\"u\"x, realm=\"r\"",
            "Digest username=\"u, realm=\"r",
            "Digest username=, realm=\"r\"",
            "Digest username=\"u\", realm=\"r\", Realm=\"r\"",
            "Digest username=\"u\", realm=\"r\", foo=1, FOO=2",
            "Digest username=\"u\", realm=\"r\", qop=auth",
            "Digest username=\"u\", realm=\"r\", userhash=true",
            "Digest username*=\"u\", realm=\"r\"",
            "Digest username=\"u\", realm=\"r\", algorithm=MD5-sess",
            "Digest username=\"u\" realm=\"r\"",
            "Digest user name=\"u\", realm=\"r\"",
            // Unquoted values that are not tokens, params that are not `name=value`.
            "Digest username=\"u\", 0==, realm=\"r\"",
            "Digest username=\"u\", x=\"\"=, realm=\"r\"",
            "Digest username=\"u\", x=a=b, realm=\"r\"",
            "Digest username=u>x, realm=\"r\"",
            "Digest username=u(x), realm=\"r\"",
            "Digest username=u\\x, realm=\"r\"",
            "Digest username=sip:u, realm=\"r\"",
            "Digest username=\"u\", x=\"a\"\"b\", realm=\"r\"",
            "Digest username=\"u\", =1, realm=\"r\"",
            "Digest username=\"u\", x, realm=\"r\"",
            "Digest username=\"u\", \"x\"=1, realm=\"r\"",
            "Digest username=\"u\", x<y>=1, realm=\"r\"",
            "Digest 0==, username=\"u\", realm=\"r\"",
        ] {
            let v = format!("{head}{tail}");
            assert_eq!(CredentialsRef::from_header_value(&v), None, "{v}");
        }
        let many: String = (0..40).map(|i| format!(", p{i}=1")).collect();
        let v = format!("Digest username=\"u\", realm=\"r\"{tail}{many}");
        assert_eq!(CredentialsRef::from_header_value(&v), None);
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        let v = format!("Digest username=\"{long}\", realm=\"r\"{tail}");
        assert_eq!(CredentialsRef::from_header_value(&v), None);
        // The same without the problem is read.
        let v = format!("Digest username=\"u\", realm=\"r\"{tail}, foo=1, bar=\"\"");
        assert!(CredentialsRef::from_header_value(&v).is_some());
    }

    proptest! {
        /// Whatever the reader accepts, a general reader accepts with the same values.
        #[test]
        fn agrees_with_the_general_path(
            parts in proptest::collection::vec(
                ("(username|realm|nonce|uri|response|algorithm|qop|nc|cnonce|opaque|x)",
                 "( |\t)?",
                 "(\"[a-z0-9 ,=]{0,6}\"|[a-zA-Z0-9=:<>()\"\\\\]{0,8}|00000001|MD5|auth|8ca523f5e9506fed4657c9700eebdbec)"),
                0..12),
        ) {
            let body: Vec<String> = parts.iter().map(|(n, ws, v)| format!("{n}{ws}={ws}{v}")).collect();
            let value = format!("Digest {}", body.join(", "));
            if let Some(c) = CredentialsRef::from_header_value(&value) {
                prop_assert_eq!(Some(Credentials::from(c)), general(&value));
            }
        }

        /// Complete credentials in any order, with optional params dropped, white space
        /// around `=` and a mangled `opaque`: the two readers agree.
        #[test]
        fn agrees_on_complete_credentials(
            order in Just((0..10).collect::<Vec<usize>>()).prop_shuffle(),
            keep in proptest::collection::vec(any::<bool>(), 10),
            ws in "( |\t|\r\n )?",
            opaque in "[a-z0-9\"=,<>() \\\\]{0,8}",
        ) {
            let all = [
                "username=\"u\"".to_owned(),
                "realm=\"r\"".to_owned(),
                "nonce=\"n\"".to_owned(),
                "uri=\"sip:x\"".to_owned(),
                "response=8ca523f5e9506fed4657c9700eebdbec".to_owned(),
                "algorithm=MD5".to_owned(),
                "qop=auth".to_owned(),
                format!("nc{ws}={ws}00000001"),
                "cnonce=\"c\"".to_owned(),
                format!("opaque={opaque}"),
            ];
            let body: Vec<&str> = order
                .iter()
                .filter(|&&i| i < 5 || keep.get(i) == Some(&true))
                .filter_map(|&i| all.get(i).map(String::as_str))
                .collect();
            let value = format!("Digest {}", body.join(&format!("{ws},{ws}")));
            let fast = CredentialsRef::from_header_value(&value);
            if let Some(c) = fast {
                prop_assert_eq!(Some(Credentials::from(c)), general(&value));
            } else if !value.contains("opaque") && !value.contains("qop") {
                // Nothing unusual in it: the fast reader must take it.
                prop_assert!(false, "refused {}", value);
            }
        }

        #[test]
        fn never_panics(value in ".{0,200}") {
            let _ = CredentialsRef::from_header_value(&value);
        }
    }
}
