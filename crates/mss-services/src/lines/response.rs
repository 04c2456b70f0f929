//! Reading a registrar's answer: the failure to record, `Retry-After`, the granted expiry and
//! the challenges. Every malformed value ends in a plain reason, never in a panic.

use mss_sip::{Contacts, HeaderName, Response, Uri};

use crate::lines::state::LastFailure;

/// The provider's error header, read by name.
pub const P_REGISTRAR_ERROR: &str = "P-Registrar-Error";

/// The longest registration taken at face value (one year); longer is clamped.
pub(crate) const MAX_GRANTED_SECS: u32 = 365 * 24 * 3600;
/// What a `200` granting 0 s (for a REGISTER that asked for more) is treated as.
pub(crate) const MIN_GRANTED_SECS: u32 = 60;
/// The longest text kept from a provider's header or reason phrase.
const MAX_TEXT: usize = 200;

fn clip(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect()
}

/// The reason phrase as text (lossy, clipped).
pub(crate) fn reason(rsp: &Response) -> String {
    clip(&String::from_utf8_lossy(rsp.reason()))
}

/// The `P-Registrar-Error` header, if present.
pub(crate) fn p_registrar_error(rsp: &Response) -> Option<String> {
    rsp.headers()
        .get(&HeaderName::from_static(P_REGISTRAR_ERROR))
        .map(|v| clip(&String::from_utf8_lossy(v)))
}

/// The failure a final non-2xx answer stands for.
pub(crate) fn failure(rsp: &Response) -> LastFailure {
    LastFailure {
        code: Some(rsp.status().as_u16()),
        reason: reason(rsp),
        p_registrar_error: p_registrar_error(rsp),
    }
}

/// The `Retry-After` seconds; a malformed header counts as absent.
pub(crate) fn retry_after(rsp: &Response) -> Option<u32> {
    rsp.headers()
        .retry_after()
        .ok()
        .flatten()
        .map(|r| r.seconds)
}

/// The expiry a `2xx` granted, and a note when the answer was odd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) seconds: u32,
    pub(crate) notice: Option<String>,
}

fn same_contact(ours: &str, theirs: &Uri<'_>) -> bool {
    let (Ok(Uri::Sip(a)), Uri::Sip(b)) = (Uri::parse(ours), theirs) else {
        return false;
    };
    let port = |p: Option<u16>| p.unwrap_or(5060);
    a.user == b.user && a.host.eq_ignore_ascii_case(b.host) && port(a.port) == port(b.port)
}

/// The lifetime granted by a `2xx` to our REGISTER that asked for `requested` seconds.
///
/// RFC 3261 §10.2.4: the `expires` parameter of our Contact in the answer is what the
/// registrar granted; the `Expires` header is the default for contacts without one. A `2xx`
/// that does not list our Contact contradicts the registration it confirms: it is accepted as
/// granting the `Expires` header (or what we asked for) and noted. 0 (for a REGISTER that
/// asked for more) and values above a year are clamped and noted.
pub(crate) fn granted(rsp: &Response, our_contact: &str, requested: u32) -> Grant {
    let h = rsp.headers();
    let header = h.expires().ok().flatten();
    let mut notice = None;
    let mut seconds = match h.contacts() {
        Ok(Contacts::List(list)) => {
            match list.iter().find(|c| same_contact(our_contact, &c.addr.uri)) {
                Some(c) => match c.expires() {
                    Ok(Some(e)) => e,
                    Ok(None) => header.unwrap_or(requested),
                    Err(_) => {
                        notice = Some("malformed expires on our Contact in 200".to_owned());
                        header.unwrap_or(requested)
                    }
                },
                None => {
                    notice =
                        Some(format!(
                        "200 OK does not list our Contact <{our_contact}> ({} other contact(s)); \
                         taking {}",
                        list.len(),
                        if header.is_some() { "the Expires header" } else { "the requested expiry" }
                    ));
                    header.unwrap_or(requested)
                }
            }
        }
        Ok(Contacts::Star) | Err(_) => {
            notice = Some(
                "200 OK with a malformed Contact header; taking the requested expiry".to_owned(),
            );
            header.unwrap_or(requested)
        }
    };
    if seconds == 0 {
        notice = Some(format!(
            "registrar granted 0 s to a REGISTER for {requested} s; refreshing as if {MIN_GRANTED_SECS} s"
        ));
        seconds = MIN_GRANTED_SECS;
    } else if seconds > MAX_GRANTED_SECS {
        notice = Some(format!(
            "registrar granted an absurd {seconds} s; refreshing as if {requested} s"
        ));
        seconds = requested.clamp(1, MAX_GRANTED_SECS);
    }
    Grant { seconds, notice }
}

/// The Digest challenges of a `401` (`WWW-Authenticate`) or `407` (`Proxy-Authenticate`), each
/// as owned `(name, value)` pairs for `mss-auth`; other schemes are skipped.
///
/// # Errors
///
/// A sentence naming the header when it does not parse.
pub fn challenges(
    rsp: &Response,
    header: &HeaderName,
) -> Result<Vec<Vec<(String, String)>>, String> {
    let values = rsp
        .headers()
        .auth(header)
        .map_err(|e| format!("malformed {header}: {e}"))?;
    Ok(values
        .iter()
        .filter(|a| a.is_digest())
        .map(|a| {
            a.params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_string()))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_sip::StatusCode;

    const OURS: &str = "sip:2001@192.0.2.9:5060";

    fn ok(headers: &[(HeaderName, &'static str)]) -> Response {
        let mut r = Response::new(StatusCode::OK, "OK");
        for (n, v) in headers {
            r.headers_mut().push(n.clone(), *v);
        }
        r
    }

    #[test]
    fn contact_expires_wins_over_header() {
        let r = ok(&[
            (
                HeaderName::Contact,
                "<sip:other@192.0.2.7>;expires=10, <sip:2001@192.0.2.9>;expires=600",
            ),
            (HeaderName::Expires, "900"),
        ]);
        assert_eq!(
            granted(&r, OURS, 3600),
            Grant {
                seconds: 600,
                notice: None
            }
        );
        let r = ok(&[
            (HeaderName::Contact, "<sip:2001@192.0.2.9:5060>"),
            (HeaderName::Expires, "900"),
        ]);
        assert_eq!(granted(&r, OURS, 3600).seconds, 900);
    }

    #[test]
    fn missing_contact_and_absurd_values_are_noted() {
        let r = ok(&[(HeaderName::Contact, "<sip:2001@198.51.100.1>;expires=600")]);
        let g = granted(&r, OURS, 3600);
        assert_eq!(g.seconds, 3600);
        assert!(g.notice.unwrap().contains("does not list our Contact"));
        let r = ok(&[(HeaderName::Contact, "<sip:2001@192.0.2.9>;expires=0")]);
        assert_eq!(granted(&r, OURS, 3600).seconds, MIN_GRANTED_SECS);
        let r = ok(&[(
            HeaderName::Contact,
            "<sip:2001@192.0.2.9>;expires=4000000000",
        )]);
        let g = granted(&r, OURS, 3600);
        assert_eq!(g.seconds, 3600);
        assert!(g.notice.unwrap().contains("absurd"));
        let r = ok(&[(HeaderName::Contact, "<sip:2001@192.0.2.9>;expires=soon")]);
        assert_eq!(granted(&r, OURS, 3600).seconds, 3600);
        let r = ok(&[(HeaderName::Contact, "<<<")]);
        assert!(granted(&r, OURS, 3600).notice.is_some());
    }

    #[test]
    fn failure_reads_p_registrar_error_and_retry_after() {
        let mut r = Response::new(StatusCode(400), "Bad Request");
        r.headers_mut().push(
            HeaderName::from_static("p-registrar-error"),
            "Invalid CSeq number",
        );
        r.headers_mut().push(HeaderName::RetryAfter, "120 (busy)");
        let f = failure(&r);
        assert_eq!(f.code, Some(400));
        assert_eq!(f.reason, "Bad Request");
        assert_eq!(f.p_registrar_error.as_deref(), Some("Invalid CSeq number"));
        assert_eq!(retry_after(&r), Some(120));
        r.headers_mut().replace(HeaderName::RetryAfter, "later");
        assert_eq!(retry_after(&r), None);
    }

    #[test]
    fn challenges_keep_digest_only() {
        let mut r = Response::new(StatusCode(401), "Unauthorized");
        r.headers_mut()
            .push(HeaderName::WwwAuthenticate, "Basic realm=\"x\"");
        r.headers_mut().push(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"p\", nonce=\"n\", qop=\"auth\"",
        );
        let c = challenges(&r, &HeaderName::WwwAuthenticate).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c[0].contains(&("nonce".to_owned(), "n".to_owned())));
        r.headers_mut().push(HeaderName::WwwAuthenticate, "=");
        assert!(challenges(&r, &HeaderName::WwwAuthenticate).is_err());
    }
}
