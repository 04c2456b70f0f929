//! Typed access to header values, parsed on demand (RFC 3261 §20).
//!
//! Each accessor on [`Headers`] parses the value(s) of one header when called and borrows
//! from the message. Absent optional headers give `Ok(None)`; absent mandatory ones
//! (From, To, Call-ID, CSeq, Via) give a `MissingHeader` error.

mod auth;
pub(crate) mod memo;
mod misc;
mod name_addr;
pub(crate) mod tag_memo;
mod via;

use std::time::SystemTime;

pub use auth::AuthHeader;
pub use misc::{format_date, CSeq, ContentType, RetryAfter, Warning};
pub use name_addr::{Contact, Contacts, FromTo, NameAddr};
pub use via::Via;

use crate::error::{ParseError, ParseErrorKind};
use crate::headers::{top_level_comma, Headers};
use crate::method::Method;
use crate::name::HeaderName;
use crate::params::trim;

pub(crate) fn missing(name: HeaderName) -> ParseError {
    ParseError::in_header(ParseErrorKind::MissingHeader, name, 0)
}

pub(crate) fn text<'a>(v: &'a [u8], name: &HeaderName) -> Result<&'a str, ParseError> {
    std::str::from_utf8(v).map_err(|e| {
        ParseError::in_header(ParseErrorKind::InvalidUtf8, name.clone(), e.valid_up_to())
    })
}

/// Splits a list value at top-level commas; an empty element is an error (the grammar of
/// Via, Contact, Route … has none), reported at its offset.
pub(crate) fn for_each_item<'a>(
    v: &'a str,
    name: &HeaderName,
    mut f: impl FnMut(&'a str) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut rest = v;
    let mut off = 0;
    loop {
        let end = top_level_comma(rest.as_bytes()).unwrap_or(rest.len());
        let item = rest.get(..end).unwrap_or("");
        if trim(item).is_empty() {
            return Err(ParseError::in_header(
                ParseErrorKind::BadHeaderValue,
                name.clone(),
                off,
            ));
        }
        f(item)?;
        if end >= rest.len() {
            return Ok(());
        }
        off += end + 1;
        rest = rest.get(end + 1..).unwrap_or("");
    }
}

impl Headers {
    /// The first value of `name` as text, `None` when absent.
    ///
    /// # Errors
    /// `InvalidUtf8` when the value is not UTF-8.
    pub fn get_str(&self, name: &HeaderName) -> Result<Option<&str>, ParseError> {
        self.get(name).map(|v| text(v, name)).transpose()
    }

    pub(crate) fn required_str(&self, name: HeaderName) -> Result<&str, ParseError> {
        match self.get(&name) {
            Some(v) => text(v, &name),
            None => Err(missing(name)),
        }
    }

    /// Every Via value, top first, across all Via lines.
    ///
    /// # Errors
    /// `BadHeaderValue` / `InvalidUtf8` in Via.
    pub fn via(&self) -> Result<Vec<Via<'_>>, ParseError> {
        let mut out = Vec::with_capacity(4);
        let name = HeaderName::Via;
        for line in self.get_all(&name) {
            for_each_item(text(line, &name)?, &name, |item| {
                out.push(Via::parse(item)?);
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// The top Via value (where responses go, RFC 3261 §18.2.2).
    ///
    /// # Errors
    /// `MissingHeader` without Via, otherwise as [`Headers::via`] for the first line.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        let line = self.required_str(HeaderName::Via)?;
        let end = top_level_comma(line.as_bytes()).unwrap_or(line.len());
        Via::parse(line.get(..end).unwrap_or(""))
    }

    pub(crate) fn name_addr(&self, name: HeaderName) -> Result<NameAddr<'_>, ParseError> {
        let v = self.required_str(name.clone())?;
        NameAddr::parse(v, &name)
    }

    /// The From header (RFC 3261 §20.20).
    ///
    /// # Errors
    /// `MissingHeader`, `BadHeaderValue`, `BadUri` or `InvalidUtf8` in From.
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::From)
    }

    /// The To header (RFC 3261 §20.39).
    ///
    /// # Errors
    /// As [`Headers::from`], in To.
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::To)
    }

    /// The Call-ID (RFC 3261 §20.8).
    ///
    /// # Errors
    /// `MissingHeader` or `BadHeaderValue` in Call-ID.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let name = HeaderName::CallId;
        if let Some(v) = self.memos.call_id_line().and_then(|i| self.value_at(i)) {
            return text(v, &name);
        }
        let (line, v) = self.find(&name).ok_or_else(|| missing(name.clone()))?;
        let v = text(v, &name)?;
        misc::check_call_id(v)?;
        self.memos.set_call_id_line(line);
        Ok(v)
    }

    /// The CSeq (RFC 3261 §20.16).
    ///
    /// # Errors
    /// `MissingHeader`, `BadHeaderValue` or `ValueOutOfRange` (above 2^32-1) in CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        if let Some(cseq) = self.memos.cseq() {
            return Ok(cseq);
        }
        let v = self.required_str(HeaderName::CSeq)?;
        let cseq = CSeq::parse(v, |m| {
            Method::known(m.as_bytes()).unwrap_or_else(|| Method::Other(self.share(m.as_bytes())))
        })?;
        self.memos.set_cseq(&cseq);
        Ok(cseq)
    }

    /// The Contact headers: `*`, or every contact in order (empty list when absent).
    ///
    /// # Errors
    /// `BadHeaderValue` / `BadUri` in Contact, also for `*` mixed with other contacts.
    pub fn contacts(&self) -> Result<Contacts<'_>, ParseError> {
        let name = HeaderName::Contact;
        let mut list = Vec::new();
        let mut star = false;
        for line in self.get_all(&name) {
            for_each_item(text(line, &name)?, &name, |item| {
                if trim(item) == "*" {
                    star = true;
                } else {
                    list.push(Contact {
                        addr: NameAddr::parse(item, &name)?,
                    });
                }
                Ok(())
            })?;
        }
        match (star, list.is_empty()) {
            (false, _) => Ok(Contacts::List(list)),
            (true, true) => Ok(Contacts::Star),
            (true, false) => Err(ParseError::in_header(
                ParseErrorKind::BadHeaderValue,
                name,
                0,
            )),
        }
    }

    /// Every value of a name-addr list header (Route, Record-Route, Path …), in order.
    ///
    /// # Errors
    /// `BadHeaderValue` / `BadUri` in `name`.
    pub fn name_addrs(&self, name: &HeaderName) -> Result<Vec<NameAddr<'_>>, ParseError> {
        let mut out = Vec::new();
        for line in self.get_all(name) {
            for_each_item(text(line, name)?, name, |item| {
                out.push(NameAddr::parse(item, name)?);
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// The Route values (RFC 3261 §20.34).
    ///
    /// # Errors
    /// As [`Headers::name_addrs`].
    pub fn route(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.name_addrs(&HeaderName::Route)
    }

    /// The Record-Route values (RFC 3261 §20.30).
    ///
    /// # Errors
    /// As [`Headers::name_addrs`].
    pub fn record_route(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.name_addrs(&HeaderName::RecordRoute)
    }

    fn u32_header(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        match self.get_str(&name)? {
            Some(v) => misc::parse_u32(v, name).map(Some),
            None => Ok(None),
        }
    }

    /// Max-Forwards (RFC 3261 §20.22), 0..=255.
    ///
    /// # Errors
    /// `ValueOutOfRange` above 255, `BadHeaderValue` when not a number.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        match self.u32_header(HeaderName::MaxForwards)? {
            Some(v) => u8::try_from(v).map(Some).map_err(|_| {
                ParseError::in_header(ParseErrorKind::ValueOutOfRange, HeaderName::MaxForwards, 0)
            }),
            None => Ok(None),
        }
    }

    /// Expires in seconds (RFC 3261 §20.19).
    ///
    /// # Errors
    /// `ValueOutOfRange` above 2^32-1, `BadHeaderValue` when not a number.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.u32_header(HeaderName::Expires)
    }

    /// Min-Expires in seconds (RFC 3261 §20.23).
    ///
    /// # Errors
    /// As [`Headers::expires`].
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        self.u32_header(HeaderName::MinExpires)
    }

    /// Content-Length (RFC 3261 §20.14).
    ///
    /// # Errors
    /// `BadContentLength` when malformed, `ConflictingContentLength` when repeated.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let name = HeaderName::ContentLength;
        if self.count(&name) > 1 {
            return Err(ParseError::in_header(
                ParseErrorKind::ConflictingContentLength,
                name,
                0,
            ));
        }
        match self.get(&name) {
            Some(v) => crate::framing::parse_content_length(v)
                .map(Some)
                .ok_or_else(|| ParseError::in_header(ParseErrorKind::BadContentLength, name, 0)),
            None => Ok(None),
        }
    }

    /// Content-Type (RFC 3261 §20.15).
    ///
    /// # Errors
    /// `BadHeaderValue` in Content-Type.
    pub fn content_type(&self) -> Result<Option<ContentType<'_>>, ParseError> {
        self.get_str(&HeaderName::ContentType)?
            .map(ContentType::parse)
            .transpose()
    }

    /// Every value of an authentication header (`Authorization`, `Proxy-Authorization`,
    /// `WWW-Authenticate`, `Proxy-Authenticate`), one per header line.
    ///
    /// # Errors
    /// `BadHeaderValue` in `name`.
    pub fn auth(&self, name: &HeaderName) -> Result<Vec<AuthHeader<'_>>, ParseError> {
        self.get_all(name)
            .map(|v| AuthHeader::parse(text(v, name)?, name))
            .collect()
    }

    /// Date, as a time (RFC 3261 §20.17: RFC 1123 format, GMT only).
    ///
    /// # Errors
    /// `BadHeaderValue` in Date.
    pub fn date(&self) -> Result<Option<SystemTime>, ParseError> {
        self.get_str(&HeaderName::Date)?
            .map(misc::parse_date)
            .transpose()
    }

    /// Every Warning value (RFC 3261 §20.43).
    ///
    /// # Errors
    /// `BadHeaderValue` in Warning.
    pub fn warnings(&self) -> Result<Vec<Warning<'_>>, ParseError> {
        let name = HeaderName::Warning;
        let mut out = Vec::new();
        for line in self.get_all(&name) {
            for_each_item(text(line, &name)?, &name, |item| {
                out.push(Warning::parse(item)?);
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// Retry-After (RFC 3261 §20.33).
    ///
    /// # Errors
    /// `BadHeaderValue` or `ValueOutOfRange` in Retry-After.
    pub fn retry_after(&self) -> Result<Option<RetryAfter<'_>>, ParseError> {
        self.get_str(&HeaderName::RetryAfter)?
            .map(RetryAfter::parse)
            .transpose()
    }

    /// The tokens of a token-list header (Allow, Supported, Require, Proxy-Require,
    /// Unsupported …), across all its lines. An empty header gives no token.
    ///
    /// # Errors
    /// `BadHeaderValue` when an element is not a token.
    pub fn tokens(&self, name: &HeaderName) -> Result<Vec<&str>, ParseError> {
        let mut out = Vec::new();
        for line in self.get_all(name) {
            let line = text(line, name)?;
            if trim(line).is_empty() {
                continue;
            }
            for_each_item(line, name, |item| {
                let t = trim(item);
                if !misc::is_token(t) {
                    return Err(ParseError::in_header(
                        ParseErrorKind::BadHeaderValue,
                        name.clone(),
                        0,
                    ));
                }
                out.push(t);
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// Allow (RFC 3261 §20.5): method tokens.
    ///
    /// # Errors
    /// As [`Headers::tokens`].
    pub fn allow(&self) -> Result<Vec<&str>, ParseError> {
        self.tokens(&HeaderName::Allow)
    }

    /// Supported option tags (RFC 3261 §20.37).
    ///
    /// # Errors
    /// As [`Headers::tokens`].
    pub fn supported(&self) -> Result<Vec<&str>, ParseError> {
        self.tokens(&HeaderName::Supported)
    }

    /// Require option tags (RFC 3261 §20.32).
    ///
    /// # Errors
    /// As [`Headers::tokens`].
    pub fn require(&self) -> Result<Vec<&str>, ParseError> {
        self.tokens(&HeaderName::Require)
    }

    /// Proxy-Require option tags (RFC 3261 §20.29).
    ///
    /// # Errors
    /// As [`Headers::tokens`].
    pub fn proxy_require(&self) -> Result<Vec<&str>, ParseError> {
        self.tokens(&HeaderName::ProxyRequire)
    }

    /// Unsupported option tags (RFC 3261 §20.40).
    ///
    /// # Errors
    /// As [`Headers::tokens`].
    pub fn unsupported(&self) -> Result<Vec<&str>, ParseError> {
        self.tokens(&HeaderName::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Headers {
        let mut h = Headers::new();
        h.push(
            HeaderName::Via,
            "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b:5070",
        );
        h.push(HeaderName::Via, "SIP/2.0/UDP c;branch=z9hG4bK3");
        h.push(HeaderName::From, "\"Alice\" <sip:alice@example.com>;tag=88");
        h.push(HeaderName::To, "<sip:bob@example.com>");
        h.push(HeaderName::CallId, "abc@host");
        h.push(HeaderName::CSeq, "7 FOO");
        h.push(
            HeaderName::Contact,
            "<sip:a@1.2.3.4>;expires=60, <sip:b@5.6.7.8>",
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::Supported, "path, outbound");
        h.push(HeaderName::Allow, "");
        h
    }

    #[test]
    fn typed_reads() {
        let h = sample();
        let vias = h.via().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[1].port, Some(5070));
        assert_eq!(h.top_via().unwrap().host, "a.example.com");
        assert_eq!(h.from().unwrap().tag(), Some("88"));
        assert_eq!(h.to().unwrap().tag(), None);
        assert_eq!(h.call_id().unwrap(), "abc@host");
        let c = h.cseq().unwrap();
        assert_eq!((c.seq, c.method.as_str()), (7, "FOO"));
        match h.contacts().unwrap() {
            Contacts::List(l) => {
                assert_eq!(l.len(), 2);
                assert_eq!(l[0].expires(), Ok(Some(60)));
            }
            Contacts::Star => panic!(),
        }
        assert_eq!(h.max_forwards(), Ok(Some(70)));
        assert_eq!(h.expires(), Ok(None));
        assert_eq!(h.supported().unwrap(), vec!["path", "outbound"]);
        assert!(h.allow().unwrap().is_empty());
        assert!(h.route().unwrap().is_empty());
    }

    #[test]
    fn missing_and_bad() {
        let mut h = Headers::new();
        assert_eq!(
            h.call_id().unwrap_err().reason_phrase(),
            "Missing Call-ID Header"
        );
        h.push(HeaderName::MaxForwards, "300");
        assert_eq!(
            h.max_forwards().unwrap_err().kind,
            ParseErrorKind::ValueOutOfRange
        );
        h.push(HeaderName::Contact, "*, <sip:a@b>");
        assert!(h.contacts().is_err());
        h.push(HeaderName::Via, "SIP/2.0/UDP 192.0.2.15;;,;,,");
        assert_eq!(h.via().unwrap_err().reason_phrase(), "Malformed Via Header");
        h.push(HeaderName::from_static("X-Bin"), &b"\xff\xfe"[..]);
        assert_eq!(
            h.get_str(&HeaderName::from_static("x-bin"))
                .unwrap_err()
                .kind,
            ParseErrorKind::InvalidUtf8
        );
    }
}
