//! The server half of the table: requests from the network (new, retransmitted, ACK,
//! CANCEL) and responses from the TU (RFC 3261 §17.2, §9.2; RFC 6026 §7.1).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mss_sip::{Flow, HeaderName, Message, Method, Request, Response, StatusCode};

use crate::base::{tag_of, Base};
use crate::build::{replace_to, response_for, stable_tag};
use crate::completed::KeyEntry;
use crate::error::TxnError;
use crate::machine::{Action, ResponseClass, State};
use crate::output::Event;
use crate::server_invite::ServerInvite;
use crate::server_non_invite::ServerNonInvite;
use crate::slab::{ServerTransactionId, SlotId};
use crate::transactions::{server_id, ServerMachine, ServerTxn, Transactions, Txn};
use crate::TransactionKey;

/// What a server transaction does once it has sent a final response that is not an
/// INVITE's 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFinal {
    /// The RFC's state machine: a non-INVITE transaction waits in Completed for Timer J
    /// (§17.2.2; over UDP as a compact queue entry, over a reliable transport in its slot,
    /// where Timer J is zero), an INVITE transaction retransmits its response (Timer G)
    /// until the ACK and absorbs it (§17.2.1).
    Keep,
    /// Terminated at once, the response sent only this time
    /// ([`Transactions::send_response_once`]).
    End,
}

impl Transactions {
    /// Sets where the responses of server transaction `server` go: `flow`, the one the TU
    /// picked from the request's top Via (RFC 3261 §18.2.2, RFC 3581 §4), leaving from the
    /// local address `local` (the one the request arrived at), for every response and
    /// retransmission to come, Timer J's included. Until then responses go back on the
    /// flow the request came in on, from no particular local address. Keeping the route
    /// here spares the driver a map of its own that would live as long as the
    /// transactions.
    ///
    /// # Errors
    /// [`TxnError::UnknownTransaction`] when `server` is not a live server transaction.
    pub fn set_reply_route(
        &mut self,
        server: ServerTransactionId,
        flow: Flow,
        local: Option<std::net::SocketAddr>,
    ) -> Result<(), TxnError> {
        match self.txns.get_mut(server.0) {
            Some(Txn::Server(s)) => {
                s.flow = flow;
                s.local = local;
                Ok(())
            }
            _ => Err(TxnError::UnknownTransaction),
        }
    }

    /// Answers the request of server transaction `server` (RFC 3261 §17.2.1, §17.2.2).
    ///
    /// The response goes to the flow the request came in on. Provisional responses are
    /// sent as given; a non-2xx final to an INVITE is retransmitted by Timer G on unreliable
    /// transports; 2xx responses to an INVITE are sent each time the TU passes one
    /// (retransmitting them is the TU's job, RFC 6026 §7.1).
    ///
    /// # Errors
    /// - [`TxnError::UnknownTransaction`]: the transaction has terminated, or it is a
    ///   non-INVITE transaction on an unreliable transport that already sent its final
    ///   response: it is then kept compact, by key only, to answer retransmissions until
    ///   Timer J (§17.2.2), and takes no other response.
    /// - [`TxnError::BadStatus`]: the status code is outside 100-699.
    /// - [`TxnError::ResponseRefused`]: the state does not take this response (a second
    ///   final response, §17.2.2; a non-2xx after a 2xx, RFC 6026 §8.7); nothing is sent.
    pub fn send_response(
        &mut self,
        now: Instant,
        server: ServerTransactionId,
        rsp: Response,
    ) -> Result<(), TxnError> {
        self.send_response_ref(now, server, &rsp)
    }

    /// [`Transactions::send_response`] of a response the caller keeps: the transaction
    /// reads and encodes it without taking it (a dialog's response goes out statelessly
    /// when its transaction refuses it, without a copy made for the attempt).
    ///
    /// # Errors
    /// As [`Transactions::send_response`].
    pub fn send_response_ref(
        &mut self,
        now: Instant,
        server: ServerTransactionId,
        rsp: &Response,
    ) -> Result<(), TxnError> {
        let now = self.advance(now);
        self.respond(now, server.0, rsp, AfterFinal::Keep)
    }

    /// Answers a request with a final response sent once, then ends its server transaction
    /// at once: the way to send a digest challenge (401/407). RFC 3261 §26.3.2.4: "UAs and
    /// proxy servers SHOULD challenge questionable requests with only a single 401
    /// (Unauthorized) or 407 (Proxy Authentication Required), forgoing the normal response
    /// retransmission algorithm, and thus behaving statelessly towards unauthenticated
    /// requests". A retransmission of the request then starts a new transaction and is
    /// challenged again.
    ///
    /// - A non-INVITE transaction is not kept in Completed for Timer J.
    /// - An INVITE transaction answered with a 3xx–6xx neither retransmits it (Timer G)
    ///   nor waits for its ACK (Timer H, then Timer I). The ACK then matches no
    ///   transaction and goes to the TU as a stray ACK, which a stateless UAS ignores
    ///   (§8.2.7: "A stateless UAS MUST ignore ACK requests").
    /// - A provisional response, or an INVITE's 2xx, is sent as
    ///   [`Transactions::send_response`] sends it.
    ///
    /// # Errors
    /// As [`Transactions::send_response`].
    pub fn send_response_once(
        &mut self,
        now: Instant,
        server: ServerTransactionId,
        rsp: Response,
    ) -> Result<(), TxnError> {
        let now = self.advance(now);
        self.respond(now, server.0, &rsp, AfterFinal::End)
    }

    /// Feeds a TU (or table-made) response to the server transaction in `slot`; `after`
    /// says what a non-INVITE transaction does once its final response is sent.
    fn respond(
        &mut self,
        now: Instant,
        slot: SlotId,
        rsp: &Response,
        after: AfterFinal,
    ) -> Result<(), TxnError> {
        let code = rsp.status().as_u16();
        let class = ResponseClass::of(code).ok_or(TxnError::BadStatus(code))?;
        let timers = self.config.timers;
        let mut out = std::mem::take(&mut self.scratch);
        let Some(Txn::Server(s)) = self.txns.get_mut(slot) else {
            self.scratch = out;
            return Err(TxnError::UnknownTransaction);
        };
        let accepted = match &mut s.machine {
            ServerMachine::Invite(m) => m.on_tu_response(class, now, &timers, &mut out),
            ServerMachine::NonInvite(m) => m.on_tu_response(class, now, &timers, &mut out),
        };
        if !accepted {
            let state = s.machine.state();
            self.scratch = out;
            return Err(TxnError::ResponseRefused { code, state });
        }
        // The machine's first action is SendResponse: remember the response and send it.
        let mut buf = BytesMut::new();
        rsp.encode(&mut buf);
        let bytes = buf.freeze();
        // In Accepted (a 2xx to an INVITE) the transaction re-sends nothing: retransmitted
        // INVITEs are absorbed and the 2xx retransmissions are the TU's (RFC 6026 §7.1,
        // §8.7), so the 2xx is not kept for the 32 s of Timer L.
        let keep_bytes =
            !(class == ResponseClass::Success && matches!(s.machine, ServerMachine::Invite(_)));
        s.last_response = keep_bytes.then(|| bytes.clone());
        // The INVITE was kept only to build the 100 (Trying), which goes out in Proceeding
        // alone (§17.2.1): after a final response it is dead weight for Timer H or L.
        if class != ResponseClass::Provisional {
            s.request = None;
        }
        // Only an INVITE's To is ever looked at again (the ACK and the CANCEL name INVITEs).
        if matches!(s.machine, ServerMachine::Invite(_)) {
            s.response_to = rsp
                .headers()
                .get(&HeaderName::To)
                .map(Bytes::copy_from_slice);
        }
        let (flow, local) = (s.flow, s.local);
        if let ServerMachine::Invite(m) = &mut s.machine {
            let state = m.state();
            if m.accepted.count(state) {
                self.accepted += 1;
            }
        }
        // A final response after which the machine waits in Completed: Timer J for a
        // non-INVITE, Timers G and H (the ACK) for an INVITE's 3xx–6xx.
        let completed = s.machine.state() == State::Completed;
        let non_invite = matches!(&s.machine, ServerMachine::NonInvite(_));
        self.transmit_from(flow, local, bytes, Some(server_id(slot)));
        match after {
            // Sent once: no Timer J, G or H to arm (their heap entries would only wait to
            // be skipped), the transaction ends now.
            AfterFinal::End if completed => {
                out.clear();
                self.terminate(slot);
            }
            // A non-INVITE over UDP: the actions are SendResponse (done above) and Arm(J),
            // and the compact queue is Timer J.
            AfterFinal::Keep if completed && non_invite && !flow.transport.is_reliable() => {
                out.clear();
                self.compact(now, slot);
            }
            AfterFinal::End | AfterFinal::Keep => {}
        }
        for action in out.drain(..) {
            self.apply(slot, action);
        }
        self.scratch = out;
        Ok(())
    }

    /// Sends the transaction's own 100 (Trying) (§17.2.1).
    pub(crate) fn send_trying(&mut self, slot: SlotId) {
        let Some(Txn::Server(s)) = self.txns.get_mut(slot) else {
            return;
        };
        let Some(request) = &s.request else {
            return;
        };
        let bytes = response_for(request, StatusCode::TRYING).to_bytes();
        s.last_response = Some(bytes.clone());
        let (flow, local) = (s.flow, s.local);
        self.transmit_from(flow, local, bytes, Some(server_id(slot)));
    }

    /// A request from the network.
    ///
    /// Matching reads only what the key needs (the top Via for RFC 3261 branches), so a
    /// retransmission costs one Via parse and one lookup. The other base headers are
    /// checked only before a new transaction is created.
    pub(crate) fn handle_request(&mut self, now: Instant, req: Request, from: Flow) {
        match TransactionKey::for_request(&req) {
            Ok(key) => self.handle_keyed(now, req, from, key, false),
            Err(error) => self.invalid(req, from, error),
        }
    }

    /// Handles a request from the network that passed [`Request::check`], with its key
    /// ([`TransactionKey::for_checked`]); the request stays with the caller.
    ///
    /// A request that starts a new server transaction is not passed up as
    /// [`Event::Request`]: its id is returned and the caller handles the request at once
    /// (it still holds the request and what the check parsed). Everything else (a
    /// retransmission, an ACK, a CANCEL) goes the way of [`Transactions::handle_message`].
    /// Afterwards call [`Transactions::poll_output`] until it returns `None`.
    pub fn handle_checked_request(
        &mut self,
        now: Instant,
        req: &Request,
        from: Flow,
        key: TransactionKey,
    ) -> Option<ServerTransactionId> {
        let now = self.advance(now);
        match req.method() {
            Method::Ack | Method::Cancel => {
                self.handle_keyed(now, req.clone(), from, key, true);
                None
            }
            _ => match self.lookup(&key, now) {
                Some(KeyEntry::Live(slot)) => {
                    self.retransmission(slot);
                    None
                }
                Some(KeyEntry::Completed(seq)) => {
                    self.retransmit_completed(seq);
                    None
                }
                None if self.ended_early(&key, now) => {
                    self.absorbed_after_end += 1;
                    None
                }
                None => Some(self.start_server(now, req, from, key)),
            },
        }
    }

    /// A request with its key. `checked`: the request passed [`Request::check`], so its
    /// base headers are known to parse.
    fn handle_keyed(
        &mut self,
        now: Instant,
        req: Request,
        from: Flow,
        key: TransactionKey,
        checked: bool,
    ) {
        let entry = self.lookup(&key, now);
        let slot = match entry {
            Some(KeyEntry::Live(slot)) => Some(slot),
            _ => None,
        };
        match req.method() {
            Method::Ack => {
                // Under RFC 2543 matching the ACK's To tag must be the one of our response
                // (§17.2.3); branch matching needs no such check.
                let tag_ok = key.is_rfc3261() || {
                    let theirs = req.headers().to_tag().ok().flatten();
                    slot.and_then(|s| match self.txns.get(s) {
                        Some(Txn::Server(s)) => s.response_to.as_deref().map(tag_of),
                        _ => None,
                    })
                    .is_some_and(|ours| ours == theirs)
                };
                let slot = slot.filter(|_| tag_ok);
                self.handle_ack(now, req, from, slot);
            }
            _ => match (slot, entry) {
                (Some(slot), _) => self.retransmission(slot),
                (None, Some(KeyEntry::Completed(seq))) => self.retransmit_completed(seq),
                (None, _) if *req.method() != Method::Cancel && self.ended_early(&key, now) => {
                    self.absorbed_after_end += 1;
                }
                // A new transaction: its request must be one the TU can answer (§8.1.1).
                (None, _) if checked && *req.method() != Method::Cancel => {
                    self.new_server(now, req, from, key)
                }
                (None, _) => match Base::read(req.headers()) {
                    Err(error) => self.invalid(req, from, error.into()),
                    Ok(base) if *req.method() == Method::Cancel => {
                        let seed = Bytes::copy_from_slice(
                            base.via.branch().unwrap_or(base.call_id).as_bytes(),
                        );
                        self.handle_cancel(now, req, from, key, &seed);
                    }
                    Ok(_) => self.new_server(now, req, from, key),
                },
            },
        }
    }

    fn invalid(&mut self, req: Request, from: Flow, error: TxnError) {
        self.event(Event::Invalid {
            message: Box::new(Message::Request(req)),
            from,
            error,
        });
    }

    /// A request that matched a live server transaction: a retransmission (§17.2.3).
    fn retransmission(&mut self, slot: SlotId) {
        let mut out = std::mem::take(&mut self.scratch);
        if let Some(Txn::Server(s)) = self.txns.get_mut(slot) {
            match &mut s.machine {
                ServerMachine::Invite(m) => m.on_request(&mut out),
                ServerMachine::NonInvite(m) => m.on_request(&mut out),
            }
        }
        for action in out.drain(..) {
            self.apply(slot, action);
        }
        self.scratch = out;
    }

    /// Creates the server transaction for a new request. Returns its slot.
    fn create_server(
        &mut self,
        now: Instant,
        req: &Request,
        from: Flow,
        key: TransactionKey,
        out: &mut Vec<Action>,
    ) -> SlotId {
        let reliable = from.transport.is_reliable();
        let machine = if *req.method() == Method::Invite {
            ServerMachine::Invite(ServerInvite::start(now, &self.config.timers, reliable, out))
        } else {
            ServerMachine::NonInvite(ServerNonInvite::start(reliable, out))
        };
        let hash = self.keys.hash(&key);
        let slot = self.txns.insert(Txn::Server(ServerTxn {
            key,
            machine,
            flow: from,
            local: None,
            request: (*req.method() == Method::Invite).then(|| Box::new(req.clone())),
            last_response: None,
            response_to: None,
        }));
        self.index_hashed(hash, slot);
        slot
    }

    fn new_server(&mut self, now: Instant, req: Request, from: Flow, key: TransactionKey) {
        let mut out = std::mem::take(&mut self.scratch);
        let slot = self.create_server(now, &req, from, key, &mut out);
        let mut req = Some(req);
        for action in out.drain(..) {
            match action {
                Action::PassUp => {
                    if let Some(request) = req.take() {
                        self.event(Event::Request {
                            id: ServerTransactionId(slot),
                            request,
                            from,
                        });
                    }
                }
                other => self.apply(slot, other),
            }
        }
        self.scratch = out;
    }

    /// [`Transactions::new_server`] for a request the caller keeps and handles itself: the
    /// `PassUp` of the new machine becomes the returned id instead of an event.
    fn start_server(
        &mut self,
        now: Instant,
        req: &Request,
        from: Flow,
        key: TransactionKey,
    ) -> ServerTransactionId {
        let mut out = std::mem::take(&mut self.scratch);
        let slot = self.create_server(now, req, from, key, &mut out);
        for action in out.drain(..) {
            self.apply(slot, action);
        }
        self.scratch = out;
        ServerTransactionId(slot)
    }

    /// An ACK. It is absorbed by an INVITE server transaction in Completed/Confirmed
    /// (§17.2.1) and passed to the TU otherwise (ACK for 2xx, stray ACK, or Accepted:
    /// RFC 6026 §7.1).
    fn handle_ack(&mut self, now: Instant, req: Request, from: Flow, slot: Option<SlotId>) {
        let timers = self.config.timers;
        let mut out = std::mem::take(&mut self.scratch);
        let mut pass = true;
        let mut matched = None;
        if let Some(slot) = slot {
            if let Some(Txn::Server(ServerTxn {
                machine: ServerMachine::Invite(m),
                ..
            })) = self.txns.get_mut(slot)
            {
                pass = m.on_ack(now, &timers, &mut out);
                matched = Some(ServerTransactionId(slot));
            }
            for action in out.drain(..) {
                self.apply(slot, action);
            }
        }
        self.scratch = out;
        if pass {
            self.event(Event::Ack {
                request: req,
                from,
                transaction: matched,
            });
        }
    }

    /// A CANCEL (§9.2). It gets its own non-INVITE server transaction, answered here: 200
    /// when it matches an INVITE server transaction (and the TU is told if that one is still
    /// pending, so it can send 487), 481 otherwise. Only INVITE transactions are looked up:
    /// CANCEL has no effect on other methods (§9.2) and mss answers those at once.
    fn handle_cancel(
        &mut self,
        now: Instant,
        req: Request,
        from: Flow,
        key: TransactionKey,
        tag_seed: &[u8],
    ) {
        let target = key.cancel_target().and_then(|k| self.find_server(&k));
        let mut out = std::mem::take(&mut self.scratch);
        let cancel = self.create_server(now, &req, from, key, &mut out);
        // The CANCEL itself is not passed up (Event::Cancel below carries it).
        for action in out.drain(..).filter(|a| *a != Action::PassUp) {
            self.apply(cancel, action);
        }
        self.scratch = out;
        let (status, to, pending) = match target.and_then(|t| self.txns.get(t.0)) {
            Some(Txn::Server(inv)) => {
                // §9.2: the To tag of the 200 SHOULD equal that of the INVITE's response.
                let to = inv.response_to.clone().filter(|to| tag_of(to).is_some());
                (StatusCode::OK, to, inv.machine.state() == State::Proceeding)
            }
            _ => {
                let to = req.headers().get(&HeaderName::To).map(|to| {
                    let mut v = to.to_vec();
                    if tag_of(to).is_none() {
                        v.extend_from_slice(b";tag=");
                        v.extend_from_slice(stable_tag(tag_seed).as_bytes());
                    }
                    Bytes::from(v)
                });
                (StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST, to, false)
            }
        };
        let mut rsp = response_for(&req, status);
        if let Some(to) = to {
            replace_to(&mut rsp, to);
        }
        // A fresh non-INVITE transaction in Trying always takes a final response.
        let _ = self.respond(now, cancel, &rsp, AfterFinal::Keep);
        if let (Some(invite), true) = (target, pending) {
            self.event(Event::Cancel {
                invite,
                cancel: ServerTransactionId(cancel),
                request: req,
                from,
            });
        }
    }
}
