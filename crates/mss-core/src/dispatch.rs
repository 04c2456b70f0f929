//! Where a new request goes: the reply route, the prechecks, then one service by method,
//! and one fallback for what no service takes.
//!
//! - a request with a To tag (within a dialog) but REGISTER → the call service
//!   (`calls/in_dialog.rs`: passed to the other leg, or `481` for an unknown dialog);
//! - `INVITE` → the call service (`calls/start.rs`);
//! - `BYE`, `UPDATE`, `INFO`, `PRACK` outside any dialog → `481` (RFC 3261 §12.2.2);
//! - `REGISTER` → the registrar (`registrar.rs`);
//! - `MESSAGE` → messaging (`messaging.rs`);
//! - `OPTIONS` → answered here: `200` with what we support when addressed to us
//!   (RFC 3261 §11.2), `404` for anyone else (mss is not a proxy, §8.2.2.1);
//! - everything else the prechecks let through → [`Core::fallback`].
//!
//! CANCEL never gets here: the transaction layer answers every CANCEL itself (`200` and an
//! event when it matches a pending INVITE, `481` when it matches nothing, RFC 3261 §9.2).
//! ACK never does either: it is absorbed by the INVITE server transaction it acknowledges
//! or arrives as `Event::Ack`, which the call service takes.

use mss_admin::Direction;
use mss_services::{Now, Reject};
use mss_sip::{Flow, Method, ParseError, Request, RequestCore, Uri};
use mss_transport::{response_route, route_response, ResponseRoute, ViaRoute};
use mss_txn::ServerTransactionId;

use crate::core::Core;

impl Core {
    /// A new request: reply route, prechecks, then one arm per method. `checked` is the
    /// request's [`Request::check`] result, made once when it arrived.
    pub(crate) fn on_request(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        checked: Result<&RequestCore<'_>, &ParseError>,
        from: Flow,
    ) {
        self.metrics.request(
            Direction::In,
            mss_admin::Method::from_token(req.method().as_str()),
        );
        let local = self.arrival;
        let route = match checked {
            Ok(c) => Ok(response_route(&from, &ViaRoute::from(&c.core.top_via))),
            Err(_) => route_response(&from, req.headers()),
        };
        let flow = match route {
            Ok(ResponseRoute::Flow(f)) => f,
            // A Via naming a host to resolve (maddr): mss resolves no foreign names and
            // answers where the request came from (RFC 3581 style).
            Ok(ResponseRoute::Resolve { .. }) | Err(_) => from,
        };
        if let Err(e) = self.txns.set_reply_route(id, flow, local) {
            tracing::debug!(?id, error = %e, "reply route not set");
        }
        let checked = match self.precheck.check_parsed(req, checked) {
            Ok(c) => c,
            Err(reject) => {
                let rsp = self.answer.reject(req, &reject);
                self.respond(now, id, rsp);
                return;
            }
        };
        let in_dialog = *req.method() != Method::Register
            && checked.core.to.tag().is_some_and(|t| !t.is_empty());
        if in_dialog {
            self.on_in_dialog_request(now, id, req);
            return;
        }
        match req.method() {
            Method::Invite => self.on_invite(now, id, req, &from),
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                match mss_dialog::unknown_dialog_answer(req) {
                    Some(r) => {
                        let rsp = r.response(req, &self.answer.to_tag(req));
                        self.respond(now, id, rsp);
                    }
                    None => self.fallback(now, id, req),
                }
            }
            Method::Register => self.on_register(now, id, req, checked, &from),
            Method::Options => self.on_options(now, id, req, checked),
            Method::Message => self.on_message(now, id, req, &from),
            _ => self.fallback(now, id, req),
        }
    }

    /// What no service takes: a method the prechecks know but no service serves (events,
    /// PUBLISH) gets `501 Not Implemented` with `Allow`.
    fn fallback(&mut self, now: Now, id: ServerTransactionId, req: &Request) {
        let rsp = self.answer.reject(req, &Reject::NotImplemented);
        self.respond(now, id, rsp);
    }

    /// `OPTIONS` to us: `200` with what we support (RFC 3261 §11.2); to anyone else `404`:
    /// mss is not a proxy (§8.2.2.1).
    fn on_options(
        &mut self,
        now: Now,
        id: ServerTransactionId,
        req: &Request,
        checked: &RequestCore<'_>,
    ) {
        let ours = match &checked.uri {
            Uri::Sip(u) => self.domains.is_local(u.host),
            _ => false,
        };
        let rsp = if ours {
            self.precheck.options_answer(&self.answer, req)
        } else {
            self.answer.reject(req, &Reject::NotFound)
        };
        self.respond(now, id, rsp);
    }
}
