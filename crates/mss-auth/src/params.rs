//! Auth-param lists as handed over by the message parser, and quoting of
//! values when formatting header values (RFC 7616 §3.3, §3.4; RFC 3261 §25.1).

use crate::AuthError;

/// Longest auth-param value accepted from a peer. Real values (nonces,
/// URIs, hex digests) are far shorter; the cap bounds what a request can
/// make us hash or remember.
pub const MAX_PARAM_LEN: usize = 2048;

/// Most auth-params accepted in one header value.
pub(crate) const MAX_PARAMS: usize = 32;

/// The auth-params of one header value, names lower-cased, duplicates refused.
pub(crate) struct Params<'a> {
    items: Vec<(String, &'a str)>,
}

impl<'a> Params<'a> {
    /// Collects `(name, value)` pairs (quotes already removed by the parser).
    ///
    /// # Errors
    ///
    /// [`AuthError::DuplicateParam`] when a name occurs twice (RFC 7235 §2.1),
    /// [`AuthError::InvalidParam`] when there are too many params or a value
    /// is longer than [`MAX_PARAM_LEN`].
    pub(crate) fn collect<I>(params: I) -> Result<Params<'a>, AuthError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut items: Vec<(String, &'a str)> = Vec::new();
        for (name, value) in params {
            if items.len() >= MAX_PARAMS {
                return Err(AuthError::InvalidParam {
                    name: "auth-param",
                    reason: "too many parameters",
                });
            }
            if value.len() > MAX_PARAM_LEN {
                return Err(AuthError::InvalidParam {
                    name: "auth-param",
                    reason: "value too long",
                });
            }
            let name = name.trim().to_ascii_lowercase();
            if items.iter().any(|(n, _)| *n == name) {
                let name = name.chars().take(40).collect();
                return Err(AuthError::DuplicateParam { name });
            }
            items.push((name, value));
        }
        Ok(Params { items })
    }

    /// The params in order, names in lower case.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &'a str)> + '_ {
        self.items.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// The value of `name` (given in lower case), if present.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| *value)
    }

    /// The value of a required parameter.
    pub(crate) fn require(&self, name: &'static str) -> Result<&'a str, AuthError> {
        self.get(name).ok_or(AuthError::MissingParam { name })
    }
}

/// Appends `, name="value"` (or `name="value"` at the start), escaping `"`
/// and `\` as quoted-pairs (RFC 3261 §25.1 `quoted-pair`).
///
/// # Errors
///
/// [`AuthError::InvalidParam`] when the value holds a control character
/// other than HTAB, which no quoted-string can carry.
pub(crate) fn push_quoted(
    out: &mut String,
    name: &'static str,
    value: &str,
) -> Result<(), AuthError> {
    check_quotable(name, value)?;
    push_sep(out);
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(())
}

/// Appends `, name=token` for values we produce ourselves (algorithm, nc, qop, stale).
pub(crate) fn push_token(out: &mut String, name: &'static str, token: &str) {
    push_sep(out);
    out.push_str(name);
    out.push('=');
    out.push_str(token);
}

/// Refuses values that cannot be sent inside a quoted-string.
pub(crate) fn check_quotable(name: &'static str, value: &str) -> Result<(), AuthError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(AuthError::InvalidParam {
            name,
            reason: "contains a control character",
        });
    }
    if value.len() > MAX_PARAM_LEN {
        return Err(AuthError::InvalidParam {
            name,
            reason: "value too long",
        });
    }
    Ok(())
}

fn push_sep(out: &mut String) {
    // Every header value this crate builds starts with the scheme.
    if out != "Digest " {
        out.push_str(", ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_unique() {
        let p = Params::collect([("Realm", "a"), ("NONCE", "b")]).unwrap();
        assert_eq!(p.get("realm"), Some("a"));
        assert_eq!(p.get("nonce"), Some("b"));
        assert_eq!(p.get("uri"), None);
        assert_eq!(
            p.require("uri").err(),
            Some(AuthError::MissingParam { name: "uri" })
        );
        let dup = Params::collect([("realm", "a"), ("REALM", "b")]);
        assert!(matches!(dup, Err(AuthError::DuplicateParam { .. })));
    }

    #[test]
    fn refuses_oversized_input() {
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        assert!(Params::collect([("nonce", long.as_str())]).is_err());
        let many: Vec<(String, &str)> = (0..MAX_PARAMS + 1)
            .map(|i| (format!("p{i}"), "v"))
            .collect();
        assert!(Params::collect(many.iter().map(|(n, v)| (n.as_str(), *v))).is_err());
    }

    #[test]
    fn quoting_escapes_quote_and_backslash() {
        let mut out = String::from("Digest ");
        push_quoted(&mut out, "realm", r#"a"b\c"#).unwrap();
        push_token(&mut out, "algorithm", "MD5");
        assert_eq!(out, r#"Digest realm="a\"b\\c", algorithm=MD5"#);
        assert!(push_quoted(&mut out, "realm", "a\r\nb").is_err());
        assert!(push_quoted(&mut out, "realm", "tab\tok").is_ok());
    }
}
