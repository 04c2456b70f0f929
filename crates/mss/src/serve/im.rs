//! The messaging glue: a MESSAGE request in, the sans-IO [`Messaging`] service driven, its
//! outputs carried out (DESIGN §3 "Instant messages", §5), the way the service's run loop
//! says (`mss_services::im`).
//!
//! - Admission (`admit`): the Request-URI must name one of our domains (a foreign one
//!   gets `404`: mss is not an open relay, DESIGN §7); the sender is a local user who
//!   answers a `407` challenge (RFC 3261 §22.3, `Proxy-Authorization`) from the
//!   registrar's digest guard (one guard for REGISTER and MESSAGE, so a nonce count spent
//!   on either is a replay on both), and the `From` URI
//!   must be that user at one of our domains, else `403 From Does Not Match Credentials`
//!   (no spoofed sender in a stored message); the recipient is a user of the directory,
//!   with its live contacts from the location service, or [`Recipient::Unknown`] (`404`).
//! - A MESSAGE through an external line ([`Worker::on_message`]): one whose source is the
//!   registrar a line registers at now (`Lines::lines_for_peer`) and whose Request-URI or
//!   `To` user is the line's number needs no credentials (the provider cannot answer our
//!   challenge); it goes to the line's `owner` as [`Sender::Line`], or gets `404` when the
//!   line has none. Any other MESSAGE from a provider is challenged like all others.
//! - [`ImOutput::Reply`] → the server transaction's answer; [`ImOutput::Send`] → a client
//!   transaction owned by [`ClientOwner::Im`] (our Via's sent-by is set to the address the
//!   transports send from to that peer, RFC 3261 §18.1.1); its final response, its `408`
//!   on timeout, or a `503` made here on a transport error go back to the service;
//!   [`ImOutput::Store`], `Load`, `Delete`, `Expire` → the store call, spawned, its result
//!   back as [`Completion::Im`].
//! - After every committed REGISTER that leaves a user with live contacts, the registrar's
//!   glue calls [`Worker::im_user_registered`]: stored messages go out.
//! - The service's counters go to `/metrics` (`mss_messages_total{outcome=…}`) after every
//!   change, as differences from what was published before.

use std::collections::HashMap;
use std::time::Instant;

use mss_admin::{MessageOutcome, Metrics};
use mss_services::im::{
    ImOutput, ImSettings, ImStats, Messaging, RateLimit, Recipient, RequestToken, Sender,
    StoreToken,
};
use mss_services::registrar::Registrar;
use mss_services::{Answer, AuthKind, LocalDomains, Now, Reject};
use mss_sip::{Flow, HeaderName, Request, Response, StatusCode, Uri};
use mss_store::{InsertOutcome, StoreError, StoredMessage};
use mss_txn::{ClientTransactionId, ServerTransactionId};

use super::lines::LinePeer;
use super::setup;
use super::worker::{ClientOwner, Completion, Worker};
use crate::config::Config;

/// Reason phrase (and `Warning` text) when the `From` user is not the authenticated one.
const FROM_MISMATCH: &str = "From Does Not Match Credentials";

/// The result of a store call started for the messaging service, delivered as
/// [`Completion::Im`].
#[derive(Debug)]
pub(crate) enum ImCompletion {
    /// `Store::insert_message_if_below` finished.
    Stored {
        /// The service's name for the write.
        token: StoreToken,
        /// Stored (with its id) or refused as full, or the store error.
        result: Result<InsertOutcome, StoreError>,
    },
    /// `Store::list_messages` finished.
    Loaded {
        /// The recipient.
        user: String,
        /// The unexpired stored messages.
        result: Result<Vec<StoredMessage>, StoreError>,
    },
    /// `Store::delete_message` finished.
    Deleted {
        /// The message.
        id: i64,
        /// Whether it existed.
        result: Result<bool, StoreError>,
    },
    /// `Store::delete_expired_messages` finished: how many went.
    Expired(Result<u64, StoreError>),
}

/// The messaging part of the worker: the service, the owners of the lines, and the
/// counters already published.
#[derive(Debug)]
pub(crate) struct Im {
    service: Messaging<ServerTransactionId>,
    /// Line name → its `owner`, for the lines that have one.
    line_owners: HashMap<String, String>,
    published: ImStats,
}

/// The service's settings from `[server]` and `[im]`; `via_host` is the Via sent-by used
/// when the transports cannot name one for a peer.
pub(crate) fn settings(config: &Config, via_host: &str) -> ImSettings {
    let im = &config.im;
    let mut s = ImSettings::new(&config.server.domain);
    s.via_host = via_host.to_owned();
    s.offline_max_messages = im.offline_max_messages;
    s.offline_max_chars = im.offline_max_chars;
    s.offline_ttl = im.offline_ttl;
    s.rate_limit = RateLimit::per_minute(im.rate_limit_per_minute);
    s
}

/// Why a MESSAGE was not admitted: the response to send instead (boxed: a response is
/// large and admission of a good MESSAGE is the common case).
type Refusal = Box<Response>;

impl Im {
    /// The service for `config`, started at `now`; `seed` seeds its randomness.
    pub(crate) fn new(config: &Config, via_host: &str, now: Now, seed: u64) -> Im {
        let line_owners = config
            .lines
            .iter()
            .filter_map(|l| Some((l.name.clone(), l.owner.clone()?)))
            .collect();
        Im {
            service: Messaging::new(now, settings(config, via_host), seed),
            line_owners,
            published: ImStats::default(),
        }
    }

    /// The sender and recipient of a MESSAGE that came in through `line` (see the module
    /// docs): its owner, or [`Recipient::Unknown`] for a line without one.
    fn admit_from_line(
        &self,
        now: Now,
        line: LinePeer<'_>,
        registrar: &Registrar,
    ) -> (Sender, Recipient) {
        let owner = self.line_owners.get(line.name).cloned();
        let sender = Sender::Line {
            name: line.name.to_owned(),
        };
        (sender, recipient(now, owner, registrar))
    }

    /// Adds what the service counted since the last call to `metrics`.
    fn publish(&mut self, metrics: &Metrics) {
        let now = *self.service.stats();
        publish_delta(metrics, &self.published, &now);
        self.published = now;
    }
}

/// Who sends `req` and to whom, or the answer that refuses it (see the module docs); the
/// sender answers the challenges of `registrar`'s digest guard.
fn admit(
    now: Now,
    req: &Request,
    domains: &LocalDomains,
    answer: &Answer,
    registrar: &mut Registrar,
) -> Result<(Sender, Recipient), Refusal> {
    let target = match req.uri() {
        Ok(Uri::Sip(u)) if domains.is_local(u.host) => u.user.map(str::to_owned),
        _ => return Err(Box::new(answer.reject(req, &Reject::NotFound))),
    };
    let user = registrar
        .guard_mut()
        .check(now, req, AuthKind::Proxy, answer)
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
    Ok((Sender::Local { user }, recipient(now, target, registrar)))
}

/// `user` with their live contacts when they are a local user, else [`Recipient::Unknown`].
fn recipient(now: Now, user: Option<String>, registrar: &Registrar) -> Recipient {
    match user {
        Some(u) if registrar.guard().users().contains(&u) => Recipient::Local {
            contacts: registrar
                .location()
                .contacts(&u, now.mono)
                .into_iter()
                .map(Into::into)
                .collect(),
            user: u,
        },
        _ => Recipient::Unknown,
    }
}

/// Whether `req` is addressed to `number`: the user part of its Request-URI or of its
/// `To` URI. A provider sends a line's incoming MESSAGE to the Contact the line
/// registered (`sip:NUMBER@our-address`) or to the line's AOR.
fn addressed_to(req: &Request, number: &str) -> bool {
    let user_is = |uri: &Uri<'_>| matches!(uri, Uri::Sip(u) if u.user == Some(number));
    req.uri().is_ok_and(|u| user_is(&u)) || req.headers().to().is_ok_and(|t| user_is(&t.uri))
}

/// Adds to `metrics` the outcomes counted between `before` and `now`.
fn publish_delta(metrics: &Metrics, before: &ImStats, now: &ImStats) {
    let delivered = |s: &ImStats| s.relayed + s.delivered + s.delivered_late;
    for (outcome, n) in [
        (
            MessageOutcome::Stored,
            now.stored.saturating_sub(before.stored),
        ),
        (
            MessageOutcome::Delivered,
            delivered(now).saturating_sub(delivered(before)),
        ),
        (
            MessageOutcome::Expired,
            now.expired.saturating_sub(before.expired),
        ),
        (
            MessageOutcome::Refused,
            now.refused.total().saturating_sub(before.refused.total()),
        ),
    ] {
        metrics.message_n(outcome, n);
    }
}

/// `via` (a Via value such as `SIP/2.0/UDP host;branch=…;rport`) with its sent-by replaced
/// by `sent_by`, or `None` when it has no sent-by to replace.
fn with_sent_by(via: &[u8], sent_by: &str) -> Option<String> {
    let via = std::str::from_utf8(via).ok()?;
    let (protocol, rest) = via.trim_start().split_once(' ')?;
    let params = rest.split_once(';').map_or("", |(_, p)| p);
    Some(if params.is_empty() {
        format!("{protocol} {sent_by}")
    } else {
        format!("{protocol} {sent_by};{params}")
    })
}

impl Worker {
    /// A MESSAGE received on `from` that passed the prechecks (RFC 3428 §7): admitted
    /// and handed to the service, or refused at once.
    pub(super) fn on_message(
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
                Ok(self.im.admit_from_line(now, line, &self.registrar))
            }
            None => admit(now, req, &self.domains, &self.answer, &mut self.registrar),
        };
        match admitted {
            Ok((sender, recipient)) => {
                self.im
                    .service
                    .handle_message(now, id, req, sender, recipient);
                self.drain_im(now);
            }
            Err(rsp) => self.respond(now, id, *rsp),
        }
    }

    /// `user`'s REGISTER was committed: if it has live contacts, stored messages go out
    /// (the service starts a delivery round unless one runs or nothing is stored).
    pub(super) fn im_user_registered(&mut self, now: Now, user: &str) {
        let contacts: Vec<_> = self
            .registrar
            .location()
            .contacts(user, now.mono)
            .into_iter()
            .map(Into::into)
            .collect();
        if contacts.is_empty() {
            return;
        }
        self.im.service.handle_user_reachable(now, user, contacts);
        self.drain_im(now);
    }

    /// A response, a timeout (`408`) or a transport error (`None`, a `503` here, RFC 3261
    /// §8.1.3.1) of a request the service sent.
    pub(super) fn on_im_client_event(
        &mut self,
        id: ClientTransactionId,
        token: RequestToken,
        response: Option<Response>,
    ) {
        let now = setup::now();
        let rsp = response.unwrap_or_else(|| {
            Response::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        });
        if rsp.status().is_final() {
            // The transaction absorbs retransmissions itself; nothing more is routed to it.
            self.clients.remove(&id);
        }
        self.im.service.handle_response(now, token, &rsp);
        self.drain_im(now);
    }

    /// A store call of the service finished.
    pub(super) fn on_im_completion(&mut self, now: Now, c: ImCompletion) {
        let s = &mut self.im.service;
        match c {
            ImCompletion::Stored { token, result } => {
                s.handle_stored(now, token, result.map_err(|e| e.to_string()));
            }
            ImCompletion::Loaded { user, result } => {
                s.handle_loaded(now, &user, result.map_err(|e| e.to_string()));
            }
            ImCompletion::Deleted { id, result } => {
                s.handle_deleted(now, id, result.map_err(|e| e.to_string()));
            }
            ImCompletion::Expired(result) => {
                s.handle_expired(now, result.map_err(|e| e.to_string()));
            }
        }
        self.drain_im(now);
    }

    /// When the service wants [`Worker::im_on_timeout`] next.
    pub(super) fn im_timeout(&self) -> Option<Instant> {
        self.im.service.poll_timeout()
    }

    /// Fires the service's due timers.
    pub(super) fn im_on_timeout(&mut self, now: Now) {
        if self.im_timeout().is_some_and(|t| t <= now.mono) {
            self.im.service.handle_timeout(now);
            self.drain_im(now);
        }
    }

    /// Carries out everything the service asked for, then publishes its counters.
    fn drain_im(&mut self, now: Now) {
        while let Some(out) = self.im.service.poll_output() {
            match out {
                ImOutput::Reply { server, response } => self.respond(now, server, response),
                ImOutput::Send {
                    token,
                    request,
                    flow,
                } => self.im_send(now, token, request, flow),
                ImOutput::Store {
                    token,
                    message,
                    limit,
                } => {
                    let op = self.store.insert_message_if_below(message, limit);
                    self.spawn_store(op, move |result| {
                        Completion::Im(ImCompletion::Stored { token, result })
                    });
                }
                ImOutput::Load { user, now: at } => {
                    let op = self.store.list_messages(&user, at);
                    self.spawn_store(op, move |result| {
                        Completion::Im(ImCompletion::Loaded { user, result })
                    });
                }
                ImOutput::Delete { id } => {
                    let op = self.store.delete_message(id);
                    self.spawn_store(op, move |result| {
                        Completion::Im(ImCompletion::Deleted { id, result })
                    });
                }
                ImOutput::Expire { now: at } => {
                    let op = self.store.delete_expired_messages(at);
                    self.spawn_store(op, |result| Completion::Im(ImCompletion::Expired(result)));
                }
            }
        }
        self.im.publish(&self.metrics);
    }

    /// Starts the client transaction of a request the service sends over `flow`; a request
    /// the transaction layer refuses counts as a transport error (`503`).
    fn im_send(&mut self, now: Now, token: RequestToken, mut request: Request, flow: Flow) {
        if let Ok(addr) = self.transports.sent_by(flow.transport, flow.remote) {
            let via = request
                .headers()
                .get(&HeaderName::Via)
                .and_then(|v| with_sent_by(v, &addr.to_string()));
            if let Some(via) = via {
                request.headers_mut().set_first(&HeaderName::Via, via);
            }
        }
        match self.txns.send_request(now.mono, request, flow) {
            Ok(id) => {
                self.clients.insert(id, ClientOwner::Im(token));
            }
            Err(e) => {
                tracing::debug!(peer = %flow, error = %e, "MESSAGE not sent");
                let rsp = Response::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
                // Its outputs are drained by the caller's loop.
                self.im.service.handle_response(now, token, &rsp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use mss_sip::{parse_datagram, Message};

    use mss_auth::NonceSecret;
    use mss_services::registrar::RegisterOutcome;

    use super::*;
    use crate::config::UserConfig;

    fn config() -> Config {
        let mut c = Config::embedded("pbx.test".into());
        for (name, password) in [("100", "pw-100"), ("101", "pw-101")] {
            c.users.push(UserConfig {
                name: name.into(),
                password: password.into(),
                display_name: None,
            });
        }
        c.server.digest_algorithms = vec![mss_auth::Algorithm::Md5];
        c.im.offline_max_messages = 3;
        c.im.offline_max_chars = 20;
        c.im.offline_ttl = Duration::from_secs(60);
        c.im.rate_limit_per_minute = 0;
        c
    }

    fn now() -> Now {
        Now::new(Instant::now(), 1_800_000_000_000)
    }

    /// The registrar whose digest guard challenges senders.
    fn registrar() -> Registrar {
        setup::registrar(&config(), domains(), NonceSecret::from_bytes([7; 32]), 1)
    }

    fn domains() -> LocalDomains {
        setup::local_domains(&config(), &[])
    }

    fn message(ruri: &str, from: &str, extra: &str) -> Request {
        let raw = format!(
            "MESSAGE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1;rport\r\nMax-Forwards: 70\r\nFrom: <{from}>;tag=a\r\nTo: <{ruri}>\r\nCall-ID: im-1\r\nCSeq: 1 MESSAGE\r\n{extra}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        );
        match parse_datagram(Bytes::from(raw)).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    fn admit(reg: &mut Registrar, req: &Request) -> Result<(Sender, Recipient), Refusal> {
        super::admit(now(), req, &domains(), &Answer::new("pbx.test"), reg)
    }

    /// The Proxy-Authorization header line answering `challenge` for `req`.
    fn credentials(challenge: &Response, req: &Request, user: &str, password: &str) -> String {
        let ch = challenge
            .headers()
            .auth(&HeaderName::ProxyAuthenticate)
            .unwrap();
        let params = ch[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
        let value = mss_auth::authorize(
            params,
            "MESSAGE",
            req.uri_str().unwrap(),
            user,
            password,
            "c0ffee",
            1,
        )
        .unwrap();
        format!("Proxy-Authorization: {value}\r\n")
    }

    #[test]
    fn settings_follow_the_im_section() {
        let s = settings(&config(), "192.0.2.1:5060");
        assert_eq!(s.domain, "pbx.test");
        assert_eq!(s.via_host, "192.0.2.1:5060");
        assert_eq!(s.offline_max_messages, 3);
        assert_eq!(s.offline_max_chars, 20);
        assert_eq!(s.offline_ttl, Duration::from_secs(60));
        assert_eq!(s.rate_limit, None);
        let mut c = config();
        c.im.rate_limit_per_minute = 30;
        assert_eq!(settings(&c, "h").rate_limit, RateLimit::per_minute(30));
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

        let ch = challenge
            .headers()
            .auth(&HeaderName::ProxyAuthenticate)
            .unwrap();
        let register = |nc: u32| {
            let params = ch[0].params.iter().map(|(n, v)| (*n, v.as_ref()));
            let value = mss_auth::authorize(
                params,
                "REGISTER",
                "sip:pbx.test",
                "100",
                "pw-100",
                "c0ffee",
                nc,
            )
            .unwrap();
            let raw = format!(
                "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-r{nc};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=r\r\nTo: <sip:100@pbx.test>\r\nCall-ID: reg-1\r\nCSeq: {nc} REGISTER\r\nContact: <sip:100@127.0.0.1:5999>\r\nAuthorization: {value}\r\nContent-Length: 0\r\n\r\n"
            );
            match parse_datagram(Bytes::from(raw)).unwrap() {
                Message::Request(r) => r,
                Message::Response(_) => panic!("not a request"),
            }
        };
        let flow = Flow::udp("127.0.0.1:5999".parse().unwrap());
        match reg.handle_register(now(), &register(1), &flow) {
            RegisterOutcome::Reply(r) => {
                assert_eq!(r.status().as_u16(), 401);
                let www = r.headers().get(&HeaderName::WwwAuthenticate).unwrap();
                assert!(String::from_utf8_lossy(www).contains("stale=true"));
            }
            RegisterOutcome::Commit(_) => panic!("a replayed nonce count registered"),
        }
        assert!(matches!(
            reg.handle_register(now(), &register(2), &flow),
            RegisterOutcome::Commit(_)
        ));
    }

    /// A MESSAGE through line `p1` goes to its owner unchallenged; through the ownerless
    /// `p2` to no one (`404`).
    #[test]
    fn a_message_through_a_line_goes_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("mss.ini");
        std::fs::write(
            &ini,
            "[server]\ndomain = pbx.test\n[user:101]\npassword = pw\n\
             [line:p1]\nregistrar = 192.0.2.1\nnumber = 2001\npassword = x\nowner = 101\n\
             [line:p2]\nregistrar = 192.0.2.1\nnumber = 2002\npassword = x\n",
        )
        .unwrap();
        let c = crate::config::load(Some(&ini), None).unwrap().config;
        let im = Im::new(&c, "127.0.0.1:5060", now(), 1);
        let reg = setup::registrar(&c, domains(), NonceSecret::from_bytes([7; 32]), 1);
        let line = |name| LinePeer {
            name,
            number: "2001",
        };
        let (sender, recipient) = im.admit_from_line(now(), line("p1"), &reg);
        assert_eq!(sender, Sender::Line { name: "p1".into() });
        assert_eq!(
            recipient,
            Recipient::Local {
                user: "101".into(),
                contacts: Vec::new()
            }
        );
        let (sender, recipient) = im.admit_from_line(now(), line("p2"), &reg);
        assert_eq!(sender, Sender::Line { name: "p2".into() });
        assert_eq!(recipient, Recipient::Unknown);
    }

    #[test]
    fn a_line_message_is_addressed_by_request_uri_or_to_user() {
        let by_ruri = message("sip:2001@127.0.0.1:5060", "sip:+4930@provider.test", "");
        assert!(addressed_to(&by_ruri, "2001"));
        let raw = "MESSAGE sip:mss@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-2\r\nFrom: <sip:+4930@provider.test>;tag=a\r\nTo: <sip:2001@provider.test>\r\nCall-ID: im-2\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
        let Ok(Message::Request(by_to)) = parse_datagram(Bytes::from(raw)) else {
            panic!("not a request");
        };
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

    #[test]
    fn sent_by_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_sent_by(
                b"SIP/2.0/UDP pbx.test;branch=z9hG4bKx;rport",
                "127.0.0.1:5070"
            )
            .as_deref(),
            Some("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx;rport")
        );
        assert_eq!(
            with_sent_by(b"SIP/2.0/TCP h", "[::1]:5060").as_deref(),
            Some("SIP/2.0/TCP [::1]:5060")
        );
        assert_eq!(with_sent_by(b"garbage", "h"), None);
        assert_eq!(with_sent_by(&[0xff, b' ', b'x'], "h"), None);
    }

    #[test]
    fn counters_are_published_as_differences() {
        let metrics = Metrics::new();
        let mut now = ImStats::default();
        publish_delta(&metrics, &ImStats::default(), &now);
        let before = now;
        now.stored = 2;
        now.relayed = 1;
        now.delivered = 2;
        now.delivered_late = 1;
        now.expired = 3;
        now.refused.store_full = 1;
        now.refused.not_found = 1;
        publish_delta(&metrics, &before, &now);
        publish_delta(&metrics, &now, &now);
        let text = metrics.render();
        for (outcome, n) in [
            ("stored", 2),
            ("delivered", 4),
            ("expired", 3),
            ("refused", 2),
        ] {
            assert!(
                text.contains(&format!(
                    "mss_messages_total{{outcome=\"{outcome}\"}} {n}\n"
                )),
                "{outcome}: {text}"
            );
        }
    }
}
