//! The route set of a dialog and where its requests go: loose routing, and the Request-URI
//! rewrite for a strict router (RFC 3261 §12.1.1, §12.1.2, §12.2.1.1, §16.12.1.2).

use mss_sip::{HeaderName, Headers, NameAddr, ParseError, ParseErrorKind, Uri};

/// One entry of a route set: a Record-Route value as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    value: String,
    uri: String,
    loose: bool,
}

impl RouteEntry {
    /// The whole value as received (name-addr with every parameter), the way it goes into a
    /// Route header (§12.2.1.1: URI, URI parameters and header parameters kept).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The URI, without `<>`.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// True when the URI has the `lr` parameter: a loose router (§19.1.1).
    pub fn is_loose(&self) -> bool {
        self.loose
    }
}

/// Where a request of the dialog goes: its Request-URI and its Route header values, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The Request-URI.
    pub request_uri: String,
    /// The Route values, first hop first.
    pub routes: Vec<String>,
}

/// The route set of a dialog (RFC 3261 §12.1): the proxies that asked to stay on the path of
/// its requests, first hop first. It never changes after the dialog is confirmed
/// (§12.2.1.2); an early dialog's route set is computed again from the `2xx` (§13.2.2.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSet {
    entries: Vec<RouteEntry>,
}

impl RouteSet {
    /// The route set of the UAS (§12.1.1): the Record-Route values of the request, in order.
    ///
    /// # Errors
    /// A Record-Route value that does not parse.
    pub fn for_uas(request_headers: &Headers) -> Result<RouteSet, ParseError> {
        Self::parse(request_headers)
    }

    /// The route set of the UAC (§12.1.2): the Record-Route values of the response, in
    /// reverse order.
    ///
    /// # Errors
    /// A Record-Route value that does not parse.
    pub fn for_uac(response_headers: &Headers) -> Result<RouteSet, ParseError> {
        let mut set = Self::parse(response_headers)?;
        set.entries.reverse();
        Ok(set)
    }

    fn parse(headers: &Headers) -> Result<RouteSet, ParseError> {
        let name = HeaderName::RecordRoute;
        let mut entries = Vec::new();
        for raw in headers.values(&name) {
            let text = std::str::from_utf8(raw).map_err(|e| {
                ParseError::in_header(ParseErrorKind::InvalidUtf8, name.clone(), e.valid_up_to())
            })?;
            let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
            let addr = NameAddr::parse(text, &name)?;
            entries.push(RouteEntry {
                value: text.to_owned(),
                uri: addr.uri_str.to_owned(),
                loose: addr.uri.as_sip().is_some_and(|u| u.is_loose_route()),
            });
        }
        Ok(RouteSet { entries })
    }

    /// The entries, first hop first.
    pub fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }

    /// True when the set is empty: requests go straight to the remote target.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Request-URI and Route values of a request to `remote_target` (§12.2.1.1):
    /// - an empty route set: the remote target, no Route;
    /// - a first entry with `lr` (a loose router, the normal case): the remote target, and
    ///   the route set as Route, in order;
    /// - a first entry without `lr` (a strict router, RFC 2543): that entry's URI, stripped
    ///   of what a Request-URI may not carry, and Route with the rest of the set followed by
    ///   the remote target.
    pub fn destination(&self, remote_target: &str) -> Destination {
        match self.entries.split_first() {
            None => Destination {
                request_uri: remote_target.to_owned(),
                routes: Vec::new(),
            },
            Some((first, _)) if first.loose => Destination {
                request_uri: remote_target.to_owned(),
                routes: self.entries.iter().map(|e| e.value.clone()).collect(),
            },
            Some((first, rest)) => {
                let mut routes: Vec<String> = rest.iter().map(|e| e.value.clone()).collect();
                routes.push(format!("<{remote_target}>"));
                Destination {
                    request_uri: request_uri_form(&first.uri),
                    routes,
                }
            }
        }
    }
}

/// A SIP URI as a Request-URI may carry it (§12.2.1.1, table of §19.1.1): without URI
/// headers and without the `method` parameter. Other URIs are kept as they are.
fn request_uri_form(uri: &str) -> String {
    let Ok(Uri::Sip(sip)) = Uri::parse(uri) else {
        return uri.to_owned();
    };
    let mut out = String::with_capacity(uri.len());
    out.push_str(if sip.secure { "sips:" } else { "sip:" });
    if let Some(user) = sip.user {
        out.push_str(user);
        if let Some(password) = sip.password {
            out.push(':');
            out.push_str(password);
        }
        out.push('@');
    }
    out.push_str(sip.host);
    if let Some(port) = sip.port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    for (name, value) in sip.params.iter() {
        if name.eq_ignore_ascii_case("method") {
            continue;
        }
        out.push(';');
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(rr: &[&str]) -> Headers {
        let mut h = Headers::new();
        for v in rr {
            h.push(HeaderName::RecordRoute, v.to_string());
        }
        h
    }

    #[test]
    fn uas_keeps_order_uac_reverses() {
        let h = headers(&[
            "<sip:p1.example;lr>;x=1, <sip:p2.example;lr>",
            "<sip:p3.example;lr>",
        ]);
        let uas = RouteSet::for_uas(&h).unwrap();
        let values: Vec<_> = uas.entries().iter().map(RouteEntry::value).collect();
        assert_eq!(
            values,
            [
                "<sip:p1.example;lr>;x=1",
                "<sip:p2.example;lr>",
                "<sip:p3.example;lr>"
            ]
        );
        let uac = RouteSet::for_uac(&h).unwrap();
        let uris: Vec<_> = uac.entries().iter().map(RouteEntry::uri).collect();
        assert_eq!(
            uris,
            [
                "sip:p3.example;lr",
                "sip:p2.example;lr",
                "sip:p1.example;lr"
            ]
        );
    }

    #[test]
    fn loose_routing_keeps_the_remote_target() {
        let set =
            RouteSet::for_uas(&headers(&["<sip:p1.example;lr>, <sip:p2.example;lr>"])).unwrap();
        let d = set.destination("sip:alice@192.0.2.4");
        assert_eq!(d.request_uri, "sip:alice@192.0.2.4");
        assert_eq!(d.routes, ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]);
        let empty = RouteSet::default().destination("sip:alice@192.0.2.4");
        assert!(empty.routes.is_empty());
    }

    #[test]
    fn strict_router_takes_the_request_uri() {
        // RFC 3261 §12.2.1.1: the example route set and remote target.
        let set = RouteSet::for_uas(&headers(&[
            "<sip:proxy1;method=INVITE?x=y>, <sip:proxy2>, <sip:proxy3;lr>, <sip:proxy4>",
        ]))
        .unwrap();
        let d = set.destination("sip:user@remoteua");
        assert_eq!(d.request_uri, "sip:proxy1");
        assert_eq!(
            d.routes,
            [
                "<sip:proxy2>",
                "<sip:proxy3;lr>",
                "<sip:proxy4>",
                "<sip:user@remoteua>"
            ]
        );
    }

    #[test]
    fn malformed_record_route_is_an_error() {
        assert!(RouteSet::for_uas(&headers(&["<sip:p1.example;lr"])).is_err());
        assert!(RouteSet::for_uas(&headers(&["<sip:a@b>, ,<sip:c@d>"])).is_ok());
    }
}
