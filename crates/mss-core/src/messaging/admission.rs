//! Admission of a MESSAGE (DESIGN §3 "Instant messages"): who sends it and to whom, or
//! the answer that refuses it.
//!
//! - From a local user ([`admit`]): the Request-URI must name one of our domains (a
//!   foreign one gets `404`: mss is not an open relay, DESIGN §7); the sender answers a
//!   `407` challenge (RFC 3261 §22.3, `Proxy-Authorization`) from the shared digest
//!   guard (one guard for REGISTER and MESSAGE, so a nonce count spent on either is a
//!   replay on both), and the `From` URI must be that user at one of our domains, else
//!   `403 From Does Not Match Credentials` (no spoofed sender in a stored message); the
//!   recipient is a user of the directory, with its live contacts from the location
//!   service, or [`Recipient::Unknown`] (`404`).
//! - Through an external line ([`Core::on_message`]): a MESSAGE whose source is the
//!   registrar a line registers at now (`Lines::lines_for_peer`) and whose Request-URI or
//!   `To` user is the line's number needs no credentials (the provider cannot answer our
//!   challenge); it goes to the line's `owner` as [`Sender::Line`], or gets `404` when the
//!   line has none. Any other MESSAGE from a provider is challenged like all others.

use mss_services::im::{Recipient, Sender};
use mss_services::Directory;
use mss_services::{Answer, AuthKind, LocalDomains, Now, Reject};
use mss_sip::{Flow, Request, Response, Uri};
use mss_txn::ServerTransactionId;

use super::contact_targets;
use crate::core::Core;
use crate::lines::LinePeer;
use crate::network::Network;

/// Reason phrase (and `Warning` text) when the `From` user is not the authenticated one.
const FROM_MISMATCH: &str = "From Does Not Match Credentials";

/// Why a MESSAGE was not admitted: the response to send instead (boxed: a response is
/// large and admission of a good MESSAGE is the common case).
type Refusal = Box<Response>;

/// The sender and recipient of a MESSAGE that came in through `line` (see the module
/// docs): its owner, or [`Recipient::Unknown`] for a line without one.
fn admit_from_line(
    now: Now,
    line: LinePeer<'_>,
    dir: &Directory,
    network: &dyn Network,
) -> (Sender, Recipient) {
    let sender = Sender::Line {
        name: line.name.to_owned(),
    };
    let owner = line.owner.map(str::to_owned);
    (sender, recipient(now, owner, dir, network))
}

/// Who sends `req` and to whom, or the answer that refuses it (see the module docs); the
/// sender answers the challenges of the shared digest guard (`dir`).
fn admit(
    now: Now,
    req: &Request,
    from: &Flow,
    domains: &LocalDomains,
    answer: &Answer,
    dir: &mut Directory,
    network: &dyn Network,
) -> Result<(Sender, Recipient), Refusal> {
    let target = match req.uri() {
        Ok(Uri::Sip(u)) if domains.is_local(u.host) => u.user.map(str::to_owned),
        _ => return Err(Box::new(answer.reject(req, &Reject::NotFound))),
    };
    let user = dir
        .authenticate(now, req, AuthKind::Proxy, answer, from.remote.ip())
        .map_err(Box::new)?
        .name;
    let from_ok = match req.headers().from() {
        Ok(f) => match f.uri {
            Uri::Sip(u) => u.user == Some(user.as_str()) && domains.is_local(u.host),
            _ => false,
        },
        Err(_) => false,
    };
    if !from_ok {
        tracing::debug!(%user, "MESSAGE whose From is not the authenticated user");
        return Err(Box::new(
            answer.reject(req, &Reject::Forbidden(FROM_MISMATCH)),
        ));
    }
    Ok((Sender::Local { user }, recipient(now, target, dir, network)))
}

/// `user` with their live contacts when they are a local user, else [`Recipient::Unknown`].
fn recipient(now: Now, user: Option<String>, dir: &Directory, network: &dyn Network) -> Recipient {
    match user {
        Some(u) if dir.guard.users().contains(&u) => Recipient::Local {
            contacts: contact_targets(&dir.location, network, &u, now),
            user: u,
        },
        _ => Recipient::Unknown,
    }
}

/// Whether `req` is addressed to `number`: the user part of its Request-URI or of its
/// `To` URI. A provider sends a line's incoming MESSAGE to the Contact the line
/// registered (`sip:NUMBER@our-address`) or to the line's AOR.
pub(crate) fn addressed_to(req: &Request, number: &str) -> bool {
    let user_is = |uri: &Uri<'_>| matches!(uri, Uri::Sip(u) if u.user == Some(number));
    req.uri().is_ok_and(|u| user_is(&u)) || req.headers().to().is_ok_and(|t| user_is(&t.uri))
}

impl Core {
    /// A MESSAGE received on `from` that passed the prechecks (RFC 3428 §7): admitted
    /// and handed to the service, or refused at once.
    pub(crate) fn on_message(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        from: &Flow,
    ) {
        let line = self
            .lines
            .lines_for_peer(from)
            .find(|line| addressed_to(req, line.number));
        let admitted = match line {
            Some(line) => {
                tracing::debug!(line = %line.name, "MESSAGE through a line");
                Ok(admit_from_line(now, line, &self.directory, &*self.network))
            }
            None => admit(
                now,
                req,
                from,
                &self.domains,
                &self.answer,
                &mut self.directory,
                &*self.network,
            ),
        };
        match admitted {
            Ok((sender, recipient)) => {
                self.im
                    .service
                    .handle_message(now, id, req, sender, recipient);
                self.drain_im(now);
            }
            Err(rsp) => self.respond_final(now, id, *rsp),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mss_services::registrar::RegisterOutcome;
    use mss_sip::HeaderName;

    use super::*;
    use crate::testing::{digest_answer, domains, registrar, request, Reg};

    fn now() -> Now {
        Now::new(Instant::now(), 1_800_000_000_000)
    }

    fn message(ruri: &str, from: &str, extra: &str) -> Request {
        request(format!(
            "MESSAGE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1;rport\r\nMax-Forwards: 70\r\nFrom: <{from}>;tag=a\r\nTo: <{ruri}>\r\nCall-ID: im-1\r\nCSeq: 1 MESSAGE\r\n{extra}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        ))
    }

    fn admit(reg: &mut Reg, req: &Request) -> Result<(Sender, Recipient), Refusal> {
        let network = crate::FixedAddress("127.0.0.1:5060".parse().unwrap());
        super::admit(
            now(),
            req,
            &Flow::udp("127.0.0.1:5999".parse().unwrap()),
            &domains(),
            &Answer::new("pbx.test"),
            &mut reg.dir,
            &network,
        )
    }

    /// The Proxy-Authorization header line answering `challenge` for `req`.
    fn credentials(challenge: &Response, req: &Request, user: &str, password: &str) -> String {
        let value = digest_answer(
            challenge,
            &HeaderName::ProxyAuthenticate,
            "MESSAGE",
            req.uri_str().unwrap(),
            user,
            password,
            1,
        );
        format!("Proxy-Authorization: {value}\r\n")
    }

    #[test]
    fn foreign_domain_is_not_found_before_any_challenge() {
        let mut reg = registrar();
        let req = message("sip:kumiko@example.org", "sip:100@pbx.test", "");
        let rsp = admit(&mut reg, &req).unwrap_err();
        assert_eq!(rsp.status().as_u16(), 404);
        let tel = message("tel:+15551234", "sip:100@pbx.test", "");
        assert_eq!(admit(&mut reg, &tel).unwrap_err().status().as_u16(), 404);
    }

    #[test]
    fn sender_is_challenged_then_admitted_with_the_port_less_target() {
        let mut reg = registrar();
        let first = message("sip:101@127.0.0.1", "sip:100@pbx.test", "");
        let challenge = admit(&mut reg, &first).unwrap_err();
        assert_eq!(challenge.status().as_u16(), 407);
        let auth = credentials(&challenge, &first, "100", "pw-100");
        let second = message("sip:101@127.0.0.1", "sip:100@pbx.test", &auth);
        let (sender, recipient) = admit(&mut reg, &second).unwrap();
        assert_eq!(sender, Sender::Local { user: "100".into() });
        assert_eq!(
            recipient,
            Recipient::Local {
                user: "101".into(),
                contacts: Vec::new()
            }
        );
    }

    /// One guard for both methods: a nonce count spent on a MESSAGE is a replay on a
    /// REGISTER (a new challenge, `stale=true`), the next count is accepted.
    #[test]
    fn message_and_register_share_nonce_counts() {
        let mut reg = registrar();
        let first = message("sip:101@pbx.test", "sip:100@pbx.test", "");
        let challenge = admit(&mut reg, &first).unwrap_err();
        let auth = credentials(&challenge, &first, "100", "pw-100");
        let second = message("sip:101@pbx.test", "sip:100@pbx.test", &auth);
        assert!(admit(&mut reg, &second).is_ok());

        let register = |nc: u32| {
            let value = digest_answer(
                &challenge,
                &HeaderName::ProxyAuthenticate,
                "REGISTER",
                "sip:pbx.test",
                "100",
                "pw-100",
                nc,
            );
            request(format!(
                "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-r{nc};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=r\r\nTo: <sip:100@pbx.test>\r\nCall-ID: reg-1\r\nCSeq: {nc} REGISTER\r\nContact: <sip:100@127.0.0.1:5999>\r\nAuthorization: {value}\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        let flow = Flow::udp("127.0.0.1:5999".parse().unwrap());
        let first = register(1);
        match reg.registrar.handle_register(
            &mut reg.dir,
            now(),
            &first,
            &first.check().unwrap(),
            &flow,
        ) {
            RegisterOutcome::Reply(r) => {
                assert_eq!(r.status().as_u16(), 401);
                let www = r.headers().get(&HeaderName::WwwAuthenticate).unwrap();
                assert!(String::from_utf8_lossy(www).contains("stale=true"));
            }
            RegisterOutcome::Commit(_) => panic!("a replayed nonce count registered"),
        }
        assert!(matches!(
            reg.registrar.handle_register(
                &mut reg.dir,
                now(),
                &register(2),
                &register(2).check().unwrap(),
                &flow
            ),
            RegisterOutcome::Commit(_)
        ));
    }

    /// A MESSAGE through line `p1` goes to its owner unchallenged; through the ownerless
    /// `p2` to no one (`404`).
    #[test]
    fn a_message_through_a_line_goes_to_its_owner() {
        let reg = registrar();
        let network = crate::FixedAddress("127.0.0.1:5060".parse().unwrap());
        let line = |name, owner| LinePeer {
            name,
            number: "2001",
            owner,
        };
        let (sender, recipient) =
            admit_from_line(now(), line("p1", Some("101")), &reg.dir, &network);
        assert_eq!(sender, Sender::Line { name: "p1".into() });
        assert_eq!(
            recipient,
            Recipient::Local {
                user: "101".into(),
                contacts: Vec::new()
            }
        );
        let (sender, recipient) = admit_from_line(now(), line("p2", None), &reg.dir, &network);
        assert_eq!(sender, Sender::Line { name: "p2".into() });
        assert_eq!(recipient, Recipient::Unknown);
    }

    #[test]
    fn a_line_message_is_addressed_by_request_uri_or_to_user() {
        let by_ruri = message("sip:2001@127.0.0.1:5060", "sip:+4930@provider.test", "");
        assert!(addressed_to(&by_ruri, "2001"));
        let by_to = request("MESSAGE sip:mss@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-2\r\nFrom: <sip:+4930@provider.test>;tag=a\r\nTo: <sip:2001@provider.test>\r\nCall-ID: im-2\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n".into());
        assert!(addressed_to(&by_to, "2001"));
        assert!(!addressed_to(&by_to, "2002"));
        assert!(!addressed_to(&by_ruri, "200"));
    }

    #[test]
    fn wrong_password_is_challenged_again() {
        let mut reg = registrar();
        let first = message("sip:101@pbx.test", "sip:100@pbx.test", "");
        let challenge = admit(&mut reg, &first).unwrap_err();
        let auth = credentials(&challenge, &first, "100", "wrong");
        let second = message("sip:101@pbx.test", "sip:100@pbx.test", &auth);
        assert_eq!(admit(&mut reg, &second).unwrap_err().status().as_u16(), 407);
    }

    #[test]
    fn a_from_other_than_the_credentials_is_forbidden() {
        let mut reg = registrar();
        for from in ["sip:101@pbx.test", "sip:100@example.com"] {
            let first = message("sip:101@pbx.test", from, "");
            let challenge = admit(&mut reg, &first).unwrap_err();
            let auth = credentials(&challenge, &first, "100", "pw-100");
            let spoofed = message("sip:101@pbx.test", from, &auth);
            let rsp = admit(&mut reg, &spoofed).unwrap_err();
            assert_eq!(rsp.status().as_u16(), 403, "{from}");
            assert_eq!(rsp.reason(), FROM_MISMATCH.as_bytes());
        }
    }

    #[test]
    fn unknown_target_user_is_unknown() {
        let mut reg = registrar();
        for ruri in ["sip:999@pbx.test", "sip:pbx.test"] {
            let first = message(ruri, "sip:100@pbx.test", "");
            let challenge = admit(&mut reg, &first).unwrap_err();
            let auth = credentials(&challenge, &first, "100", "pw-100");
            let req = message(ruri, "sip:100@pbx.test", &auth);
            assert_eq!(
                admit(&mut reg, &req).unwrap().1,
                Recipient::Unknown,
                "{ruri}"
            );
        }
    }
}
