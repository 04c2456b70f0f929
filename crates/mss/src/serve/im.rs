//! The messaging glue: a MESSAGE request in, the sans-IO [`Messaging`] service driven, its
//! outputs carried out (DESIGN §3 "Instant messages", §5), the way the service's run loop
//! says (`mss_services::im`).
//!
//! - Admission (`im/admission.rs`): a local sender answers a `407` challenge from the
//!   registrar's digest guard; a MESSAGE from a line's provider to the line's number goes
//!   to the line's owner unchallenged; who the recipient is.
//! - [`ImOutput::Reply`] → the server transaction's answer; [`ImOutput::Send`] → a client
//!   transaction owned by [`ClientOwner::Im`] (our Via's sent-by is set to the address the
//!   transports send from to that peer, RFC 3261 §18.1.1); its final response, its `408`
//!   on timeout, or a `503` made here on a transport error go back to the service;
//!   [`ImOutput::Store`], `Load`, `Delete`, `Expire` → the store call, spawned, its result
//!   back as [`Completion::Im`].
//! - After every committed REGISTER that leaves a user with live contacts, the registrar's
//!   glue calls [`Worker::im_user_registered`]: stored messages go out. The service knows
//!   who has any (`Store::message_counts` at start, then its own bookkeeping), so a user
//!   with nothing stored costs no store read.
//! - The service's counters go to `/metrics` (`mss_messages_total{outcome=…}`) after every
//!   change, as differences from what was published before.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use mss_admin::{MessageOutcome, Metrics};
use mss_services::im::{
    ImOutput, ImSettings, ImStats, Messaging, RateLimit, RequestToken, StoreToken,
};
use mss_services::Now;
use mss_sip::{Flow, HeaderName, Request, Response, StatusCode};
use mss_store::{InsertOutcome, StoreError, StoredMessage, UserMessageCount};
use mss_txn::{ClientTransactionId, ServerTransactionId};

use super::setup;
use super::worker::{ClientOwner, Completion, Worker};
use crate::config::Config;

mod admission;

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

    /// Who has stored messages at start (`Store::message_counts`): a registration of anyone
    /// else needs no store read until a message is stored for them.
    pub(crate) fn set_stored_users(&mut self, counts: Vec<UserMessageCount>) {
        self.service
            .set_stored_users(counts.into_iter().filter(|c| c.stored > 0).map(|c| c.user));
    }

    /// Adds what the service counted since the last call to `metrics`.
    fn publish(&mut self, metrics: &Metrics) {
        let now = *self.service.stats();
        publish_delta(metrics, &self.published, &now);
        self.published = now;
    }
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
fn with_sent_by(via: &[u8], sent_by: SocketAddr) -> Option<String> {
    use std::fmt::Write as _;
    let via = std::str::from_utf8(via).ok()?.trim_start();
    let (protocol, rest) = via.split_once(' ')?;
    let params = rest.find(';').map_or("", |i| &rest[i..]);
    let mut out = String::with_capacity(protocol.len() + 48 + params.len());
    out.push_str(protocol);
    out.push(' ');
    write!(out, "{sent_by}").ok()?;
    out.push_str(params);
    Some(out)
}

impl Worker {
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
                .and_then(|v| with_sent_by(v, addr));
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

    use super::*;
    use crate::config::UserConfig;

    /// Users 100 and 101 at pbx.test, MD5 challenges, small `[im]` limits.
    pub(super) fn config() -> Config {
        let mut c = Config::embedded("pbx.test".into());
        for (name, password) in [("100", "pw-100"), ("101", "pw-101")] {
            c.users.push(UserConfig {
                name: name.into(),
                password: password.into(),
                display_name: None,
            });
        }
        c.server.digest_algorithms = Some(vec![mss_auth::Algorithm::Md5]);
        c.im.offline_max_messages = 3;
        c.im.offline_max_chars = 20;
        c.im.offline_ttl = Duration::from_secs(60);
        c.im.rate_limit_per_minute = 0;
        c
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
    fn sent_by_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_sent_by(
                b"SIP/2.0/UDP pbx.test;branch=z9hG4bKx;rport",
                "127.0.0.1:5070".parse().unwrap()
            )
            .as_deref(),
            Some("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx;rport")
        );
        assert_eq!(
            with_sent_by(b"SIP/2.0/TCP h", "[::1]:5060".parse().unwrap()).as_deref(),
            Some("SIP/2.0/TCP [::1]:5060")
        );
        let any: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(with_sent_by(b"garbage", any), None);
        assert_eq!(with_sent_by(&[0xff, b' ', b'x'], any), None);
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
