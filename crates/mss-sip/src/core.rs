//! The core headers of a message, parsed once by the validation pass (RFC 3261 §8.2,
//! §17, §20): the top Via, From, To, Call-ID, CSeq, Max-Forwards, Contact and Expires, and
//! for a request its Request-URI.
//!
//! [`crate::Request::check`] checks what [`crate::Request::validate`] checks and keeps
//! what it parsed on the way, borrowed from the message, so that the transaction layer
//! (key), the response routing and the services read these values without parsing them
//! again. The view lives as long as a borrow of the request: build it once per received
//! request and pass it along with `&Request`.

use crate::error::{ParseError, ParseErrorKind};
use crate::header::{for_each_item, missing, text, CSeq, Contacts, NameAddr, Via};
use crate::headers::Headers;
use crate::name::HeaderName;
use crate::uri::Uri;

/// The core headers of a valid message, parsed once (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core<'a> {
    /// The top Via value (RFC 3261 §18.2.2: where responses go, §17.2.3: the branch).
    pub top_via: Via<'a>,
    /// How many Via values the message has, across all its Via lines.
    pub via_count: usize,
    /// From (RFC 3261 §20.20).
    pub from: NameAddr<'a>,
    /// To (RFC 3261 §20.39).
    pub to: NameAddr<'a>,
    /// Call-ID (RFC 3261 §20.8).
    pub call_id: &'a str,
    /// CSeq (RFC 3261 §20.16).
    pub cseq: CSeq,
    /// Max-Forwards, when present (RFC 3261 §20.22).
    pub max_forwards: Option<u8>,
    /// The Contact values: `*`, or every contact in order (empty list when absent).
    pub contacts: Contacts<'a>,
    /// Expires, when present (RFC 3261 §20.19).
    pub expires: Option<u32>,
}

/// The core headers and the Request-URI of a valid request ([`crate::Request::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCore<'a> {
    /// The Request-URI, parsed (RFC 3261 §19.1).
    pub uri: Uri<'a>,
    /// The core headers.
    pub core: Core<'a>,
}

fn duplicate(name: HeaderName) -> ParseError {
    ParseError::in_header(ParseErrorKind::DuplicateHeader, name, 0)
}

/// How many lines of each header a message must have once (or at most once), and whether
/// the optional ones are present, counted in one pass over the header index (an absent
/// optional header then costs no lookup of its own).
#[derive(Default)]
struct Counts {
    from: usize,
    to: usize,
    call_id: usize,
    cseq: usize,
    max_forwards: usize,
    content_length: usize,
    contact: usize,
    expires: usize,
    route: usize,
    record_route: usize,
    date: usize,
}

impl Counts {
    fn of(h: &Headers) -> Counts {
        let mut c = Counts::default();
        for (name, _) in h.iter() {
            match name {
                HeaderName::From => c.from += 1,
                HeaderName::To => c.to += 1,
                HeaderName::CallId => c.call_id += 1,
                HeaderName::CSeq => c.cseq += 1,
                HeaderName::MaxForwards => c.max_forwards += 1,
                HeaderName::ContentLength => c.content_length += 1,
                HeaderName::Contact => c.contact += 1,
                HeaderName::Expires => c.expires += 1,
                HeaderName::Route => c.route += 1,
                HeaderName::RecordRoute => c.record_route += 1,
                HeaderName::Date => c.date += 1,
                _ => {}
            }
        }
        c
    }

    /// Exactly one From, To, Call-ID and CSeq (in this order of checking), at most one
    /// Max-Forwards.
    fn check(&self) -> Result<(), ParseError> {
        for (n, name) in [
            (self.from, HeaderName::From),
            (self.to, HeaderName::To),
            (self.call_id, HeaderName::CallId),
            (self.cseq, HeaderName::CSeq),
        ] {
            match n {
                0 => return Err(missing(name)),
                1 => {}
                _ => return Err(duplicate(name)),
            }
        }
        if self.max_forwards > 1 {
            return Err(duplicate(HeaderName::MaxForwards));
        }
        Ok(())
    }
}

/// Every Via value parses; gives the top one and the count.
fn vias(h: &Headers) -> Result<(Via<'_>, usize), ParseError> {
    let name = HeaderName::Via;
    let mut top = None;
    let mut count = 0usize;
    for line in h.get_all(&name) {
        for_each_item(text(line, &name)?, &name, |item| {
            let via = Via::parse(item)?;
            if top.is_none() {
                top = Some(via);
            }
            count += 1;
            Ok(())
        })?;
    }
    match top {
        Some(v) => Ok((v, count)),
        None => Err(missing(name)),
    }
}

/// Every value of a name-addr list header parses (Route, Record-Route), without keeping
/// them.
fn check_name_addrs(h: &Headers, name: &HeaderName) -> Result<(), ParseError> {
    for line in h.get_all(name) {
        for_each_item(text(line, name)?, name, |item| {
            NameAddr::parse(item, name).map(|_| ())
        })?;
    }
    Ok(())
}

/// The checks requests and responses share, in the order [`crate::Request::validate`]
/// has always made them (so the first problem named stays the same): one From, To,
/// Call-ID and CSeq, at most one Max-Forwards, at least one Via, all of them well formed,
/// and well-formed Content-Length, Contact (with their `expires`), Expires, Route,
/// Record-Route and Date.
pub(crate) fn check_common(h: &Headers) -> Result<Core<'_>, ParseError> {
    let counts = Counts::of(h);
    counts.check()?;
    let (top_via, via_count) = vias(h)?;
    // Parsed in full here: their tags are noted on the message on the way (`tag_memo`).
    let from = h.name_addr_noting_tag(HeaderName::From)?;
    let to = h.name_addr_noting_tag(HeaderName::To)?;
    let call_id = h.call_id()?;
    let cseq = h.cseq()?;
    let max_forwards = match counts.max_forwards {
        0 => None,
        _ => h.max_forwards()?,
    };
    if counts.content_length > 0 {
        h.content_length()?;
    }
    let contacts = match counts.contact {
        0 => Contacts::List(Vec::new()),
        _ => h.contacts()?,
    };
    if let Contacts::List(list) = &contacts {
        for c in list {
            c.expires()?;
        }
    }
    let expires = match counts.expires {
        0 => None,
        _ => h.expires()?,
    };
    if counts.route > 0 {
        check_name_addrs(h, &HeaderName::Route)?;
    }
    if counts.record_route > 0 {
        check_name_addrs(h, &HeaderName::RecordRoute)?;
    }
    if counts.date > 0 {
        h.date()?;
    }
    Ok(Core {
        top_via,
        via_count,
        from,
        to,
        call_id,
        cseq,
        max_forwards,
        contacts,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::parse_datagram;
    use crate::message::Message;
    use bytes::Bytes;

    fn request(s: &'static str) -> crate::Request {
        match parse_datagram(Bytes::from_static(s.as_bytes())).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!(),
        }
    }

    #[test]
    fn the_view_holds_what_the_typed_accessors_give() {
        let r = request("REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP h:5062;branch=z9hG4bK1;rport, SIP/2.0/TCP x\r\nv: SIP/2.0/UDP y\r\nFrom: <sip:a@pbx.test>;tag=1\r\nTo: \"A\" <sip:a@pbx.test>\r\nCall-ID: c@h\r\nCSeq: 7 REGISTER\r\nMax-Forwards: 70\r\nContact: <sip:a@h:5062>;expires=60, <sip:a@k>\r\nExpires: 30\r\nl: 0\r\n\r\n");
        let c = r.check().unwrap();
        let h = r.headers();
        assert_eq!(c.uri, r.uri().unwrap());
        let c = c.core;
        assert_eq!(c.top_via, h.top_via().unwrap());
        assert_eq!(c.via_count, 3);
        assert_eq!(c.from, h.from().unwrap());
        assert_eq!(c.to, h.to().unwrap());
        assert_eq!(c.call_id, "c@h");
        assert_eq!(c.cseq, h.cseq().unwrap());
        assert_eq!(c.max_forwards, Some(70));
        assert_eq!(c.contacts, h.contacts().unwrap());
        assert_eq!(c.expires, Some(30));
    }

    #[test]
    fn counts_are_checked_in_order() {
        let e = request("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nTo: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n").check().unwrap_err();
        assert_eq!(e.reason_phrase(), "Missing From Header");
        let e = request("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n").check().unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::DuplicateHeader);
        assert_eq!(e.header, Some(HeaderName::To));
        let e = request("OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nRoute: <sip:r>\r\n\r\n").check().unwrap_err();
        assert_eq!(e.reason_phrase(), "Missing Via Header");
        let e = request("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nRoute: <sip:r>, ,\r\n\r\n").check().unwrap_err();
        assert_eq!(e.header, Some(HeaderName::Route));
    }
}
