//! Reading what a REGISTER asks for: a query, `Contact: *`, or a list of contacts with
//! their expiry (RFC 3261 §10.2.1–10.2.2, §10.3 steps 6–7, §20.10; RFC 5626 §6).
//!
//! Everything here is syntax and arithmetic on the request alone, checked before
//! authentication so that a malformed REGISTER gets a `400` that says why instead of a
//! challenge loop; nothing here depends on which users exist.

use std::borrow::Cow;

use mss_sip::{Contact, Contacts, HeaderName, ParseError, Request, Uri};
use mss_store::BindingKey;

use crate::answer::Reject;

/// The expiry limits of the registrar, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) default: u32,
    pub(crate) min: u32,
    pub(crate) max: u32,
}

/// One contact of the request, ready to become a binding. It borrows the request: the
/// owned copies are made only once the REGISTER is authenticated and the binding is
/// built, so a REGISTER answered with a challenge copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WantedContact<'a> {
    /// The URI as sent, without `<>` and without contact parameters.
    pub(crate) contact: &'a str,
    /// `+sip.instance`, unquoted (`<urn:uuid:…>`).
    pub(crate) instance: Option<Cow<'a, str>>,
    /// `reg-id`, only when outbound processing applies.
    pub(crate) reg_id: Option<u32>,
    pub(crate) q_milli: Option<u16>,
    /// Granted expiry after capping; 0 removes.
    pub(crate) expires: u32,
    /// Asked for less than the minimum (and not 0): `423` once authenticated.
    pub(crate) too_brief: bool,
}

impl WantedContact<'_> {
    /// What identifies the binding: instance and reg-id when there is an instance, the
    /// contact URI otherwise (an owned copy).
    pub(crate) fn key(&self) -> BindingKey {
        match &self.instance {
            Some(i) => BindingKey::Instance {
                instance: i.as_ref().to_owned(),
                reg_id: self.reg_id,
            },
            None => BindingKey::Contact(self.contact.to_owned()),
        }
    }

    /// Whether `key` is [`WantedContact::key`], compared without building it.
    pub(crate) fn has_key(&self, key: &BindingKey) -> bool {
        match (key, &self.instance) {
            (BindingKey::Instance { instance, reg_id }, Some(i)) => {
                instance == i.as_ref() && *reg_id == self.reg_id
            }
            (BindingKey::Contact(contact), None) => contact == self.contact,
            _ => false,
        }
    }
}

/// The contacts of a REGISTER that lists some, with what reading each one needs. Every
/// contact was read once by [`parse`] (which returns the first error); [`WantedList::iter`]
/// reads them again where they are used, instead of keeping them in a `Vec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WantedList<'r, 'a> {
    contacts: &'r [Contact<'a>],
    /// The Expires header, for contacts without `expires`.
    header_expires: Option<u32>,
    limits: Limits,
    /// One Via: we are the first hop (RFC 5626 §6, no Path support).
    first_hop: bool,
    /// `Supported: outbound`.
    supports_outbound: bool,
    /// Some contact asks for less than the minimum (and not 0): `423` once authenticated.
    too_brief: bool,
}

impl<'r, 'a> WantedList<'r, 'a> {
    /// Whether some contact asks for less than the minimum expiry (and not 0), found
    /// when [`parse`] read them.
    pub(crate) fn any_too_brief(&self) -> bool {
        self.too_brief
    }

    /// How many contacts the request lists.
    pub(crate) fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Each contact with its expiry, in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Result<WantedContact<'a>, Reject>> + 'r {
        self.contacts.iter().map(move |c| self.read(c))
    }

    /// One contact: URI, expiry after the limits, instance, reg-id and q.
    fn read(&self, c: &Contact<'a>) -> Result<WantedContact<'a>, Reject> {
        let Uri::Sip(_) = c.addr.uri else {
            return Err(Reject::BadRequest("Contact Must Be a SIP URI"));
        };
        let asked = match c.expires() {
            Ok(Some(v)) => v,
            Ok(None) => self.header_expires.unwrap_or(self.limits.default),
            Err(e) if e.kind == mss_sip::ParseErrorKind::ValueOutOfRange => {
                return Err(Reject::BadRequest("Contact Expires Out Of Range"))
            }
            Err(_) => return Err(Reject::BadRequest("Malformed Contact Expires")),
        };
        let instance = c.instance();
        let raw_reg_id = c.addr.params.get("reg-id");
        let reg_id = match (raw_reg_id, &instance) {
            (Some(v), Some(_)) => {
                let id = v.and_then(|v| v.parse::<u32>().ok());
                if id.is_none() {
                    return Err(Reject::BadRequest("Malformed reg-id"));
                }
                if !self.first_hop {
                    if self.supports_outbound {
                        return Err(Reject::FirstHopLacksOutbound);
                    }
                    None
                } else {
                    id
                }
            }
            // A reg-id without an instance is ignored (RFC 5626 §6).
            _ => None,
        };
        Ok(WantedContact {
            contact: c.addr.uri_str,
            instance,
            reg_id,
            q_milli: c.q().map(q_milli),
            expires: asked.min(self.limits.max),
            too_brief: asked != 0 && asked < self.limits.min,
        })
    }
}

/// What the REGISTER asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Wanted<'r, 'a> {
    /// No Contact: list the bindings (RFC 3261 §10.2.3).
    Query,
    /// `Contact: *` with `Expires: 0`: remove every binding (§10.2.2).
    RemoveAll,
    /// Add, refresh or remove these.
    List(WantedList<'r, 'a>),
}

/// The request's contacts and whether RFC 5626 outbound applied to them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed<'r, 'a> {
    pub(crate) wanted: Wanted<'r, 'a>,
    /// A `reg-id` was honoured and the UAC supports outbound: `Require: outbound` in the
    /// `200` (RFC 5626 §6).
    pub(crate) require_outbound: bool,
}

/// `q` in thousandths (`0.7` → 700).
fn q_milli(q: f32) -> u16 {
    // q is within 0.0..=1.0 (checked by mss-sip), so this fits.
    (q * 1000.0).round().clamp(0.0, 1000.0) as u16
}

/// The headers [`parse`] works from, as read by the caller: parsed on the spot
/// ([`Read::from_request`]) or taken from what the worker's check already parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Read<'r, 'a> {
    /// The Expires header.
    pub(crate) expires: Result<Option<u32>, &'r ParseError>,
    /// The Contact headers.
    pub(crate) contacts: Result<&'r Contacts<'a>, &'r ParseError>,
    /// How many Via values the request has.
    pub(crate) via_count: usize,
}

/// What `req` asks for, from its Contact and Expires headers (`read`) and its Supported
/// header. Every contact is read here, so a malformed one is refused before
/// authentication.
pub(crate) fn parse<'r, 'a>(
    req: &Request,
    read: Read<'r, 'a>,
    limits: Limits,
) -> Result<Parsed<'r, 'a>, Reject> {
    let h = req.headers();
    let header_expires = read.expires.map_err(|e| Reject::Malformed(e.clone()))?;
    let contacts = read.contacts.map_err(|e| match e.kind {
        mss_sip::ParseErrorKind::ValueOutOfRange => {
            Reject::BadRequest("Contact Expires Out Of Range")
        }
        _ => Reject::Malformed(e.clone()),
    })?;
    let list = match contacts {
        Contacts::Star => {
            // §10.2.2 / §10.3 step 6: only with Expires: 0 and as the only Contact value.
            if header_expires != Some(0) {
                return Err(Reject::BadRequest("Contact * Requires Expires 0"));
            }
            if h.values(&HeaderName::Contact).count() != 1 {
                return Err(Reject::BadRequest("Contact * Must Be Alone"));
            }
            return Ok(Parsed {
                wanted: Wanted::RemoveAll,
                require_outbound: false,
            });
        }
        Contacts::List(list) if list.is_empty() => {
            return Ok(Parsed {
                wanted: Wanted::Query,
                require_outbound: false,
            })
        }
        Contacts::List(list) => list,
    };
    // RFC 5626 §6: reg-id counts only when we are the first hop (one Via; no Path support).
    let first_hop = read.via_count == 1;
    let supports_outbound = h.contains(&HeaderName::Supported)
        && h.supported()
            .map_err(Reject::Malformed)?
            .iter()
            .any(|t| t.eq_ignore_ascii_case("outbound"));
    let mut wanted = WantedList {
        contacts: list,
        header_expires,
        limits,
        first_hop,
        supports_outbound,
        too_brief: false,
    };
    let mut too_brief = false;
    let mut honoured_reg_id = false;
    let mut nonzero_with_reg_id = false;
    let mut nonzero = 0usize;
    for c in wanted.iter() {
        let c = c?;
        too_brief |= c.too_brief;
        if c.expires != 0 {
            nonzero += 1;
            nonzero_with_reg_id |= c.reg_id.is_some();
        }
        honoured_reg_id |= c.reg_id.is_some();
    }
    // RFC 5626 §6: a reg-id registers one flow; several non-zero contacts with one → 400.
    if nonzero_with_reg_id && nonzero > 1 {
        return Err(Reject::BadRequest("Several Contacts With reg-id"));
    }
    wanted.too_brief = too_brief;
    Ok(Parsed {
        wanted: Wanted::List(wanted),
        require_outbound: honoured_reg_id && supports_outbound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::tests::req;

    const LIMITS: Limits = Limits {
        default: 3600,
        min: 60,
        max: 3600,
    };

    fn register(extra: &str) -> Request {
        req(&format!("REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:100@pbx>;tag=1\r\nTo: <sip:100@pbx>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"))
    }

    /// What [`parse`] makes of `req`, with each wanted contact as [`Got`].
    #[derive(Debug, PartialEq)]
    enum Asked {
        Query,
        RemoveAll,
        List(Vec<Got>),
    }

    /// A wanted contact, owned, with its key.
    #[derive(Debug, PartialEq)]
    struct Got {
        key: BindingKey,
        contact: String,
        reg_id: Option<u32>,
        q_milli: Option<u16>,
        expires: u32,
        too_brief: bool,
    }

    /// The Expires and Contact headers of a request, parsed on the spot: the tests here
    /// feed [`parse`] headers that a check would have refused before it.
    struct Owned<'a> {
        expires: Result<Option<u32>, ParseError>,
        contacts: Result<Contacts<'a>, ParseError>,
        via_count: usize,
    }

    impl<'a> Owned<'a> {
        fn of(req: &'a Request) -> Owned<'a> {
            let h = req.headers();
            Owned {
                expires: h.expires(),
                contacts: h.contacts(),
                via_count: h.values(&HeaderName::Via).count(),
            }
        }

        fn read(&self) -> Read<'_, 'a> {
            Read {
                expires: self.expires.as_ref().copied(),
                contacts: self.contacts.as_ref(),
                via_count: self.via_count,
            }
        }
    }

    fn parse_request(req: &Request, limits: Limits) -> Result<(Asked, bool), Reject> {
        let owned = Owned::of(req);
        let parsed = parse(req, owned.read(), limits)?;
        let asked = match parsed.wanted {
            Wanted::Query => Asked::Query,
            Wanted::RemoveAll => Asked::RemoveAll,
            Wanted::List(l) => {
                let mut got = Vec::new();
                for c in l.iter() {
                    let c = c?;
                    assert!(c.has_key(&c.key()));
                    got.push(Got {
                        key: c.key(),
                        contact: c.contact.to_owned(),
                        reg_id: c.reg_id,
                        q_milli: c.q_milli,
                        expires: c.expires,
                        too_brief: c.too_brief,
                    });
                }
                assert_eq!(got.len(), l.len());
                assert_eq!(l.any_too_brief(), got.iter().any(|g| g.too_brief));
                Asked::List(got)
            }
        };
        Ok((asked, parsed.require_outbound))
    }

    fn list(extra: &str) -> Vec<Got> {
        match parse_request(&register(extra), LIMITS).unwrap().0 {
            Asked::List(l) => l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_compare_without_being_built() {
        let inst = "+sip.instance=\"<urn:uuid:1>\"";
        let l = list(&format!(
            "Contact: <sip:a@h>, <sip:a@h>;{inst}, <sip:a@h>;{inst};reg-id=2;expires=0\r\n"
        ));
        let keys: Vec<_> = l.iter().map(|g| g.key.clone()).collect();
        assert_eq!(keys[0], BindingKey::Contact("sip:a@h".into()));
        assert_eq!(
            keys[1],
            BindingKey::Instance {
                instance: "<urn:uuid:1>".into(),
                reg_id: None
            }
        );
        assert_eq!(
            keys[2],
            BindingKey::Instance {
                instance: "<urn:uuid:1>".into(),
                reg_id: Some(2)
            }
        );
        let req = register(&format!(
            "Contact: <sip:a@h>, <sip:a@h>;{inst}, <sip:a@h>;{inst};reg-id=2;expires=0\r\n"
        ));
        let owned = Owned::of(&req);
        let Wanted::List(wanted) = parse(&req, owned.read(), LIMITS).unwrap().wanted else {
            panic!()
        };
        for (i, c) in wanted.iter().enumerate() {
            let c = c.unwrap();
            for (j, k) in keys.iter().enumerate() {
                assert_eq!(c.has_key(k), i == j, "{i} {j}");
            }
        }
    }

    #[test]
    fn expiry_precedence_and_limits() {
        let l = list("Expires: 120\r\nContact: <sip:a@h>;expires=30, <sip:b@h>, <sip:c@h>;expires=99999\r\nContact: <sip:d@h>;expires=0\r\n");
        let e: Vec<_> = l.iter().map(|c| (c.expires, c.too_brief)).collect();
        assert_eq!(e, vec![(30, true), (120, false), (3600, false), (0, false)]);
        let l = list("Contact: sip:e@h;q=0.7\r\n");
        assert_eq!((l[0].expires, l[0].q_milli), (3600, Some(700)));
    }

    #[test]
    fn star_rules() {
        let p = parse_request(&register("Expires: 0\r\nContact: *\r\n"), LIMITS).unwrap();
        assert_eq!(p.0, Asked::RemoveAll);
        for bad in [
            "Contact: *\r\n",
            "Expires: 10\r\nContact: *\r\n",
            "Expires: 0\r\nContact: *\r\nContact: *\r\n",
            "Expires: 0\r\nContact: *, <sip:a@h>\r\n",
        ] {
            let e = parse_request(&register(bad), LIMITS).unwrap_err();
            assert!(
                matches!(e, Reject::BadRequest(_) | Reject::Malformed(_)),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(
            parse_request(&register(""), LIMITS).unwrap().0,
            Asked::Query
        );
    }

    #[test]
    fn overflow_and_garbage() {
        assert_eq!(
            parse_request(
                &register("Contact: <sip:a@h>;expires=280297596632815\r\n"),
                LIMITS
            )
            .unwrap_err(),
            Reject::BadRequest("Contact Expires Out Of Range")
        );
        let e = parse_request(
            &register("Expires: 100000000000000\r\nContact: <sip:a@h>\r\n"),
            LIMITS,
        )
        .unwrap_err();
        assert!(
            matches!(e, Reject::Malformed(ref p) if p.reason_phrase() == "Expires Out Of Range")
        );
        assert_eq!(
            parse_request(&register("Contact: <sip:a@h>;expires=soon\r\n"), LIMITS).unwrap_err(),
            Reject::BadRequest("Malformed Contact Expires")
        );
        assert_eq!(
            parse_request(&register("Contact: <mailto:a@h>\r\n"), LIMITS).unwrap_err(),
            Reject::BadRequest("Contact Must Be a SIP URI")
        );
    }

    #[test]
    fn outbound_parameters() {
        let inst = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";
        let p = parse_request(
            &register(&format!(
                "Supported: outbound\r\nContact: <sip:a@h>;{inst};reg-id=1\r\n"
            )),
            LIMITS,
        )
        .unwrap();
        assert!(p.1);
        let Asked::List(l) = p.0 else { panic!() };
        assert_eq!(
            l[0].key,
            BindingKey::Instance {
                instance: "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".into(),
                reg_id: Some(1)
            }
        );
        // Not the first hop: 439 when the UAC wants outbound, reg-id ignored otherwise.
        let two_vias = format!(
            "Via: SIP/2.0/UDP proxy;branch=z9hG4bK2\r\nContact: <sip:a@h>;{inst};reg-id=1\r\n"
        );
        let p = parse_request(&register(&two_vias), LIMITS).unwrap();
        let Asked::List(l) = p.0 else { panic!() };
        assert_eq!(l[0].reg_id, None);
        assert_eq!(
            parse_request(
                &register(&format!("Supported: outbound\r\n{two_vias}")),
                LIMITS
            )
            .unwrap_err(),
            Reject::FirstHopLacksOutbound
        );
        // reg-id without instance is ignored; two non-zero contacts with reg-id → 400.
        let l = list("Contact: <sip:a@h>;reg-id=1\r\n");
        assert_eq!(l[0].reg_id, None);
        let e = parse_request(
            &register(&format!(
                "Contact: <sip:a@h>;{inst};reg-id=1, <sip:b@h>\r\n"
            )),
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(e, Reject::BadRequest("Several Contacts With reg-id"));
    }
}
