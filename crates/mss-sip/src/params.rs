//! `;name=value` parameter lists (URI parameters and header parameters), read lazily.

use std::borrow::Cow;

use crate::uri::find_byte;

/// A list of `;`-separated parameters, kept as text and read on demand.
///
/// The text starts at the first parameter name (after its `;`). Whitespace around `;`
/// and `=` is allowed for header parameters (RFC 3261 §25.1 `SEMI`, `EQUAL`); quoted
/// values keep their quotes (use [`unquote`] to strip them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    pub(crate) fn new(raw: &'a str) -> Params<'a> {
        Params { raw }
    }

    /// The parameters as received (without the leading `;`).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True when there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Every parameter as `(name, value)`; `value` is `None` for a flag (`;lr`).
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }

    /// The first parameter named `name` (ignoring ASCII case): `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// True when a parameter named `name` is present (with or without a value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over `(name, value)` pairs of [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

/// Index of the first `c` outside a quoted string.
pub(crate) fn find_unquoted(s: &str, c: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut in_q = false;
    let mut i = 0;
    while let Some(&x) = b.get(i) {
        if in_q {
            match x {
                b'\\' => i += 1,
                b'"' => in_q = false,
                _ => {}
            }
        } else if x == b'"' {
            in_q = true;
        } else if x == c {
            return Some(i);
        }
        i += 1;
    }
    None
}

pub(crate) fn trim(s: &str) -> &str {
    // Byte scans: these ASCII bytes never occur inside a multi-byte UTF-8 character, so the
    // cut points are char boundaries, and no character is decoded on the way.
    let b = s.as_bytes();
    let start = b.iter().position(|c| !is_lws(*c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_lws(*c)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or("")
}

/// `s` without leading spaces, tabs, CRs and LFs.
pub(crate) fn trim_start(s: &str) -> &str {
    let start = s.bytes().position(|c| !is_lws(c)).unwrap_or(s.len());
    s.get(start..).unwrap_or("")
}

fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if trim(self.rest).is_empty() {
                return None;
            }
            let (item, rest) = match find_unquoted(self.rest, b';') {
                Some(i) => (
                    self.rest.get(..i).unwrap_or(""),
                    self.rest.get(i + 1..).unwrap_or(""),
                ),
                None => (self.rest, ""),
            };
            self.rest = rest;
            let item = trim(item);
            if item.is_empty() {
                continue;
            }
            return Some(match find_byte(item, b'=') {
                Some(eq) => (
                    trim(item.get(..eq).unwrap_or("")),
                    Some(trim(item.get(eq + 1..).unwrap_or(""))),
                ),
                None => (item, None),
            });
        }
    }
}

/// Removes the quotes of a quoted string and unescapes its quoted-pairs (RFC 3261
/// §25.1). Text that is not quoted is returned unchanged.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Checks a header parameter list (the text after the first `;`): every parameter is
/// `token [ "=" ( token / host / quoted-string ) ]`, no empty parameter (RFC 3261 §25.1
/// `generic-param`). Returns the offset of the first problem.
pub(crate) fn check_header_params(s: &str) -> Result<(), usize> {
    let mut off = 0usize;
    let mut rest = s;
    loop {
        let (item, next) = match find_unquoted(rest, b';') {
            Some(i) => (rest.get(..i).unwrap_or(""), Some(i)),
            None => (rest, None),
        };
        let t = trim(item);
        if t.is_empty() {
            return Err(off);
        }
        let (name, value) = match find_byte(t, b'=') {
            Some(eq) => (
                trim(t.get(..eq).unwrap_or("")),
                Some(trim(t.get(eq + 1..).unwrap_or(""))),
            ),
            None => (t, None),
        };
        if name.is_empty() || !name.bytes().all(crate::parse::is_token_char) {
            return Err(off);
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                is_quoted_string(v)
            } else {
                !v.is_empty()
                    && v.bytes()
                        .all(|c| crate::parse::is_token_char(c) || matches!(c, b':' | b'[' | b']'))
            };
            if !ok {
                return Err(off);
            }
        }
        match next {
            Some(i) => {
                off += i + 1;
                rest = rest.get(i + 1..).unwrap_or("");
            }
            None => return Ok(()),
        }
    }
}

/// True when `s` is exactly one quoted string (with balanced escapes).
pub(crate) fn is_quoted_string(s: &str) -> bool {
    quoted_len(s) == Some(s.len())
}

/// Length of the quoted string at the start of `s` (including both quotes), if closed.
pub(crate) fn quoted_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_cuts_only_linear_whitespace_bytes() {
        assert_eq!(trim(" \t\r\n a b \r\n"), "a b");
        assert_eq!(trim("   "), "");
        assert_eq!(trim(""), "");
        assert_eq!(trim(" \u{e9}t\u{e9} "), "\u{e9}t\u{e9}");
        assert_eq!(trim_start(" \r\n\tx y "), "x y ");
        assert_eq!(trim_start(" "), "");
        assert_eq!(find_byte("\u{e9}a;b", b';'), Some(3));
        assert_eq!(find_byte("ab", b';'), None);
    }

    #[test]
    fn iterate_and_get() {
        let p = Params::new("branch = z9hG4bK1 ; rport;  received=1.2.3.4;x=\"a;b\"");
        let all: Vec<_> = p.iter().collect();
        assert_eq!(
            all,
            vec![
                ("branch", Some("z9hG4bK1")),
                ("rport", None),
                ("received", Some("1.2.3.4")),
                ("x", Some("\"a;b\""))
            ]
        );
        assert_eq!(p.get("BRANCH"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("nope"), None);
        assert_eq!(unquote("\"a\\\"b\""), "a\"b");
        assert_eq!(unquote("plain"), "plain");
    }

    #[test]
    fn header_param_check() {
        assert!(check_header_params("tag=1;q=0.5;+sip.instance=\"<urn:x>\"").is_ok());
        assert!(check_header_params(";;;").is_err());
        assert!(check_header_params("a;;b").is_err());
        assert!(check_header_params("a=\"open").is_err());
        assert!(check_header_params("a=").is_err());
    }
}
