//! Building a line's REGISTER (RFC 3261 §10.2).

use mss_sip::{HeaderName, Method, Request, Transport};

use crate::lines::call_id::RegisterIds;
use crate::lines::settings::LineSettings;
use crate::lines::targets::Target;

/// Everything that varies between two REGISTERs of a line.
pub(crate) struct RegisterParts<'a> {
    pub(crate) settings: &'a LineSettings,
    pub(crate) target: &'a Target,
    pub(crate) ids: &'a RegisterIds,
    pub(crate) branch: &'a str,
    /// The lifetime asked for; 0 removes our binding (un-REGISTER, §10.2.2).
    pub(crate) expires: u32,
    /// `Authorization` or `Proxy-Authorization` and its value.
    pub(crate) credentials: Option<(HeaderName, String)>,
}

/// Our Contact URI at `target`: `sip:number@local`, with the transport for non-UDP.
pub(crate) fn contact_uri(settings: &LineSettings, target: &Target) -> String {
    match target.transport {
        Transport::Udp => format!("sip:{}@{}", settings.number, target.local),
        t => format!(
            "sip:{}@{};transport={}",
            settings.number,
            target.local,
            t.as_str().to_ascii_lowercase()
        ),
    }
}

/// The complete REGISTER: Request-URI `sip:domain`, Via with a fresh branch and `rport`
/// (RFC 3581), Max-Forwards 70, From (with tag) and To naming the address of record, Call-ID,
/// CSeq, Contact, Expires, User-Agent and credentials when there are any; Content-Length 0 is
/// written when encoding.
pub(crate) fn build_register(p: &RegisterParts<'_>) -> Request {
    let aor = p.settings.aor();
    let mut b = Request::builder(Method::Register, p.settings.request_uri())
        .via(format!(
            "SIP/2.0/{} {};branch={};rport",
            p.target.transport.as_str(),
            p.target.local,
            p.branch
        ))
        .max_forwards(70)
        .from(format!("<{aor}>;tag={}", p.ids.from_tag))
        .to(format!("<{aor}>"))
        .call_id(p.ids.call_id.clone())
        .cseq(p.ids.cseq)
        .contact(format!("<{}>", contact_uri(p.settings, p.target)))
        .header(HeaderName::Expires, p.expires.to_string());
    if let Some((name, value)) = &p.credentials {
        b = b.header(name.clone(), value.clone());
    }
    b.header(HeaderName::UserAgent, p.settings.user_agent.clone())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mss_sip::{parse_datagram, Message};
    use std::net::SocketAddr;

    #[test]
    fn register_is_complete_and_parses() {
        let mut s = LineSettings::new("p1", "sip.provider.example", "2001", "pw");
        s.user_agent = "mss/0.1".into();
        let target = Target {
            addr: SocketAddr::from(([192, 0, 2, 1], 5060)),
            transport: Transport::Tcp,
            local: SocketAddr::from(([192, 0, 2, 9], 5070)),
        };
        let ids = RegisterIds {
            call_id: "c1".into(),
            from_tag: "t1".into(),
            cseq: 7,
        };
        let req = build_register(&RegisterParts {
            settings: &s,
            target: &target,
            ids: &ids,
            branch: "z9hG4bKabc",
            expires: 3600,
            credentials: Some((HeaderName::Authorization, "Digest username=\"2001\"".into())),
        });
        let wire = req.to_bytes();
        let text = String::from_utf8_lossy(&wire).to_string();
        assert!(text.starts_with("REGISTER sip:sip.provider.example SIP/2.0\r\n"));
        assert!(text.contains("Content-Length: 0\r\n"), "{text}");
        let Ok(Message::Request(parsed)) = parse_datagram(Bytes::from(wire.to_vec())) else {
            panic!("does not parse: {text}");
        };
        parsed.validate().unwrap();
        let h = parsed.headers();
        let via = h.top_via().unwrap();
        assert_eq!(via.branch(), Some("z9hG4bKabc"));
        assert_eq!(via.rport(), Some(None));
        assert_eq!(h.from().unwrap().tag(), Some("t1"));
        assert_eq!(h.to().unwrap().uri_str, "sip:2001@sip.provider.example");
        assert_eq!(h.call_id().unwrap(), "c1");
        assert_eq!(h.cseq().unwrap().seq, 7);
        assert_eq!(h.expires().unwrap(), Some(3600));
        assert_eq!(h.max_forwards().unwrap(), Some(70));
        assert_eq!(
            h.get_str(&HeaderName::Contact).unwrap(),
            Some("<sip:2001@192.0.2.9:5070;transport=tcp>")
        );
        assert_eq!(h.get_str(&HeaderName::UserAgent).unwrap(), Some("mss/0.1"));
        assert!(h.contains(&HeaderName::Authorization));
    }
}
