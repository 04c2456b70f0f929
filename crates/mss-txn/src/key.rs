//! Transaction keys: how a message finds its transaction (RFC 3261 §17.1.3, §17.2.3, §9.2).
//!
//! A key is the role (client or server), the method class and one owned byte string that
//! holds the variable parts, length-prefixed so that no two different part lists encode the
//! same way, and stored inline up to 62 bytes (`key_bytes.rs`):
//! - RFC 3261 (branch starts with `z9hG4bK`): branch + sent-by (host lower-cased, port)
//!   (§17.2.3 rules 1 and 2).
//! - RFC 2543 fallback (no cookie): Request-URI, From tag, Call-ID, CSeq number, the whole
//!   top Via, and for methods other than INVITE/ACK/CANCEL the To tag (§17.2.3).
//! - Client side: branch only (§17.1.3), plus the CSeq method.
//!
//! The method is part of the key except that ACK counts as INVITE (§17.2.3 rule 3), so an
//! ACK finds its INVITE server transaction; CANCEL has its own transactions, and
//! [`TransactionKey::cancel_target`] gives the key of the INVITE a CANCEL names (§9.2).
//!
//! Keys are exact (no lossy hash), so two peers cannot collide on purpose; the table files
//! them in an index with a randomly seeded hasher (aHash, `key_index.rs`), so peer-chosen
//! keys cannot aim collisions.
//!
//! RFC 2543 simplification: the To tag is left out for INVITE, ACK and CANCEL (the ACK's
//! To tag is the one of our response, not of the INVITE). The table checks the ACK's To tag
//! against the response it sent instead (§17.2.3, RFC 6026 §6).

use mss_sip::{Method, ParseError, Request, RequestCore, Response};

use crate::base::{trim, Base, TopVia};
use crate::error::TxnError;
use crate::key_bytes::{KeyBytes, PartsWriter};

/// Which side of a transaction a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A client transaction (we sent the request).
    Client,
    /// A server transaction (we received the request).
    Server,
}

/// The identity of a transaction, as far as matching is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    role: Role,
    /// The method, with ACK folded into INVITE; extension methods own their token.
    method: Method,
    /// Whether `parts` follow RFC 3261 (branch-based) or the RFC 2543 fallback.
    rfc3261: bool,
    /// The variable parts, length-prefixed.
    parts: KeyBytes,
}

impl TransactionKey {
    /// The key of the server transaction a received request belongs to (§17.2.3).
    ///
    /// With an RFC 3261 branch only the top Via and the method are read (this is the hot
    /// path of every retransmission); the RFC 2543 fallback also reads Call-ID, CSeq and
    /// the From/To tags.
    ///
    /// # Errors
    /// [`TxnError::Header`] when a header the key needs is missing or malformed.
    pub fn for_request(req: &Request) -> Result<TransactionKey, TxnError> {
        let via = TopVia::read(req.headers())?;
        let method = key_method(req.method());
        if via.is_rfc3261() {
            return Ok(TransactionKey {
                role: Role::Server,
                method,
                rfc3261: true,
                parts: branch_parts(&via, true),
            });
        }
        let base = Base::read(req.headers())?;
        Ok(Self::rfc2543(req, &base, method))
    }

    /// [`TransactionKey::for_request`] for a request that passed [`Request::check`]: an
    /// RFC 3261 key is built from the top Via the check already parsed (no header is
    /// read again); the RFC 2543 fallback reads what it needs as `for_request` does.
    ///
    /// # Errors
    /// As [`TransactionKey::for_request`] (only on the fallback path).
    pub fn for_checked(
        req: &Request,
        checked: &RequestCore<'_>,
    ) -> Result<TransactionKey, TxnError> {
        let via = &checked.core.top_via;
        match via.branch().filter(|b| !b.is_empty()) {
            Some(branch) if branch.starts_with(crate::base::MAGIC_COOKIE) => Ok(TransactionKey {
                role: Role::Server,
                method: key_method(req.method()),
                rfc3261: true,
                parts: parts_of(branch, Some((via.host, via.port))),
            }),
            _ => Self::for_request(req),
        }
    }

    /// The RFC 2543 fallback (§17.2.3): Request-URI, From tag, Call-ID, CSeq number, top
    /// Via, and the To tag except for INVITE/ACK/CANCEL.
    fn rfc2543(req: &Request, base: &Base<'_>, method: Method) -> TransactionKey {
        let cseq = base.cseq.to_le_bytes();
        let to_tag = match method {
            Method::Invite | Method::Cancel => None,
            _ => Some(base.to_tag.unwrap_or("").as_bytes()),
        };
        let fields: [&[u8]; 5] = [
            trim(req.uri_bytes()),
            base.from_tag.unwrap_or("").as_bytes(),
            base.call_id.as_bytes(),
            &cseq,
            base.via.raw,
        ];
        let len = fields
            .iter()
            .chain(to_tag.as_ref())
            .map(|f| PartsWriter::size(f.len()))
            .sum();
        let parts = KeyBytes::build(len, |w| {
            for f in fields.iter().chain(to_tag.as_ref()) {
                w.push(f);
            }
        });
        TransactionKey {
            role: Role::Server,
            method,
            rfc3261: false,
            parts,
        }
    }

    /// The key of the client transaction a request sent by the TU creates (§17.1.3).
    ///
    /// # Errors
    /// [`TxnError::MissingBranch`] when the top Via has no branch, or a Via parse error.
    pub fn for_outgoing(req: &Request) -> Result<TransactionKey, TxnError> {
        Self::for_outgoing_via(req, &TopVia::read(req.headers())?)
    }

    /// [`TransactionKey::for_outgoing`] with the request's top Via already read.
    pub(crate) fn for_outgoing_via(
        req: &Request,
        via: &TopVia<'_>,
    ) -> Result<TransactionKey, TxnError> {
        if via.branch().is_none() {
            return Err(TxnError::MissingBranch);
        }
        Ok(TransactionKey {
            role: Role::Client,
            method: key_method(req.method()),
            rfc3261: via.is_rfc3261(),
            parts: branch_parts(via, false),
        })
    }

    /// The key of the client transaction a received response belongs to (§17.1.3: top Via
    /// branch and CSeq method). `None` when the response has no usable Via, branch or CSeq:
    /// it cannot match any transaction.
    pub fn for_response(rsp: &Response) -> Option<TransactionKey> {
        Self::client(rsp).ok().flatten()
    }

    /// [`TransactionKey::for_response`], telling a malformed Via or CSeq (`Err`) from a
    /// response without branch (`Ok(None)`).
    pub(crate) fn client(rsp: &Response) -> Result<Option<TransactionKey>, ParseError> {
        let via = TopVia::read(rsp.headers())?;
        let cseq = rsp.headers().cseq()?;
        if via.branch().is_none() {
            return Ok(None);
        }
        Ok(Some(TransactionKey {
            role: Role::Client,
            method: key_method(&cseq.method),
            rfc3261: via.is_rfc3261(),
            parts: branch_parts(&via, false),
        }))
    }

    /// For the key of a CANCEL server transaction, the key of the INVITE server transaction
    /// it cancels (§9.2: match as if the method were not CANCEL; only INVITE can be
    /// cancelled in mss, other methods answer at once). `None` for other keys.
    pub fn cancel_target(&self) -> Option<TransactionKey> {
        (self.role == Role::Server && self.method == Method::Cancel).then(|| TransactionKey {
            method: Method::Invite,
            ..self.clone()
        })
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The method of the transaction (INVITE for ACK).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Whether the key comes from an RFC 3261 branch (magic cookie) rather than the RFC 2543
    /// fallback.
    pub fn is_rfc3261(&self) -> bool {
        self.rfc3261
    }

    /// The bytes the key owns on the heap: its parts when too long to be inline, an
    /// extension method's token.
    pub(crate) fn heap_len(&self) -> usize {
        let method = match &self.method {
            Method::Other(token) => token.len(),
            _ => 0,
        };
        method + self.parts.heap_len()
    }
}

/// ACK matches INVITE (§17.2.3 rule 3); extension tokens are copied so that a key never
/// keeps a received buffer alive.
fn key_method(m: &Method) -> Method {
    match m {
        Method::Ack => Method::Invite,
        Method::Other(b) => Method::Other(bytes::Bytes::copy_from_slice(b)),
        other => other.clone(),
    }
}

/// Branch and, for server keys, the sent-by (§17.2.3 rule 2): host lower-cased (host names
/// compare ignoring case, §19.1.4) and the port as given.
fn branch_parts(via: &TopVia<'_>, with_sent_by: bool) -> KeyBytes {
    let branch = via.branch().unwrap_or("");
    parts_of(branch, with_sent_by.then_some((via.host, via.port)))
}

/// The parts of a branch key: the branch, then the sent-by host (lower-cased) and port,
/// empty for client keys (`sent_by` `None`).
fn parts_of(branch: &str, sent_by: Option<(&str, Option<u16>)>) -> KeyBytes {
    let branch = branch.as_bytes();
    let (host, port) = match sent_by {
        Some((host, port)) => (host.as_bytes(), port),
        None => (&[][..], None),
    };
    let port = port.map_or([0; 3], |p| {
        let [a, b] = p.to_le_bytes();
        [1, a, b]
    });
    let len = PartsWriter::size(branch.len()) + PartsWriter::size(host.len()) + 7;
    KeyBytes::build(len, |w| {
        w.push(branch);
        w.push(host).make_ascii_lowercase();
        w.push(&port);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mss_sip::{parse_datagram, Message};

    fn req(text: &str) -> Request {
        let wire = text.replace('\n', "\r\n");
        match parse_datagram(Bytes::from(wire)).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    fn rsp(text: &str) -> Response {
        let wire = text.replace('\n', "\r\n");
        match parse_datagram(Bytes::from(wire)).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => panic!("not a response"),
        }
    }

    fn request(method: &str, via: &str, cseq: &str, to: &str) -> Request {
        req(&format!(
            "{method} sip:bob@biloxi.example SIP/2.0\n\
             Via: {via}\n\
             To: {to}\n\
             From: <sip:alice@atlanta.example>;tag=f1\n\
             Call-ID: c1@atlanta.example\n\
             CSeq: {cseq}\n\
             Content-Length: 0\n\n"
        ))
    }

    const VIA: &str = "SIP/2.0/UDP pc33.atlanta.example:5060;branch=z9hG4bK776";
    const TO: &str = "<sip:bob@biloxi.example>";

    #[test]
    fn ack_matches_invite_and_cancel_gets_its_own_key() {
        let invite = TransactionKey::for_request(&request("INVITE", VIA, "1 INVITE", TO)).unwrap();
        let ack = TransactionKey::for_request(&request("ACK", VIA, "1 ACK", TO)).unwrap();
        let cancel = TransactionKey::for_request(&request("CANCEL", VIA, "1 CANCEL", TO)).unwrap();
        assert_eq!(invite, ack, "§17.2.3 rule 3");
        assert_ne!(invite, cancel);
        assert_eq!(cancel.cancel_target(), Some(invite.clone()), "§9.2");
        assert_eq!(invite.cancel_target(), None);
        assert!(invite.is_rfc3261());
        assert_eq!(invite.role(), Role::Server);
        assert_eq!(invite.method(), &Method::Invite);
    }

    #[test]
    fn rfc3261_keys_use_branch_sent_by_and_method() {
        let a = TransactionKey::for_request(&request("OPTIONS", VIA, "1 OPTIONS", TO)).unwrap();
        // Other To tag, CSeq or Request-URI: still the same transaction (branch decides).
        let b = TransactionKey::for_request(&request(
            "OPTIONS",
            "SIP/2.0/UDP PC33.Atlanta.Example:5060;branch=z9hG4bK776;received=192.0.2.1",
            "2 OPTIONS",
            "<sip:bob@biloxi.example>;tag=t",
        ))
        .unwrap();
        assert_eq!(a, b, "host case and other params do not matter");
        for (via, method) in [
            (
                "SIP/2.0/UDP pc33.atlanta.example:5061;branch=z9hG4bK776",
                "OPTIONS",
            ),
            (
                "SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bK776",
                "OPTIONS",
            ),
            (
                "SIP/2.0/UDP pc33.atlanta.example:5060;branch=z9hG4bK777",
                "OPTIONS",
            ),
            (VIA, "MESSAGE"),
        ] {
            let k = TransactionKey::for_request(&request(method, via, &format!("1 {method}"), TO));
            assert_ne!(a, k.unwrap(), "{via} {method}");
        }
        let ext = TransactionKey::for_request(&request("FOO", VIA, "1 FOO", TO)).unwrap();
        let ext2 = TransactionKey::for_request(&request("BAR", VIA, "1 BAR", TO)).unwrap();
        assert_ne!(ext, ext2);
    }

    #[test]
    fn rfc2543_fallback_uses_the_dialog_fields() {
        let via = "SIP/2.0/UDP old.example:5060";
        let inv = TransactionKey::for_request(&request("INVITE", via, "7 INVITE", TO)).unwrap();
        assert!(!inv.is_rfc3261());
        let again = TransactionKey::for_request(&request("INVITE", via, "7 INVITE", TO)).unwrap();
        assert_eq!(inv, again);
        let ack = TransactionKey::for_request(&request(
            "ACK",
            via,
            "7 ACK",
            "<sip:bob@biloxi.example>;tag=ours",
        ))
        .unwrap();
        assert_eq!(
            inv, ack,
            "ACK: CSeq number, not method; To tag checked by the table"
        );
        let cancel = TransactionKey::for_request(&request("CANCEL", via, "7 CANCEL", TO)).unwrap();
        assert_eq!(cancel.cancel_target(), Some(inv.clone()));
        let cseq8 = TransactionKey::for_request(&request("INVITE", via, "8 INVITE", TO)).unwrap();
        assert_ne!(inv, cseq8);
        // A cookie-less branch is not enough on its own: the other fields count too.
        let b1 = "SIP/2.0/UDP old.example:5060;branch=1";
        let o1 = TransactionKey::for_request(&request("OPTIONS", b1, "1 OPTIONS", TO)).unwrap();
        let tagged = "<sip:bob@biloxi.example>;tag=x";
        let o2 = TransactionKey::for_request(&request("OPTIONS", b1, "1 OPTIONS", tagged));
        assert_ne!(o1, o2.unwrap(), "non-INVITE: To tag is part of the key");
    }

    #[test]
    fn client_keys_match_responses_by_branch_and_cseq_method() {
        let out = TransactionKey::for_outgoing(&request("INVITE", VIA, "1 INVITE", TO)).unwrap();
        assert_eq!(out.role(), Role::Client);
        let r = |cseq: &str| {
            rsp(&format!(
                "SIP/2.0 180 Ringing\n\
                 Via: SIP/2.0/UDP elsewhere.example;branch=z9hG4bK776\n\
                 To: <sip:bob@biloxi.example>;tag=t\n\
                 From: <sip:alice@atlanta.example>;tag=f1\n\
                 Call-ID: c1@atlanta.example\n\
                 CSeq: {cseq}\n\
                 Content-Length: 0\n\n"
            ))
        };
        assert_eq!(
            TransactionKey::for_response(&r("1 INVITE")),
            Some(out.clone())
        );
        assert_ne!(TransactionKey::for_response(&r("1 CANCEL")), Some(out));
        let nobranch = request("OPTIONS", "SIP/2.0/UDP a.example", "1 OPTIONS", TO);
        assert_eq!(
            TransactionKey::for_outgoing(&nobranch),
            Err(TxnError::MissingBranch)
        );
    }
}
