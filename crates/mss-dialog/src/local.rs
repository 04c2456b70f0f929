//! How mss appears in the requests it sends within one dialog: its Via and its Contact.

use mss_sip::{HeaderName, Request, Transport};

use crate::error::DialogError;

/// mss's own address in one dialog: the sent-by of the Via on top of every request it sends
/// in the dialog (RFC 3261 §18.1.1) and the Contact it gives the peer, which becomes the
/// peer's remote target (§12.1.1, §12.1.2; mss is the remote target of every leg, DESIGN
/// §8).
///
/// The caller knows both for a dialog in which mss is the UAS (the address the INVITE
/// reached us on); for a dialog in which mss is the UAC they are read from the INVITE it
/// sent ([`LocalEnd::from_request`]). A flow that changes (a new TCP connection from another
/// address) is followed with [`crate::Dialog::set_local_end`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEnd {
    /// The transport of our Via towards the peer.
    pub transport: Transport,
    /// Our Via sent-by towards the peer: `host` or `host:port` (IPv6 in brackets).
    pub sent_by: String,
    /// Our Contact URI (without `<>`), e.g. `sip:mss@192.0.2.1:5060;transport=tcp`.
    pub contact: String,
}

impl LocalEnd {
    /// Our address as a request mss sent states it: transport and sent-by of its top Via,
    /// the URI of its first Contact.
    ///
    /// # Errors
    /// [`DialogError::Malformed`] when the Via or Contact does not parse,
    /// [`DialogError::Missing`] without a Contact, [`DialogError::UnknownTransport`] for a
    /// Via transport mss does not speak.
    pub fn from_request(req: &Request) -> Result<LocalEnd, DialogError> {
        let h = req.headers();
        let via = h.top_via()?;
        let transport = Transport::from_token(via.transport)
            .ok_or_else(|| DialogError::UnknownTransport(via.transport.to_owned()))?;
        let mut sent_by = String::with_capacity(via.host.len() + 6);
        sent_by.push_str(via.host);
        if let Some(port) = via.port {
            sent_by.push(':');
            mss_sip::push_decimal(&mut sent_by, usize::from(port));
        }
        Ok(LocalEnd {
            transport,
            sent_by,
            contact: first_contact_uri(req)?,
        })
    }

    /// The Via value of a request with `branch`: `SIP/2.0/TRANSPORT sent-by;branch=…;rport`
    /// (RFC 3581, so that answers over UDP come back to the source port).
    pub(crate) fn via(&self, branch: &str) -> String {
        // Pieces pushed into one buffer of the right size (no formatter: every request
        // of a dialog has one).
        let transport = self.transport.as_str();
        let mut v = String::with_capacity(
            "SIP/2.0/ ;branch=;rport".len() + transport.len() + self.sent_by.len() + branch.len(),
        );
        for piece in [
            "SIP/2.0/",
            transport,
            " ",
            &self.sent_by,
            ";branch=",
            branch,
            ";rport",
        ] {
            v.push_str(piece);
        }
        v
    }

    /// The Contact header value: our URI in `<>`.
    pub(crate) fn contact_value(&self) -> String {
        let mut v = String::with_capacity(self.contact.len() + 2);
        v.push('<');
        v.push_str(&self.contact);
        v.push('>');
        v
    }
}

/// The URI of the first Contact of `req`.
fn first_contact_uri(req: &Request) -> Result<String, DialogError> {
    match req.headers().contacts()? {
        mss_sip::Contacts::List(list) => list
            .first()
            .map(|c| c.addr.uri_str.to_owned())
            .ok_or(DialogError::Missing(HeaderName::Contact)),
        mss_sip::Contacts::Star => Err(DialogError::Missing(HeaderName::Contact)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_sip::Method;

    /// The values are written piece by piece: they must read as the formatter wrote them.
    #[test]
    fn via_contact_and_sent_by_as_formatted() {
        for (via, sent_by) in [
            (
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa",
                "192.0.2.1:5060",
            ),
            ("SIP/2.0/TCP pbx.example;branch=z9hG4bKb", "pbx.example"),
            (
                "SIP/2.0/TLS [2001:db8::1]:65535;branch=z9hG4bKc",
                "[2001:db8::1]:65535",
            ),
        ] {
            let req = Request::builder(Method::Invite, "sip:b@example.com")
                .via(via)
                .contact("<sip:mss@192.0.2.1:5060;transport=tcp>")
                .build();
            let end = LocalEnd::from_request(&req).unwrap();
            assert_eq!(end.sent_by, sent_by);
            assert_eq!(
                end.via("z9hG4bKnew"),
                format!(
                    "SIP/2.0/{} {sent_by};branch=z9hG4bKnew;rport",
                    end.transport.as_str()
                )
            );
            assert_eq!(end.contact_value(), format!("<{}>", end.contact));
        }
    }
}
