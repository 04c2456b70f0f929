//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route (RFC 3261 §20.10,
//! §20.20, §20.39, §25.1).

use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind};
use crate::name::HeaderName;
use crate::params::{check_header_params, quoted_len, trim, trim_start, unquote, Params};
use crate::parse::is_token_char;
use crate::uri::{find_byte, Uri};

/// A `[display-name] <URI> *(;param)` or `URI *(;param)` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as received: a quoted string with its quotes, or tokens.
    pub display_name: Option<&'a str>,
    /// The URI text (without `<>`).
    pub uri_str: &'a str,
    /// The URI, parsed.
    pub uri: Uri<'a>,
    /// True when the URI was enclosed in `<>`.
    pub angle_brackets: bool,
    /// Header parameters after the URI (`tag`, `q`, `expires` …).
    pub params: Params<'a>,
}

/// The From and To headers share the name-addr form.
pub type FromTo<'a> = NameAddr<'a>;

fn bad(name: &HeaderName, kind: ParseErrorKind, offset: usize) -> ParseError {
    ParseError::in_header(kind, name.clone(), offset)
}

impl<'a> NameAddr<'a> {
    /// Parses one value of header `name` (for errors).
    ///
    /// # Errors
    /// `BadHeaderValue` / `BadUri` in `name`.
    pub fn parse(s: &'a str, name: &HeaderName) -> Result<NameAddr<'a>, ParseError> {
        let t = trim(s);
        let lead = s.len() - trim_start(s).len();
        let value_err = |o: usize| bad(name, ParseErrorKind::BadHeaderValue, lead + o);
        let (display_name, after_display) = if t.starts_with('"') {
            let q = quoted_len(t).ok_or_else(|| value_err(0))?;
            (Some(t.get(..q).unwrap_or("")), q)
        } else if let Some(lt) = find_byte(t, b'<') {
            let dn = trim(t.get(..lt).unwrap_or(""));
            // display-name = *(token LWS); RFC 4475 §3.1.1.6 also allows no LWS before '<'.
            if !dn
                .bytes()
                .all(|c| is_token_char(c) || matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            {
                return Err(value_err(0));
            }
            ((!dn.is_empty()).then_some(dn), lt)
        } else {
            (None, 0)
        };
        let rest = t.get(after_display..).unwrap_or("");
        let rest_trimmed = trim_start(rest);
        let rest_off = after_display + (rest.len() - rest_trimmed.len());
        let (uri_str, uri_off, params_part, angle) =
            if let Some(inner) = rest_trimmed.strip_prefix('<') {
                let gt = find_byte(inner, b'>').ok_or_else(|| value_err(rest_off))?;
                let uri = inner.get(..gt).unwrap_or("");
                let after = trim(inner.get(gt + 1..).unwrap_or(""));
                let params = match after.strip_prefix(';') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => return Err(value_err(rest_off + gt + 2)),
                };
                (uri, rest_off + 1, params, true)
            } else {
                if display_name.is_some() {
                    return Err(value_err(rest_off));
                }
                // addr-spec: the URI ends at the first ';' which starts header params. A URI
                // with '?' or ',' must be in <> (RFC 3261 §20.10).
                let (uri, params) = match find_byte(rest_trimmed, b';') {
                    Some(i) => (
                        trim(rest_trimmed.get(..i).unwrap_or("")),
                        Some(rest_trimmed.get(i + 1..).unwrap_or("")),
                    ),
                    None => (trim(rest_trimmed), None),
                };
                if uri.bytes().any(|c| c == b'?' || c == b',') {
                    return Err(value_err(rest_off));
                }
                (uri, rest_off, params, false)
            };
        let uri = Uri::parse(uri_str)
            .map_err(|e| bad(name, ParseErrorKind::BadUri, lead + uri_off + e.offset))?;
        let params = match params_part {
            Some(p) => {
                check_header_params(p).map_err(value_err)?;
                p
            }
            None => "",
        };
        Ok(NameAddr {
            display_name,
            uri_str,
            uri,
            angle_brackets: angle,
            params: Params::new(params),
        })
    }

    /// The display name with quotes removed and quoted-pairs unescaped.
    pub fn display_name_unquoted(&self) -> Option<Cow<'a, str>> {
        self.display_name.map(unquote)
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// One Contact value (RFC 3261 §20.10, RFC 5626 §4.1 for `+sip.instance` and `reg-id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact<'a> {
    /// The address and its parameters.
    pub addr: NameAddr<'a>,
}

impl<'a> Contact<'a> {
    /// The `q` parameter, 0.0..=1.0.
    pub fn q(&self) -> Option<f32> {
        self.addr
            .params
            .get("q")
            .flatten()
            .and_then(|q| q.parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
    }

    /// The `expires` parameter.
    ///
    /// # Errors
    /// `ValueOutOfRange` above 2^32-1, `BadHeaderValue` when not a number.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        match self.addr.params.get("expires").flatten() {
            None => Ok(None),
            Some(v) => super::misc::parse_u32(v, HeaderName::Contact).map(Some),
        }
    }

    /// The `+sip.instance` parameter with its quotes removed (`<urn:uuid:…>`).
    pub fn instance(&self) -> Option<Cow<'a, str>> {
        self.addr.params.get("+sip.instance").flatten().map(unquote)
    }

    /// The `reg-id` parameter (RFC 5626).
    pub fn reg_id(&self) -> Option<u32> {
        self.addr
            .params
            .get("reg-id")
            .flatten()
            .and_then(|v| v.parse().ok())
    }
}

/// The Contact headers of a message: `*` or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    /// `Contact: *` (remove all bindings, RFC 3261 §10.2.2).
    Star,
    /// The contacts in order (empty when there is no Contact header).
    List(Vec<Contact<'a>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(s, &HeaderName::From)
    }

    #[test]
    fn forms() {
        let n = p(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.tag(), Some("98asjd8"));
        assert_eq!(n.display_name_unquoted().unwrap(), "J Rosenberg \\\"");
        let n = p("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.uri_str, "sip:vivekg@chair-dnrc.example.com");
        assert!(!n.angle_brackets);
        let n = p("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name, Some("caller"));
        let n = p(
            "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;x=\"\u{444}\";tag=_token~1",
        )
        .unwrap();
        assert_eq!(n.tag(), Some("_token~1"));
        assert!(p("isbn:2983792873").is_ok());
    }

    #[test]
    fn rejects() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:a@b> junk",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contact_params() {
        let c = Contact {
            addr: NameAddr::parse(
                "<sip:a@b>;q=0.5;expires=60;+sip.instance=\"<urn:uuid:1>\";reg-id=2",
                &HeaderName::Contact,
            )
            .unwrap(),
        };
        assert_eq!(c.q(), Some(0.5));
        assert_eq!(c.expires(), Ok(Some(60)));
        assert_eq!(c.instance().unwrap(), "<urn:uuid:1>");
        assert_eq!(c.reg_id(), Some(2));
    }
}
